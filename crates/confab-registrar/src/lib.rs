//! Confab's SIP registrar (RFC 3261 §10), the registration half of the seeds' User
//! Services.
//!
//! **What it does:** takes a REGISTER that authentication already passed, with the flow it
//! came on, the time and some random bytes, and returns the response to send, after the
//! bindings are durably stored through [`confab_core::RegistrationStore`]. Several
//! contacts per address with a cap, expiry bounds with 423 and Min-Expires, q-values,
//! `Contact: *`, Call-ID/CSeq ordering, RFC 5626 outbound (`+sip.instance`/`reg-id`, one
//! binding per instance and flow, removal on flow failure, `Require: outbound`,
//! Flow-Timer, 439), RFC 5627 GRUUs (public and temporary, resolvable later), RFC 3327
//! Path (stored, echoed when supported) and RFC 3608 Service-Route. Each binding records
//! the flow and the node id of the front end holding it. See [`register`](crate::register)
//! for the order of the checks and the binding key.
//!
//! **What it does not do:** authentication (the request chain does it before and passes
//! the [`Registrant`]), deciding that a REGISTER is for us (the Request-URI check belongs
//! to the chain), sending anything, timers (the runtime calls
//! [`Registrar::sweep_expired`] and [`Registrar::handle_flow_failure`]), the registration
//! event package (RFC 3680; [`RegisterOutcome::update`] and the removed bindings the
//! sweep and flow-failure calls return are its inputs), and routing (the proxy calls
//! [`Registrar::lookup`] / [`Registrar::resolve_gruu`]).
//!
//! # Map
//!
//! | you have | call | you get |
//! |---|---|---|
//! | `[registrar]` TOML | `toml::from_str::<RegistrarConfig>` then [`RegistrarConfig::validate`] | a config or an error naming the key |
//! | a config, a store, a persistent 32-byte GRUU key | [`Registrar::new`] | the registrar |
//! | an authenticated REGISTER | [`Registrar::handle_register`] | [`RegisterOutcome`]: the response and what changed |
//! | an AOR to route to | [`Registrar::lookup`] | its live bindings |
//! | a Request-URI with `gr` | [`Registrar::resolve_gruu`] | [`GruuTarget`] |
//! | a closed flow | [`Registrar::handle_flow_failure`] | the bindings removed |
//! | a timer tick | [`Registrar::sweep_expired`] | the bindings removed |

mod config;
mod gruu;
pub mod register;
mod registrar;

pub use config::{ConfigError, FlowFailure, MAX_CONTACTS_LIMIT, RegistrarConfig, TooManyContacts};
pub use gruu::TEMP_GRUU_PREFIX;
pub use register::{Registrant, SUPPORTED};
pub use registrar::{GruuTarget, RegisterInput, RegisterOutcome, Registrar};
