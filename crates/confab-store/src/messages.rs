//! [`MessageQueueStore`] on SQLite (schema: `migrations/sqlite/0007_message_queue.sql`).
//!
//! Writes run in the group-commit writer, so `enqueue` answers only after the commit holding
//! the message (the 202 Accepted waits for it) and its quota check sees every earlier write
//! (the writer is the only writer of this process; another process's write holds SQLite's
//! write lock for the whole batch). Reads use the read-only pool.

use async_trait::async_trait;
use confab_core::message_queue::{
    Enqueued, MessageQueueStore, NewQueuedMessage, QueuedMessage, Quota,
};
use confab_core::{Address, Cursor, Page, PageRequest, StoreError, Timestamp};
use sqlx::SqliteConnection;

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::SqliteStore;
use crate::error::unavailable;

fn corrupt(field: &'static str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        field,
        message: format!("stored message is corrupt: {message}"),
    }
}

/// id, recipient, sender, received_at, expires_at, content_type, request, notify_failure,
/// imdn_message_id, first_delivered_at
type Row = (
    i64,
    String,
    String,
    i64,
    i64,
    String,
    Vec<u8>,
    i64,
    Option<String>,
    Option<i64>,
);

const COLUMNS: &str = "id, recipient, sender, received_at, expires_at, content_type, request, \
                       notify_failure, imdn_message_id, first_delivered_at";

fn from_row(r: Row, delivered_to: Vec<String>) -> Result<QueuedMessage, StoreError> {
    Ok(QueuedMessage {
        id: u64::try_from(r.0).map_err(|e| corrupt("id", e))?,
        message: NewQueuedMessage {
            recipient: Address::parse(&r.1).map_err(|e| corrupt("recipient", e))?,
            sender: r.2,
            received_at: Timestamp(r.3),
            expires_at: Timestamp(r.4),
            content_type: r.5,
            request: r.6,
            notify_failure: r.7 != 0,
            imdn_message_id: r.8,
        },
        first_delivered_at: r.9.map(Timestamp),
        delivered_to,
    })
}

async fn insert(conn: &mut SqliteConnection, m: &NewQueuedMessage) -> Result<u64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO message_queue (recipient, sender, received_at, expires_at, content_type, \
         request, size, notify_failure, imdn_message_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
    )
    .bind(m.recipient.as_str())
    .bind(&m.sender)
    .bind(m.received_at.as_millis())
    .bind(m.expires_at.as_millis())
    .bind(&m.content_type)
    .bind(&m.request)
    .bind(i64::try_from(m.request.len()).unwrap_or(i64::MAX))
    .bind(i64::from(m.notify_failure))
    .bind(m.imdn_message_id.as_deref())
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(u64::try_from(id).unwrap_or(0))
}

async fn enqueue_job(
    conn: &mut SqliteConnection,
    m: NewQueuedMessage,
    quota: Quota,
) -> Result<Enqueued, StoreError> {
    let (count, bytes): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(size), 0) FROM message_queue WHERE recipient = ?1",
    )
    .bind(m.recipient.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable)?;
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let bytes = u64::try_from(bytes).unwrap_or(0);
    let size = m.request.len() as u64;
    if count >= quota.max_messages || bytes.saturating_add(size) > quota.max_bytes {
        return Ok(Enqueued::OverQuota {
            messages: count,
            bytes,
        });
    }
    let id = insert(conn, &m).await?;
    Ok(Enqueued::Stored { id })
}

async fn record_job(
    conn: &mut SqliteConnection,
    id: i64,
    endpoint: String,
    now: i64,
) -> Result<bool, StoreError> {
    let found = sqlx::query(
        "UPDATE message_queue SET first_delivered_at = coalesce(first_delivered_at, ?2) \
         WHERE id = ?1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?
    .rows_affected()
        > 0;
    if found {
        sqlx::query(
            "INSERT INTO message_deliveries (message_id, endpoint) VALUES (?1, ?2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(endpoint)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    Ok(found)
}

async fn retire_job(
    conn: &mut SqliteConnection,
    ids: Vec<i64>,
    notifications: Vec<NewQueuedMessage>,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for id in ids {
        removed += sqlx::query("DELETE FROM message_queue WHERE id = ?1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?
            .rows_affected() as usize;
    }
    for n in &notifications {
        insert(conn, n).await?;
    }
    Ok(removed)
}

impl SqliteStore {
    async fn with_deliveries(&self, rows: Vec<Row>) -> Result<Vec<QueuedMessage>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let endpoints: Vec<String> = sqlx::query_scalar(
                "SELECT endpoint FROM message_deliveries WHERE message_id = ?1 ORDER BY endpoint",
            )
            .bind(r.0)
            .fetch_all(&self.inner.read)
            .await
            .map_err(unavailable)?;
            out.push(from_row(r, endpoints)?);
        }
        Ok(out)
    }
}

/// The messages a recipient can be sent now (not yet delivered and not expired, or
/// delivered within the window), oldest first.
const DELIVERABLE_SQL: &str = "SELECT id, recipient, sender, received_at, expires_at, \
    content_type, request, notify_failure, imdn_message_id, first_delivered_at \
    FROM message_queue WHERE recipient = ?1 \
    AND ((first_delivered_at IS NULL AND expires_at > ?2) OR first_delivered_at > ?2 - ?3) \
    ORDER BY id LIMIT ?4";

/// [`MessageQueueStore::deliverable`] on the direct reader's rusqlite connection.
fn deliverable_direct(
    conn: &rusqlite::Connection,
    recipient: &str,
    now: Timestamp,
    window_ms: i64,
    limit: u32,
) -> Result<Vec<QueuedMessage>, StoreError> {
    use crate::direct_writer::unavailable as db_unavailable;
    let mut stmt = conn
        .prepare_cached(DELIVERABLE_SQL)
        .map_err(db_unavailable)?;
    let rows = stmt
        .query_map(
            rusqlite::params![recipient, now.as_millis(), window_ms, i64::from(limit)],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .map_err(db_unavailable)?
        .collect::<Result<Vec<Row>, _>>()
        .map_err(db_unavailable)?;
    drop(stmt);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut ends = conn
            .prepare_cached(
                "SELECT endpoint FROM message_deliveries WHERE message_id = ?1 ORDER BY endpoint",
            )
            .map_err(db_unavailable)?;
        let endpoints = ends
            .query_map([r.0], |row| row.get::<_, String>(0))
            .map_err(db_unavailable)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(db_unavailable)?;
        out.push(from_row(r, endpoints)?);
    }
    Ok(out)
}

/// Every recipient with a row in `message_queue`.
fn queued_recipients(conn: &rusqlite::Connection) -> Result<HashSet<String>, StoreError> {
    use crate::direct_writer::unavailable as db_unavailable;
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT recipient FROM message_queue")
        .map_err(db_unavailable)?;
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map_err(db_unavailable)?
        .collect::<Result<HashSet<String>, _>>()
        .map_err(db_unavailable)
}

/// Which recipients may have queued messages, so that the offline-IM check after every
/// REGISTER ([`MessageQueueStore::deliverable`]) does not read SQLite for the users who have
/// none (nearly all of them). A superset: a recipient is added once its message (or failure
/// notice, [`MessageQueueStore::retire`]) is committed, every `insert` being followed by an
/// [`QueuedHint::add`], and forgotten only when a read found nothing deliverable and no message was queued since
/// the read began (the `epoch`). Messages stop being deliverable only as time passes (they
/// expire, or their re-delivery window closes), never become deliverable again without a new
/// enqueue, so forgetting is safe. Writes this process does not see (another process, a
/// restore) call [`QueuedHint::invalidate`]; the next check then reloads the set from the
/// table. Another process's enqueue is noticed by the foreign-write check, every 2 s: a
/// REGISTER in that window does not see it (the message goes at the user's next REGISTER).
/// One box has no other enqueuing process; a pool of front ends on one database will need
/// the enqueue announced to the others (left for the pool issue).
#[derive(Debug, Default)]
pub(crate) struct QueuedHint {
    state: Mutex<HintState>,
}

#[derive(Debug, Default)]
struct HintState {
    /// Whether `recipients` reflects the table (false at start and after an invalidation).
    loaded: bool,
    recipients: HashSet<String>,
    /// Bumped by every add and invalidation.
    epoch: u64,
}

/// What [`QueuedHint::check`] says about a recipient.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    /// Nothing queued: no need to read.
    Empty,
    /// Something may be queued: read, and pass `epoch` to [`QueuedHint::forget`].
    Look { epoch: u64 },
    /// Not known: load the set ([`QueuedHint::load`]), then read.
    Unknown { epoch: u64 },
}

impl QueuedHint {
    fn lock(&self) -> std::sync::MutexGuard<'_, HintState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn check(&self, recipient: &str) -> Hint {
        let st = self.lock();
        match (st.loaded, st.recipients.contains(recipient)) {
            (false, _) => Hint::Unknown { epoch: st.epoch },
            (true, true) => Hint::Look { epoch: st.epoch },
            (true, false) => Hint::Empty,
        }
    }

    /// Takes the set read from the table, unless something changed since `epoch`.
    pub(crate) fn load(&self, epoch: u64, recipients: HashSet<String>) {
        let mut st = self.lock();
        if st.epoch == epoch {
            st.recipients = recipients;
            st.loaded = true;
        }
    }

    pub(crate) fn add(&self, recipient: String) {
        let mut st = self.lock();
        st.epoch += 1;
        st.recipients.insert(recipient);
    }

    pub(crate) fn forget(&self, recipient: &str, epoch: u64) {
        let mut st = self.lock();
        if st.epoch == epoch {
            st.recipients.remove(recipient);
        }
    }

    pub(crate) fn invalidate(&self) {
        let mut st = self.lock();
        st.epoch += 1;
        st.loaded = false;
        st.recipients.clear();
    }
}

fn sql_id(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Invalid {
        field: "id",
        message: format!("{id} is not a message id"),
    })
}

#[async_trait]
impl MessageQueueStore for SqliteStore {
    async fn enqueue(
        &self,
        message: NewQueuedMessage,
        quota: Quota,
    ) -> Result<Enqueued, StoreError> {
        let recipient = message.recipient.as_str().to_owned();
        let r = self
            .inner
            .writer
            .write(move |conn| Box::pin(enqueue_job(conn, message, quota)))
            .await;
        // Committed: from now on a REGISTER of the recipient must look.
        if let Ok(Enqueued::Stored { .. }) = &r {
            self.inner.queued.add(recipient);
        }
        r
    }

    async fn deliverable(
        &self,
        recipient: &Address,
        now: Timestamp,
        window_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        // Asked after every successful REGISTER (offline delivery): on the direct reader's
        // thread with cached statements, not through sqlx (bench/README.md, REGISTER profile).
        // Another process's enqueue clears the hint through the foreign-write watch.
        crate::registrations::watch_foreign_writes_once(&self.inner);
        let hint = self.inner.queued.clone();
        let epoch = match hint.check(recipient.as_str()) {
            Hint::Empty => return Ok(Vec::new()),
            Hint::Look { epoch } => epoch,
            Hint::Unknown { epoch } => {
                let loaded = self.inner.reader.read(queued_recipients).await?;
                hint.load(epoch, loaded);
                epoch
            }
        };
        let key = recipient.as_str().to_owned();
        let found = self
            .inner
            .reader
            .read(move |conn| deliverable_direct(conn, &key, now, window_ms, limit))
            .await?;
        if found.is_empty() {
            hint.forget(recipient.as_str(), epoch);
        }
        Ok(found)
    }

    fn may_have_queued(&self, recipient: &Address) -> bool {
        self.inner.queued.check(recipient.as_str()) != Hint::Empty
    }

    async fn record_delivery(
        &self,
        id: u64,
        endpoint: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = sql_id(id)?;
        let endpoint = endpoint.to_owned();
        let now = now.as_millis();
        self.inner
            .writer
            .write(move |conn| Box::pin(record_job(conn, id, endpoint, now)))
            .await
    }

    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<QueuedMessage>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM message_queue \
             WHERE first_delivered_at IS NULL AND expires_at <= ?1 ORDER BY id LIMIT ?2"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.inner.read)
            .await
            .map_err(unavailable)?;
        self.with_deliveries(rows).await
    }

    async fn retire(
        &self,
        ids: &[u64],
        notifications: Vec<NewQueuedMessage>,
    ) -> Result<usize, StoreError> {
        let ids = ids
            .iter()
            .map(|&i| sql_id(i))
            .collect::<Result<Vec<_>, _>>()?;
        let recipients: Vec<String> = notifications
            .iter()
            .map(|n| n.recipient.as_str().to_owned())
            .collect();
        let r = self
            .inner
            .writer
            .write(move |conn| Box::pin(retire_job(conn, ids, notifications)))
            .await;
        // Committed (not before: a read between would forget them again).
        if r.is_ok() {
            for to in recipients {
                self.inner.queued.add(to);
            }
        }
        r
    }

    async fn sweep(&self, now: Timestamp, window_ms: i64) -> Result<usize, StoreError> {
        let now = now.as_millis();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "DELETE FROM message_queue \
                         WHERE first_delivered_at IS NOT NULL AND first_delivered_at <= ?1 - ?2",
                    )
                    .bind(now)
                    .bind(window_ms)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
                    Ok(n as usize)
                })
            })
            .await
    }

    async fn list_queued(
        &self,
        recipient: Option<&Address>,
        page: PageRequest,
    ) -> Result<Page<QueuedMessage>, StoreError> {
        let after: i64 = match &page.after {
            None => 0,
            Some(Cursor(c)) => c.parse().map_err(|_| StoreError::Invalid {
                field: "after",
                message: format!("'{c}' is not a cursor of this listing"),
            })?,
        };
        let limit = page.clamped_limit();
        let sql = format!(
            "SELECT {COLUMNS} FROM message_queue WHERE id > ?1 \
             AND (?2 IS NULL OR recipient = ?2) ORDER BY id LIMIT ?3"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(recipient.map(Address::as_str))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.inner.read)
            .await
            .map_err(unavailable)?;
        let more = rows.len() > limit as usize;
        let mut items = self.with_deliveries(rows).await?;
        items.truncate(limit as usize);
        let next = if more {
            items.last().map(|m| Cursor(m.id.to_string()))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn remove_queued(&self, id: u64) -> Result<bool, StoreError> {
        let id = sql_id(id)?;
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query("DELETE FROM message_queue WHERE id = ?1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable)?
                        .rows_affected();
                    Ok(n > 0)
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open_or_create(StoreConfig::new(dir.path().join("q.db")))
            .await
            .unwrap();
        (dir, s)
    }

    fn msg(to: &str, body: &str, expires: i64, notify: bool) -> NewQueuedMessage {
        NewQueuedMessage {
            recipient: Address::parse(to).unwrap(),
            sender: "sip:alice@example.com".into(),
            received_at: Timestamp(1000),
            expires_at: Timestamp(expires),
            content_type: "text/plain".into(),
            request: body.as_bytes().to_vec(),
            notify_failure: notify,
            imdn_message_id: notify.then(|| "m1".to_owned()),
        }
    }

    const QUOTA: Quota = Quota {
        max_messages: 3,
        max_bytes: 100,
    };

    #[test]
    fn hint_forgets_only_what_nobody_queued_meanwhile() {
        let h = QueuedHint::default();
        let Hint::Unknown { epoch } = h.check("bob@example.com") else {
            panic!("unknown until loaded")
        };
        h.load(epoch, HashSet::from(["bob@example.com".to_owned()]));
        assert_eq!(h.check("carol@example.com"), Hint::Empty);
        let Hint::Look { epoch } = h.check("bob@example.com") else {
            panic!("bob has messages")
        };
        // A message for bob is committed while his read runs: the empty read must not
        // clear him.
        h.add("bob@example.com".to_owned());
        h.forget("bob@example.com", epoch);
        let Hint::Look { epoch } = h.check("bob@example.com") else {
            panic!("kept")
        };
        h.forget("bob@example.com", epoch);
        assert_eq!(h.check("bob@example.com"), Hint::Empty);
        // After an invalidation nothing is known; a load that raced with an add is not
        // taken.
        h.invalidate();
        let Hint::Unknown { epoch } = h.check("bob@example.com") else {
            panic!("unknown after invalidate")
        };
        h.add("dave@example.com".to_owned());
        h.load(epoch, HashSet::new());
        assert!(matches!(h.check("erin@example.com"), Hint::Unknown { .. }));
    }

    /// The hint never hides a message: not one queued by this store, nor one queued by
    /// another process (seen once its write is noticed), nor one present at start.
    #[tokio::test]
    async fn hint_never_hides_a_queued_message() {
        let (d, s) = store().await;
        let bob = Address::parse("bob@example.com").unwrap();
        let dave = Address::parse("dave@example.com").unwrap();
        assert!(s.may_have_queued(&bob), "unknown before the first read");
        assert!(
            s.deliverable(&bob, Timestamp(2000), 500, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.inner.queued.check(bob.as_str()), Hint::Empty);
        assert!(!s.may_have_queued(&bob));
        s.enqueue(msg("bob@example.com", "hi", 10_000, false), QUOTA)
            .await
            .unwrap();
        assert!(s.may_have_queued(&bob));
        assert_eq!(
            s.deliverable(&bob, Timestamp(2000), 500, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // Another process queues for dave.
        let other = SqliteStore::open_or_create(StoreConfig::new(d.path().join("q.db")))
            .await
            .unwrap();
        other
            .enqueue(msg("dave@example.com", "yo", 10_000, false), QUOTA)
            .await
            .unwrap();
        s.check_foreign_writes_now().await.unwrap();
        assert_eq!(
            s.deliverable(&dave, Timestamp(2000), 500, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        other.close().await;
        // A fresh store loads the set from the table.
        s.close().await;
        let s = SqliteStore::open_or_create(StoreConfig::new(d.path().join("q.db")))
            .await
            .unwrap();
        assert_eq!(
            s.deliverable(&dave, Timestamp(2000), 500, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // Expired: not deliverable, and then known empty.
        assert!(
            s.deliverable(&dave, Timestamp(20_000), 500, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.inner.queued.check(dave.as_str()), Hint::Empty);
        s.close().await;
    }

    /// The offline-IM check runs after every REGISTER with new parameter values; SQLite
    /// must not re-plan it each time (it did: `LIMIT ?4` marked the statement expired on
    /// every bind, see `direct_reader::stable_plans`).
    #[tokio::test]
    async fn deliverable_is_planned_once() {
        let (d, s) = store().await;
        s.enqueue(msg("bob@example.com", "hi", 10_000, false), QUOTA)
            .await
            .unwrap();
        let path = d.path().join("q.db");
        let conn = crate::direct_reader::connect(&path, &StoreConfig::new(path.clone())).unwrap();
        let bob = Address::parse("bob@example.com").unwrap();
        for (now, limit) in [(2000, 10), (2001, 20), (2002, 30), (2003, 1)] {
            let got = deliverable_direct(&conn, bob.as_str(), Timestamp(now), 500, limit).unwrap();
            assert_eq!(got.len(), 1);
        }
        let stmt = conn.prepare_cached(DELIVERABLE_SQL).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    #[tokio::test]
    async fn quota_order_delivery_window_and_sweep() {
        let (_d, s) = store().await;
        let mut ids = Vec::new();
        for i in 0..3 {
            match s
                .enqueue(
                    msg("bob@example.com", &format!("m{i}"), 10_000, false),
                    QUOTA,
                )
                .await
                .unwrap()
            {
                Enqueued::Stored { id } => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // Count quota.
        assert_eq!(
            s.enqueue(msg("bob@example.com", "m3", 10_000, false), QUOTA)
                .await
                .unwrap(),
            Enqueued::OverQuota {
                messages: 3,
                bytes: 6
            }
        );
        // Byte quota, for another user.
        let big = "x".repeat(101);
        assert!(matches!(
            s.enqueue(msg("carol@example.com", &big, 10_000, false), QUOTA)
                .await
                .unwrap(),
            Enqueued::OverQuota { messages: 0, .. }
        ));
        let bob = Address::parse("bob@example.com").unwrap();
        let d = s.deliverable(&bob, Timestamp(2000), 500, 10).await.unwrap();
        assert_eq!(
            d.iter()
                .map(|m| m.message.request.clone())
                .collect::<Vec<_>>(),
            [b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]
        );
        assert!(
            s.record_delivery(ids[0], "ep-a", Timestamp(2000))
                .await
                .unwrap()
        );
        assert!(
            s.record_delivery(ids[0], "ep-a", Timestamp(2100))
                .await
                .unwrap()
        );
        assert!(
            s.record_delivery(ids[0], "ep-b", Timestamp(2200))
                .await
                .unwrap()
        );
        let d = s.deliverable(&bob, Timestamp(2400), 500, 10).await.unwrap();
        assert_eq!(d[0].first_delivered_at, Some(Timestamp(2000)));
        assert_eq!(d[0].delivered_to, ["ep-a", "ep-b"]);
        // The window of m0 is over at 2500: not deliverable, then swept.
        let d = s.deliverable(&bob, Timestamp(2500), 500, 10).await.unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(s.sweep(Timestamp(2500), 500).await.unwrap(), 1);
        assert!(
            !s.record_delivery(ids[0], "ep-c", Timestamp(2600))
                .await
                .unwrap()
        );
        let all = s.list_queued(None, PageRequest::first(1)).await.unwrap();
        assert_eq!(all.items.len(), 1);
        assert_eq!(all.items[0].id, ids[1]);
        let rest = s
            .list_queued(
                Some(&bob),
                PageRequest {
                    after: all.next,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.next, None);
        assert!(s.remove_queued(ids[2]).await.unwrap());
        assert!(!s.remove_queued(ids[2]).await.unwrap());
    }

    #[tokio::test]
    async fn expiry_retires_with_notifications_in_one_write() {
        let (_d, s) = store().await;
        let q = Quota {
            max_messages: 10,
            max_bytes: 10_000,
        };
        s.enqueue(msg("bob@example.com", "old", 5_000, true), q)
            .await
            .unwrap();
        s.enqueue(msg("bob@example.com", "new", 50_000, false), q)
            .await
            .unwrap();
        let bob = Address::parse("bob@example.com").unwrap();
        // Expired messages are no longer deliverable.
        assert_eq!(
            s.deliverable(&bob, Timestamp(6_000), 1000, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        let exp = s.expired(Timestamp(6_000), 10).await.unwrap();
        assert_eq!(exp.len(), 1);
        assert!(exp[0].message.notify_failure);
        assert_eq!(exp[0].message.imdn_message_id.as_deref(), Some("m1"));
        let note = msg("alice@example.com", "imdn", 90_000, false);
        assert_eq!(s.retire(&[exp[0].id], vec![note]).await.unwrap(), 1);
        assert!(s.expired(Timestamp(6_000), 10).await.unwrap().is_empty());
        let alice = Address::parse("alice@example.com").unwrap();
        let a = s
            .deliverable(&alice, Timestamp(6_000), 1000, 10)
            .await
            .unwrap();
        assert_eq!(a[0].message.request, b"imdn");
    }

    #[tokio::test]
    async fn queue_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let s = SqliteStore::open_or_create(StoreConfig::new(path.clone()))
            .await
            .unwrap();
        s.enqueue(msg("bob@example.com", "kept", 10_000, false), QUOTA)
            .await
            .unwrap();
        // No close: what enqueue acknowledged is committed.
        drop(s);
        let s = SqliteStore::open(StoreConfig::new(path)).await.unwrap();
        let l = s.list_queued(None, PageRequest::first(10)).await.unwrap();
        assert_eq!(l.items.len(), 1);
        assert_eq!(l.items[0].message.request, b"kept");
    }
}
