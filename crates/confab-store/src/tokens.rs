//! [`TokenStore`] on SQLite.

use async_trait::async_trait;
use confab_core::{ApiToken, Entity, StoreError, Timestamp, TokenHash, TokenName, TokenStore};
use sqlx::SqliteConnection;

use crate::SqliteStore;
use crate::error::{unavailable, unique_violation};
use crate::users::now;

fn token(name: String, created_at: i64) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        name: TokenName::parse(&name).map_err(|e| StoreError::Invalid {
            field: "name",
            message: format!("stored token name is corrupt: {e}"),
        })?,
        created_at: Timestamp(created_at),
    })
}

async fn create(
    conn: &mut SqliteConnection,
    name: TokenName,
    hash: TokenHash,
) -> Result<ApiToken, StoreError> {
    let at = now();
    sqlx::query("INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?, ?, ?)")
        .bind(name.as_str())
        .bind(&hash.0[..])
        .bind(at.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(cols) if cols.contains("token_hash") => {
                StoreError::conflict(Entity::Token, "(same secret as another token)")
            }
            Some(_) => StoreError::conflict(Entity::Token, &name),
            None => unavailable(e),
        })?;
    Ok(ApiToken {
        name,
        created_at: at,
    })
}

async fn revoke(conn: &mut SqliteConnection, name: TokenName) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE name = ?")
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found(Entity::Token, &name));
    }
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_token(&self, name: TokenName, hash: TokenHash) -> Result<ApiToken, StoreError> {
        self.inner
            .writer
            .write(move |conn| Box::pin(create(conn, name, hash)))
            .await
    }

    async fn find_token(&self, hash: &TokenHash) -> Result<Option<ApiToken>, StoreError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT name, created_at FROM api_tokens WHERE token_hash = ?")
                .bind(&hash.0[..])
                .fetch_optional(&self.inner.read)
                .await
                .map_err(unavailable)?;
        row.map(|(n, c)| token(n, c)).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, created_at FROM api_tokens ORDER BY name")
                .fetch_all(&self.inner.read)
                .await
                .map_err(unavailable)?;
        rows.into_iter().map(|(n, c)| token(n, c)).collect()
    }

    async fn revoke_token(&self, name: &TokenName) -> Result<(), StoreError> {
        let name = name.clone();
        self.inner
            .writer
            .write(move |conn| Box::pin(revoke(conn, name)))
            .await
    }
}
