//! The direct writer: a dedicated OS thread that owns its own SQLite connection (rusqlite,
//! no async layer) and group-commits the hot writes — the bindings of REGISTER — in one
//! wake-up per batch.
//!
//! ```text
//!  registrar ──job──▶ [bounded queue] ──▶ writer thread (blocks on the queue)
//!                                          takes everything queued (≤ max_batch)
//!                                          BEGIN IMMEDIATE
//!                                            SAVEPOINT job; job 1; RELEASE job
//!                                            SAVEPOINT job; job 2; RELEASE job ...
//!                                          COMMIT        ◀── one fsync per batch (synchronous=FULL)
//!  registrar ◀──result── one channel send per job, only after COMMIT returned Ok
//! ```
//!
//! Why a second writer beside the sqlx one ([`crate::writer`]): sqlx runs every statement
//! on a worker thread of its own and hands each one over through a channel, so a REGISTER's
//! four or five statements cost as many thread hand-offs and wake-ups; in the REGISTER
//! profile of `bench/README.md` that machinery (plus the allocations it makes) was about as
//! much CPU as SQLite itself. Here the statements are prepared once (rusqlite's statement
//! cache) and run on the thread that owns the connection: a batch of n REGISTERs costs one
//! wake-up of this thread and n wake-ups of the callers. Everything that is not on the hot
//! path (users, tokens, messages, policy, restore, ...) stays on sqlx.
//!
//! **Two writing connections, one writer at a time.** SQLite allows one write transaction
//! at a time; two in-process writers would otherwise meet in SQLite's busy handler (which
//! sleeps). So the sqlx writer asks this thread for the database before each of its batches
//! ([`Gate`]): the thread commits what it has, lets the sqlx batch run, and waits for it to
//! finish. In-process writes are thus serialised without sleeping, in queue order.
//!
//! **Other processes' writes.** `PRAGMA data_version` on this connection changes when any
//! other connection commits. The thread re-reads it after every gated sqlx batch, so a
//! change seen at any other moment was made by another process (`confab user passwd`,
//! `confab restore` beside a running server): the binding mirror and the user cache are
//! dropped then (see `registrations.rs`). A foreign commit that lands exactly while a sqlx
//! batch holds the gate is taken for the sqlx batch's; the next foreign commit, the restore
//! generation (for a restore through this store) or the user cache's bound clears it.
//!
//! Durability is the sqlx writer's: `synchronous` as configured (FULL by default), each
//! caller answered after the COMMIT holding its write returned, every caller of a batch
//! whose COMMIT failed answered `Unavailable`, and the abort hook run before any of them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use confab_core::StoreError;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::config::{StoreConfig, Synchronous};
use crate::error::closed;
use crate::writer::{AbortHook, Completion, Counters, Done};

/// A write job: runs inside the batch transaction (inside its own savepoint).
type WriteFn = Box<dyn FnOnce(&Connection) -> Done + Send>;
/// An exclusive job: runs between batches, outside any transaction.
type ExclusiveFn = Box<dyn FnOnce(&mut Connection, &mut Local) + Send>;

enum Job {
    Write(WriteFn),
    Exclusive(ExclusiveFn),
    /// The sqlx writer wants the database: answer `entered`, then wait for `leave` (its
    /// sender is dropped when the sqlx batch is done).
    Gate {
        entered: oneshot::Sender<()>,
        leave: oneshot::Receiver<()>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Maps a rusqlite error to the store's error (rusqlite errors never leave this crate).
pub(crate) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable(format!("sqlite: {e}"))
}

/// Whether `e` broke a UNIQUE constraint.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// State the thread keeps between jobs, reachable from exclusive jobs.
pub(crate) struct Local {
    /// `PRAGMA data_version` when last checked (or after the last gated sqlx batch).
    baseline: i64,
    /// Drops what other processes' writes make stale (mirror, user cache).
    on_foreign: AbortHook,
}

impl Local {
    /// Whether another process committed since the last check; if so, `on_foreign` has run.
    pub(crate) fn check_foreign(&mut self, conn: &Connection) -> Result<bool, StoreError> {
        let now = data_version(conn)?;
        if now == self.baseline {
            return Ok(false);
        }
        self.baseline = now;
        (self.on_foreign)();
        Ok(true)
    }
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(unavailable)
}

/// Lets the sqlx writer take the database between this thread's batches (module docs).
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    tx: mpsc::Sender<Job>,
}

/// Held while the sqlx writer uses the database; dropping it hands the database back.
#[derive(Debug)]
pub(crate) struct GateGuard {
    _leave: Option<oneshot::Sender<()>>,
}

impl Gate {
    /// Waits until the direct writer has committed its current batch and parked.
    pub(crate) async fn enter(&self) -> GateGuard {
        let (entered, entered_rx) = oneshot::channel();
        let (leave_tx, leave) = oneshot::channel();
        if self.tx.send(Job::Gate { entered, leave }).await.is_err() {
            // The direct writer is gone (the store is closing): nothing to coordinate with.
            return GateGuard { _leave: None };
        }
        let _ = entered_rx.await;
        GateGuard {
            _leave: Some(leave_tx),
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Write(_) => "Job::Write",
            Job::Exclusive(_) => "Job::Exclusive",
            Job::Gate { .. } => "Job::Gate",
            Job::Shutdown(_) => "Job::Shutdown",
        })
    }
}

/// The sending side, held by the store.
#[derive(Debug)]
pub(crate) struct DirectWriter {
    tx: mpsc::Sender<Job>,
}

/// What the thread needs besides its connection.
pub(crate) struct Hooks {
    /// Counters shared with the sqlx writer (one set of writer figures).
    pub(crate) counters: Arc<Counters>,
    /// Run when a batch was rolled back, before any caller hears it.
    pub(crate) on_abort: AbortHook,
    /// Run when another process's commit is noticed.
    pub(crate) on_foreign: AbortHook,
}

/// Opens the thread's connection: read-write on the existing (migrated, WAL) database.
pub(crate) fn connect(path: &Path, config: &StoreConfig) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(config.busy_timeout())?;
    let sync = match config.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    // journal_mode=WAL is a property of the file (set when the store opened it); asking
    // again is cheap and makes sure.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
    ))?;
    crate::direct_reader::stable_plans(&conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl DirectWriter {
    /// Starts the writer thread on `conn`.
    pub(crate) fn spawn(
        conn: Connection,
        max_batch: usize,
        queue_depth: usize,
        hooks: Hooks,
    ) -> std::io::Result<(DirectWriter, Gate)> {
        let (tx, rx) = mpsc::channel(queue_depth);
        let baseline = data_version(&conn).unwrap_or(i64::MIN);
        let local = Local {
            baseline,
            on_foreign: hooks.on_foreign,
        };
        let batch = Batch {
            counters: hooks.counters,
            on_abort: hooks.on_abort,
        };
        std::thread::Builder::new()
            .name("confab-db-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1), batch, local))?;
        Ok((DirectWriter { tx: tx.clone() }, Gate { tx }))
    }

    /// Runs `f` inside the next batch transaction and returns its result once that
    /// transaction committed. `Err` from `f` rolls back `f`'s own changes only.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteFn = Box::new(move |conn| {
            let result = f(conn);
            Done {
                ok: result.is_ok(),
                complete: Box::new(move |commit: Result<(), StoreError>| {
                    let _ = tx.send(commit.and(result));
                }),
            }
        });
        self.tx.send(Job::Write(job)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| {
            StoreError::unavailable(
                "write not committed: its batch was aborted or the store closed",
            )
        })?
    }

    /// Runs `f` alone on the connection, outside any transaction, after the batch before it
    /// committed.
    pub(crate) async fn exclusive<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &mut Local) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ExclusiveFn = Box::new(move |conn, local| {
            let _ = tx.send(f(conn, local));
        });
        self.tx
            .send(Job::Exclusive(job))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Commits queued work, closes the connection and ends the thread.
    pub(crate) async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Jobs waiting in the queue.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

struct Batch {
    counters: Arc<Counters>,
    on_abort: AbortHook,
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    batch: Batch,
    mut local: Local,
) {
    let mut queue: Vec<Job> = Vec::with_capacity(max_batch);
    let mut writes: Vec<WriteFn> = Vec::with_capacity(max_batch);
    // One wake-up per batch: block for the first job, then take what else is queued.
    while let Some(first) = rx.blocking_recv() {
        queue.push(first);
        while queue.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => queue.push(job),
                Err(_) => break,
            }
        }
        for job in queue.drain(..) {
            match job {
                Job::Write(w) => writes.push(w),
                Job::Exclusive(f) => {
                    // Keep order: what was queued before it commits first.
                    commit_batch(&conn, &mut writes, &batch);
                    f(&mut conn, &mut local);
                }
                Job::Gate { entered, leave } => {
                    commit_batch(&conn, &mut writes, &batch);
                    // Foreign commits before the sqlx batch are still told apart.
                    let _ = local.check_foreign(&conn);
                    if entered.send(()).is_ok() {
                        // Err when the guard is dropped: the sqlx batch is done.
                        let _ = leave.blocking_recv();
                    }
                    // The sqlx batch's commit moved data_version: not a foreign write.
                    if let Ok(v) = data_version(&conn) {
                        local.baseline = v;
                    }
                }
                Job::Shutdown(done) => {
                    commit_batch(&conn, &mut writes, &batch);
                    rx.close();
                    drop(conn);
                    let _ = done.send(());
                    return;
                }
            }
        }
        commit_batch(&conn, &mut writes, &batch);
    }
}

/// Runs one cached statement without parameters.
fn exec(conn: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `writes` in one transaction and answers every caller after the commit.
fn commit_batch(conn: &Connection, writes: &mut Vec<WriteFn>, batch: &Batch) {
    if writes.is_empty() {
        return;
    }
    let counters = &batch.counters;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .writes
        .fetch_add(writes.len() as u64, Ordering::Relaxed);
    let mut pending: Vec<Completion> = Vec::with_capacity(writes.len());
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        fail_all(writes.drain(..), pending, unavailable(e), batch);
        return;
    }
    let mut jobs = writes.drain(..);
    for job in jobs.by_ref() {
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            // SQLite aborted the transaction (I/O error, disk full): nothing of this batch
            // is saved.
            rollback(conn);
            fail_all(jobs, pending, unavailable(e), batch);
            return;
        }
        let done = job(conn);
        pending.push(done.complete);
        let end = if done.ok {
            exec(conn, "RELEASE job")
        } else {
            // Undo this job's changes only.
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            rollback(conn);
            fail_all(jobs, pending, unavailable(e), batch);
            return;
        }
    }
    drop(jobs);
    match exec(conn, "COMMIT") {
        Ok(()) => {
            for complete in pending {
                complete(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed; the whole batch is reported unavailable");
            rollback(conn);
            fail_all(std::iter::empty(), pending, unavailable(e), batch);
        }
    }
}

fn fail_all(
    not_run: impl Iterator<Item = WriteFn>,
    pending: Vec<Completion>,
    err: StoreError,
    batch: &Batch,
) {
    crate::writer::fail_batch(not_run, pending, err, &batch.counters, &batch.on_abort);
}

fn rollback(conn: &Connection) {
    // Fails harmlessly when SQLite already rolled the transaction back.
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
}
