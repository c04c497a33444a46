//! Online backup (`VACUUM INTO`) and restore (one transaction on the writer connection).

use std::path::{Path, PathBuf};

use confab_core::StoreError;
use sqlx::{AssertSqlSafe, Connection as _, SqliteConnection};

use crate::SqliteStore;
use crate::error::unavailable;
use crate::open::{MIGRATOR, connect_options, create_private_file, schema_version};
use crate::supported_schema_version;

/// What [`SqliteStore::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The backup file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Schema version of the data in it.
    pub schema_version: i64,
}

/// What [`SqliteStore::restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInfo {
    /// Schema version the backup had (older backups are migrated before copying).
    pub backup_schema_version: i64,
    /// Tables replaced.
    pub tables: usize,
    /// Rows copied in.
    pub rows: u64,
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: "backup",
        message: message.into(),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::unavailable(format!("{}: {e}", path.display()))
}

fn utf8(path: &Path) -> Result<&str, StoreError> {
    path.to_str()
        .ok_or_else(|| invalid(format!("path {} is not valid UTF-8", path.display())))
}

fn fsync_file_and_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Tables of `schema` that hold data (not SQLite's own, not the migration log).
async fn data_tables(
    conn: &mut SqliteConnection,
    schema: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT name FROM {}.sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
        quote_ident(schema)
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
}

async fn columns(
    conn: &mut SqliteConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM pragma_table_info(?1, ?2) ORDER BY cid")
        .bind(table)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
}

/// Checks a backup file and returns its schema version.
async fn validate(path: &Path, store: &SqliteStore) -> Result<i64, StoreError> {
    if !path.is_file() {
        return Err(invalid(format!(
            "{} does not exist or is not a file",
            path.display()
        )));
    }
    let opts = connect_options(path, &store.inner.config).read_only(true);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| invalid(format!("{} cannot be opened: {e}", path.display())))?;
    let check: Result<String, _> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await;
    let version = schema_version(&mut conn).await;
    let _ = conn.close().await;
    match check {
        Ok(s) if s == "ok" => {}
        Ok(s) => return Err(invalid(format!("{} is damaged: {s}", path.display()))),
        Err(e) => {
            return Err(invalid(format!(
                "{} is not a SQLite database: {e}",
                path.display()
            )));
        }
    }
    let version = version.map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if version == 0 {
        return Err(invalid(format!(
            "{} is not a Confab database (no schema version)",
            path.display()
        )));
    }
    let supported = supported_schema_version();
    if version > supported {
        return Err(invalid(format!(
            "{} has schema version {version}, newer than the {supported} this binary supports",
            path.display()
        )));
    }
    Ok(version)
}

/// Copies an older backup next to the database (mode 0600) and migrates the copy.
async fn migrated_copy(src: &Path, store: &SqliteStore) -> Result<PathBuf, StoreError> {
    let mut tmp = store.inner.path.clone().into_os_string();
    tmp.push(".restore-tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    create_private_file(&tmp).map_err(|e| io_err(&tmp, e))?;
    let copy = (|| {
        let mut from = std::fs::File::open(src)?;
        let mut to = std::fs::OpenOptions::new().write(true).open(&tmp)?;
        std::io::copy(&mut from, &mut to)?;
        to.sync_all()
    })();
    copy.map_err(|e| io_err(&tmp, e))?;
    let opts = connect_options(&tmp, &store.inner.config);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(unavailable)?;
    let migrated = MIGRATOR.run(&mut conn).await;
    let _ = conn.close().await;
    migrated.map_err(|e| invalid(format!("migrating the backup failed: {e}")))?;
    Ok(tmp)
}

/// The exclusive part of a restore, on the writer connection.
async fn replace_content(
    conn: &mut SqliteConnection,
    src: String,
) -> Result<(usize, u64), StoreError> {
    sqlx::query("ATTACH DATABASE ? AS restore_src")
        .bind(src)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    let result = copy_tables(conn).await;
    if result.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    let _ = sqlx::query("DETACH DATABASE restore_src")
        .execute(&mut *conn)
        .await;
    result
}

async fn copy_tables(conn: &mut SqliteConnection) -> Result<(usize, u64), StoreError> {
    let ours = data_tables(conn, "main").await.map_err(unavailable)?;
    let theirs = data_tables(conn, "restore_src")
        .await
        .map_err(unavailable)?;
    if ours != theirs {
        return Err(invalid(format!(
            "backup tables {theirs:?} do not match the database tables {ours:?}"
        )));
    }
    let mut plan = Vec::with_capacity(ours.len());
    for t in &ours {
        let cols = columns(conn, "main", t).await.map_err(unavailable)?;
        let theirs = columns(conn, "restore_src", t).await.map_err(unavailable)?;
        if cols != theirs {
            return Err(invalid(format!(
                "backup table {t} has columns {theirs:?}, expected {cols:?}"
            )));
        }
        let list = cols
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        plan.push((quote_ident(t), list));
    }
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    sqlx::query("PRAGMA defer_foreign_keys = ON")
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    let mut rows = 0;
    for (t, list) in &plan {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM main.{t}")))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        rows += sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO main.{t} ({list}) SELECT {list} FROM restore_src.{t}"
        )))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?
        .rows_affected();
    }
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok((plan.len(), rows))
}

impl SqliteStore {
    /// Writes a consistent snapshot of the database to `dest` (which must not exist, or be
    /// empty), created with mode 0600 and fsynced. Runs beside normal traffic: writes are
    /// not blocked.
    pub async fn backup(&self, dest: &Path) -> Result<BackupInfo, StoreError> {
        let dest_str = utf8(dest)?.to_owned();
        let created = create_private_file(dest).map_err(|e| io_err(dest, e))?;
        if !created {
            let len = std::fs::metadata(dest).map_err(|e| io_err(dest, e))?.len();
            if len != 0 {
                return Err(StoreError::Invalid {
                    field: "path",
                    message: format!("backup target {} exists and is not empty", dest.display()),
                });
            }
        }
        let result = async {
            let opts = connect_options(&self.inner.path, &self.inner.config);
            let mut conn = SqliteConnection::connect_with(&opts)
                .await
                .map_err(unavailable)?;
            let version = schema_version(&mut conn).await.map_err(unavailable);
            let vacuum = sqlx::query("VACUUM INTO ?")
                .bind(dest_str)
                .execute(&mut conn)
                .await
                .map_err(unavailable);
            let _ = conn.close().await;
            vacuum?;
            let version = version?;
            fsync_file_and_dir(dest).map_err(|e| io_err(dest, e))?;
            let bytes = std::fs::metadata(dest).map_err(|e| io_err(dest, e))?.len();
            Ok(BackupInfo {
                path: dest.to_owned(),
                bytes,
                schema_version: version,
            })
        }
        .await;
        if result.is_err() && created {
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    /// Replaces the whole content of the database with the backup at `src`, in one
    /// transaction, while the server runs. See the crate docs for what a running server
    /// sees. The backup is validated first (integrity, schema version not newer than this
    /// binary; an older one is migrated on a private copy); an invalid backup changes
    /// nothing.
    pub async fn restore(&self, src: &Path) -> Result<RestoreInfo, StoreError> {
        let backup_version = validate(src, self).await?;
        let (source, tmp) = if backup_version < supported_schema_version() {
            let tmp = migrated_copy(src, self).await?;
            (tmp.clone(), Some(tmp))
        } else {
            (src.to_owned(), None)
        };
        let source_str = utf8(&source)?.to_owned();
        let bindings = self.inner.bindings.clone();
        let users = self.inner.users.clone();
        let queued = self.inner.queued.clone();
        let result = self
            .inner
            .writer
            .exclusive(move |conn| {
                Box::pin(async move {
                    let r = replace_content(conn, source_str).await;
                    // Inside the job, so no later write reads the old mirror.
                    bindings.invalidate();
                    users.invalidate();
                    queued.invalidate();
                    r
                })
            })
            .await;
        if let Some(tmp) = tmp {
            let _ = std::fs::remove_file(tmp);
        }
        let (tables, rows) = result?;
        self.inner.restores.send_modify(|n| *n += 1);
        tracing::info!(
            tables,
            rows,
            backup_version,
            "database restored from backup"
        );
        Ok(RestoreInfo {
            backup_schema_version: backup_version,
            tables,
            rows,
        })
    }
}
