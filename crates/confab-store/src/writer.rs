//! The group-commit writer: one task owns the only writing connection and commits queued
//! writes in batches.
//!
//! ```text
//!  callers ──job──▶ [bounded queue] ──▶ writer task
//!                                        BEGIN IMMEDIATE; SAVEPOINT job
//!                                        run job 1   (on failure: ROLLBACK TO job)
//!                                        RELEASE job; SAVEPOINT job
//!                                        run job 2 ...
//!                                        RELEASE job; COMMIT   ◀── one fsync for the whole batch
//!  callers ◀──result── only after COMMIT returned Ok (else every job gets Unavailable)
//! ```
//!
//! The transaction-control statements between two jobs go to SQLite as one multi-statement
//! string: sqlx runs every statement on its own worker thread, so each call is a hand-off
//! and a wake-up (about 10 µs of CPU each on the benchmark box); joining them makes the
//! batch overhead n + 1 hand-offs for n jobs instead of 2n + 2.
//!
//! Batching is natural: while one batch commits, new jobs queue up, and the next batch takes
//! everything queued (up to `max_batch`). No timer delays a lone write. Each job runs inside
//! its own savepoint, so a job that fails (a conflict, a missing user) leaves no trace and
//! does not disturb the others. A job's result is held back until the commit holding it
//! succeeded; if the commit fails, or SQLite aborts the transaction, every job of the batch
//! is answered `Unavailable` and nothing of it is reported saved.
//!
//! Exclusive jobs (restore) run alone, outside any batch transaction.
//!
//! The bindings (REGISTER's writes) do not come here: they go to the direct writer
//! ([`crate::direct_writer`]), a thread with its own rusqlite connection. This writer takes
//! that thread's [`Gate`] around each batch and exclusive job, so the two never hold SQLite's
//! write lock at the same time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confab_core::StoreError;
use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::direct_writer::Gate;
use crate::error::{closed, unavailable};

fn not_committed() -> StoreError {
    StoreError::unavailable("write not committed: its batch was aborted or the store closed")
}

/// A boxed future borrowing the connection.
pub(crate) type BoxFut<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// What a write job hands back: whether it succeeded (else its savepoint is rolled back),
/// and how to answer its caller once the commit outcome is known.
pub(crate) struct Done {
    pub(crate) ok: bool,
    pub(crate) complete: Completion,
}

/// Answers one caller with the commit outcome.
pub(crate) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

type WriteFn = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Done> + Send>;
type ExclusiveFn = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, ()> + Send>;

pub(crate) enum Job {
    Write(WriteFn),
    Exclusive(ExclusiveFn),
    Shutdown(oneshot::Sender<()>),
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
}

/// Figures of the group-commit writer since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (or attempted).
    pub batches: u64,
    /// Write operations executed.
    pub writes: u64,
    /// Batches whose commit failed (all their callers got `Unavailable`).
    pub failed_batches: u64,
}

/// Called by the writer task, before any caller hears the outcome, when a batch was rolled
/// back: in-memory mirrors that jobs of the batch already updated must be dropped before
/// the next batch reads them.
pub(crate) type AbortHook = Box<dyn Fn() + Send + Sync>;

/// The sending side, held by the store.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    pub(crate) counters: Arc<Counters>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Write(_) => "Job::Write",
            Job::Exclusive(_) => "Job::Exclusive",
            Job::Shutdown(_) => "Job::Shutdown",
        })
    }
}

impl Writer {
    /// Starts the writer task on `conn`.
    pub(crate) fn spawn(
        conn: SqliteConnection,
        max_batch: usize,
        queue_depth: usize,
        on_abort: AbortHook,
        counters: Arc<Counters>,
        gate: Gate,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(queue_depth);
        let batch = Batch {
            counters: counters.clone(),
            on_abort,
            gate,
        };
        tokio::spawn(run(conn, rx, max_batch, batch));
        Writer { tx, counters }
    }

    /// Runs `f` inside the next batch transaction and returns its result once that
    /// transaction committed. `Err` from `f` rolls back `f`'s own changes only.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteFn = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                Done {
                    ok: result.is_ok(),
                    complete: Box::new(move |commit: Result<(), StoreError>| {
                        let _ = tx.send(commit.and(result));
                    }),
                }
            })
        });
        self.tx.send(Job::Write(job)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| not_committed())?
    }

    /// Runs `f` alone on the writing connection, outside any transaction (after the
    /// batch before it committed). `f` manages its own transaction.
    pub(crate) async fn exclusive<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ExclusiveFn = Box::new(move |conn| {
            Box::pin(async move {
                let _ = tx.send(f(conn).await);
            })
        });
        self.tx
            .send(Job::Exclusive(job))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Finishes queued work, closes the connection and stops the task.
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

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            failed_batches: self.counters.failed_batches.load(Ordering::Relaxed),
        }
    }
}

/// What every batch needs besides the connection.
struct Batch {
    counters: Arc<Counters>,
    on_abort: AbortHook,
    /// Taken from the direct writer around every batch and exclusive job.
    gate: Gate,
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    batch: Batch,
) {
    let mut queue: Vec<Job> = Vec::with_capacity(max_batch);
    let mut writes: Vec<WriteFn> = Vec::with_capacity(max_batch);
    loop {
        if rx.recv_many(&mut queue, max_batch).await == 0 {
            break; // every sender dropped
        }
        for job in queue.drain(..) {
            match job {
                Job::Write(w) => writes.push(w),
                Job::Exclusive(f) => {
                    // Keep order: what was queued before it commits first.
                    commit_batch(&mut conn, &mut writes, &batch).await;
                    let _gate = batch.gate.enter().await;
                    f(&mut conn).await;
                }
                Job::Shutdown(done) => {
                    commit_batch(&mut conn, &mut writes, &batch).await;
                    // Later jobs in this drain and in the queue are dropped: their callers
                    // see "store is closed".
                    rx.close();
                    let _ = conn.close().await;
                    let _ = done.send(());
                    return;
                }
            }
        }
        commit_batch(&mut conn, &mut writes, &batch).await;
    }
    let _ = conn.close().await;
}

/// Runs `writes` in one transaction and answers every caller after the commit.
async fn commit_batch(conn: &mut SqliteConnection, writes: &mut Vec<WriteFn>, batch: &Batch) {
    if writes.is_empty() {
        return;
    }
    // No other in-process writer while this batch runs (direct_writer.rs).
    let _gate = batch.gate.enter().await;
    let counters = &batch.counters;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .writes
        .fetch_add(writes.len() as u64, Ordering::Relaxed);
    let mut pending: Vec<Completion> = Vec::with_capacity(writes.len());
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE; SAVEPOINT job").await {
        // BEGIN may have succeeded and SAVEPOINT not.
        rollback(conn).await;
        fail_all(writes.drain(..), Vec::new(), unavailable(e), batch);
        return;
    }
    let n = writes.len();
    let mut jobs = writes.drain(..);
    let mut i = 0;
    for job in jobs.by_ref() {
        i += 1;
        let done = job(conn).await;
        pending.push(done.complete);
        if !done.ok {
            // Undo this job's changes; the savepoint stays open for what follows.
            if let Err(e) = exec(conn, "ROLLBACK TO job").await {
                rollback(conn).await;
                fail_all(jobs, pending, unavailable(e), batch);
                return;
            }
        }
        if i == n {
            break;
        }
        if let Err(e) = exec(conn, "RELEASE job; SAVEPOINT job").await {
            // SQLite aborted the transaction (I/O error, disk full): nothing of this batch
            // is saved.
            rollback(conn).await;
            fail_all(jobs, pending, unavailable(e), batch);
            return;
        }
    }
    drop(jobs);
    match exec(conn, "RELEASE job; COMMIT").await {
        Ok(()) => {
            for complete in pending {
                complete(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed; the whole batch is reported unavailable");
            rollback(conn).await;
            fail_all(std::iter::empty(), pending, unavailable(e), batch);
        }
    }
}

/// Fails a batch (both writers): counts it, runs the abort hook before any caller hears of
/// it (and before the next batch runs), fails the jobs that ran, drops those that did not.
pub(crate) fn fail_batch<W>(
    not_run: impl Iterator<Item = W>,
    pending: Vec<Completion>,
    err: StoreError,
    counters: &Counters,
    on_abort: &AbortHook,
) {
    counters.failed_batches.fetch_add(1, Ordering::Relaxed);
    on_abort();
    for complete in pending {
        complete(Err(err.clone()));
    }
    // Jobs that never ran are dropped with their reply channels; their callers get
    // `not_committed()`.
    not_run.for_each(drop);
}

fn fail_all(
    not_run: impl Iterator<Item = WriteFn>,
    pending: Vec<Completion>,
    err: StoreError,
    batch: &Batch,
) {
    fail_batch(not_run, pending, err, &batch.counters, &batch.on_abort);
}

async fn rollback(conn: &mut SqliteConnection) {
    // Fails harmlessly when SQLite already rolled the transaction back.
    let _ = exec(conn, "ROLLBACK").await;
}

/// Runs `sql` (one or more statements separated by `;`) in one hand-off to sqlx's worker.
async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(&mut *conn).await.map(|_| ())
}
