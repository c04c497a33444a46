//! [`UserStore`] on SQLite.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use confab_core::{
    Address, Change, Cursor, DisplayName, Entity, Ha1Set, ImportOutcome, ImportRow, NewUser, Page,
    PageRequest, PhoneNumber, Role, StoreError, Timestamp, User, UserChanges, UserStore,
};
use confab_digest::{Hash, HashKind};
use sqlx::SqliteConnection;

use crate::SqliteStore;
use crate::error::{is_constraint, unavailable, unique_violation};

macro_rules! user_columns {
    () => {
        "username, domain, display_name, phone, role, ha1_md5, ha1_sha256, ha1_sha512_256, \
         created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct UserRow {
    username: String,
    domain: String,
    display_name: Option<String>,
    phone: Option<String>,
    role: String,
    ha1_md5: Option<Vec<u8>>,
    ha1_sha256: Option<Vec<u8>>,
    ha1_sha512_256: Option<Vec<u8>>,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(field: &'static str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        field,
        message: format!("stored value is corrupt: {message}"),
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<User, StoreError> {
        let address = Address::new(&r.username, &r.domain).map_err(|e| corrupt("address", e))?;
        let display_name = r
            .display_name
            .map(|d| DisplayName::parse(&d).map_err(|e| corrupt("display_name", e)))
            .transpose()?;
        let phone = r
            .phone
            .map(|p| PhoneNumber::parse(&p).map_err(|e| corrupt("phone", e)))
            .transpose()?;
        let role = r.role.parse::<Role>().map_err(|e| corrupt("role", e))?;
        let credentials = match (r.ha1_md5, r.ha1_sha256, r.ha1_sha512_256) {
            (None, None, None) => None,
            (Some(a), Some(b), Some(c)) => {
                let h = |k, v: &[u8]| {
                    Hash::from_bytes(k, v).ok_or_else(|| corrupt("ha1", "bad length"))
                };
                Some(
                    Ha1Set::from_parts(
                        h(HashKind::Md5, &a)?,
                        h(HashKind::Sha256, &b)?,
                        h(HashKind::Sha512_256, &c)?,
                    )
                    .ok_or_else(|| corrupt("ha1", "wrong kinds"))?,
                )
            }
            _ => return Err(corrupt("ha1", "only some HA1 values present")),
        };
        Ok(User {
            address,
            display_name,
            phone,
            role,
            credentials,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// The three HA1 blobs (or three NULLs).
fn ha1_blobs(c: Option<&Ha1Set>) -> [Option<&[u8]>; 3] {
    match c {
        None => [None, None, None],
        Some(s) => HashKind::ALL.map(|k| Some(s.get(k).as_bytes())),
    }
}

/// Maps a failed write on `users`: uniqueness → Conflict naming the address or phone.
fn write_error(e: sqlx::Error, address: &Address, phone: Option<&PhoneNumber>) -> StoreError {
    match unique_violation(&e) {
        Some(cols) if cols.contains("users.phone") => StoreError::conflict(
            Entity::PhoneNumber,
            phone.map_or("(unknown)", PhoneNumber::as_str),
        ),
        Some(_) => StoreError::conflict(Entity::User, address),
        None => unavailable(e),
    }
}

async fn fetch_user(
    conn: &mut SqliteConnection,
    address: &Address,
) -> Result<Option<User>, StoreError> {
    sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE domain = ? AND username = ?"
    ))
    .bind(address.domain())
    .bind(address.user())
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?
    .map(User::try_from)
    .transpose()
}

/// [`fetch_user`] on the direct reader's rusqlite connection (the digest check's path).
fn fetch_user_direct(
    conn: &rusqlite::Connection,
    address: &Address,
) -> Result<Option<User>, StoreError> {
    use crate::direct_writer::unavailable as db_unavailable;
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE domain = ? AND username = ?"
        ))
        .map_err(db_unavailable)?;
    let mut rows = stmt
        .query([address.domain(), address.user()])
        .map_err(db_unavailable)?;
    let Some(r) = rows.next().map_err(db_unavailable)? else {
        return Ok(None);
    };
    User::try_from(user_row(r).map_err(db_unavailable)?).map(Some)
}

/// A `users` row read with [`user_columns!`] in that order.
fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        username: r.get(0)?,
        domain: r.get(1)?,
        display_name: r.get(2)?,
        phone: r.get(3)?,
        role: r.get(4)?,
        ha1_md5: r.get(5)?,
        ha1_sha256: r.get(6)?,
        ha1_sha512_256: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

/// Every user, if there are at most `limit` (the user cache's preload); `None` if more.
fn all_users_direct(
    conn: &rusqlite::Connection,
    limit: usize,
) -> Result<Option<Vec<User>>, StoreError> {
    use crate::direct_writer::unavailable as db_unavailable;
    let count: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .map_err(db_unavailable)?;
    if usize::try_from(count).map_or(true, |n| n > limit) {
        return Ok(None);
    }
    let mut stmt = conn
        .prepare(concat!("SELECT ", user_columns!(), " FROM users"))
        .map_err(db_unavailable)?;
    let rows = stmt
        .query_map([], user_row)
        .map_err(db_unavailable)?
        .collect::<Result<Vec<UserRow>, _>>()
        .map_err(db_unavailable)?;
    rows.into_iter()
        .map(User::try_from)
        .collect::<Result<_, _>>()
        .map(Some)
}

async fn insert_user(
    conn: &mut SqliteConnection,
    u: &NewUser,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    let [md5, sha256, sha512] = ha1_blobs(u.credentials.as_ref());
    sqlx::query(
        "INSERT INTO users (username, domain, display_name, phone, role, ha1_md5, ha1_sha256, \
         ha1_sha512_256, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(u.address.user())
    .bind(u.address.domain())
    .bind(u.display_name.as_ref().map(DisplayName::as_str))
    .bind(u.phone.as_ref().map(PhoneNumber::as_str))
    .bind(u.role.as_str())
    .bind(md5)
    .bind(sha256)
    .bind(sha512)
    .bind(at.as_millis())
    .bind(at.as_millis())
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

async fn add(conn: &mut SqliteConnection, u: NewUser) -> Result<User, StoreError> {
    let at = now();
    insert_user(conn, &u, at)
        .await
        .map_err(|e| write_error(e, &u.address, u.phone.as_ref()))?;
    Ok(User {
        address: u.address,
        display_name: u.display_name,
        phone: u.phone,
        role: u.role,
        credentials: u.credentials,
        created_at: at,
        updated_at: at,
    })
}

async fn modify(
    conn: &mut SqliteConnection,
    address: Address,
    changes: UserChanges,
) -> Result<User, StoreError> {
    let Some(mut user) = fetch_user(conn, &address).await? else {
        return Err(StoreError::not_found(Entity::User, &address));
    };
    match changes.display_name {
        Change::Keep => {}
        Change::Set(d) => user.display_name = Some(d),
        Change::Clear => user.display_name = None,
    }
    match changes.phone {
        Change::Keep => {}
        Change::Set(p) => user.phone = Some(p),
        Change::Clear => user.phone = None,
    }
    if let Some(role) = changes.role {
        user.role = role;
    }
    user.updated_at = now();
    sqlx::query(
        "UPDATE users SET display_name = ?, phone = ?, role = ?, updated_at = ? \
         WHERE domain = ? AND username = ?",
    )
    .bind(user.display_name.as_ref().map(DisplayName::as_str))
    .bind(user.phone.as_ref().map(PhoneNumber::as_str))
    .bind(user.role.as_str())
    .bind(user.updated_at.as_millis())
    .bind(address.domain())
    .bind(address.user())
    .execute(&mut *conn)
    .await
    .map_err(|e| write_error(e, &address, user.phone.as_ref()))?;
    Ok(user)
}

async fn set_password(
    conn: &mut SqliteConnection,
    address: Address,
    c: Ha1Set,
) -> Result<(), StoreError> {
    let [md5, sha256, sha512] = ha1_blobs(Some(&c));
    let done = sqlx::query(
        "UPDATE users SET ha1_md5 = ?, ha1_sha256 = ?, ha1_sha512_256 = ?, updated_at = ? \
         WHERE domain = ? AND username = ?",
    )
    .bind(md5)
    .bind(sha256)
    .bind(sha512)
    .bind(now().as_millis())
    .bind(address.domain())
    .bind(address.user())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found(Entity::User, &address));
    }
    Ok(())
}

async fn remove(conn: &mut SqliteConnection, address: Address) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM users WHERE domain = ? AND username = ?")
        .bind(address.domain())
        .bind(address.user())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found(Entity::User, &address));
    }
    Ok(())
}

/// One import row: insert, or update the fields given. `Ok(Err(_))` is a per-row failure
/// (SQLite rolled back that statement only); `Err(_)` aborts the import.
///
/// One statement for a new user (the common case of a bulk import): the insert does nothing
/// when the address exists (the conflict target names only the address, so a taken phone
/// number still fails), and only then is the row updated.
async fn import_row(
    conn: &mut SqliteConnection,
    row: &ImportRow,
    at: Timestamp,
) -> Result<Result<ImportOutcome, StoreError>, StoreError> {
    let [md5, sha256, sha512] = ha1_blobs(row.credentials.as_ref());
    let inserted = sqlx::query(
        "INSERT INTO users (username, domain, display_name, phone, role, ha1_md5, ha1_sha256, \
         ha1_sha512_256, created_at, updated_at) VALUES (?, ?, ?, ?, 'user', ?, ?, ?, ?, ?) \
         ON CONFLICT (domain, username) DO NOTHING",
    )
    .bind(row.address.user())
    .bind(row.address.domain())
    .bind(row.display_name.as_ref().map(DisplayName::as_str))
    .bind(row.phone.as_ref().map(PhoneNumber::as_str))
    .bind(md5)
    .bind(sha256)
    .bind(sha512)
    .bind(at.as_millis())
    .bind(at.as_millis())
    .execute(&mut *conn)
    .await;
    let result = match inserted {
        Ok(done) if done.rows_affected() == 1 => Ok(ImportOutcome::Added),
        Ok(_) => sqlx::query(
            "UPDATE users SET display_name = coalesce(?, display_name), \
             phone = coalesce(?, phone), ha1_md5 = coalesce(?, ha1_md5), \
             ha1_sha256 = coalesce(?, ha1_sha256), \
             ha1_sha512_256 = coalesce(?, ha1_sha512_256), updated_at = ? \
             WHERE domain = ? AND username = ?",
        )
        .bind(row.display_name.as_ref().map(DisplayName::as_str))
        .bind(row.phone.as_ref().map(PhoneNumber::as_str))
        .bind(md5)
        .bind(sha256)
        .bind(sha512)
        .bind(at.as_millis())
        .bind(row.address.domain())
        .bind(row.address.user())
        .execute(&mut *conn)
        .await
        .map(|_| ImportOutcome::Updated),
        Err(e) => Err(e),
    };
    match result {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(e) if is_constraint(&e) => Ok(Err(write_error(e, &row.address, row.phone.as_ref()))),
        Err(e) => Err(unavailable(e)),
    }
}

async fn import(
    conn: &mut SqliteConnection,
    rows: Vec<ImportRow>,
) -> Result<Vec<Result<ImportOutcome, StoreError>>, StoreError> {
    let at = now();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(import_row(conn, row, at).await?);
    }
    Ok(out)
}

fn parse_cursor(c: &Cursor) -> Result<Address, StoreError> {
    Address::parse(&c.0).map_err(|e| StoreError::Invalid {
        field: "cursor",
        message: format!("not a cursor from a previous page: {e}"),
    })
}

impl SqliteStore {
    /// Keeps every user in the user cache while they fit (`store.user_cache_entries`), so
    /// digest checks never wait for SQLite, not even the first REGISTER of each user after
    /// a restart: loads them now in the background and again about a second after each
    /// invalidation (a user change, another process's write, a restore), several
    /// invalidations in that second sharing one reload. A server calls it once; commands
    /// that only open the store for one change do not. With more users than the cache holds
    /// it loads nothing and the cache fills on demand as before.
    pub fn keep_users_loaded(&self) {
        let cache = &self.inner.users;
        if cache.capacity == 0 || cache.preloading.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(preload_users(Arc::downgrade(&self.inner)));
    }

    /// A write to the users table: the user cache is cleared once its outcome is known
    /// (committed or not), before the caller hears it.
    async fn user_write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            ) -> crate::writer::BoxFut<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let r = self.inner.writer.write(f).await;
        self.inner.users.invalidate();
        r
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn add_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.user_write(move |conn| Box::pin(add(conn, user))).await
    }

    async fn modify_user(
        &self,
        address: &Address,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let address = address.clone();
        self.user_write(move |conn| Box::pin(modify(conn, address, changes)))
            .await
    }

    async fn set_password(&self, address: &Address, credentials: Ha1Set) -> Result<(), StoreError> {
        let address = address.clone();
        self.user_write(move |conn| Box::pin(set_password(conn, address, credentials)))
            .await
    }

    async fn remove_user(&self, address: &Address) -> Result<(), StoreError> {
        let address = address.clone();
        self.user_write(move |conn| Box::pin(remove(conn, address)))
            .await
    }

    async fn get_user(&self, address: &Address) -> Result<Option<User>, StoreError> {
        let cache = &self.inner.users;
        if let Some(hit) = cache.get(address) {
            return Ok(hit);
        }
        let version = cache.version();
        let a = address.clone();
        let user = self
            .inner
            .reader
            .read(move |conn| fetch_user_direct(conn, &a))
            .await?;
        if cache.insert(version, address, &user) {
            crate::registrations::watch_foreign_writes_once(&self.inner);
        }
        Ok(user)
    }

    async fn find_user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE phone = ?"
        ))
        .bind(phone.as_str())
        .fetch_optional(&self.inner.read)
        .await
        .map_err(unavailable)?
        .map(User::try_from)
        .transpose()
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, StoreError> {
        let limit = page.clamped_limit();
        let fetch = i64::from(limit) + 1;
        let rows = match &page.after {
            None => {
                sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users ORDER BY domain, username LIMIT ?"
                ))
                .bind(fetch)
                .fetch_all(&self.inner.read)
                .await
            }
            Some(cursor) => {
                let after = parse_cursor(cursor)?;
                sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE (domain, username) > (?, ?) \
                     ORDER BY domain, username LIMIT ?"
                ))
                .bind(after.domain().to_owned())
                .bind(after.user().to_owned())
                .bind(fetch)
                .fetch_all(&self.inner.read)
                .await
            }
        }
        .map_err(unavailable)?;
        let mut items = rows
            .into_iter()
            .map(User::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|u| Cursor(u.address.to_string()))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.inner.read)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn import_users(
        &self,
        rows: Vec<ImportRow>,
    ) -> Result<Vec<Result<ImportOutcome, StoreError>>, StoreError> {
        self.user_write(move |conn| Box::pin(import(conn, rows)))
            .await
    }
}

// ---- the user cache ----------------------------------------------------------------------

/// How long a reload waits after an invalidation, so that a burst of user changes costs one.
const PRELOAD_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// The task behind [`SqliteStore::keep_users_loaded`]; ends with the store.
async fn preload_users(inner: std::sync::Weak<crate::open::Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let cache = strong.users.clone();
        let version = cache.version();
        let limit = cache.capacity;
        match strong
            .reader
            .read(move |conn| all_users_direct(conn, limit))
            .await
        {
            Ok(Some(users)) => {
                let n = users.len();
                if cache.fill(version, users) {
                    tracing::debug!(users = n, "user cache loaded");
                    crate::registrations::watch_foreign_writes_once(&strong);
                }
            }
            Ok(None) => tracing::debug!(
                limit,
                "more users than the user cache holds; filled on demand"
            ),
            Err(e) => {
                // Closed, or the database is unavailable: the cache fills on demand.
                tracing::debug!(error = %e, "user cache preload stopped");
                return;
            }
        }
        cache.loads.fetch_add(1, Ordering::SeqCst);
        drop(strong);
        cache.changed.notified().await;
        tokio::time::sleep(PRELOAD_DEBOUNCE).await;
    }
}

/// A bounded cache of [`UserStore::get_user`] answers (found and not found), so the digest
/// check of a known client does not read SQLite every time. Entries are only ever filled
/// from committed data read after the current `version` was taken; every user write through
/// this store clears the whole cache once it has committed (or failed), a restore clears it
/// inside its writer job, and another process's commit (`confab user add` / `passwd` /
/// `remove` beside a running server) clears it within 2 s (the foreign-write check of
/// `direct_writer.rs`, run every 2 s by `registrations.rs`). When full it is cleared rather than evicting one by one: cheap, and a
/// refill costs one read per user. `store.user_cache_entries = 0` turns it off.
#[derive(Debug, Default)]
pub(crate) struct UserCache {
    map: std::sync::Mutex<HashMap<Address, Option<User>>>,
    /// Bumped by every invalidation; a read started under an older version is not cached.
    version: AtomicU64,
    capacity: usize,
    /// [`SqliteStore::keep_users_loaded`] was called.
    preloading: std::sync::atomic::AtomicBool,
    /// Woken by every invalidation (the preload task reloads).
    changed: tokio::sync::Notify,
    /// Preload attempts finished (loaded, or too many users).
    pub(crate) loads: AtomicU64,
}

impl UserCache {
    pub(crate) fn new(capacity: usize) -> UserCache {
        UserCache {
            map: Default::default(),
            version: AtomicU64::new(0),
            capacity,
            preloading: Default::default(),
            changed: tokio::sync::Notify::new(),
            loads: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Address, Option<User>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, address: &Address) -> Option<Option<User>> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().get(address).cloned()
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Caches `user` read at `version`, unless an invalidation happened since. Returns
    /// whether it was cached.
    pub(crate) fn insert(&self, version: u64, address: &Address, user: &Option<User>) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let mut map = self.lock();
        // Checked under the lock: `invalidate` bumps the version before it takes the lock.
        if self.version.load(Ordering::SeqCst) != version {
            return false;
        }
        if map.len() >= self.capacity {
            // Full (a preload fills it): an unknown name (a scan) must not wipe the users.
            if user.is_none() {
                return false;
            }
            map.clear();
        }
        map.insert(address.clone(), user.clone());
        true
    }

    /// Caches every user of a complete read taken at `version` (the preload), unless an
    /// invalidation happened since or they do not fit. Returns whether it did.
    fn fill(&self, version: u64, users: Vec<User>) -> bool {
        let mut map = self.lock();
        if self.version.load(Ordering::SeqCst) != version || users.len() > self.capacity {
            return false;
        }
        map.clear();
        map.reserve(users.len());
        for u in users {
            map.insert(u.address.clone(), Some(u));
        }
        true
    }

    /// Forgets every entry.
    pub(crate) fn invalidate(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
        // A permit is kept if the preload task is busy: it reloads once more.
        self.changed.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
