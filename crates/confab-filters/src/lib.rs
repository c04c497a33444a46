//! The filter applications of the Front End's request chain (roles tier): the **Client
//! Version Filter** and the **Intelligent IM Filter**.
//!
//! **What it does:**
//!
//! * [`ClientVersionFilter`]: ordered rules over the `User-Agent` header's products and
//!   versions ([`useragent`] says how free-form strings are read), with comparisons
//!   (`< 5.0`, `>= 4.2.1`, `!= 5.1`), wildcards (`4.*`, `*`) and numeric dotted-version
//!   ordering; actions allow, block (403 with a reason), block with an upgrade URL (403 with
//!   `Warning: 399`), allow with an upgrade notice; a default action. Applied to REGISTER,
//!   SUBSCRIBE, INVITE, MESSAGE and PUBLISH outside dialogs. [`ClientVersionFilter::test`]
//!   answers `confab client-filter test "User-Agent"`.
//! * [`ImFilter`]: links in the text of MESSAGE bodies (`text/plain`, `text/html`, other
//!   `text/*`, inside `message/cpim` and `multipart/*`) are blocked (403 saying why), made
//!   non-clickable (a prefix before each link, the body rewritten, Content-Length fixed) or
//!   allowed; file transfers (RFC 5547 SDP offers in INVITE, named attachments) are blocked
//!   by extension; each rule for all senders or only for senders outside the served domains.
//!   IMDN, isComposing and other non-text bodies pass untouched. [`links`] says exactly
//!   what counts as a link.
//! * [`ClientVersionHandler`] and [`ImFilterHandler`]: the two as
//!   [`confab_core::chain::RequestHandler`]s, each reading its compiled policy from a
//!   [`Snapshot`] that [`FilterPolicies`] replaces when the policy in the database changes
//!   (polling the [`confab_core::policy::PolicyStore`] version counters), so every front end
//!   applies a change without a restart.
//!
//! **What it does not do:** I/O of its own (the store is a port trait; the only async wait
//! is `FilterPolicies::watch`'s timer), storing messages, MESSAGE forking (the proxy and the
//! IM role), archiving. Not yet: links in quoted-printable, UTF-16 or compressed text (such content is refused while a
//! rule applies: the filter fails closed); HTTP file transfer (RCS `rcs-ft-http+xml`).
//!
//! # Where the steps go in the chain
//!
//! `client-version` first (before `dialog`), `im-filter` after `auth` and before `router`
//! (see [`ImFilterHandler`] for the trade-off of putting it before `dialog`):
//!
//! ```ignore
//! let policies = Arc::new(FilterPolicies::load(store, settings).await?);
//! builder
//!     .handler_before("dialog", Arc::new(policies.client_version_handler()))
//!     .handler_before("router", Arc::new(policies.im_filter_handler()));
//! tokio::spawn(policies.clone().watch(Duration::from_secs(2)));
//! ```
//!
//! Performance: a request of another method costs a snapshot load (uncontended read lock,
//! one reference-count increment) and a method check. Reading the User-Agent allocates
//! nothing; a MESSAGE body is only read when a rule applies to its sender, with at most one
//! allocation per rewritten text part.
//!
//! Measured with `examples/filter_cost.rs` (release, one thread, on the shared 2-core
//! development machine under a load average of ~13, so only the order of magnitude
//! counts): a REGISTER against 20 non-matching client version rules ≈ 1.1 µs; a snapshot
//! load ≈ 0.07 µs; a 180-byte text/plain MESSAGE scanned for links ≈ 1–1.5 µs, the same
//! CPIM-wrapped ≈ 1.5 µs, two links disabled (rewrite) ≈ 0.9 µs, an INVITE's SDP file offer
//! ≈ 1 µs; with a policy that changes nothing ≈ 0.01 µs.

mod client_version;
mod handler;
mod im;
mod snapshot;
pub mod useragent;

pub use crate::client_version::{
    ClientDecision, ClientVersionFilter, MatchedProduct, RuleMatch, TestResult,
};
pub use crate::handler::{ClientVersionHandler, ImFilterHandler};
pub use crate::im::{
    BlockCause, HIDDEN_LINK_REASON, ImFilter, ImVerdict, MAX_REWRITTEN_BODY, TOO_LARGE_REASON,
    UNREADABLE_REASON, links,
};
pub use crate::snapshot::{FilterPolicies, FilterSettings, LoadError, Refreshed, Snapshot};
