//! Unit tests that need crate internals: commit-failure injection at the commit point and
//! deterministic batching (the writer is held on an exclusive job while writes queue).

use std::sync::Arc;

use confab_core::{Address, Entity, NewUser, StoreError, UserStore};
use tokio::sync::oneshot;

use crate::{SqliteStore, StoreConfig};

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open_or_create(StoreConfig::new(dir.path().join("t.db")))
        .await
        .unwrap()
}

/// Holds the writer busy until the returned sender fires, so writes sent meanwhile queue up
/// and form one batch.
async fn hold_writer(store: &SqliteStore) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, wait) = oneshot::channel::<()>();
    let (started_tx, started) = oneshot::channel::<()>();
    let s = store.clone();
    let task = tokio::spawn(async move {
        s.inner
            .writer
            .exclusive(move |_conn| {
                Box::pin(async move {
                    let _ = started_tx.send(());
                    let _ = wait.await;
                    Ok(())
                })
            })
            .await
            .unwrap();
    });
    started.await.unwrap();
    (release, task)
}

/// Waits (without asserting any time) until `n` jobs sit in the writer's queue.
async fn wait_queued(store: &SqliteStore, n: usize) {
    while store.inner.writer.queued() < n {
        tokio::task::yield_now().await;
    }
}

/// Starts `names.len()` concurrent `add_user` calls and returns their handles.
fn spawn_adds(
    store: &SqliteStore,
    names: &[&str],
) -> Vec<tokio::task::JoinHandle<Result<confab_core::User, StoreError>>> {
    names
        .iter()
        .map(|n| {
            let s = store.clone();
            let a = addr(n);
            tokio::spawn(async move { s.add_user(NewUser::new(a)).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_share_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let before = store.writer_stats();
    let (release, held) = hold_writer(&store).await;
    let names: Vec<String> = (0..50).map(|i| format!("u{i}@example.com")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let adds = spawn_adds(&store, &refs);
    wait_queued(&store, 50).await;
    release.send(()).unwrap();
    held.await.unwrap();
    for a in adds {
        a.await.unwrap().unwrap();
    }
    let after = store.writer_stats();
    assert_eq!(after.writes - before.writes, 50);
    assert_eq!(
        after.batches - before.batches,
        1,
        "50 queued writes, one transaction"
    );
    assert_eq!(store.count_users().await.unwrap(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_does_not_disturb_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .add_user(NewUser::new(addr("dup@x.org")))
        .await
        .unwrap();
    let (release, held) = hold_writer(&store).await;
    let adds = spawn_adds(&store, &["a@x.org", "dup@x.org", "b@x.org"]);
    wait_queued(&store, 3).await;
    let batches = store.writer_stats().batches;
    release.send(()).unwrap();
    held.await.unwrap();
    let results: Vec<_> = futures_join(adds).await;
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err(),
        &StoreError::conflict(Entity::User, "dup@x.org")
    );
    assert!(results[2].is_ok());
    assert_eq!(store.writer_stats().batches, batches + 1);
    assert_eq!(store.count_users().await.unwrap(), 3);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The commit hook turns the COMMIT into a ROLLBACK, exactly as a failing commit would:
/// every caller of the batch must hear `Unavailable`, nothing of it may be on disk, and the
/// store must keep working afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_failure_reports_no_success_for_unsaved_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .add_user(NewUser::new(addr("kept@x.org")))
        .await
        .unwrap();

    // A single write.
    store.fail_next_commits(1);
    let err = store
        .add_user(NewUser::new(addr("lost@x.org")))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(store.get_user(&addr("lost@x.org")).await.unwrap(), None);

    // A batch of ten, one of which fails on its own (conflict).
    let (release, held) = hold_writer(&store).await;
    let mut names: Vec<String> = (0..9).map(|i| format!("batch{i}@x.org")).collect();
    names.push("kept@x.org".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let adds = spawn_adds(&store, &refs);
    wait_queued(&store, 10).await;
    store.fail_next_commits(1);
    release.send(()).unwrap();
    held.await.unwrap();
    for (name, r) in names.iter().zip(futures_join(adds).await) {
        let e = r.expect_err(name);
        assert!(e.is_unavailable(), "{name}: {e:?}");
    }
    let stats = store.writer_stats();
    assert_eq!(stats.failed_batches, 2);

    // Nothing of the failed batches is visible, now or after reopening the file.
    assert_eq!(store.count_users().await.unwrap(), 1);
    store.close().await;
    let store = SqliteStore::open(StoreConfig::new(dir.path().join("t.db")))
        .await
        .unwrap();
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(store.get_user(&addr("kept@x.org")).await.unwrap().is_some());
    for n in &names[..9] {
        assert_eq!(store.get_user(&addr(n)).await.unwrap(), None, "{n}");
    }

    // The failure was transient: the same writes succeed now.
    let users: Arc<dyn UserStore> = Arc::new(store.clone());
    users
        .add_user(NewUser::new(addr("lost@x.org")))
        .await
        .unwrap();
    assert_eq!(users.count_users().await.unwrap(), 2);
}

/// The user cache answers repeated digest lookups from memory, and never serves a record
/// older than the last change: changes through the store apply at once, another process's
/// changes at the next foreign-write check, and a read that raced a change is not cached.
#[tokio::test]
async fn user_cache_follows_every_change() {
    use confab_core::Ha1Set;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a = addr("alice@x.org");
    let creds = |pw: &str| Some(Ha1Set::compute("alice", "x.org", pw));

    // Not found is cached too, and adding the user clears it.
    assert_eq!(store.get_user(&a).await.unwrap(), None);
    assert_eq!(store.inner.users.len(), 1);
    let mut nu = NewUser::new(a.clone());
    nu.credentials = creds("one");
    store.add_user(nu).await.unwrap();
    assert_eq!(store.inner.users.len(), 0);
    let u = store.get_user(&a).await.unwrap().unwrap();
    assert_eq!(u.credentials, creds("one"));
    assert_eq!(store.inner.users.len(), 1);

    // A change through the store: the next read sees it.
    store.set_password(&a, creds("two").unwrap()).await.unwrap();
    let u = store.get_user(&a).await.unwrap().unwrap();
    assert_eq!(u.credentials, creds("two"));

    // Another process changes the password: seen once the foreign-write check ran, and the
    // check leaves the cache alone when nothing foreign happened.
    store.check_foreign_writes_now().await.unwrap();
    store.get_user(&a).await.unwrap();
    store.check_foreign_writes_now().await.unwrap();
    assert_eq!(store.inner.users.len(), 1, "no foreign write, cache kept");
    let other = SqliteStore::open(StoreConfig::new(dir.path().join("t.db")))
        .await
        .unwrap();
    other
        .set_password(&a, creds("three").unwrap())
        .await
        .unwrap();
    other.close().await;
    store.check_foreign_writes_now().await.unwrap();
    let u = store.get_user(&a).await.unwrap().unwrap();
    assert_eq!(u.credentials, creds("three"));

    // A read taken before an invalidation is not cached after it.
    let cache = &store.inner.users;
    let v = cache.version();
    cache.invalidate();
    assert!(!cache.insert(v, &a, &None));
    assert_eq!(cache.get(&a), None);

    // Removal: the user is gone for the next digest check.
    store.remove_user(&a).await.unwrap();
    assert_eq!(store.get_user(&a).await.unwrap(), None);
}

/// Waits (up to 10 s) until the user cache's preload task has finished `n` loads.
async fn preloads(store: &SqliteStore, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store
        .inner
        .users
        .loads
        .load(std::sync::atomic::Ordering::SeqCst)
        < n
    {
        assert!(std::time::Instant::now() < deadline, "preload {n} not done");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// `keep_users_loaded` loads every user while they fit, loads again after a change (one
/// reload for a burst), and loads nothing once they do not fit (the cache fills on demand).
#[tokio::test]
async fn user_cache_preload_follows_changes_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path().join("t.db"));
    cfg.user_cache_entries = 3;
    let store = SqliteStore::open_or_create(cfg).await.unwrap();
    for n in ["a@x.org", "b@x.org"] {
        store.add_user(NewUser::new(addr(n))).await.unwrap();
    }
    store.keep_users_loaded();
    store.keep_users_loaded(); // once only
    preloads(&store, 1).await;
    assert_eq!(store.inner.users.len(), 2);
    assert!(store.get_user(&addr("a@x.org")).await.unwrap().is_some());
    // A change clears the cache; the reload brings the new user in.
    store.add_user(NewUser::new(addr("c@x.org"))).await.unwrap();
    assert_eq!(store.inner.users.len(), 0);
    preloads(&store, 2).await;
    assert_eq!(store.inner.users.len(), 3);
    // An unknown name does not wipe a full cache.
    assert_eq!(store.get_user(&addr("nobody@x.org")).await.unwrap(), None);
    assert_eq!(store.inner.users.len(), 3);
    // Four users do not fit three entries: nothing is loaded, lookups still work.
    store.add_user(NewUser::new(addr("d@x.org"))).await.unwrap();
    preloads(&store, 3).await;
    assert_eq!(store.inner.users.len(), 0);
    assert!(store.get_user(&addr("d@x.org")).await.unwrap().is_some());
    assert_eq!(store.inner.users.len(), 1);
    store.close().await;
}

/// With the cache off nothing is kept.
#[tokio::test]
async fn user_cache_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path().join("t.db"));
    cfg.user_cache_entries = 0;
    let store = SqliteStore::open_or_create(cfg).await.unwrap();
    store
        .add_user(NewUser::new(addr("bob@x.org")))
        .await
        .unwrap();
    assert!(store.get_user(&addr("bob@x.org")).await.unwrap().is_some());
    assert_eq!(store.inner.users.len(), 0);
}

fn binding(a: &str, contact: &str) -> confab_core::Binding {
    use confab_core::{FlowInfo, SipTransport, Timestamp};
    confab_core::Binding {
        aor: addr(a),
        contact: contact.into(),
        params: String::new(),
        q: None,
        expires_at: Timestamp(i64::MAX / 2),
        call_id: format!("cid-{contact}"),
        cseq: 1,
        instance: None,
        reg_id: None,
        flow: FlowInfo {
            token: format!("flow-{contact}"),
            transport: SipTransport::Udp,
            source: "192.0.2.1:5060".parse().unwrap(),
            node: "node-1".into(),
        },
        path: vec![],
        user_agent: None,
        registered_at: Timestamp(1),
        updated_at: Timestamp(1),
        temp_gruu: None,
    }
}

async fn register(
    store: &SqliteStore,
    a: &str,
    contact: &str,
) -> Result<confab_core::UpdateOutcome, StoreError> {
    use confab_core::RegistrationStore;
    let b = binding(a, contact);
    store
        .update_bindings(&addr(a), Box::new(move |_| Ok(vec![b])))
        .await
}

/// Binding writes queued while the direct writer is busy share one transaction, and each
/// caller hears only after it committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_binding_writes_share_one_commit() {
    use confab_core::RegistrationStore;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // Load the mirror first, so the held job below is the only thing ahead of the writes.
    register(&store, "first@x.org", "sip:first@192.0.2.9")
        .await
        .unwrap();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = oneshot::channel::<()>();
    let s = store.clone();
    let held = tokio::spawn(async move {
        s.inner
            .direct
            .exclusive(move |_, _| {
                let _ = started_tx.send(());
                let _ = wait.recv();
                Ok(())
            })
            .await
            .unwrap();
    });
    // The thread is inside the job: whatever is sent now waits in the queue.
    started.await.unwrap();
    let before = store.writer_stats();
    let writes: Vec<_> = (0..30)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                register(&s, &format!("u{i}@x.org"), &format!("sip:u{i}@192.0.2.1")).await
            })
        })
        .collect();
    while store.inner.direct.queued() < 30 {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    held.await.unwrap();
    for w in futures_join(writes).await {
        assert!(matches!(w, Ok(confab_core::UpdateOutcome::Applied(_))));
    }
    let after = store.writer_stats();
    assert_eq!(after.writes - before.writes, 30);
    assert_eq!(
        after.batches - before.batches,
        1,
        "30 queued writes, one COMMIT"
    );
    assert_eq!(store.count_bindings().await.unwrap(), 31);
    // Durable: a fresh store on the file reads them from the table.
    store.close().await;
    let store = SqliteStore::open(StoreConfig::new(dir.path().join("t.db")))
        .await
        .unwrap();
    assert_eq!(store.count_bindings().await.unwrap(), 31);
}

/// The two writers of one store (sqlx for users, the direct thread for bindings) never meet
/// in SQLite's lock: with no busy timeout at all, a lock conflict would fail a write at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_writers_take_turns_without_lock_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path().join("t.db"));
    cfg.busy_timeout_ms = 0;
    let store = SqliteStore::open_or_create(cfg).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.add_user(NewUser::new(addr(&format!("w{i}@x.org"))))
                    .await
                    .map(drop)
            } else {
                register(&s, &format!("r{i}@x.org"), "sip:r@192.0.2.1")
                    .await
                    .map(drop)
            }
        }));
    }
    for (i, r) in futures_join(tasks).await.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("write {i}: {e:?}"));
    }
    use confab_core::RegistrationStore;
    assert_eq!(store.count_users().await.unwrap(), 100);
    assert_eq!(store.count_bindings().await.unwrap(), 100);
}

/// The foreign-write check tells the store's own sqlx writes from another process's: the
/// binding mirror survives the former and is dropped for the latter.
#[tokio::test]
async fn own_sqlx_writes_are_not_foreign_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    register(&store, "m@x.org", "sip:m@192.0.2.1")
        .await
        .unwrap();
    store.check_foreign_writes_now().await.unwrap();
    assert!(store.inner.bindings.is_loaded());
    store
        .add_user(NewUser::new(addr("own@x.org")))
        .await
        .unwrap();
    store.check_foreign_writes_now().await.unwrap();
    assert!(
        store.inner.bindings.is_loaded(),
        "own user write kept the mirror"
    );
    let other = SqliteStore::open(StoreConfig::new(dir.path().join("t.db")))
        .await
        .unwrap();
    other
        .add_user(NewUser::new(addr("foreign@x.org")))
        .await
        .unwrap();
    other.close().await;
    store.check_foreign_writes_now().await.unwrap();
    assert!(
        !store.inner.bindings.is_loaded(),
        "foreign write dropped it"
    );
}
