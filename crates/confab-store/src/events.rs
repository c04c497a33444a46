//! [`SubscriptionStore`] and [`PublicationStore`] on SQLite (schema:
//! `migrations/sqlite/0005_subscriptions_publications.sql`). Writes go through the
//! group-commit writer (one fsync per batch, answered after the commit); reads use the
//! read-only pool. The `data` blobs are the presence role's and are not interpreted here.

use async_trait::async_trait;
use confab_core::{
    Entity, PublicationStore, StoreError, StoredPublication, StoredSubscription, SubscriptionStore,
    Timestamp,
};

use crate::SqliteStore;
use crate::error::unavailable;

type SubRow = (String, String, String, String, i64, Vec<u8>);
type PubRow = (String, String, i64, Vec<u8>);

/// One row of an events table removed by its key, through the group-commit writer.
async fn delete_row(store: &SqliteStore, sql: &'static str, key: &str) -> Result<(), StoreError> {
    let key = key.to_owned();
    store
        .inner
        .writer
        .write(move |conn| {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(&key)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            })
        })
        .await
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn put_subscription(&self, sub: StoredSubscription) -> Result<(), StoreError> {
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT OR REPLACE INTO subscriptions \
                         (id, package, watcher, resource, expires_at, data) \
                         VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&sub.id)
                    .bind(&sub.package)
                    .bind(&sub.watcher)
                    .bind(&sub.resource)
                    .bind(sub.expires_at.as_millis())
                    .bind(&sub.data)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                    Ok(())
                })
            })
            .await
    }

    async fn remove_subscription(&self, id: &str) -> Result<(), StoreError> {
        delete_row(self, "DELETE FROM subscriptions WHERE id = ?", id).await
    }

    async fn load_subscriptions(
        &self,
        now: Timestamp,
    ) -> Result<Vec<StoredSubscription>, StoreError> {
        let rows: Vec<SubRow> = sqlx::query_as(
            "SELECT id, package, watcher, resource, expires_at, data FROM subscriptions \
             WHERE expires_at > ? ORDER BY id",
        )
        .bind(now.as_millis())
        .fetch_all(&self.inner.read)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, package, watcher, resource, expires_at, data)| StoredSubscription {
                    id,
                    package,
                    watcher,
                    resource,
                    expires_at: Timestamp(expires_at),
                    data,
                },
            )
            .collect())
    }

    async fn remove_expired_subscriptions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let r = sqlx::query("DELETE FROM subscriptions WHERE expires_at <= ?")
                        .bind(now.as_millis())
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable)?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }
}

#[async_trait]
impl PublicationStore for SqliteStore {
    async fn put_publication(
        &self,
        publication: StoredPublication,
        replaces: Option<&str>,
    ) -> Result<(), StoreError> {
        let replaces = replaces.map(str::to_owned);
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    if let Some(old) = &replaces {
                        let r = sqlx::query("DELETE FROM publications WHERE etag = ?")
                            .bind(old)
                            .execute(&mut *conn)
                            .await
                            .map_err(unavailable)?;
                        if r.rows_affected() == 0 {
                            return Err(StoreError::NotFound {
                                entity: Entity::Publication,
                                key: old.clone(),
                            });
                        }
                    }
                    sqlx::query(
                        "INSERT OR REPLACE INTO publications (etag, resource, expires_at, data) \
                         VALUES (?, ?, ?, ?)",
                    )
                    .bind(&publication.etag)
                    .bind(&publication.resource)
                    .bind(publication.expires_at.as_millis())
                    .bind(&publication.data)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                    Ok(())
                })
            })
            .await
    }

    async fn remove_publication(&self, etag: &str) -> Result<(), StoreError> {
        delete_row(self, "DELETE FROM publications WHERE etag = ?", etag).await
    }

    async fn load_publications(
        &self,
        now: Timestamp,
    ) -> Result<Vec<StoredPublication>, StoreError> {
        let rows: Vec<PubRow> = sqlx::query_as(
            "SELECT etag, resource, expires_at, data FROM publications \
             WHERE expires_at > ? ORDER BY resource, etag",
        )
        .bind(now.as_millis())
        .fetch_all(&self.inner.read)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(etag, resource, expires_at, data)| StoredPublication {
                etag,
                resource,
                expires_at: Timestamp(expires_at),
                data,
            })
            .collect())
    }

    async fn remove_expired_publications(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let r = sqlx::query("DELETE FROM publications WHERE expires_at <= ?")
                        .bind(now.as_millis())
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable)?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteStore, StoreConfig};

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open_or_create(StoreConfig::new(dir.path().join("c.db")))
            .await
            .unwrap();
        (dir, s)
    }

    fn sub(id: &str, exp: i64) -> StoredSubscription {
        StoredSubscription {
            id: id.into(),
            package: "presence".into(),
            watcher: "alice@example.com".into(),
            resource: "sip:bob@example.com".into(),
            expires_at: Timestamp(exp),
            data: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn subscriptions_survive_reopen_and_expire() {
        let (dir, s) = store().await;
        s.put_subscription(sub("a", 10_000)).await.unwrap();
        s.put_subscription(sub("b", 2_000)).await.unwrap();
        let mut a2 = sub("a", 20_000);
        a2.data = b"{\"v\":2}".to_vec();
        s.put_subscription(a2.clone()).await.unwrap();
        s.close().await;
        let s = SqliteStore::open(StoreConfig::new(dir.path().join("c.db")))
            .await
            .unwrap();
        let live = s.load_subscriptions(Timestamp(5_000)).await.unwrap();
        assert_eq!(live, vec![a2]);
        assert_eq!(
            s.remove_expired_subscriptions(Timestamp(5_000))
                .await
                .unwrap(),
            1
        );
        s.remove_subscription("a").await.unwrap();
        s.remove_subscription("a").await.unwrap();
        assert!(s.load_subscriptions(Timestamp(0)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn publication_replacement_is_conditional() {
        let (_dir, s) = store().await;
        let p = |etag: &str| StoredPublication {
            etag: etag.into(),
            resource: "sip:bob@example.com".into(),
            expires_at: Timestamp(10_000),
            data: b"x".to_vec(),
        };
        s.put_publication(p("e1"), None).await.unwrap();
        s.put_publication(p("e2"), Some("e1")).await.unwrap();
        // e1 is gone: a second replacement of it loses and writes nothing.
        let e = s.put_publication(p("e3"), Some("e1")).await.unwrap_err();
        assert!(matches!(
            e,
            StoreError::NotFound {
                entity: Entity::Publication,
                ..
            }
        ));
        let all = s.load_publications(Timestamp(0)).await.unwrap();
        assert_eq!(
            all.iter().map(|p| p.etag.as_str()).collect::<Vec<_>>(),
            ["e2"]
        );
        s.remove_publication("e2").await.unwrap();
        assert!(s.load_publications(Timestamp(0)).await.unwrap().is_empty());
        assert_eq!(
            s.remove_expired_publications(Timestamp(0)).await.unwrap(),
            0
        );
    }
}
