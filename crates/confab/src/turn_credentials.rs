//! TURN credentials issued by the Front End: the `[turn_credentials]` table, the issuer
//! shared by `confab turn-credentials` and the user API (`GET /api/user/v1/turn-credentials`,
//! see [`crate::http::turn`]), and the command itself.
//!
//! The scheme is the TURN REST API one (draft-uberti-behave-turn-rest, the same as coturn's
//! `use-auth-secret`): username `expiry:user` where `user` is the address
//! (`alice@example.com`), password base64(HMAC-SHA1(secret, username)), valid until
//! `expiry` (UNIX seconds). The relay needs no database: it recomputes the password from
//! the shared secret. The arithmetic is `confab-stun`'s, reached through
//! [`confab_turn::mint_credentials`].
//!
//! # Where the secrets and URIs live (one source of truth per file)
//!
//! - **A/V Edge on this node** (`[turn]` present, e.g. a one-box server running
//!   `--role front-end --role av-edge`): the secrets are `turn.secrets`, the ones the relay
//!   checks; `turn_credentials.secrets` must stay empty (a second list could disagree).
//!   The URIs default to one per `[turn]` listener at `turn_credentials.host` (default: the
//!   first of `domains`); `turn_credentials.uris` overrides them (public names behind NAT).
//! - **Separate A/V Edge nodes** (no `[turn]` here): `turn_credentials.secrets` holds the
//!   same list as the edges' `turn.secrets` (newest first; credentials are minted with the
//!   first, the edges accept all of them, so a rotation adds the new secret first everywhere,
//!   then drops the old one after the longest `ttl_s`), and `turn_credentials.uris` lists
//!   the edges' RFC 7065 URIs (required then).
//!
//! `ttl_s` is the validity handed out (default one day, as the REST draft suggests; at most
//! [`MAX_TTL_S`]); `confab turn-credentials --ttl-s` overrides it.
//!
//! Not here: per-user entitlement to the relay (every user of a served domain gets
//! credentials), choosing the nearest edge, revocation before expiry (rotate the secret).

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::{Deserialize, Serialize};

use confab_turn::TurnCredentials;

use crate::UsageError;
use crate::config::{Config, ConfigError, Problem};
use crate::http::views;

/// Longest validity of issued credentials (seven days). Devices that need more use the
/// relay's `turn.static_users`.
pub const MAX_TTL_S: u64 = 7 * 86_400;

/// Default validity (one day).
pub const DEFAULT_TTL_S: u64 = 86_400;

/// `[turn_credentials]`: what a Front End needs to issue TURN credentials (see the module
/// documentation for where secrets and URIs live).
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnCredentialsConfig {
    /// TURN REST API shared secrets of the edges, newest first (minting uses the first).
    /// Must be empty when this node has a `[turn]` table: `turn.secrets` is used then.
    pub secrets: Vec<String>,
    /// RFC 7065 URIs handed to clients. Default with `[turn]` on this node: one per
    /// `[turn]` listener at `host`.
    pub uris: Vec<String>,
    /// Public host name for the URIs derived from `[turn]`; default: the first domain.
    pub host: Option<String>,
    /// Validity of issued credentials, seconds (1 to [`MAX_TTL_S`]).
    pub ttl_s: u64,
}

impl Default for TurnCredentialsConfig {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            uris: Vec::new(),
            host: None,
            ttl_s: DEFAULT_TTL_S,
        }
    }
}

impl fmt::Debug for TurnCredentialsConfig {
    /// Secrets are not printed; the field keeps its place so the key list stays visible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnCredentialsConfig")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("uris", &self.uris)
            .field("host", &self.host)
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

/// No shared secret is configured where this node would take it from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no TURN shared secret is configured: set `{key}` (the secrets of the A/V Edge)")]
pub struct NoSecret {
    /// The dotted key to set: `turn.secrets` or `turn_credentials.secrets`.
    pub key: &'static str,
}

/// Mints credentials from the configured secrets and hands out the configured URIs.
#[derive(Clone)]
pub struct TurnIssuer {
    /// Only `secrets` is used (by [`confab_turn::mint_credentials`]).
    mint: confab_turn::TurnConfig,
    uris: Vec<String>,
    ttl_s: u64,
}

impl fmt::Debug for TurnIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnIssuer")
            .field("secrets", &self.mint.secrets.len())
            .field("uris", &self.uris)
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

impl TurnIssuer {
    /// The issuer a (validated) configuration describes, or which key lacks a secret.
    pub fn from_config(config: &Config) -> Result<TurnIssuer, NoSecret> {
        let tc = &config.turn_credentials;
        let (secrets, key) = match &config.turn {
            Some(t) => (&t.secrets, "turn.secrets"),
            None => (&tc.secrets, "turn_credentials.secrets"),
        };
        if secrets.is_empty() {
            return Err(NoSecret { key });
        }
        let uris = match (&config.turn, tc.uris.is_empty()) {
            (Some(t), true) => {
                let host = tc.host.as_deref().unwrap_or(config.default_domain());
                confab_turn::turn_uris(t, host)
            }
            _ => tc.uris.clone(),
        };
        Ok(TurnIssuer {
            mint: confab_turn::TurnConfig {
                secrets: secrets.clone(),
                ..confab_turn::TurnConfig::default()
            },
            uris,
            ttl_s: tc.ttl_s,
        })
    }

    /// The configured validity (`turn_credentials.ttl_s`).
    pub fn default_ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// The URIs handed out.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// Credentials for `user` valid `ttl_s` seconds from `now_unix` (pure: the caller reads
    /// the clock).
    pub fn issue(&self, user: &str, now_unix: u64, ttl_s: u64) -> TurnCredentials {
        let c = confab_turn::mint_credentials(&self.mint, user, now_unix, ttl_s)
            .expect("from_config checked that a secret exists");
        TurnCredentials {
            username: c.username,
            password: c.password,
            ttl: ttl_s,
            expires_at_unix: c.expires_at_unix,
            uris: self.uris.clone(),
        }
    }
}

/// The current UNIX time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks an RFC 7065 TURN URI: `turn:` or `turns:`, a host (name, IPv4 or bracketed IPv6),
/// an optional port, an optional `?transport=udp|tcp`.
pub fn check_turn_uri(uri: &str) -> Result<(), String> {
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or("is not a TURN URI (expected turn:HOST[:PORT][?transport=udp|tcp])")?;
    if !scheme.eq_ignore_ascii_case("turn") && !scheme.eq_ignore_ascii_case("turns") {
        return Err(format!(
            "scheme `{scheme}` is not `turn` or `turns` (RFC 7065)"
        ));
    }
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (ip, after) = v6
            .split_once(']')
            .ok_or("an IPv6 literal lacks its closing `]`")?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
        match after {
            "" => (ip, None),
            p => (
                ip,
                Some(
                    p.strip_prefix(':')
                        .ok_or("only `:PORT` may follow an IPv6 literal")?,
                ),
            ),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if !hostport.starts_with('[') {
        crate::config::check_domain(host).map_err(|why| format!("host `{host}` {why}"))?;
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("port `{p}` is not a number from 1 to 65535"));
    }
    if let Some(q) = query {
        match q.strip_prefix("transport=") {
            Some("udp" | "tcp") => {}
            _ => {
                return Err(format!(
                    "query `?{q}` is not `?transport=udp` or `?transport=tcp`"
                ));
            }
        }
    }
    Ok(())
}

/// Problems with `[turn_credentials]` and `http.admin.tokens_sha256` as (dotted key,
/// message), for [`Config::validate`].
pub fn check(config: &Config) -> Vec<(String, String)> {
    let tc = &config.turn_credentials;
    let mut out = Vec::new();
    let mut problem = |k: String, m: String| out.push((k, m));
    if config.turn.is_some() && !tc.secrets.is_empty() {
        problem(
            "turn_credentials.secrets".into(),
            "this node has a [turn] table, whose `secrets` the relay checks and credentials are minted with: list the secrets there only".into(),
        );
    }
    for (i, s) in tc.secrets.iter().enumerate() {
        if s.is_empty() {
            problem(format!("turn_credentials.secrets[{i}]"), "is empty".into());
        }
    }
    if config.turn.is_none() && !tc.secrets.is_empty() && tc.uris.is_empty() {
        problem(
            "turn_credentials.uris".into(),
            "clients need the URIs of the A/V Edge, e.g. [\"turn:edge.example.com:3478?transport=udp\"]".into(),
        );
    }
    for (i, u) in tc.uris.iter().enumerate() {
        if let Err(why) = check_turn_uri(u) {
            problem(
                format!("turn_credentials.uris[{i}]"),
                format!("`{u}` {why}"),
            );
        }
    }
    if tc.ttl_s == 0 || tc.ttl_s > MAX_TTL_S {
        problem(
            "turn_credentials.ttl_s".into(),
            format!("must be from 1 to {MAX_TTL_S} seconds"),
        );
    }
    if let Some(h) = &tc.host {
        if config.turn.is_none() || !tc.uris.is_empty() {
            problem(
                "turn_credentials.host".into(),
                "is used only to derive the URIs from this node's [turn] table when `uris` is empty".into(),
            );
        } else if let Err(why) = crate::config::check_domain(h) {
            problem("turn_credentials.host".into(), format!("`{h}` {why}"));
        }
    }
    for (i, t) in config.http.admin.tokens_sha256.iter().enumerate() {
        if let Err(why) = crate::http::turn::parse_token_hash(t) {
            problem(format!("http.admin.tokens_sha256[{i}]"), why);
        }
    }
    out
}

/// `confab turn-credentials`.
#[derive(Debug, Args)]
pub struct TurnCredentialsArgs {
    /// user@domain of an existing user
    pub address: String,
    /// Validity in seconds [default: turn_credentials.ttl_s, i.e. 86400]
    #[arg(long, value_name = "N")]
    pub ttl_s: Option<u64>,
    /// Print JSON (the TURN REST API shape: username, password, ttl, uris; plus
    /// expires_at_unix)
    #[arg(long)]
    pub json: bool,
}

/// `confab turn-credentials ADDRESS [--ttl-s N] [--json]`: checks that the user exists, then
/// prints credentials minted from the configured secret. `file` is the configuration file
/// (named in the error when no secret is configured).
pub async fn run(config: &Config, file: &Path, args: &TurnCredentialsArgs) -> anyhow::Result<()> {
    let issuer = TurnIssuer::from_config(config).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        problems: vec![Problem {
            key: e.key.into(),
            line: None,
            message: format!(
                "no TURN shared secret is configured here; `confab turn-credentials` needs the secrets of the A/V Edge in `{}`",
                e.key
            ),
        }],
    })?;
    let ttl_s = args.ttl_s.unwrap_or(issuer.default_ttl_s());
    if ttl_s == 0 || ttl_s > MAX_TTL_S {
        return Err(UsageError(format!(
            "--ttl-s {ttl_s}: must be from 1 to {MAX_TTL_S} seconds (devices that need more use turn.static_users)"
        ))
        .into());
    }
    let address = views::parse_address(&args.address, &config.domains).map_err(UsageError::from)?;
    let stores = crate::store::open(config).await?;
    let found = stores.users.get_user(&address).await;
    stores.close().await;
    if found?.is_none() {
        anyhow::bail!("user {address} not found");
    }
    let creds = issuer.issue(&address.to_string(), unix_now(), ttl_s);
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &creds)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    } else {
        println!("username: {}", creds.username);
        println!("password: {}", creds.password);
        println!("ttl:      {} s", creds.ttl);
        println!(
            "expires:  {}",
            confab_core::Timestamp(
                i64::try_from(creds.expires_at_unix)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000)
            )
        );
        for u in &creds.uris {
            println!("uri:      {u}");
        }
        if creds.uris.is_empty() {
            println!("uri:      -");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_uri(uri: &str, expected: Result<(), &str>) {
        assert_eq!(
            check_turn_uri(uri),
            expected.map_err(str::to_string),
            "{uri}"
        );
    }

    #[test]
    fn turn_uris() {
        for ok in [
            "turn:edge.example.com",
            "turn:edge.example.com:3478?transport=udp",
            "turns:edge.example.com:5349?transport=tcp",
            "TURN:192.0.2.1:3478",
            "turn:[2001:db8::1]:3478?transport=tcp",
            "turn:[::1]",
        ] {
            check_uri(ok, Ok(()));
        }
        check_uri(
            "stun:edge.example.com",
            Err("scheme `stun` is not `turn` or `turns` (RFC 7065)"),
        );
        check_uri(
            "edge.example.com",
            Err("is not a TURN URI (expected turn:HOST[:PORT][?transport=udp|tcp])"),
        );
        check_uri("turn::3478", Err("has no host"));
        check_uri(
            "turn:edge.example.com:0",
            Err("port `0` is not a number from 1 to 65535"),
        );
        check_uri(
            "turn:edge.example.com:+5",
            Err("port `+5` is not a number from 1 to 65535"),
        );
        check_uri(
            "turn:edge.example.com:3478?transport=sctp",
            Err("query `?transport=sctp` is not `?transport=udp` or `?transport=tcp`"),
        );
        check_uri(
            "turn:[2001:db8::1:3478",
            Err("an IPv6 literal lacks its closing `]`"),
        );
        check_uri("turn:[zz]:1", Err("`zz` is not an IPv6 address"));
        check_uri(
            "turn:edge_1.example.com",
            Err(
                "host `edge_1.example.com` is not a domain name (labels are letters, digits and inner `-`)",
            ),
        );
    }

    fn config(text: &str) -> Config {
        Config::parse(Path::new("c.toml"), text).unwrap()
    }

    const TURN: &str = "[turn]\nrealm = \"example.com\"\nrelay_ipv4 = \"192.0.2.10\"\nlisten_tcp = []\nlisten_tls = [\"0.0.0.0:5349\"]\ntls_cert_file = \"c\"\ntls_key_file = \"k\"\nsecrets = [\"edge-secret\", \"old\"]\n";

    #[track_caller]
    fn check_problems(text: &str, expected: &[(&str, &str)]) {
        let got = check(&config(text));
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, m)| (k.to_string(), m.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn validation_names_the_key() {
        check_problems("", &[]);
        check_problems(
            "[turn_credentials]\nsecrets = [\"s\"]\nuris = [\"turn:e.example.com\"]\n",
            &[],
        );
        check_problems(TURN, &[]);
        check_problems(
            &format!("{TURN}[turn_credentials]\nsecrets = [\"s\"]\n"),
            &[(
                "turn_credentials.secrets",
                "this node has a [turn] table, whose `secrets` the relay checks and credentials are minted with: list the secrets there only",
            )],
        );
        check_problems(
            "[turn_credentials]\nsecrets = [\"s\", \"\"]\n",
            &[
                ("turn_credentials.secrets[1]", "is empty"),
                (
                    "turn_credentials.uris",
                    "clients need the URIs of the A/V Edge, e.g. [\"turn:edge.example.com:3478?transport=udp\"]",
                ),
            ],
        );
        check_problems(
            "[turn_credentials]\nuris = [\"turn:ok.example\", \"http://x\"]\nttl_s = 0\n",
            &[
                (
                    "turn_credentials.uris[1]",
                    "`http://x` scheme `http` is not `turn` or `turns` (RFC 7065)",
                ),
                ("turn_credentials.ttl_s", "must be from 1 to 604800 seconds"),
            ],
        );
        check_problems(
            "[turn_credentials]\nhost = \"edge.example.com\"\n",
            &[(
                "turn_credentials.host",
                "is used only to derive the URIs from this node's [turn] table when `uris` is empty",
            )],
        );
        check_problems(
            &format!("{TURN}[turn_credentials]\nhost = \"bad host\"\n"),
            &[(
                "turn_credentials.host",
                "`bad host` is not a domain name (labels are letters, digits and inner `-`)",
            )],
        );
        check_problems(
            "[http.admin]\ntokens_sha256 = [\"abc\"]\n",
            &[(
                "http.admin.tokens_sha256[0]",
                "`abc` is not a SHA-256 in hex (64 characters 0-9, a-f); compute it with `printf %s TOKEN | sha256sum`",
            )],
        );
    }

    #[test]
    fn issuer_takes_secrets_and_uris_from_one_place() {
        // A front end of separate edges: its own table.
        let c = config(
            "[turn_credentials]\nsecrets = [\"secret\", \"old\"]\nuris = [\"turn:edge.example.com:3478?transport=udp\"]\nttl_s = 600\n",
        );
        let i = TurnIssuer::from_config(&c).unwrap();
        assert_eq!(i.default_ttl_s(), 600);
        let cr = i.issue("alice", 1_699_913_600, 86_400);
        // The value confab-turn's and confab-stun's tests check against openssl.
        assert_eq!(
            (cr.username.as_str(), cr.password.as_str()),
            ("1700000000:alice", "d8soP47RbdIKLDUOpnJPVQyq5Ts=")
        );
        assert_eq!(cr.uris, ["turn:edge.example.com:3478?transport=udp"]);
        assert_eq!((cr.ttl, cr.expires_at_unix), (86_400, 1_700_000_000));

        // A one-box node: [turn] holds the secrets; URIs derived from its listeners at the
        // first domain, or at `host`.
        let c = config(&format!(
            "domains = [\"example.com\"]\n{}",
            TURN.replace("edge-secret", "secret")
        ));
        let i = TurnIssuer::from_config(&c).unwrap();
        let cr = i.issue("alice", 1_699_913_600, 86_400);
        assert_eq!(cr.password, "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
        assert_eq!(
            cr.uris,
            [
                "turn:example.com:3478?transport=udp",
                "turns:example.com:5349?transport=tcp"
            ]
        );
        let c = config(&format!(
            "{TURN}[turn_credentials]\nhost = \"edge.example.net\"\n"
        ));
        assert_eq!(
            TurnIssuer::from_config(&c).unwrap().uris(),
            [
                "turn:edge.example.net:3478?transport=udp",
                "turns:edge.example.net:5349?transport=tcp"
            ]
        );

        // No secret: the error names the key to set.
        assert_eq!(
            TurnIssuer::from_config(&config("")).unwrap_err(),
            NoSecret {
                key: "turn_credentials.secrets"
            }
        );
        let static_only = TURN.replace(
            "secrets = [\"edge-secret\", \"old\"]",
            "static_users = [{ username = \"phone\", password = \"p\" }]",
        );
        assert_eq!(
            TurnIssuer::from_config(&config(&static_only)).unwrap_err(),
            NoSecret {
                key: "turn.secrets"
            }
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c =
            config("[turn_credentials]\nsecrets = [\"hunter2\"]\nuris = [\"turn:e.example\"]\n");
        let text = format!(
            "{:?} {:?}",
            c.turn_credentials,
            TurnIssuer::from_config(&c).unwrap()
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[1 redacted]"), "{text}");
    }
}
