//! Opening the database named by `[store]` (SQLite through `confab-store`) behind the
//! `confab-core` traits, plus backup and restore. Commands and the server open the same
//! file; SQLite's locks and WAL let them run side by side.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use confab_core::{TokenStore, UserStore};
use confab_store::SqliteStore;

use crate::config::Config;

/// The storage traits this binary uses, backed by one database.
#[derive(Clone)]
pub struct Stores {
    /// User accounts.
    pub users: Arc<dyn UserStore>,
    /// Admin API tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// Registrar bindings.
    pub registrations: Arc<dyn confab_core::RegistrationStore>,
    /// Filter policy (Client Version Filter, Intelligent IM Filter).
    pub policy: Arc<dyn confab_core::policy::PolicyStore>,
    /// The offline message queue.
    pub messages: Arc<dyn confab_core::message_queue::MessageQueueStore>,
    /// Presence subscriptions (RFC 6665 notifier state).
    pub subscriptions: Arc<dyn confab_core::SubscriptionStore>,
    /// Presence publications (RFC 3903).
    pub publications: Arc<dyn confab_core::PublicationStore>,
    /// Contact lists and presence access policies.
    pub contacts: Arc<dyn confab_core::contacts::ContactStore>,
    sqlite: SqliteStore,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("path", &self.sqlite.path())
            .finish_non_exhaustive()
    }
}

impl Stores {
    fn new(sqlite: SqliteStore) -> Self {
        Self {
            users: Arc::new(sqlite.clone()),
            tokens: Arc::new(sqlite.clone()),
            registrations: Arc::new(sqlite.clone()),
            policy: Arc::new(sqlite.clone()),
            messages: Arc::new(sqlite.clone()),
            subscriptions: Arc::new(sqlite.clone()),
            publications: Arc::new(sqlite.clone()),
            contacts: Arc::new(sqlite.clone()),
            sqlite,
        }
    }

    /// Commits queued writes and closes the database.
    pub async fn close(&self) {
        self.sqlite.close().await;
    }

    /// Keeps every user's credentials in memory while they fit the user cache (the
    /// server's digest checks; see `SqliteStore::keep_users_loaded`).
    pub fn keep_users_loaded(&self) {
        self.sqlite.keep_users_loaded();
    }

    /// Checks that the database answers (readiness).
    pub async fn ping(&self) -> Result<(), confab_core::StoreError> {
        self.sqlite.ping().await
    }
}

/// Opens the existing database (migrating it; refusing one newer than this binary).
pub async fn open(config: &Config) -> anyhow::Result<Stores> {
    let sqlite = SqliteStore::open(config.store.clone()).await?;
    Ok(Stores::new(sqlite))
}

/// Creates (mode 0600) and migrates the database, or migrates an existing one.
pub async fn create(config: &Config) -> anyhow::Result<()> {
    let sqlite = SqliteStore::open_or_create(config.store.clone()).await?;
    sqlite.close().await;
    Ok(())
}

/// Writes a consistent snapshot to `file` (0600) while the server may be running.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    let stores = open(config).await?;
    let result = stores
        .sqlite
        .backup(file)
        .await
        .with_context(|| format!("backup to {}", file.display()));
    stores.close().await;
    let info = result?;
    tracing::info!(file = %info.path.display(), bytes = info.bytes, "backup written");
    Ok(())
}

/// Replaces the database content with the backup in `file`, in one transaction; a running
/// server sees the old content or the new one, never a mix.
pub async fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    let stores = open(config).await?;
    let result = stores
        .sqlite
        .restore(file)
        .await
        .with_context(|| format!("restore from {}", file.display()));
    stores.close().await;
    let info = result?;
    tracing::info!(tables = info.tables, rows = info.rows, "restored");
    Ok(())
}
