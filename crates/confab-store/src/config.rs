//! `[store]` configuration.

use std::path::PathBuf;
use std::time::Duration;

/// How hard SQLite works to make a commit survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// `synchronous=FULL`: the WAL is fsynced at every commit. A write acknowledged to a
    /// caller survives a crash of the process *and* a power loss or kernel crash. With group
    /// commit the cost is one fsync per batch, not per write. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is fsynced only at checkpoints. An acknowledged write
    /// survives a crash or `kill -9` of the process, but a power loss or OS crash can lose the
    /// commits since the last checkpoint (SQLite checkpoints every 1000 WAL pages, so up to
    /// about 4 MB of recent writes; the database stays consistent). Use only where that
    /// window is acceptable.
    Normal,
}

/// Configuration of the SQLite store (the `[store]` table of `confab.toml`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Database file. Relative paths are resolved by the binary against the config file's
    /// folder before the store sees them.
    pub path: PathBuf,
    /// Durability of commits; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock held by another process (e.g. `confab user add`
    /// beside a running server) before failing with `Unavailable`.
    pub busy_timeout_ms: u64,
    /// Read connections in the pool (reads run in parallel with the single writer).
    pub read_connections: u32,
    /// Most writes committed together in one transaction (group commit).
    pub max_batch: usize,
    /// Writes that may wait for the writer before callers are slowed down (back-pressure).
    pub queue_depth: usize,
    /// Users whose record (credentials) is kept in memory for digest checks; 0 turns the
    /// cache off. Changes made through this server apply at once; changes made by another
    /// process (`confab user ...` beside a running server) within 2 s.
    pub user_cache_entries: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            path: PathBuf::from("confab.db"),
            synchronous: Synchronous::Full,
            busy_timeout_ms: 5_000,
            read_connections: 4,
            max_batch: 512,
            queue_depth: 4_096,
            user_cache_entries: 10_000,
        }
    }
}

impl StoreConfig {
    /// Defaults with the given database file.
    pub fn new(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            ..StoreConfig::default()
        }
    }

    /// Checks the values (the binary calls this for `confab serve --check`).
    pub fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("store.path: must not be empty".into());
        }
        if self.read_connections == 0 || self.read_connections > 64 {
            return Err("store.read_connections: must be between 1 and 64".into());
        }
        if self.max_batch == 0 || self.max_batch > 100_000 {
            return Err("store.max_batch: must be between 1 and 100000".into());
        }
        if self.queue_depth == 0 {
            return Err("store.queue_depth: must be at least 1".into());
        }
        if self.busy_timeout_ms > 600_000 {
            return Err("store.busy_timeout_ms: must be at most 600000 (10 minutes)".into());
        }
        Ok(())
    }

    pub(crate) fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}
