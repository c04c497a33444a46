//! Server-stored contact lists and presence access policies (issue 8 items 5 and 6): the
//! records, their validation, and the [`ContactStore`] port that keeps them.
//!
//! A user's **contact list** roams with them: every device (and the resource list server,
//! RFC 4662) reads the same list from the database. A contact is an address with an optional
//! display name and any number of **groups** (a contact in no group is in the list all the
//! same). A user's **presence policy** is a list of [`PresenceRule`]s (an access level for one
//! watcher address or one whole domain) plus `confirm_strangers` (RFC 3857 pending watchers).
//! The presence role combines both into its access decisions: contacts are personal unless a
//! rule says otherwise.
//!
//! What it does not do: decide levels (the presence role does), XCAP (RFC 4825/4826, a later
//! issue), store or read anything (the adapters do).
//!
//! # Change feed
//!
//! Every write bumps a change sequence number of its owner, in the same transaction
//! ([`ContactStore::presence_changes`]): front ends poll it and re-notify exactly the
//! watchers a change affects, whichever process (CLI, admin API, another front end) wrote.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Address, DisplayName, StoreError};

/// Most contacts one user may keep.
pub const MAX_CONTACTS_PER_USER: usize = 1_000;
/// Most groups one user may have.
pub const MAX_GROUPS_PER_USER: usize = 100;
/// Most presence rules one user may set.
pub const MAX_RULES_PER_USER: usize = 1_000;
/// Longest group name, in characters.
pub const MAX_GROUP_CHARS: usize = 64;

/// An access level, least to most (issue 8 item 5).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    /// Sees the user as offline.
    Blocked,
    /// Availability only.
    Public,
    /// Availability, activity, note.
    Colleague,
    /// Everything.
    Personal,
}

impl AccessLevel {
    /// Every level, least first.
    pub const ALL: [AccessLevel; 4] = [
        AccessLevel::Blocked,
        AccessLevel::Public,
        AccessLevel::Colleague,
        AccessLevel::Personal,
    ];

    /// The token (`blocked`, `public`, `colleague`, `personal`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Blocked => "blocked",
            AccessLevel::Public => "public",
            AccessLevel::Colleague => "colleague",
            AccessLevel::Personal => "personal",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessLevel {
    type Err = ContactError;

    fn from_str(s: &str) -> Result<AccessLevel, ContactError> {
        AccessLevel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ContactError::new(
                    "level",
                    format!("`{s}` is not a level (blocked, public, colleague, personal)"),
                )
            })
    }
}

/// A contact or policy value that cannot be stored. The caller's input is wrong; nothing was
/// written. Converts to [`StoreError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ContactError {
    /// The field at fault (`contact`, `group`, `watcher`, `level`, `contacts` ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ContactError {
    /// An error about `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> ContactError {
        ContactError {
            field,
            message: message.into(),
        }
    }
}

impl From<ContactError> for StoreError {
    fn from(e: ContactError) -> StoreError {
        StoreError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

/// A group name: 1 to [`MAX_GROUP_CHARS`] characters, no control characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct GroupName(String);

impl GroupName {
    /// Validates a group name.
    pub fn parse(input: &str) -> Result<GroupName, ContactError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ContactError::new("group", "group name is empty"));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(ContactError::new(
                "group",
                format!(
                    "group name contains control character U+{:04X}",
                    u32::from(c)
                ),
            ));
        }
        let n = s.chars().count();
        if n > MAX_GROUP_CHARS {
            return Err(ContactError::new(
                "group",
                format!("group name has {n} characters; the limit is {MAX_GROUP_CHARS}"),
            ));
        }
        Ok(GroupName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GroupName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GroupName, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        GroupName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One contact of a user's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's address (any domain).
    pub address: Address,
    /// The name the owner gave them.
    pub display_name: Option<DisplayName>,
    /// The groups they are in, sorted (empty: in no group).
    pub groups: Vec<GroupName>,
}

/// Whom a presence rule is about: one watcher address, or every watcher of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatcherPattern {
    /// One watcher (`user@domain`).
    Address(Address),
    /// Every watcher of a domain (lowercase), below address rules.
    Domain(String),
}

impl WatcherPattern {
    /// `user@domain` (with or without `sip:`) is an address; a bare domain (or `*@domain`)
    /// is the whole domain.
    pub fn parse(input: &str) -> Result<WatcherPattern, ContactError> {
        let s = input.trim();
        let bad = |m: String| ContactError::new("watcher", m);
        if let Some(domain) = s.strip_prefix("*@") {
            return WatcherPattern::domain(domain).map_err(bad);
        }
        if s.contains('@') {
            return Address::parse(s)
                .map(WatcherPattern::Address)
                .map_err(|e| bad(e.to_string()));
        }
        WatcherPattern::domain(s).map_err(bad)
    }

    fn domain(d: &str) -> Result<WatcherPattern, String> {
        if d.is_empty() {
            return Err("watcher is empty: give user@domain or a domain".to_owned());
        }
        Address::new("x", d)
            .map(|a| WatcherPattern::Domain(a.domain().to_owned()))
            .map_err(|e| format!("`{d}` is neither user@domain nor a domain: {e}"))
    }

    /// The text form (`user@domain` or `domain`), as [`WatcherPattern::parse`] reads it.
    pub fn as_str(&self) -> &str {
        match self {
            WatcherPattern::Address(a) => a.as_str(),
            WatcherPattern::Domain(d) => d,
        }
    }

    /// Whether this is a domain rule.
    pub fn is_domain(&self) -> bool {
        matches!(self, WatcherPattern::Domain(_))
    }
}

impl fmt::Display for WatcherPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule of a presence policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRule {
    /// Whom it is about.
    pub watcher: WatcherPattern,
    /// The level they get.
    pub level: AccessLevel,
}

/// A user's stored presence policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresencePolicy {
    /// The rules, address rules first then domain rules, each sorted.
    pub rules: Vec<PresenceRule>,
    /// Watchers nobody placed (no rule, not a contact, not of the user's domain) wait as
    /// pending watchers (RFC 3857) until the user allows or blocks them.
    pub confirm_strangers: bool,
}

/// Everything the presence role needs of one user: contacts and policy, read together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceSettings {
    /// The contact list.
    pub contacts: Vec<Contact>,
    /// The policy.
    pub policy: PresencePolicy,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The sequence number of the owner's latest change.
    pub seq: u64,
    /// Whose contacts or policy changed.
    pub owner: Address,
}

/// Contact lists and presence policies.
///
/// Contract for every implementation:
/// - a write that returns `Ok` is durable, and bumps its owner's change sequence in the same
///   transaction;
/// - an owner that is not a user is [`StoreError::NotFound`] with `Entity::User`;
/// - the limits ([`MAX_CONTACTS_PER_USER`], [`MAX_GROUPS_PER_USER`],
///   [`MAX_RULES_PER_USER`]) are checked in the same write as the insert, and a write past
///   one is [`StoreError::Invalid`] naming `contacts`, `group` or `rules`;
/// - removing a user removes their contacts and policy.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// The owner's contacts, sorted by address.
    async fn list_contacts(&self, owner: &Address) -> Result<Vec<Contact>, StoreError>;

    /// Adds `contact` to the owner's list (or updates it): `display_name` replaces the stored
    /// one when given; `group`, when given, is added to the contact's groups. Returns the
    /// contact as stored.
    async fn add_contact(
        &self,
        owner: &Address,
        contact: &Address,
        display_name: Option<DisplayName>,
        group: Option<GroupName>,
    ) -> Result<Contact, StoreError>;

    /// Removes `contact` from the owner's list, or with `group` only from that group (the
    /// contact stays in the list). `Ok(false)` when there was nothing to remove.
    async fn remove_contact(
        &self,
        owner: &Address,
        contact: &Address,
        group: Option<&GroupName>,
    ) -> Result<bool, StoreError>;

    /// The owner's contacts and policy.
    async fn presence_settings(&self, owner: &Address) -> Result<PresenceSettings, StoreError>;

    /// Sets (`Some`) or removes (`None`) the owner's rule for `watcher`. Returns whether
    /// anything changed.
    async fn set_presence_rule(
        &self,
        owner: &Address,
        watcher: &WatcherPattern,
        level: Option<AccessLevel>,
    ) -> Result<bool, StoreError>;

    /// Sets the owner's `confirm_strangers`.
    async fn set_confirm_strangers(&self, owner: &Address, on: bool) -> Result<(), StoreError>;

    /// Owners whose contacts or policy changed with a sequence number above `after`, in
    /// sequence order, at most `limit`.
    async fn presence_changes(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<PresenceChange>, StoreError>;

    /// The highest change sequence number so far (0 when none).
    async fn presence_change_head(&self) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watcher_patterns() {
        assert_eq!(
            WatcherPattern::parse("sip:Bob@Example.COM").unwrap(),
            WatcherPattern::Address(Address::parse("Bob@example.com").unwrap())
        );
        assert_eq!(
            WatcherPattern::parse("Example.com").unwrap(),
            WatcherPattern::Domain("example.com".into())
        );
        assert_eq!(
            WatcherPattern::parse("*@example.com").unwrap(),
            WatcherPattern::Domain("example.com".into())
        );
        for bad in ["", "@x", "a@", "a b", "a@b@c", "*@"] {
            let e = WatcherPattern::parse(bad).unwrap_err();
            assert_eq!(e.field, "watcher", "{bad:?}");
        }
    }

    #[test]
    fn levels_and_groups() {
        assert_eq!(
            "Colleague".parse::<AccessLevel>().unwrap(),
            AccessLevel::Colleague
        );
        assert_eq!("root".parse::<AccessLevel>().unwrap_err().field, "level");
        assert_eq!(GroupName::parse("  Team ").unwrap().as_str(), "Team");
        assert!(GroupName::parse("").is_err());
        assert!(GroupName::parse("a\nb").is_err());
        assert!(GroupName::parse(&"x".repeat(65)).is_err());
        assert!(GroupName::parse(&"x".repeat(64)).is_ok());
    }
}
