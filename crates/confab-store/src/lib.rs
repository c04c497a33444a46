//! Confab's durable store: the SQLite implementation of the `confab-core` storage traits.
//!
//! What it does: opens (or creates, mode 0600) a SQLite database in WAL mode, refuses a
//! database whose schema is newer than this binary, applies the versioned migrations in
//! `migrations/sqlite/`, and implements [`confab_core::UserStore`],
//! [`confab_core::TokenStore`] and [`confab_core::RegistrationStore`] (read-through: no
//! binding is cached in memory, lookups read the `bindings_by_aor` index) and
//! [`confab_core::policy::PolicyStore`] (the filters' policy with its version counters). Writes go through a group-commit writer (see
//! [`writer`](crate::writer) docs; binding writes through the direct writer thread of
//! [`direct_writer`](crate::direct_writer), which calls SQLite through rusqlite): many
//! callers' writes share one transaction and one fsync, and no caller hears "saved" before
//! the commit holding its write succeeded. Reads
//! use a pool of read-only connections and never wait for the writer. [`SqliteStore::backup`]
//! and [`SqliteStore::restore`] work while the server runs.
//!
//! What it does not do: PostgreSQL (a later issue adds `migrations/postgres/` and a
//! `PgStore` implementing the same traits), caching, or any policy. sqlx and rusqlite errors
//! never leave this crate: they become [`confab_core::StoreError`] (or [`OpenError`] when opening).
//!
//! # Durability
//!
//! `synchronous=FULL` by default: an acknowledged write survives process crash and power
//! loss. [`Synchronous::Normal`] is available with its power-loss window documented there.
//!
//! # Several processes
//!
//! `confab user add` and friends open the same file beside a running server. SQLite's file
//! locks serialise the two writers; a write waits up to `busy_timeout_ms` for the lock and
//! then fails with `Unavailable`. Readers are never blocked (WAL).
//!
//! # Backup and restore on a live server
//!
//! [`SqliteStore::backup`] runs `VACUUM INTO` on a separate connection: a consistent
//! snapshot that does not block writes (WAL readers see a fixed snapshot). The file is
//! created 0600 and fsynced.
//!
//! [`SqliteStore::restore`] validates the backup (SQLite integrity check, schema version not
//! newer than this binary; an older backup is migrated on a private copy first), then, on
//! the writer connection, replaces the content of every table inside **one** transaction.
//! What a running server sees: writes queued behind the restore are applied after it, on the
//! restored content; reads started before the commit see the old content, reads after it the
//! new content — never a mix. Components that keep copies of stored data in memory learn of
//! the restore through [`SqliteStore::subscribe_restores`] and must reload. (In-memory state
//! that is not stored, like nonce-count windows, is not affected.)

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod backup;
mod config;
mod direct_reader;
mod direct_writer;
mod error;
mod events;
mod messages;
mod open;
mod policy;
mod registrations;
mod tokens;
mod users;
mod writer;

pub use backup::{BackupInfo, RestoreInfo};
pub use config::{StoreConfig, Synchronous};
pub use error::OpenError;
pub use open::{SqliteStore, supported_schema_version};
pub use writer::WriterStats;

#[cfg(test)]
mod tests;
