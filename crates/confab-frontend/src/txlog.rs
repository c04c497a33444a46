//! Transaction logging (`log.transactions = true`): one `info` line on the target
//! `confab::transactions` per request taken in, per routing decision and per message sent
//! (final responses and forwarded requests). Lines carry the method, Request-URI, Call-ID,
//! CSeq, From and To URIs, the peer and the status: never bodies, `Authorization` or
//! `Proxy-Authorization` values, nonces or passwords.
//!
//! The switch is process-wide (like the tracing subscriber it writes to) so SIGHUP can flip
//! it without reaching into running workers; when it is off each call costs one relaxed
//! atomic load.

use std::sync::atomic::{AtomicBool, Ordering};

use confab_core::chain::{Hop, Outcome, RequestContext};
use confab_sip::Message;

static ON: AtomicBool = AtomicBool::new(false);

/// Turns transaction logging on or off for every Front End in this process.
pub fn set_transaction_log(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Whether transaction logging is on.
#[must_use]
pub fn transaction_log() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The fields every line shares, read from a message (absent or malformed ones are `-`).
struct Ids {
    call_id: String,
    cseq: String,
    from: String,
    to: String,
}

fn ids(m: &Message) -> Ids {
    let addr = |a: Option<Result<confab_sip::headers::NameAddr<'_>, _>>| match a {
        Some(Ok(n)) => n.uri_str.to_owned(),
        _ => "-".to_owned(),
    };
    Ids {
        call_id: match m.call_id() {
            Some(Ok(c)) => c.to_owned(),
            _ => "-".to_owned(),
        },
        cseq: match m.cseq() {
            Some(Ok(c)) => format!("{} {}", c.seq, c.method.as_str()),
            _ => "-".to_owned(),
        },
        from: addr(m.from()),
        to: addr(m.to()),
    }
}

fn ruri(m: &Message) -> String {
    m.request_uri_bytes().map_or_else(
        || "-".to_owned(),
        |b| String::from_utf8_lossy(b).into_owned(),
    )
}

/// A new server transaction entered the request chain.
pub(crate) fn request(ctx: &RequestContext) {
    if !transaction_log() {
        return;
    }
    let m = &ctx.request;
    let i = ids(m);
    tracing::info!(
        target: "confab::transactions",
        method = %m.method().map_or("-", |x| x.as_str()),
        ruri = %ruri(m),
        call_id = %i.call_id,
        cseq = %i.cseq,
        from = %i.from,
        to = %i.to,
        peer = %ctx.source.hop.remote,
        transport = ?ctx.source.hop.transport,
        "request"
    );
}

/// The chain's decision for a request.
pub(crate) fn outcome(ctx: &RequestContext, outcome: &Outcome) {
    if !transaction_log() {
        return;
    }
    let call_id = match ctx.request.call_id() {
        Some(Ok(c)) => c,
        _ => "-",
    };
    let identity = ctx
        .identity
        .as_ref()
        .map_or_else(|| "-".to_owned(), |i| i.address.to_string());
    let (decision, detail) = match outcome {
        Outcome::Continue => ("continue".to_owned(), String::new()),
        Outcome::Respond(r) => ("respond".to_owned(), r.status.to_string()),
        Outcome::Register => ("register".to_owned(), String::new()),
        Outcome::Forward(t) => ("forward".to_owned(), format!("{} target(s)", t.len())),
    };
    tracing::info!(
        target: "confab::transactions",
        call_id,
        decision = %decision,
        detail = %detail,
        identity = %identity,
        "routed"
    );
}

/// A message leaves: final responses and forwarded requests are logged; provisional
/// responses are not (they would double the volume for little use).
pub(crate) fn sent(data: &[u8], hop: &Hop) {
    if !transaction_log() {
        return;
    }
    let Ok(m) = confab_sip::parse_datagram(
        bytes::Bytes::copy_from_slice(data),
        &confab_sip::Limits::UNLIMITED,
    ) else {
        return;
    };
    let i = ids(&m);
    match (m.status(), m.method()) {
        (Some(status), _) if status >= 200 => tracing::info!(
            target: "confab::transactions",
            status,
            call_id = %i.call_id,
            cseq = %i.cseq,
            to = %i.to,
            peer = %hop.remote,
            transport = ?hop.transport,
            "response"
        ),
        (None, Some(method)) => tracing::info!(
            target: "confab::transactions",
            method = %method.as_str(),
            ruri = %ruri(&m),
            call_id = %i.call_id,
            cseq = %i.cseq,
            from = %i.from,
            to = %i.to,
            peer = %hop.remote,
            transport = ?hop.transport,
            "forward"
        ),
        _ => {}
    }
}
