//! The configuration file: node-local settings in TOML.
//!
//! One table per owning part of the server, snake_case keys, durations with their unit in
//! the key (`nonce_lifetime_s`), listeners as SPEC strings (see [`crate::listen`]), relative
//! paths resolved against the folder of the configuration file. Every struct denies unknown
//! keys, so a typo is an error that names the file, the line and the dotted key.
//!
//! **Node-local settings live here; organisation policy lives in the database** (users,
//! tokens today; dial plans, routes, filters, voice and conference policies as their issues
//! land), changed through the CLI or the admin API and validated on write, so the front ends
//! of a pool never drift.
//!
//! Tables present today: top level (`node_id`, `domains`), `[transport]` and `[tls]`
//! (owned by `confab-transport`), `[store]` (owned by `confab-store`), `[http.admin]`,
//! `[http.user]` and `[log]` (owned by this binary), and `[turn]` (owned by `confab-turn`;
//! optional, read only by `confab serve --role av-edge`, not written by `confab init`), and
//! `[turn_credentials]` (owned by [`crate::turn_credentials`]: the secrets and URIs a
//! Front End issues TURN credentials with when the A/V Edge runs on other nodes).
//! The SIP Front End's tables: `[auth]` (owned by `confab-auth`), `[proxy]`
//! (`confab-proxy`), `[registrar]` (`confab-registrar`) and `[frontend]`
//! (`confab-frontend`). Tables of roles that are not wired yet (presence, IM, ...) are not
//! accepted yet: they arrive with their roles, and until then writing one is an "unknown
//! key" error rather than a setting silently ignored.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use confab_store::{StoreConfig, Synchronous};
pub use confab_transport::{ClientAuth, LimitsConfig, TlsCertificate, TlsConfig, TransportConfig};
pub use confab_turn::TurnConfig;

use crate::listen::{ListenSpec, default_listeners};

/// The default configuration file path (relative to the working directory).
pub const DEFAULT_CONFIG_PATH: &str = "confab-data/confab.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's name, unique within a pool; appears in logs and metrics.
    pub node_id: String,
    /// The SIP domains this server is authoritative for. The digest realm of a user is their
    /// domain. The first one is the default domain.
    pub domains: Vec<String>,
    /// `[transport]`: SIP listeners and transport limits (owned by `confab-transport`).
    pub transport: TransportConfig,
    /// `[tls]`: certificates for TLS, WSS and the user HTTPS API (owned by
    /// `confab-transport`).
    pub tls: TlsConfig,
    /// `[store]`: the database (owned by `confab-store`).
    pub store: StoreConfig,
    /// `[http.admin]` and `[http.user]`.
    pub http: HttpConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[turn]`: the A/V Edge relay (`confab serve --role av-edge`); absent on front ends.
    pub turn: Option<TurnConfig>,
    /// `[auth]`: SIP digest authentication and trusted peers (owned by `confab-auth`).
    pub auth: confab_auth::AuthConfig,
    /// `[proxy]`: the stateful SIP proxy (owned by `confab-proxy`).
    pub proxy: confab_proxy::ProxyConfig,
    /// `[registrar]`: the SIP registrar (owned by `confab-registrar`).
    pub registrar: confab_registrar::RegistrarConfig,
    /// `[frontend]`: the SIP Front End runtime (owned by `confab-frontend`).
    pub frontend: confab_frontend::FrontendConfig,
    /// `[turn_credentials]`: issuing TURN credentials (see [`crate::turn_credentials`]).
    pub turn_credentials: crate::turn_credentials::TurnCredentialsConfig,
    /// `[im]`: offline store-and-forward of instant messages (owned by `confab-im`).
    pub im: confab_im::ImConfig,
    /// `[presence]`: subscriptions, PUBLISH, aggregation and the dialog package (owned by
    /// `confab-presence`).
    pub presence: confab_presence::server::PresenceConfig,
}

/// `[http]`: the two HTTP listeners.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `[http.admin]`.
    pub admin: AdminHttpConfig,
    /// `[http.user]`.
    pub user: UserHttpConfig,
}

/// `[http.admin]`: the administration listener (plain HTTP, bearer token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminHttpConfig {
    /// Whether the listener runs.
    pub enabled: bool,
    /// Address and port (plain HTTP: keep it on loopback or a management network).
    pub listen: SocketAddr,
    /// SHA-256 (hex) of the bearer tokens an edge-only node (no database) accepts for the
    /// usage endpoints; ignored where the database holds the tokens.
    pub tokens_sha256: Vec<String>,
}

/// `[http.user]`: the users' own HTTPS API, authenticated with HTTP Digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserHttpConfig {
    /// Whether the listener runs.
    pub enabled: bool,
    /// Address and port (HTTPS with the `[tls]` certificate).
    pub listen: SocketAddr,
    /// How long a digest nonce stays valid, in seconds.
    pub nonce_lifetime_s: u32,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Level filter (`error`, `warn`, `info`, `debug`, `trace`, or per-target directives
    /// like `info,confab=debug`). The environment variable `CONFAB_LOG` overrides it.
    pub level: String,
    /// Output format (`--log-format` overrides it).
    pub format: LogFormat,
    /// One line per SIP server transaction (request received, routing decision, final
    /// status) at `info` on the target `confab::transactions`. Off by default; SIGHUP
    /// applies a change. Bodies and credentials are never in these lines.
    pub transactions: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: "node-1".into(),
            domains: vec!["localhost".into()],
            transport: TransportConfig {
                listen: default_listeners(),
                ..TransportConfig::default()
            },
            tls: TlsConfig {
                certificates: vec![TlsCertificate {
                    cert_chain: "tls/server.crt".into(),
                    private_key: "tls/server.key".into(),
                    server_names: Vec::new(),
                }],
                ..TlsConfig::default()
            },
            store: StoreConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            turn: None,
            auth: Default::default(),
            proxy: Default::default(),
            registrar: Default::default(),
            frontend: Default::default(),
            turn_credentials: Default::default(),
            im: Default::default(),
            presence: Default::default(),
        }
    }
}

impl Default for AdminHttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            tokens_sha256: Vec::new(),
        }
    }
}

impl Default for UserHttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9443)),
            nonce_lifetime_s: 300,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            transactions: false,
        }
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key (`http.admin.listen`, `transport.listen[2]`), empty for the whole file.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// A configuration file that cannot be used: names the file and, for each problem, the key,
/// the line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if !p.key.is_empty() {
                write!(f, ": {}", p.key)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn whole_file(file: &Path, message: String) -> Self {
        Self {
            file: file.to_path_buf(),
            problems: vec![Problem {
                key: String::new(),
                line: None,
                message,
            }],
        }
    }
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line where the value (or table) at the dotted `key` is written, if it is.
fn locate(text: &str, key: &str) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut table = root.get_ref();
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let t = match value {
            None => table,
            Some(v) => v.as_table()?,
        };
        let v = t.get(name)?;
        span = v.span();
        value = Some(v.get_ref());
        if let Some(i) = index {
            let el = value?.get(i)?;
            span = el.span();
            value = Some(el.get_ref());
        }
        table = t;
    }
    Some(line_of(text, span.start))
}

impl Config {
    /// Reads, parses, resolves and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (create one with `confab init`)"
            } else {
                ""
            };
            ConfigError::whole_file(path, format!("cannot read the file: {e}{hint}"))
        })?;
        let mut config = Self::parse(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate(path, &text)?;
        Ok(config)
    }

    /// Parses `text` (the contents of `file`) without resolving paths or validating.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            problems: vec![Problem {
                key: String::new(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: format!("TOML syntax error: {}", e.message().trim_end()),
            }],
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().trim_end().to_string();
            // For an unknown key the path names the table; add the key itself.
            let key = match message
                .strip_prefix("unknown field `")
                .and_then(|m| m.split_once('`'))
            {
                Some((field, _)) if path == "." => field.to_string(),
                Some((field, _)) if !path.ends_with(field) => format!("{path}.{field}"),
                _ if path == "." => String::new(),
                _ => path,
            };
            // The key's own line is more precise than the span (which may cover the
            // enclosing array or table).
            let line = locate(text, &key).or_else(|| inner.span().map(|s| line_of(text, s.start)));
            ConfigError {
                file: file.to_path_buf(),
                problems: vec![Problem { key, line, message }],
            }
        })
    }

    /// Makes every relative path absolute against `base` (the configuration file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for c in &mut self.tls.certificates {
            resolve(&mut c.cert_chain);
            resolve(&mut c.private_key);
        }
        for p in [&mut self.tls.client_ca, &mut self.tls.trust_anchors]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
        resolve(&mut self.store.path);
        if let Some(t) = &mut self.turn {
            for p in [
                &mut t.tls_cert_file,
                &mut t.tls_key_file,
                &mut t.usage_spool,
            ]
            .into_iter()
            .flatten()
            {
                resolve(p);
            }
        }
    }

    /// Checks what serde cannot: values that parse but make no sense together.
    /// `text` is the file contents, used to report line numbers.
    pub fn validate(&self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| {
            let line = locate(text, &key);
            problems.push(Problem { key, line, message });
        };

        if self.node_id.is_empty()
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            problem(
                "node_id".into(),
                format!(
                    "`{}` is not a node name: use letters, digits, `-`, `_` and `.`",
                    self.node_id
                ),
            );
        }
        if self.domains.is_empty() {
            problem(
                "domains".into(),
                "at least one domain is needed (it is the digest realm of its users)".into(),
            );
        }
        let mut seen_domains = HashSet::new();
        for (i, d) in self.domains.iter().enumerate() {
            if let Err(why) = check_domain(d) {
                problem(format!("domains[{i}]"), format!("`{d}` {why}"));
            } else if !seen_domains.insert(d.to_ascii_lowercase()) {
                problem(format!("domains[{i}]"), format!("`{d}` is listed twice"));
            }
        }

        let mut bound: Vec<(&'static str, SocketAddr, String)> = Vec::new();
        let listen = &self.transport.listen;
        for (i, l) in listen.iter().enumerate() {
            if listen[..i]
                .iter()
                .any(|o| o.transport == l.transport && o.addr == l.addr)
            {
                problem(
                    format!("transport.listen[{i}]"),
                    format!("`{l}` is listed twice"),
                );
                continue;
            }
            let proto = if l.transport.is_reliable() {
                "tcp"
            } else {
                "udp"
            };
            bound.push((proto, l.addr, format!("transport.listen[{i}]")));
        }
        if self.http.admin.enabled {
            bound.push(("tcp", self.http.admin.listen, "http.admin.listen".into()));
        }
        if self.http.user.enabled {
            bound.push(("tcp", self.http.user.listen, "http.user.listen".into()));
        }
        // Two TCP-based listeners on one port would fail at bind time; say so now.
        for (i, (proto, addr, key)) in bound.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            if let Some((_, _, other)) = bound[..i].iter().find(|(p, a, _)| p == proto && a == addr)
                && other != key
            {
                problem(
                    key.clone(),
                    format!("{addr} is already used by `{other}` ({proto})"),
                );
            }
        }

        if self.http.user.nonce_lifetime_s == 0 {
            problem(
                "http.user.nonce_lifetime_s".into(),
                "must be at least 1 second".into(),
            );
        }
        // A bare word is a *target* for EnvFilter (`debgu` would silently mean "trace for
        // target debgu, nothing else"): accept bare words only when they are levels.
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        if let Some(word) = self.log.level.split(',').map(str::trim).find(|d| {
            !d.is_empty()
                && !d.contains('=')
                && !d.contains('[')
                && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d))
        }) {
            problem(
                "log.level".into(),
                format!(
                    "`{word}` is neither a level (off, error, warn, info, debug, trace) nor a TARGET=LEVEL directive"
                ),
            );
        } else if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.level) {
            problem(
                "log.level".into(),
                format!("`{}` is not a level filter: {e}", self.log.level),
            );
        }

        // The transport's own checks (ranges, certificates for TLS/WSS, client CA); it
        // reports duplicates too, which are named above with their index.
        if let Err(e) = self.transport.validate(Some(&self.tls)) {
            use confab_transport::ConfigError as E;
            let key = match &e {
                E::NoListeners => Some("transport.listen".to_string()),
                E::DuplicateListener(_) => None,
                E::NoCertificates(_) => Some("tls.certificates".to_string()),
                E::NoClientCa(_) => Some("tls.client_ca".to_string()),
                E::OutOfRange { key, .. } => Some((*key).to_string()),
                _ => Some("transport".to_string()),
            };
            if let Some(key) = key {
                problem(key, e.to_string());
            }
        }
        if self.http.user.enabled && self.tls.certificates.is_empty() {
            problem(
                "tls.certificates".into(),
                "the user HTTPS API (http.user.enabled) needs a certificate".into(),
            );
        }
        for (i, c) in self.tls.certificates.iter().enumerate() {
            for (name, p) in [
                ("cert_chain", &c.cert_chain),
                ("private_key", &c.private_key),
            ] {
                if let Err(e) = std::fs::metadata(p) {
                    problem(
                        format!("tls.certificates[{i}].{name}"),
                        format!("cannot read `{}`: {e}", p.display()),
                    );
                }
            }
        }
        for (key, p) in [
            ("tls.client_ca", &self.tls.client_ca),
            ("tls.trust_anchors", &self.tls.trust_anchors),
        ] {
            if let Some(p) = p
                && let Err(e) = std::fs::metadata(p)
            {
                problem(key.into(), format!("cannot read `{}`: {e}", p.display()));
            }
        }
        if let Some(t) = &self.turn
            && let Err(e) = t.validate()
        {
            problem(format!("turn.{}", e.key), e.problem);
        }
        for (key, message) in crate::turn_credentials::check(self) {
            problem(key, message);
        }
        let role_errors = [
            ("auth", self.auth.validate().err().map(|e| e.to_string())),
            ("proxy", self.proxy.validate().err().map(|e| e.to_string())),
            (
                "registrar",
                self.registrar.validate().err().map(|e| e.to_string()),
            ),
            (
                "frontend",
                self.frontend.validate().err().map(|e| e.to_string()),
            ),
            ("im", self.im.validate().err().map(|e| e.to_string())),
            (
                "presence",
                self.presence.validate().err().map(|e| e.to_string()),
            ),
        ];
        for (table, text) in role_errors {
            let Some(text) = text else { continue };
            // The roles' errors start with the dotted key (`auth.algorithms[1]: ...`).
            match text.split_once(": ") {
                Some((key, message)) if key.starts_with(table) => {
                    problem(key.to_owned(), message.to_owned());
                }
                _ => problem(table.to_owned(), text),
            }
        }
        if let Err(message) = self.store.validate() {
            // confab-store prefixes its messages with the dotted key.
            match message.split_once(": ") {
                Some((key, m)) if key.starts_with("store.") => problem(key.into(), m.into()),
                _ => problem("store".into(), message),
            }
        }
        match self.store.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => problem(
                "store.path".into(),
                format!("the folder `{}` does not exist", dir.display()),
            ),
            _ => {}
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                file: file.to_path_buf(),
                problems,
            })
        }
    }

    /// The default domain (the first of `domains`).
    pub fn default_domain(&self) -> &str {
        self.domains
            .first()
            .map(String::as_str)
            .unwrap_or("localhost")
    }
}

/// Checks that `d` is a DNS name (RFC 1123 labels) or an IP address literal.
pub fn check_domain(d: &str) -> Result<(), &'static str> {
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if d.is_empty() || d.len() > 253 {
        return Err("is not a domain name (1 to 253 characters)");
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("is not a domain name (empty or over-long label)");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err("is not a domain name (labels are letters, digits and inner `-`)");
        }
    }
    Ok(())
}

/// What `confab init` puts in a new configuration file.
#[derive(Debug, Clone)]
pub struct InitSettings {
    /// `domains = [domain]`.
    pub domain: String,
    /// `transport.listen`.
    pub listen: Vec<ListenSpec>,
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Renders a complete configuration file: every key with its value and a one-line comment.
/// Parsing the result gives [`Config::default`] with the domain and listeners of `init`.
pub fn render(init: &InitSettings) -> String {
    let d = Config::default();
    let t = &d.transport;
    let listen: Vec<String> = init
        .listen
        .iter()
        .map(|l| format!("  {},\n", toml_str(&l.to_string())))
        .collect();
    let path = |p: &Path| toml_str(&p.to_string_lossy());
    format!(
        r#"# Confab configuration: node-local settings only. Organisation policy (users, tokens,
# and later routes, dial plans, filters) lives in the database and is changed with the CLI
# or the admin API. Relative paths are resolved against this file's folder. Unknown keys
# are errors. Tables of roles not wired yet (presence, IM, conferencing) arrive with
# those roles.

# This node's name, unique within a pool; appears in logs and metrics.
node_id = {node_id}
# SIP domains served; the digest realm of a user is their domain; the first is the default.
domains = [{domain}]

[transport]
# SIP listeners as TRANSPORT:ADDR[:PORT][;advertise=HOST[:PORT]] (udp, tcp, tls, ws, wss; IPv6 as udp:[::1]:5060).
listen = [
{listen}]
# Receive sockets per UDP listener (SO_REUSEPORT); 0 = one per CPU core.
udp_workers = {udp_workers}
# SO_RCVBUF for UDP sockets, bytes (the kernel may cap it at net.core.rmem_max).
udp_recv_buffer_bytes = {udp_recv}
# SO_SNDBUF for UDP sockets, bytes.
udp_send_buffer_bytes = {udp_send}
# Path MTU assumed for UDP; larger requests go over TCP when the target supports it (RFC 3261 18.1.1).
mtu = {mtu}
# Largest SIP message accepted on any transport, bytes.
max_message_bytes = {max_msg}
# A connection with no bytes received for this long is closed (CRLF keep-alives count), seconds.
idle_timeout_s = {idle}
# A TLS or WebSocket handshake must complete within this time, seconds.
handshake_timeout_s = {handshake}
# Time allowed to open an outgoing TCP/TLS connection, seconds.
connect_timeout_s = {connect}
# Capacity of the received-events channel; when full, UDP and stream receivers wait (the backlog stays in the kernel buffers). Keep it short in time.
event_queue = {event_queue}
# Overload: a UDP request that starts new work (not ACK, CANCEL, BYE, PRACK, nor a response) and waited in the kernel longer than this is dropped unparsed, ms (0 = off, else 10..=32000).
max_datagram_age_ms = {max_age}
# Messages queued for sending on one connection before a send fails with Busy.
connection_send_queue = {send_queue}
# Honour the Via alias parameter (RFC 5923) on TLS/WSS: reuse the client's connection.
connection_reuse = {reuse}
# Also honour alias on plain TCP/WS (trusted networks only: anyone can claim any sent-by there).
alias_on_tcp = {alias_tcp}
# Drop responses whose top Via sent-by is not one of our listeners (RFC 3261 18.1.2).
check_response_sent_by = {check_sent_by}

[transport.limits]
# Open connections in total, all transports (0 = no limit, for every key of this table).
max_connections = {l_conns}
# Open connections from one IP address.
max_connections_per_source = {l_conns_src}
# TLS/WebSocket handshakes in progress from one IP address.
max_handshakes_per_source = {l_hs_src}
# Bytes held for one IP address (partial messages received plus data queued to send).
max_bytes_in_flight_per_source = {l_bytes_src}
# SIP messages per second accepted from one IP address (datagrams over it are dropped, streams paused).
messages_per_second_per_source = {l_mps}
# Burst allowance for messages_per_second_per_source.
message_burst_per_source = {l_burst}
# Error responses (400 and friends) per second to one IP address, so the server is no reflector.
error_responses_per_second_per_source = {l_err}
# Burst allowance for error_responses_per_second_per_source.
error_response_burst_per_source = {l_err_burst}
# Sources tracked individually; beyond this, new sources share one bucket.
max_tracked_sources = {l_tracked}

[tls]
# Client certificates on TLS/WSS listeners: "none" (phones, browsers), "optional" or "required".
client_auth = {client_auth}
# PEM bundle of CAs client certificates must chain to (needed unless client_auth = "none"); unset by default.
# client_ca = "tls/clients-ca.pem"
# PEM bundle of CAs the servers we connect to must chain to; unset = the system bundle.
# trust_anchors = "/etc/ssl/certs/ca-certificates.crt"
# Check the certificate files this often and reload renewed ones, seconds (0 = only on SIGHUP).
reload_interval_s = {reload}

# Served certificates, one [[tls.certificates]] per domain (SNI picks; the first is the default and serves the user HTTPS API).
[[tls.certificates]]
# PEM certificate chain, server certificate first (made by `confab init` with its local CA, tls/ca.crt).
cert_chain = {cert_chain}
# PEM private key of that certificate (keep it mode 0600).
private_key = {private_key}
# SNI names this certificate serves; empty = the DNS names in the certificate.
server_names = []

[store]
# SQLite database file (WAL mode, mode 0600; created by `confab init`).
path = {store_path}
# Commit durability: "full" (survives power loss) or "normal" (survives kill -9; a power loss may lose the last commits).
synchronous = {synchronous}
# How long a write waits for a lock held by another process (e.g. `confab user add`), in milliseconds.
busy_timeout_ms = {busy}
# Users whose credentials are kept in memory for digest checks (0 = off; all of them are loaded at start when they fit; reloaded about 1 s after every user write and restore; CLI changes beside a running server apply within 2 s).
user_cache_entries = {user_cache}
# Read connections in the pool.
read_connections = {read_conns}
# Most writes committed together in one transaction (group commit).
max_batch = {max_batch}
# Writes that may wait for the writer before callers are slowed down.
queue_depth = {queue_depth}

[http.admin]
# Run the admin listener (/metrics, /healthz, /readyz, /api/admin/v1; bearer token).
enabled = {admin_enabled}
# Admin listener address (plain HTTP: keep it on loopback or a management network).
listen = {admin_listen}
# Edge-only nodes (no database): SHA-256 in hex of the accepted bearer tokens (`printf %s TOKEN | sha256sum`).
tokens_sha256 = []

[http.user]
# Run the users' HTTPS API (/api/user/v1; HTTP Digest with the SIP password).
enabled = {user_enabled}
# User API address (HTTPS with the [tls] certificate).
listen = {user_listen}
# How long a digest nonce stays valid, in seconds.
nonce_lifetime_s = {nonce}

[log]
# Level filter: error, warn, info, debug, trace or directives like "info,confab=debug" (env CONFAB_LOG overrides).
level = {level}
# Output format: "text" or "json" (--log-format overrides).
format = {format}
# One line per SIP transaction (method, Call-ID, From, To, source, outcome, status); never bodies or credentials.
transactions = {transactions}

# [turn]: the A/V Edge relay (STUN/TURN), read only by `confab serve --role av-edge` and
# absent on front ends; its keys are listed in the README (realm, listen_udp, secrets, ...).

[turn_credentials]
# TURN REST API credentials for users (`confab turn-credentials`, GET /api/user/v1/turn-credentials).
# Shared secrets of the A/V Edge nodes, newest first (the first mints); leave empty when this node has [turn] (turn.secrets is used).
secrets = []
# RFC 7065 URIs of the edges given to clients, e.g. "turn:edge.example.com:3478?transport=udp"; empty with [turn] here = derived from its listeners.
uris = []
# Public host name in the URIs derived from this node's [turn] listeners (default: the first domain).
# host = "edge.example.com"
# Validity of issued credentials, seconds (1 to 604800).
ttl_s = {turn_ttl}
"#,
        node_id = toml_str(&d.node_id),
        domain = toml_str(&init.domain),
        listen = listen.concat(),
        udp_workers = t.udp_workers,
        udp_recv = t.udp_recv_buffer_bytes,
        udp_send = t.udp_send_buffer_bytes,
        mtu = t.mtu,
        max_msg = t.max_message_bytes,
        idle = t.idle_timeout_s,
        handshake = t.handshake_timeout_s,
        connect = t.connect_timeout_s,
        event_queue = t.event_queue,
        max_age = t.max_datagram_age_ms,
        send_queue = t.connection_send_queue,
        reuse = t.connection_reuse,
        alias_tcp = t.alias_on_tcp,
        check_sent_by = t.check_response_sent_by,
        l_conns = t.limits.max_connections,
        l_conns_src = t.limits.max_connections_per_source,
        l_hs_src = t.limits.max_handshakes_per_source,
        l_bytes_src = t.limits.max_bytes_in_flight_per_source,
        l_mps = t.limits.messages_per_second_per_source,
        l_burst = t.limits.message_burst_per_source,
        l_err = t.limits.error_responses_per_second_per_source,
        l_err_burst = t.limits.error_response_burst_per_source,
        l_tracked = t.limits.max_tracked_sources,
        client_auth = toml_str(match d.tls.client_auth {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }),
        reload = d.tls.reload_interval_s,
        cert_chain = path(&d.tls.certificates[0].cert_chain),
        private_key = path(&d.tls.certificates[0].private_key),
        store_path = path(&d.store.path),
        synchronous = toml_str(match d.store.synchronous {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
        }),
        busy = d.store.busy_timeout_ms,
        user_cache = d.store.user_cache_entries,
        read_conns = d.store.read_connections,
        max_batch = d.store.max_batch,
        queue_depth = d.store.queue_depth,
        admin_enabled = d.http.admin.enabled,
        admin_listen = toml_str(&d.http.admin.listen.to_string()),
        user_enabled = d.http.user.enabled,
        user_listen = toml_str(&d.http.user.listen.to_string()),
        nonce = d.http.user.nonce_lifetime_s,
        turn_ttl = d.turn_credentials.ttl_s,
        level = toml_str(&d.log.level),
        transactions = d.log.transactions,
        format = toml_str(match d.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }),
    ) + &render_sip_roles(&d)
}

/// The `[auth]`, `[proxy]`, `[registrar]` and `[frontend]` tables of [`render`], from the
/// roles' own defaults (serialized, so the file never drifts from them), one comment per key.
fn render_sip_roles(d: &Config) -> String {
    fn table<T: Serialize>(
        name: &str,
        value: &T,
        comments: &[(&str, &str)],
        unset: &[(&str, &str, &str)],
    ) -> String {
        let body = toml::to_string(value).unwrap_or_default();
        let mut out = format!("\n[{name}]\n");
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let key = line.split(" = ").next().unwrap_or("").trim();
            let comment = comments
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("See the README.", |(_, c)| c);
            out.push_str(&format!("# {comment}\n{line}\n"));
        }
        for (key, comment, example) in unset {
            out.push_str(&format!("# {comment}\n# {key} = {example}\n"));
        }
        out
    }
    let mut s = String::new();
    s.push_str(&table("auth", &d.auth, AUTH_COMMENTS, &[]));
    s.push_str(&table("proxy", &d.proxy, PROXY_COMMENTS, &[]));
    s.push_str(&table(
        "registrar",
        &d.registrar,
        REGISTRAR_COMMENTS,
        &[(
            "flow_timer_s",
            "Flow-Timer (RFC 5626) sent to outbound clients, seconds; unset = no header.",
            "120",
        )],
    ));
    s.push_str(&table("frontend", &d.frontend, FRONTEND_COMMENTS, &[]));
    s.push_str(&table("im", &d.im, IM_COMMENTS, &[]));
    s.push_str(&nested_table("presence", &d.presence, PRESENCE_COMMENTS));
    s
}

/// A table with sub-tables (`[presence]`, `[presence.subscription]` ...), one comment per
/// key (comments keyed by the dotted path below the table).
fn nested_table<T: Serialize>(name: &str, value: &T, comments: &[(&str, &str)]) -> String {
    fn walk(
        path: &str,
        prefix: &str,
        t: &toml::Table,
        comments: &[(&str, &str)],
        out: &mut String,
    ) {
        out.push_str(&format!("\n[{path}]\n"));
        let mut subs = Vec::new();
        for (k, v) in t {
            if let toml::Value::Table(sub) = v {
                subs.push((k, sub));
                continue;
            }
            let key = format!("{prefix}{k}");
            let comment = comments
                .iter()
                .find(|(c, _)| *c == key)
                .map_or("See the README.", |(_, c)| c);
            let line = toml::to_string(&toml::Table::from_iter([(k.clone(), v.clone())]))
                .unwrap_or_default();
            out.push_str(&format!("# {comment}\n{}\n", line.trim_end()));
        }
        for (k, sub) in subs {
            walk(
                &format!("{path}.{k}"),
                &format!("{prefix}{k}."),
                sub,
                comments,
                out,
            );
        }
    }
    let mut out = String::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(value) {
        walk(name, "", &t, comments, &mut out);
    }
    out
}

const PRESENCE_COMMENTS: &[(&str, &str)] = &[
    (
        "max_publications_per_user",
        "Most publications (devices) one user holds at once; past it a PUBLISH gets 503 with Retry-After.",
    ),
    (
        "retry_after_s",
        "Retry-After seconds on 503 (caps reached, store unavailable).",
    ),
    (
        "max_publish_bytes",
        "Largest PUBLISH body in bytes; larger ones get 413.",
    ),
    (
        "subscription.default_expires",
        "Subscription expiry (seconds) when SUBSCRIBE has no Expires.",
    ),
    (
        "subscription.min_expires",
        "Shorter subscriptions get 423 with this Min-Expires.",
    ),
    (
        "subscription.max_expires",
        "Longer subscriptions are cut to this (seconds).",
    ),
    (
        "subscription.max_per_watcher",
        "Most subscriptions one watcher holds; past it SUBSCRIBE gets 503 with Retry-After.",
    ),
    (
        "subscription.min_notify_interval_ms",
        "Least time between two NOTIFYs of one subscription (RFC 6446 throttle); changes in between are coalesced. 0 sends every change at once.",
    ),
    (
        "publish.default_expires",
        "Publication expiry (seconds) when PUBLISH has no Expires.",
    ),
    (
        "publish.min_expires",
        "Shorter publications get 423 with this Min-Expires.",
    ),
    (
        "publish.max_expires",
        "Longer publications are cut to this (seconds).",
    ),
    (
        "aggregate.registered_without_publication",
        "What a registered device that publishes nothing counts as: available, busy, do-not-disturb, be-right-back, away or offline (offline: only publications make a user online).",
    ),
    (
        "rate.publish.per_minute",
        "PUBLISH requests per minute one user may send (all devices together); past it 503 with Retry-After. 0: no limit.",
    ),
    (
        "rate.publish.burst",
        "PUBLISH requests one user may send at once above that rate.",
    ),
    (
        "rate.subscribe.per_minute",
        "SUBSCRIBE requests (new and refreshes) per minute one watcher may send; past it 503 with Retry-After. 0: no limit.",
    ),
    (
        "rate.subscribe.burst",
        "SUBSCRIBE requests one watcher may send at once above that rate (a client subscribing to its whole contact list).",
    ),
    (
        "dialog.max_duration_s",
        "A call older than this is shown ended (timeout) even if no BYE passed this proxy.",
    ),
    (
        "dialog.setup_timeout_s",
        "A call still ringing (no final response seen) after this many seconds is shown ended (timeout); keep it above proxy.timer_c_s.",
    ),
    (
        "dialog.terminated_linger_s",
        "Seconds an ended call stays in dialog NOTIFYs as terminated before it disappears.",
    ),
    (
        "dialog.max_dialogs",
        "Most dialogs followed at once (two per call between local users); calls past it are routed but not shown.",
    ),
];

const IM_COMMENTS: &[(&str, &str)] = &[
    (
        "offline",
        "Store MESSAGEs for known users with no registered endpoint (answered 202) and deliver them when the user registers; false: 480 as for any offline user.",
    ),
    (
        "expiry_s",
        "Seconds an undelivered message is kept; then it is removed and, if the sender asked for it (IMDN negative-delivery), a 'failed' notification is sent.",
    ),
    (
        "delivery_window_s",
        "Seconds after the first delivery during which other endpoints of the user that register also get the message.",
    ),
    ("quota_messages", "Most messages queued per user."),
    ("quota_bytes", "Most bytes queued per user."),
    (
        "max_message_bytes",
        "Largest MESSAGE stored (whole request, bytes); larger ones get 413.",
    ),
    (
        "over_quota_status",
        "Answer when the recipient's queue is full: 480 or 486 (reason 'Recipient offline and message queue full').",
    ),
    ("sweep_interval_s", "Seconds between expiry sweeps."),
];

const AUTH_COMMENTS: &[(&str, &str)] = &[
    (
        "nonce_ttl_s",
        "How long a digest nonce is accepted, seconds; afterwards clients get stale=true and retry without asking the user.",
    ),
    (
        "algorithms",
        "Digest algorithms offered, one challenge each, in this order (MD5, SHA-256, SHA-512-256); put MD5 first for old clients that fail on SHA-256.",
    ),
    (
        "trusted_peers",
        "Peers exempt from digest whose P-Asserted-Identity is believed: IPs, networks (10.0.0.0/8) or cert:NAME of a TLS client certificate.",
    ),
    (
        "max_failures_per_minute",
        "Failed digest attempts per (source IP, account) and minute before that pair gets 403 with Retry-After (0 = no limit).",
    ),
    (
        "lockout_s",
        "How long a (source IP, account) pair over the limit is refused, seconds.",
    ),
    (
        "replay_window",
        "Nonces tracked for nonce-count replay protection (about 40 bytes each).",
    ),
    (
        "max_tracked_pairs",
        "(source IP, account) pairs tracked for the failure limit.",
    ),
    (
        "allow_foreign_unauthenticated",
        "Let untrusted senders with a From of another domain reach local users without digest (off: challenged, so nothing reveals which accounts exist).",
    ),
    (
        "nonce_secret",
        "Nonce key shared by the front ends of a pool, hex (32+ digits); empty = a random key kept in nonce.key beside the database.",
    ),
];
const PROXY_COMMENTS: &[(&str, &str)] = &[
    (
        "timer_c_s",
        "Timer C: an INVITE branch without a final response is cancelled after this long, reset by provisionals, seconds (> 180).",
    ),
    (
        "recurse_on_3xx",
        "Follow the Contacts of 3xx responses as new branches instead of returning the 3xx.",
    ),
    (
        "max_branches",
        "Most branches one request may create (forking and recursion).",
    ),
    (
        "record_route",
        "Record-Route dialog-creating requests (needed for NAT traversal over flows and transport bridging).",
    ),
    (
        "default_max_forwards",
        "Max-Forwards set on forwarded requests that arrived without one.",
    ),
    (
        "supported_proxy_require",
        "Option tags accepted in Proxy-Require; any other gets 420 Bad Extension.",
    ),
];
const REGISTRAR_COMMENTS: &[(&str, &str)] = &[
    (
        "min_expires_s",
        "Shortest accepted non-zero registration expiry, seconds (shorter gets 423 with Min-Expires).",
    ),
    (
        "max_expires_s",
        "Longest granted registration expiry, seconds (longer requests are shortened).",
    ),
    (
        "default_expires_s",
        "Expiry when a REGISTER names none, seconds.",
    ),
    ("max_contacts", "Most bindings (devices) per address."),
    (
        "on_too_many_contacts",
        "Beyond max_contacts: reject (403) or replace_oldest (drop the least recently refreshed binding).",
    ),
    (
        "service_route",
        "Service-Route URIs (RFC 3608) returned in every 200 to a REGISTER, e.g. sip:fe1.example.com;lr (without <>).",
    ),
    (
        "flow_timer_s",
        "Flow-Timer (RFC 5626) sent to outbound clients, seconds; unset = no header.",
    ),
    (
        "flow_failure_removes",
        "Bindings a closed flow removes: outbound (RFC 5626 bindings only) or all.",
    ),
    (
        "gruu",
        "Issue GRUUs (RFC 5627) to clients that ask for them.",
    ),
];
const FRONTEND_COMMENTS: &[(&str, &str)] = &[
    (
        "workers",
        "Worker tasks each owning a transaction layer (messages spread by Call-ID); 0 = one per CPU core.",
    ),
    (
        "max_pending_per_worker",
        "Requests a worker may have in authentication/routing at once; beyond, new requests get 503 with Retry-After.",
    ),
    (
        "max_queue_delay_ms",
        "Overload control: when requests recently waited longer than this in authentication/routing/registration, new out-of-dialog requests get 503 with Retry-After; 0 = off.",
    ),
    (
        "inbox",
        "Messages queued per worker; when full, new requests get a stateless 503.",
    ),
    (
        "overload_retry_after_s",
        "Retry-After in overload and drain 503 responses, seconds.",
    ),
    (
        "drain_timeout_s",
        "On SIGTERM, how long open transactions may take to finish, seconds.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn init_defaults() -> InitSettings {
        InitSettings {
            domain: "localhost".into(),
            listen: default_listeners(),
        }
    }

    /// Every dotted key of a configuration, read from its `Debug` output (the transport's
    /// tables have no `Serialize`): `name: Struct { ... }` opens a table, other `name: value`
    /// pairs are keys; arrays and strings are skipped.
    fn debug_keys(s: &str) -> Vec<String> {
        let b = s.as_bytes();
        let (mut i, mut brackets) = (0, 0usize);
        let (mut stack, mut out): (Vec<&str>, Vec<String>) = (Vec::new(), Vec::new());
        while i < b.len() {
            match b[i] {
                b'"' => {
                    i += 1;
                    while b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'[' => brackets += 1,
                b']' => brackets -= 1,
                b'}' if brackets == 0 => {
                    stack.pop();
                }
                c if brackets == 0 && c.is_ascii_lowercase() => {
                    let start = i;
                    while b[i].is_ascii_alphanumeric() || b[i] == b'_' {
                        i += 1;
                    }
                    if s[i..].starts_with(": ") {
                        let name = &s[start..i];
                        i += 2;
                        let rest = &s[i..];
                        let n = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(0);
                        let mut key = stack.join(".");
                        if !key.is_empty() {
                            key.push('.');
                        }
                        key.push_str(name);
                        if n > 0
                            && rest.as_bytes()[0].is_ascii_uppercase()
                            && rest[n..].starts_with(" {")
                        {
                            stack.push(name);
                            i += n + 2;
                        } else {
                            out.push(key);
                        }
                    }
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        out
    }

    #[test]
    fn debug_keys_reads_nested_tables() {
        #[allow(dead_code)]
        #[derive(Debug)]
        struct Inner {
            b_c: u32,
        }
        #[allow(dead_code)]
        #[derive(Debug)]
        struct Outer {
            a: Vec<Inner>,
            s: &'static str,
            inner: Inner,
        }
        let o = Outer {
            a: vec![Inner { b_c: 1 }],
            s: "x: Y {",
            inner: Inner { b_c: 2 },
        };
        assert_eq!(debug_keys(&format!("{o:?}")), ["a", "s", "inner.b_c"]);
    }

    #[test]
    fn rendered_file_parses_to_the_defaults() {
        let text = render(&init_defaults());
        let parsed = Config::parse(Path::new("confab.toml"), &text).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn rendered_file_has_every_key_with_a_comment() {
        let text = render(&init_defaults());
        let mut all = debug_keys(&format!("{:?}", Config::default()));
        // `[turn]` is optional and absent by default (edge nodes add it).
        all.retain(|k| k != "turn");
        // The XML limits of PUBLISH bodies are not a setting (serde-skipped); the size limit
        // is `presence.max_publish_bytes`.
        all.retain(|k| !k.starts_with("presence.publish.limits"));
        // The fields of the one [[tls.certificates]] entry.
        for f in ["cert_chain", "private_key", "server_names"] {
            all.push(format!("tls.certificates[0].{f}"));
        }
        assert!(all.len() >= 40, "{all:?}");
        let lines: Vec<&str> = text.lines().collect();
        for key in &all {
            let line = match locate(&text, key) {
                Some(l) => l,
                None => {
                    // Optional keys (unset by default) appear commented out.
                    let name = key.rsplit('.').next().unwrap();
                    1 + lines
                        .iter()
                        .position(|l| l.starts_with(&format!("# {name} = ")))
                        .unwrap_or_else(|| panic!("{key} is not in the file"))
                }
            };
            // The line before the key (1-based `line` - 1, 0-based index line - 2) is a comment.
            assert!(
                lines[line - 2].starts_with("# "),
                "{key} at line {line} has no comment above it"
            );
        }
    }

    #[test]
    fn rendered_file_keeps_init_settings() {
        let init = InitSettings {
            domain: "example.com".into(),
            listen: vec!["udp:[::1]:5070".parse().unwrap()],
        };
        let c = Config::parse(Path::new("c.toml"), &render(&init)).unwrap();
        assert_eq!(c.domains, vec!["example.com".to_string()]);
        assert_eq!(c.transport.listen, init.listen);
    }

    #[track_caller]
    fn check_parse_error(text: &str, expected: &str) {
        let e = Config::parse(Path::new("/etc/confab.toml"), text).unwrap_err();
        assert_eq!(e.to_string(), expected);
    }

    #[test]
    fn parse_errors_name_file_line_and_key() {
        check_parse_error(
            "[http.admin]\nlisten = \"127.0.0.1:9090\"\nlisen = \"x\"\n",
            "/etc/confab.toml:3: http.admin.lisen: unknown field `lisen`, expected one of `enabled`, `listen`, `tokens_sha256`",
        );
        check_parse_error(
            "[http.admin]\nlisten = \"nowhere\"\n",
            "/etc/confab.toml:2: http.admin.listen: invalid socket address syntax",
        );
        check_parse_error(
            "[transport]\nlisten = [\"udp:127.0.0.1:5060\", \"sctp:1.2.3.4:5\"]\n",
            "/etc/confab.toml:2: transport.listen[1]: listener `sctp:1.2.3.4:5`: unknown transport `sctp` (expected udp, tcp, tls, ws or wss)",
        );
        check_parse_error(
            "nodeid = \"a\"\n",
            "/etc/confab.toml:1: nodeid: unknown field `nodeid`, expected one of `node_id`, `domains`, `transport`, `tls`, `store`, `http`, `log`, `turn`, `auth`, `proxy`, `registrar`, `frontend`, `turn_credentials`, `im`, `presence`",
        );
        check_parse_error(
            "[presence]\nenabled = true\n",
            "/etc/confab.toml:2: presence.enabled: unknown field `enabled`, expected one of `subscription`, `publish`, `aggregate`, `max_publications_per_user`, `retry_after_s`, `max_publish_bytes`, `dialog`, `rate`",
        );
        check_parse_error(
            "[presence.subscription]\nmin_expire = 30\n",
            "/etc/confab.toml:2: presence.subscription.min_expire: unknown field `min_expire`, expected one of `default_expires`, `min_expires`, `max_expires`, `max_per_watcher`, `min_notify_interval_ms`",
        );
        check_parse_error(
            "[http.user]\nnonce_lifetime_s = -5\n",
            "/etc/confab.toml:2: http.user.nonce_lifetime_s: invalid value: integer `-5`, expected u32",
        );
        check_parse_error(
            "[log]\nformat = \"xml\"\n",
            "/etc/confab.toml:2: log.format: unknown variant `xml`, expected `text` or `json`",
        );
        check_parse_error(
            "domains = [\"a\"\n",
            "/etc/confab.toml:1: TOML syntax error: unclosed array, expected `]`",
        );
    }

    #[track_caller]
    fn check_validate(text: &str, expected: &[&str]) {
        let mut c = Config::parse(Path::new("c.toml"), text).unwrap();
        // Point the files at something that exists so only the tested problem shows.
        let dir = tempfile::tempdir().unwrap();
        for f in ["tls/server.crt", "tls/server.key"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        c.resolve_paths(dir.path());
        let got = match c.validate(Path::new("c.toml"), text) {
            Ok(()) => vec![],
            Err(e) => e.to_string().lines().map(str::to_string).collect(),
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn validation() {
        check_validate("", &[]);
        check_validate(
            "domains = []\n",
            &[
                "c.toml:1: domains: at least one domain is needed (it is the digest realm of its users)",
            ],
        );
        check_validate(
            "domains = [\"ok.example\", \"bad_domain\", \"ok.example\"]\n",
            &[
                "c.toml:1: domains[1]: `bad_domain` is not a domain name (labels are letters, digits and inner `-`)",
                "c.toml:1: domains[2]: `ok.example` is listed twice",
            ],
        );
        check_validate(
            "node_id = \"a b\"\n",
            &["c.toml:1: node_id: `a b` is not a node name: use letters, digits, `-`, `_` and `.`"],
        );
        check_validate(
            "[transport]\nlisten = [\n  \"tcp:127.0.0.1:5060\",\n  \"ws:127.0.0.1:5060\",\n  \"udp:127.0.0.1:5060\",\n  \"udp:127.0.0.1:5060\",\n]\n",
            &[
                "c.toml:6: transport.listen[3]: `udp:127.0.0.1:5060` is listed twice",
                "c.toml:4: transport.listen[1]: 127.0.0.1:5060 is already used by `transport.listen[0]` (tcp)",
            ],
        );
        check_validate(
            "[http.admin]\nlisten = \"127.0.0.1:9443\"\n",
            &[
                "c.toml: http.user.listen: 127.0.0.1:9443 is already used by `http.admin.listen` (tcp)",
            ],
        );
        check_validate(
            "[log]\nlevel = \"info,confab=loud\"\n",
            &[
                "c.toml:2: log.level: `info,confab=loud` is not a level filter: error parsing level filter: expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5",
            ],
        );
        check_validate(
            "[log]\nlevel = \"debgu\"\n",
            &[
                "c.toml:2: log.level: `debgu` is neither a level (off, error, warn, info, debug, trace) nor a TARGET=LEVEL directive",
            ],
        );
        check_validate("[log]\nlevel = \"warn,confab::http=debug\"\n", &[]);
        check_validate(
            "[presence.subscription]\nmin_expires = 600\ndefault_expires = 300\n",
            &[
                "c.toml:3: presence.subscription.default_expires: must lie between subscription.min_expires (600) and subscription.max_expires (86400), is 300",
            ],
        );
        check_validate(
            "[presence.aggregate]\nregistered_without_publication = \"offline\"\n[presence.dialog]\nmax_duration_s = 7200\n",
            &[],
        );
        check_validate(
            "[auth]\nalgorithms = [\"SHA-256\", \"SHA1\"]\n",
            &["c.toml:2: auth.algorithms[1]: `SHA1` is not one of MD5, SHA-256, SHA-512-256"],
        );
        check_validate(
            "[proxy]\ntimer_c_s = 60\n",
            &[
                "c.toml:2: proxy.timer_c_s: 60 s is not more than 3 minutes (RFC 3261 §16.6 asks for > 180)",
            ],
        );
        check_validate(
            "[registrar]\nmax_contacts = 0\n",
            &["c.toml:2: registrar.max_contacts: must be between 1 and 100"],
        );
        check_validate(
            "[frontend]\ninbox = 0\n",
            &["c.toml:2: frontend.inbox: must be at least 1"],
        );
        check_validate(
            "[http.user]\nnonce_lifetime_s = 0\n",
            &["c.toml:2: http.user.nonce_lifetime_s: must be at least 1 second"],
        );
    }

    #[test]
    fn missing_certificate_is_reported() {
        let text = "";
        let mut c = Config::parse(Path::new("c.toml"), text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        c.resolve_paths(dir.path());
        let e = c
            .validate(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.toml: tls.certificates[0].cert_chain: cannot read `"),
            "{e}"
        );
        assert!(
            e.contains("c.toml: tls.certificates[0].private_key: cannot read `"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_file_folder() {
        let mut c = Config::default();
        c.store.path = "/abs/db.sqlite".into();
        c.resolve_paths(Path::new("/etc/confab"));
        assert_eq!(
            c.tls.certificates[0].cert_chain,
            Path::new("/etc/confab/tls/server.crt")
        );
        assert_eq!(c.store.path, Path::new("/abs/db.sqlite"));
    }

    #[test]
    fn domains() {
        for ok in ["localhost", "example.com", "a-b.c0", "127.0.0.1", "::1"] {
            assert_eq!(check_domain(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a_b",
            "a b",
            "é.com",
            "x.",
            &"a".repeat(64),
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }
}
