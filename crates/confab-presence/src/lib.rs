//! The presence role's logic, sans-IO: what the server decides, not how messages move.
//!
//! - [`aggregate`]: the RTC Aggregate — one presence document per user from all their
//!   endpoints' publications, registrations, calls and manual state (rules in the module
//!   doc and in ARCHITECTURE.md);
//! - [`access`]: access levels (blocked, public, colleague, personal), the default policy
//!   and the filter applied to every NOTIFY body (full, partial, resource-list);
//! - [`subscription`]: the notifier side of an RFC 6665 subscription (pending, active,
//!   terminated with reasons, refresh, expiry, fetch) with RFC 6446-style NOTIFY
//!   throttling;
//! - [`publication`]: PUBLISH processing (RFC 3903, with RFC 5264 partial publication);
//! - [`rate`]: token buckets per publisher and per watcher (503 with Retry-After past the
//!   configured rate);
//! - [`dialogs`]: the users' INVITE dialogs as RFC 4235 state machines (the `dialog`
//!   package's document, "on the phone" for aggregation), fed by the proxy's reports;
//! - [`policies`]: stored access policies and contact lists applied to the running
//!   subscriptions (re-notifying exactly the watchers a change affects);
//! - [`rls`]: the resource list server (RFC 4662) for a user's contact list.
//!
//! Every type that outlives a request is plain data with serde derives, ready for the
//! `SubscriptionStore` / `PublicationStore` traits a later change adds to `confab-core`.
//!
//! - [`server`]: the running role (tokio): the `presence` chain step answering SUBSCRIBE
//!   and PUBLISH, the notifier pump sending NOTIFYs through the Front End, durable state
//!   through the `SubscriptionStore` / `PublicationStore` ports, the registration event
//!   package (RFC 3680) and watcher information (RFC 3857).
//!
//! The modules above `server` are pure: no clock, no randomness (`now` and random bytes
//! are arguments). What this crate does not do: sockets, SQL (ports only), and XCAP.

pub mod access;
pub mod aggregate;
pub mod dialogs;
pub mod policies;
pub mod publication;
pub mod rate;
pub mod rls;
pub mod server;
pub mod subscription;
