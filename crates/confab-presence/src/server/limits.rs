//! Request rates (503 with Retry-After past `[presence.rate]`) and the RFC 5263 check of a
//! SUBSCRIBE's Accept, for the presence chain step.

use confab_core::Timestamp;
use confab_core::chain::{Addressed, Reply, RequestContext};
use confab_sip::{HeaderName, Message};

use super::{Inner, reply};

/// The rate limit of this request's sender (the publishing user, or the watcher: the
/// authenticated address, else the From URI): `Some(503 + Retry-After)` past it. Only
/// requests this server answers count (a SUBSCRIBE routed elsewhere is not ours).
pub(super) fn over_rate(inner: &Inner, ctx: &RequestContext, publish: bool) -> Option<Reply> {
    let ours = matches!(ctx.addressed, Addressed::LocalUser(_) | Addressed::Server) && !ctx.routed;
    if !ours && !ctx.in_dialog {
        return None;
    }
    let key = match &ctx.identity {
        Some(i) => i.address.as_str().to_owned(),
        None => ctx
            .request
            .from()
            .and_then(Result::ok)
            .map(|f| f.uri_str.to_owned())
            .unwrap_or_default(),
    };
    let t = Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX));
    let mut rates = inner
        .rates
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (limiter, limit, what) = if publish {
        (&mut rates.0, &inner.config.rate.publish, "PUBLISH")
    } else {
        (&mut rates.1, &inner.config.rate.subscribe, "SUBSCRIBE")
    };
    match limiter.check(&key, t, limit) {
        Ok(()) => None,
        Err(secs) => Some(
            reply(
                503,
                format!(
                    "Too many {what} requests (at most {} per minute)",
                    limit.per_minute
                ),
            )
            .header("Retry-After", secs.to_string()),
        ),
    }
}

pub(super) fn prune_rates(inner: &Inner, t: Timestamp) {
    let mut rates = inner
        .rates
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (p, s) = &mut *rates;
    p.prune(t, &inner.config.rate.publish);
    s.prune(t, &inner.config.rate.subscribe);
}

/// Whether a SUBSCRIBE's Accept lists `application/pidf-diff+xml` (RFC 5263 §3: the
/// watcher asks for partial notification).
pub(super) fn accepts_pidf_diff(req: &Message) -> bool {
    req.get_all(HeaderName::Accept)
        .filter_map(|h| h.value_str())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(confab_xml::pidf_diff::CONTENT_TYPE)
        })
}
