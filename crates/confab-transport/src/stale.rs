//! Which stale input may be dropped: the rule of `transport.max_datagram_age_ms`.
//!
//! Under overload the backlog waits in the kernel's receive buffer. A request that waited
//! there longer than SIP's retransmission timer (T1, 500 ms) has been retransmitted by its
//! client already, so serving it costs CPU for an answer that comes too late, and the
//! retransmission waits behind it: the collapse that overload benchmarks show. Dropping it
//! unparsed costs one receive call. Only requests that *start* work are dropped this way:
//! responses, ACK, CANCEL, BYE and PRACK finish work already in progress (transactions,
//! calls) and always pass, however old.

use std::time::Duration;

/// Methods that finish work in progress: never dropped for their age.
fn finishes_work(method: &[u8]) -> bool {
    matches!(method, b"ACK" | b"CANCEL" | b"BYE" | b"PRACK")
}

/// Whether a raw datagram, if stale, may be dropped without parsing: it is a SIP request
/// (its first line does not start with `SIP/`) whose method is not ACK, CANCEL, BYE or
/// PRACK. Looks at the first line only (leading CRLFs skipped, RFC 3261 §7.5); anything
/// that is not recognisably a request is kept, so it gets the parser's usual treatment.
pub fn datagram_is_droppable(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    let line = &data[start..];
    if line.starts_with(b"SIP/") {
        return false;
    }
    let Some(sp) = line.iter().take(32).position(|&b| b == b' ') else {
        return false;
    };
    let method = &line[..sp];
    // RFC 3261 §25.1: a method is a token; require something plausible before trusting it.
    if method.is_empty()
        || !method
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(b))
    {
        return false;
    }
    !finishes_work(method)
}

/// The same rule for a parsed message.
pub fn message_is_droppable(message: &confab_sip::Message) -> bool {
    message.is_request()
        && message
            .method()
            .is_some_and(|m| !finishes_work(m.as_str().as_bytes()))
}

/// Whether something that waited `age` is stale under `limit_ms` (0 = never).
pub(crate) fn is_stale(age: Duration, limit_ms: u64) -> bool {
    limit_ms > 0 && age > Duration::from_millis(limit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_requests_are_droppable_and_the_rest_is_not() {
        for m in [
            "INVITE",
            "REGISTER",
            "MESSAGE",
            "SUBSCRIBE",
            "NOTIFY",
            "OPTIONS",
            "PUBLISH",
            "REFER",
            "INFO",
            "UPDATE",
            "FOO",
        ] {
            let d = format!("{m} sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
            assert!(datagram_is_droppable(d.as_bytes()), "{m}");
            assert!(
                datagram_is_droppable(format!("\r\n\r\n{d}").as_bytes()),
                "{m} after CRLF"
            );
        }
        for m in ["ACK", "CANCEL", "BYE", "PRACK"] {
            let d = format!("{m} sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
            assert!(!datagram_is_droppable(d.as_bytes()), "{m}");
        }
        for d in [
            &b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"[..],
            b"SIP/2.0 100 Trying\r\n\r\n",
            b"\r\nSIP/2.0 503 Service Unavailable\r\n\r\n",
            b"",
            b"\r\n\r\n",
            b"garbage",
            b"\x00\x01\x02 \x03",
            b" INVITE sip:a@b SIP/2.0\r\n",
        ] {
            assert!(
                !datagram_is_droppable(d),
                "{:?}",
                String::from_utf8_lossy(d)
            );
        }
    }

    #[test]
    fn parsed_and_raw_rules_agree() {
        let limits = confab_sip::Limits::DEFAULT;
        for (text, want) in [
            (
                "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            (
                "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: 1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            (
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: 1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
        ] {
            let m = confab_sip::parse_datagram(bytes::Bytes::from(text), &limits).unwrap();
            assert_eq!(message_is_droppable(&m), want, "{text}");
            assert_eq!(datagram_is_droppable(text.as_bytes()), want, "{text}");
        }
    }

    #[test]
    fn stale_needs_a_limit_and_more_than_it() {
        assert!(!is_stale(Duration::from_secs(100), 0));
        assert!(!is_stale(Duration::from_millis(200), 200));
        assert!(is_stale(Duration::from_millis(201), 200));
    }

    proptest! {
        /// Responses are never droppable, whatever follows the status line.
        #[test]
        fn responses_never_droppable(crlf in 0usize..4, rest in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = b"\r\n".repeat(crlf);
            d.extend_from_slice(b"SIP/2.0 ");
            d.extend_from_slice(&rest);
            prop_assert!(!datagram_is_droppable(&d));
        }

        /// The in-progress methods are never droppable; any other token method is.
        #[test]
        fn droppable_iff_other_method(method in "[A-Z]{1,12}", rest in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = method.clone().into_bytes();
            d.push(b' ');
            d.extend_from_slice(&rest);
            let keep = matches!(method.as_str(), "ACK" | "CANCEL" | "BYE" | "PRACK");
            prop_assert_eq!(datagram_is_droppable(&d), !keep);
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn any_bytes(d in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = datagram_is_droppable(&d);
        }
    }
}
