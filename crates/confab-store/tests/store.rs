//! The SQLite store through its public API, against files in a temporary directory.

use std::path::Path;
use std::sync::Arc;

use confab_core::{
    Address, ApiTokenSecret, Change, DisplayName, Entity, Ha1Set, ImportOutcome, ImportRow,
    NewUser, PageRequest, PhoneNumber, Role, StoreError, TokenName, TokenStore, UserChanges,
    UserStore,
};
use confab_store::{OpenError, SqliteStore, StoreConfig, Synchronous, supported_schema_version};

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

async fn create(dir: &Path) -> SqliteStore {
    SqliteStore::open_or_create(StoreConfig::new(dir.join("confab.db")))
        .await
        .unwrap()
}

fn user(address: &str, phone_no: Option<&str>, password: Option<&str>) -> NewUser {
    let a = addr(address);
    NewUser {
        credentials: password.map(|p| Ha1Set::compute(a.user(), a.domain(), p)),
        display_name: Some(DisplayName::parse(&format!("User {}", a.user())).unwrap()),
        phone: phone_no.map(phone),
        role: Role::User,
        address: a,
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn open_requires_an_existing_file_and_create_makes_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("confab.db");
    let err = SqliteStore::open(StoreConfig::new(&path))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OpenError::NotFound(ref p) if p == &path),
        "{err}"
    );
    assert!(!path.exists(), "open must not create the file");

    let store = SqliteStore::open_or_create(StoreConfig::new(&path))
        .await
        .unwrap();
    store
        .add_user(user("a@x.org", None, Some("pw")))
        .await
        .unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        supported_schema_version()
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600, "database file");
        for suffix in ["-wal", "-shm"] {
            let p = dir.path().join(format!("confab.db{suffix}"));
            assert!(p.exists(), "{suffix} exists in WAL mode");
            assert_eq!(mode(&p), 0o600, "{suffix}");
        }
    }
    store.close().await;
    // WAL mode is recorded in the file: any connection sees it.
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("confab.db");
    let store = SqliteStore::open_or_create(StoreConfig::new(&path))
        .await
        .unwrap();
    store.close().await;
    // Pretend a newer Confab applied migration N+1.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?, 'future', 1, x'00', 0)",
        )
        .bind(supported_schema_version() + 1)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(StoreConfig::new(&path))
        .await
        .unwrap_err();
    match &err {
        OpenError::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!(
                (*found, *supported),
                (supported_schema_version() + 1, supported_schema_version())
            );
        }
        other => panic!("expected SchemaTooNew, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("confab.db") && msg.contains("newer"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "file unchanged");
}

#[tokio::test]
async fn user_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path()).await;
    let users: Arc<dyn UserStore> = Arc::new(store.clone());

    let alice = users
        .add_user(user(
            "alice@Example.com",
            Some("+1 (201) 555-0100"),
            Some("wonder"),
        ))
        .await
        .unwrap();
    assert_eq!(alice.address.as_str(), "alice@example.com");
    assert_eq!(alice.created_at, alice.updated_at);

    // Adding again fails, whatever the domain case or prefix.
    assert_eq!(
        users
            .add_user(user("sip:alice@EXAMPLE.com", None, None))
            .await,
        Err(StoreError::conflict(Entity::User, "alice@example.com"))
    );
    // The phone number belongs to alice.
    assert_eq!(
        users
            .add_user(user("bob@example.com", Some("tel:+1-201-555-0100"), None))
            .await,
        Err(StoreError::conflict(Entity::PhoneNumber, "+12015550100"))
    );
    // ... but bob was not half-added.
    assert_eq!(
        users.get_user(&addr("bob@example.com")).await.unwrap(),
        None
    );
    // User parts are case sensitive.
    users
        .add_user(user("Alice@example.com", None, None))
        .await
        .unwrap();

    let got = users
        .get_user(&addr("alice@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, alice);
    let ha1s = got.credentials.unwrap();
    assert_eq!(ha1s, Ha1Set::compute("alice", "example.com", "wonder"));
    assert_eq!(
        users
            .find_user_by_phone(&phone("+12015550100"))
            .await
            .unwrap()
            .map(|u| u.address),
        Some(addr("alice@example.com"))
    );
    assert_eq!(
        users
            .find_user_by_phone(&phone("+12015550101"))
            .await
            .unwrap(),
        None
    );

    // Modify: set a phone with extension, clear the display name, promote.
    let changed = users
        .modify_user(
            &addr("alice@example.com"),
            UserChanges {
                display_name: Change::Clear,
                phone: Change::Set(phone("+12015550100;ext=7")),
                role: Some(Role::Admin),
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.display_name, None);
    assert_eq!(changed.role, Role::Admin);
    assert!(changed.updated_at >= alice.updated_at);
    assert_eq!(changed.created_at, alice.created_at);
    assert_eq!(
        users.get_user(&addr("alice@example.com")).await.unwrap(),
        Some(changed.clone())
    );
    // The old number is free again.
    users
        .add_user(user("carol@example.com", Some("+12015550100"), None))
        .await
        .unwrap();
    // Taking alice's new number fails and changes nothing.
    assert_eq!(
        users
            .modify_user(
                &addr("carol@example.com"),
                UserChanges {
                    phone: Change::Set(phone("+12015550100;ext=7")),
                    display_name: Change::Set(DisplayName::parse("Carol").unwrap()),
                    ..UserChanges::default()
                },
            )
            .await,
        Err(StoreError::conflict(
            Entity::PhoneNumber,
            "+12015550100;ext=7"
        ))
    );
    let carol = users
        .get_user(&addr("carol@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.display_name.unwrap().as_str(), "User carol");

    // Password change replaces the HA1s.
    users
        .set_password(
            &addr("alice@example.com"),
            Ha1Set::compute("alice", "example.com", "new"),
        )
        .await
        .unwrap();
    let now = users
        .get_user(&addr("alice@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        now.credentials,
        Some(Ha1Set::compute("alice", "example.com", "new"))
    );

    // NotFound for every write on a missing user.
    let ghost = addr("ghost@example.com");
    let nf = StoreError::not_found(Entity::User, "ghost@example.com");
    assert_eq!(
        users.modify_user(&ghost, UserChanges::default()).await,
        Err(nf.clone())
    );
    assert_eq!(
        users
            .set_password(&ghost, Ha1Set::compute("g", "example.com", "p"))
            .await,
        Err(nf.clone())
    );
    assert_eq!(users.remove_user(&ghost).await, Err(nf.clone()));

    users.remove_user(&addr("alice@example.com")).await.unwrap();
    assert_eq!(
        users.get_user(&addr("alice@example.com")).await.unwrap(),
        None
    );
    assert_eq!(
        users
            .find_user_by_phone(&phone("+12015550100;ext=7"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(users.count_users().await.unwrap(), 2);
}

#[tokio::test]
async fn listing_pages_in_domain_then_user_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path()).await;
    let mut expected = Vec::new();
    for d in ["b.org", "a.org", "c.org"] {
        for u in ["zed", "Amy", "bob", "amy"] {
            store
                .add_user(user(&format!("{u}@{d}"), None, None))
                .await
                .unwrap();
        }
    }
    for d in ["a.org", "b.org", "c.org"] {
        // Byte order: uppercase before lowercase.
        for u in ["Amy", "amy", "bob", "zed"] {
            expected.push(format!("{u}@{d}"));
        }
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(5);
    let mut pages = 0;
    loop {
        let p = store.list_users(page.clone()).await.unwrap();
        pages += 1;
        assert!(p.items.len() <= 5);
        seen.extend(p.items.iter().map(|u| u.address.to_string()));
        match p.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // Exactly one full page: no next cursor.
    let all = store.list_users(PageRequest::first(12)).await.unwrap();
    assert_eq!((all.items.len(), all.next), (12, None));
    // Limit 0 is clamped to 1.
    assert_eq!(
        store
            .list_users(PageRequest::first(0))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // A forged cursor is rejected precisely.
    let bad = store
        .list_users(PageRequest {
            after: Some(confab_core::Cursor("not a cursor".into())),
            limit: 5,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            bad,
            StoreError::Invalid {
                field: "cursor",
                ..
            }
        ),
        "{bad}"
    );
}

#[tokio::test]
async fn import_adds_updates_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path()).await;
    store
        .add_user(user("old@x.org", Some("+4930111"), Some("oldpw")))
        .await
        .unwrap();
    store
        .modify_user(
            &addr("old@x.org"),
            UserChanges {
                role: Some(Role::Admin),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let row = |a: &str, name: Option<&str>, ph: Option<&str>, pw: Option<&str>| {
        let a = addr(a);
        ImportRow {
            credentials: pw.map(|p| Ha1Set::compute(a.user(), a.domain(), p)),
            display_name: name.map(|n| DisplayName::parse(n).unwrap()),
            phone: ph.map(phone),
            address: a,
        }
    };
    let results = store
        .import_users(vec![
            row("new1@x.org", Some("New One"), Some("+4930222"), Some("pw1")),
            row("old@x.org", Some("Old Renamed"), None, None),
            row("new2@x.org", None, Some("+4930111"), Some("pw2")), // old's number
            row("new3@x.org", None, None, None),
            row("new1@x.org", None, None, Some("pw1b")), // later row updates the earlier one
        ])
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![
            Ok(ImportOutcome::Added),
            Ok(ImportOutcome::Updated),
            Err(StoreError::conflict(Entity::PhoneNumber, "+4930111")),
            Ok(ImportOutcome::Added),
            Ok(ImportOutcome::Updated),
        ]
    );
    let old = store.get_user(&addr("old@x.org")).await.unwrap().unwrap();
    assert_eq!(old.display_name.unwrap().as_str(), "Old Renamed");
    assert_eq!(old.role, Role::Admin, "import never changes a role");
    assert_eq!(old.phone, Some(phone("+4930111")));
    assert_eq!(
        old.credentials,
        Some(Ha1Set::compute("old", "x.org", "oldpw")),
        "empty password keeps"
    );
    let n1 = store.get_user(&addr("new1@x.org")).await.unwrap().unwrap();
    assert_eq!(
        n1.credentials,
        Some(Ha1Set::compute("new1", "x.org", "pw1b"))
    );
    assert_eq!(n1.display_name.unwrap().as_str(), "New One");
    assert_eq!(store.get_user(&addr("new2@x.org")).await.unwrap(), None);
    assert_eq!(store.count_users().await.unwrap(), 3);
}

#[tokio::test]
async fn tokens_store_only_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path()).await;
    let tokens: Arc<dyn TokenStore> = Arc::new(store.clone());
    let secret = ApiTokenSecret::from_random([42; 32]);
    let name = TokenName::parse("ci").unwrap();
    let t = tokens
        .create_token(name.clone(), secret.hash())
        .await
        .unwrap();
    assert_eq!(t.name, name);
    assert_eq!(
        tokens
            .create_token(name.clone(), ApiTokenSecret::from_random([1; 32]).hash())
            .await,
        Err(StoreError::conflict(Entity::Token, "ci"))
    );
    let presented = ApiTokenSecret::parse(secret.expose()).unwrap();
    assert_eq!(
        tokens.find_token(&presented.hash()).await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        tokens
            .find_token(&ApiTokenSecret::from_random([2; 32]).hash())
            .await
            .unwrap(),
        None
    );
    tokens
        .create_token(
            TokenName::parse("a-first").unwrap(),
            ApiTokenSecret::from_random([3; 32]).hash(),
        )
        .await
        .unwrap();
    let names: Vec<String> = tokens
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["a-first", "ci"]);
    tokens.revoke_token(&name).await.unwrap();
    assert_eq!(tokens.find_token(&presented.hash()).await.unwrap(), None);
    assert_eq!(
        tokens.revoke_token(&name).await,
        Err(StoreError::not_found(Entity::Token, "ci"))
    );
    // The secret text is nowhere in the database files.
    store.close().await;
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        let needle = secret.expose().as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[tokio::test]
async fn writes_are_durable_across_reopen_in_both_sync_modes() {
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.db");
        let cfg = StoreConfig {
            synchronous: sync,
            ..StoreConfig::new(&path)
        };
        let store = SqliteStore::open_or_create(cfg.clone()).await.unwrap();
        for i in 0..20 {
            store
                .add_user(user(&format!("u{i}@x.org"), None, None))
                .await
                .unwrap();
        }
        // No close: drop everything, as a crashing process would leave the WAL behind.
        drop(store);
        let store = SqliteStore::open(cfg).await.unwrap();
        assert_eq!(store.count_users().await.unwrap(), 20, "{sync:?}");
    }
}

#[tokio::test]
async fn closed_store_reports_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path()).await;
    store.close().await;
    let e = store
        .add_user(user("a@x.org", None, None))
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let e = store.get_user(&addr("a@x.org")).await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_a_live_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path()).await;
    for i in 0..100 {
        store
            .add_user(user(
                &format!("u{i}@x.org"),
                Some(&format!("+491000{i:03}")),
                Some("pw"),
            ))
            .await
            .unwrap();
    }
    store
        .create_token(
            TokenName::parse("ops").unwrap(),
            ApiTokenSecret::from_random([5; 32]).hash(),
        )
        .await
        .unwrap();

    // Backup while writers keep going.
    let writer = {
        let s = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                s.add_user(user(&format!("w{i}@x.org"), None, None))
                    .await
                    .unwrap();
            }
        })
    };
    let bpath = dir.path().join("backup.db");
    let info = store.backup(&bpath).await.unwrap();
    writer.await.unwrap();
    assert_eq!(info.schema_version, supported_schema_version());
    assert!(info.bytes > 0);
    #[cfg(unix)]
    assert_eq!(mode(&bpath), 0o600);
    // The backup holds the 100 users and some prefix of the concurrent writes.
    let snapshot = {
        let b = SqliteStore::open(StoreConfig::new(&bpath)).await.unwrap();
        let n = b.count_users().await.unwrap();
        b.close().await;
        n
    };
    assert!((100..=300).contains(&snapshot), "{snapshot}");
    // A second backup to the same file is refused.
    assert!(matches!(
        store.backup(&bpath).await,
        Err(StoreError::Invalid { field: "path", .. })
    ));

    // Change things, then restore.
    store.remove_user(&addr("u0@x.org")).await.unwrap();
    store
        .add_user(user("after@x.org", None, None))
        .await
        .unwrap();
    let mut restores = store.subscribe_restores();
    let r = store.restore(&bpath).await.unwrap();
    assert_eq!(r.backup_schema_version, supported_schema_version());
    // users, api_tokens, bindings, the five filter-policy tables of migration 0003, the
    // subscriptions and publications of migration 0005, the five contact and presence-policy
    // tables of migration 0006 and the two message-queue tables of migration 0007
    assert_eq!(r.tables, 17);
    assert_eq!(r.rows, snapshot + 1);
    assert!(restores.has_changed().unwrap());
    assert_eq!(*restores.borrow_and_update(), 1);
    assert_eq!(store.count_users().await.unwrap(), snapshot);
    assert!(store.get_user(&addr("u0@x.org")).await.unwrap().is_some());
    assert_eq!(store.get_user(&addr("after@x.org")).await.unwrap(), None);
    assert_eq!(store.list_tokens().await.unwrap().len(), 1);
    // The store keeps working after a restore.
    store
        .add_user(user("after@x.org", None, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn restore_refuses_bad_backups_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = create(dir.path()).await;
    store
        .add_user(user("keep@x.org", None, None))
        .await
        .unwrap();

    #[track_caller]
    fn assert_invalid(r: Result<confab_store::RestoreInfo, StoreError>, needle: &str) {
        match r {
            Err(StoreError::Invalid {
                field: "backup",
                message,
            }) => {
                assert!(
                    message.contains(needle),
                    "{message:?} should mention {needle:?}"
                )
            }
            other => panic!("expected Invalid backup error, got {other:?}"),
        }
    }
    assert_invalid(
        store.restore(&dir.path().join("missing.db")).await,
        "does not exist",
    );
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        b"this is not a database, just some text to fill a page",
    )
    .unwrap();
    assert_invalid(store.restore(&junk).await, "junk.db");

    // A SQLite file that is not a Confab database.
    let other = dir.path().join("other.db");
    {
        use sqlx::Connection;
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display()))
                .await
                .unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    assert_invalid(store.restore(&other).await, "not a Confab database");

    // A backup from a newer Confab.
    let newer = dir.path().join("newer.db");
    store.backup(&newer).await.unwrap();
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", newer.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'future', 1, x'00', 0)",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    assert_invalid(store.restore(&newer).await, "newer");
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(store.get_user(&addr("keep@x.org")).await.unwrap().is_some());
}

#[test]
fn config_from_toml_rejects_unknown_keys() {
    let cfg: StoreConfig =
        toml::from_str("path = \"/var/lib/confab/confab.db\"\nsynchronous = \"normal\"\n").unwrap();
    assert_eq!(cfg.synchronous, Synchronous::Normal);
    assert_eq!(cfg.busy_timeout_ms, 5_000);
    assert!(cfg.validate().is_ok());
    let err = toml::from_str::<StoreConfig>("pth = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pth"), "{err}");
    let bad = StoreConfig {
        read_connections: 0,
        ..StoreConfig::default()
    };
    assert_eq!(
        bad.validate(),
        Err("store.read_connections: must be between 1 and 64".into())
    );
}
