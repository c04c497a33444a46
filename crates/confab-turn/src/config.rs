//! The `[turn]` configuration table, validated once.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use confab_stun::PasswordAlgorithm;
use confab_stun::turn::{AuthConfig, IpNet, PeerPolicy, ServerConfig};
use serde::Deserialize;

/// Configuration of the A/V Edge relay (the `[turn]` table). Defaults follow RFC 8656 and
/// are secure: no loopback or private peers, nothing without credentials.
///
/// ```toml
/// [turn]
/// realm = "example.com"
/// listen_udp = ["0.0.0.0:3478"]
/// listen_tcp = ["0.0.0.0:3478"]
/// relay_ipv4 = "192.0.2.10"
/// secrets = ["current-shared-secret", "previous-shared-secret"]
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// REALM of the long-term credentials.
    pub realm: String,
    /// UDP listeners (STUN Binding and TURN).
    pub listen_udp: Vec<SocketAddr>,
    /// TCP listeners.
    pub listen_tcp: Vec<SocketAddr>,
    /// TLS listeners (need `tls_cert_file` and `tls_key_file`).
    pub listen_tls: Vec<SocketAddr>,
    /// PEM certificate chain for TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key_file: Option<PathBuf>,
    /// Local IPv4 address relay sockets bind to; if absent, the first specific IPv4 listen
    /// address. `None` and only wildcard listeners: no IPv4 relays.
    pub relay_ipv4: Option<IpAddr>,
    /// Local IPv6 address for relay sockets (same rule as `relay_ipv4`).
    pub relay_ipv6: Option<IpAddr>,
    /// Public IPv4 address announced in XOR-RELAYED-ADDRESS when the edge sits behind a
    /// 1:1 NAT (coturn's `external-ip`); default: `relay_ipv4`.
    pub relay_public_ipv4: Option<IpAddr>,
    /// Public IPv6 address to announce; default: `relay_ipv6`.
    pub relay_public_ipv6: Option<IpAddr>,
    /// Lowest relay port (RFC 8656: 49152).
    pub min_port: u16,
    /// Highest relay port (65535).
    pub max_port: u16,
    /// TURN REST API shared secrets; all are accepted (put the new one first when
    /// rotating, drop the old one later). Credentials are minted with the first.
    pub secrets: Vec<String>,
    /// Static long-term users for devices.
    pub static_users: Vec<StaticUser>,
    /// Password algorithms advertised (RFC 8489 PASSWORD-ALGORITHMS), preferred first:
    /// `"sha256"`, `"md5"`. Empty: legacy RFC 5389 behaviour (MD5, no nonce cookie).
    pub password_algorithms: Vec<String>,
    /// Advertise username anonymity (USERHASH; works for `static_users` only).
    pub username_anonymity: bool,
    /// Nonce validity (438 Stale Nonce after it).
    pub nonce_lifetime_s: u64,
    /// Lifetime granted when the client asks for less (RFC 8656: 600).
    pub default_lifetime_s: u64,
    /// Largest lifetime granted (RFC 8656 recommends 3600).
    pub lifetime_max_s: u64,
    /// Allocations on this edge (split evenly between the workers); beyond: 508.
    pub max_allocations: usize,
    /// Allocations per user; beyond: 486.
    pub max_allocations_per_user: u32,
    /// Relayed bytes per second per user and worker, 0 = unlimited.
    pub user_bandwidth_bytes_per_s: u64,
    /// Private/special networks that peers may nevertheless be in (CIDR strings).
    pub internal_networks: Vec<String>,
    /// Networks always refused (CIDR strings).
    pub denied_networks: Vec<String>,
    /// Allow loopback peers. For tests only.
    pub allow_loopback_peers: bool,
    /// Failed authentications per source IP in a burst before its requests are dropped.
    pub auth_failure_burst: u32,
    /// One more failed authentication allowed per this many seconds.
    pub auth_failure_refill_s: u64,
    /// A TCP/TLS connection that holds no allocation is closed after this many seconds
    /// without input (RFC 8656 §5 allows it; it bounds idle connections).
    pub idle_connection_s: u64,
    /// Start draining: new allocations are redirected here (300 Try Alternate).
    pub alternate_server: Option<SocketAddr>,
    /// Worker threads, each with its own listener sockets (SO_REUSEPORT) and relay port
    /// slice; 0 = one per CPU.
    pub workers: usize,
    /// JSON-lines file usage records are appended to; none: not recorded.
    pub usage_spool: Option<PathBuf>,
    /// SOFTWARE attribute; none by default (do not disclose the version).
    pub software: Option<String>,
}

/// A static long-term user.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticUser {
    /// USERNAME.
    pub username: String,
    /// Password.
    pub password: String,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            realm: String::new(),
            listen_udp: vec!["0.0.0.0:3478".parse().expect("literal")],
            listen_tcp: vec!["0.0.0.0:3478".parse().expect("literal")],
            listen_tls: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            relay_ipv4: None,
            relay_ipv6: None,
            relay_public_ipv4: None,
            relay_public_ipv6: None,
            min_port: 49152,
            max_port: 65535,
            secrets: Vec::new(),
            static_users: Vec::new(),
            password_algorithms: vec!["sha256".into(), "md5".into()],
            username_anonymity: false,
            nonce_lifetime_s: 600,
            default_lifetime_s: 600,
            lifetime_max_s: 3600,
            max_allocations: 100_000,
            max_allocations_per_user: 16,
            user_bandwidth_bytes_per_s: 0,
            internal_networks: Vec::new(),
            denied_networks: Vec::new(),
            allow_loopback_peers: false,
            auth_failure_burst: 10,
            auth_failure_refill_s: 6,
            idle_connection_s: 30,
            alternate_server: None,
            workers: 0,
            usage_spool: None,
            software: None,
        }
    }
}

/// A configuration that cannot work; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("turn.{key}: {problem}")]
pub struct ConfigError {
    /// The offending key.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn err(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
    }
}

/// Relay addresses after defaults: (bind, announce) per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RelayIps {
    pub v4: Option<(IpAddr, IpAddr)>,
    pub v6: Option<(IpAddr, IpAddr)>,
}

impl TurnConfig {
    /// Checks the whole table; the first problem is returned, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.to_server_config()?;
        self.relay_ips()?;
        if self.listen_udp.is_empty() && self.listen_tcp.is_empty() && self.listen_tls.is_empty() {
            return Err(err("listen_udp", "no listener configured"));
        }
        if !self.listen_tls.is_empty()
            && (self.tls_cert_file.is_none() || self.tls_key_file.is_none())
        {
            return Err(err("listen_tls", "needs tls_cert_file and tls_key_file"));
        }
        if self.min_port > self.max_port || self.min_port == 0 {
            return Err(err(
                "min_port",
                format!(
                    "range {}-{} is empty or starts at 0",
                    self.min_port, self.max_port
                ),
            ));
        }
        let workers = self.worker_count();
        if usize::from(self.max_port - self.min_port) + 1 < workers * 2 {
            return Err(err(
                "min_port",
                "port range smaller than two ports per worker",
            ));
        }
        Ok(())
    }

    pub(crate) fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    pub(crate) fn relay_ips(&self) -> Result<RelayIps, ConfigError> {
        let listeners = || {
            self.listen_udp
                .iter()
                .chain(&self.listen_tcp)
                .chain(&self.listen_tls)
                .map(|a| a.ip())
        };
        let pick =
            |configured: Option<IpAddr>, v4: bool, key| -> Result<Option<IpAddr>, ConfigError> {
                match configured {
                    Some(ip) if ip.is_ipv4() != v4 || ip.is_unspecified() => Err(err(
                        key,
                        format!("{ip} is not a specific address of the right family"),
                    )),
                    Some(ip) => Ok(Some(ip)),
                    None => Ok(listeners().find(|ip| ip.is_ipv4() == v4 && !ip.is_unspecified())),
                }
            };
        let v4 = pick(self.relay_ipv4, true, "relay_ipv4")?;
        let v6 = pick(self.relay_ipv6, false, "relay_ipv6")?;
        if v4.is_none() && v6.is_none() {
            return Err(err(
                "relay_ipv4",
                "no relay address: set relay_ipv4 or relay_ipv6 (listeners are wildcards)",
            ));
        }
        Ok(RelayIps {
            v4: v4.map(|b| (b, self.relay_public_ipv4.unwrap_or(b))),
            v6: v6.map(|b| (b, self.relay_public_ipv6.unwrap_or(b))),
        })
    }

    /// The sans-IO server configuration this table describes.
    pub fn to_server_config(&self) -> Result<ServerConfig, ConfigError> {
        if self.realm.is_empty() {
            return Err(err("realm", "must not be empty"));
        }
        if self.secrets.is_empty() && self.static_users.is_empty() {
            return Err(err(
                "secrets",
                "no credentials: set secrets or static_users",
            ));
        }
        if self.secrets.iter().any(String::is_empty) {
            return Err(err("secrets", "a secret is empty"));
        }
        let mut algorithms = Vec::new();
        for a in &self.password_algorithms {
            algorithms.push(match a.as_str() {
                "sha256" | "SHA-256" => PasswordAlgorithm::Sha256,
                "md5" | "MD5" => PasswordAlgorithm::Md5,
                other => {
                    return Err(err(
                        "password_algorithms",
                        format!("unknown algorithm {other:?} (sha256, md5)"),
                    ));
                }
            });
        }
        let nets = |key, list: &[String]| -> Result<Vec<IpNet>, ConfigError> {
            list.iter()
                .map(|s| s.parse::<IpNet>().map_err(|e| err(key, e.to_string())))
                .collect()
        };
        if self.default_lifetime_s == 0 || self.lifetime_max_s < self.default_lifetime_s {
            return Err(err(
                "lifetime_max_s",
                "must be at least default_lifetime_s, which must be > 0",
            ));
        }
        if self.idle_connection_s == 0 {
            return Err(err("idle_connection_s", "must be > 0"));
        }
        if self.nonce_lifetime_s == 0 {
            return Err(err("nonce_lifetime_s", "must be > 0"));
        }
        let mut cfg = ServerConfig::new(AuthConfig {
            realm: self.realm.clone(),
            rest_secrets: self.secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
            static_users: self
                .static_users
                .iter()
                .map(|u| (u.username.clone(), u.password.clone()))
                .collect(),
            password_algorithms: algorithms,
            username_anonymity: self.username_anonymity,
            nonce_lifetime: Duration::from_secs(self.nonce_lifetime_s),
            failure_burst: self.auth_failure_burst,
            failure_refill: Duration::from_secs(self.auth_failure_refill_s.max(1)),
        });
        cfg.default_lifetime = Duration::from_secs(self.default_lifetime_s);
        cfg.max_lifetime = Duration::from_secs(self.lifetime_max_s);
        cfg.max_allocations = self.max_allocations;
        cfg.max_allocations_per_user = self.max_allocations_per_user;
        cfg.user_bandwidth_bytes_per_s = self.user_bandwidth_bytes_per_s;
        cfg.software = self.software.clone();
        cfg.peer_policy = PeerPolicy {
            internal_networks: nets("internal_networks", &self.internal_networks)?,
            denied_networks: nets("denied_networks", &self.denied_networks)?,
            own_addresses: Vec::new(),
            allow_loopback: self.allow_loopback_peers,
        };
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<TurnConfig, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            turn: TurnConfig,
        }
        toml::from_str::<File>(toml_text)
            .map(|f| f.turn)
            .map_err(|e| e.to_string())
    }

    #[track_caller]
    fn check_invalid(toml_text: &str, key: &str) {
        let cfg = parse(toml_text).unwrap();
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, key, "{e}");
    }

    #[test]
    fn minimal_table_with_defaults() {
        let cfg = parse(
            "[turn]\nrealm = \"example.com\"\nrelay_ipv4 = \"192.0.2.10\"\nsecrets = [\"s\"]\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            (cfg.min_port, cfg.max_port, cfg.lifetime_max_s),
            (49152, 65535, 3600)
        );
        assert!(!cfg.allow_loopback_peers);
        let s = cfg.to_server_config().unwrap();
        assert_eq!(s.default_lifetime, Duration::from_secs(600));
        assert_eq!(
            s.auth.password_algorithms,
            vec![PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5]
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = parse("[turn]\nrealm = \"x\"\nlifetime_max = 5\n").unwrap_err();
        assert!(e.contains("lifetime_max"), "{e}");
    }

    #[test]
    fn invalid_tables_name_the_key() {
        let base = "relay_ipv4 = \"192.0.2.10\"\nsecrets = [\"s\"]\n";
        check_invalid(&format!("[turn]\n{base}"), "realm");
        check_invalid(
            "[turn]\nrealm = \"r\"\nrelay_ipv4 = \"192.0.2.10\"\n",
            "secrets",
        );
        check_invalid("[turn]\nrealm = \"r\"\nsecrets = [\"s\"]\n", "relay_ipv4");
        check_invalid(
            &format!("[turn]\nrealm = \"r\"\n{base}listen_tls = [\"0.0.0.0:5349\"]\n"),
            "listen_tls",
        );
        check_invalid(
            &format!("[turn]\nrealm = \"r\"\n{base}min_port = 6000\nmax_port = 5000\n"),
            "min_port",
        );
        check_invalid(
            &format!("[turn]\nrealm = \"r\"\n{base}internal_networks = [\"10.0.0.0/99\"]\n"),
            "internal_networks",
        );
        check_invalid(
            &format!("[turn]\nrealm = \"r\"\n{base}password_algorithms = [\"sha1\"]\n"),
            "password_algorithms",
        );
        check_invalid(
            &format!("[turn]\nrealm = \"r\"\n{base}lifetime_max_s = 10\n"),
            "lifetime_max_s",
        );
        check_invalid(
            "[turn]\nrealm = \"r\"\nsecrets = [\"s\"]\nrelay_ipv4 = \"::1\"\n",
            "relay_ipv4",
        );
    }

    #[test]
    fn relay_address_defaults_to_a_specific_listener() {
        let cfg = parse("[turn]\nrealm = \"r\"\nsecrets = [\"s\"]\nlisten_udp = [\"127.0.0.1:0\"]\nrelay_public_ipv4 = \"198.51.100.1\"\n").unwrap();
        let ips = cfg.relay_ips().unwrap();
        assert_eq!(
            ips.v4,
            Some((
                "127.0.0.1".parse().unwrap(),
                "198.51.100.1".parse().unwrap()
            ))
        );
        assert_eq!(ips.v6, None);
    }
}
