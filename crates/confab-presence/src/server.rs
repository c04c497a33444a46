//! The running presence role: the notifier of the SIP events framework (RFC 6665) and the
//! event state compositor of PUBLISH (RFC 3903), wired to the Front End's request chain.
//!
//! [`PresenceServer`] owns every subscription and publication of this node in memory
//! (indexed by dialog tag, by resource and by watcher) and durably through
//! [`SubscriptionStore`] / [`PublicationStore`]: a SUBSCRIBE or PUBLISH is answered only
//! after its state is committed. Its chain step ([`PresenceServer::handler`], named
//! `presence`, placed before `router`) answers SUBSCRIBE (new, refresh, unsubscribe, fetch)
//! and PUBLISH addressed to local users; everything else continues down the chain.
//!
//! NOTIFYs are sent by one pump task through the Front End's [`RequestSender`] (client
//! transactions of a worker's transaction layer). The pump wakes at the earliest deadline
//! of the subscriptions' state machines ([`crate::subscription::Subscription`], which also
//! does the RFC 6446 coalescing), groups the due NOTIFYs by resource, computes the
//! resource's state once per group (aggregation for presence, bindings for `reg`, the
//! watcher list for `presence.winfo`) and filters it per watcher by access level
//! ([`crate::access::notify_body`]). So the cost per NOTIFY does not grow with the number
//! of watchers of the resource.
//!
//! After a restart [`PresenceServer::start`] reloads the stored subscriptions and sends
//! each one a NOTIFY with the current state: at once to UDP watchers; to watchers over
//! connection-oriented transports when they have a flow again (their REGISTER over a new
//! connection: [`RegistrationObserver::bindings_changed`]). CSeq numbers and body versions
//! jump by [`RESTART_SEQ_JUMP`] at reload, so they keep increasing for the watcher although
//! they are not written at every NOTIFY.
//!
//! Stored access policies and contact lists reach the subscriptions through
//! [`crate::policies`]; subscriptions to `sip:USER-contacts@DOMAIN` are the resource list
//! server of [`crate::rls`] (hooks here: the list branch of a new SUBSCRIBE, the member index
//! of the registry, the list branch of the notifier).
//!
//! The dialog event package (RFC 4235, busy lamps) is fed by the proxy through
//! [`confab_core::DialogObserver`] ([`PresenceServer::dialog_observer`], attached to
//! INVITEs and BYEs by the `dialog-events` chain step [`PresenceServer::dialog_step`]); the
//! dialog state is in memory ([`crate::dialogs`]) and a confirmed call makes the user "on
//! the phone" in aggregation. Glue in `server/dialog_package.rs`.
//!
//! Partial notification (RFC 5263): a watcher whose SUBSCRIBE `Accept` lists
//! `application/pidf-diff+xml` gets full state first (`pidf-full`), then patches against the
//! last document it answered 2xx to, both cut to its level by
//! [`crate::access::notify_body`]; a failed NOTIFY, a restart or a change of its access
//! level sends full state again. The base documents are in memory only. Per-user PUBLISH
//! and per-watcher SUBSCRIBE rates are limited by token buckets ([`crate::rate`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use confab_core::chain::{Addressed, FlowId, Hop, Outcome, Reply, RequestContext, RequestHandler};
use confab_core::{
    Address, PublicationStore, RegistrationObserver, RegistrationStore, RequestSender, SendOutcome,
    SipTransport, StoreError, StoredPublication, StoredSubscription, SubscriptionStore, Timestamp,
    UserStore,
};
use confab_sip::{HeaderName, Message, Method, RequestBuilder};
use confab_xml::pidf::Presence;
use confab_xml::{reginfo, watcherinfo};
use serde::{Deserialize, Serialize};

use crate::access::{self, AccessLevel};
use crate::aggregate::{self, AggregateConfig, EndpointPublication};
use crate::dialogs::{DialogConfig, DialogTable};
use crate::publication::{
    self, Publication, PublishConfig, PublishError, PublishRequest, Published,
};
use crate::rate::{RateConfig, RateLimiter};
use crate::subscription::{
    EventPackage, Notify, Reason, State, SubscribeError, SubscribeRequest, Subscribed,
    Subscription, SubscriptionConfig,
};

mod dialog_package;
mod limits;

use limits::{accepts_pidf_diff, over_rate, prune_rates};

/// How much CSeq numbers and body versions jump when subscriptions are reloaded after a
/// restart (they are persisted at subscribe and refresh, not at every NOTIFY; the state
/// machine's coalescing keeps the NOTIFYs between two refreshes far below this).
pub const RESTART_SEQ_JUMP: u32 = 1 << 16;

/// The packages this server answers.
pub const SERVED_PACKAGES: [EventPackage; 4] = [
    EventPackage::Presence,
    EventPackage::PresenceWinfo,
    EventPackage::Reg,
    EventPackage::Dialog,
];

/// `Allow-Events` of this server.
pub fn allow_events() -> String {
    SERVED_PACKAGES.map(EventPackage::as_str).join(", ")
}

/// `[presence]` settings (checked by [`PresenceConfig::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Subscriptions (expiry bounds, per-watcher cap, NOTIFY throttle).
    pub subscription: SubscriptionConfig,
    /// PUBLISH expiry bounds.
    pub publish: PublishConfig,
    /// Aggregation.
    pub aggregate: AggregateConfig,
    /// Most publications one user may hold at once (one per device); past it a PUBLISH
    /// gets 503 with Retry-After.
    pub max_publications_per_user: usize,
    /// `Retry-After` seconds on 503 (caps reached, store unavailable).
    pub retry_after_s: u32,
    /// Largest PUBLISH body in bytes (larger: 413). Device documents are a few KiB.
    pub max_publish_bytes: usize,
    /// The dialog package (RFC 4235): how long dialogs are followed.
    pub dialog: DialogConfig,
    /// Rates per publisher and per watcher (503 with Retry-After past them).
    pub rate: RateConfig,
}

/// An invalid `[presence]` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("presence.{key}: {problem}")]
pub struct PresenceConfigError {
    /// The dotted key under `presence`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl PresenceConfig {
    /// Checks the settings once (bounds in order, nothing zero that must not be).
    ///
    /// # Errors
    /// The first invalid setting, naming its key.
    pub fn validate(&self) -> Result<(), PresenceConfigError> {
        let err = |key, problem: String| Err(PresenceConfigError { key, problem });
        let expiry = |key_min, key_default, key_max, min: u32, default: u32, max: u32| {
            if min == 0 {
                return err(key_min, "must be at least 1 second".into());
            }
            if !(min <= default && default <= max) {
                return err(
                    key_default,
                    format!(
                        "must lie between {key_min} ({min}) and {key_max} ({max}), is {default}"
                    ),
                );
            }
            Ok(())
        };
        let s = &self.subscription;
        expiry(
            "subscription.min_expires",
            "subscription.default_expires",
            "subscription.max_expires",
            s.min_expires,
            s.default_expires,
            s.max_expires,
        )?;
        if s.max_per_watcher == 0 {
            return err("subscription.max_per_watcher", "must be at least 1".into());
        }
        let p = &self.publish;
        expiry(
            "publish.min_expires",
            "publish.default_expires",
            "publish.max_expires",
            p.min_expires,
            p.default_expires,
            p.max_expires,
        )?;
        if self.max_publications_per_user == 0 {
            return err("max_publications_per_user", "must be at least 1".into());
        }
        if self.max_publish_bytes < 256 {
            return err(
                "max_publish_bytes",
                format!(
                    "{} is too small for any PIDF document (at least 256)",
                    self.max_publish_bytes
                ),
            );
        }
        if self.retry_after_s == 0 {
            return err("retry_after_s", "must be at least 1".into());
        }
        for (key, l) in [
            ("rate.publish.burst", &self.rate.publish),
            ("rate.subscribe.burst", &self.rate.subscribe),
        ] {
            if l.per_minute > 0 && l.burst == 0 {
                return err(
                    key,
                    "must be at least 1 when the rate is on (per_minute > 0)".into(),
                );
            }
        }
        if self.dialog.setup_timeout_s == 0 {
            return err("dialog.setup_timeout_s", "must be at least 1".into());
        }
        if self.dialog.max_duration_s == 0 {
            return err("dialog.max_duration_s", "must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for PresenceConfig {
    fn default() -> PresenceConfig {
        PresenceConfig {
            subscription: SubscriptionConfig::default(),
            publish: PublishConfig::default(),
            aggregate: AggregateConfig::default(),
            max_publications_per_user: 32,
            retry_after_s: 30,
            max_publish_bytes: 32 * 1024,
            dialog: DialogConfig::default(),
            rate: RateConfig::default(),
        }
    }
}

/// The storage and routing ports the presence server uses.
#[derive(Clone)]
pub struct PresencePorts {
    /// Accounts (a SUBSCRIBE or PUBLISH for an unknown user is 404).
    pub users: Arc<dyn UserStore>,
    /// Bindings (registration state, aggregation, reaching watchers after a restart).
    pub registrations: Arc<dyn RegistrationStore>,
    /// Durable subscriptions.
    pub subscriptions: Arc<dyn SubscriptionStore>,
    /// Durable publications.
    pub publications: Arc<dyn PublicationStore>,
    /// Contact lists and stored access policies (`crate::policies`, `crate::rls`).
    pub contacts: Arc<dyn confab_core::contacts::ContactStore>,
}

impl std::fmt::Debug for PresencePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresencePorts { .. }")
    }
}

/// The dialog of a subscription, notifier side (RFC 3261 §12 as UAS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DialogState {
    pub(crate) call_id: String,
    /// Ours (the To tag of our 200): also the subscription id.
    pub(crate) local_tag: String,
    pub(crate) remote_tag: String,
    /// The To URI of the SUBSCRIBE (our From in NOTIFY).
    pub(crate) local_uri: String,
    /// The From URI of the SUBSCRIBE (To of NOTIFY).
    pub(crate) remote_uri: String,
    /// The subscriber's Contact URI (Request-URI of NOTIFY).
    pub(crate) target: String,
    /// Record-Route of the SUBSCRIBE, in order (Route of NOTIFY).
    pub(crate) route: Vec<String>,
    /// Our CSeq (last used).
    pub(crate) cseq: u32,
    /// The `id` parameter of the Event header.
    pub(crate) event_id: Option<String>,
    /// Our Contact.
    pub(crate) contact: String,
}

/// One subscription with everything needed to notify.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sub {
    pub(crate) sub: Subscription,
    pub(crate) dialog: DialogState,
    pub(crate) transport: SipTransport,
    pub(crate) remote: SocketAddr,
    /// Whether the watcher was authenticated (watcher is then an address).
    pub(crate) authenticated: bool,
    pub(crate) level: AccessLevel,
    /// The watcher accepts `application/pidf-diff+xml` (RFC 5263 partial notification).
    #[serde(default)]
    pub(crate) partial: bool,
    /// With `partial`: the (unfiltered) document of the last NOTIFY the watcher took (2xx),
    /// the base of the next patch; `None` sends full state (first NOTIFY, after a failed
    /// one, after a restart).
    #[serde(skip)]
    pub(crate) last_sent: Option<Arc<Presence>>,
    #[serde(skip)]
    pub(crate) flow: Option<FlowId>,
    #[serde(skip)]
    pub(crate) in_flight: bool,
    #[serde(skip)]
    pub(crate) awaiting_flow: bool,
    /// Only a fetch: never stored.
    #[serde(skip)]
    pub(crate) ephemeral: bool,
    /// A resource-list subscription (RFC 4662, `crate::rls`): the list's own state.
    #[serde(default)]
    pub(crate) list: Option<crate::rls::ListState>,
}

impl Sub {
    pub(crate) fn hop(&self) -> Hop {
        Hop {
            transport: self.transport,
            remote: self.remote,
            flow: self.flow,
            server_name: None,
        }
    }

    pub(crate) fn stored(&self) -> Result<StoredSubscription, StoreError> {
        let data = serde_json::to_vec(self).map_err(|e| StoreError::Invalid {
            field: "subscription",
            message: e.to_string(),
        })?;
        Ok(StoredSubscription {
            id: self.dialog.local_tag.clone(),
            package: self.sub.package.as_str().to_owned(),
            watcher: self.sub.watcher.clone(),
            resource: self.sub.resource.clone(),
            expires_at: self.sub.expires_at,
            data,
        })
    }
}

/// A publication with its parsed document.
#[derive(Debug, Clone)]
struct Pub {
    publication: Publication,
    endpoint: EndpointPublication,
    /// The publisher's flow (`transport:ip:port`): one device, one publication, and the
    /// registration over the same flow is the same device.
    source: Option<String>,
}

/// What the store keeps of a publication.
#[derive(Debug, Serialize, Deserialize)]
struct StoredPub {
    #[serde(flatten)]
    publication: Publication,
    #[serde(default)]
    source: Option<String>,
}

fn flow_key(transport: SipTransport, remote: SocketAddr) -> String {
    format!("{}:{remote}", transport.as_str())
}

/// The subscription ids of one resource, by event package. A change of one package walks
/// only that package's subscriptions: a new watcher changes the resource's `presence.winfo`,
/// which must not visit (nor copy the ids of) its 10,000 `presence` subscriptions.
#[derive(Debug, Default)]
pub(crate) struct ResourceSubs {
    by_package: Vec<(EventPackage, Vec<String>)>,
}

impl ResourceSubs {
    pub(crate) fn ids(&self, package: EventPackage) -> &[String] {
        self.by_package
            .iter()
            .find(|(p, _)| *p == package)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    fn push(&mut self, package: EventPackage, id: String) {
        match self.by_package.iter_mut().find(|(p, _)| *p == package) {
            Some((_, v)) => v.push(id),
            None => self.by_package.push((package, vec![id])),
        }
    }

    fn remove(&mut self, package: EventPackage, id: &str) {
        if let Some((_, v)) = self.by_package.iter_mut().find(|(p, _)| *p == package) {
            v.retain(|x| x != id);
        }
        self.by_package.retain(|(_, v)| !v.is_empty());
    }

    fn is_empty(&self) -> bool {
        self.by_package.is_empty()
    }
}

/// Every id, whatever the package.
impl<'a> IntoIterator for &'a ResourceSubs {
    type Item = &'a String;
    type IntoIter = Box<dyn Iterator<Item = &'a String> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.by_package.iter().flat_map(|(_, v)| v))
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    /// Boxed: a `Sub` is 416 bytes, and a map of 100,000 sits in 131,072 buckets (hashbrown's
    /// load factor), so unboxed the empty buckets alone cost about 130 bytes per
    /// subscription; boxed a bucket is 32 bytes.
    pub(crate) subs: HashMap<String, Box<Sub>>,
    pub(crate) by_resource: HashMap<String, ResourceSubs>,
    pub(crate) by_watcher: HashMap<String, usize>,
    pub(crate) timers: BinaryHeap<Reverse<(i64, String)>>,
    pubs: HashMap<String, Vec<Pub>>,
    /// List subscriptions by member (`crate::rls`).
    pub(crate) lists: crate::rls::ListIndex,
}

impl Registry {
    pub(crate) fn arm(&mut self, id: &str) {
        if let Some(t) = self.subs.get(id).and_then(|s| s.sub.poll_timeout()) {
            self.timers.push(Reverse((t.as_millis(), id.to_owned())));
        }
    }

    pub(crate) fn insert(&mut self, s: Sub) {
        let id = s.dialog.local_tag.clone();
        self.by_resource
            .entry(s.sub.resource.clone())
            .or_default()
            .push(s.sub.package, id.clone());
        *self.by_watcher.entry(s.sub.watcher.clone()).or_default() += 1;
        self.lists.insert(&id, &s);
        self.subs.insert(id.clone(), Box::new(s));
        self.arm(&id);
    }

    fn remove(&mut self, id: &str) -> Option<Sub> {
        let s = *self.subs.remove(id)?;
        self.lists.remove(id, &s);
        if let Some(v) = self.by_resource.get_mut(&s.sub.resource) {
            v.remove(s.sub.package, id);
            if v.is_empty() {
                self.by_resource.remove(&s.sub.resource);
            }
        }
        if let Some(n) = self.by_watcher.get_mut(&s.sub.watcher) {
            *n -= 1;
            if *n == 0 {
                self.by_watcher.remove(&s.sub.watcher);
            }
        }
        Some(s)
    }

    /// The resource's state changed: its subscriptions of `package` owe a NOTIFY.
    pub(crate) fn changed(&mut self, resource: &str, package: EventPackage, now: Timestamp) {
        if package == EventPackage::Presence {
            // Resource lists showing it (`crate::rls`), whether or not it has direct watchers.
            self.member_changed(resource, now);
        }
        let Some(subs) = self.by_resource.get(resource) else {
            return;
        };
        for id in subs.ids(package) {
            if let Some(s) = self.subs.get_mut(id) {
                s.sub.handle_change(now);
                if let Some(t) = s.sub.poll_timeout() {
                    self.timers.push(Reverse((t.as_millis(), id.clone())));
                }
            }
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: PresenceConfig,
    pub(crate) ports: PresencePorts,
    pub(crate) sender: OnceLock<Arc<dyn RequestSender>>,
    pub(crate) state: Mutex<Registry>,
    pub(crate) wake: tokio::sync::Notify,
    /// Stored contacts and access policies, per user (`crate::policies`).
    pub(crate) policies: crate::policies::PolicyCache,
    /// The users' INVITE dialogs (in memory: calls do not survive a restart either).
    pub(crate) dialogs: Mutex<DialogTable>,
    /// PUBLISH rate per user, SUBSCRIBE rate per watcher (in memory).
    pub(crate) rates: Mutex<(RateLimiter, RateLimiter)>,
}

/// The presence role of one node. Cheap to clone.
#[derive(Clone)]
pub struct PresenceServer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PresenceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceServer").finish_non_exhaustive()
    }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

pub(crate) fn random_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub(crate) fn lock(m: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Subscriptions held (fetches in progress included).
    pub subscriptions: usize,
    /// Subscriptions waiting for their watcher's flow.
    pub awaiting_flow: usize,
    /// Unexpired publications.
    pub publications: usize,
}

impl PresenceServer {
    /// Loads the stored publications and subscriptions (dropping expired ones) and returns
    /// the server. Call [`PresenceServer::start`] once the Front End's sender exists.
    ///
    /// # Errors
    /// The store error when the state cannot be read.
    pub async fn load(
        config: PresenceConfig,
        ports: PresencePorts,
    ) -> Result<PresenceServer, StoreError> {
        let t = now();
        let _ = ports.subscriptions.remove_expired_subscriptions(t).await;
        let _ = ports.publications.remove_expired_publications(t).await;
        let mut state = Registry::default();
        for p in ports.publications.load_publications(t).await? {
            let StoredPub {
                publication,
                source,
            } = match serde_json::from_slice(&p.data) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(etag = %p.etag, error = %e, "stored publication unreadable; dropped");
                    continue;
                }
            };
            match publication.to_endpoint() {
                Ok(endpoint) => state.pubs.entry(p.resource).or_default().push(Pub {
                    publication,
                    endpoint,
                    source,
                }),
                Err(e) => {
                    tracing::warn!(etag = %p.etag, error = %e, "stored publication unreadable; dropped");
                }
            }
        }
        let mut restored = 0usize;
        for s in ports.subscriptions.load_subscriptions(t).await? {
            let mut sub: Sub = match serde_json::from_slice(&s.data) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(id = %s.id, error = %e, "stored subscription unreadable; dropped");
                    continue;
                }
            };
            sub.dialog.cseq = sub.dialog.cseq.wrapping_add(RESTART_SEQ_JUMP);
            sub.sub.next_version = sub.sub.next_version.wrapping_add(RESTART_SEQ_JUMP);
            sub.sub.handle_restart(t);
            // A connection-oriented watcher is reachable only over a flow it opens again.
            sub.awaiting_flow = sub.transport.is_connection();
            state.insert(sub);
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(subscriptions = restored, "subscriptions restored");
        }
        let server = PresenceServer {
            inner: Arc::new(Inner {
                config,
                ports,
                sender: OnceLock::new(),
                state: Mutex::new(state),
                wake: tokio::sync::Notify::new(),
                policies: crate::policies::PolicyCache::default(),
                dialogs: Mutex::new(DialogTable::new()),
                rates: Mutex::new((RateLimiter::new(), RateLimiter::new())),
            }),
        };
        crate::policies::relevel_all(&server.inner).await;
        Ok(server)
    }

    /// The chain step (`presence`) to insert before `router`.
    pub fn handler(&self) -> Arc<dyn RequestHandler> {
        Arc::new(PresenceHandler {
            server: self.clone(),
        })
    }

    /// The registrar's signal (give it to the Front End).
    pub fn registration_observer(&self) -> Arc<dyn RegistrationObserver> {
        Arc::new(self.clone())
    }

    /// Starts notifying through `sender` (the Front End's): spawns the pump and the
    /// expiry sweep on the current tokio runtime, and tries to reach restored watchers
    /// over connection-oriented transports through their current bindings.
    pub fn start(&self, sender: Arc<dyn RequestSender>) {
        if self.inner.sender.set(sender).is_err() {
            return;
        }
        tokio::spawn(pump(self.inner.clone()));
        tokio::spawn(sweep(self.inner.clone()));
        tokio::spawn(crate::policies::watch(self.inner.clone()));
        let watchers: Vec<String> = {
            let st = lock(&self.inner.state);
            let mut w: Vec<String> = st
                .subs
                .values()
                .filter(|s| s.awaiting_flow)
                .map(|s| s.sub.watcher.clone())
                .collect();
            w.sort();
            w.dedup();
            w
        };
        for w in watchers {
            if let Ok(a) = Address::parse(&w) {
                let inner = self.inner.clone();
                tokio::spawn(async move { reach_watcher(&inner, &a).await });
            }
        }
    }

    /// Counters.
    pub fn stats(&self) -> PresenceStats {
        let st = lock(&self.inner.state);
        PresenceStats {
            subscriptions: st.subs.len(),
            awaiting_flow: st.subs.values().filter(|s| s.awaiting_flow).count(),
            publications: st.pubs.values().map(Vec::len).sum(),
        }
    }

    /// The current presence document of `user` (aggregated, unfiltered), as a personal
    /// watcher would see it.
    pub async fn document(&self, user: &Address) -> Presence {
        presence_state(&self.inner, user.as_str()).await
    }
}

impl RegistrationObserver for PresenceServer {
    fn bindings_changed(&self, aor: &Address) {
        {
            let mut st = lock(&self.inner.state);
            let t = now();
            st.changed(aor.as_str(), EventPackage::Reg, t);
            st.changed(aor.as_str(), EventPackage::Presence, t);
        }
        self.inner.wake.notify_one();
        let waiting = lock(&self.inner.state)
            .subs
            .values()
            .any(|s| s.awaiting_flow && s.sub.watcher == aor.as_str());
        if waiting && self.inner.sender.get().is_some() {
            let inner = self.inner.clone();
            let aor = aor.clone();
            tokio::spawn(async move { reach_watcher(&inner, &aor).await });
        }
    }
}

/// Finds a flow to `watcher` for its subscriptions that wait for one (after a restart or
/// a closed connection): the binding with the subscription's contact, else any binding
/// over an open flow of this node with the same transport.
async fn reach_watcher(inner: &Arc<Inner>, watcher: &Address) {
    let Some(sender) = inner.sender.get() else {
        return;
    };
    let bindings = match inner.ports.registrations.lookup(watcher, now()).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, %watcher, "binding lookup failed");
            return;
        }
    };
    let mut st = lock(&inner.state);
    let ids: Vec<String> = st
        .subs
        .iter()
        .filter(|(_, s)| s.awaiting_flow && s.sub.watcher == watcher.as_str())
        .map(|(id, _)| id.clone())
        .collect();
    let t = now();
    for id in ids {
        let Some(s) = st.subs.get_mut(&id) else {
            continue;
        };
        let chosen = bindings
            .iter()
            .filter(|b| b.flow.transport == s.transport)
            .filter_map(|b| sender.hop_for_flow(&b.flow).map(|h| (b, h)))
            .max_by_key(|(b, _)| b.contact == s.dialog.target);
        if let Some((_, hop)) = chosen {
            s.remote = hop.remote;
            s.flow = hop.flow;
            s.awaiting_flow = false;
            s.sub.handle_restart(t);
            st.arm(&id);
            tracing::debug!(id, "watcher reachable again");
        }
    }
    drop(st);
    inner.wake.notify_one();
}

/// One NOTIFY to build and send.
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) notify: Notify,
    pub(crate) dialog: DialogState,
    pub(crate) hop: Hop,
    pub(crate) package: EventPackage,
    pub(crate) resource: String,
    pub(crate) level: AccessLevel,
    /// RFC 5263: the base of a patch (`None`: full state), when the watcher takes pidf-diff.
    pub(crate) partial: Option<Option<Arc<Presence>>>,
    /// The presence document this NOTIFY carries (kept as the next base once taken).
    pub(crate) sent: Option<Arc<Presence>>,
}

async fn pump(inner: Arc<Inner>) {
    loop {
        let (jobs, next) = {
            let mut st = lock(&inner.state);
            let t = now();
            let mut jobs: Vec<Job> = Vec::new();
            while let Some(Reverse((at, _))) = st.timers.peek() {
                if *at > t.as_millis() {
                    break;
                }
                let Some(Reverse((_, id))) = st.timers.pop() else {
                    break;
                };
                let Some(s) = st.subs.get_mut(&id) else {
                    continue;
                };
                s.sub.handle_timeout(t);
                if s.in_flight || s.awaiting_flow {
                    continue;
                }
                if let Some(notify) = s.sub.poll_notify(t) {
                    s.dialog.cseq = s.dialog.cseq.wrapping_add(1);
                    s.in_flight = true;
                    jobs.push(Job {
                        id: id.clone(),
                        notify,
                        dialog: s.dialog.clone(),
                        hop: s.hop(),
                        package: s.sub.package,
                        resource: s.sub.resource.clone(),
                        level: s.level,
                        partial: s.partial.then(|| s.last_sent.clone()),
                        sent: None,
                    });
                } else {
                    st.arm(&id);
                }
            }
            // Expired subscriptions waiting for a flow never get their NOTIFY: drop them.
            let next = st.timers.peek().map(|Reverse((at, _))| *at);
            (jobs, next)
        };
        if !jobs.is_empty() {
            let mut groups: HashMap<(EventPackage, String), Vec<Job>> = HashMap::new();
            for j in jobs {
                groups
                    .entry((j.package, j.resource.clone()))
                    .or_default()
                    .push(j);
            }
            for ((package, resource), jobs) in groups {
                let inner = inner.clone();
                tokio::spawn(async move { notify_group(inner, package, resource, jobs).await });
            }
        }
        let sleep = match next {
            Some(at) => {
                let ms = (at - now().as_millis()).clamp(0, 3_600_000);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            }
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = inner.wake.notified() => {}
        }
    }
}

/// Removes expired publications (notifying the watchers of their users) every second.
async fn sweep(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = now();
        dialog_package::sweep(&inner, t);
        prune_rates(&inner, t);
        let expired = {
            let mut st = lock(&inner.state);
            let mut gone: Vec<String> = Vec::new();
            let mut resources = Vec::new();
            for (r, v) in &mut st.pubs {
                let before = v.len();
                v.retain(|p| {
                    let live = p.publication.expires_at > t;
                    if !live {
                        gone.push(p.publication.etag.clone());
                    }
                    live
                });
                if v.len() != before {
                    resources.push(r.clone());
                }
            }
            st.pubs.retain(|_, v| !v.is_empty());
            for r in &resources {
                st.changed(r, EventPackage::Presence, t);
            }
            gone
        };
        if !expired.is_empty() {
            inner.wake.notify_one();
            for e in expired {
                if let Err(err) = inner.ports.publications.remove_publication(&e).await {
                    tracing::debug!(error = %err, "expired publication not removed");
                }
            }
        }
    }
}

/// What a resource's NOTIFYs carry, computed once per group.
enum GroupState {
    Presence(Arc<Presence>),
    Reg(Vec<confab_core::Binding>),
    Winfo(Vec<watcherinfo::Watcher>),
    Dialog(Box<confab_xml::dialog_info::DialogInfo>),
}

pub(crate) async fn presence_state(inner: &Inner, resource: &str) -> Presence {
    let entity = format!("sip:{resource}");
    let t = now();
    let (publications, sources): (Vec<EndpointPublication>, Vec<String>) = lock(&inner.state)
        .pubs
        .get(resource)
        .map(|v| {
            (
                v.iter().map(|p| p.endpoint.clone()).collect(),
                v.iter().filter_map(|p| p.source.clone()).collect(),
            )
        })
        .unwrap_or_default();
    // A registration over the flow a publication came on is that publisher's device: it
    // is covered by the publication (aggregation rule 2), whatever its Contact says.
    let registrations: Vec<aggregate::Registration> = match Address::parse(resource) {
        Ok(a) => match inner.ports.registrations.lookup(&a, t).await {
            Ok(b) => b
                .iter()
                .filter(|b| !sources.contains(&flow_key(b.flow.transport, b.flow.source)))
                .map(aggregate::Registration::from)
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "binding lookup failed; aggregating without");
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    };
    aggregate::aggregate(
        &aggregate::AggregateInput {
            entity: &entity,
            publications: &publications,
            registrations: &registrations,
            on_the_phone: dialog_package::on_the_phone(inner, resource),
            manual: None,
            now: t,
        },
        &inner.config.aggregate,
    )
    .document
}

async fn group_state(inner: &Inner, package: EventPackage, resource: &str) -> GroupState {
    match package {
        EventPackage::Reg => {
            let b = match Address::parse(resource) {
                Ok(a) => inner
                    .ports
                    .registrations
                    .lookup(&a, now())
                    .await
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            GroupState::Reg(b)
        }
        EventPackage::PresenceWinfo => {
            let st = lock(&inner.state);
            let t = now();
            let watchers = st
                .by_resource
                .get(resource)
                .into_iter()
                .flatten()
                .filter_map(|id| st.subs.get(id))
                .filter(|s| s.sub.package == EventPackage::Presence && !s.ephemeral)
                .map(|s| watcher_entry(s, t))
                .collect();
            GroupState::Winfo(watchers)
        }
        EventPackage::Dialog => {
            GroupState::Dialog(Box::new(dialog_package::document(inner, resource)))
        }
        _ => GroupState::Presence(Arc::new(presence_state(inner, resource).await)),
    }
}

fn watcher_entry(s: &Sub, t: Timestamp) -> watcherinfo::Watcher {
    use watcherinfo::{WatcherEvent, WatcherStatus};
    let (status, event) = match s.sub.state() {
        State::Pending => (WatcherStatus::Pending, WatcherEvent::Subscribe),
        State::Active => (WatcherStatus::Active, WatcherEvent::Approved),
        State::Terminated(r) => (
            WatcherStatus::Terminated,
            match r {
                Reason::Rejected => WatcherEvent::Rejected,
                Reason::Deactivated => WatcherEvent::Deactivated,
                Reason::Probation => WatcherEvent::Probation,
                Reason::Giveup => WatcherEvent::Giveup,
                Reason::Noresource | Reason::Invariant => WatcherEvent::Noresource,
                Reason::Timeout => WatcherEvent::Timeout,
            },
        ),
    };
    let secs = |ms: i64| u32::try_from(ms.max(0) / 1000).unwrap_or(u32::MAX);
    watcherinfo::Watcher {
        id: s.dialog.local_tag.clone(),
        status,
        event,
        uri: if s.authenticated {
            format!("sip:{}", s.sub.watcher)
        } else {
            s.sub.watcher.clone()
        },
        display_name: None,
        expiration: Some(secs(s.sub.expires_at.as_millis() - t.as_millis())),
        duration_subscribed: Some(secs(t.as_millis() - s.sub.created_at.as_millis())),
        lang: None,
    }
}

fn body_for(
    state: &GroupState,
    job: &Job,
    resource: &str,
    cache: &mut HashMap<AccessLevel, bytes::Bytes>,
) -> (&'static str, bytes::Bytes) {
    match state {
        GroupState::Presence(doc) if job.partial.is_some() => {
            // RFC 5263: full state first (and after a failed NOTIFY), then patches against
            // the last document the watcher took, both cut to the watcher's level.
            let previous = job.partial.as_ref().and_then(Option::as_deref);
            let (ct, body) =
                access::notify_body(doc, previous, job.level, true, job.notify.version);
            (ct, bytes::Bytes::from(body))
        }
        GroupState::Presence(doc) => {
            let body = cache
                .entry(job.level)
                .or_insert_with(|| {
                    bytes::Bytes::from(access::notify_body(doc, None, job.level, false, 0).1)
                })
                .clone();
            (confab_xml::pidf::CONTENT_TYPE, body)
        }
        GroupState::Reg(bindings) => {
            let t = now();
            let aor = format!("sip:{resource}");
            let contacts = bindings
                .iter()
                .map(|b| reginfo::Contact {
                    id: format!("{:08x}", fnv(b.contact.as_bytes())),
                    state: "active".to_owned(),
                    event: "registered".to_owned(),
                    expires: Some(b.expires_in(t)),
                    q: b.q.map(|q| q.to_string()),
                    call_id: Some(b.call_id.clone()),
                    cseq: Some(b.cseq),
                    uri: b.contact.clone(),
                })
                .collect::<Vec<_>>();
            let doc = reginfo::RegInfo {
                version: job.notify.version,
                full: true,
                registrations: vec![reginfo::Registration {
                    aor,
                    id: format!("{:08x}", fnv(resource.as_bytes())),
                    state: if contacts.is_empty() {
                        "init"
                    } else {
                        "active"
                    }
                    .to_owned(),
                    contacts,
                }],
            };
            (reginfo::CONTENT_TYPE, bytes::Bytes::from(doc.to_bytes()))
        }
        GroupState::Dialog(doc) => {
            let (ct, body) = dialog_package::body(doc, job.notify.version, job.level);
            (ct, bytes::Bytes::from(body))
        }
        GroupState::Winfo(watchers) => {
            let doc = watcherinfo::WatcherInfo {
                version: job.notify.version,
                state: watcherinfo::State::Full,
                lists: vec![watcherinfo::WatcherList {
                    resource: format!("sip:{resource}"),
                    package: "presence".to_owned(),
                    watchers: watchers.clone(),
                }],
            };
            (
                watcherinfo::CONTENT_TYPE,
                bytes::Bytes::from(doc.to_bytes()),
            )
        }
    }
}

pub(crate) fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5_u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}

async fn notify_group(inner: Arc<Inner>, package: EventPackage, resource: String, jobs: Vec<Job>) {
    if crate::rls::is_list_group(&inner, &jobs) {
        return crate::rls::notify_list_group(inner, jobs).await;
    }
    let needs_state = jobs.iter().any(|j| j.notify.with_state);
    let state = if needs_state {
        Some(group_state(&inner, package, &resource).await)
    } else {
        None
    };
    let mut cache = HashMap::new();
    let Some(sender) = inner.sender.get().cloned() else {
        return;
    };
    for mut job in jobs {
        let body = match (&state, job.notify.with_state) {
            (Some(s), true) => Some(body_for(s, &job, &resource, &mut cache)),
            _ => None,
        };
        if let (Some(GroupState::Presence(doc)), true) = (&state, job.notify.with_state) {
            job.sent = Some(doc.clone());
        }
        let request = match build_notify(&job, body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, id = %job.id, "cannot build NOTIFY; subscription dropped");
                finish(&inner, &job.id, true).await;
                continue;
            }
        };
        let sender = sender.clone();
        let inner = inner.clone();
        tokio::spawn(async move {
            let outcome = sender.send_request(request, job.hop.clone()).await;
            on_notify_outcome(&inner, &job, &outcome).await;
        });
    }
}

/// The NOTIFY of `job`'s dialog without a body (shared by the resource-list notifier,
/// which adds `Require: eventlist` and its multipart body).
pub(crate) fn notify_builder(job: &Job) -> RequestBuilder {
    let d = &job.dialog;
    let mut event = job.package.as_str().to_owned();
    if let Some(id) = &d.event_id {
        event.push_str(";id=");
        event.push_str(id);
    }
    // The Front End replaces this Via with its own (listener address, fresh branch).
    let mut b = RequestBuilder::new(Method::Notify, &d.target)
        .via("SIP/2.0/UDP 0.0.0.0;branch=z9hG4bKconfabnotify")
        .from(&format!("<{}>;tag={}", d.local_uri, d.local_tag))
        .to(&format!("<{}>;tag={}", d.remote_uri, d.remote_tag))
        .call_id(&d.call_id)
        .header(HeaderName::CSeq, &format!("{} NOTIFY", d.cseq))
        .contact(&d.contact)
        .header(HeaderName::Event, &event)
        .header(
            HeaderName::SubscriptionState,
            &job.notify.subscription_state,
        );
    for r in &d.route {
        b = b.route(r);
    }
    b
}

fn build_notify(
    job: &Job,
    body: Option<(&'static str, bytes::Bytes)>,
) -> Result<Message, confab_sip::BuildError> {
    let mut b = notify_builder(job);
    if let Some((ct, bytes)) = body {
        // A body shared by the watchers of one level: cloning `Bytes` copies no data.
        b = b.body(ct, bytes);
    }
    b.build()
}

/// After the final NOTIFY, or when the watcher is gone: forget the subscription.
pub(crate) async fn finish(inner: &Inner, id: &str, remove_stored: bool) {
    let removed = lock(&inner.state).remove(id);
    if let Some(s) = removed {
        if remove_stored
            && !s.ephemeral
            && let Err(e) = inner.ports.subscriptions.remove_subscription(id).await
        {
            tracing::warn!(error = %e, id, "ended subscription not removed from the store");
        }
        if s.sub.package == EventPackage::Presence && !s.ephemeral {
            lock(&inner.state).changed(&s.sub.resource, EventPackage::PresenceWinfo, now());
            inner.wake.notify_one();
        }
    }
}

pub(crate) async fn on_notify_outcome(inner: &Arc<Inner>, job: &Job, outcome: &SendOutcome) {
    let status = outcome.status();
    // RFC 6665 §4.2.2: a 481, a timeout (408 or no answer) ends the subscription; so does
    // the final NOTIFY, whatever its answer.
    let gone = matches!(status, Some(481 | 408)) || matches!(outcome, SendOutcome::Timeout);
    if job.notify.is_final || gone {
        if gone && !job.notify.is_final {
            tracing::debug!(id = %job.id, ?status, "watcher gone; subscription removed");
        }
        finish(inner, &job.id, true).await;
        return;
    }
    let watcher = {
        let mut st = lock(&inner.state);
        let Some(s) = st.subs.get_mut(&job.id) else {
            return;
        };
        s.in_flight = false;
        if s.partial {
            // The next patch is against what the watcher took; anything else resends full
            // state.
            match status {
                Some(200..=299) if job.sent.is_some() => s.last_sent.clone_from(&job.sent),
                Some(200..=299) => {}
                _ => s.last_sent = None,
            }
        }
        let w = match outcome {
            SendOutcome::TransportError | SendOutcome::Refused if s.transport.is_connection() => {
                // The connection is gone: wait until the watcher has a flow again, then send
                // the current state (RFC 5626 §4.4 flow recovery).
                s.awaiting_flow = true;
                s.flow = None;
                s.sub.handle_restart(now());
                Some(s.sub.watcher.clone())
            }
            SendOutcome::TransportError | SendOutcome::Refused => {
                // UDP: the state is owed again; retry after the throttle interval.
                s.sub.handle_change(now());
                None
            }
            _ => None,
        };
        st.arm(&job.id);
        w
    };
    inner.wake.notify_one();
    if let Some(w) = watcher
        && let Ok(a) = Address::parse(&w)
    {
        reach_watcher(inner, &a).await;
    }
}

// ---- the chain step ----------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct PresenceHandler {
    server: PresenceServer,
}

pub(crate) fn reply(status: u16, reason: impl Into<String>) -> Reply {
    // A reason phrase is one line of text.
    let r: String = reason
        .into()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    Reply::with_reason(status, r)
}

fn header_str(msg: &Message, name: HeaderName) -> Option<&str> {
    msg.get(name).and_then(|h| h.value_str()).map(str::trim)
}

#[async_trait]
impl RequestHandler for PresenceHandler {
    fn name(&self) -> &'static str {
        "presence"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        match ctx.method() {
            Some(Method::Subscribe) => self.subscribe(ctx).await,
            Some(Method::Publish) => self.publish(ctx).await,
            _ => Outcome::Continue,
        }
    }
}

impl PresenceHandler {
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.server.inner
    }

    async fn subscribe(&self, ctx: &mut RequestContext) -> Outcome {
        if let Some(r) = over_rate(self.inner(), ctx, false) {
            return Outcome::Respond(r);
        }
        if ctx.in_dialog {
            return self.refresh(ctx).await;
        }
        let Addressed::LocalUser(resource) = ctx.addressed.clone() else {
            return Outcome::Continue;
        };
        Outcome::Respond(self.new_subscription(ctx, &resource).await)
    }

    async fn new_subscription(&self, ctx: &RequestContext, resource: &Address) -> Reply {
        let inner = self.inner();
        let req = &ctx.request;
        let event = match req.event() {
            Some(Ok(e)) => e,
            Some(Err(_)) => return reply(400, "Malformed Event header"),
            None => {
                // RFC 6665 §8.2.1: no Event header is `presence`... only for RFC 3265
                // compatibility; we require it.
                return reply(489, "Bad Event: missing Event header")
                    .header("Allow-Events", allow_events());
            }
        };
        let package = match EventPackage::from_event_header(event.package) {
            Some(p) if SERVED_PACKAGES.contains(&p) => p,
            _ => {
                return reply(489, "Bad Event").header("Allow-Events", allow_events());
            }
        };
        let expires = match req.expires() {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return reply(400, "Malformed Expires header"),
        };
        let (remote_uri, remote_tag) = match req.from() {
            Some(Ok(f)) => match f.tag() {
                Some(t) => (f.uri_str.to_owned(), t.to_owned()),
                None => return reply(400, "From header without tag"),
            },
            _ => return reply(400, "Malformed From header"),
        };
        let local_uri = match req.to() {
            Some(Ok(t)) => t.uri_str.to_owned(),
            _ => return reply(400, "Malformed To header"),
        };
        let call_id = match req.call_id() {
            Some(Ok(c)) => c.to_owned(),
            _ => return reply(400, "Malformed Call-ID header"),
        };
        let target = match req.contacts().next() {
            Some(Ok(c)) => match c.addr() {
                Some(a) => a.addr.uri_str.to_owned(),
                None => return reply(400, "Contact * in SUBSCRIBE"),
            },
            _ => return reply(400, "SUBSCRIBE without a valid Contact"),
        };
        let route: Vec<String> = req
            .values(HeaderName::RecordRoute)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .map(|v| v.trim().to_owned())
            .collect();
        match inner.ports.users.get_user(resource).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                // RFC 4662: `sip:USER-contacts@DOMAIN` is USER's contact list (`crate::rls`).
                if let Some(owner) = crate::rls::existing_owner(inner, resource).await {
                    let dialog = DialogState {
                        call_id,
                        local_tag: random_tag(),
                        remote_tag,
                        local_uri,
                        remote_uri,
                        target,
                        route,
                        cseq: 0,
                        event_id: event.id().map(str::to_owned),
                        contact: our_contact(ctx),
                    };
                    return crate::rls::subscribe_list(inner, ctx, owner, package, expires, dialog)
                        .await;
                }
                return reply(404, "Not Found");
            }
            Err(e) => {
                tracing::warn!(error = %e, "user lookup failed");
                return unavailable(inner);
            }
        }
        let watcher_addr = ctx.identity.as_ref().map(|i| i.address.clone());
        // Registration state and watcher information are the user's own business.
        if matches!(package, EventPackage::Reg | EventPackage::PresenceWinfo)
            && watcher_addr.as_ref() != Some(resource)
            && !ctx.trusted
        {
            return reply(403, "Only the user may watch this package");
        }
        // The user's stored policy and contacts (`crate::policies`); RFC 3857 pending
        // watchers see no state until the user decides.
        let settings = inner
            .policies
            .get(&*inner.ports.contacts, resource.as_str())
            .await;
        let authorized = !crate::policies::levelled(package)
            || matches!(
                access::authorize(watcher_addr.as_ref(), resource, &settings.policy),
                access::Authorization::Accept(_)
            );
        let level = access::access_level(watcher_addr.as_ref(), resource, &settings.policy);
        let watcher = watcher_addr
            .as_ref()
            .map_or_else(|| remote_uri.clone(), |a| a.as_str().to_owned());
        let t = Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX));
        let existing = lock(&inner.state)
            .by_watcher
            .get(&watcher)
            .copied()
            .unwrap_or(0);
        let (subscription, outcome) = match Subscription::handle_subscribe(
            &SubscribeRequest {
                event: package.as_str(),
                expires,
            },
            &watcher,
            resource.as_str(),
            authorized,
            existing,
            t,
            &inner.config.subscription,
        ) {
            Ok(x) => x,
            Err(e) => return subscribe_error(inner, &e),
        };
        let local_tag = random_tag();
        let contact = our_contact(ctx);
        let sub = Sub {
            sub: subscription,
            dialog: DialogState {
                call_id,
                local_tag: local_tag.clone(),
                remote_tag,
                local_uri,
                remote_uri,
                target,
                route,
                cseq: 0,
                event_id: event.id().map(str::to_owned),
                contact: contact.clone(),
            },
            transport: ctx.source.hop.transport,
            remote: ctx.source.hop.remote,
            authenticated: watcher_addr.is_some(),
            level,
            partial: package == EventPackage::Presence && accepts_pidf_diff(req),
            last_sent: None,
            flow: ctx.source.hop.flow,
            in_flight: false,
            awaiting_flow: false,
            ephemeral: matches!(outcome, Subscribed::Ended),
            list: None,
        };
        let expires = match outcome {
            Subscribed::Kept { expires } => {
                // Durable before acknowledged.
                let stored = match sub.stored() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "subscription not serializable");
                        return reply(500, "Server Internal Error");
                    }
                };
                if let Err(e) = inner.ports.subscriptions.put_subscription(stored).await {
                    tracing::warn!(error = %e, "subscription not stored");
                    return unavailable(inner);
                }
                expires
            }
            Subscribed::Ended => 0,
        };
        {
            let mut st = lock(&inner.state);
            st.insert(sub);
            if package == EventPackage::Presence && expires > 0 {
                st.changed(resource.as_str(), EventPackage::PresenceWinfo, t);
            }
        }
        inner.wake.notify_one();
        Reply::new(200)
            .with_to_tag(local_tag)
            .header("Expires", expires.to_string())
            .header("Contact", contact)
    }

    async fn refresh(&self, ctx: &mut RequestContext) -> Outcome {
        let inner = self.inner();
        let req = &ctx.request;
        let to_tag = req
            .to()
            .and_then(Result::ok)
            .and_then(|t| t.tag().map(str::to_owned));
        let call_id = req.call_id().and_then(Result::ok).map(str::to_owned);
        let from_tag = req
            .from()
            .and_then(Result::ok)
            .and_then(|f| f.tag().map(str::to_owned));
        let (Some(to_tag), Some(call_id)) = (to_tag, call_id) else {
            return Outcome::Continue;
        };
        let expires = match req.expires() {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return Outcome::Respond(reply(400, "Malformed Expires header")),
        };
        let t = Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX));
        let result = {
            let mut st = lock(&inner.state);
            let Some(s) = st.subs.get_mut(&to_tag) else {
                drop(st);
                // Not one of our dialogs: a request routed through us goes on; one for us
                // names a subscription that does not exist (any more).
                // (This server is the notifier of every SUBSCRIBE to a local user, so a
                // dialog it does not know, not routed elsewhere, is gone.)
                return match ctx.addressed {
                    Addressed::Server | Addressed::LocalUser(_) if !ctx.routed => {
                        Outcome::Respond(reply(481, "Subscription Does Not Exist"))
                    }
                    _ => Outcome::Continue,
                };
            };
            if s.dialog.call_id != call_id || from_tag.as_deref() != Some(&s.dialog.remote_tag) {
                return Outcome::Respond(reply(481, "Subscription Does Not Exist"));
            }
            if let Some(Ok(e)) = req.event()
                && !e.package.eq_ignore_ascii_case(s.sub.package.as_str())
            {
                return Outcome::Respond(
                    reply(489, "Bad Event").header("Allow-Events", allow_events()),
                );
            }
            let mut copy = s.clone();
            match copy
                .sub
                .handle_refresh(expires, t, &inner.config.subscription)
            {
                Ok(o) => Ok((o, copy)),
                Err(e) => Err(e),
            }
        };
        let (outcome, updated) = match result {
            Ok(x) => x,
            Err(e) => return Outcome::Respond(subscribe_error(inner, &e)),
        };
        let ended = matches!(outcome, Subscribed::Ended);
        if !updated.ephemeral {
            let write = if ended {
                inner.ports.subscriptions.remove_subscription(&to_tag).await
            } else {
                match updated.stored() {
                    Ok(s) => inner.ports.subscriptions.put_subscription(s).await,
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = write {
                tracing::warn!(error = %e, "subscription refresh not stored");
                return Outcome::Respond(unavailable(inner));
            }
        }
        let expires = match outcome {
            Subscribed::Kept { expires } => expires,
            Subscribed::Ended => 0,
        };
        let resource = updated.sub.resource.clone();
        {
            let mut st = lock(&inner.state);
            if let Some(s) = st.subs.get_mut(&to_tag) {
                // Keep what moved meanwhile (CSeq, in-flight), take the new state.
                s.sub = updated.sub;
                s.flow = ctx.source.hop.flow.or(s.flow);
                s.remote = ctx.source.hop.remote;
                s.transport = ctx.source.hop.transport;
                s.awaiting_flow = false;
                st.arm(&to_tag);
            }
            if ended {
                st.changed(&resource, EventPackage::PresenceWinfo, t);
            }
        }
        inner.wake.notify_one();
        Outcome::Respond(
            Reply::new(200)
                .header("Expires", expires.to_string())
                .header("Contact", updated.dialog.contact),
        )
    }

    async fn publish(&self, ctx: &mut RequestContext) -> Outcome {
        let Addressed::LocalUser(resource) = ctx.addressed.clone() else {
            return Outcome::Continue;
        };
        if let Some(r) = over_rate(self.inner(), ctx, true) {
            return Outcome::Respond(r);
        }
        Outcome::Respond(self.do_publish(ctx, &resource).await)
    }

    async fn do_publish(&self, ctx: &RequestContext, resource: &Address) -> Reply {
        let inner = self.inner();
        let req = &ctx.request;
        let mine = ctx
            .identity
            .as_ref()
            .is_some_and(|i| &i.address == resource);
        if !mine && !ctx.trusted {
            return reply(403, "Only the user may publish their presence");
        }
        let Some(event) = header_str(req, HeaderName::Event) else {
            return reply(489, "Bad Event: missing Event header")
                .header("Allow-Events", "presence");
        };
        let expires = match req.expires() {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return reply(400, "Malformed Expires header"),
        };
        let if_match = header_str(req, HeaderName::SipIfMatch);
        let body = req.body();
        let content_type = header_str(req, HeaderName::ContentType);
        let body_arg = match (body.is_empty(), content_type) {
            (true, _) => None,
            (false, Some(ct)) => Some((ct, body)),
            (false, None) => return reply(400, "Body without Content-Type"),
        };
        let max = inner
            .config
            .max_publish_bytes
            .min(inner.config.publish.limits.max_bytes);
        if body.len() > max {
            return reply(
                413,
                format!(
                    "Request Entity Too Large: body of {} bytes, at most {max}",
                    body.len()
                ),
            );
        }
        let t = Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX));
        let (current, count) = {
            let st = lock(&inner.state);
            let v = st.pubs.get(resource.as_str());
            (
                if_match.and_then(|tag| {
                    v.and_then(|v| v.iter().find(|p| p.publication.etag == tag))
                        .map(|p| p.publication.clone())
                }),
                v.map_or(0, Vec::len),
            )
        };
        if if_match.is_none() && count >= inner.config.max_publications_per_user {
            return reply(503, "Too many publications for this user")
                .header("Retry-After", inner.config.retry_after_s.to_string());
        }
        let instance = req
            .contacts()
            .filter_map(Result::ok)
            .find_map(|c| c.addr().and_then(|a| a.instance.map(str::to_owned)));
        let outcome = publication::handle_publish(
            &PublishRequest {
                resource: resource.as_str(),
                event,
                if_match,
                expires,
                body: body_arg,
                instance: instance.as_deref(),
            },
            current.as_ref(),
            t,
            rand::random(),
            &inner.config.publish,
        );
        let published = match outcome {
            Ok(p) => p,
            Err(e) => return publish_error(inner, &e),
        };
        let expires_out = published.expires(t);
        let etag_out = published.etag().map(str::to_owned);
        let source = flow_key(ctx.source.hop.transport, ctx.source.hop.remote);
        // A new publication from a device replaces that device's older ones (clients that
        // start over without SIP-If-Match after a re-registration would otherwise leave a
        // stale state until it expires). Also on a modification: a client that raced two initial PUBLISHes (baresip does
        // at start-up) and then modifies one of them must not keep the other's state.
        let superseded: Vec<String> = match &published {
            Published::Created(_) | Published::Modified(_) => lock(&inner.state)
                .pubs
                .get(resource.as_str())
                .map(|v| {
                    v.iter()
                        .filter(|p| p.source.as_deref() == Some(source.as_str()))
                        .filter(|p| Some(p.publication.etag.as_str()) != if_match)
                        .map(|p| p.publication.etag.clone())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let write = match &published {
            Published::Created(p) | Published::Refreshed(p) | Published::Modified(p) => {
                let data = match serde_json::to_vec(&StoredPub {
                    publication: p.clone(),
                    source: Some(source.clone()),
                }) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "publication not serializable");
                        return reply(500, "Server Internal Error");
                    }
                };
                inner
                    .ports
                    .publications
                    .put_publication(
                        StoredPublication {
                            etag: p.etag.clone(),
                            resource: p.resource.clone(),
                            expires_at: p.expires_at,
                            data,
                        },
                        if_match,
                    )
                    .await
            }
            Published::Removed { etag } => inner.ports.publications.remove_publication(etag).await,
        };
        match write {
            Ok(()) => {}
            Err(StoreError::NotFound { .. }) => {
                return reply(412, "Conditional Request Failed");
            }
            Err(e) => {
                tracing::warn!(error = %e, "publication not stored");
                return unavailable(inner);
            }
        }
        for old in &superseded {
            if let Err(e) = inner.ports.publications.remove_publication(old).await {
                tracing::debug!(error = %e, "superseded publication not removed; it expires");
            }
        }
        {
            let mut st = lock(&inner.state);
            let v = st.pubs.entry(resource.as_str().to_owned()).or_default();
            if let Some(old) = if_match {
                v.retain(|p| p.publication.etag != old);
            }
            v.retain(|p| !superseded.contains(&p.publication.etag));
            let document_changed = match published {
                Published::Created(p) | Published::Modified(p) => {
                    match p.to_endpoint() {
                        Ok(endpoint) => v.push(Pub {
                            publication: p,
                            endpoint,
                            source: Some(source.clone()),
                        }),
                        Err(e) => tracing::warn!(error = %e, "stored document does not read back"),
                    }
                    true
                }
                Published::Refreshed(p) => {
                    let endpoint = match &current {
                        Some(c) => c.to_endpoint().ok(),
                        None => None,
                    };
                    if let Some(mut endpoint) = endpoint {
                        endpoint.etag.clone_from(&p.etag);
                        endpoint.expires_at = p.expires_at;
                        v.push(Pub {
                            publication: p,
                            endpoint,
                            source: Some(source.clone()),
                        });
                    }
                    false
                }
                Published::Removed { .. } => true,
            };
            if v.is_empty() {
                st.pubs.remove(resource.as_str());
            }
            if document_changed {
                st.changed(resource.as_str(), EventPackage::Presence, t);
            }
        }
        inner.wake.notify_one();
        let mut r = Reply::new(200).header("Expires", expires_out.to_string());
        if let Some(e) = etag_out {
            r = r.header("SIP-ETag", e);
        }
        r
    }
}

pub(crate) fn unavailable(inner: &Inner) -> Reply {
    reply(503, "Service Unavailable").header("Retry-After", inner.config.retry_after_s.to_string())
}

pub(crate) fn subscribe_error(inner: &Inner, e: &SubscribeError) -> Reply {
    match e {
        SubscribeError::BadEvent(_) => {
            reply(489, "Bad Event").header("Allow-Events", allow_events())
        }
        SubscribeError::IntervalTooBrief { min, .. } => {
            reply(423, "Interval Too Brief").header("Min-Expires", min.to_string())
        }
        SubscribeError::TooManySubscriptions { max } => reply(
            503,
            format!("Too many subscriptions (at most {max} per watcher)"),
        )
        .header("Retry-After", inner.config.retry_after_s.to_string()),
        SubscribeError::Terminated => reply(481, "Subscription Does Not Exist"),
    }
}

fn publish_error(inner: &Inner, e: &PublishError) -> Reply {
    let status = e.status_code();
    let r = match e {
        PublishError::Body(x) if status == 413 => {
            reply(413, format!("Request Entity Too Large: {x}"))
        }
        PublishError::Body(x) => reply(status, format!("Bad Request: {x}")),
        PublishError::BadRequest(why) => reply(400, format!("Bad Request: {why}")),
        PublishError::UnknownEtag(_) => reply(412, "Conditional Request Failed"),
        PublishError::IntervalTooBrief { min, .. } => {
            reply(423, "Interval Too Brief").header("Min-Expires", min.to_string())
        }
        PublishError::UnsupportedMediaType(_) => {
            reply(415, "Unsupported Media Type").header("Accept", PublishError::ACCEPT)
        }
        PublishError::BadEvent(_) => reply(489, "Bad Event").header("Allow-Events", "presence"),
    };
    let _ = inner;
    r
}

/// Our Contact for the subscription dialog: the address the SUBSCRIBE reached us on.
pub(crate) fn our_contact(ctx: &RequestContext) -> String {
    let local = ctx.source.local;
    let host = if local.ip().is_unspecified() {
        ctx.request
            .request_uri_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|u| u.split('@').nth(1))
            .map(|h| h.split([';', '?']).next().unwrap_or(h).to_owned())
            .unwrap_or_else(|| "localhost".to_owned())
    } else {
        match local {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    };
    let scheme = if ctx.source.hop.transport.is_secure() {
        "sips"
    } else {
        "sip"
    };
    match ctx.source.hop.transport {
        SipTransport::Udp => format!("<{scheme}:{host}>"),
        t => format!("<{scheme}:{host};transport={}>", t.as_str()),
    }
}
