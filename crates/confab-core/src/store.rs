//! The storage traits (ports). Implemented by `confab-store`; used by roles and surfaces.

use async_trait::async_trait;

use crate::{
    Address, ApiToken, Ha1Set, ImportOutcome, ImportRow, NewUser, PhoneNumber, StoreError,
    TokenHash, TokenName, User, UserChanges,
};

/// Where a listing continues. Opaque to callers: pass back the `next` of the previous
/// [`Page`]. Each store defines what is inside (for users: the last address returned).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(pub String);

/// Which page of a listing to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Start after this cursor; `None` for the first page.
    pub after: Option<Cursor>,
    /// Most items to return; stores clamp it to `1..=PageRequest::MAX_LIMIT`.
    pub limit: u32,
}

impl PageRequest {
    /// The largest page a store returns.
    pub const MAX_LIMIT: u32 = 1000;

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> PageRequest {
        PageRequest { after: None, limit }
    }

    /// The limit clamped to `1..=MAX_LIMIT`.
    pub fn clamped_limit(&self) -> u32 {
        self.limit.clamp(1, PageRequest::MAX_LIMIT)
    }
}

/// One page of a listing, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page; `None` when this is the last page.
    pub next: Option<Cursor>,
}

/// User accounts.
///
/// Contract for every implementation:
/// - a method that returns `Ok` for a write has made the write durable (committed) first;
/// - on `Err` nothing of that call was written;
/// - addresses are compared exactly (user part case sensitive, domain already lowercase);
/// - phone numbers are unique across users (compared in normalised form);
/// - listings are ordered by domain, then user part (byte order).
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user. [`StoreError::Conflict`] with `Entity::User` if the address exists, with
    /// `Entity::PhoneNumber` if the phone number belongs to another user.
    async fn add_user(&self, user: NewUser) -> Result<User, StoreError>;

    /// Changes the profile of an existing user and returns the new record.
    /// [`StoreError::NotFound`] if there is no such user; `Conflict` on a taken phone number.
    async fn modify_user(
        &self,
        address: &Address,
        changes: UserChanges,
    ) -> Result<User, StoreError>;

    /// Replaces the user's HA1 values (computed by the caller with realm = the domain).
    /// [`StoreError::NotFound`] if there is no such user.
    async fn set_password(&self, address: &Address, credentials: Ha1Set) -> Result<(), StoreError>;

    /// Removes a user. [`StoreError::NotFound`] if there is no such user.
    async fn remove_user(&self, address: &Address) -> Result<(), StoreError>;

    /// Fetches a user; `Ok(None)` if there is none (the normal case for a digest challenge
    /// to an unknown account, which the caller must answer like a known one).
    async fn get_user(&self, address: &Address) -> Result<Option<User>, StoreError>;

    /// Finds the user holding exactly this (normalised) phone number.
    async fn find_user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError>;

    /// Lists users, ordered by domain then user part, one page at a time.
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, StoreError>;

    /// How many users exist.
    async fn count_users(&self) -> Result<u64, StoreError>;

    /// Adds or updates many users in one durable batch (see [`ImportRow`] for the update
    /// rules). Rows apply in order, so a later row for the same address updates the earlier
    /// one. Returns one result per row, in order: a bad row (for example a phone number that
    /// belongs to another user) gets its own error and does not stop the others. The outer
    /// `Err` means the whole batch failed and nothing was written.
    ///
    /// A batch holds the store's writer while it runs: callers importing many thousands of
    /// users send batches of a few thousand rows (100,000 users in 5,000-row batches take a
    /// few seconds with SQLite), so other writes interleave.
    async fn import_users(
        &self,
        rows: Vec<ImportRow>,
    ) -> Result<Vec<Result<ImportOutcome, StoreError>>, StoreError>;
}

/// Bearer tokens for the admin API. Only [`TokenHash`]es are stored, never secrets.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token. [`StoreError::Conflict`] (`Entity::Token`) if the name is taken.
    async fn create_token(&self, name: TokenName, hash: TokenHash) -> Result<ApiToken, StoreError>;

    /// Finds the token whose secret hashes to `hash` (authentication of a request).
    async fn find_token(&self, hash: &TokenHash) -> Result<Option<ApiToken>, StoreError>;

    /// Lists all tokens by name.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Revokes (deletes) a token. [`StoreError::NotFound`] if there is none by that name.
    async fn revoke_token(&self, name: &TokenName) -> Result<(), StoreError>;
}
