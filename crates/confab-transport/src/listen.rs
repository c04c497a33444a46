//! Transport names and listener specifications (`udp:0.0.0.0:5060`, `wss:[::]:8443`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;

/// A SIP transport, as written in the Via header (RFC 3261 §18, RFC 7118 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// Datagrams; unreliable, not congestion-controlled.
    Udp,
    /// One TCP connection, messages framed by Content-Length.
    Tcp,
    /// TCP with TLS 1.2/1.3 (rustls).
    Tls,
    /// WebSocket over TCP (RFC 7118), one SIP message per WebSocket message.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

impl TransportKind {
    /// All transports, in the order they are listed in docs.
    pub const ALL: [TransportKind; 5] = [Self::Udp, Self::Tcp, Self::Tls, Self::Ws, Self::Wss];

    /// The transport token of the Via header (`SIP/2.0/UDP`, RFC 7118 `SIP/2.0/WSS`).
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WS",
            Self::Wss => "WSS",
        }
    }

    /// The scheme used in a listener specification (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub fn spec_name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Parses a Via transport token, case-insensitively (RFC 3261 §7.3.1: tokens are
    /// case-insensitive). `None` for transports Confab does not speak (SCTP, DTLS).
    pub fn from_via_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.via_name().eq_ignore_ascii_case(name))
    }

    /// True for transports that deliver in order and retransmit (all but UDP). RFC 3261
    /// calls these "reliable"; they are also congestion-controlled (§18.1.1).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// True for TLS and WSS.
    pub fn is_secure(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// True for WS and WSS.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The port used when a specification or a Via sent-by leaves it out (RFC 3261 §18.2.2:
    /// 5060, 5061 for TLS). WebSocket has no SIP default port; 80/443 are the HTTP ones.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 5060,
            Self::Tls => 5061,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_name())
    }
}

/// One listener: transport, local address to bind, and optionally the host (and port) to
/// advertise in Via and Record-Route when the bound address is a wildcard or behind NAT.
///
/// Written as `TRANSPORT:ADDR[:PORT][;advertise=HOST[:PORT]]`, for example `udp:0.0.0.0:5060`,
/// `tls:[::]:5061`, `wss:127.0.0.1:8443;advertise=sip.example.com:443`. IPv6 addresses go
/// in brackets. The port may be left out for `udp`/`tcp` (5060) and `tls` (5061) only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// The transport.
    pub transport: TransportKind,
    /// The address to bind. Port 0 asks the OS for a free port (tests).
    pub addr: SocketAddr,
    /// `HOST[:PORT]` to put in Via sent-by and Record-Route instead of the bound address.
    pub advertise: Option<String>,
}

/// Why a listener specification was rejected. Each variant names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListenSpecError {
    /// No `transport:` prefix.
    #[error("listener `{spec}`: expected TRANSPORT:ADDR:PORT, e.g. udp:0.0.0.0:5060")]
    MissingTransport {
        /// The whole specification.
        spec: String,
    },
    /// The prefix is not one of udp, tcp, tls, ws, wss.
    #[error(
        "listener `{spec}`: unknown transport `{transport}` (expected udp, tcp, tls, ws or wss)"
    )]
    UnknownTransport {
        /// The whole specification.
        spec: String,
        /// The prefix found.
        transport: String,
    },
    /// The address is not an IP literal (host names cannot be bound).
    #[error("listener `{spec}`: `{addr}` is not an IP address (IPv6 goes in brackets: [::1])")]
    BadAddress {
        /// The whole specification.
        spec: String,
        /// The address part.
        addr: String,
    },
    /// The port is not a number in 0..=65535.
    #[error("listener `{spec}`: bad port `{port}`")]
    BadPort {
        /// The whole specification.
        spec: String,
        /// The port text.
        port: String,
    },
    /// WebSocket listeners have no SIP default port.
    #[error("listener `{spec}`: a {transport} listener needs an explicit port")]
    MissingPort {
        /// The whole specification.
        spec: String,
        /// The transport.
        transport: TransportKind,
    },
    /// A `;param` other than `advertise=`.
    #[error("listener `{spec}`: unknown parameter `{param}` (only advertise=HOST[:PORT])")]
    UnknownParam {
        /// The whole specification.
        spec: String,
        /// The parameter found.
        param: String,
    },
}

impl FromStr for ListenSpec {
    type Err = ListenSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let s = spec.trim();
        let (head, params) = match s.split_once(';') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let Some((scheme, rest)) = head.split_once(':') else {
            return Err(ListenSpecError::MissingTransport { spec: spec.into() });
        };
        let transport = TransportKind::ALL
            .into_iter()
            .find(|t| t.spec_name().eq_ignore_ascii_case(scheme))
            .ok_or_else(|| ListenSpecError::UnknownTransport {
                spec: spec.into(),
                transport: scheme.into(),
            })?;
        let bad_addr = |a: &str| ListenSpecError::BadAddress {
            spec: spec.into(),
            addr: a.into(),
        };
        let (ip_text, port_text) = if let Some(v6) = rest.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(|| bad_addr(rest))?;
            match after {
                "" => (ip, None),
                p => (ip, Some(p.strip_prefix(':').ok_or_else(|| bad_addr(rest))?)),
            }
        } else if rest.matches(':').count() > 1 {
            return Err(bad_addr(rest));
        } else {
            match rest.split_once(':') {
                Some((ip, port)) => (ip, Some(port)),
                None => (rest, None),
            }
        };
        let ip: IpAddr = ip_text.parse().map_err(|_| bad_addr(ip_text))?;
        if rest.starts_with('[') != ip.is_ipv6() {
            return Err(bad_addr(rest));
        }
        let port = match port_text {
            Some(p) => p.parse::<u16>().map_err(|_| ListenSpecError::BadPort {
                spec: spec.into(),
                port: p.into(),
            })?,
            None if transport.is_websocket() => {
                return Err(ListenSpecError::MissingPort {
                    spec: spec.into(),
                    transport,
                });
            }
            None => transport.default_port(),
        };
        let mut advertise = None;
        if let Some(params) = params {
            for p in params.split(';') {
                match p.split_once('=') {
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("advertise") && !v.is_empty() => {
                        advertise = Some(v.trim().to_owned())
                    }
                    _ => {
                        return Err(ListenSpecError::UnknownParam {
                            spec: spec.into(),
                            param: p.into(),
                        });
                    }
                }
            }
        }
        Ok(ListenSpec {
            transport,
            addr: SocketAddr::new(ip, port),
            advertise,
        })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.spec_name(), self.addr)?;
        if let Some(a) = &self.advertise {
            write!(f, ";advertise={a}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ListenSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<&str, &str>) {
        match (input.parse::<ListenSpec>(), expected) {
            (Ok(spec), Ok(want)) => assert_eq!(spec.to_string(), want, "{input}"),
            (Err(e), Err(want)) => assert!(
                e.to_string().contains(want),
                "{input}: error `{e}` lacks `{want}`"
            ),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn listen_specs() {
        check("udp:0.0.0.0:5060", Ok("udp:0.0.0.0:5060"));
        check("UDP:127.0.0.1", Ok("udp:127.0.0.1:5060"));
        check("tls:127.0.0.1", Ok("tls:127.0.0.1:5061"));
        check("udp:[::1]:5060", Ok("udp:[::1]:5060"));
        check("tcp:[::]", Ok("tcp:[::]:5060"));
        check("ws:127.0.0.1:8080", Ok("ws:127.0.0.1:8080"));
        check(
            "wss:[::1]:8443;advertise=sip.example.com:443",
            Ok("wss:[::1]:8443;advertise=sip.example.com:443"),
        );
        check("udp:127.0.0.1:0", Ok("udp:127.0.0.1:0"));
        check("127.0.0.1:5060", Err("unknown transport `127.0.0.1`"));
        check("5060", Err("expected TRANSPORT:ADDR:PORT"));
        check("sctp:127.0.0.1:5060", Err("unknown transport `sctp`"));
        check("udp:::1:5060", Err("IPv6 goes in brackets"));
        check("udp:[127.0.0.1]:5060", Err("not an IP address"));
        check(
            "udp:example.com:5060",
            Err("`example.com` is not an IP address"),
        );
        check("udp:[::1:5060", Err("not an IP address"));
        check("udp:[::1]5060", Err("not an IP address"));
        check("udp:127.0.0.1:70000", Err("bad port `70000`"));
        check("udp:127.0.0.1:", Err("bad port ``"));
        check("ws:127.0.0.1", Err("needs an explicit port"));
        check(
            "udp:127.0.0.1:5060;foo=bar",
            Err("unknown parameter `foo=bar`"),
        );
        check(
            "udp:127.0.0.1:5060;advertise=",
            Err("unknown parameter `advertise=`"),
        );
    }

    #[test]
    fn via_names() {
        for t in TransportKind::ALL {
            assert_eq!(TransportKind::from_via_name(t.via_name()), Some(t));
            assert_eq!(
                TransportKind::from_via_name(&t.via_name().to_lowercase()),
                Some(t)
            );
        }
        assert_eq!(TransportKind::from_via_name("SCTP"), None);
        assert!(!TransportKind::Udp.is_reliable());
        assert!(TransportKind::Ws.is_reliable() && TransportKind::Ws.is_websocket());
        assert!(TransportKind::Wss.is_secure() && !TransportKind::Tcp.is_secure());
    }
}
