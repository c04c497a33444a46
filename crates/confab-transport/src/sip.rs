//! The transport's use of the SIP message layer: framing, parsing, the answers to bad
//! input, and the RFC 3261 §18 / RFC 3581 / RFC 5923 rules that need the top Via.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use confab_sip::headers::Via;
use confab_sip::{Disposition, Frame, Host, Limits, Message, ParseError};

use crate::listen::TransportKind;

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
