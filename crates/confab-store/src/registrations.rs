//! [`RegistrationStore`] on SQLite, with an in-memory mirror for routing lookups.
//!
//! **Writes** go through the direct writer ([`crate::direct_writer`]: a thread with its own
//! rusqlite connection that group-commits): the registrar's plan runs inside the batch
//! transaction on that thread, between reading the AOR's rows and writing the new set, so
//! two REGISTERs for one AOR never interleave, and the caller hears the outcome only after
//! the commit. Old and new bindings are paired by (registered_at, contact) — the registrar
//! keeps `registered_at` of a refreshed binding — so a refresh is one `UPDATE`, an unchanged
//! binding is not written, a removed one is a `DELETE`, a new one an `INSERT`. Every
//! statement is prepared once (rusqlite's statement cache).
//!
//! **Lookups** ([`RegistrationStore::lookup`], the proxy's hot path) read a mirror of the
//! `bindings` table kept in memory: one set entry per AOR, a single allocation holding the
//! AOR and its bindings encoded as one compact byte string (about 300 bytes for a typical
//! binding, 130 for the benchmark's; plus about 25 for the hash-set slot), decoded on lookup. A lookup through sqlx costs about 80 µs of CPU; the
//! mirror a few µs. Everything else (temp-GRUU lookups, listings, counts) reads SQLite
//! through sqlx's read pool.
//!
//! Mirror consistency: the mirror is loaded by an exclusive job of the direct writer (no
//! binding write can run concurrently) on first use and after a restore, and every write job
//! updates it in writer order, right after its SQL succeeded. A write whose batch then fails
//! to commit invalidates the mirror (reloaded on next use); until then lookups may see that
//! uncommitted binding, which is harmless for routing (the client got a 500 and will retry)
//! and never makes a REGISTER look saved. Other processes do not write bindings (the CLI
//! only reads them) except `confab restore` beside a running server: every 2 s the direct
//! writer compares its connection's `PRAGMA data_version` with the value it last saw (it
//! accounts for the in-process sqlx writer's commits, see `direct_writer.rs`) and drops the
//! mirror and the user cache when another process committed. A PostgreSQL pool store will
//! need change notifications instead.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use confab_core::{
    Address, Binding, BindingPlan, BindingsUpdate, Cursor, FlowInfo, Page, PageRequest, QValue,
    RegistrationStore, SipTransport, StoreError, TempGruuState, Timestamp, UpdateOutcome,
};
use rusqlite::Connection;

use crate::SqliteStore;
use crate::direct_writer::{is_unique_violation, unavailable as db_unavailable};
use crate::error::unavailable;
use crate::open::Inner;

macro_rules! columns {
    () => {
        "id, aor, contact, params, q, expires_at, call_id, cseq, instance, reg_id, flow, \
         transport, source, node, path, user_agent, registered_at, updated_at, temp_gruu_id, \
         temp_gruu_issued"
    };
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    aor: String,
    contact: String,
    params: String,
    q: Option<i64>,
    expires_at: i64,
    call_id: String,
    cseq: i64,
    instance: Option<String>,
    reg_id: Option<i64>,
    flow: String,
    transport: String,
    source: String,
    node: String,
    path: Option<String>,
    user_agent: Option<String>,
    registered_at: i64,
    updated_at: i64,
    temp_gruu_id: Option<i64>,
    temp_gruu_issued: Option<i64>,
}

fn corrupt(field: &'static str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        field,
        message: format!("stored value is corrupt: {message}"),
    }
}

impl Row {
    fn into_binding(self) -> Result<(i64, Binding), StoreError> {
        let u32_of = |field, v: i64| u32::try_from(v).map_err(|_| corrupt(field, v));
        let q = self
            .q
            .map(|q| {
                u16::try_from(q)
                    .ok()
                    .and_then(QValue::from_thousandths)
                    .ok_or_else(|| corrupt("q", q))
            })
            .transpose()?;
        let temp_gruu = match (self.temp_gruu_id, self.temp_gruu_issued) {
            (None, None) => None,
            (Some(id), Some(n)) => Some(TempGruuState {
                id: id as u64,
                issued: u32_of("temp_gruu_issued", n)?,
            }),
            _ => return Err(corrupt("temp_gruu", "id without count or count without id")),
        };
        let binding = Binding {
            aor: Address::parse(&self.aor).map_err(|e| corrupt("aor", e))?,
            contact: self.contact,
            params: self.params,
            q,
            expires_at: Timestamp(self.expires_at),
            call_id: self.call_id,
            cseq: u32_of("cseq", self.cseq)?,
            instance: self.instance,
            reg_id: self.reg_id.map(|r| u32_of("reg_id", r)).transpose()?,
            flow: FlowInfo {
                token: self.flow,
                transport: self
                    .transport
                    .parse::<SipTransport>()
                    .map_err(|e| corrupt("transport", e))?,
                source: self.source.parse().map_err(|e| corrupt("source", e))?,
                node: self.node,
            },
            path: self
                .path
                .map(|p| p.split('\n').map(str::to_owned).collect())
                .unwrap_or_default(),
            user_agent: self.user_agent,
            registered_at: Timestamp(self.registered_at),
            updated_at: Timestamp(self.updated_at),
            temp_gruu,
        };
        Ok((self.id, binding))
    }
}

fn rows_to_bindings(rows: Vec<Row>) -> Result<Vec<Binding>, StoreError> {
    rows.into_iter()
        .map(|r| r.into_binding().map(|(_, b)| b))
        .collect()
}

/// Checks what SQLite cannot: values that would not read back as written.
fn validate(b: &Binding, aor: &Address) -> Result<(), StoreError> {
    let invalid = |field, message: &str| {
        Err(StoreError::Invalid {
            field,
            message: message.to_owned(),
        })
    };
    if &b.aor != aor {
        return invalid(
            "aor",
            "a plan returned a binding of another address-of-record",
        );
    }
    if b.contact.is_empty() {
        return invalid("contact", "empty contact URI");
    }
    if b.path.iter().any(|p| p.is_empty() || p.contains('\n')) {
        return invalid("path", "a Path value is empty or contains a line break");
    }
    if b.reg_id.is_some() && b.instance.is_none() {
        return invalid("reg_id", "reg-id without +sip.instance");
    }
    let long = [
        ("contact", b.contact.len()),
        ("params", b.params.len()),
        ("call_id", b.call_id.len()),
        ("instance", b.instance.as_ref().map_or(0, String::len)),
        ("flow", b.flow.token.len()),
        ("node", b.flow.node.len()),
        ("path", b.path.iter().map(|p| p.len() + 1).sum()),
        ("user_agent", b.user_agent.as_ref().map_or(0, String::len)),
    ]
    .into_iter()
    .find(|(_, len)| *len > usize::from(u16::MAX));
    if let Some((field, _)) = long {
        return invalid(field, "longer than 65535 bytes");
    }
    Ok(())
}

fn joined_path(b: &Binding) -> Option<String> {
    (!b.path.is_empty()).then(|| b.path.join("\n"))
}

fn write_error(e: rusqlite::Error) -> StoreError {
    if is_unique_violation(&e) {
        // Two bindings drew the same random 64-bit temp-GRUU id: the caller retries with
        // fresh randomness.
        StoreError::Invalid {
            field: "temp_gruu",
            message: "temporary GRUU id already in use; draw a new one".into(),
        }
    } else {
        db_unavailable(e)
    }
}

/// Reads a `bindings` row selected with [`columns!`].
fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        aor: r.get(1)?,
        contact: r.get(2)?,
        params: r.get(3)?,
        q: r.get(4)?,
        expires_at: r.get(5)?,
        call_id: r.get(6)?,
        cseq: r.get(7)?,
        instance: r.get(8)?,
        reg_id: r.get(9)?,
        flow: r.get(10)?,
        transport: r.get(11)?,
        source: r.get(12)?,
        node: r.get(13)?,
        path: r.get(14)?,
        user_agent: r.get(15)?,
        registered_at: r.get(16)?,
        updated_at: r.get(17)?,
        temp_gruu_id: r.get(18)?,
        temp_gruu_issued: r.get(19)?,
    })
}

/// Runs a cached query and decodes its binding rows.
fn query_bindings(
    conn: &Connection,
    sql: &'static str,
    params: impl rusqlite::Params,
) -> Result<Vec<(i64, Binding)>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_unavailable)?;
    let rows = stmt.query_map(params, row_of).map_err(db_unavailable)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(db_unavailable)?.into_binding()?);
    }
    Ok(out)
}

/// The binding's values that are not stored as they are held.
struct Values {
    q: Option<i64>,
    expires_at: i64,
    transport: &'static str,
    source: String,
    path: Option<String>,
    registered_at: i64,
    updated_at: i64,
    temp_gruu_id: Option<i64>,
    temp_gruu_issued: Option<u32>,
}

impl Values {
    fn of(b: &Binding) -> Values {
        Values {
            q: b.q.map(|q| i64::from(q.thousandths())),
            expires_at: b.expires_at.as_millis(),
            transport: b.flow.transport.as_str(),
            source: b.flow.source.to_string(),
            path: joined_path(b),
            registered_at: b.registered_at.as_millis(),
            updated_at: b.updated_at.as_millis(),
            temp_gruu_id: b.temp_gruu.map(|t| t.id as i64),
            temp_gruu_issued: b.temp_gruu.map(|t| t.issued),
        }
    }

    /// Every column but `aor` and `id`, in the order of [`STORED_COLUMNS`]: the one
    /// parameter list of both the INSERT and the UPDATE.
    fn columns<'a>(&'a self, b: &'a Binding) -> [&'a dyn rusqlite::ToSql; 18] {
        [
            &b.contact,
            &b.params,
            &self.q,
            &self.expires_at,
            &b.call_id,
            &b.cseq,
            &b.instance,
            &b.reg_id,
            &b.flow.token,
            &self.transport,
            &self.source,
            &b.flow.node,
            &self.path,
            &b.user_agent,
            &self.registered_at,
            &self.updated_at,
            &self.temp_gruu_id,
            &self.temp_gruu_issued,
        ]
    }
}

/// The columns [`Values::columns`] gives, in its order.
macro_rules! stored_columns {
    () => {
        "contact, params, q, expires_at, call_id, cseq, instance, reg_id, flow, transport, \
         source, node, path, user_agent, registered_at, updated_at, temp_gruu_id, \
         temp_gruu_issued"
    };
}

/// Inserts `b` and returns its row id.
fn insert(conn: &Connection, b: &Binding) -> Result<i64, StoreError> {
    let v = Values::of(b);
    let mut stmt = conn
        .prepare_cached(concat!(
            "INSERT INTO bindings (aor, ",
            stored_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .map_err(db_unavailable)?;
    let aor = b.aor.as_str();
    let params = std::iter::once(&aor as &dyn rusqlite::ToSql).chain(v.columns(b));
    stmt.execute(rusqlite::params_from_iter(params))
        .map_err(write_error)?;
    Ok(conn.last_insert_rowid())
}

/// The mirror said a row exists that the table does not have: drop the mirror (reloaded on
/// next use) and fail this write (the client retries).
fn out_of_step(cache: &BindingCache) -> StoreError {
    cache.invalidate();
    tracing::warn!("binding mirror out of step with the table; reloading it");
    StoreError::unavailable("binding mirror out of step with the table; retry")
}

fn update_row(conn: &Connection, id: i64, b: &Binding) -> Result<(), StoreError> {
    let v = Values::of(b);
    let mut stmt = conn
        .prepare_cached(
            "UPDATE bindings SET contact = ?, params = ?, q = ?, expires_at = ?, call_id = ?, \
             cseq = ?, instance = ?, reg_id = ?, flow = ?, transport = ?, source = ?, node = ?, \
             path = ?, user_agent = ?, registered_at = ?, updated_at = ?, temp_gruu_id = ?, \
             temp_gruu_issued = ? WHERE id = ?",
        )
        .map_err(db_unavailable)?;
    let params = v
        .columns(b)
        .into_iter()
        .chain([&id as &dyn rusqlite::ToSql]);
    let n = stmt
        .execute(rusqlite::params_from_iter(params))
        .map_err(write_error)?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::unavailable("binding row vanished"))
    }
}

/// The registrar's write job, on the direct writer's thread inside the batch transaction.
fn update(
    conn: &Connection,
    aor: &Address,
    plan: BindingPlan,
    cache: &BindingCache,
) -> Result<UpdateOutcome, StoreError> {
    // The AOR's rows: from the mirror when it is loaded (it is exact: every write updates
    // it in writer order, a rolled-back batch or a restore drops it), else from the table.
    let cached = cache.get(aor);
    let from_mirror = cached.is_some();
    let mut old: Vec<(i64, Binding)> = match cached {
        Some(set) => set?,
        None => query_bindings(
            conn,
            concat!(
                "SELECT ",
                columns!(),
                " FROM bindings WHERE aor = ? ORDER BY registered_at, id"
            ),
            [aor.as_str()],
        )?,
    };
    let before: Vec<Binding> = old.iter().map(|(_, b)| b.clone()).collect();
    let after = match plan(&before) {
        Ok(set) => set,
        Err(refusal) => return Ok(UpdateOutcome::Refused(refusal)),
    };
    for b in &after {
        validate(b, aor)?;
    }
    // Pair new bindings with old rows by (registered_at, contact); each old row pairs once.
    // `ids[i]` is the row id of `after[i]` (None until inserted).
    let mut ids: Vec<Option<i64>> = Vec::with_capacity(after.len());
    for b in &after {
        let paired = old
            .iter()
            .position(|(_, o)| o.registered_at == b.registered_at && o.contact == b.contact);
        match paired {
            Some(i) => {
                let (id, o) = old.swap_remove(i);
                if o != *b {
                    update_row(conn, id, b)
                        .map_err(|e| if from_mirror { out_of_step(cache) } else { e })?;
                }
                ids.push(Some(id));
            }
            None => ids.push(None),
        }
    }
    for (id, _) in &old {
        let n = conn
            .prepare_cached("DELETE FROM bindings WHERE id = ?")
            .and_then(|mut s| s.execute([id]))
            .map_err(db_unavailable)?;
        if n != 1 && from_mirror {
            return Err(out_of_step(cache));
        }
    }
    for (b, id) in after.iter().zip(ids.iter_mut()) {
        if id.is_none() {
            *id = Some(insert(conn, b)?);
        }
    }
    let rows: Vec<(i64, &Binding)> = ids
        .into_iter()
        .zip(after.iter())
        .map(|(id, b)| (id.unwrap_or_default(), b))
        .collect();
    cache.set(aor, &rows);
    Ok(UpdateOutcome::Applied(BindingsUpdate { before, after }))
}

fn remove_expired(
    conn: &Connection,
    now: Timestamp,
    limit: u32,
    cache: &BindingCache,
) -> Result<Vec<Binding>, StoreError> {
    let removed = query_bindings(
        conn,
        concat!(
            "DELETE FROM bindings WHERE id IN (SELECT id FROM bindings WHERE expires_at <= ? \
             ORDER BY expires_at LIMIT ?) RETURNING ",
            columns!()
        ),
        rusqlite::params![now.as_millis(), i64::from(limit.max(1))],
    )?;
    cache.remove(&removed);
    Ok(removed.into_iter().map(|(_, b)| b).collect())
}

fn remove_flow(
    conn: &Connection,
    node: &str,
    token: &str,
    outbound_only: bool,
    cache: &BindingCache,
) -> Result<Vec<Binding>, StoreError> {
    let sql = if outbound_only {
        concat!(
            "DELETE FROM bindings WHERE flow = ? AND node = ? AND reg_id IS NOT NULL RETURNING ",
            columns!()
        )
    } else {
        concat!(
            "DELETE FROM bindings WHERE flow = ? AND node = ? RETURNING ",
            columns!()
        )
    };
    let removed = query_bindings(conn, sql, [token, node])?;
    cache.remove(&removed);
    Ok(removed.into_iter().map(|(_, b)| b).collect())
}

/// Cursor text: `<registered_at>.<id>.<hex of the AOR>` of the last binding of the previous
/// page: only `[0-9a-f.-]`, so it goes into a URL or a shell unquoted.
fn cursor_of(id: i64, b: &Binding) -> Cursor {
    let mut c = format!("{}.{id}.", b.registered_at.as_millis());
    for byte in b.aor.as_str().bytes() {
        c.push_str(&format!("{byte:02x}"));
    }
    Cursor(c)
}

fn parse_cursor(c: &Cursor) -> Result<(String, i64, i64), StoreError> {
    let bad = || StoreError::Invalid {
        field: "cursor",
        message: "not a cursor returned by list_bindings".into(),
    };
    let mut parts = c.0.splitn(3, '.');
    let (Some(at), Some(id), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    Ok((
        String::from_utf8(bytes).map_err(|_| bad())?,
        at.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}

impl SqliteStore {
    /// Runs a binding write job; a failure that may follow a mirror update (the commit
    /// failed) invalidates the mirror.
    async fn binding_write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &BindingCache) -> Result<T, StoreError> + Send + 'static,
    {
        let cache = self.inner.bindings.clone();
        let result = self.inner.direct.write(move |conn| f(conn, &cache)).await;
        if matches!(result, Err(StoreError::Unavailable { .. })) {
            self.inner.bindings.invalidate();
        }
        result
    }

    /// Loads the mirror unless it is loaded at `generation`.
    async fn ensure_mirror(&self, generation: u64) -> Result<(), StoreError> {
        let _one_load = self.inner.bindings.load.lock().await;
        if self
            .inner
            .bindings
            .read()
            .as_ref()
            .is_some_and(|m| m.generation == generation)
        {
            return Ok(());
        }
        let cache = self.inner.bindings.clone();
        self.inner
            .direct
            .exclusive(move |conn, local| {
                // Take in other processes' writes first, so they are not reported later
                // against the fresh mirror.
                local.check_foreign(conn)?;
                load_mirror(conn, &cache, generation)
            })
            .await?;
        watch_foreign_writes_once(&self.inner);
        Ok(())
    }

    /// Checks now for other processes' writes (what the watch task does periodically).
    #[cfg(test)]
    pub(crate) async fn check_foreign_writes_now(&self) -> Result<(), StoreError> {
        self.inner
            .direct
            .exclusive(|conn, local| local.check_foreign(conn).map(drop))
            .await
    }

    /// The AOR's live bindings from the mirror, loading it first if needed.
    async fn mirror_lookup(
        &self,
        aor: &Address,
        now: Timestamp,
    ) -> Result<Vec<Binding>, StoreError> {
        let generation = *self.inner.restores.borrow();
        for _ in 0..3 {
            {
                let g = self.inner.bindings.read();
                if let Some(m) = g.as_ref().filter(|m| m.generation == generation) {
                    return match m.map.get(aor.as_str()) {
                        None => Ok(Vec::new()),
                        Some(e) => decode(aor, e.bindings(), Some(now))
                            .map(|v| v.into_iter().map(|(_, b)| b).collect()),
                    };
                }
            }
            self.ensure_mirror(generation).await?;
        }
        // Invalidated three times in a row by failing commits: read the table.
        self.lookup_in_db(aor, now).await
    }

    async fn lookup_in_db(
        &self,
        aor: &Address,
        now: Timestamp,
    ) -> Result<Vec<Binding>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM bindings WHERE aor = ? AND expires_at > ? ORDER BY registered_at, id"
        ))
        .bind(aor.as_str())
        .bind(now.as_millis())
        .fetch_all(&self.inner.read)
        .await
        .map_err(unavailable)?;
        rows_to_bindings(rows)
    }
}

#[async_trait]
impl RegistrationStore for SqliteStore {
    async fn update_bindings(
        &self,
        aor: &Address,
        plan: BindingPlan,
    ) -> Result<UpdateOutcome, StoreError> {
        // Load the mirror first so the write reads the AOR's rows from it (no SELECT on
        // the writer connection). A failed load leaves the write to read the table.
        if self.inner.bindings.read().is_none() {
            let generation = *self.inner.restores.borrow();
            let _ = self.ensure_mirror(generation).await;
        }
        let aor = aor.clone();
        self.binding_write(move |conn, cache| update(conn, &aor, plan, cache))
            .await
    }

    async fn lookup(&self, aor: &Address, now: Timestamp) -> Result<Vec<Binding>, StoreError> {
        self.mirror_lookup(aor, now).await
    }

    async fn lookup_temp_gruu(
        &self,
        id: u64,
        now: Timestamp,
    ) -> Result<Option<Binding>, StoreError> {
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM bindings WHERE temp_gruu_id = ? AND expires_at > ?"
        ))
        .bind(id as i64)
        .bind(now.as_millis())
        .fetch_optional(&self.inner.read)
        .await
        .map_err(unavailable)?;
        row.map(|r| r.into_binding().map(|(_, b)| b)).transpose()
    }

    async fn list_bindings(&self, page: PageRequest) -> Result<Page<Binding>, StoreError> {
        let limit = page.clamped_limit();
        let fetch = i64::from(limit) + 1;
        let rows: Vec<Row> = match &page.after {
            None => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM bindings ORDER BY aor, registered_at, id LIMIT ?"
                ))
                .bind(fetch)
                .fetch_all(&self.inner.read)
                .await
            }
            Some(c) => {
                let (aor, at, id) = parse_cursor(c)?;
                sqlx::query_as(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM bindings WHERE (aor, registered_at, id) > (?, ?, ?) \
                     ORDER BY aor, registered_at, id LIMIT ?"
                ))
                .bind(aor)
                .bind(at)
                .bind(id)
                .bind(fetch)
                .fetch_all(&self.inner.read)
                .await
            }
        }
        .map_err(unavailable)?;
        let mut items: Vec<(i64, Binding)> = rows
            .into_iter()
            .map(Row::into_binding)
            .collect::<Result<_, _>>()?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = if more {
            items.last().map(|(id, b)| cursor_of(*id, b))
        } else {
            None
        };
        Ok(Page {
            items: items.into_iter().map(|(_, b)| b).collect(),
            next,
        })
    }

    async fn remove_expired(&self, now: Timestamp, limit: u32) -> Result<Vec<Binding>, StoreError> {
        self.binding_write(move |conn, cache| remove_expired(conn, now, limit, cache))
            .await
    }

    async fn remove_flow(
        &self,
        node: &str,
        token: &str,
        outbound_only: bool,
    ) -> Result<Vec<Binding>, StoreError> {
        let (node, token) = (node.to_owned(), token.to_owned());
        self.binding_write(move |conn, cache| {
            remove_flow(conn, &node, &token, outbound_only, cache)
        })
        .await
    }

    async fn count_bindings(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bindings")
            .fetch_one(&self.inner.read)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

// ---- the in-memory mirror ------------------------------------------------------------------

/// The in-memory mirror of the `bindings` table (see the module docs). Lives in the store's
/// shared state; `None` until loaded and after an invalidation.
#[derive(Debug, Default)]
pub(crate) struct BindingCache {
    mirror: RwLock<Option<Mirror>>,
    /// Serialises loads.
    load: tokio::sync::Mutex<()>,
    /// Whether the task watching for other processes' writes runs.
    watching: AtomicBool,
}

#[derive(Debug)]
struct Mirror {
    /// The restore generation the mirror was loaded at.
    generation: u64,
    /// One [`Entry`] per AOR with bindings; looked up by the AOR (`user@domain`).
    map: HashSet<Entry>,
}

/// One AOR's mirror entry in one allocation: the AOR's length (u32, little-endian), the AOR
/// (`user@domain`), then its bindings [`encode`]d in registration order. A separate boxed
/// key would cost a second allocation and 16 more bytes of hash-table slot per AOR (about
/// 50 bytes per binding at 100,000 AORs, `bench/README.md`). Hashes and compares as its AOR
/// string, so the set is looked up with a `&str` ([`Borrow`]).
#[derive(Debug)]
struct Entry(Box<[u8]>);

impl Entry {
    fn new(aor: &str, encoded: &[u8]) -> Entry {
        let mut v = Vec::with_capacity(4 + aor.len() + encoded.len());
        // An AOR is a parsed address, far below 4 GiB; saturating keeps this total anyway.
        v.extend_from_slice(&u32::try_from(aor.len()).unwrap_or(u32::MAX).to_le_bytes());
        v.extend_from_slice(aor.as_bytes());
        v.extend_from_slice(encoded);
        Entry(v.into_boxed_slice())
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let (len, rest) = self.0.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        rest.split_at(len.min(rest.len()))
    }

    /// The AOR. Built from a `&str`, so the UTF-8 check cannot fail (an empty string if it
    /// somehow did: that entry would then just never be found).
    fn aor(&self) -> &str {
        std::str::from_utf8(self.split().0).unwrap_or_default()
    }

    /// The encoded bindings.
    fn bindings(&self) -> &[u8] {
        self.split().1
    }
}

impl Borrow<str> for Entry {
    fn borrow(&self) -> &str {
        self.aor()
    }
}

// Hash and Eq agree with `str`'s, as `Borrow` requires.
impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.aor().hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.aor() == other.aor()
    }
}

impl Eq for Entry {}

impl BindingCache {
    fn read(&self) -> RwLockReadGuard<'_, Option<Mirror>> {
        self.mirror.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Option<Mirror>> {
        self.mirror.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The AOR's bindings with their row ids, if the mirror is loaded (inside a writer job).
    fn get(&self, aor: &Address) -> Option<Result<Vec<(i64, Binding)>, StoreError>> {
        let g = self.read();
        let m = g.as_ref()?;
        Some(match m.map.get(aor.as_str()) {
            None => Ok(Vec::new()),
            Some(e) => decode(aor, e.bindings(), None),
        })
    }

    /// Forgets the mirror; the next lookup reloads it.
    pub(crate) fn invalidate(&self) {
        *self.write() = None;
    }

    /// Sets the AOR's bindings (called inside a writer job, in writer order).
    fn set(&self, aor: &Address, set: &[(i64, &Binding)]) {
        let mut g = self.write();
        let Some(m) = g.as_mut() else { return };
        if set.is_empty() {
            m.map.remove(aor.as_str());
        } else {
            let mut data = Vec::new();
            encode(set.iter().copied(), &mut data);
            m.map.replace(Entry::new(aor.as_str(), &data));
        }
    }

    /// Drops `removed` bindings from their AORs' entries (inside a writer job).
    fn remove(&self, removed: &[(i64, Binding)]) {
        let mut g = self.write();
        let Some(m) = g.as_mut() else { return };
        let mut aors: Vec<&Address> = removed.iter().map(|(_, b)| &b.aor).collect();
        aors.sort();
        aors.dedup();
        for aor in aors {
            let Some(e) = m.map.get(aor.as_str()) else {
                continue;
            };
            let Ok(mut set) = decode(aor, e.bindings(), None) else {
                // Cannot happen (we encoded it); be safe and reload.
                *g = None;
                return;
            };
            set.retain(|(id, _)| !removed.iter().any(|(r, _)| r == id));
            if set.is_empty() {
                m.map.remove(aor.as_str());
            } else {
                let mut out = Vec::new();
                encode(set.iter().map(|(id, b)| (*id, b)), &mut out);
                m.map.replace(Entry::new(aor.as_str(), &out));
            }
        }
    }

    /// Whether the mirror is loaded.
    #[cfg(test)]
    pub(crate) fn is_loaded(&self) -> bool {
        self.read().is_some()
    }

    /// Number of AORs and encoded bytes held (for tests and metrics).
    #[cfg(test)]
    fn stats(&self) -> Option<(usize, usize)> {
        self.read()
            .as_ref()
            .map(|m| (m.map.len(), m.map.iter().map(|e| e.bindings().len()).sum()))
    }
}

/// Loads the whole table into a new mirror, on the direct writer's connection (an exclusive
/// job, so no binding write runs meanwhile). One streaming scan in `bindings_by_aor` order.
fn load_mirror(conn: &Connection, cache: &BindingCache, generation: u64) -> Result<(), StoreError> {
    let mut map: HashSet<Entry> = HashSet::new();
    let mut current: Option<(Address, Vec<(i64, Binding)>)> = None;
    let mut data = Vec::new();
    let mut flush = |cur: Option<(Address, Vec<(i64, Binding)>)>, data: &mut Vec<u8>| {
        if let Some((aor, set)) = cur {
            data.clear();
            encode(set.iter().map(|(id, b)| (*id, b)), data);
            map.replace(Entry::new(aor.as_str(), data));
        }
    };
    let mut stmt = conn
        .prepare(concat!(
            "SELECT ",
            columns!(),
            " FROM bindings ORDER BY aor, registered_at, id"
        ))
        .map_err(db_unavailable)?;
    let rows = stmt.query_map([], row_of).map_err(db_unavailable)?;
    for row in rows {
        let (id, b) = row.map_err(db_unavailable)?.into_binding()?;
        match &mut current {
            Some((aor, set)) if *aor == b.aor => set.push((id, b)),
            _ => {
                let next = Some((b.aor.clone(), vec![(id, b)]));
                flush(std::mem::replace(&mut current, next), &mut data);
            }
        }
    }
    flush(current, &mut data);
    map.shrink_to_fit();
    *cache.write() = Some(Mirror { generation, map });
    Ok(())
}

/// Starts the foreign-write watch task unless it runs (the binding mirror and the user
/// cache depend on it).
pub(crate) fn watch_foreign_writes_once(inner: &Arc<Inner>) {
    if !inner.bindings.watching.swap(true, Ordering::SeqCst) {
        tokio::spawn(watch_foreign_writes(Arc::downgrade(inner)));
    }
}

/// How often the mirror checks for other processes' writes.
const FOREIGN_WRITE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks for other processes' writes (`Local::check_foreign` on the direct writer) every
/// [`FOREIGN_WRITE_CHECK`] until the store is closed or dropped.
async fn watch_foreign_writes(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(FOREIGN_WRITE_CHECK).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let r = strong
            .direct
            .exclusive(|conn, local| local.check_foreign(conn).map(drop))
            .await;
        if r.is_err() {
            return; // closed
        }
    }
}

// ---- compact encoding of an AOR's bindings --------------------------------------------------
//
// Per binding: row id i64 | flags u8 | expires_at i64 | registered_at i64 | updated_at i64 | cseq u32 |
// [q u16] | [reg_id u32] | [temp-GRUU id u64, issued u32] | transport u8 | source (4 or 16
// address bytes, port u16) | strings, each u16 length + bytes: contact, params, call_id,
// [instance], flow token, node, path (values joined by LF, empty for none), [user agent].
// Integers little-endian. `validate` guarantees every string fits a u16 length.

const F_Q: u8 = 1;
const F_INSTANCE: u8 = 2;
const F_REG_ID: u8 = 4;
const F_UA: u8 = 8;
const F_GRUU: u8 = 16;
const F_V6: u8 = 32;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode<'a>(set: impl Iterator<Item = (i64, &'a Binding)>, out: &mut Vec<u8>) {
    for (id, b) in set {
        out.extend_from_slice(&id.to_le_bytes());
        let mut flags = 0;
        if b.q.is_some() {
            flags |= F_Q;
        }
        if b.instance.is_some() {
            flags |= F_INSTANCE;
        }
        if b.reg_id.is_some() {
            flags |= F_REG_ID;
        }
        if b.user_agent.is_some() {
            flags |= F_UA;
        }
        if b.temp_gruu.is_some() {
            flags |= F_GRUU;
        }
        if b.flow.source.is_ipv6() {
            flags |= F_V6;
        }
        out.push(flags);
        out.extend_from_slice(&b.expires_at.as_millis().to_le_bytes());
        out.extend_from_slice(&b.registered_at.as_millis().to_le_bytes());
        out.extend_from_slice(&b.updated_at.as_millis().to_le_bytes());
        out.extend_from_slice(&b.cseq.to_le_bytes());
        if let Some(q) = b.q {
            out.extend_from_slice(&q.thousandths().to_le_bytes());
        }
        if let Some(r) = b.reg_id {
            out.extend_from_slice(&r.to_le_bytes());
        }
        if let Some(t) = b.temp_gruu {
            out.extend_from_slice(&t.id.to_le_bytes());
            out.extend_from_slice(&t.issued.to_le_bytes());
        }
        out.push(
            SipTransport::ALL
                .iter()
                .position(|t| *t == b.flow.transport)
                .unwrap_or(0) as u8,
        );
        match b.flow.source.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
        out.extend_from_slice(&b.flow.source.port().to_le_bytes());
        put_str(out, &b.contact);
        put_str(out, &b.params);
        put_str(out, &b.call_id);
        if let Some(i) = &b.instance {
            put_str(out, i);
        }
        put_str(out, &b.flow.token);
        put_str(out, &b.flow.node);
        put_str(out, &b.path.join("\n"));
        if let Some(ua) = &b.user_agent {
            put_str(out, ua);
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.data.len() < n {
            return Err(corrupt("binding cache", "truncated entry"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("binding cache", "not UTF-8"))
    }
}

/// Decodes an AOR's entry (row ids and bindings); with `now`, only bindings not expired at
/// `now`.
fn decode(
    aor: &Address,
    data: &[u8],
    now: Option<Timestamp>,
) -> Result<Vec<(i64, Binding)>, StoreError> {
    let mut r = Reader { data };
    // Most AORs have one binding: a first allocation of four (1.7 KB) is a large-bin
    // request, which makes glibc consolidate its fast bins (the MESSAGE profile).
    let mut out = Vec::with_capacity(1);
    while !r.data.is_empty() {
        let id = i64::from_le_bytes(r.array()?);
        let [flags] = r.array()?;
        let expires_at = Timestamp(i64::from_le_bytes(r.array()?));
        let registered_at = Timestamp(i64::from_le_bytes(r.array()?));
        let updated_at = Timestamp(i64::from_le_bytes(r.array()?));
        let cseq = u32::from_le_bytes(r.array()?);
        let q = if flags & F_Q != 0 {
            Some(
                QValue::from_thousandths(u16::from_le_bytes(r.array()?))
                    .ok_or_else(|| corrupt("binding cache", "q out of range"))?,
            )
        } else {
            None
        };
        let reg_id = if flags & F_REG_ID != 0 {
            Some(u32::from_le_bytes(r.array()?))
        } else {
            None
        };
        let temp_gruu = if flags & F_GRUU != 0 {
            Some(TempGruuState {
                id: u64::from_le_bytes(r.array()?),
                issued: u32::from_le_bytes(r.array()?),
            })
        } else {
            None
        };
        let [t] = r.array()?;
        let transport = *SipTransport::ALL
            .get(t as usize)
            .ok_or_else(|| corrupt("binding cache", "transport"))?;
        let ip = if flags & F_V6 != 0 {
            IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))
        };
        let port = u16::from_le_bytes(r.array()?);
        let contact = r.string()?;
        let params = r.string()?;
        let call_id = r.string()?;
        let instance = if flags & F_INSTANCE != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let token = r.string()?;
        let node = r.string()?;
        let path = r.string()?;
        let user_agent = if flags & F_UA != 0 {
            Some(r.string()?)
        } else {
            None
        };
        if now.is_some_and(|now| expires_at <= now) {
            continue;
        }
        out.push((
            id,
            Binding {
                aor: aor.clone(),
                contact,
                params,
                q,
                expires_at,
                call_id,
                cseq,
                instance,
                reg_id,
                flow: FlowInfo {
                    token,
                    transport,
                    source: SocketAddr::new(ip, port),
                    node,
                },
                path: if path.is_empty() {
                    Vec::new()
                } else {
                    path.split('\n').map(str::to_owned).collect()
                },
                user_agent,
                registered_at,
                updated_at,
                temp_gruu,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use confab_core::Refusal;

    use super::*;
    use crate::StoreConfig;

    fn aor(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn binding(a: &str, contact: &str, at: i64, expires_at: i64) -> Binding {
        Binding {
            aor: aor(a),
            contact: contact.into(),
            params: String::new(),
            q: None,
            expires_at: Timestamp(expires_at),
            call_id: format!("cid-{contact}"),
            cseq: 1,
            instance: None,
            reg_id: None,
            flow: FlowInfo {
                token: format!("flow-{contact}"),
                transport: SipTransport::Udp,
                source: "192.0.2.1:5060".parse().unwrap(),
                node: "node-1".into(),
            },
            path: vec![],
            user_agent: None,
            registered_at: Timestamp(at),
            updated_at: Timestamp(at),
            temp_gruu: None,
        }
    }

    fn full(a: &str) -> Binding {
        Binding {
            params: "+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1"
                .into(),
            q: QValue::from_thousandths(700),
            instance: Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>".into()),
            reg_id: Some(1),
            cseq: u32::MAX,
            flow: FlowInfo {
                token: "YwAAAAAAAAAH".into(),
                transport: SipTransport::Wss,
                source: "[2001:db8::7]:61000".parse().unwrap(),
                node: "fe-2".into(),
            },
            path: vec![
                "<sip:edge1.example.com;lr>".into(),
                "\"Edge 2\" <sip:edge2.example.com;lr;ob>".into(),
            ],
            user_agent: Some("baresip v3.0 (x86_64/linux)".into()),
            temp_gruu: Some(TempGruuState {
                id: u64::MAX - 5,
                issued: 3,
            }),
            ..binding(
                a,
                "sip:alice@[2001:db8::7]:61000;transport=ws",
                1_000,
                4_000_000,
            )
        }
    }

    async fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open_or_create(StoreConfig::new(dir.path().join("r.db")))
            .await
            .unwrap()
    }

    /// A plan that ignores the current set and writes `set`.
    fn put(set: Vec<Binding>) -> BindingPlan {
        Box::new(move |_| Ok(set))
    }

    async fn applied(store: &SqliteStore, a: &str, plan: BindingPlan) -> BindingsUpdate {
        match store.update_bindings(&aor(a), plan).await.unwrap() {
            UpdateOutcome::Applied(u) => u,
            UpdateOutcome::Refused(r) => panic!("refused: {r}"),
        }
    }

    #[tokio::test]
    async fn every_field_round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let b = full("alice@example.com");
        let u = applied(&store, "alice@example.com", put(vec![b.clone()])).await;
        assert!(u.before.is_empty());
        assert_eq!(u.after, vec![b.clone()]);
        assert_eq!(
            store
                .lookup(&aor("alice@example.com"), Timestamp(0))
                .await
                .unwrap(),
            vec![b.clone()]
        );
        store.close().await;
        let store = open(&dir).await;
        assert_eq!(
            store
                .lookup(&aor("alice@example.com"), Timestamp(0))
                .await
                .unwrap(),
            vec![b.clone()]
        );
        assert_eq!(
            store
                .lookup_temp_gruu(u64::MAX - 5, Timestamp(0))
                .await
                .unwrap(),
            Some(b)
        );
        assert_eq!(
            store
                .lookup_temp_gruu(u64::MAX - 5, Timestamp(4_000_000))
                .await
                .unwrap(),
            None,
            "expired bindings do not resolve"
        );
    }

    #[tokio::test]
    async fn plan_sees_current_set_and_refusal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let a = "bob@example.com";
        let one = binding(a, "sip:bob@192.0.2.2", 10, 100_000);
        let two = binding(a, "sip:bob@192.0.2.3", 20, 100_000);
        applied(&store, a, put(vec![one.clone(), two.clone()])).await;

        // Refresh `one` (same registered_at and contact: an UPDATE), drop `two`, add `three`.
        let mut one_refreshed = one.clone();
        one_refreshed.expires_at = Timestamp(200_000);
        one_refreshed.cseq = 2;
        let three = binding(a, "sip:bob@192.0.2.4", 30, 100_000);
        let (expect_before, r1, t3) = (
            vec![one.clone(), two.clone()],
            one_refreshed.clone(),
            three.clone(),
        );
        let u = applied(
            &store,
            a,
            Box::new(move |cur: &[Binding]| {
                assert_eq!(cur, &expect_before[..]);
                Ok(vec![r1, t3])
            }),
        )
        .await;
        assert_eq!(u.before, vec![one.clone(), two]);
        let now = store.lookup(&aor(a), Timestamp(0)).await.unwrap();
        assert_eq!(now, vec![one_refreshed.clone(), three.clone()]);

        let refused = store
            .update_bindings(
                &aor(a),
                Box::new(|_| Err(Refusal::TooManyBindings { max: 2 })),
            )
            .await
            .unwrap();
        assert_eq!(
            refused,
            UpdateOutcome::Refused(Refusal::TooManyBindings { max: 2 })
        );
        assert_eq!(store.lookup(&aor(a), Timestamp(0)).await.unwrap(), now);

        // An empty set removes the AOR's bindings; other AORs are untouched.
        applied(
            &store,
            "carol@example.com",
            put(vec![binding("carol@example.com", "sip:c@h", 1, 9)]),
        )
        .await;
        applied(&store, a, put(vec![])).await;
        assert!(
            store
                .lookup(&aor(a), Timestamp(0))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.count_bindings().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn invalid_plans_are_rejected_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let a = "dave@example.com";
        let good = binding(a, "sip:d@192.0.2.9", 1, 10_000);
        applied(&store, a, put(vec![good.clone()])).await;
        #[track_caller]
        fn field_of(r: Result<UpdateOutcome, StoreError>) -> &'static str {
            match r {
                Err(StoreError::Invalid { field, .. }) => field,
                other => panic!("expected Invalid, got {other:?}"),
            }
        }
        let other_aor = binding("eve@example.com", "sip:e@h", 2, 10_000);
        let mut newline_path = binding(a, "sip:d@h2", 2, 10_000);
        newline_path.path = vec!["<sip:a;lr>\n<sip:b;lr>".into()];
        let mut lone_reg_id = binding(a, "sip:d@h3", 2, 10_000);
        lone_reg_id.reg_id = Some(1);
        let mut empty = binding(a, "x", 2, 10_000);
        empty.contact.clear();
        for (bad, field) in [
            (other_aor, "aor"),
            (newline_path, "path"),
            (lone_reg_id, "reg_id"),
            (empty, "contact"),
        ] {
            let r = store.update_bindings(&aor(a), put(vec![bad])).await;
            assert_eq!(field_of(r), field);
        }
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![good],
            "a rejected plan leaves the previous set"
        );
    }

    #[tokio::test]
    async fn failed_commit_reports_unavailable_and_keeps_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let a = "frank@example.com";
        let old = binding(a, "sip:f@192.0.2.5", 1, 10_000);
        applied(&store, a, put(vec![old.clone()])).await;
        store.fail_next_commits(1);
        let r = store
            .update_bindings(&aor(a), put(vec![binding(a, "sip:f@192.0.2.6", 2, 10_000)]))
            .await;
        assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![old]
        );
    }

    /// The write path reads an AOR's rows from the mirror: a rolled-back batch must drop the
    /// mirror before the caller (or the next batch) sees anything, and a mirror that
    /// disagrees with the table must be caught, not written through.
    #[tokio::test]
    async fn write_path_mirror_is_dropped_on_abort_and_checked_against_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let a = "gina@example.com";
        let b1 = binding(a, "sip:g@192.0.2.7", 1, 10_000);
        applied(&store, a, put(vec![b1.clone()])).await;
        assert!(
            store.inner.bindings.stats().is_some(),
            "a write loads the mirror"
        );

        // Aborted batch: the mirror is gone by the time the caller hears Unavailable.
        store.fail_next_commits(1);
        let r = store
            .update_bindings(&aor(a), put(vec![binding(a, "sip:g@192.0.2.8", 2, 10_000)]))
            .await;
        assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
        assert!(store.inner.bindings.stats().is_none());
        // The next write reloads it and sees the committed row only.
        let u = applied(&store, a, Box::new(|cur: &[Binding]| Ok(cur.to_vec()))).await;
        assert_eq!(u.before, vec![b1.clone()]);

        // Another writer removes the row behind the mirror's back (as a foreign process
        // would): refreshing the binding must fail, drop the mirror, and succeed on retry.
        store
            .inner
            .writer
            .write(|conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM bindings")
                        .execute(&mut *conn)
                        .await
                        .map(|_| ())
                        .map_err(unavailable)
                })
            })
            .await
            .unwrap();
        let refreshed = Binding {
            expires_at: Timestamp(20_000),
            ..b1.clone()
        };
        let r = store
            .update_bindings(&aor(a), put(vec![refreshed.clone()]))
            .await;
        assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
        let u = applied(&store, a, put(vec![refreshed.clone()])).await;
        assert!(
            u.before.is_empty(),
            "reloaded from the table: {:?}",
            u.before
        );
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![refreshed.clone()]
        );
        // Row ids in the mirror follow the table: a later refresh updates that row.
        let again = Binding {
            expires_at: Timestamp(30_000),
            ..refreshed
        };
        applied(&store, a, put(vec![again.clone()])).await;
        assert_eq!(store.count_bindings().await.unwrap(), 1);
        assert_eq!(
            store.lookup_in_db(&aor(a), Timestamp(0)).await.unwrap(),
            vec![again]
        );
    }

    #[tokio::test]
    async fn expiry_sweep_flow_removal_and_paging() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        // 5 AORs x 3 bindings: binding i expires at 1000 * (i + 1); binding 0 is outbound.
        for n in 0..5 {
            let a = format!("u{n}@example.com");
            let set: Vec<Binding> = (0..3i64)
                .map(|i| {
                    let mut b = binding(&a, &format!("sip:u{n}@10.0.0.{i}"), i, 1000 * (i + 1));
                    b.flow.token = format!("flow-{i}");
                    if i == 0 {
                        b.instance = Some(format!("<urn:uuid:{n}>"));
                        b.reg_id = Some(1);
                    }
                    b
                })
                .collect();
            applied(&store, &a, put(set)).await;
        }
        assert_eq!(store.count_bindings().await.unwrap(), 15);

        // Paging: every binding exactly once, ordered by AOR.
        let mut seen = Vec::new();
        let mut page = PageRequest::first(4);
        loop {
            let p = store.list_bindings(page.clone()).await.unwrap();
            assert!(p.items.len() <= 4);
            seen.extend(p.items.into_iter().map(|b| (b.aor.to_string(), b.contact)));
            match p.next {
                Some(c) => page.after = Some(c),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen.len(), 15);
        assert_eq!(seen, sorted);
        let c = store
            .list_bindings(PageRequest::first(1))
            .await
            .unwrap()
            .next
            .unwrap();
        assert!(
            c.0.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'-'),
            "{c:?}"
        );
        for garbage in ["garbage", "1.2.zz", "1.2.616", "x.2.61", "1.2"] {
            let r = store
                .list_bindings(PageRequest {
                    after: Some(Cursor(garbage.into())),
                    limit: 3,
                })
                .await;
            assert!(
                matches!(
                    r,
                    Err(StoreError::Invalid {
                        field: "cursor",
                        ..
                    })
                ),
                "{garbage}"
            );
        }
        let bad = store
            .list_bindings(PageRequest {
                after: Some(Cursor("garbage".into())),
                limit: 3,
            })
            .await;
        assert!(matches!(
            bad,
            Err(StoreError::Invalid {
                field: "cursor",
                ..
            })
        ));

        // Flow failure: only outbound bindings of that flow and node.
        let gone = store.remove_flow("node-1", "flow-0", true).await.unwrap();
        assert_eq!(gone.len(), 5);
        assert!(gone.iter().all(Binding::is_outbound));
        assert!(
            store
                .remove_flow("node-2", "flow-1", false)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .remove_flow("node-1", "flow-1", true)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .remove_flow("node-1", "flow-1", false)
                .await
                .unwrap()
                .len(),
            5
        );
        assert_eq!(store.count_bindings().await.unwrap(), 5);

        // Sweep in batches of 2: the five bindings expiring at 3000.
        assert!(
            store
                .remove_expired(Timestamp(2_999), 2)
                .await
                .unwrap()
                .is_empty()
        );
        let mut swept = 0;
        loop {
            let batch = store.remove_expired(Timestamp(3_000), 2).await.unwrap();
            swept += batch.len();
            assert!(batch.iter().all(|b| b.expires_at == Timestamp(3_000)));
            if batch.len() < 2 {
                break;
            }
        }
        assert_eq!(swept, 5);
        assert_eq!(store.count_bindings().await.unwrap(), 0);
    }

    /// The mirror answers exactly what the table holds, after every kind of write.
    #[test]
    fn mirror_entries_are_found_by_aor_and_keep_their_bindings() {
        let mut set = HashSet::new();
        let a = full("alice@example.com");
        let b = binding("bob@example.com", "sip:bob@192.0.2.2", 10, 3_600_010);
        for (id, x) in [(7, &a), (9, &b)] {
            let mut data = Vec::new();
            encode(std::iter::once((id, x)), &mut data);
            assert!(set.insert(Entry::new(x.aor.as_str(), &data)));
        }
        // A new set for an AOR replaces its entry (HashSet::insert would keep the old one).
        let mut data = Vec::new();
        let a2 = binding("alice@example.com", "sip:alice@192.0.2.9", 20, 3_600_020);
        encode([(11, &a2), (7, &a)].into_iter(), &mut data);
        assert!(
            set.replace(Entry::new("alice@example.com", &data))
                .is_some()
        );
        assert_eq!(set.len(), 2);

        let found = |aor: &str| {
            let e = set.get(aor).expect("entry");
            assert_eq!(e.aor(), aor);
            decode(&Address::parse(aor).expect("valid"), e.bindings(), None).expect("decodes")
        };
        assert_eq!(
            found("alice@example.com"),
            vec![(11, a2.clone()), (7, a.clone())]
        );
        assert_eq!(found("bob@example.com"), vec![(9, b)]);
        assert!(!set.contains("carol@example.com"));
        assert!(set.remove("bob@example.com"));
        assert!(!set.contains("bob@example.com"));
    }

    #[tokio::test]
    async fn mirror_matches_the_table_after_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        #[track_caller]
        fn same(a: Vec<Binding>, b: Vec<Binding>) {
            assert_eq!(a, b);
        }
        async fn compare(store: &SqliteStore, now: i64) {
            for n in 0..6 {
                let a = aor(&format!("m{n}@example.com"));
                let mirror = store.lookup(&a, Timestamp(now)).await.unwrap();
                let table = store.lookup_in_db(&a, Timestamp(now)).await.unwrap();
                same(mirror, table);
            }
        }
        // Load the (empty) mirror first, so later writes update it in place.
        compare(&store, 0).await;
        for n in 0..6i64 {
            let a = format!("m{n}@example.com");
            let set: Vec<Binding> = (0..3i64)
                .map(|i| {
                    let mut b = full(&a);
                    b.contact = format!("sip:m{n}@10.2.{n}.{i}");
                    b.registered_at = Timestamp(i);
                    b.expires_at = Timestamp(1000 * (i + 1));
                    b.flow.token = format!("f{i}");
                    b.temp_gruu = Some(TempGruuState {
                        id: (n * 10 + i) as u64,
                        issued: 1,
                    });
                    if i == 2 {
                        b.instance = None;
                        b.reg_id = None;
                        b.user_agent = None;
                        b.q = None;
                        b.path.clear();
                        b.flow.source = "192.0.2.1:5060".parse().unwrap();
                    }
                    b
                })
                .collect();
            applied(&store, &a, put(set)).await;
        }
        compare(&store, 0).await;
        assert_eq!(store.inner.bindings.stats().map(|s| s.0), Some(6));
        // Refresh one binding of m0, drop another.
        applied(
            &store,
            "m0@example.com",
            Box::new(|cur: &[Binding]| {
                let mut v = cur.to_vec();
                v[0].expires_at = Timestamp(9000);
                v.remove(1);
                Ok(v)
            }),
        )
        .await;
        compare(&store, 0).await;
        store.remove_flow("fe-2", "f0", true).await.unwrap();
        compare(&store, 0).await;
        store.remove_expired(Timestamp(2000), 4).await.unwrap();
        compare(&store, 0).await;
        compare(&store, 2500).await;
        applied(&store, "m5@example.com", put(vec![])).await;
        compare(&store, 0).await;
        assert_eq!(store.inner.bindings.stats().map(|s| s.0), Some(5));
    }

    #[tokio::test]
    async fn mirror_forgets_uncommitted_writes_and_follows_restores() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let a = "h@example.com";
        let one = binding(a, "sip:h@192.0.2.1", 1, 10_000);
        applied(&store, a, put(vec![one.clone()])).await;
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![one.clone()]
        );

        // The write reaches the mirror, then its commit fails: the mirror is dropped and
        // reloaded from the table.
        store.fail_next_commits(1);
        let r = store
            .update_bindings(&aor(a), put(vec![binding(a, "sip:h@192.0.2.2", 2, 10_000)]))
            .await;
        assert!(r.is_err());
        assert!(store.inner.bindings.stats().is_none(), "invalidated");
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![one.clone()]
        );

        // A restore replaces the table under the mirror; lookups follow it.
        let backup = dir.path().join("b.db");
        store.backup(&backup).await.unwrap();
        let two = binding(a, "sip:h@192.0.2.3", 3, 10_000);
        applied(&store, a, put(vec![two.clone()])).await;
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![two]
        );
        store.restore(&backup).await.unwrap();
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![one.clone()]
        );

        // Another process (here: a second store on the same file) writes: the mirror
        // notices at its next check.
        let other = open(&dir).await;
        let three = binding(a, "sip:h@192.0.2.4", 4, 10_000);
        applied(&other, a, put(vec![three.clone()])).await;
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![one],
            "stale until checked"
        );
        store.check_foreign_writes_now().await.unwrap();
        assert_eq!(
            store.lookup(&aor(a), Timestamp(0)).await.unwrap(),
            vec![three]
        );
        // Its own writes do not count as foreign.
        applied(
            &store,
            a,
            put(vec![binding(a, "sip:h@192.0.2.5", 5, 10_000)]),
        )
        .await;
        store.check_foreign_writes_now().await.unwrap();
        assert!(store.inner.bindings.stats().is_some());
        other.close().await;
    }

    #[tokio::test]
    async fn concurrent_updates_of_one_aor_do_not_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir).await);
        let a = "grace@example.com";
        // 20 concurrent read-modify-write plans each append one binding: with interleaving,
        // some appends would be lost.
        let tasks: Vec<_> = (0..20i64)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    let new = binding(a, &format!("sip:g@10.1.0.{i}"), i, 99_000);
                    s.update_bindings(
                        &aor(a),
                        Box::new(move |cur: &[Binding]| {
                            let mut v = cur.to_vec();
                            v.push(new);
                            Ok(v)
                        }),
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Ok(UpdateOutcome::Applied(_))));
        }
        assert_eq!(store.lookup(&aor(a), Timestamp(0)).await.unwrap().len(), 20);
    }
}
