//! The one error type every storage trait returns.

use std::fmt;

/// The kind of record a [`StoreError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// A user account, keyed by address.
    User,
    /// A phone number (unique across users).
    PhoneNumber,
    /// An API token, keyed by name.
    Token,
    /// A presence publication, keyed by entity-tag.
    Publication,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::PhoneNumber => "phone number",
            Entity::Token => "API token",
            Entity::Publication => "publication",
        })
    }
}

/// Why a storage operation failed. Backend errors (sqlx, I/O) never escape an adapter: they
/// are mapped to these four cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record the caller named does not exist. The caller's input is wrong.
    #[error("{entity} {key} not found")]
    NotFound {
        /// What kind of record was looked for.
        entity: Entity,
        /// The key the caller gave (an address, a token name ...).
        key: String,
    },
    /// The write would break a uniqueness rule (the user already exists, the phone number
    /// belongs to someone else). The caller's input is wrong; nothing was written.
    #[error("{entity} {key} already exists")]
    Conflict {
        /// What kind of record collides.
        entity: Entity,
        /// The colliding key.
        key: String,
    },
    /// The store could not do the work (disk full, I/O error, database locked past the busy
    /// timeout, commit failed, store closed). Not the caller's fault; the operation may be
    /// retried later. Nothing was reported as saved that was not saved.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// What went wrong, for the operator's log (never contains secrets).
        reason: String,
    },
    /// The stored data or the request is not valid for the store (for example a value longer
    /// than a column allows, or a corrupt row). `field` names the offending field.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::NotFound`].
    pub fn not_found(entity: Entity, key: impl fmt::Display) -> StoreError {
        StoreError::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// Shorthand for [`StoreError::Conflict`].
    pub fn conflict(entity: Entity, key: impl fmt::Display) -> StoreError {
        StoreError::Conflict {
            entity,
            key: key.to_string(),
        }
    }

    /// Shorthand for [`StoreError::Unavailable`].
    pub fn unavailable(reason: impl fmt::Display) -> StoreError {
        StoreError::Unavailable {
            reason: reason.to_string(),
        }
    }

    /// Whether the record was not found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Whether a uniqueness rule was hit.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether the store itself failed (retrying later may succeed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}
