//! `confab registrations` and `GET /api/admin/v1/registrations` on the real binary, over
//! bindings written into the database the way the registrar writes them.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{Server, bearer, curl, expect_code, init_dir, run, stderr, stdout, token};
use confab_core::{
    Address, Binding, FlowInfo, QValue, RegistrationStore, SipTransport, Timestamp, UpdateOutcome,
};
use confab_store::{SqliteStore, StoreConfig};

fn database(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "db"))
        .expect("confab init made a database")
}

fn binding(aor: &str, contact: &str, transport: SipTransport, instance: Option<&str>) -> Binding {
    let now = Timestamp::from_system(SystemTime::now());
    Binding {
        aor: Address::parse(aor).unwrap(),
        contact: contact.into(),
        params: instance
            .map(|i| format!("+sip.instance=\"{i}\";reg-id=1"))
            .unwrap_or_default(),
        q: QValue::from_thousandths(500),
        expires_at: Timestamp::from_system(SystemTime::now() + Duration::from_secs(3600)),
        call_id: format!("call-{contact}"),
        cseq: 7,
        instance: instance.map(str::to_owned),
        reg_id: instance.map(|_| 1),
        flow: FlowInfo {
            token: "YwAAAAAAAAAH".into(),
            transport,
            source: "192.0.2.10:40000".parse().unwrap(),
            node: "node-1".into(),
        },
        path: vec![],
        user_agent: Some("baresip v3.10.1".into()),
        registered_at: now,
        updated_at: now,
        temp_gruu: None,
    }
}

/// Writes bindings the way the registrar does (through `update_bindings`).
fn register(db: &Path, bindings: Vec<Binding>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(StoreConfig::new(db)).await.unwrap();
        for b in bindings {
            let aor = b.aor.clone();
            let out = store
                .update_bindings(
                    &aor,
                    Box::new(move |cur: &[Binding]| {
                        let mut v = cur.to_vec();
                        v.push(b);
                        Ok(v)
                    }),
                )
                .await
                .unwrap();
            assert!(matches!(out, UpdateOutcome::Applied(_)));
        }
        store.close().await;
    });
}

const INSTANCE: &str = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";

#[test]
fn cli_and_admin_api_list_bindings() {
    let dir = init_dir("example.com");
    let d = dir.path();

    // No bindings yet.
    let o = run(d, &["registrations"]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("(no registrations)"), "{}", stdout(&o));

    register(
        &database(d),
        vec![
            binding(
                "alice@example.com",
                "sip:alice@192.0.2.10:40000;transport=tcp",
                SipTransport::Tcp,
                Some(INSTANCE),
            ),
            binding(
                "alice@example.com",
                "sip:alice@198.51.100.4",
                SipTransport::Udp,
                None,
            ),
            binding(
                "bob@example.com",
                "sip:bob@192.0.2.20",
                SipTransport::Wss,
                None,
            ),
        ],
    );

    // The table: a header and one line per binding, with the columns the issue names.
    let o = run(d, &["registrations"]);
    expect_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for col in [
        "AOR",
        "CONTACT",
        "TRANSPORT",
        "FLOW",
        "EXPIRES",
        "USER AGENT",
        "INSTANCE",
    ] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    assert!(lines[1].starts_with("alice@example.com") && lines[1].contains("tcp"));
    assert!(lines[1].contains(&format!("{INSTANCE} reg-id=1")));
    assert!(lines[1].contains("baresip v3.10.1"));
    assert!(lines[3].starts_with("bob@example.com") && lines[3].contains("wss"));

    // One address, JSON.
    let o = run(d, &["registrations", "sip:alice@example.com", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["aor"], "alice@example.com");
    assert_eq!(arr[0]["transport"], "tcp");
    assert_eq!(arr[0]["instance"], INSTANCE);
    assert_eq!(arr[0]["reg_id"], 1);
    assert_eq!(arr[0]["flow"], "YwAAAAAAAAAH");
    assert_eq!(arr[0]["node"], "node-1");
    assert_eq!(arr[0]["user_agent"], "baresip v3.10.1");
    assert_eq!(arr[0]["q"], 0.5);
    let left = arr[0]["expires_in_s"].as_u64().unwrap();
    assert!((3000..=3600).contains(&left), "{left}");
    assert_eq!(arr[1]["instance"], serde_json::Value::Null);

    // An address of a domain the server does not serve: usage error.
    let o = run(d, &["registrations", "carol@other.org"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("not served"), "{}", stderr(&o));

    // The admin API: the same objects.
    let t = token(d, "reg");
    let srv = Server::start(d, "info");
    let base = format!("{}/api/admin/v1/registrations", srv.admin);
    let auth = bearer(&t);
    assert_eq!(curl(&[&base]).status, 401);

    let r = curl(&["-H", &auth, &format!("{base}?aor=alice@example.com")]);
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    assert_eq!(body["next"], serde_json::Value::Null);
    let api = body["registrations"].as_array().unwrap();
    assert_eq!(api.len(), 2);
    assert_eq!(api[0]["contact"], arr[0]["contact"]);
    assert_eq!(api[0]["registered_at"], arr[0]["registered_at"]);

    // Paging through everyone, one at a time.
    let mut seen = Vec::new();
    let mut url = format!("{base}?limit=1");
    loop {
        let r = curl(&["-H", &auth, &url]);
        assert_eq!(r.status, 200, "{r:?}");
        let b = r.json();
        for x in b["registrations"].as_array().unwrap() {
            seen.push(x["contact"].as_str().unwrap().to_owned());
        }
        match b["next"].as_str() {
            Some(n) => url = format!("{base}?limit=1&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[2], "sip:bob@192.0.2.20");

    // Bad parameters name the field.
    let r = curl(&["-H", &auth, &format!("{base}?limit=0")]);
    assert_eq!(r.error(400), ("invalid".into(), Some("limit".into())));
    let r = curl(&[
        "-H",
        &auth,
        &format!("{base}?aor=alice@example.com&limit=2"),
    ]);
    assert_eq!(r.error(400), ("invalid".into(), Some("aor".into())));
    let r = curl(&["-H", &auth, &format!("{base}?aor=nobody")]);
    assert_eq!(r.error(400), ("invalid".into(), Some("aor".into())));
    let r = curl(&["-H", &auth, &format!("{base}?after=garbage")]);
    assert_eq!(r.error(400), ("invalid".into(), Some("after".into())));
    drop(srv);
}
