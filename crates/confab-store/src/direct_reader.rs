//! The direct reader: a dedicated OS thread with a read-only rusqlite connection for the
//! hot read (the digest check's user lookup, when the user cache misses).
//!
//! Through sqlx a lookup is a pool acquire plus a hand-off to the connection's worker
//! thread and back, with boxed arguments and rows. Here the thread blocks on its queue,
//! answers everything queued in one wake-up with a cached prepared statement, and each
//! caller gets one channel send. Reads never wait for the writers (WAL: each statement
//! reads the latest committed snapshot).

use std::path::Path;

use confab_core::StoreError;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::config::StoreConfig;
use crate::error::closed;

/// A read job; returns false to end the thread (shutdown).
type ReadFn = Box<dyn FnOnce(&Connection) -> bool + Send>;

/// The sending side, held by the store. The thread ends when it is dropped.
#[derive(Debug)]
pub(crate) struct DirectReader {
    tx: mpsc::Sender<ReadFn>,
}

/// Opens the thread's connection: read-only on the existing database.
pub(crate) fn connect(path: &Path, config: &StoreConfig) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(config.busy_timeout())?;
    stable_plans(&conn)?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) for a
/// connection whose statements are cached and re-run with new parameters.
///
/// Without it, a statement whose plan looked at a bound value (`LIMIT ?`, a range on an
/// indexed column: the bundled SQLite has STAT4) is marked expired each time that parameter
/// is bound again, and SQLite re-parses and re-plans it on the next step: the REGISTER
/// profile of issue 7 found the offline-IM check spending two thirds of its time in
/// `sqlite3Reprepare`. With QPSG the plan is made once, independent of the values.
pub(crate) fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl DirectReader {
    /// Starts the reader thread on `conn`.
    pub(crate) fn spawn(conn: Connection, queue_depth: usize) -> std::io::Result<DirectReader> {
        let (tx, mut rx) = mpsc::channel::<ReadFn>(queue_depth);
        std::thread::Builder::new()
            .name("confab-db-reader".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    if !job(&conn) {
                        return;
                    }
                    // Whatever queued meanwhile, without sleeping again.
                    while let Ok(job) = rx.try_recv() {
                        if !job(&conn) {
                            return;
                        }
                    }
                }
            })?;
        Ok(DirectReader { tx })
    }

    /// Runs `f` on the reader's connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadFn = Box::new(move |conn| {
            let _ = tx.send(f(conn));
            true
        });
        self.tx.send(job).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Ends the thread after the reads queued before; later reads fail `Unavailable`.
    pub(crate) async fn shutdown(&self) {
        let _ = self.tx.send(Box::new(|_| false)).await;
    }
}
