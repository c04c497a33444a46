//! Routing helpers: signed flow tokens in Record-Route (RFC 5626 §5.3), Route
//! pre-processing (RFC 3261 §16.4), Record-Route values (§16.6 step 4, RFC 5658 double
//! Record-Route) and the next hop of a request (§16.6 steps 6-7, RFC 3263 §4 without DNS).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_core::SipTransport;
use confab_core::chain::{FlowId, Hop, Target};
use confab_sip::headers::NameAddr;
use confab_sip::{HeaderName, Message, SipUri, Uri};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::local::LocalNode;

/// Bytes of HMAC-SHA256 kept per token (80 bits, as in RFC 5626 §5.2's example).
const TAG_LEN: usize = 10;

/// Signs flow identifiers into text for the user part of our Record-Route URIs, so an
/// in-dialog request comes back out over the right flow, and so a client cannot forge a
/// token that sends our traffic to an address of its choosing.
#[derive(Clone)]
pub struct FlowSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for FlowSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowSigner(<redacted>)")
    }
}

impl FlowSigner {
    /// A signer keyed with `key` (any length; use 32 random bytes).
    pub fn new(key: &[u8]) -> FlowSigner {
        FlowSigner {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(body);
        m.finalize().into_bytes().into()
    }

    /// The signed text of `flow` (base64url, no `.`).
    pub fn encode(&self, flow: FlowId) -> String {
        let mut b = Vec::with_capacity(21 + TAG_LEN);
        match flow {
            FlowId::Connection { id } => {
                b.push(b'c');
                b.extend_from_slice(&id.to_be_bytes());
            }
            FlowId::Datagram { listener, remote } => {
                match remote.ip() {
                    IpAddr::V4(ip) => {
                        b.push(b'4');
                        b.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        b.push(b'6');
                        b.extend_from_slice(&ip.octets());
                    }
                }
                b.extend_from_slice(&remote.port().to_be_bytes());
                b.extend_from_slice(&listener.to_be_bytes());
            }
        }
        let tag = self.tag(&b);
        b.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// Checks and decodes a token; `None` when it is not ours (bad tag, bad layout).
    pub fn decode(&self, text: &str) -> Option<FlowId> {
        let b = URL_SAFE_NO_PAD.decode(text).ok()?;
        if b.len() <= TAG_LEN {
            return None;
        }
        let (body, tag) = b.split_at(b.len() - TAG_LEN);
        let want = self.tag(body);
        // Constant-time compare of the truncated tag.
        if want[..TAG_LEN]
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
        {
            return None;
        }
        let port_listener = |rest: &[u8]| {
            (
                u16::from_be_bytes([rest[0], rest[1]]),
                u16::from_be_bytes([rest[2], rest[3]]),
            )
        };
        match (body.first(), body.len()) {
            (Some(b'c'), 9) => {
                let mut id = [0u8; 8];
                id.copy_from_slice(&body[1..9]);
                Some(FlowId::Connection {
                    id: u64::from_be_bytes(id),
                })
            }
            (Some(b'4'), 9) => {
                let ip = Ipv4Addr::new(body[1], body[2], body[3], body[4]);
                let (port, listener) = port_listener(&body[5..9]);
                Some(FlowId::Datagram {
                    listener,
                    remote: SocketAddr::new(ip.into(), port),
                })
            }
            (Some(b'6'), 21) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&body[1..17]);
                let (port, listener) = port_listener(&body[17..21]);
                Some(FlowId::Datagram {
                    listener,
                    remote: SocketAddr::new(Ipv6Addr::from(o).into(), port),
                })
            }
            _ => None,
        }
    }

    /// Decodes the `.`-separated tokens of a URI user part; `None` if any is not ours.
    pub fn decode_user(&self, user: &str) -> Option<Vec<FlowId>> {
        user.split('.').map(|t| self.decode(t)).collect()
    }
}

/// A flow remembered in a Record-Route, with the transport it uses (so a hop can be built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedFlow {
    /// The flow.
    pub flow: FlowId,
    /// Its transport.
    pub transport: SipTransport,
}

/// What [`preprocess_routes`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteInfo {
    /// Route entries naming us were removed (or the strict-route fix-up applied).
    pub own_route: bool,
    /// A Route header remains.
    pub remaining: bool,
    /// Flows named by the removed entries, in order.
    pub flows: Vec<RoutedFlow>,
}

fn unbracket(value: &str) -> &str {
    let v = value.trim();
    match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    }
}

/// Parses one Record-Route/Route value of ours: `None` if it does not name this node.
fn own_entry(
    value: &NameAddr<'_>,
    local: &LocalNode,
    signer: &FlowSigner,
) -> Option<Vec<RoutedFlow>> {
    let Uri::Sip(u) = value.uri else {
        return None;
    };
    own_uri(&u, local, signer)
}

fn own_uri(u: &SipUri<'_>, local: &LocalNode, signer: &FlowSigner) -> Option<Vec<RoutedFlow>> {
    if !local.is_us(u) {
        return None;
    }
    let transport = u
        .transport()
        .and_then(|t| t.parse::<SipTransport>().ok())
        .unwrap_or(if u.secure {
            SipTransport::Tls
        } else {
            SipTransport::Udp
        });
    match u.user {
        None => Some(Vec::new()),
        Some(user) => signer.decode_user(user).map(|flows| {
            flows
                .into_iter()
                .map(|flow| RoutedFlow { flow, transport })
                .collect()
        }),
    }
}

/// RFC 3261 §16.4: the strict-route fix-up (a Request-URI that is a Record-Route value of
/// ours means the previous hop is a strict router: the last Route value becomes the
/// Request-URI) and removal of the top Route entries that name us. Flow tokens in removed
/// entries are returned.
pub fn preprocess_routes(req: &mut Message, local: &LocalNode, signer: &FlowSigner) -> RouteInfo {
    let mut info = RouteInfo::default();
    // Strict-route fix-up: our Record-Route URI (it carries `lr` or flow tokens) as the
    // Request-URI, with a Route header present.
    let fixup = if req.contains(HeaderName::Route) {
        req.request_uri()
            .and_then(Result::ok)
            .and_then(|u| match u {
                Uri::Sip(s) if s.lr() || s.user.is_some() => own_uri(&s, local, signer),
                _ => None,
            })
    } else {
        None
    };
    if let Some(flows) = fixup {
        info.own_route = true;
        info.flows.extend(flows);
        let values: Vec<String> = req
            .get_all(HeaderName::Route)
            .filter_map(|f| f.value_str().map(str::to_owned))
            .collect();
        let mut all: Vec<String> = Vec::new();
        for v in &values {
            all.extend(split_list(v).map(str::to_owned));
        }
        if let Some(last) = all.pop() {
            let uri = unbracket(&last).to_owned();
            req.remove_header(HeaderName::Route);
            for v in &all {
                let _ = req.push_header(HeaderName::Route, v);
            }
            let _ = req.set_request_uri(&uri);
        }
    }
    loop {
        let own = match req.routes().next() {
            Some(Ok(na)) => own_entry(&na, local, signer),
            _ => None,
        };
        match own {
            Some(flows) => {
                info.own_route = true;
                info.flows.extend(flows);
                req.remove_first_route();
            }
            None => break,
        }
    }
    info.remaining = req.contains(HeaderName::Route);
    info
}

/// Splits a header value list at top-level commas (outside quotes and `<>`).
fn split_list(v: &str) -> impl Iterator<Item = &str> {
    let bytes = v.as_bytes();
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => depth += 1,
            b'>' if !quoted => depth -= 1,
            b',' if !quoted && depth <= 0 => {
                parts.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(v[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty())
}

/// A Record-Route value: `<sip:TOKENS@host:port;transport=t;lr>` (`;r2=on` when doubled).
pub fn record_route_value(
    sent_by: &str,
    transport: SipTransport,
    flows: &[FlowId],
    signer: &FlowSigner,
    double: bool,
) -> String {
    let mut v = String::with_capacity(96);
    v.push_str("<sip:");
    for (i, f) in flows.iter().enumerate() {
        if i > 0 {
            v.push('.');
        }
        v.push_str(&signer.encode(*f));
    }
    if !flows.is_empty() {
        v.push('@');
    }
    v.push_str(sent_by);
    if transport != SipTransport::Udp {
        v.push_str(";transport=");
        v.push_str(transport.as_str());
    }
    v.push_str(";lr");
    if double {
        v.push_str(";r2=on");
    }
    v.push('>');
    v
}

/// Where a request goes next, before DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// A resolved hop.
    Hop(Hop),
    /// The host is a name: resolve it (RFC 3263) and send over `transport` to `port`.
    Resolve {
        /// Transport.
        transport: SipTransport,
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
    /// The URI cannot be a next hop (not SIP, malformed).
    Invalid(&'static str),
}

/// The next hop of `target` for `request` (RFC 3261 §16.6 step 7, RFC 3263 §4 minus DNS):
/// the target's known hop; else the first Route entry (the target's Path first, then the
/// request's Route header); else the target URI. Transport: the `transport` parameter,
/// TLS for `sips:`, else UDP; port: the URI's or the transport's default; `maddr` wins
/// over the host.
pub fn next_hop(request: &Message, target: &Target) -> NextHop {
    if let Some(h) = &target.hop {
        return NextHop::Hop(h.clone());
    }
    let route_first: Option<String> = match target.route.first() {
        Some(r) => Some(unbracket(r).to_owned()),
        None => request
            .routes()
            .next()
            .and_then(Result::ok)
            .map(|na| na.uri_str.to_owned()),
    };
    let text = route_first.as_deref().unwrap_or(&target.uri);
    uri_hop(text)
}

/// The hop a SIP URI designates (see [`next_hop`]).
pub fn uri_hop(text: &str) -> NextHop {
    let Ok(Uri::Sip(u)) = Uri::parse(unbracket(text)) else {
        return NextHop::Invalid("next hop is not a SIP URI");
    };
    let transport = match u.transport() {
        Some(t) => match t.parse::<SipTransport>() {
            Ok(t) => t,
            Err(_) => return NextHop::Invalid("unsupported transport parameter"),
        },
        None if u.secure => SipTransport::Tls,
        None => SipTransport::Udp,
    };
    let port = u.port.unwrap_or(transport.default_port());
    if let Some(m) = u.maddr() {
        return match m.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
            Ok(ip) => NextHop::Hop(Hop::to_addr(transport, SocketAddr::new(ip, port))),
            Err(_) => NextHop::Resolve {
                transport,
                host: m.to_owned(),
                port,
            },
        };
    }
    match u.host.ip() {
        Some(ip) => NextHop::Hop(Hop::to_addr(transport, SocketAddr::new(ip, port))),
        None => NextHop::Resolve {
            transport,
            host: u.host.to_string(),
            port,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::Listener;
    use confab_sip::Limits;

    fn signer() -> FlowSigner {
        FlowSigner::new(b"0123456789abcdef0123456789abcdef")
    }

    fn node() -> LocalNode {
        LocalNode::new(
            &["example.com".into()],
            vec![
                Listener {
                    transport: SipTransport::Udp,
                    local: "192.0.2.1:5060".parse().unwrap(),
                    sent_by: "192.0.2.1:5060".into(),
                },
                Listener {
                    transport: SipTransport::Tcp,
                    local: "192.0.2.1:5060".parse().unwrap(),
                    sent_by: "192.0.2.1:5060".into(),
                },
            ],
        )
    }

    fn req(ruri: &str, routes: &[&str]) -> Message {
        let mut t = format!(
            "BYE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\n\
             CSeq: 2 BYE\r\n"
        );
        for r in routes {
            t.push_str("Route: ");
            t.push_str(r);
            t.push_str("\r\n");
        }
        t.push_str("Content-Length: 0\r\n\r\n");
        confab_sip::parse_datagram(t.into(), &Limits::DEFAULT).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_reject_forgery() {
        let s = signer();
        for f in [
            FlowId::Connection { id: 42 },
            FlowId::Datagram {
                listener: 3,
                remote: "203.0.113.5:40000".parse().unwrap(),
            },
            FlowId::Datagram {
                listener: 1,
                remote: "[2001:db8::7]:5062".parse().unwrap(),
            },
        ] {
            let t = s.encode(f);
            assert!(!t.contains('.') && !t.contains('='));
            assert_eq!(s.decode(&t), Some(f));
            assert_eq!(FlowSigner::new(b"another key").decode(&t), None);
            let mut forged = t.into_bytes();
            forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
            assert_eq!(s.decode(&String::from_utf8(forged).unwrap()), None);
        }
        assert_eq!(s.decode("alice"), None);
    }

    #[test]
    fn loose_routes_of_ours_are_removed_with_their_flows() {
        let s = signer();
        let n = node();
        let caller = FlowId::Datagram {
            listener: 0,
            remote: "198.51.100.1:5060".parse().unwrap(),
        };
        let callee = FlowId::Connection { id: 9 };
        let rr_in = record_route_value("192.0.2.1:5060", SipTransport::Udp, &[caller], &s, true);
        let rr_out = record_route_value("192.0.2.1:5060", SipTransport::Tcp, &[callee], &s, true);
        assert!(rr_out.ends_with(";transport=tcp;lr;r2=on>"), "{rr_out}");
        let mut m = req(
            "sip:b@203.0.113.9",
            &[&rr_in, &rr_out, "<sip:next.example.net;lr>"],
        );
        let info = preprocess_routes(&mut m, &n, &s);
        assert!(info.own_route && info.remaining);
        assert_eq!(
            info.flows,
            [
                RoutedFlow {
                    flow: caller,
                    transport: SipTransport::Udp
                },
                RoutedFlow {
                    flow: callee,
                    transport: SipTransport::Tcp
                }
            ]
        );
        assert_eq!(
            m.routes().next().unwrap().unwrap().uri_str,
            "sip:next.example.net;lr"
        );
        // A foreign first Route is left alone.
        let mut m = req("sip:b@203.0.113.9", &["<sip:other.example.net;lr>", &rr_in]);
        let info = preprocess_routes(&mut m, &n, &s);
        assert!(!info.own_route && info.remaining && info.flows.is_empty());
        // Our domain in a pre-loaded route (Service-Route style) is ours too.
        let mut m = req("sip:b@example.com", &["<sip:example.com;lr>"]);
        let info = preprocess_routes(&mut m, &n, &s);
        assert!(info.own_route && !info.remaining);
        // A forged token is not ours: the entry stays.
        let mut m = req(
            "sip:b@example.com",
            &["<sip:AAAAAAAAAAAAAAAAAAAAAAAAAA@192.0.2.1;lr>"],
        );
        let info = preprocess_routes(&mut m, &n, &s);
        assert!(!info.own_route && info.remaining);
    }

    #[test]
    fn strict_route_fixup() {
        let s = signer();
        let n = node();
        let rr = record_route_value("192.0.2.1:5060", SipTransport::Udp, &[], &s, false);
        let ruri = unbracket(&rr).to_owned();
        // A strict router put our RR URI in the Request-URI and the remote target last.
        let mut m = req(
            &ruri,
            &["<sip:hop.example.net>", "<sip:b@203.0.113.9:5070>"],
        );
        let info = preprocess_routes(&mut m, &n, &s);
        assert!(info.own_route && info.remaining);
        assert_eq!(m.request_uri_bytes().unwrap(), b"sip:b@203.0.113.9:5070");
        let routes: Vec<String> = m.routes().map(|r| r.unwrap().uri_str.to_owned()).collect();
        assert_eq!(routes, ["sip:hop.example.net"]);
        // Without Route headers the Request-URI is left alone.
        let mut m = req(&ruri, &[]);
        let info = preprocess_routes(&mut m, &n, &s);
        assert!(!info.own_route);
        assert_eq!(m.request_uri_bytes().unwrap(), ruri.as_bytes());
    }

    #[track_caller]
    fn hop(uri: &str, want: NextHop) {
        assert_eq!(uri_hop(uri), want, "{uri}");
    }

    #[test]
    fn next_hops() {
        let a = |t, s: &str| NextHop::Hop(Hop::to_addr(t, s.parse().unwrap()));
        hop(
            "sip:b@203.0.113.9",
            a(SipTransport::Udp, "203.0.113.9:5060"),
        );
        hop(
            "<sip:b@203.0.113.9:5070;transport=TCP>",
            a(SipTransport::Tcp, "203.0.113.9:5070"),
        );
        hop(
            "sips:b@203.0.113.9",
            a(SipTransport::Tls, "203.0.113.9:5061"),
        );
        hop(
            "sip:b@[2001:db8::1]:5080",
            a(SipTransport::Udp, "[2001:db8::1]:5080"),
        );
        hop(
            "sip:b@x.example;maddr=203.0.113.7",
            a(SipTransport::Udp, "203.0.113.7:5060"),
        );
        hop(
            "sip:b@x.example;transport=ws",
            NextHop::Resolve {
                transport: SipTransport::Ws,
                host: "x.example".into(),
                port: 80,
            },
        );
        hop("tel:+1555", NextHop::Invalid("next hop is not a SIP URI"));
        hop(
            "sip:b@x.example;transport=sctp",
            NextHop::Invalid("unsupported transport parameter"),
        );
        // Route first, then the target URI; a known hop wins.
        let m = req("sip:b@203.0.113.9", &["<sip:198.51.100.4;lr>"]);
        let mut t = Target::new("sip:b@203.0.113.9");
        assert_eq!(next_hop(&m, &t), a(SipTransport::Udp, "198.51.100.4:5060"));
        t.route = vec!["<sip:198.51.100.5:5070;lr;transport=tcp>".into()];
        assert_eq!(next_hop(&m, &t), a(SipTransport::Tcp, "198.51.100.5:5070"));
        let h = Hop::to_addr(SipTransport::Ws, "198.51.100.6:80".parse().unwrap());
        t.hop = Some(h.clone());
        assert_eq!(next_hop(&m, &t), NextHop::Hop(h));
    }

    #[test]
    fn list_splitting() {
        let v: Vec<&str> = split_list(r#"<sip:a;lr>, "x,y" <sip:b>,<sip:c>"#).collect();
        assert_eq!(v, ["<sip:a;lr>", r#""x,y" <sip:b>"#, "<sip:c>"]);
    }
}
