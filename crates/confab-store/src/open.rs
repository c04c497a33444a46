//! Opening the database: file creation with mode 0600, pragmas, the schema version check
//! and migrations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use confab_core::StoreError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::watch;

use crate::config::{StoreConfig, Synchronous};
use crate::error::{OpenError, unavailable};
use crate::writer::{Writer, WriterStats};

/// The SQLite migrations, embedded at compile time (no `DATABASE_URL` needed).
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The newest schema version this binary knows (the highest migration number).
pub fn supported_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The SQLite store. Cheap to clone (all clones share one writer and one read pool).
///
/// Hand it to roles as `Arc<dyn UserStore>` / `Arc<dyn TokenStore>`:
/// `let users: Arc<dyn UserStore> = Arc::new(store.clone());`
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) config: StoreConfig,
    pub(crate) read: SqlitePool,
    pub(crate) writer: Writer,
    /// The direct (rusqlite) writer thread: binding writes and the mirror.
    pub(crate) direct: crate::direct_writer::DirectWriter,
    /// The direct (rusqlite) reader thread: the digest check's user lookups.
    pub(crate) reader: crate::direct_reader::DirectReader,
    pub(crate) restores: watch::Sender<u64>,
    /// In-memory mirror of the `bindings` table (`registrations.rs`).
    pub(crate) bindings: Arc<crate::registrations::BindingCache>,
    /// Bounded cache of `get_user` answers (`users.rs`).
    pub(crate) users: Arc<crate::users::UserCache>,
    /// Recipients that may have queued offline messages (`messages.rs`).
    pub(crate) queued: Arc<crate::messages::QueuedHint>,
    #[cfg(test)]
    pub(crate) fail_commits: Arc<std::sync::atomic::AtomicU32>,
}

fn sqlite_err(path: &Path, e: impl std::fmt::Display) -> OpenError {
    OpenError::Sqlite {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Creates `path` empty with mode 0600 if it does not exist. An empty file is a valid empty
/// SQLite database; SQLite gives the `-wal` and `-shm` files the same mode.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<bool> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn connect_options(path: &Path, config: &StoreConfig) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(config.busy_timeout())
        .foreign_keys(true)
}

/// Reads the highest applied migration version; 0 for a fresh database.
pub(crate) async fn schema_version(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    let has_table: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if has_table.is_none() {
        return Ok(0);
    }
    let v: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(&mut *conn)
            .await?;
    Ok(v.unwrap_or(0))
}

/// Refuses a schema newer than this binary, then applies pending migrations.
pub(crate) async fn check_and_migrate(
    conn: &mut SqliteConnection,
    path: &Path,
) -> Result<i64, OpenError> {
    let found = schema_version(conn)
        .await
        .map_err(|e| sqlite_err(path, e))?;
    let supported = supported_schema_version();
    if found > supported {
        return Err(OpenError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    MIGRATOR
        .run(&mut *conn)
        .await
        .map_err(|e| OpenError::Migration {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(supported)
}

impl SqliteStore {
    /// Opens an existing database, migrating it to the current schema.
    /// [`OpenError::NotFound`] if the file does not exist.
    pub async fn open(config: StoreConfig) -> Result<SqliteStore, OpenError> {
        SqliteStore::open_inner(config, false).await
    }

    /// Opens the database, creating it (mode 0600) if it does not exist, and migrates it.
    /// For `confab init` and the first `confab serve`.
    pub async fn open_or_create(config: StoreConfig) -> Result<SqliteStore, OpenError> {
        SqliteStore::open_inner(config, true).await
    }

    async fn open_inner(config: StoreConfig, create: bool) -> Result<SqliteStore, OpenError> {
        let path = config.path.clone();
        config
            .validate()
            .map_err(|reason| sqlite_err(&path, reason))?;
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        if create {
            create_private_file(&path).map_err(io)?;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::NotFound(path));
            }
            Err(e) => return Err(io(e)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                    "database file is readable by other users; it holds password hashes (chmod 600)");
            }
        }
        #[cfg(not(unix))]
        let _ = meta;

        let sync = match config.synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        };
        let write_opts = connect_options(&path, &config)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync);
        let mut conn = SqliteConnection::connect_with(&write_opts)
            .await
            .map_err(|e| sqlite_err(&path, e))?;
        check_and_migrate(&mut conn, &path).await?;

        #[cfg(test)]
        let fail_commits = {
            let flag = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let hook_flag = flag.clone();
            let mut handle = conn.lock_handle().await.map_err(|e| sqlite_err(&path, e))?;
            // Returning false turns the COMMIT into a ROLLBACK: a real commit failure.
            handle.set_commit_hook(move || {
                use std::sync::atomic::Ordering;
                hook_flag
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_err()
            });
            drop(handle);
            flag
        };

        let read_opts = connect_options(&path, &config).read_only(true);
        let read = SqlitePoolOptions::new()
            .max_connections(config.read_connections)
            .min_connections(1)
            .connect_with(read_opts)
            .await
            .map_err(|e| sqlite_err(&path, e))?;

        let bindings: Arc<crate::registrations::BindingCache> = Default::default();
        let users = Arc::new(crate::users::UserCache::new(config.user_cache_entries));
        let queued: Arc<crate::messages::QueuedHint> = Default::default();
        let on_abort = {
            let bindings = bindings.clone();
            // A rolled-back batch may have updated the mirror: drop it before the next
            // batch reads it (it is reloaded on next use).
            Box::new(move || bindings.invalidate())
        };
        let on_foreign = {
            let (bindings, users, queued) = (bindings.clone(), users.clone(), queued.clone());
            Box::new(move || {
                tracing::info!(
                    "another process wrote the database; dropping cached bindings and users"
                );
                bindings.invalidate();
                users.invalidate();
                queued.invalidate();
            })
        };
        let direct_conn =
            crate::direct_writer::connect(&path, &config).map_err(|e| sqlite_err(&path, e))?;
        #[cfg(test)]
        {
            let hook_flag = fail_commits.clone();
            // Returning true turns the COMMIT into a ROLLBACK.
            direct_conn
                .commit_hook(Some(move || {
                    use std::sync::atomic::Ordering;
                    hook_flag
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                }))
                .map_err(|e| sqlite_err(&path, e))?;
        }
        let counters = Arc::new(crate::writer::Counters::default());
        let (direct, gate) = crate::direct_writer::DirectWriter::spawn(
            direct_conn,
            config.max_batch,
            config.queue_depth,
            crate::direct_writer::Hooks {
                counters: counters.clone(),
                on_abort: {
                    let bindings = bindings.clone();
                    Box::new(move || bindings.invalidate())
                },
                on_foreign,
            },
        )
        .map_err(io)?;
        let reader = crate::direct_reader::DirectReader::spawn(
            crate::direct_reader::connect(&path, &config).map_err(|e| sqlite_err(&path, e))?,
            config.queue_depth,
        )
        .map_err(io)?;
        let writer = Writer::spawn(
            conn,
            config.max_batch,
            config.queue_depth,
            on_abort,
            counters,
            gate,
        );
        let (restores, _) = watch::channel(0);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                config,
                read,
                writer,
                direct,
                reader,
                restores,
                bindings,
                users,
                queued,
                #[cfg(test)]
                fail_commits,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Figures of the group-commit writer (for metrics).
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// A counter that increases after every completed [`SqliteStore::restore`]; components
    /// that cache stored data reload when it changes.
    pub fn subscribe_restores(&self) -> watch::Receiver<u64> {
        self.inner.restores.subscribe()
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.read)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.inner.read.acquire().await.map_err(unavailable)?;
        schema_version(&mut conn).await.map_err(unavailable)
    }

    /// Commits queued writes, stops the writer and closes all connections. Later calls on
    /// any clone fail with `Unavailable`.
    pub async fn close(&self) {
        self.inner.writer.shutdown().await;
        self.inner.direct.shutdown().await;
        self.inner.reader.shutdown().await;
        self.inner.read.close().await;
    }

    /// Makes the next `n` commits fail at the commit point (test support).
    #[cfg(test)]
    pub(crate) fn fail_next_commits(&self, n: u32) {
        self.inner
            .fail_commits
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }
}
