//! [`PolicyStore`] on SQLite (schema: `migrations/sqlite/0003_filter_policy.sql`).
//!
//! Writes validate in the caller's task (before queueing), then run in the group-commit
//! writer: each replaces the policy's rows and bumps its row in `policy_versions` in the same
//! savepoint, so a poller never sees new rules under an old version or the reverse. Rule
//! edits read, edit and rewrite the rule list inside one job (at most
//! `MAX_CLIENT_VERSION_RULES` rows), which makes them atomic with respect to every other
//! writer, including a CLI process beside the server (SQLite's write lock). Reads take one
//! read transaction, so the version and the rows come from the same snapshot. A stored
//! policy is validated again when read: a corrupt row is `Invalid`, never half applied.

use async_trait::async_trait;
use confab_core::StoreError;
use confab_core::policy::{
    ClientAction, ClientActionKind, ClientVersionPolicy, ClientVersionRule, FileFilter,
    FilterScope, ImFilterPolicy, MAX_CLIENT_VERSION_RULES, PolicyStore, PolicyVersions, UrlAction,
    UrlFilter, Versioned,
};
use sqlx::SqliteConnection;

use crate::SqliteStore;
use crate::error::unavailable;
use crate::users::now;

const IM_FILTER: &str = "im_filter";
const CLIENT_VERSION: &str = "client_version";

fn corrupt(field: &'static str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        field,
        message: format!("stored policy is corrupt: {message}"),
    }
}

fn as_version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Bumps `policy`'s version and returns the new one.
async fn bump(conn: &mut SqliteConnection, policy: &str) -> Result<u64, StoreError> {
    let v: i64 = sqlx::query_scalar(
        "INSERT INTO policy_versions (policy, version, updated_at) VALUES (?1, 1, ?2) \
         ON CONFLICT (policy) DO UPDATE SET version = version + 1, updated_at = excluded.updated_at \
         RETURNING version",
    )
    .bind(policy)
    .bind(now().as_millis())
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(as_version(v))
}

type VersionRow = (i64, i64);

async fn version_of(
    conn: &mut SqliteConnection,
    policy: &str,
) -> Result<Option<VersionRow>, StoreError> {
    sqlx::query_as("SELECT version, updated_at FROM policy_versions WHERE policy = ?")
        .bind(policy)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)
}

fn versioned<T>(row: Option<VersionRow>, value: T) -> Versioned<T> {
    Versioned {
        version: row.map_or(0, |r| as_version(r.0)),
        updated_at: row.map(|r| confab_core::Timestamp(r.1)),
        value,
    }
}

// ---- IM filter ---------------------------------------------------------------------------

type ImRow = (String, String, String, String, String, String);

async fn read_im(conn: &mut SqliteConnection) -> Result<ImFilterPolicy, StoreError> {
    let row: Option<ImRow> = sqlx::query_as(
        "SELECT url_action, url_scope, url_prefix, url_reason, file_scope, file_reason \
         FROM im_filter_policy WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?;
    let extensions: Vec<String> =
        sqlx::query_scalar("SELECT extension FROM im_filter_extensions ORDER BY extension")
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
    let mut p = ImFilterPolicy::default();
    if let Some((ua, us, prefix, ur, fs, fr)) = row {
        let scope = |field, s: &str| FilterScope::from_name(s).ok_or_else(|| corrupt(field, s));
        p.urls = UrlFilter {
            action: UrlAction::from_name(&ua).ok_or_else(|| corrupt("urls.action", &ua))?,
            scope: scope("urls.scope", &us)?,
            prefix,
            reason: ur,
        };
        p.files = FileFilter {
            extensions: Vec::new(),
            scope: scope("files.scope", &fs)?,
            reason: fr,
        };
    }
    p.files.extensions = extensions;
    p.validated()
        .map_err(|e| corrupt(e.field, format_args!("{e}")))
}

async fn write_im(conn: &mut SqliteConnection, p: ImFilterPolicy) -> Result<u64, StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO im_filter_policy \
         (id, url_action, url_scope, url_prefix, url_reason, file_scope, file_reason) \
         VALUES (1, ?, ?, ?, ?, ?, ?)",
    )
    .bind(p.urls.action.as_str())
    .bind(p.urls.scope.as_str())
    .bind(&p.urls.prefix)
    .bind(&p.urls.reason)
    .bind(p.files.scope.as_str())
    .bind(&p.files.reason)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query("DELETE FROM im_filter_extensions")
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    for e in &p.files.extensions {
        sqlx::query("INSERT INTO im_filter_extensions (extension) VALUES (?)")
            .bind(e)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    bump(conn, IM_FILTER).await
}

// ---- client version ----------------------------------------------------------------------

type ActionRow = (String, Option<String>, Option<String>, Option<String>);

fn action_from(row: ActionRow) -> Result<ClientAction, StoreError> {
    let (kind, reason, url, message) = row;
    Ok(ClientAction {
        action: ClientActionKind::from_name(&kind).ok_or_else(|| corrupt("action", &kind))?,
        reason,
        url,
        message,
    })
}

/// product, version, then the action columns.
type RuleRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn read_rules(conn: &mut SqliteConnection) -> Result<Vec<ClientVersionRule>, StoreError> {
    let rows: Vec<RuleRow> = sqlx::query_as(
        "SELECT product, version, action, reason, url, message \
         FROM client_version_rules ORDER BY position",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|(product, version, a, r, u, m)| {
            Ok(ClientVersionRule {
                product,
                version,
                then: action_from((a, r, u, m))?,
            })
        })
        .collect()
}

async fn read_client(conn: &mut SqliteConnection) -> Result<ClientVersionPolicy, StoreError> {
    let rules = read_rules(conn).await?;
    let default: Option<ActionRow> =
        sqlx::query_as("SELECT action, reason, url, message FROM client_version_default")
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
    let default = default
        .map(action_from)
        .transpose()?
        .unwrap_or_else(ClientAction::allow);
    ClientVersionPolicy { rules, default }
        .validated()
        .map_err(|e| corrupt(e.field, format_args!("{e}")))
}

async fn write_rules(
    conn: &mut SqliteConnection,
    rules: &[ClientVersionRule],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM client_version_rules")
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    for (i, r) in rules.iter().enumerate() {
        sqlx::query(
            "INSERT INTO client_version_rules \
             (position, product, version, action, reason, url, message) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i64::try_from(i).unwrap_or(i64::MAX))
        .bind(&r.product)
        .bind(&r.version)
        .bind(r.then.action.as_str())
        .bind(&r.then.reason)
        .bind(&r.then.url)
        .bind(&r.then.message)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

async fn write_client(
    conn: &mut SqliteConnection,
    p: ClientVersionPolicy,
) -> Result<u64, StoreError> {
    write_rules(conn, &p.rules).await?;
    sqlx::query(
        "INSERT OR REPLACE INTO client_version_default (id, action, reason, url, message) \
         VALUES (1, ?, ?, ?, ?)",
    )
    .bind(p.default.action.as_str())
    .bind(&p.default.reason)
    .bind(&p.default.url)
    .bind(&p.default.message)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    bump(conn, CLIENT_VERSION).await
}

fn no_rule(position: usize, count: usize) -> StoreError {
    StoreError::Invalid {
        field: "position",
        message: format!(
            "there is no rule at position {position} (positions are 0-based; the policy has {count} rules)"
        ),
    }
}

async fn insert_rule(
    conn: &mut SqliteConnection,
    position: Option<usize>,
    rule: ClientVersionRule,
) -> Result<u64, StoreError> {
    let mut rules = read_rules(conn).await?;
    let at = position.unwrap_or(rules.len());
    if at > rules.len() {
        return Err(no_rule(at, rules.len()));
    }
    // Validated here, where the error can name the position the rule would take.
    rule.parse(at)?;
    if rules.len() >= MAX_CLIENT_VERSION_RULES {
        return Err(StoreError::Invalid {
            field: "rules",
            message: format!(
                "the policy already has {MAX_CLIENT_VERSION_RULES} rules, the most allowed"
            ),
        });
    }
    rules.insert(at, rule);
    write_rules(conn, &rules).await?;
    bump(conn, CLIENT_VERSION).await
}

async fn remove_rule(
    conn: &mut SqliteConnection,
    position: usize,
) -> Result<(ClientVersionRule, u64), StoreError> {
    let mut rules = read_rules(conn).await?;
    if position >= rules.len() {
        return Err(no_rule(position, rules.len()));
    }
    let removed = rules.remove(position);
    write_rules(conn, &rules).await?;
    Ok((removed, bump(conn, CLIENT_VERSION).await?))
}

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn policy_versions(&self) -> Result<PolicyVersions, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT policy, version FROM policy_versions")
                .fetch_all(&self.inner.read)
                .await
                .map_err(unavailable)?;
        let mut v = PolicyVersions::default();
        for (name, version) in rows {
            match name.as_str() {
                IM_FILTER => v.im_filter = as_version(version),
                CLIENT_VERSION => v.client_version = as_version(version),
                _ => {}
            }
        }
        Ok(v)
    }

    async fn im_filter_policy(&self) -> Result<Versioned<ImFilterPolicy>, StoreError> {
        let mut tx = self.inner.read.begin().await.map_err(unavailable)?;
        let row = version_of(&mut tx, IM_FILTER).await?;
        let value = read_im(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(versioned(row, value))
    }

    async fn set_im_filter_policy(&self, policy: ImFilterPolicy) -> Result<u64, StoreError> {
        let policy = policy.validated()?;
        self.inner
            .writer
            .write(move |conn| Box::pin(write_im(conn, policy)))
            .await
    }

    async fn client_version_policy(&self) -> Result<Versioned<ClientVersionPolicy>, StoreError> {
        let mut tx = self.inner.read.begin().await.map_err(unavailable)?;
        let row = version_of(&mut tx, CLIENT_VERSION).await?;
        let value = read_client(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(versioned(row, value))
    }

    async fn set_client_version_policy(
        &self,
        policy: ClientVersionPolicy,
    ) -> Result<u64, StoreError> {
        let policy = policy.validated()?;
        self.inner
            .writer
            .write(move |conn| Box::pin(write_client(conn, policy)))
            .await
    }

    async fn insert_client_version_rule(
        &self,
        position: Option<usize>,
        rule: ClientVersionRule,
    ) -> Result<u64, StoreError> {
        let mut rule = rule;
        rule.product = rule.product.trim().to_owned();
        rule.version = rule.version.trim().to_owned();
        self.inner
            .writer
            .write(move |conn| Box::pin(insert_rule(conn, position, rule)))
            .await
    }

    async fn remove_client_version_rule(
        &self,
        position: usize,
    ) -> Result<(ClientVersionRule, u64), StoreError> {
        self.inner
            .writer
            .write(move |conn| Box::pin(remove_rule(conn, position)))
            .await
    }
}
