//! The offline message queue: pager-mode MESSAGEs (RFC 3428) stored for a user with no
//! registered endpoint, until they are delivered or expire. The port of the IM role
//! (`confab-im`).
//!
//! What it does: the records ([`NewQueuedMessage`], [`QueuedMessage`]), the per-user
//! [`Quota`], and the [`MessageQueueStore`] trait with its contract. What it does not do:
//! decide what to store, build or send SIP messages (the IM role does), read a clock.
//!
//! # Life of a queued message
//!
//! 1. **Stored** by [`MessageQueueStore::enqueue`] (quota checked in the same write); the
//!    sender hears 202 Accepted only after this returned `Ok` (durable).
//! 2. **Delivering**: when an endpoint of the recipient registers, the IM role sends the
//!    message to it and records each endpoint that accepted it
//!    ([`MessageQueueStore::record_delivery`]); the first delivery starts the *delivery
//!    window*, during which endpoints that register later get it too.
//! 3. **Done**: once the window is over, [`MessageQueueStore::sweep`] removes it.
//!    **Expired**: a message never delivered before `expires_at` is removed by
//!    [`MessageQueueStore::retire`] together with, in the same write, the failure
//!    notifications (IMDN) the role built for it, so a crash never loses one of the two.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Address, Page, PageRequest, StoreError, Timestamp};

/// Per-user limits of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Most messages queued for one user.
    pub max_messages: u32,
    /// Most bytes (sum of the stored requests) queued for one user.
    pub max_bytes: u64,
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueuedMessage {
    /// The user it is for.
    pub recipient: Address,
    /// The sender as the From header names it (a URI), for listings and notifications.
    pub sender: String,
    /// When the server took it.
    pub received_at: Timestamp,
    /// When it expires if still undelivered.
    pub expires_at: Timestamp,
    /// Its Content-Type (for listings).
    pub content_type: String,
    /// The request as it will be delivered (the server's own Via and Route removed), in
    /// wire form.
    pub request: Vec<u8>,
    /// The sender asked for a negative delivery notification (RFC 5438): expiry produces one.
    pub notify_failure: bool,
    /// The IMDN Message-ID the sender gave (RFC 5438 §6.3), if any.
    pub imdn_message_id: Option<String>,
}

/// A queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Its id, increasing in arrival order (across users).
    pub id: u64,
    /// What was queued.
    pub message: NewQueuedMessage,
    /// When the first endpoint accepted it (the delivery window started), if any.
    pub first_delivered_at: Option<Timestamp>,
    /// The endpoints (binding keys) that accepted it.
    pub delivered_to: Vec<String>,
}

/// What [`MessageQueueStore::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored (durable) under this id.
    Stored {
        /// The id.
        id: u64,
    },
    /// Not stored: the recipient's queue would exceed the quota.
    OverQuota {
        /// Messages queued for the recipient now.
        messages: u32,
        /// Bytes queued for the recipient now.
        bytes: u64,
    },
}

/// The offline message queue.
///
/// Contract for every implementation:
/// - a write that returns `Ok` is durable;
/// - ids increase in the order messages were stored, and every listing is in id order,
///   so delivery keeps the order the sender sent in;
/// - `enqueue` checks the quota and inserts atomically (two senders cannot both pass a quota
///   with room for one);
/// - `retire` removes and inserts in one write.
#[async_trait]
pub trait MessageQueueStore: Send + Sync {
    /// Stores `message` unless the recipient's queue would then exceed `quota`.
    async fn enqueue(
        &self,
        message: NewQueuedMessage,
        quota: Quota,
    ) -> Result<Enqueued, StoreError>;

    /// The messages of `recipient` still to deliver at `now`, oldest first, at most
    /// `limit`: never delivered and not expired, or first delivered less than `window_ms`
    /// ago.
    async fn deliverable(
        &self,
        recipient: &Address,
        now: Timestamp,
        window_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>, StoreError>;

    /// Whether `recipient` may have messages queued: `false` only when the store knows,
    /// without reading, that there are none, so that a caller can skip [`deliverable`]
    /// (the offline-IM check after every REGISTER). The default, `true`, is always correct.
    ///
    /// [`deliverable`]: MessageQueueStore::deliverable
    fn may_have_queued(&self, recipient: &Address) -> bool {
        let _ = recipient;
        true
    }

    /// Records that `endpoint` accepted message `id` at `now` (starting the delivery
    /// window on the first one). Recording the same endpoint twice is a no-op; an unknown
    /// id (already swept) is `Ok(false)`.
    async fn record_delivery(
        &self,
        id: u64,
        endpoint: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Messages never delivered whose `expires_at` is at or before `now`, oldest first, at
    /// most `limit` (read only; [`MessageQueueStore::retire`] removes them).
    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<QueuedMessage>, StoreError>;

    /// In one write: removes the messages `ids` and stores `notifications` (no quota: they
    /// are the server's own small messages). Returns how many of `ids` were removed.
    async fn retire(
        &self,
        ids: &[u64],
        notifications: Vec<NewQueuedMessage>,
    ) -> Result<usize, StoreError>;

    /// Removes the messages whose delivery window (first delivery + `window_ms`) ended at or
    /// before `now`. Returns how many.
    async fn sweep(&self, now: Timestamp, window_ms: i64) -> Result<usize, StoreError>;

    /// Lists queued messages (of one recipient, or all) in id order, one page at a time.
    async fn list_queued(
        &self,
        recipient: Option<&Address>,
        page: PageRequest,
    ) -> Result<Page<QueuedMessage>, StoreError>;

    /// Removes one message (an administrator's decision). `Ok(false)` if there is none.
    async fn remove_queued(&self, id: u64) -> Result<bool, StoreError>;
}
