//! The notifier side of one RFC 6665 subscription, sans-IO, with RFC 6446-style NOTIFY
//! throttling. Plain data (serde), so a store can keep it and a restarted server can carry
//! on.
//!
//! ```text
//!   SUBSCRIBE (Expires > 0)        authorized
//!   ------------------------> Pending ---------> Active --+  SUBSCRIBE refresh
//!            \  authorized            approve      |  ^    |  (new expiry)
//!             +--------------------------------->  |  +----+
//!   Expires: 0 (fetch): no state kept;             |
//!   one NOTIFY "terminated;reason=timeout"         | expiry, unsubscribe (Expires: 0),
//!                                                  | deactivate, reject, noresource
//!   Pending ---------------------------------------+----> Terminated(reason)
//! ```
//!
//! Calling contract: the SIP layer turns a SUBSCRIBE into [`Subscription::handle_subscribe`]
//! (new dialog) or [`Subscription::handle_refresh`] (in-dialog), answers with the returned
//! expiry, then calls [`Subscription::poll_notify`] until `None` and sends each NOTIFY. When
//! the resource changes it calls [`Subscription::handle_change`]; it arms a timer at
//! [`Subscription::poll_timeout`] and calls [`Subscription::handle_timeout`] when it fires,
//! then polls again. Nothing here reads a clock: `now` is always an argument.

use confab_core::Timestamp;

/// The event packages the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventPackage {
    /// `presence` (RFC 3856).
    Presence,
    /// `presence.winfo` (RFC 3857).
    PresenceWinfo,
    /// `reg` (RFC 3680).
    Reg,
    /// `dialog` (RFC 4235).
    Dialog,
}

impl EventPackage {
    /// Every package, as the `Allow-Events` header lists them.
    pub const ALL: [EventPackage; 4] = [
        EventPackage::Presence,
        EventPackage::PresenceWinfo,
        EventPackage::Reg,
        EventPackage::Dialog,
    ];

    /// The token.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventPackage::Presence => "presence",
            EventPackage::PresenceWinfo => "presence.winfo",
            EventPackage::Reg => "reg",
            EventPackage::Dialog => "dialog",
        }
    }

    /// From an `Event` header value (parameters such as `;id=` ignored; case-insensitive).
    /// `None` is a `489 Bad Event`.
    pub fn from_event_header(value: &str) -> Option<EventPackage> {
        let token = value.split(';').next().unwrap_or("").trim();
        EventPackage::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(token))
    }

    /// The value for an `Allow-Events` header.
    pub fn allow_events() -> String {
        EventPackage::ALL.map(EventPackage::as_str).join(", ")
    }
}

/// Why a subscription ended (RFC 6665 §4.1.3 reason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// `deactivated`: the watcher may subscribe again at once.
    Deactivated,
    /// `probation`: may subscribe again later.
    Probation,
    /// `rejected`: the user refused.
    Rejected,
    /// `timeout`: expired, unsubscribed, or a fetch.
    Timeout,
    /// `giveup`: the notifier could not get authorization in time.
    Giveup,
    /// `noresource`: the resource is gone.
    Noresource,
    /// `invariant`: the resource cannot be watched any more.
    Invariant,
}

impl Reason {
    /// The token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Deactivated => "deactivated",
            Reason::Probation => "probation",
            Reason::Rejected => "rejected",
            Reason::Timeout => "timeout",
            Reason::Giveup => "giveup",
            Reason::Noresource => "noresource",
            Reason::Invariant => "invariant",
        }
    }
}

/// Subscription settings (per event package).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionConfig {
    /// Expiry when the SUBSCRIBE has no Expires (RFC 3856 §6.4: 3600).
    pub default_expires: u32,
    /// Shorter ones get `423 Interval Too Brief` with this as Min-Expires.
    pub min_expires: u32,
    /// Longer ones are cut to this.
    pub max_expires: u32,
    /// Most subscriptions one watcher may hold (a `503` with Retry-After past it).
    pub max_per_watcher: usize,
    /// Least time between two NOTIFYs of one subscription, in milliseconds (RFC 6446
    /// throttle); changes in between are coalesced into one NOTIFY at the deadline. 0 sends
    /// every change at once.
    pub min_notify_interval_ms: u32,
}

impl Default for SubscriptionConfig {
    fn default() -> SubscriptionConfig {
        SubscriptionConfig {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 86_400,
            max_per_watcher: 1_000,
            min_notify_interval_ms: 1_000,
        }
    }
}

/// A refused SUBSCRIBE, with the response it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// `489 Bad Event` (with `Allow-Events`).
    #[error("489 Bad Event: `{0}` is not a supported event package")]
    BadEvent(String),
    /// `423 Interval Too Brief` (with `Min-Expires`).
    #[error("423 Interval Too Brief: Expires {requested} is below {min}")]
    IntervalTooBrief {
        /// The requested expiry.
        requested: u32,
        /// Min-Expires.
        min: u32,
    },
    /// `503 Service Unavailable` (with `Retry-After`): too many subscriptions of this watcher.
    #[error("503: the watcher holds {max} subscriptions already")]
    TooManySubscriptions {
        /// The cap.
        max: usize,
    },
    /// `481 Subscription Does Not Exist`: a refresh of a terminated subscription.
    #[error("481 Subscription Does Not Exist")]
    Terminated,
}

impl SubscribeError {
    /// The SIP status code.
    pub fn status_code(&self) -> u16 {
        match self {
            SubscribeError::BadEvent(_) => 489,
            SubscribeError::IntervalTooBrief { .. } => 423,
            SubscribeError::TooManySubscriptions { .. } => 503,
            SubscribeError::Terminated => 481,
        }
    }
}

/// The state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum State {
    /// Waiting for the user's authorization.
    Pending,
    /// Active.
    Active,
    /// Over.
    Terminated(Reason),
}

/// A NOTIFY to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The `Subscription-State` header value.
    pub subscription_state: String,
    /// Whether to include the resource state (false for pending: an empty NOTIFY, RFC 6665
    /// §4.2.1 — a pending subscription must not see state).
    pub with_state: bool,
    /// The body version (RLMI / pidf-diff / watcherinfo `version`) for this NOTIFY.
    pub version: u32,
    /// Whether this is the first NOTIFY with state (full state for partial watchers).
    pub full_state: bool,
    /// The last NOTIFY of the subscription.
    pub is_final: bool,
    /// It reports a change of the subscription itself (new, refreshed, approved, restored,
    /// ending), so it is owed even when the resource shows nothing new (a resource-list
    /// NOTIFY is skipped only when this is false and no member changed visibly).
    pub state_change: bool,
}

/// What an incoming SUBSCRIBE asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest<'a> {
    /// The `Event` header value.
    pub event: &'a str,
    /// The `Expires` header value, if present.
    pub expires: Option<u32>,
}

/// Outcome of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// A new or refreshed subscription; answer 200 (202 is deprecated by RFC 6665) with
    /// this Expires.
    Kept {
        /// Expires for the response.
        expires: u32,
    },
    /// A fetch or unsubscribe: answer 200 with Expires: 0; the final NOTIFY is queued and
    /// the subscription is terminated.
    Ended,
}

/// One subscription, notifier side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subscription {
    /// Event package.
    pub package: EventPackage,
    /// The watcher's identity (authenticated AOR or URI as given).
    pub watcher: String,
    /// The watched resource URI.
    pub resource: String,
    state: State,
    /// Whether the watcher may see state (active now, or was before it ended).
    authorized: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Version of the next NOTIFY body.
    pub next_version: u32,
    /// Whether a NOTIFY with state has been sent (so the next one may be partial).
    pub state_sent: bool,
    last_notify_at: Option<Timestamp>,
    /// A NOTIFY is owed; due at this instant.
    notify_due: Option<Timestamp>,
    /// Whether a state-change NOTIFY (pending/active/terminated) is owed, which the
    /// throttle never delays.
    state_change: bool,
    min_notify_interval_ms: u32,
}

fn plus_secs(t: Timestamp, s: u32) -> Timestamp {
    Timestamp(t.as_millis().saturating_add(i64::from(s) * 1000))
}

fn checked_expires(
    requested: Option<u32>,
    config: &SubscriptionConfig,
) -> Result<u32, SubscribeError> {
    match requested {
        None => Ok(config.default_expires.min(config.max_expires)),
        Some(0) => Ok(0),
        Some(r) if r < config.min_expires => Err(SubscribeError::IntervalTooBrief {
            requested: r,
            min: config.min_expires,
        }),
        Some(r) => Ok(r.min(config.max_expires)),
    }
}

impl Subscription {
    /// A SUBSCRIBE that creates a dialog. `authorized` is `Some(true)` when the watcher may
    /// see state now, `Some(false)` when they are pending the user's decision (see
    /// [`crate::access::authorize`]); `existing_for_watcher` is how many subscriptions the
    /// watcher holds already. With Expires: 0 (a fetch) the subscription is returned
    /// terminated with its one NOTIFY queued, and need not be stored.
    pub fn handle_subscribe(
        req: &SubscribeRequest<'_>,
        watcher: &str,
        resource: &str,
        authorized: bool,
        existing_for_watcher: usize,
        now: Timestamp,
        config: &SubscriptionConfig,
    ) -> Result<(Subscription, Subscribed), SubscribeError> {
        let package = EventPackage::from_event_header(req.event)
            .ok_or_else(|| SubscribeError::BadEvent(req.event.to_owned()))?;
        let expires = checked_expires(req.expires, config)?;
        if expires > 0 && existing_for_watcher >= config.max_per_watcher {
            return Err(SubscribeError::TooManySubscriptions {
                max: config.max_per_watcher,
            });
        }
        let mut s = Subscription {
            package,
            watcher: watcher.to_owned(),
            resource: resource.to_owned(),
            state: if authorized {
                State::Active
            } else {
                State::Pending
            },
            authorized,
            created_at: now,
            expires_at: plus_secs(now, expires),
            next_version: 0,
            state_sent: false,
            last_notify_at: None,
            notify_due: Some(now),
            state_change: true,
            min_notify_interval_ms: config.min_notify_interval_ms,
        };
        if expires == 0 {
            // RFC 6665 §4.4.3: a fetch gets one NOTIFY (with state if authorized) and ends.
            s.state = State::Terminated(Reason::Timeout);
            return Ok((s, Subscribed::Ended));
        }
        Ok((s, Subscribed::Kept { expires }))
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// An in-dialog SUBSCRIBE: refresh, or unsubscribe with Expires: 0. A refresh queues a
    /// NOTIFY with the current state (RFC 6665 §4.2.1.2).
    pub fn handle_refresh(
        &mut self,
        expires: Option<u32>,
        now: Timestamp,
        config: &SubscriptionConfig,
    ) -> Result<Subscribed, SubscribeError> {
        if matches!(self.state, State::Terminated(_)) {
            return Err(SubscribeError::Terminated);
        }
        let expires = checked_expires(expires, config)?;
        self.owe_state_change(now);
        if expires == 0 {
            self.state = State::Terminated(Reason::Timeout);
            self.expires_at = now;
            return Ok(Subscribed::Ended);
        }
        self.expires_at = plus_secs(now, expires);
        Ok(Subscribed::Kept { expires })
    }

    /// The user allowed a pending watcher: active, with a NOTIFY carrying state.
    pub fn handle_approve(&mut self, now: Timestamp) {
        if self.state == State::Pending {
            self.state = State::Active;
            self.authorized = true;
            self.owe_state_change(now);
        }
    }

    /// Ends the subscription for `reason` (the user blocked a pending watcher: `rejected`;
    /// the account is gone: `noresource`; shutting down a list: `deactivated`).
    pub fn handle_terminate(&mut self, reason: Reason, now: Timestamp) {
        if !matches!(self.state, State::Terminated(_)) {
            self.state = State::Terminated(reason);
            self.owe_state_change(now);
        }
    }

    /// The watched resource changed. An active subscription owes a NOTIFY, sent at once or
    /// coalesced to the throttle deadline; a pending one sees nothing.
    pub fn handle_change(&mut self, now: Timestamp) {
        if self.state != State::Active {
            return;
        }
        let earliest = match self.last_notify_at {
            Some(t) => Timestamp(t.as_millis() + i64::from(self.min_notify_interval_ms)),
            None => now,
        };
        let due = if earliest > now { earliest } else { now };
        self.notify_due = Some(match self.notify_due {
            Some(d) if d <= due => d,
            _ => due,
        });
    }

    /// After a restart: every active or pending subscription owes a NOTIFY with the current
    /// state at once (issue 8 item 1); for connection-oriented watchers the caller waits
    /// for the flow before polling.
    pub fn handle_restart(&mut self, now: Timestamp) {
        if !matches!(self.state, State::Terminated(_)) {
            self.owe_state_change(now);
        }
    }

    /// Time passed: expiry ends the subscription (`timeout`).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if !matches!(self.state, State::Terminated(_)) && now >= self.expires_at {
            self.state = State::Terminated(Reason::Timeout);
            self.owe_state_change(now);
        }
    }

    fn owe_state_change(&mut self, now: Timestamp) {
        self.state_change = true;
        self.notify_due = Some(now);
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_notify`](Self::poll_notify) has something to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.state, self.notify_due) {
            (State::Terminated(_), due) => due,
            (_, Some(d)) => Some(d.min(self.expires_at)),
            (_, None) => Some(self.expires_at),
        }
    }

    /// The NOTIFY to send at `now`, if one is due; marks it sent.
    #[must_use]
    pub fn poll_notify(&mut self, now: Timestamp) -> Option<Notify> {
        let due = self.notify_due?;
        if due > now && !self.state_change {
            return None;
        }
        self.notify_due = None;
        let state_change = std::mem::take(&mut self.state_change);
        self.last_notify_at = Some(now);
        let left = ((self.expires_at.as_millis() - now.as_millis()).max(0) / 1000) as u64;
        let (header, with_state, is_final) = match self.state {
            State::Pending => (format!("pending;expires={left}"), false, false),
            State::Active => (format!("active;expires={left}"), true, false),
            // A fetch or an expiry of an authorized subscription carries the final state;
            // a watcher that was never authorized never sees state.
            State::Terminated(r) => (
                format!("terminated;reason={}", r.as_str()),
                r == Reason::Timeout && self.authorized,
                true,
            ),
        };
        let full_state = with_state && !self.state_sent;
        if with_state {
            self.state_sent = true;
        }
        let version = self.next_version;
        self.next_version = self.next_version.wrapping_add(1);
        Some(Notify {
            subscription_state: header,
            with_state,
            version,
            full_state,
            is_final,
            state_change,
        })
    }
}
