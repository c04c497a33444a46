//! Transaction keys (RFC 3261 §17.1.3, §17.2.3) and the requests a transaction builds
//! itself (ACK for a non-2xx final response, §17.1.1.3; CANCEL, §9.1).
//!
//! A key is a byte string written into a reusable scratch buffer, so matching a message
//! allocates nothing once the buffer has grown; only a new transaction copies its key.
//!
//! | key | layout |
//! |---|---|
//! | client | `C` method `\n` branch |
//! | server, RFC 3261 branch | `S` method `\n` branch `\n` sent-by (host lower-cased) |
//! | server, RFC 2543 fallback | `L` method `\n` Request-URI `\n` To tag (non-INVITE only) `\n` From tag `\n` Call-ID `\n` CSeq number `\n` top Via as written |
//!
//! `method` is the request's method, with ACK counted as INVITE (an ACK for a non-2xx
//! response belongs to the INVITE's transaction). In the RFC 2543 key the To tag is left
//! out for INVITE so that the ACK, which carries the tag of the response, finds its
//! INVITE; §17.2.3 compares it against the tag of the response sent, which this layer
//! does not re-check (a legacy client sending two INVITEs that differ only in their To
//! tag within one CSeq is not a case worth the bytes).

use std::io::Write as _;

use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::{BuildError, RequestBuilder};

use super::InboundError;

/// RFC 3261 §8.1.1.7 magic cookie.
pub(crate) const MAGIC_COOKIE: &str = "z9hG4bK";

fn method_class(m: &Method) -> &str {
    match m {
        Method::Ack => "INVITE",
        m => m.as_str(),
    }
}

/// Client key of a request we send (its top Via branch and its method).
pub(crate) fn client_key_for_request(
    msg: &Message,
    out: &mut Vec<u8>,
) -> Result<(), super::SendError> {
    let method = msg.method().ok_or(super::SendError::NotARequest)?;
    let via = match msg.top_via() {
        Some(Ok(v)) => v,
        _ => return Err(super::SendError::NoVia),
    };
    let branch = via
        .branch
        .filter(|b| b.starts_with(MAGIC_COOKIE) && b.len() > MAGIC_COOKIE.len())
        .ok_or(super::SendError::NoBranch)?;
    client_key(method.as_str(), branch, out);
    Ok(())
}

pub(crate) fn client_key(method: &str, branch: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'C');
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(branch.as_bytes());
}

/// Client key a response matches (§17.1.3): top Via branch and CSeq method. `None` if the
/// response cannot belong to any client transaction.
pub(crate) fn client_key_for_response(msg: &Message, out: &mut Vec<u8>) -> Option<()> {
    let via = msg.top_via()?.ok()?;
    let branch = via.branch?;
    let cseq = msg.cseq()?.ok()?;
    client_key(cseq.method.as_str(), branch, out);
    Some(())
}

/// Server key of a request (§17.2.3). `as_method` overrides the request's method (CANCEL
/// matching looks for the INVITE).
pub(crate) fn server_key(
    msg: &Message,
    as_method: Option<&Method>,
    out: &mut Vec<u8>,
) -> Result<(), InboundError> {
    let method = msg.method().ok_or(InboundError::NotARequest)?;
    let class = method_class(as_method.unwrap_or(method));
    let via = match msg.top_via() {
        None => return Err(InboundError::MissingHeader(HeaderName::Via)),
        Some(Err(_)) => return Err(InboundError::MalformedHeader(HeaderName::Via)),
        Some(Ok(v)) => v,
    };
    out.clear();
    if let Some(branch) = via
        .branch
        .filter(|b| b.starts_with(MAGIC_COOKIE) && b.len() > MAGIC_COOKIE.len())
    {
        out.push(b'S');
        out.extend_from_slice(class.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(branch.as_bytes());
        out.push(b'\n');
        let host_start = out.len();
        let _ = write!(out, "{}", via.host);
        out[host_start..].make_ascii_lowercase();
        if let Some(p) = via.port {
            let _ = write!(out, ":{p}");
        }
        return Ok(());
    }
    // RFC 2543 fallback.
    let uri = msg.request_uri_bytes().unwrap_or_default();
    let to_tag = match msg.to() {
        Some(Ok(t)) => t.tag(),
        Some(Err(_)) => return Err(InboundError::MalformedHeader(HeaderName::To)),
        None => return Err(InboundError::MissingHeader(HeaderName::To)),
    };
    let from_tag = match msg.from() {
        Some(Ok(f)) => f.tag(),
        Some(Err(_)) => return Err(InboundError::MalformedHeader(HeaderName::From)),
        None => return Err(InboundError::MissingHeader(HeaderName::From)),
    };
    let call_id = match msg.call_id() {
        Some(Ok(c)) => c,
        Some(Err(_)) => return Err(InboundError::MalformedHeader(HeaderName::CallId)),
        None => return Err(InboundError::MissingHeader(HeaderName::CallId)),
    };
    let cseq = match msg.cseq() {
        Some(Ok(c)) => c.seq,
        Some(Err(_)) => return Err(InboundError::MalformedHeader(HeaderName::CSeq)),
        None => return Err(InboundError::MissingHeader(HeaderName::CSeq)),
    };
    let top_via_raw = msg.values(HeaderName::Via).next().unwrap_or_default();
    out.push(b'L');
    out.extend_from_slice(class.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(uri);
    out.push(b'\n');
    if class != "INVITE" {
        out.extend_from_slice(to_tag.unwrap_or("").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(from_tag.unwrap_or("").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(call_id.as_bytes());
    let _ = write!(out, "\n{cseq}\n");
    out.extend_from_slice(top_via_raw);
    Ok(())
}

fn header_str(msg: &Message, name: HeaderName) -> Result<&str, BuildError> {
    msg.get(name)
        .and_then(|f| f.value_str())
        .ok_or(BuildError::Missing(name))
}

/// The request line URI, top Via, From, Call-ID, CSeq number and Route set shared by ACK
/// (§17.1.1.3) and CANCEL (§9.1).
fn derived_request(original: &Message, method: Method, to: &str) -> Result<Message, BuildError> {
    let uri = original
        .request_uri_bytes()
        .and_then(|u| std::str::from_utf8(u).ok())
        .ok_or(BuildError::InvalidRequestUri)?;
    let via = original
        .values(HeaderName::Via)
        .next()
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or(BuildError::Missing(HeaderName::Via))?;
    let seq = original
        .cseq()
        .and_then(Result::ok)
        .ok_or(BuildError::Missing(HeaderName::CSeq))?
        .seq;
    let mut b = RequestBuilder::new(method.clone(), uri)
        .via(via)
        .from(header_str(original, HeaderName::From)?)
        .to(to)
        .call_id(header_str(original, HeaderName::CallId)?)
        .cseq(seq);
    for r in original.values(HeaderName::Route) {
        let r = std::str::from_utf8(r).map_err(|_| BuildError::InvalidValue)?;
        b = b.route(r);
    }
    b.build()
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): Request-URI, Call-ID, From,
/// CSeq number, the single top Via and the Route headers of the INVITE; To of the response.
pub(crate) fn build_ack(invite: &Message, response: &Message) -> Result<Message, BuildError> {
    derived_request(invite, Method::Ack, header_str(response, HeaderName::To)?)
}

/// A CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq number,
/// top Via (so the same branch) and Route headers; method CANCEL.
pub(crate) fn build_cancel(invite: &Message) -> Result<Message, BuildError> {
    derived_request(invite, Method::Cancel, header_str(invite, HeaderName::To)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, parse_datagram};
    use bytes::Bytes;

    fn msg(s: &str) -> Message {
        parse_datagram(Bytes::from(s.replace('\n', "\r\n")), &Limits::default()).unwrap()
    }

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\n\
Via: SIP/2.0/UDP PC33.atlanta.com:5060;branch=z9hG4bKkjshdyff\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKold\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\n\
To: Bob <sip:bob@biloxi.com>\n\
From: Alice <sip:alice@atlanta.com>;tag=88sja8x\n\
Max-Forwards: 70\n\
Call-ID: 987asjd97y7atg\n\
CSeq: 986759 INVITE\n\
Content-Length: 0\n\n";

    #[track_caller]
    fn skey(m: &Message, as_method: Option<&Method>) -> String {
        let mut out = Vec::new();
        server_key(m, as_method, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3261_keys() {
        let inv = msg(INVITE);
        assert_eq!(
            skey(&inv, None),
            "SINVITE\nz9hG4bKkjshdyff\npc33.atlanta.com:5060"
        );
        let ack = msg(&INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("986759 INVITE", "986759 ACK"));
        assert_eq!(skey(&ack, None), skey(&inv, None));
        let cancel = msg(&INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("986759 INVITE", "986759 CANCEL"));
        assert_eq!(
            skey(&cancel, None),
            "SCANCEL\nz9hG4bKkjshdyff\npc33.atlanta.com:5060"
        );
        assert_eq!(skey(&cancel, Some(&Method::Invite)), skey(&inv, None));
        let mut out = Vec::new();
        client_key_for_request(&inv, &mut out).unwrap();
        assert_eq!(out, b"CINVITE\nz9hG4bKkjshdyff");
    }

    #[test]
    fn rfc2543_keys_match_ack_and_cancel_to_invite() {
        let old = INVITE.replace("branch=z9hG4bKkjshdyff", "branch=1234");
        let inv = msg(&old);
        let k = skey(&inv, None);
        assert!(
            k.starts_with(
                "LINVITE\nsip:bob@biloxi.com\n\n88sja8x\n987asjd97y7atg\n986759\nSIP/2.0/UDP PC33"
            ),
            "{k}"
        );
        let ack = msg(&old
            .replace("INVITE sip", "ACK sip")
            .replace("986759 INVITE", "986759 ACK")
            .replace("<sip:bob@biloxi.com>\n", "<sip:bob@biloxi.com>;tag=xyz\n"));
        assert_eq!(skey(&ack, None), k);
        let cancel = msg(&old
            .replace("INVITE sip", "CANCEL sip")
            .replace("986759 INVITE", "986759 CANCEL"));
        assert_eq!(skey(&cancel, Some(&Method::Invite)), k);
        // A non-INVITE keeps the To tag in its key.
        let bye = msg(&old
            .replace("INVITE sip", "BYE sip")
            .replace("986759 INVITE", "986760 BYE")
            .replace("<sip:bob@biloxi.com>\n", "<sip:bob@biloxi.com>;tag=xyz\n"));
        assert!(skey(&bye, None).contains("\nxyz\n88sja8x\n"));
    }

    #[test]
    fn ack_and_cancel_copy_the_right_fields() {
        let inv = msg(INVITE);
        let resp = msg("SIP/2.0 486 Busy Here\n\
Via: SIP/2.0/UDP PC33.atlanta.com:5060;branch=z9hG4bKkjshdyff\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKold\n\
To: Bob <sip:bob@biloxi.com>;tag=99sa0xk\n\
From: Alice <sip:alice@atlanta.com>;tag=88sja8x\n\
Call-ID: 987asjd97y7atg\n\
CSeq: 986759 INVITE\n\
Content-Length: 0\n\n");
        let ack = build_ack(&inv, &resp).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.request_uri_bytes(), Some(&b"sip:bob@biloxi.com"[..]));
        assert_eq!(ack.vias().count(), 1);
        assert_eq!(
            ack.top_via().unwrap().unwrap().branch,
            Some("z9hG4bKkjshdyff")
        );
        assert_eq!(ack.to().unwrap().unwrap().tag(), Some("99sa0xk"));
        assert_eq!(ack.cseq().unwrap().unwrap().seq, 986759);
        assert_eq!(ack.cseq().unwrap().unwrap().method, Method::Ack);
        assert_eq!(ack.routes().count(), 2);
        let cancel = build_cancel(&inv).unwrap();
        assert_eq!(cancel.method(), Some(&Method::Cancel));
        assert_eq!(cancel.to().unwrap().unwrap().tag(), None);
        assert_eq!(cancel.cseq().unwrap().unwrap().method, Method::Cancel);
        assert_eq!(cancel.vias().count(), 1);
        assert_eq!(cancel.routes().count(), 2);
    }
}
