//! Which peer addresses a relay may talk to ("secure by default", RFC 8656 §21.3 and
//! coturn's `denied-peer-ip`), and a CIDR type to configure it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {text:?}: {why}")]
pub struct IpNetError {
    /// The input.
    pub text: String,
    /// What is wrong.
    pub why: &'static str,
}

impl IpNet {
    /// Builds a network; host bits are cleared. `None` if the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then(|| IpNet {
            addr: mask(addr, prefix),
            prefix,
        })
    }
    /// True if `ip` is inside. IPv4-mapped IPv6 addresses are matched as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| IpNetError {
            text: s.to_owned(),
            why,
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| err("not an IP address"))?;
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| err("prefix is not a number"))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        IpNet::new(addr, prefix).ok_or_else(|| err("prefix too long for the address family"))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a peer address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 0.0.0.0, ::, 0.0.0.0/8.
    Unspecified,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 224.0.0.0/4, 255.255.255.255, ff00::/8.
    Multicast,
    /// RFC 1918, 100.64.0.0/10 (CGN), fc00::/7, fec0::/10, and the IETF special-purpose
    /// blocks (192.0.0.0/24, 198.18.0.0/15, 240.0.0.0/4 ...), unless in `internal_networks`.
    Private,
    /// One of the edge's own addresses.
    OwnAddress,
    /// Listed in `denied_networks`.
    Configured,
}

/// The peer address filter. Default: only public unicast addresses are allowed.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// Private/special ranges that are nevertheless allowed (the enterprise's own networks).
    pub internal_networks: Vec<IpNet>,
    /// Extra networks always refused.
    pub denied_networks: Vec<IpNet>,
    /// The edge's own addresses (listeners and relays); refused even if internal.
    pub own_addresses: Vec<IpAddr>,
    /// Allow 127.0.0.0/8 and ::1 (tests only; never in production).
    pub allow_loopback: bool,
}

const SPECIAL_V4: &[(u32, u8)] = &[
    (0x0A00_0000, 8),  // 10/8
    (0xAC10_0000, 12), // 172.16/12
    (0xC0A8_0000, 16), // 192.168/16
    (0x6440_0000, 10), // 100.64/10
    (0xC000_0000, 24), // 192.0.0/24
    (0xC000_0200, 24), // 192.0.2/24 TEST-NET-1
    (0xC633_6400, 24), // 198.51.100/24 TEST-NET-2
    (0xCB00_7100, 24), // 203.0.113/24 TEST-NET-3
    (0xC612_0000, 15), // 198.18/15 benchmarking
    (0xF000_0000, 4),  // 240/4 reserved
];

impl PeerPolicy {
    /// Checks a peer IP; `Ok(())` if relaying to it is allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        let ip = canonical(ip);
        if self.own_addresses.iter().any(|o| canonical(*o) == ip) {
            return Err(Denied::OwnAddress);
        }
        if self.denied_networks.iter().any(|n| n.contains(ip)) {
            return Err(Denied::Configured);
        }
        let private = match ip {
            IpAddr::V4(a) => {
                let v = u32::from(a);
                if a.is_loopback() {
                    return if self.allow_loopback {
                        Ok(())
                    } else {
                        Err(Denied::Loopback)
                    };
                }
                if a.is_unspecified() || v >> 24 == 0 {
                    return Err(Denied::Unspecified);
                }
                if a.is_link_local() {
                    return Err(Denied::LinkLocal);
                }
                if a.is_multicast() || a.is_broadcast() {
                    return Err(Denied::Multicast);
                }
                SPECIAL_V4
                    .iter()
                    .any(|&(net, p)| v & (u32::MAX << (32 - u32::from(p))) == net)
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                if a.is_loopback() {
                    return if self.allow_loopback {
                        Ok(())
                    } else {
                        Err(Denied::Loopback)
                    };
                }
                if a.is_unspecified() {
                    return Err(Denied::Unspecified);
                }
                if v >> 118 == 0x3FA {
                    return Err(Denied::LinkLocal); // fe80::/10
                }
                if a.is_multicast() {
                    return Err(Denied::Multicast);
                }
                v >> 121 == 0x7E // fc00::/7
                    || v >> 118 == 0x3FB // fec0::/10
                    || v >> 96 == 0x2001_0db8 // documentation
                    || v >> 96 == 0 // ::/32: IPv4-compatible and other reserved
                    || v >> 32 == 0x0064_ff9b_u128 << 64 // NAT64 64:ff9b::/96 (would reach v4 inside)
            }
        };
        if private && !self.internal_networks.iter().any(|n| n.contains(ip)) {
            return Err(Denied::Private);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(policy: &PeerPolicy, ip: &str, expected: Result<(), Denied>) {
        assert_eq!(policy.check(ip.parse().unwrap()), expected, "{ip}");
    }

    #[test]
    fn default_policy_allows_only_public_unicast() {
        let p = PeerPolicy::default();
        check(&p, "8.8.8.8", Ok(()));
        check(&p, "2a00:1450::1", Ok(()));
        check(&p, "127.0.0.1", Err(Denied::Loopback));
        check(&p, "::1", Err(Denied::Loopback));
        check(&p, "::ffff:127.0.0.1", Err(Denied::Loopback));
        check(&p, "0.0.0.0", Err(Denied::Unspecified));
        check(&p, "0.1.2.3", Err(Denied::Unspecified));
        check(&p, "::", Err(Denied::Unspecified));
        check(&p, "169.254.1.1", Err(Denied::LinkLocal));
        check(&p, "fe80::1", Err(Denied::LinkLocal));
        check(&p, "224.0.0.1", Err(Denied::Multicast));
        check(&p, "255.255.255.255", Err(Denied::Multicast));
        check(&p, "ff02::1", Err(Denied::Multicast));
        check(&p, "10.1.2.3", Err(Denied::Private));
        check(&p, "172.31.255.255", Err(Denied::Private));
        check(&p, "172.32.0.1", Ok(()));
        check(&p, "192.168.0.1", Err(Denied::Private));
        check(&p, "100.64.0.1", Err(Denied::Private));
        check(&p, "fd12::1", Err(Denied::Private));
        check(&p, "::ffff:10.0.0.1", Err(Denied::Private));
        check(&p, "64:ff9b::a00:1", Err(Denied::Private));
    }

    #[test]
    fn internal_own_denied_and_loopback_options() {
        let p = PeerPolicy {
            internal_networks: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
            denied_networks: vec!["8.8.4.0/24".parse().unwrap()],
            own_addresses: vec!["10.0.0.5".parse().unwrap()],
            allow_loopback: true,
        };
        check(&p, "10.9.9.9", Ok(()));
        check(&p, "fd00::9", Ok(()));
        check(&p, "10.0.0.5", Err(Denied::OwnAddress));
        check(&p, "8.8.4.4", Err(Denied::Configured));
        check(&p, "192.168.1.1", Err(Denied::Private));
        check(&p, "127.0.0.1", Ok(()));
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            "10.1.2.3/8".parse::<IpNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "1.2.3.4".parse::<IpNet>().unwrap().to_string(),
            "1.2.3.4/32"
        );
        assert_eq!("::/0".parse::<IpNet>().unwrap().to_string(), "::/0");
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("banana/8".parse::<IpNet>().is_err());
        assert!("10.0.0.0/x".parse::<IpNet>().is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
    }
}
