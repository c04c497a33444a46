//! [`ContactStore`] on SQLite (schema: `migrations/sqlite/0006_contacts_presence_policy.sql`).
//!
//! Writes run in the group-commit writer: the owner lookup, the limit check, the change and
//! the bump of the owner's change sequence are one transaction, answered after the commit.
//! Reads use the read-only pool.

use async_trait::async_trait;
use confab_core::contacts::{
    AccessLevel, Contact, ContactError, ContactStore, GroupName, MAX_CONTACTS_PER_USER,
    MAX_GROUPS_PER_USER, MAX_RULES_PER_USER, PresenceChange, PresencePolicy, PresenceRule,
    PresenceSettings, WatcherPattern,
};
use confab_core::{Address, DisplayName, Entity, StoreError};
use sqlx::{Executor, Sqlite, SqliteConnection};

use crate::SqliteStore;
use crate::error::unavailable;

fn corrupt(field: &'static str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        field,
        message: format!("stored contact data is corrupt: {message}"),
    }
}

async fn owner_id<'e, E: Executor<'e, Database = Sqlite>>(
    e: E,
    owner: &Address,
) -> Result<i64, StoreError> {
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE domain = ? AND username = ?")
            .bind(owner.domain())
            .bind(owner.user())
            .fetch_optional(e)
            .await
            .map_err(unavailable)?;
    id.ok_or_else(|| StoreError::not_found(Entity::User, owner))
}

async fn bump(conn: &mut SqliteConnection, owner_id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO presence_changes (owner_id, seq) \
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM presence_changes)) \
         ON CONFLICT (owner_id) DO UPDATE SET seq = excluded.seq",
    )
    .bind(owner_id)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

async fn read_contacts<'e, E: Executor<'e, Database = Sqlite>>(
    e: E,
    owner_id: i64,
    only: Option<&str>,
) -> Result<Vec<Contact>, StoreError> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT c.contact, c.display_name, g.name FROM contacts c \
         LEFT JOIN contact_groups g ON g.owner_id = c.owner_id AND g.contact = c.contact \
         WHERE c.owner_id = ?1 AND (?2 IS NULL OR c.contact = ?2) \
         ORDER BY c.contact, g.name",
    )
    .bind(owner_id)
    .bind(only)
    .fetch_all(e)
    .await
    .map_err(unavailable)?;
    let mut out: Vec<Contact> = Vec::new();
    for (contact, name, group) in rows {
        if out.last().is_none_or(|c| c.address.as_str() != contact) {
            out.push(Contact {
                address: Address::parse(&contact).map_err(|e| corrupt("contact", e))?,
                display_name: name
                    .map(|n| DisplayName::parse(&n))
                    .transpose()
                    .map_err(|e| corrupt("display_name", e))?,
                groups: Vec::new(),
            });
        }
        if let (Some(g), Some(c)) = (group, out.last_mut()) {
            c.groups
                .push(GroupName::parse(&g).map_err(|e| corrupt("group", e))?);
        }
    }
    Ok(out)
}

async fn add_job(
    conn: &mut SqliteConnection,
    owner: Address,
    contact: Address,
    display_name: Option<DisplayName>,
    group: Option<GroupName>,
) -> Result<Contact, StoreError> {
    let id = owner_id(&mut *conn, &owner).await?;
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact = ?2")
            .bind(id)
            .bind(contact.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
    if exists.is_none() {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE owner_id = ?1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_CONTACTS_PER_USER {
            return Err(ContactError::new(
                "contacts",
                format!("{owner} has {n} contacts; the limit is {MAX_CONTACTS_PER_USER}"),
            )
            .into());
        }
        sqlx::query(
            "INSERT INTO contacts (owner_id, contact, display_name, added_at) \
             VALUES (?1, ?2, ?3, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
        )
        .bind(id)
        .bind(contact.as_str())
        .bind(display_name.as_ref().map(DisplayName::as_str))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    } else if let Some(n) = &display_name {
        sqlx::query("UPDATE contacts SET display_name = ?3 WHERE owner_id = ?1 AND contact = ?2")
            .bind(id)
            .bind(contact.as_str())
            .bind(n.as_str())
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    if let Some(g) = &group {
        let known: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM contact_groups WHERE owner_id = ?1 AND name = ?2")
                .bind(id)
                .bind(g.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable)?;
        if known.is_none() {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT name) FROM contact_groups WHERE owner_id = ?1",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
            if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_GROUPS_PER_USER {
                return Err(ContactError::new(
                    "group",
                    format!("{owner} has {n} groups; the limit is {MAX_GROUPS_PER_USER}"),
                )
                .into());
            }
        }
        sqlx::query(
            "INSERT INTO contact_groups (owner_id, contact, name) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(contact.as_str())
        .bind(g.as_str())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    bump(conn, id).await?;
    read_contacts(&mut *conn, id, Some(contact.as_str()))
        .await?
        .pop()
        .ok_or_else(|| StoreError::unavailable("contact not found after insert"))
}

async fn remove_job(
    conn: &mut SqliteConnection,
    owner: Address,
    contact: Address,
    group: Option<GroupName>,
) -> Result<bool, StoreError> {
    let id = owner_id(&mut *conn, &owner).await?;
    let done = match &group {
        None => sqlx::query("DELETE FROM contacts WHERE owner_id = ?1 AND contact = ?2")
            .bind(id)
            .bind(contact.as_str()),
        Some(g) => sqlx::query(
            "DELETE FROM contact_groups WHERE owner_id = ?1 AND contact = ?2 AND name = ?3",
        )
        .bind(id)
        .bind(contact.as_str())
        .bind(g.as_str()),
    }
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?
    .rows_affected()
        > 0;
    if done {
        bump(conn, id).await?;
    }
    Ok(done)
}

async fn rule_job(
    conn: &mut SqliteConnection,
    owner: Address,
    watcher: WatcherPattern,
    level: Option<AccessLevel>,
) -> Result<bool, StoreError> {
    let id = owner_id(&mut *conn, &owner).await?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT level FROM presence_rules WHERE owner_id = ?1 AND watcher = ?2")
            .bind(id)
            .bind(watcher.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
    if current.as_deref() == level.map(AccessLevel::as_str) {
        return Ok(false);
    }
    match level {
        None => {
            sqlx::query("DELETE FROM presence_rules WHERE owner_id = ?1 AND watcher = ?2")
                .bind(id)
                .bind(watcher.as_str())
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
        }
        Some(level) => {
            if current.is_none() {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM presence_rules WHERE owner_id = ?1")
                        .bind(id)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(unavailable)?;
                if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_RULES_PER_USER {
                    return Err(ContactError::new(
                        "rules",
                        format!(
                            "{owner} has {n} presence rules; the limit is {MAX_RULES_PER_USER}"
                        ),
                    )
                    .into());
                }
            }
            sqlx::query(
                "INSERT INTO presence_rules (owner_id, watcher, is_domain, level) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (owner_id, watcher) DO UPDATE SET level = excluded.level",
            )
            .bind(id)
            .bind(watcher.as_str())
            .bind(i64::from(watcher.is_domain()))
            .bind(level.as_str())
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        }
    }
    bump(conn, id).await?;
    Ok(true)
}

async fn confirm_job(
    conn: &mut SqliteConnection,
    owner: Address,
    on: bool,
) -> Result<(), StoreError> {
    let id = owner_id(&mut *conn, &owner).await?;
    sqlx::query(
        "INSERT INTO presence_settings (owner_id, confirm_strangers) VALUES (?1, ?2) \
         ON CONFLICT (owner_id) DO UPDATE SET confirm_strangers = excluded.confirm_strangers",
    )
    .bind(id)
    .bind(i64::from(on))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    bump(conn, id).await
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn list_contacts(&self, owner: &Address) -> Result<Vec<Contact>, StoreError> {
        let id = owner_id(&self.inner.read, owner).await?;
        read_contacts(&self.inner.read, id, None).await
    }

    async fn add_contact(
        &self,
        owner: &Address,
        contact: &Address,
        display_name: Option<DisplayName>,
        group: Option<GroupName>,
    ) -> Result<Contact, StoreError> {
        let (owner, contact) = (owner.clone(), contact.clone());
        self.inner
            .writer
            .write(move |conn| Box::pin(add_job(conn, owner, contact, display_name, group)))
            .await
    }

    async fn remove_contact(
        &self,
        owner: &Address,
        contact: &Address,
        group: Option<&GroupName>,
    ) -> Result<bool, StoreError> {
        let (owner, contact, group) = (owner.clone(), contact.clone(), group.cloned());
        self.inner
            .writer
            .write(move |conn| Box::pin(remove_job(conn, owner, contact, group)))
            .await
    }

    async fn presence_settings(&self, owner: &Address) -> Result<PresenceSettings, StoreError> {
        let id = owner_id(&self.inner.read, owner).await?;
        let contacts = read_contacts(&self.inner.read, id, None).await?;
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT watcher, is_domain, level FROM presence_rules WHERE owner_id = ?1 \
             ORDER BY is_domain, watcher",
        )
        .bind(id)
        .fetch_all(&self.inner.read)
        .await
        .map_err(unavailable)?;
        let mut rules = Vec::with_capacity(rows.len());
        for (w, is_domain, level) in rows {
            let watcher = WatcherPattern::parse(&w).map_err(|e| corrupt("watcher", e))?;
            if watcher.is_domain() != (is_domain != 0) {
                return Err(corrupt("watcher", format!("`{w}` has the wrong kind")));
            }
            rules.push(PresenceRule {
                watcher,
                level: level.parse().map_err(|e| corrupt("level", e))?,
            });
        }
        let confirm: Option<i64> = sqlx::query_scalar(
            "SELECT confirm_strangers FROM presence_settings WHERE owner_id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.inner.read)
        .await
        .map_err(unavailable)?;
        Ok(PresenceSettings {
            contacts,
            policy: PresencePolicy {
                rules,
                confirm_strangers: confirm == Some(1),
            },
        })
    }

    async fn set_presence_rule(
        &self,
        owner: &Address,
        watcher: &WatcherPattern,
        level: Option<AccessLevel>,
    ) -> Result<bool, StoreError> {
        let (owner, watcher) = (owner.clone(), watcher.clone());
        self.inner
            .writer
            .write(move |conn| Box::pin(rule_job(conn, owner, watcher, level)))
            .await
    }

    async fn set_confirm_strangers(&self, owner: &Address, on: bool) -> Result<(), StoreError> {
        let owner = owner.clone();
        self.inner
            .writer
            .write(move |conn| Box::pin(confirm_job(conn, owner, on)))
            .await
    }

    async fn presence_changes(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<PresenceChange>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT p.seq, u.username, u.domain FROM presence_changes p \
             JOIN users u ON u.id = p.owner_id WHERE p.seq > ?1 ORDER BY p.seq LIMIT ?2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.inner.read)
        .await
        .map_err(unavailable)?;
        rows.into_iter()
            .map(|(seq, user, domain)| {
                Ok(PresenceChange {
                    seq: u64::try_from(seq).map_err(|e| corrupt("seq", e))?,
                    owner: Address::new(&user, &domain).map_err(|e| corrupt("owner", e))?,
                })
            })
            .collect()
    }

    async fn presence_change_head(&self) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM presence_changes")
            .fetch_one(&self.inner.read)
            .await
            .map_err(unavailable)?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use confab_core::{NewUser, UserStore};

    async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_or_create(StoreConfig::new(dir.path().join("t.db")))
            .await
            .unwrap();
        (dir, store)
    }

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[tokio::test]
    async fn contacts_groups_rules_and_the_change_feed() {
        let (_dir, store) = temp_store().await;
        let alice = a("alice@example.com");
        store.add_user(NewUser::new(alice.clone())).await.unwrap();
        assert_eq!(store.presence_change_head().await.unwrap(), 0);

        // Unknown owner.
        let e = store
            .list_contacts(&a("nobody@example.com"))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let e = store
            .add_contact(&a("nobody@example.com"), &a("bob@x.org"), None, None)
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");

        let team = GroupName::parse("Team").unwrap();
        let c = store
            .add_contact(
                &alice,
                &a("bob@x.org"),
                Some(DisplayName::parse("Bob").unwrap()),
                Some(team.clone()),
            )
            .await
            .unwrap();
        assert_eq!(c.groups, vec![team.clone()]);
        store
            .add_contact(
                &alice,
                &a("bob@x.org"),
                None,
                Some(GroupName::parse("Friends").unwrap()),
            )
            .await
            .unwrap();
        store
            .add_contact(&alice, &a("carol@example.com"), None, None)
            .await
            .unwrap();
        let list = store.list_contacts(&alice).await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].address, a("bob@x.org"));
        assert_eq!(list[0].display_name.as_ref().unwrap().as_str(), "Bob");
        assert_eq!(
            list[0]
                .groups
                .iter()
                .map(GroupName::as_str)
                .collect::<Vec<_>>(),
            ["Friends", "Team"]
        );
        assert!(list[1].groups.is_empty());

        // Removing from one group keeps the contact; removing it drops its groups.
        assert!(
            store
                .remove_contact(&alice, &a("bob@x.org"), Some(&team))
                .await
                .unwrap()
        );
        assert!(
            !store
                .remove_contact(&alice, &a("bob@x.org"), Some(&team))
                .await
                .unwrap()
        );
        assert_eq!(
            store.list_contacts(&alice).await.unwrap()[0].groups.len(),
            1
        );
        assert!(
            store
                .remove_contact(&alice, &a("bob@x.org"), None)
                .await
                .unwrap()
        );
        assert!(
            !store
                .remove_contact(&alice, &a("bob@x.org"), None)
                .await
                .unwrap()
        );
        assert_eq!(store.list_contacts(&alice).await.unwrap().len(), 1);

        // Rules and settings.
        let dom = WatcherPattern::parse("x.org").unwrap();
        let eve = WatcherPattern::parse("eve@x.org").unwrap();
        assert!(
            store
                .set_presence_rule(&alice, &dom, Some(AccessLevel::Blocked))
                .await
                .unwrap()
        );
        assert!(
            store
                .set_presence_rule(&alice, &eve, Some(AccessLevel::Personal))
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_presence_rule(&alice, &eve, Some(AccessLevel::Personal))
                .await
                .unwrap()
        );
        store.set_confirm_strangers(&alice, true).await.unwrap();
        let s = store.presence_settings(&alice).await.unwrap();
        assert!(s.policy.confirm_strangers);
        assert_eq!(
            s.policy.rules,
            vec![
                PresenceRule {
                    watcher: eve.clone(),
                    level: AccessLevel::Personal
                },
                PresenceRule {
                    watcher: dom.clone(),
                    level: AccessLevel::Blocked
                },
            ]
        );
        assert!(store.set_presence_rule(&alice, &eve, None).await.unwrap());
        assert!(!store.set_presence_rule(&alice, &eve, None).await.unwrap());

        // The feed: one row per owner with its latest sequence number.
        let head = store.presence_change_head().await.unwrap();
        assert!(head >= 9, "{head}");
        let changes = store.presence_changes(0, 10).await.unwrap();
        assert_eq!(
            changes,
            vec![PresenceChange {
                seq: head,
                owner: alice.clone()
            }]
        );
        assert!(store.presence_changes(head, 10).await.unwrap().is_empty());

        // Removing the user removes everything of theirs.
        store.remove_user(&alice).await.unwrap();
        assert!(store.presence_changes(0, 10).await.unwrap().is_empty());
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
            .fetch_one(&store.inner.read)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn restore_keeps_contacts_and_rules() {
        // Restore empties every table before refilling any: the cascade from `users` must
        // not remove the contacts copied back before it.
        let (dir, store) = temp_store().await;
        let alice = a("alice@example.com");
        store.add_user(NewUser::new(alice.clone())).await.unwrap();
        store
            .add_contact(
                &alice,
                &a("bob@x.org"),
                None,
                Some(GroupName::parse("g").unwrap()),
            )
            .await
            .unwrap();
        let w = WatcherPattern::parse("x.org").unwrap();
        store
            .set_presence_rule(&alice, &w, Some(AccessLevel::Blocked))
            .await
            .unwrap();
        let backup = dir.path().join("b.db");
        store.backup(&backup).await.unwrap();
        store.remove_user(&alice).await.unwrap();
        store.restore(&backup).await.unwrap();
        let s = store.presence_settings(&alice).await.unwrap();
        assert_eq!(s.contacts.len(), 1);
        assert_eq!(s.contacts[0].groups.len(), 1);
        assert_eq!(s.policy.rules.len(), 1);
    }

    #[tokio::test]
    async fn a_database_from_before_migration_6_gets_it_at_open() {
        // Databases made before this change have 0007 applied and not 0006: opening them
        // applies 0006 (sqlx applies every migration not yet recorded).
        let (dir, store) = temp_store().await;
        let path = dir.path().join("t.db");
        store.close().await;
        {
            use sqlx::Connection as _;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            for t in [
                "contact_groups",
                "contacts",
                "presence_rules",
                "presence_settings",
                "presence_changes",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 6")
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        }
        let store = SqliteStore::open(StoreConfig::new(path)).await.unwrap();
        let alice = a("alice@example.com");
        store.add_user(NewUser::new(alice.clone())).await.unwrap();
        store
            .add_contact(&alice, &a("bob@x.org"), None, None)
            .await
            .unwrap();
        assert_eq!(store.list_contacts(&alice).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn limits_are_checked_in_the_write() {
        let (_dir, store) = temp_store().await;
        let alice = a("alice@example.com");
        store.add_user(NewUser::new(alice.clone())).await.unwrap();
        for i in 0..MAX_CONTACTS_PER_USER {
            store
                .add_contact(&alice, &a(&format!("u{i}@x.org")), None, None)
                .await
                .unwrap();
        }
        let e = store
            .add_contact(&alice, &a("one-more@x.org"), None, None)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            StoreError::Invalid {
                field: "contacts",
                message: format!(
                    "alice@example.com has {MAX_CONTACTS_PER_USER} contacts; the limit is {MAX_CONTACTS_PER_USER}"
                ),
            }
        );
        // An existing contact can still be updated.
        store
            .add_contact(
                &alice,
                &a("u1@x.org"),
                None,
                Some(GroupName::parse("g").unwrap()),
            )
            .await
            .unwrap();
        for i in 1..MAX_GROUPS_PER_USER {
            store
                .add_contact(
                    &alice,
                    &a("u1@x.org"),
                    None,
                    Some(GroupName::parse(&format!("g{i}")).unwrap()),
                )
                .await
                .unwrap();
        }
        let e = store
            .add_contact(
                &alice,
                &a("u2@x.org"),
                None,
                Some(GroupName::parse("too-many").unwrap()),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { field: "group", .. }),
            "{e}"
        );
    }
}
