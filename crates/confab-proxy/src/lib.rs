//! The Front End's stateful SIP proxy (RFC 3261 §16), sans-IO, and the routing steps of the
//! request chain.
//!
//! **What it does:** [`Proxy`] is the transaction user over `confab-sip`'s transaction
//! layer: it validates requests (§16.3), pre-processes Route (§16.4: strict-route fix-up,
//! removal of our entries, flow tokens), hands each new request to the caller's request
//! chain as a [`confab_core::chain::RequestContext`], and carries out the chain's
//! [`confab_core::chain::Outcome`]: answer, or fork to targets (parallel within a q-value
//! group, groups in series), with Record-Route (doubled when bridging transports or address
//! families, RFC 5658; flow tokens in the user part, RFC 5626 §5.3), best-response selection,
//! CANCEL handling, Timer C, 3xx recursion, and stateless forwarding of ACK for 2xx and of
//! stray 2xx. Inputs are messages, time, randomness (a seed) and the chain's outcomes;
//! outputs are [`confab_sip::transaction::Transmit`]s and [`ProxyEvent`]s.
//!
//! The chain steps here: [`DialogRouter`] (in-dialog requests on our route set go straight
//! to forwarding) and [`Router`] (REGISTER to the registrar, OPTIONS to the server answered,
//! local users looked up in the registration store, 404/480, "Relaying denied").
//!
//! **What it does not do:** sockets, DNS (a next hop that is a host name fails the branch
//! with 503; the caller may resolve targets first and set [`confab_core::chain::Target::hop`]),
//! authentication (`confab-auth`), registrations (`confab-registrar`), stateless proxying of
//! anything but ACK and stray 2xx, RFC 3263 failover between addresses, Path/outbound
//! processing as an edge proxy for another registrar, RFC 3326 Reason in CANCEL, the
//! RFC 5626 430 response when a flow in a Record-Route died (the branch fails with 408/500
//! instead).

mod config;
mod core;
mod local;
pub mod route;
mod router;

pub use crate::config::{ProxyConfig, ProxyConfigError};
pub use crate::core::{ALLOW, Proxy, ProxyError, ProxyEvent, ProxyStats, response_hop};
pub use crate::local::{Listener, LocalNode};
pub use crate::route::{FlowSigner, NextHop, next_hop, uri_hop};
pub use crate::router::{DialogRouter, FlowResolver, Gruu, GruuResolver, Router, uses_flow};
