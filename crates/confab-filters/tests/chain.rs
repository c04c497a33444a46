//! The filters as request-chain steps over a policy store: sender classification, body
//! rewriting in the context, responses, and a policy change applied without restart.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use confab_core::chain::{
    Addressed, Chain, FlowId, Hop, Identity, IdentityProof, Outcome, Reply, RequestContext, Source,
};
use confab_core::policy::{
    ClientAction, ClientVersionPolicy, ClientVersionRule, FilterScope, ImFilterPolicy, PolicyStore,
    PolicyVersions, UrlAction, Versioned,
};
use confab_core::{Address, SipTransport, StoreError};
use confab_filters::{FilterPolicies, FilterSettings, ImFilterHandler, LoadError, Refreshed};
use confab_sip::{Limits, parse_datagram};

/// An in-memory policy store with the trait's contract (validation, versions), and a switch
/// to make it fail.
struct MemStore {
    state: Mutex<State>,
}

struct State {
    im: Versioned<ImFilterPolicy>,
    cv: Versioned<ClientVersionPolicy>,
    down: bool,
}

fn fresh<T: Default>() -> Versioned<T> {
    Versioned {
        version: 0,
        updated_at: None,
        value: T::default(),
    }
}

impl MemStore {
    fn new() -> MemStore {
        MemStore {
            state: Mutex::new(State {
                im: fresh(),
                cv: fresh(),
                down: false,
            }),
        }
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let s = self.state.lock().unwrap();
        if s.down {
            return Err(StoreError::unavailable("test store is down"));
        }
        Ok(s)
    }
}

#[async_trait]
impl PolicyStore for MemStore {
    async fn policy_versions(&self) -> Result<PolicyVersions, StoreError> {
        let s = self.check()?;
        Ok(PolicyVersions {
            im_filter: s.im.version,
            client_version: s.cv.version,
        })
    }
    async fn im_filter_policy(&self) -> Result<Versioned<ImFilterPolicy>, StoreError> {
        Ok(self.check()?.im.clone())
    }
    async fn set_im_filter_policy(&self, policy: ImFilterPolicy) -> Result<u64, StoreError> {
        let policy = policy.validated()?;
        let mut s = self.check()?;
        s.im.version += 1;
        s.im.value = policy;
        Ok(s.im.version)
    }
    async fn client_version_policy(&self) -> Result<Versioned<ClientVersionPolicy>, StoreError> {
        Ok(self.check()?.cv.clone())
    }
    async fn set_client_version_policy(
        &self,
        policy: ClientVersionPolicy,
    ) -> Result<u64, StoreError> {
        let policy = policy.validated()?;
        let mut s = self.check()?;
        s.cv.version += 1;
        s.cv.value = policy;
        Ok(s.cv.version)
    }
    async fn insert_client_version_rule(
        &self,
        position: Option<usize>,
        rule: ClientVersionRule,
    ) -> Result<u64, StoreError> {
        let mut p = self.check()?.cv.value.clone();
        let at = position.unwrap_or(p.rules.len());
        p.rules.insert(at, rule);
        self.set_client_version_policy(p).await
    }
    async fn remove_client_version_rule(
        &self,
        position: usize,
    ) -> Result<(ClientVersionRule, u64), StoreError> {
        let mut p = self.check()?.cv.value.clone();
        let r = p.rules.remove(position);
        Ok((r, self.set_client_version_policy(p).await?))
    }
}

fn ctx(method: &str, from: &str, ua: &str, content_type: &str, body: &str) -> RequestContext {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <{from}>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\nUser-Agent: {ua}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let msg = parse_datagram(text.into(), &Limits::DEFAULT).unwrap();
    let remote: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let source = Source {
        hop: Hop::over_flow(SipTransport::Tcp, remote, FlowId::Connection { id: 1 }),
        local: "192.0.2.2:5060".parse().unwrap(),
        tls_names: None,
    };
    RequestContext::new(msg, source, Addressed::Other, 0)
}

fn settings() -> FilterSettings {
    FilterSettings {
        served_domains: vec!["example.com".into(), "Example.NET".into()],
        warn_agent: "sip.example.com".into(),
    }
}

/// Runs a future whose handlers never wait (the filters do no I/O in `handle`).
fn run<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a filter step waited"),
    }
}

#[test]
fn senders_are_classified_by_identity_then_from() {
    let domains = settings().served_domains;
    let f = confab_filters::ImFilter::allow_all(&domains);
    let digest = |a: &str| Identity {
        address: Address::parse(a).unwrap(),
        proof: IdentityProof::Digest,
    };
    for (from, identity, external) in [
        ("sip:alice@example.com", None, false),
        ("sip:alice@EXAMPLE.net", None, false),
        ("sip:alice@example.org", None, true),
        ("sip:alice@192.0.2.1", None, true),
        ("tel:+15551234", None, true),
        // An authenticated identity wins over From.
        (
            "sip:alice@example.org",
            Some(digest("alice@example.com")),
            false,
        ),
        (
            "sip:alice@example.com",
            Some(digest("mallory@example.org")),
            true,
        ),
    ] {
        let mut c = ctx("MESSAGE", from, "x", "text/plain", "hi");
        c.identity = identity;
        assert_eq!(ImFilterHandler::is_external(&f, &c), external, "{from}");
    }
}

#[tokio::test]
async fn steps_in_a_chain_apply_policy_and_reload_it() {
    let store = Arc::new(MemStore::new());
    let policies = Arc::new(
        FilterPolicies::load(store.clone(), settings())
            .await
            .unwrap(),
    );
    let chain = Chain::new()
        .then(Arc::new(policies.client_version_handler()))
        .then(Arc::new(policies.im_filter_handler()));
    assert_eq!(chain.names(), ["client-version", "im-filter"]);
    let url_msg = || {
        ctx(
            "MESSAGE",
            "sip:eve@example.org",
            "baresip v1.0.0",
            "text/plain",
            "see http://x.example",
        )
    };

    // Default policy: everything continues unchanged (404 = end of this test chain).
    let mut c = url_msg();
    assert_eq!(run(chain.run(&mut c)), Outcome::Respond(Reply::new(404)));
    assert!(!c.request.is_edited());

    // New policies are written; the running steps see them after a refresh.
    let mut im = ImFilterPolicy::default();
    im.urls.action = UrlAction::DisableLinks;
    im.urls.scope = FilterScope::External;
    store.set_im_filter_policy(im).await.unwrap();
    store
        .insert_client_version_rule(
            None,
            ClientVersionRule::new(
                "baresip",
                "< 2",
                ClientAction::block_with_url("https://example.com/get", None),
            ),
        )
        .await
        .unwrap();
    let mut c = url_msg();
    assert_eq!(run(chain.run(&mut c)), Outcome::Respond(Reply::new(404)));
    assert_eq!(
        policies.refresh().await.unwrap(),
        Refreshed {
            client_version: true,
            im_filter: true
        }
    );
    assert_eq!(
        policies.versions(),
        PolicyVersions {
            im_filter: 1,
            client_version: 1
        }
    );
    assert_eq!(policies.refresh().await.unwrap(), Refreshed::default());

    let mut c = url_msg();
    let Outcome::Respond(r) = run(chain.run(&mut c)) else {
        panic!()
    };
    assert_eq!(
        (r.status, r.reason.as_deref()),
        (403, Some("Client upgrade required"))
    );
    assert_eq!(r.headers[0].0, "Warning");
    assert!(
        r.headers[0].1.starts_with("399 sip.example.com \""),
        "{}",
        r.headers[0].1
    );

    // A supported client gets its links disabled; the context holds the new body.
    let mut c = ctx(
        "MESSAGE",
        "sip:eve@example.org",
        "baresip v2.1",
        "text/plain",
        "see http://x.example",
    );
    assert_eq!(run(chain.run(&mut c)), Outcome::Respond(Reply::new(404)));
    assert_eq!(c.request.body(), b"see _http://x.example");
    let wire = parse_datagram(c.request.to_bytes(), &Limits::DEFAULT).unwrap();
    assert_eq!(wire.content_length().unwrap().unwrap(), 21);
    // An internal sender is not in the rule's scope.
    let mut c = ctx(
        "MESSAGE",
        "sip:al@example.com",
        "baresip v2.1",
        "text/plain",
        "see http://x.example",
    );
    run(chain.run(&mut c));
    assert_eq!(c.request.body(), b"see http://x.example");

    // A store outage keeps the last policy in force.
    store.state.lock().unwrap().down = true;
    assert!(matches!(policies.refresh().await, Err(LoadError::Store(_))));
    let mut c = url_msg();
    assert!(matches!(run(chain.run(&mut c)), Outcome::Respond(r) if r.status == 403));
    store.state.lock().unwrap().down = false;

    // Removing the rule lets the old client in again.
    store.remove_client_version_rule(0).await.unwrap();
    policies.refresh().await.unwrap();
    let mut c = url_msg();
    assert_eq!(run(chain.run(&mut c)), Outcome::Respond(Reply::new(404)));
}

#[tokio::test]
async fn loading_fails_on_a_store_outage_or_a_bad_warn_agent() {
    let store = Arc::new(MemStore::new());
    store.state.lock().unwrap().down = true;
    assert!(matches!(
        FilterPolicies::load(store.clone(), settings()).await,
        Err(LoadError::Store(_))
    ));
    store.state.lock().unwrap().down = false;
    let mut s = settings();
    s.warn_agent = "two words".into();
    let e = FilterPolicies::load(store, s).await.unwrap_err();
    assert!(e.to_string().contains("warn_agent"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn watch_picks_up_changes_periodically() {
    let store = Arc::new(MemStore::new());
    let policies = Arc::new(
        FilterPolicies::load(store.clone(), settings())
            .await
            .unwrap(),
    );
    let task = tokio::spawn(policies.clone().watch(std::time::Duration::from_secs(2)));
    let mut im = ImFilterPolicy::default();
    im.urls.action = UrlAction::Block;
    store.set_im_filter_policy(im).await.unwrap();
    assert_eq!(policies.versions().im_filter, 0);
    // Paused clock: sleeping advances virtual time and lets the watcher tick.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(policies.versions().im_filter, 1);
    assert_eq!(
        policies.im_filter().load().policy().urls.action,
        UrlAction::Block
    );
    task.abort();
}
