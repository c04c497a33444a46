//! The transport's use of the SIP message layer: framing, parsing, the answers to bad
//! input, and the RFC 3261 §18 / RFC 3581 / RFC 5923 rules that need the top Via.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use confab_sip::headers::Via;
use confab_sip::{Disposition, Frame, Host, Limits, Message, ParseError};

use std::sync::Arc;

use crate::listen::TransportKind;
use crate::transport::ListenerInfo;

/// [`confab_sip::Frame`] reduced to what the connection loop needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framed {
    NeedMore,
    KeepAlive { len: usize, pong: bool },
    Message(usize),
    Lost,
}

pub(crate) fn frame(buf: &[u8], limits: &Limits) -> Framed {
    if buf.is_empty() {
        return Framed::NeedMore;
    }
    match confab_sip::frame_stream(buf, limits) {
        Frame::NeedMore => Framed::NeedMore,
        Frame::KeepAlive { len, pong_due } => Framed::KeepAlive {
            len,
            pong: pong_due,
        },
        Frame::Message { len } => Framed::Message(len),
        Frame::Lost(_) => Framed::Lost,
    }
}

pub(crate) fn parse_datagram(b: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    confab_sip::parse_datagram(b, limits)
}

/// The response the message layer allows for bad input, serialized; `None` = drop.
pub(crate) fn error_response(err: &ParseError) -> Option<Bytes> {
    let Disposition::Respond { status, reason } = err.disposition() else {
        return None;
    };
    let head = err.head()?;
    confab_sip::ResponseBuilder::reply_to(head, status)
        .ok()?
        .reason(reason)
        .build()
        .ok()
        .map(|m| m.to_bytes())
}

/// The top Via, parsed.
pub(crate) fn top_via(msg: &Message) -> Option<Via<'_>> {
    msg.top_via()?.ok()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub(crate) fn write_host(out: &mut String, h: &Host<'_>) {
    let _ = match h {
        Host::Domain(d) => write!(out, "{d}"),
        Host::Ipv4(ip) => write!(out, "{ip}"),
        Host::Ipv6(ip) => write!(out, "[{ip}]"),
    };
}

/// RFC 3261 §18.2.1 and RFC 3581 §4 on a received request: add `received` when the
/// sent-by host is a name or differs from the packet source, and fill an empty `rport`
/// with the source port (adding `received` too). A top Via that does not parse is left
/// alone: the message layer already decided whether such a request can be answered.
pub(crate) fn stamp_received(msg: &mut Message, src: SocketAddr) {
    let src_ip = canonical(src.ip());
    let new_value = {
        let Some(via) = top_via(msg) else { return };
        let sent_by_ip = via.host.ip().map(canonical);
        let wants_rport = via.rport == Some(None);
        if sent_by_ip == Some(src_ip) && !wants_rport {
            return;
        }
        let mut v = String::with_capacity(96);
        let _ = write!(v, "{}/{}/{} ", via.protocol, via.version, via.transport);
        write_host(&mut v, &via.host);
        if let Some(p) = via.port {
            let _ = write!(v, ":{p}");
        }
        for p in via.params.iter() {
            if p.name.eq_ignore_ascii_case("received") {
                continue;
            }
            if p.name.eq_ignore_ascii_case("rport") && p.value.is_none() {
                let _ = write!(v, ";rport={}", src.port());
                continue;
            }
            v.push(';');
            v.push_str(p.name);
            if let Some(val) = p.value {
                v.push('=');
                v.push_str(val);
            }
        }
        let _ = write!(v, ";received={src_ip}");
        v
    };
    let _ = msg.replace_top_via(&new_value);
}

/// RFC 5923: when the top Via carries `alias` and its sent-by host is an IP address, the
/// address requests to that client may be sent to over this connection.
pub(crate) fn alias_target(msg: &Message, transport: TransportKind) -> Option<SocketAddr> {
    let via = top_via(msg)?;
    if !via.params.contains("alias") {
        return None;
    }
    let ip = via.host.ip()?;
    Some(SocketAddr::new(
        ip,
        via.port.unwrap_or(transport.default_port()),
    ))
}

/// RFC 3261 §18.1.2: a response whose top Via sent-by is not a value this element inserts
/// is discarded. Ours are the listeners' `advertise` values and bound addresses; a listener
/// bound to a wildcard address without `advertise` could be any local address, so then
/// every IP-literal sent-by passes.
pub(crate) fn response_is_ours(msg: &Message, listeners: &[Arc<ListenerInfo>]) -> bool {
    let Some(via) = top_via(msg) else {
        return false;
    };
    let via_default =
        TransportKind::from_via_name(via.transport).map_or(5060, |t| t.default_port());
    let port = via.port.unwrap_or(via_default);
    let mut host = String::new();
    write_host(&mut host, &via.host);
    listeners.iter().any(|l| match &l.spec.advertise {
        Some(a) => {
            let (ah, ap) = split_host_port(a);
            ah.eq_ignore_ascii_case(&host) && ap.unwrap_or(via_default) == port
        }
        None if l.local.ip().is_unspecified() => via.host.ip().is_some(),
        None => {
            via.host.ip().map(canonical) == Some(canonical(l.local.ip())) && port == l.local.port()
        }
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if s.starts_with('[') {
        return match s.rfind("]:") {
            Some(i) => (&s[..=i], s[i + 2..].parse().ok()),
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(via: &str, request: bool) -> Message {
        let start = if request {
            "OPTIONS sip:x@y SIP/2.0"
        } else {
            "SIP/2.0 200 OK"
        };
        let text = format!(
            "{start}\r\nVia: {via}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        confab_sip::parse_datagram(Bytes::from(text), &Limits::DEFAULT).unwrap()
    }

    fn top(m: &Message) -> String {
        m.get(confab_sip::HeaderName::Via)
            .unwrap()
            .value_str()
            .unwrap()
            .to_owned()
    }

    #[track_caller]
    fn check_stamp(via: &str, src: &str, want: &str) {
        let mut m = msg(via, true);
        stamp_received(&mut m, src.parse().unwrap());
        assert_eq!(top(&m), want);
    }

    #[test]
    fn rfc3261_18_2_1_and_rfc3581_stamping() {
        // same IP, no rport: untouched (byte for byte)
        check_stamp(
            "SIP/2.0/UDP 192.0.2.1:5060 ;branch=z9hG4bK1",
            "192.0.2.1:5060",
            "SIP/2.0/UDP 192.0.2.1:5060 ;branch=z9hG4bK1",
        );
        // different IP: received
        check_stamp(
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1",
            "192.0.2.1:4000",
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=192.0.2.1",
        );
        // a name: received
        check_stamp(
            "SIP/2.0/TCP pc.example;branch=z9hG4bK1",
            "192.0.2.1:4000",
            "SIP/2.0/TCP pc.example;branch=z9hG4bK1;received=192.0.2.1",
        );
        // rport: filled, and received added even for the same IP (RFC 3581 §4)
        check_stamp(
            "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1",
            "192.0.2.1:4000",
            "SIP/2.0/UDP 192.0.2.1:5060;rport=4000;branch=z9hG4bK1;received=192.0.2.1",
        );
        // an old received is replaced
        check_stamp(
            "SIP/2.0/UDP 10.0.0.1;received=10.9.9.9;branch=z9hG4bK1",
            "192.0.2.1:4000",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.1",
        );
        // IPv6 source, IPv4-mapped source counts as IPv4
        check_stamp(
            "SIP/2.0/UDP [2001:db8::1];rport;branch=z9hG4bK1",
            "[2001:db8::2]:7",
            "SIP/2.0/UDP [2001:db8::1];rport=7;branch=z9hG4bK1;received=2001:db8::2",
        );
        check_stamp(
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            "[::ffff:192.0.2.1]:7",
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        );
        // only the first element of a combined line changes
        check_stamp(
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2",
            "192.0.2.1:4000",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2",
        );
    }

    fn listener(spec: &str, local: &str) -> Arc<ListenerInfo> {
        Arc::new(ListenerInfo {
            id: 0,
            spec: spec.parse().unwrap(),
            local: local.parse().unwrap(),
        })
    }

    #[track_caller]
    fn check_ours(via: &str, listeners: &[Arc<ListenerInfo>], want: bool) {
        assert_eq!(response_is_ours(&msg(via, false), listeners), want, "{via}");
    }

    #[test]
    fn rfc3261_18_1_2_sent_by_check() {
        let bound = [
            listener("udp:192.0.2.5:5070", "192.0.2.5:5070"),
            listener("tls:192.0.2.5:5061", "192.0.2.5:5061"),
        ];
        check_ours("SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1", &bound, true);
        check_ours("SIP/2.0/TLS 192.0.2.5;branch=z9hG4bK1", &bound, true); // default 5061
        check_ours("SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK1", &bound, false); // 5060: not ours
        check_ours("SIP/2.0/UDP 192.0.2.6:5070;branch=z9hG4bK1", &bound, false);
        check_ours(
            "SIP/2.0/UDP sip.example.com:5070;branch=z9hG4bK1",
            &bound,
            false,
        );
        let adv = [listener(
            "udp:0.0.0.0:5060;advertise=SIP.example.com",
            "0.0.0.0:5060",
        )];
        check_ours("SIP/2.0/UDP sip.example.com;branch=z9hG4bK1", &adv, true);
        check_ours(
            "SIP/2.0/UDP sip.example.com:5080;branch=z9hG4bK1",
            &adv,
            false,
        );
        check_ours("SIP/2.0/UDP other.example.com;branch=z9hG4bK1", &adv, false);
        let wild = [listener("udp:[::]:5060", "[::]:5060")];
        check_ours("SIP/2.0/UDP [2001:db8::7]:9;branch=z9hG4bK1", &wild, true);
        check_ours("SIP/2.0/UDP name.example;branch=z9hG4bK1", &wild, false);
        let adv6 = [listener(
            "udp:[::]:5060;advertise=[2001:db8::1]:5062",
            "[::]:5060",
        )];
        check_ours(
            "SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK1",
            &adv6,
            true,
        );
    }
}
