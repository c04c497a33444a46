//! Listener SPEC strings: `TRANSPORT:ADDR:PORT`, e.g. `udp:127.0.0.1:5060`, `tls:[::1]:5061`.
//!
//! The same syntax is used on the command line (`confab init --listen SPEC`) and in the
//! configuration file (`transport.listen = ["udp:0.0.0.0:5060", ...]`). ADDR is an IP
//! address (IPv6 in brackets); host names are not accepted because a listener binds a local
//! address. Port 0 asks the operating system for a free port (useful in tests).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The SIP transport a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// SIP over UDP (RFC 3261 §18).
    Udp,
    /// SIP over TCP (RFC 3261 §18).
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2, RFC 5630).
    Tls,
    /// SIP over WebSocket (RFC 7118).
    Ws,
    /// SIP over secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// All transports, in the order they are documented.
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// The lower-case prefix used in a SPEC string.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Whether this transport needs the TLS certificate (`tls.cert_file`).
    pub fn needs_certificate(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One listener: a transport and the local socket address it binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    /// The transport.
    pub transport: Transport,
    /// The local address and port.
    pub addr: SocketAddr,
}

impl ListenSpec {
    /// A listener for `transport` on `addr`.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Self { transport, addr }
    }
}

/// Why a SPEC string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenSpecError {
    /// No `TRANSPORT:` prefix.
    #[error(
        "`{spec}` has no transport prefix: expected TRANSPORT:ADDR:PORT with TRANSPORT one of udp, tcp, tls, ws, wss"
    )]
    MissingTransport {
        /// The rejected text.
        spec: String,
    },
    /// The prefix is not a known transport.
    #[error("`{spec}`: unknown transport `{transport}`: expected one of udp, tcp, tls, ws, wss")]
    UnknownTransport {
        /// The rejected text.
        spec: String,
        /// The prefix found.
        transport: String,
    },
    /// The part after the prefix is not `IP:PORT` / `[IPv6]:PORT`.
    #[error("`{spec}`: `{addr}` is not an IP address and port (write IPv6 as [::1]:5060)")]
    BadAddress {
        /// The rejected text.
        spec: String,
        /// The address part.
        addr: String,
    },
}

impl FromStr for ListenSpec {
    type Err = ListenSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let Some((prefix, rest)) = spec.split_once(':') else {
            return Err(ListenSpecError::MissingTransport { spec: spec.into() });
        };
        let transport = Transport::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(prefix))
            .ok_or_else(|| {
                // `127.0.0.1:5060` or `[::1]:5060` without a prefix.
                if prefix.starts_with('[') || prefix.parse::<std::net::IpAddr>().is_ok() {
                    ListenSpecError::MissingTransport { spec: spec.into() }
                } else {
                    ListenSpecError::UnknownTransport {
                        spec: spec.into(),
                        transport: prefix.into(),
                    }
                }
            })?;
        let addr = rest
            .parse::<SocketAddr>()
            .map_err(|_| ListenSpecError::BadAddress {
                spec: spec.into(),
                addr: rest.into(),
            })?;
        Ok(ListenSpec { transport, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr's Display already brackets IPv6 addresses.
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

impl Serialize for ListenSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The default SIP listeners of a fresh installation: UDP and TCP on 5060, TLS on 5061,
/// WebSocket on 8080 and secure WebSocket on 8443, all on 127.0.0.1.
pub fn default_listeners() -> Vec<ListenSpec> {
    [
        "udp:127.0.0.1:5060",
        "tcp:127.0.0.1:5060",
        "tls:127.0.0.1:5061",
        "ws:127.0.0.1:8080",
        "wss:127.0.0.1:8443",
    ]
    .into_iter()
    .map(|s| s.parse().expect("default listener specs are valid"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(spec: &str, expected: Result<(Transport, &str), &str>) {
        let got = spec.parse::<ListenSpec>();
        match (got, expected) {
            (Ok(l), Ok((t, addr))) => {
                assert_eq!(l.transport, t, "{spec}");
                assert_eq!(l.addr, addr.parse::<SocketAddr>().unwrap(), "{spec}");
                // Display round-trips to an equal value.
                assert_eq!(l.to_string().parse::<ListenSpec>().unwrap(), l);
            }
            (Err(e), Err(msg)) => {
                let text = e.to_string();
                assert!(text.contains(msg), "{spec}: `{text}` lacks `{msg}`");
            }
            (got, expected) => panic!("{spec}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn specs() {
        check("udp:127.0.0.1:5060", Ok((Transport::Udp, "127.0.0.1:5060")));
        check("tcp:0.0.0.0:5060", Ok((Transport::Tcp, "0.0.0.0:5060")));
        check("tls:127.0.0.1:5061", Ok((Transport::Tls, "127.0.0.1:5061")));
        check("ws:127.0.0.1:8080", Ok((Transport::Ws, "127.0.0.1:8080")));
        check("wss:[::]:8443", Ok((Transport::Wss, "[::]:8443")));
        check("udp:[::1]:5060", Ok((Transport::Udp, "[::1]:5060")));
        check("UDP:[::1]:0", Ok((Transport::Udp, "[::1]:0")));
        check("127.0.0.1:5060", Err("no transport prefix"));
        check("[::1]:5060", Err("no transport prefix"));
        check("5060", Err("no transport prefix"));
        check("sctp:127.0.0.1:5060", Err("unknown transport `sctp`"));
        check("udp:::1:5060", Err("write IPv6 as [::1]:5060"));
        check(
            "udp:localhost:5060",
            Err("`localhost:5060` is not an IP address"),
        );
        check("udp:127.0.0.1", Err("is not an IP address and port"));
        check("udp:127.0.0.1:70000", Err("is not an IP address and port"));
        check("udp:", Err("is not an IP address"));
    }

    #[test]
    fn display_brackets_ipv6() {
        let l: ListenSpec = "wss:[::1]:8443".parse().unwrap();
        assert_eq!(l.to_string(), "wss:[::1]:8443");
    }

    #[test]
    fn defaults_cover_every_transport() {
        let d = default_listeners();
        let mut ts: Vec<_> = d.iter().map(|l| l.transport).collect();
        ts.sort();
        assert_eq!(ts, Transport::ALL.to_vec());
    }
}
