//! Domain records and storage ports for Confab.
//!
//! What it does: defines the records the roles share — [`Address`] (`user@domain`),
//! [`PhoneNumber`] (E.164 / `tel:` with `;ext=`), [`User`] with its [`Role`] and digest HA1
//! values (never a clear password), API tokens (only a hash of the secret is ever stored) —
//! and the storage traits ([`UserStore`], [`TokenStore`]) with one error type,
//! [`StoreError`]. Validation of every record happens here, once, when the record is built,
//! so a store never sees an invalid address or number.
//!
//! The [`contacts`] module holds the server-stored contact lists and presence policies and
//! their [`contacts::ContactStore`] port (with the change feed front ends follow).
//!
//! What it does not do: I/O, SQL, clocks, async runtimes. Implementations live in the
//! adapters tier (`confab-store`: SQLite now, PostgreSQL later); roles depend only on these
//! traits.
//!
//! # How the trait family grows
//!
//! Each concern is its own small trait, object safe (`Arc<dyn UserStore>`), `Send + Sync`,
//! with async methods (via `async_trait`) returning [`StoreError`]. A role takes exactly the
//! traits it needs. Later issues add new traits beside these — `RegistrationStore`
//! (bindings, including which front end holds each client's flow), `SubscriptionStore`,
//! `MessageQueueStore`, and organisation-policy stores (filters, dial plans) — and the
//! adapter implements them; existing roles and traits do not change. Nothing in a trait
//! assumes SQLite: paging is keyset based with an opaque [`Cursor`], writes report
//! [`StoreError::Conflict`] for uniqueness violations (a PostgreSQL unique violation maps to
//! the same), and no method exposes a transaction or connection.

mod address;
pub mod chain;
pub mod contacts;
mod error;
pub mod events;
pub mod message_queue;
mod phone;
pub mod policy;
mod registration;
mod store;
mod time;
mod token;
mod user;

pub use address::{Address, AddressError};
pub use error::{Entity, StoreError};
pub use events::{
    DialogObserver, PublicationStore, RegistrationObserver, RequestSender, SendOutcome,
    StoredPublication, StoredSubscription, SubscriptionStore,
};
pub use phone::{PhoneError, PhoneNumber};
pub use registration::{
    Binding, BindingPlan, BindingsUpdate, FlowInfo, QValue, QValueError, Refusal,
    RegistrationStore, SipTransport, SipTransportError, TempGruuState, UpdateOutcome,
};
pub use store::{Cursor, Page, PageRequest, TokenStore, UserStore};
pub use time::Timestamp;
pub use token::{ApiToken, ApiTokenSecret, TokenError, TokenHash, TokenName};
pub use user::{
    Change, DisplayName, DisplayNameError, ImportOutcome, ImportRow, NewUser, Role, RoleError,
    User, UserChanges,
};

pub use confab_digest::Ha1Set;
