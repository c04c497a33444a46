//! The async shell of store-and-forward: the chain step that stores ([`OfflineHandler`]),
//! the delivery to endpoints that register ([`Delivery::deliver_to`]) and the expiry sweep
//! ([`Delivery::sweep_once`], [`Delivery::run`]). Sending goes through [`Originator`], which
//! the Front End implements over its proxy cores; storage through the port traits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use confab_core::chain::{Outcome, Reply, RequestContext, RequestHandler};
use confab_core::message_queue::{Enqueued, MessageQueueStore};
use confab_core::{Address, Binding, RegistrationStore, StoreError, Timestamp, UserStore};
use confab_sip::Message;

use crate::offline::{Offline, QUOTA_REASON, STORED_REASON, endpoint_key, is_temporary};

/// Sends a request this node originates to one endpoint and reports the final status
/// (408 for no answer, 503 when it could not be sent).
#[async_trait]
pub trait Originator: Send + Sync {
    /// Sends `request` to the endpoint `binding` registered.
    async fn send(&self, request: Message, binding: &Binding) -> u16;
}

/// What one delivery run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryReport {
    /// Messages an endpoint accepted (2xx).
    pub delivered: usize,
    /// Messages an endpoint refused for good (recorded as handled for that endpoint).
    pub refused: usize,
    /// Endpoints whose delivery stopped on a temporary failure (retried when they
    /// register again).
    pub deferred: usize,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Undelivered messages removed at expiry.
    pub expired: usize,
    /// Failure notifications (IMDN) queued for their senders.
    pub notified: usize,
    /// Delivered messages removed at the end of their delivery window.
    pub finished: usize,
}

/// Most messages sent to one endpoint per run (the next REGISTER or run continues).
pub const BATCH: u32 = 200;

/// Store-and-forward over the stores and an [`Originator`].
pub struct Delivery {
    offline: Offline,
    queue: Arc<dyn MessageQueueStore>,
    registrations: Arc<dyn RegistrationStore>,
    originator: Arc<dyn Originator>,
    /// Users with a delivery run in progress, and whether another run was asked for
    /// meanwhile (two REGISTERs at once must not send a message twice).
    running: Mutex<HashMap<Address, bool>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("config", self.offline.config())
            .finish_non_exhaustive()
    }
}

fn wall_now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

impl Delivery {
    /// Delivery over these stores.
    pub fn new(
        offline: Offline,
        queue: Arc<dyn MessageQueueStore>,
        registrations: Arc<dyn RegistrationStore>,
        originator: Arc<dyn Originator>,
    ) -> Delivery {
        Delivery {
            offline,
            queue,
            registrations,
            originator,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The rules.
    pub fn offline(&self) -> &Offline {
        &self.offline
    }

    /// Whether [`Delivery::deliver_to`] may have anything to do for `aor` (false: the queue
    /// store knows it holds nothing for it), so a caller can skip starting a run.
    pub fn may_have_work(&self, aor: &Address) -> bool {
        self.queue.may_have_queued(aor)
    }

    /// Delivers the queued messages of `aor` to its registered endpoints, in order, each
    /// endpoint one message at a time (the next only after the previous was accepted).
    /// Call it after a successful REGISTER. If a run for `aor` is already going, it is
    /// asked to run once more and this call returns at once.
    ///
    /// # Errors
    /// A store failure (the messages stay queued).
    pub async fn deliver_to(&self, aor: &Address) -> Result<DeliveryReport, StoreError> {
        {
            let mut r = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(again) = r.get_mut(aor) {
                *again = true;
                return Ok(DeliveryReport::default());
            }
            r.insert(aor.clone(), false);
        }
        let mut total = DeliveryReport::default();
        let result = loop {
            match self.deliver_once(aor, wall_now()).await {
                Ok(rep) => {
                    total.delivered += rep.delivered;
                    total.refused += rep.refused;
                    total.deferred += rep.deferred;
                }
                Err(e) => break Err(e),
            }
            let mut r = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match r.get_mut(aor) {
                Some(again) if *again => *again = false,
                _ => {
                    r.remove(aor);
                    break Ok(total);
                }
            }
        };
        if result.is_err() {
            self.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(aor);
        }
        result
    }

    async fn deliver_once(
        &self,
        aor: &Address,
        now: Timestamp,
    ) -> Result<DeliveryReport, StoreError> {
        let mut rep = DeliveryReport::default();
        let bindings = self.registrations.lookup(aor, now).await?;
        if bindings.is_empty() {
            return Ok(rep);
        }
        let window = self.offline.config().window_ms();
        let messages = self.queue.deliverable(aor, now, window, BATCH).await?;
        if messages.is_empty() {
            return Ok(rep);
        }
        for b in &bindings {
            let key = endpoint_key(b);
            for m in messages.iter().filter(|m| !m.delivered_to.contains(&key)) {
                let request = match Offline::delivery_request(m) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(id = m.id, error = %e, "stored message does not parse; removed");
                        self.queue.remove_queued(m.id).await?;
                        continue;
                    }
                };
                let status = self.originator.send(request, b).await;
                if (200..300).contains(&status) {
                    self.queue.record_delivery(m.id, &key, wall_now()).await?;
                    rep.delivered += 1;
                    tracing::debug!(id = m.id, %aor, endpoint = %key, "stored message delivered");
                } else if is_temporary(status) {
                    tracing::debug!(id = m.id, %aor, endpoint = %key, status, "delivery deferred");
                    rep.deferred += 1;
                    break;
                } else {
                    // The endpoint answered and refused this message (415, 488 ...):
                    // retrying cannot help, and holding it would block the ones after it.
                    self.queue.record_delivery(m.id, &key, wall_now()).await?;
                    rep.refused += 1;
                    tracing::info!(id = m.id, %aor, endpoint = %key, status, "stored message refused by the endpoint");
                }
            }
        }
        Ok(rep)
    }

    /// Removes expired messages (queuing the IMDN failure notifications their senders asked
    /// for, in the same write), then messages whose delivery window ended, and delivers the
    /// notifications to senders who are online.
    ///
    /// # Errors
    /// A store failure (retried at the next sweep).
    pub async fn sweep_once(&self, now: Timestamp) -> Result<SweepReport, StoreError> {
        let mut rep = SweepReport::default();
        loop {
            let expired = self.queue.expired(now, 500).await?;
            if expired.is_empty() {
                break;
            }
            let ids: Vec<u64> = expired.iter().map(|m| m.id).collect();
            let notes: Vec<_> = expired
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    let random = (now.as_millis() as u64)
                        .rotate_left(17)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        ^ m.id.wrapping_add(i as u64);
                    self.offline.failure_notification(m, now, random)
                })
                .collect();
            let senders: Vec<Address> = notes.iter().map(|n| n.recipient.clone()).collect();
            rep.expired += self.queue.retire(&ids, notes).await?;
            rep.notified += senders.len();
            for s in senders {
                if let Err(e) = self.deliver_to(&s).await {
                    tracing::warn!(error = %e, "delivery of a failure notification deferred");
                }
            }
            if ids.len() < 500 {
                break;
            }
        }
        rep.finished = self
            .queue
            .sweep(now, self.offline.config().window_ms())
            .await?;
        Ok(rep)
    }

    /// Sweeps every `im.sweep_interval_s` until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let period = Duration::from_secs(u64::from(self.offline.config().sweep_interval_s));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sweep_once(wall_now()).await {
                Ok(r) if r != SweepReport::default() => {
                    tracing::info!(
                        expired = r.expired,
                        notified = r.notified,
                        finished = r.finished,
                        "offline message sweep"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "offline message sweep failed"),
            }
        }
    }
}

/// The chain step `im-offline` (before `router`): a MESSAGE to a known local user without
/// any registered endpoint is stored and answered 202 Accepted once committed; over the
/// user's quota it is refused (`im.over_quota_status`, 480 by default, reason
/// [`QUOTA_REASON`]); too large, 413. Everything else continues to the router.
pub struct OfflineHandler {
    offline: Offline,
    queue: Arc<dyn MessageQueueStore>,
    registrations: Arc<dyn RegistrationStore>,
    users: Arc<dyn UserStore>,
}

impl std::fmt::Debug for OfflineHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineHandler").finish_non_exhaustive()
    }
}

impl OfflineHandler {
    /// The step over the stores.
    pub fn new(
        offline: Offline,
        queue: Arc<dyn MessageQueueStore>,
        registrations: Arc<dyn RegistrationStore>,
        users: Arc<dyn UserStore>,
    ) -> OfflineHandler {
        OfflineHandler {
            offline,
            queue,
            registrations,
            users,
        }
    }
}

fn unavailable() -> Outcome {
    Outcome::Respond(
        Reply::with_reason(503, "Message store unavailable").header("Retry-After", "5"),
    )
}

#[async_trait]
impl RequestHandler for OfflineHandler {
    fn name(&self) -> &'static str {
        "im-offline"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        if !self.offline.config().offline {
            return Outcome::Continue;
        }
        let Some(aor) = Offline::candidate(ctx).cloned() else {
            return Outcome::Continue;
        };
        let now = Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX));
        // Online (or the location service is down: the router answers that): not ours; the
        // router forwards to the bindings found here.
        match self.registrations.lookup(&aor, now).await {
            Ok(b) if b.is_empty() => {}
            Ok(b) => {
                ctx.located = Some((aor, b));
                return Outcome::Continue;
            }
            Err(_) => return Outcome::Continue,
        }
        match self.users.get_user(&aor).await {
            Ok(Some(_)) => {}
            // Unknown users get the router's 404; a store failure its 503.
            _ => return Outcome::Continue,
        }
        let new = match self.offline.prepare(&ctx.request, &aor, now) {
            Ok(m) => m,
            Err(reply) => return Outcome::Respond(reply),
        };
        match self.queue.enqueue(new, self.offline.config().quota()).await {
            Ok(Enqueued::Stored { id }) => {
                tracing::debug!(id, %aor, "MESSAGE stored for offline delivery");
                Outcome::Respond(Reply::with_reason(202, STORED_REASON))
            }
            Ok(Enqueued::OverQuota { messages, bytes }) => {
                tracing::info!(%aor, messages, bytes, "offline message queue full");
                Outcome::Respond(Reply::with_reason(
                    self.offline.config().over_quota_status,
                    QUOTA_REASON,
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot store an offline message");
                unavailable()
            }
        }
    }
}
