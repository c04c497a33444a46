//! The invariants the fuzz targets check, shared with the stable regression test
//! (`tests/regressions.rs`) so every committed finding and the whole seed corpus run on
//! stable with exactly the fuzzers' assertions. Included by path from `fuzz/fuzz_targets`.

use bytes::Bytes;
use confab_sip::{
    ContentLengthError, Frame, Limits, Message, ParseErrorKind, ResponseBuilder, frame_stream,
    parse_datagram, parse_stream,
};

fn exercise(m: &Message) {
    let _ = m.typed_header_errors();
    let _ = m.check();
    let _ = m.request_uri();
    for v in m.vias().flatten() {
        let _ = (v.branch, v.received, v.host.ip());
    }
    if let Some(Ok(f)) = m.from() {
        let _ = f.display_name_unquoted();
    }
    for a in m.authorizations().flatten() {
        let _ = (a.username(), a.response());
    }
}

/// Parse (datagram and stream rules), read every typed header, validate, serialize,
/// re-parse and compare; apply proxy edits and re-parse; build a response when allowed.
pub fn check_parse(data: &[u8]) {
    let limits = Limits::default();
    for parsed in [
        parse_datagram(Bytes::copy_from_slice(data), &limits),
        parse_stream(Bytes::copy_from_slice(data), &limits),
    ] {
        match parsed {
            Ok(m) => {
                exercise(&m);
                let out = m.to_bytes();
                // lossless: the serialization is a contiguous slice of the input
                assert!(out.is_empty() || data.windows(out.len()).any(|w| w == &out[..]));
                let re =
                    parse_datagram(out.clone(), &limits).expect("serialized message must re-parse");
                assert_eq!(re, m);
                assert_eq!(re.to_bytes(), out);

                let mut e = m.clone();
                e.prepend_via("SIP/2.0/UDP fuzz.example.com;branch=z9hG4bKfuzz")
                    .unwrap();
                e.set_max_forwards(69);
                e.remove_first_route();
                e.remove_first_value("ms-test");
                e.prepend_record_route("<sip:fuzz.example.com;lr>").unwrap();
                e.set_body(Bytes::from_static(b"x"));
                let eb = e.to_bytes();
                let re =
                    parse_datagram(eb, &Limits::UNLIMITED).expect("edited message must re-parse");
                assert_eq!(re, e);
                assert_eq!(re.top_via().unwrap().unwrap().branch, Some("z9hG4bKfuzz"));
                exercise(&re);
                if m.can_be_answered() {
                    let r = ResponseBuilder::reply_to(&m, 400)
                        .unwrap()
                        .to_tag("fuzz")
                        .build();
                    assert!(
                        r.is_ok(),
                        "response to an answerable request must build: {r:?}"
                    );
                }
            }
            Err(e) => {
                let _ = e.disposition();
                if let Some(h) = e.head() {
                    exercise(h);
                    if h.can_be_answered() {
                        let r = ResponseBuilder::reply_to(h, 400).unwrap().build();
                        assert!(r.is_ok(), "response from an error head must build: {r:?}");
                    }
                }
            }
        }
    }
}

/// Feed bytes to the stream framer as a connection would: consume keep-alives and
/// messages until NeedMore or Lost; every framed message goes to `parse_stream`. Checks
/// that lengths are in range and that framing is stable under truncation.
pub fn check_stream(data: &[u8]) {
    let limits = Limits {
        max_message_size: 4096,
        max_body_size: 2048,
        ..Limits::default()
    };
    let mut buf = data;
    loop {
        match frame_stream(buf, &limits) {
            Frame::NeedMore | Frame::Lost(_) => break,
            Frame::KeepAlive { len, .. } => {
                assert!(len > 0 && len <= buf.len());
                buf = &buf[len..];
            }
            Frame::Message { len } => {
                assert!(len > 0 && len <= buf.len());
                // The same message arriving alone, and one byte short.
                assert_eq!(frame_stream(&buf[..len], &limits), Frame::Message { len });
                assert_eq!(frame_stream(&buf[..len - 1], &limits), Frame::NeedMore);
                match parse_stream(Bytes::copy_from_slice(&buf[..len]), &limits) {
                    Ok(m) => assert_eq!(m.to_bytes().len(), len),
                    Err(e) => assert!(
                        !matches!(
                            e.kind(),
                            ParseErrorKind::ContentLength(
                                ContentLengthError::Missing
                                    | ContentLengthError::LargerThanMessage { .. }
                            )
                        ),
                        "framer and parser disagree on Content-Length: {e}"
                    ),
                }
                buf = &buf[len..];
            }
        }
    }
}
