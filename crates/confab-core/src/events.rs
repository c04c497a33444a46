//! Ports of the SIP events framework (RFC 6665) and presence: durable subscriptions and
//! publications, the way a role sends requests of its own (NOTIFY) through the Front End,
//! the registrar's binding-change signal, and the proxy's INVITE-dialog signal.
//!
//! The role (`confab-presence`) owns the meaning of what is stored: the store keeps a few
//! columns it can index (id, package, watcher, resource, expiry) and an opaque `data` blob
//! the role wrote (its serde form of the subscription or publication). So a role can add
//! fields without a migration, and the store never interprets presence documents.

use async_trait::async_trait;

use crate::chain::Hop;
use crate::{Address, FlowInfo, StoreError, Timestamp};

/// One subscription the notifier holds (RFC 6665), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The role's identifier (unique).
    pub id: String,
    /// Event package token (`presence`, `reg` ...).
    pub package: String,
    /// The watcher (authenticated address, or the From URI of an anonymous watcher).
    pub watcher: String,
    /// The watched resource URI.
    pub resource: String,
    /// When it expires (the store may forget it after this).
    pub expires_at: Timestamp,
    /// The role's serialized state (dialog, versions, settings).
    pub data: Vec<u8>,
}

/// Durable subscriptions. `Ok` for a write means committed.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Inserts or replaces the subscription with this id.
    async fn put_subscription(&self, sub: StoredSubscription) -> Result<(), StoreError>;

    /// Removes it (no error when it is already gone).
    async fn remove_subscription(&self, id: &str) -> Result<(), StoreError>;

    /// Every subscription unexpired at `now` (a restarted notifier carries on with them).
    async fn load_subscriptions(
        &self,
        now: Timestamp,
    ) -> Result<Vec<StoredSubscription>, StoreError>;

    /// Removes subscriptions expired at or before `now`; returns how many.
    async fn remove_expired_subscriptions(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// One publication (RFC 3903), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPublication {
    /// The entity-tag (unique).
    pub etag: String,
    /// The presentity's address.
    pub resource: String,
    /// When it expires.
    pub expires_at: Timestamp,
    /// The role's serialized state (the document and its metadata).
    pub data: Vec<u8>,
}

/// Durable publications. `Ok` for a write means committed.
#[async_trait]
pub trait PublicationStore: Send + Sync {
    /// Stores `publication`; when `replaces` names an entity-tag, that row is removed in the
    /// same transaction, and [`StoreError::NotFound`] is returned (nothing written) if it
    /// is already gone (a concurrent PUBLISH won: the caller answers 412).
    async fn put_publication(
        &self,
        publication: StoredPublication,
        replaces: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Removes the publication with `etag` (no error when it is already gone).
    async fn remove_publication(&self, etag: &str) -> Result<(), StoreError>;

    /// Every publication unexpired at `now`.
    async fn load_publications(&self, now: Timestamp)
    -> Result<Vec<StoredPublication>, StoreError>;

    /// Removes publications expired at or before `now`; returns how many.
    async fn remove_expired_publications(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// How a request this node originated ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// The final response's status.
    Response {
        /// Its status code.
        status: u16,
    },
    /// No final response in time (RFC 3261 Timer F).
    Timeout,
    /// It could not be sent (connection refused or gone, no listener).
    TransportError,
    /// The Front End is stopping or overloaded: it was not sent.
    Refused,
}

impl SendOutcome {
    /// The final status, if a response came.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendOutcome::Response { status } => Some(*status),
            _ => None,
        }
    }
}

/// Sends requests a role originates (the notifier's NOTIFYs) as client transactions of the
/// Front End (retransmissions, timeouts and responses handled by its transaction layer).
#[async_trait]
pub trait RequestSender: Send + Sync {
    /// Sends `request` (complete but for our Via) over `hop` and waits for its end.
    async fn send_request(&self, request: confab_sip::Message, hop: Hop) -> SendOutcome;

    /// The hop to reach a client over the flow a binding recorded, when this node holds
    /// that flow and it is open (RFC 5626: a connection-oriented watcher is reachable only
    /// over its flow).
    fn hop_for_flow(&self, flow: &FlowInfo) -> Option<Hop>;
}

/// Told when an address's registrations changed (a REGISTER committed, a flow failed,
/// bindings expired), so the registration event package and presence can notify.
pub trait RegistrationObserver: Send + Sync {
    /// The bindings of `aor` changed.
    fn bindings_changed(&self, aor: &Address);
}

/// Told about the INVITE dialogs the proxy forwards, so the dialog event package (RFC 4235,
/// busy lamps) and presence ("on the phone") can follow the calls of local users.
///
/// The proxy core calls it synchronously, from inside its sans-IO state machine, only for
/// requests the chain attached an observer to ([`crate::chain::RequestContext::dialog_observer`])
/// and only once the request is being forwarded (a request the chain answered, challenged
/// or refused is never reported). An implementation must not block: take a short lock,
/// queue work. The proxy does not keep dialog state; the observer does.
pub trait DialogObserver: Send + Sync {
    /// An initial INVITE (no To tag) is being forwarded: its dialogs are `trying`.
    fn invite_forwarded(&self, invite: &confab_sip::Message);

    /// A response to that INVITE is going upstream: a provisional response (not 100), each
    /// 2xx (every one is a dialog), or the one final error response of the transaction
    /// (487 after CANCEL, 408 when no branch answered ...).
    fn invite_response(&self, invite: &confab_sip::Message, response: &confab_sip::Message);

    /// A BYE inside a dialog is being forwarded: that dialog is over, whatever its answer.
    fn bye_forwarded(&self, bye: &confab_sip::Message);
}
