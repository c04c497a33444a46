//! Configuration: the `[transport]` and `[tls]` tables of the `confab` config file.
//!
//! Keys are snake_case, durations carry their unit in the name (`idle_timeout_s`), unknown
//! keys are errors, and every key has a default, so an empty table is valid.
//!
//! ```toml
//! [transport]
//! listen = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:[::]:5061", "wss:0.0.0.0:8443"]
//! idle_timeout_s = 600
//!
//! [transport.limits]
//! messages_per_second_per_source = 200
//!
//! [tls]
//! client_auth = "optional"
//! client_ca = "/etc/confab/peers-ca.pem"
//! [[tls.certificates]]
//! cert_chain = "/etc/confab/example.com.pem"
//! private_key = "/etc/confab/example.com.key"
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::listen::ListenSpec;

/// The `[transport]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Listeners, e.g. `["udp:0.0.0.0:5060", "tls:[::]:5061"]` (see [`ListenSpec`]).
    pub listen: Vec<ListenSpec>,
    /// Receive sockets per UDP listener (SO_REUSEPORT); 0 = one per CPU core.
    pub udp_workers: usize,
    /// SO_RCVBUF for UDP sockets, bytes (the kernel may cap it at `net.core.rmem_max`).
    pub udp_recv_buffer_bytes: usize,
    /// SO_SNDBUF for UDP sockets, bytes.
    pub udp_send_buffer_bytes: usize,
    /// Path MTU assumed for UDP. A request larger than `mtu - 200` bytes goes over TCP when
    /// the caller says the target supports it (RFC 3261 §18.1.1: 1300 bytes for 1500).
    pub mtu: usize,
    /// Largest SIP message accepted on any transport, bytes (datagrams are capped at 65535).
    pub max_message_bytes: usize,
    /// A connection with no bytes received for this long is closed. CRLF keep-alives count.
    pub idle_timeout_s: u64,
    /// A TLS or WebSocket handshake must complete within this time.
    pub handshake_timeout_s: u64,
    /// Time allowed to open an outgoing TCP/TLS connection.
    pub connect_timeout_s: u64,
    /// Capacity of the channel of received events. When it is full, the UDP receive tasks
    /// and stream connections stop reading until there is room: the backlog then waits in
    /// the kernel's socket buffers, where `max_datagram_age_ms` drops stale requests before
    /// they cost a parse. Keep it short in time (a few hundred milliseconds of work at most):
    /// every message in it is older than it looks to the stale check at the entrance.
    pub event_queue: usize,
    /// Overload control at the entrance: a UDP datagram that waited in the kernel's receive
    /// buffer longer than this (by the kernel's receive timestamp, SO_TIMESTAMPNS) is dropped
    /// unparsed if it is a request that starts new work. Its client has retransmitted or is
    /// about to (SIP's T1 is 500 ms), so serving it late costs CPU for nothing. Responses
    /// and ACK, CANCEL, BYE and PRACK are never dropped this way: they finish work in
    /// progress. 0 turns it off; otherwise 10..=32000.
    pub max_datagram_age_ms: u64,
    /// Messages queued for sending on one connection before `send` fails with `Busy`.
    pub connection_send_queue: usize,
    /// Honour the Via `alias` parameter (RFC 5923): requests to the sent-by address of a
    /// client that asked for it reuse its connection. On TCP without TLS anyone can claim
    /// any sent-by, so this is only honoured on TLS/WSS unless `alias_on_tcp` is set.
    pub connection_reuse: bool,
    /// Also honour `alias` on plain TCP/WS connections (trusted networks only).
    pub alias_on_tcp: bool,
    /// RFC 3261 §18.1.2: drop responses whose top Via sent-by is not one of our listeners'
    /// addresses or `advertise` values.
    pub check_response_sent_by: bool,
    /// Per-source limits.
    pub limits: LimitsConfig,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: Vec::new(),
            udp_workers: 0,
            udp_recv_buffer_bytes: 8 << 20,
            udp_send_buffer_bytes: 8 << 20,
            mtu: 1500,
            max_message_bytes: 65535,
            idle_timeout_s: 600,
            handshake_timeout_s: 10,
            connect_timeout_s: 10,
            event_queue: 256,
            max_datagram_age_ms: 200,
            connection_send_queue: 256,
            connection_reuse: true,
            alias_on_tcp: false,
            check_response_sent_by: true,
            limits: LimitsConfig::default(),
        }
    }
}

/// The `[transport.limits]` table. A value of 0 means "no limit" for every key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open connections in total (all transports).
    pub max_connections: u32,
    /// Open connections from one IP address.
    pub max_connections_per_source: u32,
    /// TLS/WebSocket handshakes in progress from one IP address ("half-open").
    pub max_handshakes_per_source: u32,
    /// Bytes held for one IP address: partial messages being received plus data queued to
    /// send to it.
    pub max_bytes_in_flight_per_source: usize,
    /// SIP messages per second accepted from one IP address; UDP datagrams over the rate are
    /// dropped, streams are paused.
    pub messages_per_second_per_source: u32,
    /// Burst allowance for `messages_per_second_per_source`.
    pub message_burst_per_source: u32,
    /// Error responses (400 and friends for unparsable input) per second to one IP address.
    /// Keeps the server from being a reflector for spoofed garbage.
    pub error_responses_per_second_per_source: u32,
    /// Burst allowance for `error_responses_per_second_per_source`.
    pub error_response_burst_per_source: u32,
    /// Sources tracked individually; beyond this, new sources share one bucket.
    pub max_tracked_sources: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 100_000,
            max_connections_per_source: 256,
            max_handshakes_per_source: 32,
            max_bytes_in_flight_per_source: 4 << 20,
            messages_per_second_per_source: 2000,
            message_burst_per_source: 4000,
            error_responses_per_second_per_source: 5,
            error_response_burst_per_source: 10,
            max_tracked_sources: 1 << 20,
        }
    }
}

/// Client-certificate policy for TLS listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Do not ask for a client certificate (phones, browsers).
    #[default]
    None,
    /// Ask; verify against `client_ca` if one is sent; accept clients without one. The
    /// peer's RFC 5922 identities are reported with each message.
    Optional,
    /// Require a certificate that verifies against `client_ca` (server-to-server links).
    Required,
}

/// One certificate chain and its key, for the listed server names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// PEM file: the leaf certificate first, then intermediates.
    pub cert_chain: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// SNI names this certificate serves. Empty = the DNS names in its subjectAltName.
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// The `[tls]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Served certificates, one per domain (SNI picks). The first one also answers clients
    /// that send no SNI or an unknown name, and is presented as our client certificate on
    /// outgoing server-to-server connections.
    pub certificates: Vec<TlsCertificate>,
    /// Client certificate policy for TLS/WSS listeners.
    pub client_auth: ClientAuth,
    /// PEM bundle of CAs that client certificates must chain to (needed unless
    /// `client_auth = "none"`).
    pub client_ca: Option<PathBuf>,
    /// PEM bundle of CAs that servers we connect to must chain to. Default: the system
    /// bundle `/etc/ssl/certs/ca-certificates.crt`.
    pub trust_anchors: Option<PathBuf>,
    /// Check the files for changes this often and reload renewed certificates without a
    /// restart; 0 = only on [`crate::TransportHandle::reload_tls`].
    pub reload_interval_s: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificates: Vec::new(),
            client_auth: ClientAuth::None,
            client_ca: None,
            trust_anchors: None,
            reload_interval_s: 60,
        }
    }
}

/// A configuration that cannot work, named precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `listen` is empty.
    #[error("transport.listen is empty: add at least one listener, e.g. \"udp:0.0.0.0:5060\"")]
    NoListeners,
    /// The same transport and address twice.
    #[error("transport.listen names `{0}` twice")]
    DuplicateListener(String),
    /// A TLS/WSS listener without certificates.
    #[error("listener `{0}` needs TLS but [tls] has no certificates")]
    NoCertificates(String),
    /// `client_auth` set without `client_ca`.
    #[error("tls.client_auth = \"{0}\" needs tls.client_ca")]
    NoClientCa(&'static str),
    /// A value out of range.
    #[error("{key} = {value}: {why}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value given.
        value: u64,
        /// What is allowed.
        why: &'static str,
    },
}

impl TransportConfig {
    /// Checks the configuration as a whole (`confab serve --check`). `tls` is the `[tls]`
    /// table if present.
    pub fn validate(&self, tls: Option<&TlsConfig>) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::NoListeners);
        }
        for (i, l) in self.listen.iter().enumerate() {
            if self.listen[..i]
                .iter()
                .any(|o| o.transport == l.transport && o.addr == l.addr && l.addr.port() != 0)
            {
                return Err(ConfigError::DuplicateListener(l.to_string()));
            }
            if l.transport.is_secure() && tls.is_none_or(|t| t.certificates.is_empty()) {
                return Err(ConfigError::NoCertificates(l.to_string()));
            }
        }
        if let Some(t) = tls {
            let name = match t.client_auth {
                ClientAuth::None => None,
                ClientAuth::Optional => Some("optional"),
                ClientAuth::Required => Some("required"),
            };
            if let (Some(name), None) = (name, &t.client_ca) {
                return Err(ConfigError::NoClientCa(name));
            }
        }
        let range = |key, value: u64, ok: bool, why| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { key, value, why })
            }
        };
        range(
            "transport.mtu",
            self.mtu as u64,
            (576..=65535).contains(&self.mtu),
            "must be 576..=65535",
        )?;
        range(
            "transport.max_message_bytes",
            self.max_message_bytes as u64,
            (1024..=16 << 20).contains(&self.max_message_bytes),
            "must be 1024..=16777216",
        )?;
        range(
            "transport.event_queue",
            self.event_queue as u64,
            self.event_queue > 0,
            "must be at least 1",
        )?;
        range(
            "transport.max_datagram_age_ms",
            self.max_datagram_age_ms,
            self.max_datagram_age_ms == 0 || (10..=32_000).contains(&self.max_datagram_age_ms),
            "must be 0 (off) or 10..=32000",
        )?;
        range(
            "transport.connection_send_queue",
            self.connection_send_queue as u64,
            self.connection_send_queue > 0,
            "must be at least 1",
        )?;
        range(
            "transport.idle_timeout_s",
            self.idle_timeout_s,
            self.idle_timeout_s > 0,
            "must be at least 1",
        )?;
        range(
            "transport.handshake_timeout_s",
            self.handshake_timeout_s,
            self.handshake_timeout_s > 0,
            "must be at least 1",
        )?;
        range(
            "transport.connect_timeout_s",
            self.connect_timeout_s,
            self.connect_timeout_s > 0,
            "must be at least 1",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        transport: TransportConfig,
        tls: Option<TlsConfig>,
    }

    #[track_caller]
    fn check(toml_text: &str, expected: Result<(), &str>) {
        let parsed: Result<File, String> = toml::from_str(toml_text).map_err(|e| e.to_string());
        let got = parsed.and_then(|f| {
            f.transport
                .validate(f.tls.as_ref())
                .map_err(|e| e.to_string())
        });
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.contains(want), "error `{e}` lacks `{want}`"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn config_files() {
        check("[transport]\nlisten = [\"udp:127.0.0.1:5060\"]", Ok(()));
        check(
            r#"
            [transport]
            listen = ["udp:0.0.0.0:5060", "tcp:[::]:5060", "tls:0.0.0.0:5061", "wss:[::1]:8443"]
            idle_timeout_s = 30
            udp_workers = 2
            [transport.limits]
            messages_per_second_per_source = 0
            [tls]
            client_auth = "optional"
            client_ca = "/ca.pem"
            [[tls.certificates]]
            cert_chain = "/a.pem"
            private_key = "/a.key"
            server_names = ["a.example"]
            "#,
            Ok(()),
        );
        check("[transport]", Err("transport.listen is empty"));
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:5060\"]\nidle_timeout = 3",
            Err("unknown field `idle_timeout`"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:5060\"]\n[transport.limits]\nmax_conns = 3",
            Err("unknown field `max_conns`"),
        );
        check(
            "[transport]\nlisten = [\"udp:localhost:5060\"]",
            Err("`localhost` is not an IP address"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:5060\", \"UDP:127.0.0.1:5060\"]",
            Err("names `udp:127.0.0.1:5060` twice"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
            Ok(()),
        );
        check(
            "[transport]\nlisten = [\"tls:127.0.0.1:5061\"]",
            Err("needs TLS but [tls] has no certificates"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\n[tls]\nclient_auth = \"required\"",
            Err("tls.client_auth = \"required\" needs tls.client_ca"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\n[tls]\nclient_auth = \"sometimes\"",
            Err("unknown variant `sometimes`"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\nmtu = 100",
            Err("transport.mtu = 100: must be 576..=65535"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\nidle_timeout_s = 0",
            Err("transport.idle_timeout_s = 0"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\nmax_datagram_age_ms = 5",
            Err("transport.max_datagram_age_ms = 5: must be 0 (off) or 10..=32000"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\nmax_datagram_age_ms = 40000",
            Err("transport.max_datagram_age_ms = 40000"),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\nmax_datagram_age_ms = 0",
            Ok(()),
        );
        check(
            "[transport]\nlisten = [\"udp:127.0.0.1:1\"]\nmax_datagram_age_ms = 150",
            Ok(()),
        );
    }
}
