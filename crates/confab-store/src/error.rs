//! Mapping of sqlx errors to [`StoreError`] (sqlx errors never leave this crate) and the
//! errors of opening a store.

use std::path::PathBuf;

use confab_core::StoreError;

/// Which uniqueness rule a write broke, read from SQLite's message
/// (`UNIQUE constraint failed: users.phone`).
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    if db.kind() != sqlx::error::ErrorKind::UniqueViolation {
        return None;
    }
    let msg = db.message();
    Some(
        msg.strip_prefix("UNIQUE constraint failed: ")
            .unwrap_or(msg)
            .to_owned(),
    )
}

/// Whether the error is a constraint violation of one statement (SQLite rolled back that
/// statement only; the transaction is intact).
pub(crate) fn is_constraint(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() != sqlx::error::ErrorKind::Other)
}

/// Any sqlx error the caller cannot fix: the store is unavailable.
pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(format!("sqlite: {e}"))
}

/// The store has been closed (or its writer task ended).
pub(crate) fn closed() -> StoreError {
    StoreError::unavailable("store is closed")
}

/// Why [`crate::SqliteStore::open`] failed. Every variant names the database file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database file does not exist (and creating it was not asked for).
    #[error("database {0} does not exist (run `confab init` to create it)")]
    NotFound(PathBuf),
    /// The database was written by a newer Confab: its schema version is above the newest
    /// this binary knows. Nothing was changed. Upgrade the binary (or restore a backup).
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this binary supports; \
         upgrade confab or restore a backup made by this version"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },
    /// Creating the file or reading its metadata failed.
    #[error("database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Applying migrations failed (the failed migration was rolled back).
    #[error("database {path}: migration failed: {reason}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// SQLite refused to open or configure the database (not a database, locked, ...).
    #[error("database {path}: {reason}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
}
