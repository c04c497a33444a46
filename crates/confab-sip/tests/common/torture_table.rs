//! The RFC 4475 and RFC 5118 outcome table of the message layer: one row per archive file
//! (the corpora of `sipx-testkit`), with what Confab does with it. Used by `torture.rs` (the
//! message layer itself) and by `crates/confab/tests/peers_torture.rs` (the same messages
//! sent to a running server over UDP and TCP), which include this file with `#[path]`.
//! The meaning of the outcomes is explained at the top of `torture.rs`.

#![allow(dead_code)]

use confab_sip::HeaderName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum O {
    /// Processed normally.
    Accept,
    /// Answered with this status code.
    Respond(u16),
    /// Dropped silently.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K {
    StartLine,
    Version,
    ClLarger,
    ClInvalid,
    ClRepeated,
    Truncated,
    BareLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Accept,
    Rejected(O),
    HeaderErr(HeaderName, O),
    ParseErr(K, O),
}

pub use Expect::{Accept, HeaderErr, ParseErr, Rejected};
pub use O::{Drop, Respond};

pub struct Row {
    pub name: &'static str,
    pub section: &'static str,
    pub expect: Expect,
}

pub const fn row(name: &'static str, section: &'static str, expect: Expect) -> Row {
    Row {
        name,
        section,
        expect,
    }
}

/// RFC 4475, all 50 files of the Appendix A archive.
pub const RFC4475: &[Row] = &[
    // ---- 3.1.1 valid messages: all must parse and round-trip --------------------------
    row("wsinv", "3.1.1.1", Accept),
    row("intmeth", "3.1.1.2", Accept),
    row("esc01", "3.1.1.3", Accept),
    row("escnull", "3.1.1.4", Accept),
    row("esc02", "3.1.1.5", Accept),
    row("lwsdisp", "3.1.1.6", Accept),
    row("longreq", "3.1.1.7", Accept),
    // Datagram with a second request after Content-Length octets: the tail is discarded
    // (RFC 3261 §18.3) and the round trip is the first message's bytes.
    row("dblreq", "3.1.1.8", Accept),
    row("semiuri", "3.1.1.9", Accept),
    row("transports", "3.1.1.10", Accept),
    row("mpart01", "3.1.1.11", Accept),
    row("unreason", "3.1.1.12", Accept),
    row("noreason", "3.1.1.13", Accept),
    // ---- 3.1.2 invalid messages --------------------------------------------------------
    // Via `192.0.2.15;;,;,,`: empty via-params; the Via cannot be read, so no response.
    row("badinv01", "3.1.2.1", HeaderErr(HeaderName::Via, Drop)),
    // RFC 3261 §18.3: Content-Length larger than the datagram → 400.
    row("clerr", "3.1.2.2", ParseErr(K::ClLarger, Respond(400))),
    row("ncl", "3.1.2.3", ParseErr(K::ClInvalid, Respond(400))),
    // CSeq ≥ 2^32 (also Max-Forwards 300, Expires and contact expires overlarge). RFC 4475
    // wants 400; the CSeq cannot be copied into a response, so by our rule: drop.
    row("scalar02", "3.1.2.4", HeaderErr(HeaderName::CSeq, Drop)),
    // A response: never answered.
    row("scalarlg", "3.1.2.5", HeaderErr(HeaderName::CSeq, Drop)),
    // To has an unterminated quoted string: To cannot be copied → drop (RFC: 400).
    row("quotbal", "3.1.2.6", HeaderErr(HeaderName::To, Drop)),
    // Request line errors keep the head readable (lenient fallback) → 400.
    row("ltgtruri", "3.1.2.7", ParseErr(K::StartLine, Respond(400))),
    row("lwsruri", "3.1.2.8", ParseErr(K::StartLine, Respond(400))),
    row("lwsstart", "3.1.2.9", ParseErr(K::StartLine, Respond(400))),
    row("trws", "3.1.2.10", ParseErr(K::StartLine, Respond(400))),
    // The Request-URI carries a header (`?Route=`); RFC 3261 §19.1.1 forbids it → 400.
    row("escruri", "3.1.2.11", Rejected(Respond(400))),
    // Liberal choice: Date is not needed to route, `check()` ignores it (RFC 4475 lets an
    // element proceed); reading it is still an error naming Date.
    row(
        "baddate",
        "3.1.2.12",
        HeaderErr(HeaderName::Date, O::Accept),
    ),
    // Contact URI with `?` not in <>: a registrar must not store it → 400.
    row(
        "regbadct",
        "3.1.2.13",
        HeaderErr(HeaderName::Contact, Respond(400)),
    ),
    // `< sip:... >` in To: To cannot be read → drop (RFC: 400).
    row("badaspec", "3.1.2.14", HeaderErr(HeaderName::To, Drop)),
    // The archive file has no empty line after the headers: truncated → drop. With the
    // terminator added, its From (`Bell, Alexander <...>`) is a HeaderErr → drop; see
    // `baddn_with_terminator`.
    row("baddn", "3.1.2.15", ParseErr(K::Truncated, Drop)),
    row("badvers", "3.1.2.16", ParseErr(K::Version, Respond(505))),
    row("mismatch01", "3.1.2.17", Rejected(Respond(400))),
    row("mismatch02", "3.1.2.18", Rejected(Respond(400))),
    row("bigcode", "3.1.2.19", ParseErr(K::StartLine, Drop)),
    // ---- 3.2 transaction layer -------------------------------------------------------
    // No branch: the transaction layer uses RFC 2543 matching; the parser accepts.
    row("badbranch", "3.2.1", Accept),
    // ---- 3.3 application layer -------------------------------------------------------
    // No From/To/Call-ID: nothing to build a response from → drop (RFC: ideally 400).
    row("insuf", "3.3.1", Rejected(Drop)),
    // UAS/proxy choice: an unknown Request-URI scheme is answered 416.
    row("unkscm", "3.3.2", Rejected(Respond(416))),
    row("novelsc", "3.3.3", Rejected(Respond(416))),
    // Unknown schemes in To/From/Contact are kept as absolute URIs.
    row("unksm2", "3.3.4", Accept),
    // 420 for unknown Require/Proxy-Require is the UAS/proxy policy, not the parser's.
    row("bext01", "3.3.5", Accept),
    row("invut", "3.3.6", Accept),
    row("regaut01", "3.3.7", Accept),
    // Two To, From, Call-ID, CSeq, Max-Forwards: the first of each parses, so a 400 can be
    // built (from the first values).
    row("multi01", "3.3.8", Rejected(Respond(400))),
    // Two Content-Length values: the body's extent is unknown; framing fault → 400.
    row("mcl01", "3.3.9", ParseErr(K::ClRepeated, Respond(400))),
    row("bcast", "3.3.10", Accept),
    // Max-Forwards 0: 483 is the forwarding proxy's decision (an OPTIONS UAS may answer).
    row("zeromf", "3.3.11", Accept),
    row("cparam01", "3.3.12", Accept),
    row("cparam02", "3.3.13", Accept),
    row("regescrt", "3.3.14", Accept),
    row("sdp01", "3.3.15", Accept),
    // ---- 3.4 backward compatibility ------------------------------------------------------
    row("inv2543", "3.4.1", Accept),
    // ---- in the archive, referenced by no section -----------------------------------------
    // `INVITE sip:alan@jasomi.com` has no SIP-Version: not even a lenient request line.
    row("test", "-", ParseErr(K::StartLine, Drop)),
];

/// RFC 5118: each archive file in three forms.
pub struct Row5118 {
    pub name: &'static str,
    pub section: &'static str,
    /// `Case::wire()`: CRLF line ends, header section terminated, Content-Length corrected.
    pub normalised: Expect,
    /// Only LF → CRLF (the declared Content-Length kept, no terminator added).
    pub crlf_only: Expect,
}

pub const fn row5(
    name: &'static str,
    section: &'static str,
    normalised: Expect,
    crlf_only: Expect,
) -> Row5118 {
    Row5118 {
        name,
        section,
        normalised,
        crlf_only,
    }
}

/// The raw archive (bare LF) is always refused: SIP requires CRLF (RFC 3261 §7), and a
/// bare-LF message is dropped rather than guessed at. Checked for every file below.
pub const RAW_5118: Expect = ParseErr(K::BareLf, Drop);

pub const RFC5118: &[Row5118] = &[
    row5("ipv6-good", "4.1", Accept, Accept),
    // `sip:2001:db8::10`: the Request-URI does not parse ("should respond with a 400").
    row5(
        "ipv6-bad",
        "4.2",
        Rejected(Respond(400)),
        Rejected(Respond(400)),
    ),
    // `[2001:db8::10:5070]` is an address with no port (the RFC's predicted reading).
    row5("port-ambiguous", "4.3", Accept, Accept),
    row5("port-unambiguous", "4.4", Accept, Accept),
    // received with and without [ ]: both accepted (Robustness Principle, as the RFC asks).
    row5("via-received-param-with-delim", "4.5", Accept, Accept),
    row5("via-received-param-no-delim", "4.5", Accept, Accept),
    // Declared Content-Length 268 > 251 body octets: a datagram parse must refuse it.
    row5(
        "ipv6-in-sdp",
        "4.6",
        Accept,
        ParseErr(K::ClLarger, Respond(400)),
    ),
    row5("mult-ip-in-header", "4.7", Accept, Accept),
    // Declared lengths smaller than the CRLF body: the body is truncated to them
    // (RFC 3261 §18.3) and the message still parses; see `sdp_bodies_are_truncated`.
    row5("mult-ip-in-sdp", "4.8", Accept, Accept),
    row5("ipv4-mapped-ipv6", "4.9", Accept, Accept),
    // Three colons tolerated (RFC 5118 §4.10). The archive files have no terminating empty
    // line, so the CRLF-only form is truncated.
    row5(
        "ipv6-bug-abnf-3-colons",
        "4.10",
        Accept,
        ParseErr(K::Truncated, Drop),
    ),
    row5(
        "ipv6-correct-abnf-2-colons",
        "4.10",
        Accept,
        ParseErr(K::Truncated, Drop),
    ),
];
