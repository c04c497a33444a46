//! Trusted peers: the RFC 3325 trust domain (gateways, MCUs, other front ends of the pool).

use std::fmt;
use std::net::IpAddr;

use confab_core::chain::Source;

/// One configured trusted peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedPeer {
    /// An IP network (a single address is a /32 or /128).
    Net {
        /// The network address (host bits cleared).
        addr: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
    /// A name in a verified TLS client certificate (RFC 5922 identity), compared
    /// case-insensitively.
    CertName(String),
}

/// Why a trusted-peer entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustedPeerError {
    /// Neither an address, a network nor `cert:NAME`.
    #[error("`{0}` is not an IP address, a network like 10.0.0.0/8, or cert:NAME")]
    Syntax(String),
    /// The prefix length is larger than the address.
    #[error("`{entry}`: prefix /{prefix} is longer than the address ({max} bits)")]
    Prefix {
        /// The entry.
        entry: String,
        /// The prefix given.
        prefix: u8,
        /// The address length in bits.
        max: u8,
    },
}

impl TrustedPeer {
    /// Parses `192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32` or `cert:gw.example.com`.
    ///
    /// # Errors
    /// [`TrustedPeerError`] naming the entry.
    pub fn parse(s: &str) -> Result<TrustedPeer, TrustedPeerError> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix("cert:") {
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(TrustedPeerError::Syntax(s.to_owned()));
            }
            return Ok(TrustedPeer::CertName(name.to_ascii_lowercase()));
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| TrustedPeerError::Syntax(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| TrustedPeerError::Syntax(s.to_owned()))?,
        };
        if prefix > max {
            return Err(TrustedPeerError::Prefix {
                entry: s.to_owned(),
                prefix,
                max,
            });
        }
        Ok(TrustedPeer::Net {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether a peer at `ip` with these certificate names matches this entry.
    pub fn matches(&self, ip: IpAddr, cert_names: Option<&[String]>) -> bool {
        match self {
            TrustedPeer::Net { addr, prefix } => {
                let ip = canonical(ip);
                ip.is_ipv4() == addr.is_ipv4() && mask(ip, *prefix) == *addr
            }
            TrustedPeer::CertName(name) => cert_names
                .unwrap_or(&[])
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name)),
        }
    }
}

impl fmt::Display for TrustedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedPeer::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
            TrustedPeer::CertName(n) => write!(f, "cert:{n}"),
        }
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket) compares as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// The set of trusted peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedPeers {
    peers: Vec<TrustedPeer>,
}

impl TrustedPeers {
    /// From parsed entries.
    pub fn new(peers: Vec<TrustedPeer>) -> TrustedPeers {
        TrustedPeers { peers }
    }

    /// Whether `ip` (with these verified certificate names) is trusted.
    pub fn is_trusted(&self, ip: IpAddr, cert_names: Option<&[String]>) -> bool {
        self.peers.iter().any(|p| p.matches(ip, cert_names))
    }

    /// Whether the sender of a request is trusted.
    pub fn is_trusted_source(&self, source: &Source) -> bool {
        self.is_trusted(source.hop.remote.ip(), source.tls_names.as_deref())
    }

    /// No peer is trusted.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(entry: &str, ip: &str, names: &[&str], want: bool) {
        let p = TrustedPeer::parse(entry).unwrap();
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            p.matches(ip.parse().unwrap(), Some(&names)),
            want,
            "{entry} vs {ip} {names:?}"
        );
    }

    #[test]
    fn matching() {
        check("192.0.2.7", "192.0.2.7", &[], true);
        check("192.0.2.7", "192.0.2.8", &[], false);
        check("10.0.0.0/8", "10.200.1.1", &[], true);
        check("10.1.2.3/8", "10.200.1.1", &[], true);
        check("10.0.0.0/8", "11.0.0.1", &[], false);
        check("0.0.0.0/0", "203.0.113.1", &[], true);
        check("0.0.0.0/0", "2001:db8::1", &[], false);
        check("2001:db8::/32", "2001:db8:1::5", &[], true);
        check("2001:db8::/32", "2001:db9::5", &[], false);
        check("192.0.2.0/24", "::ffff:192.0.2.9", &[], true);
        check(
            "cert:gw.example.com",
            "203.0.113.1",
            &["GW.example.com"],
            true,
        );
        check(
            "cert:gw.example.com",
            "203.0.113.1",
            &["other.example.com"],
            false,
        );
        check("cert:gw.example.com", "203.0.113.1", &[], false);
    }

    #[test]
    fn parse_errors() {
        for bad in ["", "gw.example.com", "10.0.0.0/x", "cert:", "10.0.0.1/8/8"] {
            assert!(
                matches!(TrustedPeer::parse(bad), Err(TrustedPeerError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            TrustedPeer::parse("10.0.0.0/33"),
            Err(TrustedPeerError::Prefix {
                entry: "10.0.0.0/33".into(),
                prefix: 33,
                max: 32
            })
        );
        assert_eq!(
            TrustedPeer::parse("10.9.8.7/16").unwrap().to_string(),
            "10.9.0.0/16"
        );
    }
}
