//! A whole Front End on free loopback ports, for end-to-end and interop tests (feature
//! `testing`): SQLite store in a temporary folder, users with passwords, the transport
//! (UDP and TCP by default, plus any listeners asked for), the registrar and the Front End.
//!
//! ```ignore
//! let server = TestServer::builder()
//!     .user("alice@example.com", "alice-pw")
//!     .user("bob@example.com", "bob-pw")
//!     .start()
//!     .await;
//! let udp = server.addr(TransportKind::Udp);   // point SIPp, baresip, pjsua at it
//! server.stop().await;
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use confab_core::chain::RequestHandler;
use confab_core::{Address, Ha1Set, NewUser, RegistrationStore, UserStore};
use confab_registrar::{Registrar, RegistrarConfig};
use confab_store::{SqliteStore, StoreConfig};
use confab_transport::{
    ListenSpec, TlsConfig, Transport, TransportConfig, TransportHandle, TransportKind,
};

use crate::{FrontendBuilder, FrontendHandle, FrontendSettings, Stores};

/// Builder of a [`TestServer`].
pub struct TestServerBuilder {
    domains: Vec<String>,
    users: Vec<(String, String)>,
    listen: Vec<TransportKind>,
    tls: Option<TlsConfig>,
    settings: Option<FrontendSettings>,
    registrar: RegistrarConfig,
    extra: Vec<(String, Arc<dyn RequestHandler>)>,
    offline: Option<confab_im::ImConfig>,
}

impl std::fmt::Debug for TestServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServerBuilder")
            .field("domains", &self.domains)
            .field("users", &self.users.len())
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl TestServerBuilder {
    /// Inserts a chain step before the step named `before` (see
    /// [`FrontendBuilder::handler_before`]).
    #[must_use]
    pub fn handler_before(mut self, before: &str, handler: Arc<dyn RequestHandler>) -> Self {
        self.extra.push((before.to_owned(), handler));
        self
    }

    /// Adds a user with a password (HA1s computed for realm = the address's domain).
    #[must_use]
    pub fn user(mut self, address: &str, password: &str) -> Self {
        self.users.push((address.to_owned(), password.to_owned()));
        self
    }

    /// Adds `n` users `{prefix}{i}@{domain}` with password `{prefix}{i}-pw` (bulk
    /// registration tests).
    #[must_use]
    pub fn numbered_users(mut self, prefix: &str, domain: &str, n: usize) -> Self {
        for i in 0..n {
            self.users
                .push((format!("{prefix}{i}@{domain}"), format!("{prefix}{i}-pw")));
        }
        self
    }

    /// The served domains (default `example.com`).
    #[must_use]
    pub fn domains(mut self, domains: &[&str]) -> Self {
        self.domains = domains.iter().map(|d| (*d).to_owned()).collect();
        self
    }

    /// The listeners, each on 127.0.0.1 with a free port (default UDP and TCP). TLS/WSS need
    /// [`TestServerBuilder::tls`].
    #[must_use]
    pub fn listen(mut self, kinds: &[TransportKind]) -> Self {
        self.listen = kinds.to_vec();
        self
    }

    /// TLS material for `tls`/`wss` listeners.
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Front End settings (node id and domains are overwritten by the builder's).
    #[must_use]
    pub fn settings(mut self, settings: FrontendSettings) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Offline store-and-forward of MESSAGEs with these `[im]` settings (see
    /// [`FrontendBuilder::offline_messages`]), over the test store.
    #[must_use]
    pub fn offline_messages(mut self, config: confab_im::ImConfig) -> Self {
        self.offline = Some(config);
        self
    }

    /// `[registrar]` settings.
    #[must_use]
    pub fn registrar(mut self, config: RegistrarConfig) -> Self {
        self.registrar = config;
        self
    }

    /// Starts everything on the current tokio runtime.
    ///
    /// # Panics
    /// When any part cannot start (it is a test helper).
    pub async fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary folder");
        let store = Arc::new(
            SqliteStore::open_or_create(StoreConfig::new(dir.path().join("confab.db")))
                .await
                .expect("store opens"),
        );
        let users: Vec<confab_core::ImportRow> = self
            .users
            .iter()
            .map(|(a, pw)| {
                let address = Address::parse(a).expect("valid test address");
                let ha1 = Ha1Set::compute(address.user(), address.domain(), pw);
                let mut u = NewUser::new(address);
                u.credentials = Some(ha1);
                confab_core::ImportRow {
                    address: u.address,
                    display_name: None,
                    phone: None,
                    credentials: u.credentials,
                }
            })
            .collect();
        for chunk in users.chunks(5000) {
            let results = store
                .import_users(chunk.to_vec())
                .await
                .expect("users import");
            assert!(results.iter().all(Result::is_ok), "every test user imports");
        }
        let listen = self
            .listen
            .iter()
            .map(|k| ListenSpec {
                transport: *k,
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                advertise: None,
            })
            .collect();
        let tconfig = TransportConfig {
            listen,
            ..TransportConfig::default()
        };
        let (transport, events) = Transport::bind(tconfig, self.tls)
            .await
            .expect("transport binds");
        let mut settings = self
            .settings
            .unwrap_or_else(|| FrontendSettings::new("test-node", &self.domains));
        settings.node_id = "test-node".into();
        settings.domains = self.domains.clone();
        let registrations: Arc<dyn RegistrationStore> = store.clone();
        let registrar = Registrar::new(self.registrar, registrations.clone(), rand::random())
            .expect("registrar config");
        let stores = Stores {
            users: store.clone(),
            registrations,
        };
        let mut builder = FrontendBuilder::new(settings, stores, registrar);
        for (before, h) in self.extra {
            builder = builder.handler_before(&before, h);
        }
        if let Some(c) = self.offline {
            builder = builder.offline_messages(store.clone(), c);
        }
        let frontend = builder
            .start(transport.clone(), events)
            .expect("front end starts");
        TestServer {
            _dir: dir,
            store,
            transport,
            frontend: Some(frontend),
            domains: self.domains,
        }
    }
}

/// A running Front End for tests. Stop it with [`TestServer::stop`] (dropping it leaves
/// tasks running until the runtime ends).
#[derive(Debug)]
pub struct TestServer {
    _dir: tempfile::TempDir,
    /// The store (users, registrations).
    pub store: Arc<SqliteStore>,
    /// The transport (listeners, connection count).
    pub transport: TransportHandle,
    frontend: Option<FrontendHandle>,
    /// The served domains.
    pub domains: Vec<String>,
}

impl TestServer {
    /// A builder: domain `example.com`, UDP and TCP listeners, no users.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            domains: vec!["example.com".into()],
            users: Vec::new(),
            listen: vec![TransportKind::Udp, TransportKind::Tcp],
            tls: None,
            settings: None,
            registrar: RegistrarConfig::default(),
            extra: Vec::new(),
            offline: None,
        }
    }

    /// The bound address of the first listener of `kind`.
    ///
    /// # Panics
    /// When there is no such listener.
    pub fn addr(&self, kind: TransportKind) -> SocketAddr {
        self.transport
            .listener(kind)
            .unwrap_or_else(|| panic!("no {kind:?} listener"))
            .local
    }

    /// The Front End handle.
    ///
    /// # Panics
    /// After [`TestServer::stop`].
    pub fn frontend(&self) -> &FrontendHandle {
        self.frontend.as_ref().expect("running")
    }

    /// Drains (503 to new requests, transactions finish), then closes the transport and
    /// the store.
    pub async fn drain(mut self) {
        if let Some(f) = self.frontend.take() {
            f.drain().await;
        }
        self.transport.shutdown();
        self.store.close().await;
    }

    /// Stops at once.
    pub async fn stop(mut self) {
        if let Some(mut f) = self.frontend.take() {
            f.stop().await;
        }
        self.transport.shutdown();
        self.store.close().await;
    }
}
