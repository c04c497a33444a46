//! The filter policy tables through the `PolicyStore` port: defaults, versions, validation
//! on write, atomic rule edits, durability across reopen, and consistency under concurrent
//! edits.

use std::path::Path;

use confab_core::StoreError;
use confab_core::policy::{
    ClientAction, ClientActionKind, ClientVersionPolicy, ClientVersionRule, FilterScope,
    ImFilterPolicy, PolicyStore, PolicyVersions, UrlAction,
};
use confab_store::{SqliteStore, StoreConfig};

async fn create(dir: &Path) -> SqliteStore {
    SqliteStore::open_or_create(StoreConfig::new(dir.join("confab.db")))
        .await
        .unwrap()
}

fn rule(product: &str, version: &str, then: ClientAction) -> ClientVersionRule {
    ClientVersionRule::new(product, version, then)
}

#[track_caller]
fn invalid(e: StoreError, field: &str, needle: &str) {
    match e {
        StoreError::Invalid { field: f, message } => {
            assert_eq!(f, field, "{message}");
            assert!(message.contains(needle), "{message}");
        }
        other => panic!("expected Invalid({field}), got {other:?}"),
    }
}

#[tokio::test]
async fn never_written_policies_are_defaults_at_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(dir.path()).await;
    assert_eq!(
        s.policy_versions().await.unwrap(),
        PolicyVersions::default()
    );
    let im = s.im_filter_policy().await.unwrap();
    assert_eq!((im.version, im.updated_at), (0, None));
    assert_eq!(im.value, ImFilterPolicy::default());
    let cv = s.client_version_policy().await.unwrap();
    assert_eq!(cv.version, 0);
    assert_eq!(cv.value, ClientVersionPolicy::default());
}

#[tokio::test]
async fn im_policy_is_normalised_versioned_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(dir.path()).await;
    let mut p = ImFilterPolicy::default();
    p.urls.action = UrlAction::DisableLinks;
    p.urls.scope = FilterScope::External;
    p.urls.prefix = "nolink_".into();
    p.files.extensions = vec![".EXE".into(), "bat".into(), "exe".into()];
    p.files.scope = FilterScope::All;
    assert_eq!(s.set_im_filter_policy(p.clone()).await.unwrap(), 1);
    let got = s.im_filter_policy().await.unwrap();
    assert_eq!(got.version, 1);
    assert!(got.updated_at.is_some());
    assert_eq!(got.value.files.extensions, ["bat", "exe"]);
    assert_eq!(got.value.urls, p.urls);

    // A second write replaces the extension list (not appends) and bumps the version.
    p.files.extensions = vec!["scr".into()];
    assert_eq!(s.set_im_filter_policy(p).await.unwrap(), 2);
    assert_eq!(
        s.policy_versions().await.unwrap(),
        PolicyVersions {
            im_filter: 2,
            client_version: 0
        }
    );
    s.close().await;

    let s = SqliteStore::open(StoreConfig::new(dir.path().join("confab.db")))
        .await
        .unwrap();
    let got = s.im_filter_policy().await.unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.value.files.extensions, ["scr"]);
    assert_eq!(got.value.urls.prefix, "nolink_");
}

#[tokio::test]
async fn invalid_policies_are_refused_naming_rule_and_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(dir.path()).await;
    let good = ClientVersionPolicy {
        rules: vec![rule("Linphone*", "< 5.0", ClientAction::block(None))],
        default: ClientAction::allow(),
    };
    assert_eq!(s.set_client_version_policy(good.clone()).await.unwrap(), 1);

    let bad = ClientVersionPolicy {
        rules: vec![
            rule("baresip", "*", ClientAction::allow()),
            rule("Zoiper", "<< 2", ClientAction::allow()),
        ],
        default: ClientAction::allow(),
    };
    invalid(
        s.set_client_version_policy(bad).await.unwrap_err(),
        "version",
        "rule 2: '<< 2'",
    );
    let bad_url = ClientVersionPolicy {
        rules: vec![rule(
            "x",
            "*",
            ClientAction::block_with_url("javascript:alert(1)", None),
        )],
        default: ClientAction::allow(),
    };
    invalid(
        s.set_client_version_policy(bad_url).await.unwrap_err(),
        "url",
        "rule 1: ",
    );
    let mut bad_im = ImFilterPolicy::default();
    bad_im.urls.prefix = "[x] ".into();
    invalid(
        s.set_im_filter_policy(bad_im).await.unwrap_err(),
        "urls.prefix",
        "must end with",
    );
    invalid(
        s.insert_client_version_rule(None, rule("Bad Product", "*", ClientAction::allow()))
            .await
            .unwrap_err(),
        "product",
        "rule 2: ",
    );

    let now = s.client_version_policy().await.unwrap();
    assert_eq!(now.version, 1);
    assert_eq!(now.value, good.validated().unwrap());
    assert_eq!(s.policy_versions().await.unwrap().im_filter, 0);
}

#[tokio::test]
async fn rule_edits_insert_and_remove_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(dir.path()).await;
    let url = "https://example.com/upgrade";
    let a = rule("Linphone*", "< 5.0", ClientAction::block(Some("Too old")));
    let b = rule("baresip", "4.*", ClientAction::block_with_url(url, None));
    let c = rule(
        "Zoiper",
        ">= 5",
        ClientAction::allow_with_notice(url, Some("Try v6")),
    );
    assert_eq!(
        s.insert_client_version_rule(None, a.clone()).await.unwrap(),
        1
    );
    assert_eq!(
        s.insert_client_version_rule(None, c.clone()).await.unwrap(),
        2
    );
    assert_eq!(
        s.insert_client_version_rule(Some(1), b.clone())
            .await
            .unwrap(),
        3
    );
    let p = s.client_version_policy().await.unwrap();
    assert_eq!(p.version, 3);
    assert_eq!(p.value.rules, [a.clone(), b.clone(), c.clone()]);

    invalid(
        s.insert_client_version_rule(Some(9), a.clone())
            .await
            .unwrap_err(),
        "position",
        "no rule at position 9",
    );
    invalid(
        s.remove_client_version_rule(3).await.unwrap_err(),
        "position",
        "has 3 rules",
    );
    let (removed, v) = s.remove_client_version_rule(0).await.unwrap();
    assert_eq!((removed, v), (a, 4));
    let p = s.client_version_policy().await.unwrap();
    assert_eq!(p.value.rules, [b, c]);

    // Replacing the whole policy keeps rules and default together.
    let full = ClientVersionPolicy {
        rules: vec![],
        default: ClientAction {
            action: ClientActionKind::BlockWithUrl,
            reason: Some("Unsupported client".into()),
            url: Some(url.into()),
            message: None,
        },
    };
    assert_eq!(s.set_client_version_policy(full.clone()).await.unwrap(), 5);
    assert_eq!(s.client_version_policy().await.unwrap().value, full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rule_inserts_are_all_kept_with_one_version_each() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(dir.path()).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.insert_client_version_rule(
                    None,
                    rule(&format!("product{i}"), "*", ClientAction::allow()),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());
    let p = s.client_version_policy().await.unwrap();
    assert_eq!(p.version, 20);
    let mut names: Vec<String> = p.value.rules.into_iter().map(|r| r.product).collect();
    names.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("product{i}")).collect();
    want.sort();
    assert_eq!(names, want);
}

#[tokio::test]
async fn policies_survive_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(dir.path()).await;
    let mut im = ImFilterPolicy::default();
    im.urls.action = UrlAction::Block;
    s.set_im_filter_policy(im).await.unwrap();
    s.insert_client_version_rule(None, rule("x", "< 1", ClientAction::block(None)))
        .await
        .unwrap();
    let backup = dir.path().join("backup.db");
    s.backup(&backup).await.unwrap();

    s.remove_client_version_rule(0).await.unwrap();
    s.set_im_filter_policy(ImFilterPolicy::default())
        .await
        .unwrap();
    assert_eq!(
        s.policy_versions().await.unwrap(),
        PolicyVersions {
            im_filter: 2,
            client_version: 2
        }
    );
    s.restore(&backup).await.unwrap();
    // The version goes back too: pollers reload on any difference.
    assert_eq!(
        s.policy_versions().await.unwrap(),
        PolicyVersions {
            im_filter: 1,
            client_version: 1
        }
    );
    assert_eq!(
        s.im_filter_policy().await.unwrap().value.urls.action,
        UrlAction::Block
    );
    assert_eq!(
        s.client_version_policy().await.unwrap().value.rules.len(),
        1
    );
}
