//! User accounts.

use std::fmt;
use std::str::FromStr;

use confab_digest::Ha1Set;

use crate::{Address, PhoneNumber, Timestamp};

/// What a user may do through the admin surfaces.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ordinary account: registers, calls, manages its own data.
    #[default]
    User,
    /// May also administer users and organisation policy.
    Admin,
}

impl Role {
    /// `user` or `admin`, as the CLI, the API and the database spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role `{0}` is unknown; expected `user` or `admin`")]
pub struct RoleError(pub String);

impl FromStr for Role {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Role, RoleError> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err(RoleError(s.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// A human-readable name shown to other users (`"Alice Smith"`). Any Unicode text without
/// control characters, 1 to [`MAX_DISPLAY_NAME_CHARS`] characters, no surrounding spaces.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

/// Why a display name is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisplayNameError {
    /// Empty (or only spaces).
    #[error("display name is empty")]
    Empty,
    /// Longer than the limit.
    #[error("display name has {0} characters; the limit is 256")]
    TooLong(usize),
    /// Contains a control character (line breaks included).
    #[error("display name contains control character U+{0:04X}")]
    ControlChar(u32),
}

impl DisplayName {
    /// Validates a display name (surrounding whitespace is trimmed).
    pub fn parse(input: &str) -> Result<DisplayName, DisplayNameError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(DisplayNameError::Empty);
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(DisplayNameError::ControlChar(u32::from(c)));
        }
        let n = s.chars().count();
        if n > MAX_DISPLAY_NAME_CHARS {
            return Err(DisplayNameError::TooLong(n));
        }
        Ok(DisplayName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayName({:?})", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DisplayName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DisplayName, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DisplayName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A stored user account.
///
/// Not `Serialize` on purpose: it holds HA1 values, which are password equivalents. Surfaces
/// build their own views without [`User::credentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account's address; `user` is the digest username, `domain` the realm.
    pub address: Address,
    /// Name shown to others.
    pub display_name: Option<DisplayName>,
    /// Phone number, unique across users.
    pub phone: Option<PhoneNumber>,
    /// What the account may administer.
    pub role: Role,
    /// HA1 values for every digest hash (realm = the address's domain); `None` until a
    /// password is set, in which case digest authentication always fails.
    pub credentials: Option<Ha1Set>,
    /// When the account was created (set by the store).
    pub created_at: Timestamp,
    /// When the account last changed (set by the store; also on password changes).
    pub updated_at: Timestamp,
}

/// A user to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The address (must not exist yet).
    pub address: Address,
    /// Name shown to others.
    pub display_name: Option<DisplayName>,
    /// Phone number (must not belong to another user).
    pub phone: Option<PhoneNumber>,
    /// Role.
    pub role: Role,
    /// HA1 values computed with realm = `address.domain()`, or `None` for no password yet.
    pub credentials: Option<Ha1Set>,
}

impl NewUser {
    /// A user with just an address: no display name, no phone, role `user`, no password.
    pub fn new(address: Address) -> NewUser {
        NewUser {
            address,
            display_name: None,
            phone: None,
            role: Role::User,
            credentials: None,
        }
    }
}

/// One field of an update: leave it, set it, or clear it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    /// Leave the stored value as it is.
    #[default]
    Keep,
    /// Store this value.
    Set(T),
    /// Remove the stored value.
    Clear,
}

/// Changes to a user's profile (passwords change through [`crate::UserStore::set_password`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserChanges {
    /// New display name.
    pub display_name: Change<DisplayName>,
    /// New phone number (must not belong to another user).
    pub phone: Change<PhoneNumber>,
    /// New role (`None` = keep).
    pub role: Option<Role>,
}

/// One row of a bulk import: adds the user, or updates it if the address exists.
///
/// On update, `None` fields keep the stored value (a CSV row with an empty password does not
/// remove a password); the role of an existing user is never changed by an import and new
/// users get [`Role::User`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// The address.
    pub address: Address,
    /// Display name to set.
    pub display_name: Option<DisplayName>,
    /// Phone number to set (must not belong to another user).
    pub phone: Option<PhoneNumber>,
    /// HA1 values to set (realm = `address.domain()`).
    pub credentials: Option<Ha1Set>,
}

/// What an import did with one row that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// A new user was created.
    Added,
    /// An existing user was updated.
    Updated,
}
