//! The IM role (roles tier): offline store-and-forward of pager-mode instant messages
//! (RFC 3428 MESSAGE).
//!
//! **What it does:**
//!
//! * [`OfflineHandler`], the chain step `im-offline` (before `router`): a MESSAGE outside a
//!   dialog to a known user of a served domain with **no** registered endpoint is stored
//!   ([`confab_core::message_queue::MessageQueueStore`]) and answered **202 Accepted** only
//!   after the store committed it; over the user's quota it gets 480 (or 486, `[im]`
//!   `over_quota_status`) with the reason "Recipient offline and message queue full"; a
//!   MESSAGE larger than `im.max_message_bytes` gets 413. Credentials and routing headers
//!   are removed before storing; a `Date` header is added when the sender gave none.
//! * [`Delivery::deliver_to`], run by the Front End after each successful REGISTER: the
//!   user's queued messages go to every registered endpoint, oldest first, one at a time
//!   per endpoint; each acceptance is recorded per endpoint, so an endpoint gets a message
//!   once, and endpoints that register within `im.delivery_window_s` after the first
//!   delivery get it too. A temporary failure (408, 480, 486, 5xx) stops that endpoint's
//!   run (retried at its next REGISTER); a refusal (415, 488 ...) counts as handled.
//! * [`Delivery::sweep_once`] / [`Delivery::run`]: messages undelivered after
//!   `im.expiry_s` are removed; when the sender asked for a negative delivery notification
//!   (CPIM body with `imdn.Disposition-Notification: negative-delivery` and an
//!   `imdn.Message-ID`, RFC 5438) an IMDN with status `failed` is queued for the sender in
//!   the same write and delivered like any message. Delivered messages are removed when
//!   their window ends.
//! * [`imdn`]: the CPIM/IMDN reading and writing, pure functions (property-tested).
//!
//! **What it does not do:** send anything itself (the Front End implements
//! [`Originator`] over its proxy cores), open a database (the port traits), IMDN for
//! senders of other domains (no DNS routing yet: logged and dropped), positive delivery
//! notifications (the recipient's client sends those), MSRP, archiving, group chat.

mod config;
mod delivery;
pub mod imdn;
mod offline;

pub use crate::config::{ImConfig, ImConfigError};
pub use crate::delivery::{
    BATCH, Delivery, DeliveryReport, OfflineHandler, Originator, SweepReport,
};
pub use crate::offline::{
    Offline, QUOTA_REASON, STORED_REASON, endpoint_key, http_date, is_temporary,
};
