//! `confab serve`: starts the roles of this node, reloads on SIGHUP, drains on SIGTERM.
//!
//! Roles (`--role`, default `front-end`):
//! - **front-end**: the admin HTTP listener, the user HTTPS API, and the SIP Front End
//!   (`confab-frontend`: transports of `[transport]`, authentication `[auth]`, registrar
//!   `[registrar]`, proxy `[proxy]`, runtime `[frontend]`) when `transport.listen` names
//!   listeners, with the filters (Client Version Filter, Intelligent IM Filter; policy
//!   from the database, polled every 2 s), offline messaging (`[im]`) and the presence
//!   server (`crate::presence`: SUBSCRIBE/NOTIFY, PUBLISH, `reg`, `presence.winfo` and
//!   `dialog`, `[presence]`).
//! - **av-edge**: the STUN/TURN relay of `confab-turn`, configured by the `[turn]` table
//!   (required with this role). An edge-only node opens no database; its admin listener
//!   serves `/healthz`, `/readyz`, `/metrics` and the TURN usage endpoints only, for the
//!   tokens in `http.admin.tokens_sha256` (see [`crate::http::turn`]). With both roles the
//!   front end's admin API serves the relay's usage spool.
//!
//! Signals: SIGTERM or SIGINT drain (readiness turns 503, listeners stop accepting, requests
//! in flight finish, the store flushes and closes) and exit 0. SIGHUP re-reads the
//! configuration file and applies the node-local settings that can change while running:
//! `log.level`, `log.transactions` and the TLS certificate files. Other changes are
//! reported as needing a restart.
//!
//! Digest nonces (SIP and the user API) are HMACs under a key: `auth.nonce_secret` when set
//! (the same on every front end of a pool), otherwise a random key created once in
//! `nonce.key` beside the database (0600), so nonces stay valid across a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use rand::RngCore as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ConfigLocation;
use crate::cli::{ServeArgs, ServeRole};
use crate::config::{Config, ConfigError, InitSettings, LogFormat, Problem};
use crate::http::digest::DigestAuth;
use crate::http::state::Inner;
use crate::http::{self, AppState};
use crate::listen::default_listeners;
use crate::logging::{self, LogHandle};
use crate::tls::ReloadableCert;

/// `confab serve [--check] [--role ROLE]...`.
pub async fn run_serve(
    location: &ConfigLocation,
    log_format: Option<LogFormat>,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    // The README's first command must work on a fresh machine: initialise the default
    // folder when nobody named a configuration file and the default one is missing.
    let mut initialised = false;
    if !location.explicit && !location.path.exists() {
        let settings = InitSettings {
            domain: "localhost".into(),
            listen: default_listeners(),
        };
        crate::init::init_dir(&location.path, &settings, false)
            .await
            .context("initialising the default data folder")?;
        initialised = true;
    }
    let config = location.load()?;
    let format = log_format.unwrap_or(config.log.format);
    let log = logging::init(&config.log.level, format);
    confab_frontend::set_transaction_log(config.log.transactions);
    if initialised {
        tracing::info!(config = %location.path.display(), "initialised a new data folder (domain localhost)");
    }

    let mut roles = args.roles.clone();
    if roles.is_empty() {
        roles.push(ServeRole::FrontEnd);
    }
    roles.sort_by_key(|r| *r as u8);
    roles.dedup();
    let config_error = |key: &str, message: String| ConfigError {
        file: location.path.clone(),
        problems: vec![Problem {
            key: key.into(),
            line: None,
            message,
        }],
    };
    let turn_config = match (roles.contains(&ServeRole::AvEdge), &config.turn) {
        (false, _) => None,
        (true, Some(t)) => Some(t.clone()),
        (true, None) => {
            return Err(config_error(
                "turn",
                "--role av-edge needs a [turn] table (realm, listen_udp, secrets, ...)".into(),
            )
            .into());
        }
    };

    // Everything a start would load, loaded now: the front end's certificate and key and
    // database schema ([turn] was validated with the file).
    let front = if roles.contains(&ServeRole::FrontEnd) {
        let needs_cert = config.http.user.enabled
            || config
                .transport
                .listen
                .iter()
                .any(|l| l.transport.is_secure());
        let cert = match (needs_cert, config.tls.certificates.first()) {
            (true, Some(c)) => Some(Arc::new(
                ReloadableCert::load(&c.cert_chain, &c.private_key)
                    .map_err(|e| config_error("tls.certificates[0]", e.to_string()))?,
            )),
            _ => None,
        };
        Some((cert, crate::store::open(&config).await?))
    } else {
        None
    };
    if args.check {
        if let Some((_, stores)) = &front {
            stores.close().await;
        }
        println!("{}: configuration OK", location.path.display());
        return Ok(());
    }

    if let Some((_, stores)) = &front {
        stores.keep_users_loaded();
    }
    start_on_a_fresh_second().await;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    metrics::gauge!("confab_build_info", "version" => env!("CARGO_PKG_VERSION"), "node_id" => config.node_id.clone()).set(1.0);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // The relay starts first: this node's admin API serves its usage spool.
    let turn = match turn_config {
        Some(t) => Some(start_av_edge(t)?),
        None => None,
    };
    let turn_api = http::turn::TurnApi::for_node(&config, turn.as_ref());
    let mut state = None;
    let mut cert = None;
    let mut stores = None;
    let mut edge_admin = None;
    if let Some((c, st)) = front {
        let s = start_front_end(
            &config,
            &st,
            c.clone(),
            recorder,
            turn_api,
            &stop_rx,
            &mut tasks,
        )
        .await?;
        state = Some(s);
        cert = c;
        stores = Some(st);
    } else if config.http.admin.enabled {
        let e = http::turn::start_edge_admin(&config, recorder, turn_api, &stop_rx, &mut tasks);
        edge_admin = Some(e.await?);
    }
    tracing::info!(node_id = %config.node_id, roles = ?roles, domains = ?config.domains, "ready");

    let stop = wait_for_stop(location, &config, &log, cert.as_deref());
    http::turn::publish_stats_while(turn.as_ref(), stop).await?;

    tracing::info!("draining");
    if let Some(s) = &state {
        s.start_draining();
    }
    if let Some(e) = &edge_admin {
        e.start_draining();
    }
    // The SIP Front End (spawned in `start_front_end`) answers new requests 503 with
    // Retry-After from here on and lets open transactions finish; the HTTP listeners stop
    // accepting and finish their requests.
    let _ = stop_tx.send(true);
    if let Some(t) = turn {
        // Ends every allocation (usage records are spooled) and closes the relay sockets.
        t.shutdown().await;
    }
    while tasks.join_next().await.is_some() {}
    if let Some(st) = stores {
        st.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The front end: admin HTTP and user HTTPS listeners on the shared database. (SIP
/// transports, registrar, proxy and presence join here as they are wired.)
async fn start_front_end(
    config: &Config,
    stores: &crate::store::Stores,
    cert: Option<Arc<ReloadableCert>>,
    recorder: metrics_exporter_prometheus::PrometheusHandle,
    turn: http::turn::TurnApi,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<AppState> {
    // Read once: the SIP side and the user API use the same key file.
    let nonce = nonce_key(config)?;
    let secret = nonce.http;
    let mut dummy = [0u8; 16];
    rand::rng().fill_bytes(&mut dummy);
    let state = AppState::new(Inner {
        users: stores.users.clone(),
        tokens: stores.tokens.clone(),
        registrations: stores.registrations.clone(),
        policy: stores.policy.clone(),
        messages: stores.messages.clone(),
        contacts: stores.contacts.clone(),
        presence: std::sync::OnceLock::new(),
        metrics: Some(recorder),
        draining: AtomicBool::new(false),
        node_id: config.node_id.clone(),
        domains: config
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        digest: DigestAuth::new(
            secret,
            dummy,
            config.http.user.nonce_lifetime_s,
            &config.node_id,
        ),
        turn,
    });
    if config.http.admin.enabled {
        let listener = bind("http.admin.listen", config.http.admin.listen).await?;
        let app = http::admin::router(state.clone());
        tasks.spawn(http::serve_http(
            "admin",
            listener,
            None,
            app,
            stop_rx.clone(),
        ));
    }
    if let (true, Some(cert)) = (config.http.user.enabled, &cert) {
        let listener = bind("http.user.listen", config.http.user.listen).await?;
        let tls = crate::tls::server_config(cert.clone(), &[b"h2", b"http/1.1"])
            .context("TLS configuration of the user API")?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let app = http::user::router(state.clone());
        tasks.spawn(http::serve_http(
            "user",
            listener,
            Some(acceptor),
            app,
            stop_rx.clone(),
        ));
    }
    if !config.transport.listen.is_empty() {
        // The SIP Front End drains (503 + Retry-After to new requests, open transactions
        // finish) when the stop signal comes, alongside the HTTP listeners.
        let (sip, presence) = start_sip(config, stores, nonce.sip_hex).await?;
        let _ = state.presence.set(presence);
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            sip.drain().await;
        });
    }
    Ok(state)
}

/// Binds the SIP listeners and starts the Front End (`confab-frontend`) on the shared
/// database. The registrar's GRUU key lives next to the database (`gruu.key`, 0600) so
/// temporary GRUUs survive restarts.
async fn start_sip(
    config: &Config,
    stores: &crate::store::Stores,
    nonce_secret_hex: String,
) -> anyhow::Result<(
    confab_frontend::SipServer,
    confab_presence::server::PresenceServer,
)> {
    let mut settings = confab_frontend::FrontendSettings::new(&config.node_id, &config.domains);
    settings.frontend = config.frontend.clone();
    settings.auth = config.auth.clone();
    settings.auth.nonce_secret = nonce_secret_hex;
    settings.proxy = config.proxy.clone();
    let tls = config
        .transport
        .listen
        .iter()
        .any(|l| l.transport.is_secure())
        .then(|| config.tls.clone());
    // The filters: policy from the database, polled so a change made by any node's CLI or
    // admin API applies here without a restart. A policy that cannot load stops the start
    // (running without it would let through what it blocks).
    let filter_settings = confab_filters::FilterSettings {
        served_domains: config.domains.clone(),
        warn_agent: config
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| config.node_id.clone()),
    };
    let policies = Arc::new(
        confab_filters::FilterPolicies::load(stores.policy.clone(), filter_settings)
            .await
            .context("filter policy")?,
    );
    tokio::spawn(policies.clone().watch(FILTER_POLL));
    let key_path = config.store.path.with_file_name("gruu.key");
    let gruu_key = confab_frontend::load_or_create_key(&key_path)
        .with_context(|| format!("registrar GRUU key {}", key_path.display()))?;
    let presence = crate::presence::load(config, stores).await?;
    let sip = confab_frontend::SipServer::start_with(
        settings,
        config.transport.clone(),
        tls,
        confab_frontend::Stores {
            users: stores.users.clone(),
            registrations: stores.registrations.clone(),
        },
        config.registrar.clone(),
        gruu_key,
        |b| {
            let b = b
                .handler_before("dialog", Arc::new(policies.client_version_handler()))
                .handler_before("router", Arc::new(policies.im_filter_handler()))
                .offline_messages(stores.messages.clone(), config.im.clone());
            crate::presence::wire(&presence, b)
        },
    )
    .await
    .context("SIP front end")?;
    Ok((sip, presence))
}

/// Waits for the next whole second of the wall clock, so this run starts in a later second
/// than any earlier run of this node did. The digest nonce-count windows (SIP and the user
/// API) rely on it: with a persistent nonce key, a nonce of an earlier run must expire at or
/// before this run's floor, or a captured request could be replayed after a restart.
async fn start_on_a_fresh_second() {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into = std::time::Duration::from_nanos(u64::from(since.subsec_nanos()));
    tokio::time::sleep(std::time::Duration::from_secs(1) - into).await;
}

/// The keys digest nonces are minted under, for SIP and for the user API.
struct NonceKeys {
    /// `auth.nonce_secret` in the hex form `confab-auth` reads.
    sip_hex: String,
    /// The user API's key, derived from the same secret for another purpose so a SIP nonce
    /// is never a valid HTTP nonce.
    http: [u8; 32],
}

/// `auth.nonce_secret` when configured, else the 32 random bytes of `nonce.key` beside the
/// database (created once, 0600).
fn nonce_key(config: &Config) -> anyhow::Result<NonceKeys> {
    use sha2::Digest as _;
    let (sip_hex, raw) = if config.auth.nonce_secret.trim().is_empty() {
        let path = config.store.path.with_file_name("nonce.key");
        let key = confab_frontend::load_or_create_key(&path)
            .with_context(|| format!("digest nonce key {}", path.display()))?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        (hex, key.to_vec())
    } else {
        let s = config.auth.nonce_secret.trim().to_owned();
        let raw = s.as_bytes().to_vec();
        (s, raw)
    };
    let mut h = sha2::Sha256::new();
    h.update(b"confab user API digest nonce key\0");
    h.update(&raw);
    Ok(NonceKeys {
        sip_hex,
        http: h.finalize().into(),
    })
}

/// How often a front end polls the filter policy versions (one small read).
const FILTER_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The A/V Edge: the STUN/TURN relay of `confab-turn` on its own worker threads.
fn start_av_edge(config: confab_turn::TurnConfig) -> anyhow::Result<confab_turn::TurnHandle> {
    let handle = confab_turn::serve(config).context("turn")?;
    for (key, addrs) in [
        ("turn.listen_udp", handle.udp_addrs()),
        ("turn.listen_tcp", handle.tcp_addrs()),
        ("turn.listen_tls", handle.tls_addrs()),
    ] {
        for a in addrs {
            tracing::info!(listener = key, addr = %a, "listening");
        }
    }
    Ok(handle)
}

async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key} = \"{addr}\": cannot listen"))?;
    let local = l.local_addr()?;
    tracing::info!(listener = key, addr = %local, "listening");
    Ok(l)
}

/// Runs until SIGTERM/SIGINT; handles SIGHUP reloads meanwhile.
async fn wait_for_stop(
    location: &ConfigLocation,
    running: &Config,
    log: &LogHandle,
    cert: Option<&ReloadableCert>,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "stopping"); return Ok(()) }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "stopping"); return Ok(()) }
            _ = hup.recv() => reload(&location.path, running, log, cert),
        }
    }
}

/// SIGHUP: apply what can change while running; name what needs a restart.
pub fn reload(path: &Path, running: &Config, log: &LogHandle, cert: Option<&ReloadableCert>) {
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the running configuration");
            return;
        }
    };
    match log.set_level(&new.log.level) {
        Ok(level) => tracing::info!(level, "log level applied"),
        Err(e) => tracing::error!(error = %e, "log level not applied"),
    }
    if new.log.transactions != confab_frontend::transaction_log() {
        confab_frontend::set_transaction_log(new.log.transactions);
        tracing::info!(on = new.log.transactions, "transaction logging applied");
    }
    match cert.map(ReloadableCert::reload) {
        None => {}
        Some(Ok(())) => tracing::info!("TLS certificate reloaded"),
        Some(Err(e)) => {
            tracing::error!(error = %e, "TLS certificate not reloaded; keeping the old one")
        }
    }
    // The transport's tables have no PartialEq; their Debug output tells changes apart.
    let changed =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut restart = Vec::new();
    for (name, differs) in [
        ("node_id", new.node_id != running.node_id),
        ("domains", new.domains != running.domains),
        ("transport", changed(&new.transport, &running.transport)),
        (
            "tls (file names, client_auth)",
            changed(&new.tls, &running.tls),
        ),
        ("store", changed(&new.store, &running.store)),
        ("http", new.http != running.http),
        ("log.format", new.log.format != running.log.format),
        ("im", new.im != running.im),
        ("presence", new.presence != running.presence),
        ("turn", new.turn != running.turn),
        (
            "turn_credentials",
            new.turn_credentials != running.turn_credentials,
        ),
    ] {
        if differs {
            restart.push(name);
        }
    }
    if !restart.is_empty() {
        tracing::warn!(changed = ?restart, "these settings changed and take effect after a restart");
    }
}
