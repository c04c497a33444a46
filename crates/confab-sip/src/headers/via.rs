//! Via (RFC 3261 §20.42, §18.2.1; RFC 3581 rport; RFC 5118 §4.5 received with or without
//! brackets).

use std::net::IpAddr;

use crate::error::HeaderErrorKind;
use crate::scan::Cur;
use crate::uri::{Host, Params, parse_host, parse_ipv6, scan_header_params};

/// One Via value: `SIP/2.0/UDP host:port;branch=...;received=...;rport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name, `SIP`.
    pub protocol: &'a str,
    /// Protocol version, `2.0`.
    pub version: &'a str,
    /// Transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`, or an unknown token).
    pub transport: &'a str,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port.
    pub port: Option<u16>,
    /// All via-params as written.
    pub params: Params<'a>,
    /// `branch`.
    pub branch: Option<&'a str>,
    /// `received` (RFC 5118 §4.5: accepted with or without `[ ]` around IPv6).
    pub received: Option<IpAddr>,
    /// `rport` (RFC 3581): `Some(None)` when present without value.
    pub rport: Option<Option<u16>>,
    /// `maddr`.
    pub maddr: Option<Host<'a>>,
    /// `ttl` (0..=255).
    pub ttl: Option<u8>,
}

impl<'a> Via<'a> {
    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7).
    #[must_use]
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    /// Parse one Via value (one comma-separated element).
    ///
    /// # Errors
    /// A [`HeaderErrorKind`] saying what is wrong.
    pub fn parse(s: &'a str) -> Result<Via<'a>, HeaderErrorKind> {
        let mut c = Cur::new(s);
        c.skip_lws();
        let protocol = c
            .token()
            .ok_or(HeaderErrorKind::Syntax("missing protocol name"))?;
        if !c.sep(b'/') {
            return Err(HeaderErrorKind::Syntax("expected / after protocol name"));
        }
        let version = c
            .token()
            .ok_or(HeaderErrorKind::Syntax("missing protocol version"))?;
        if !c.sep(b'/') {
            return Err(HeaderErrorKind::Syntax("expected / after protocol version"));
        }
        let transport = c
            .token()
            .ok_or(HeaderErrorKind::Syntax("missing transport"))?;
        if !c.skip_lws() {
            return Err(HeaderErrorKind::Syntax(
                "expected whitespace before sent-by",
            ));
        }
        let hs = c.i;
        if c.peek() == Some(b'[') {
            c.take_while(|b| b != b']');
            if !c.eat(b']') {
                return Err(HeaderErrorKind::Syntax(
                    "unterminated IPv6 reference in sent-by",
                ));
            }
        } else {
            c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        }
        let host = parse_host(&s[hs..c.i]).map_err(HeaderErrorKind::Syntax)?;
        let port = if c.sep(b':') {
            let d = c.take_while(|b| b.is_ascii_digit());
            if d.is_empty() || d.len() > 5 {
                return Err(HeaderErrorKind::Syntax("invalid sent-by port"));
            }
            Some(
                d.parse::<u16>()
                    .map_err(|_| HeaderErrorKind::OutOfRange("sent-by port"))?,
            )
        } else {
            None
        };
        let params = scan_header_params(&mut c).map_err(HeaderErrorKind::Syntax)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(HeaderErrorKind::Syntax("unexpected text after via-params"));
        }
        let mut via = Via {
            protocol,
            version,
            transport,
            host,
            port,
            params,
            branch: None,
            received: None,
            rport: None,
            maddr: None,
            ttl: None,
        };
        for p in params.iter() {
            let n = p.name;
            if n.eq_ignore_ascii_case("branch") {
                match p.value {
                    Some(v) if crate::scan::all_token(v) => via.branch = Some(v),
                    _ => return Err(HeaderErrorKind::Syntax("branch is not a token")),
                }
            } else if n.eq_ignore_ascii_case("received") {
                let v = p
                    .value
                    .ok_or(HeaderErrorKind::Syntax("received without value"))?;
                let inner = v
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .unwrap_or(v);
                via.received =
                    Some(if inner.contains(':') {
                        IpAddr::V6(
                            parse_ipv6(inner)
                                .ok_or(HeaderErrorKind::Syntax("received is not an IP address"))?,
                        )
                    } else {
                        IpAddr::V4(inner.parse().map_err(|_| {
                            HeaderErrorKind::Syntax("received is not an IP address")
                        })?)
                    });
            } else if n.eq_ignore_ascii_case("rport") {
                via.rport = Some(match p.value {
                    None => None,
                    Some(v)
                        if !v.is_empty()
                            && v.len() <= 5
                            && v.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        Some(
                            v.parse()
                                .map_err(|_| HeaderErrorKind::OutOfRange("rport"))?,
                        )
                    }
                    Some(_) => return Err(HeaderErrorKind::Syntax("rport is not a port number")),
                });
            } else if n.eq_ignore_ascii_case("maddr") {
                let v = p
                    .value
                    .ok_or(HeaderErrorKind::Syntax("maddr without value"))?;
                via.maddr = Some(parse_host(v).map_err(HeaderErrorKind::Syntax)?);
            } else if n.eq_ignore_ascii_case("ttl") {
                let v = p
                    .value
                    .ok_or(HeaderErrorKind::Syntax("ttl without value"))?;
                if v.is_empty() || v.len() > 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HeaderErrorKind::Syntax("ttl is not a number"));
                }
                via.ttl = Some(v.parse().map_err(|_| HeaderErrorKind::OutOfRange("ttl"))?);
            }
        }
        Ok(via)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_values() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.host, Host::Ipv4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch, Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());

        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKas3-111;received=[2001:db8::9:255];rport=5062;ttl=16;maddr=[2001:db8::1]").unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.received, Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.rport, Some(Some(5062)));
        assert_eq!(v.ttl, Some(16));
        assert!(v.has_rfc3261_branch());
        let v = Via::parse("SIP/2.0/UDP h;received=2001:db8::9:255;rport").unwrap();
        assert_eq!(v.received, Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.rport, Some(None));
        let v =
            Via::parse("SIP/2.0/TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ")
                .unwrap();
        assert_eq!(v.branch, Some("z9hG4bK9ikj8"));
    }

    #[track_caller]
    fn bad(s: &str) {
        assert!(Via::parse(s).is_err(), "{s:?} should fail");
    }

    #[test]
    fn malformed_vias() {
        bad("SIP/2.0/UDP 192.0.2.15;;");
        bad("SIP/2.0/UDP");
        bad("SIP/2.0 host");
        bad("SIP/2.0/UDP [2001:db8::1");
        bad("SIP/2.0/UDP host:99999");
        bad("SIP/2.0/UDP host;ttl=256");
        bad("SIP/2.0/UDP host;received=example.com");
        bad("SIP/2.0/UDP host;rport=x");
        bad("SIP/2.0/UDP host;branch=\"q\"");
        bad("SIP/2.0/UDP host junk");
    }
}
