//! Metric handles, registered once at bind time so the hot path only increments.
//!
//! Install the `metrics` recorder (e.g. the Prometheus exporter) before
//! [`crate::Transport::bind`]; handles taken before a recorder exists are no-ops.
//!
//! | name | labels | what |
//! |---|---|---|
//! | `confab_transport_messages_received_total` | transport | SIP messages handed up |
//! | `confab_transport_messages_sent_total` | transport | messages written to a socket |
//! | `confab_transport_dropped_total` | reason | input dropped: `rate_limited`, `garbage`, `queue_full`, `framing_lost`, `foreign_response` (§18.1.2), `stale` (a new request older than `max_datagram_age_ms`) |
//! | `confab_transport_error_responses_total` | outcome | answers to bad input: `sent`, `suppressed` (anti-reflection) |
//! | `confab_transport_keepalives_total` | kind | `stun`, `crlf` keep-alives answered |
//! | `confab_transport_connections_opened_total` | transport | accepted or connected |
//! | `confab_transport_connections_rejected_total` | limit | refused by a per-source or global limit |
//! | `confab_transport_connections_closed_total` | reason | `peer`, `idle`, `error`, `framing_lost`, `limit` |
//! | `confab_transport_connections` (gauge) | transport | open now |
//! | `confab_transport_handshake_failures_total` | transport | TLS or WebSocket handshakes that failed or timed out |
//! | `confab_transport_tls_reloads_total` | result | `ok`, `failed` |

use metrics::{Counter, Gauge, counter, gauge};

use crate::limits::LimitExceeded;
use crate::listen::TransportKind;

fn idx(t: TransportKind) -> usize {
    t as usize
}

#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) received: [Counter; 5],
    pub(crate) sent: [Counter; 5],
    pub(crate) opened: [Counter; 5],
    pub(crate) open: [Gauge; 5],
    pub(crate) handshake_failed: [Counter; 5],
    pub(crate) drop_rate_limited: Counter,
    pub(crate) drop_garbage: Counter,
    pub(crate) drop_queue_full: Counter,
    pub(crate) drop_framing_lost: Counter,
    pub(crate) drop_foreign_response: Counter,
    pub(crate) drop_stale: Counter,
    pub(crate) error_resp_sent: Counter,
    pub(crate) error_resp_suppressed: Counter,
    pub(crate) keepalive_stun: Counter,
    pub(crate) keepalive_crlf: Counter,
    pub(crate) closed_peer: Counter,
    pub(crate) closed_idle: Counter,
    pub(crate) closed_error: Counter,
    pub(crate) closed_framing: Counter,
    pub(crate) closed_limit: Counter,
    pub(crate) rejected: [Counter; 4],
    pub(crate) tls_reload_ok: Counter,
    pub(crate) tls_reload_failed: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let per = |name: &'static str| {
            TransportKind::ALL.map(|t| counter!(name, "transport" => t.spec_name()))
        };
        let rejected = [
            LimitExceeded::Connections,
            LimitExceeded::TotalConnections,
            LimitExceeded::Handshakes,
            LimitExceeded::BytesInFlight,
        ]
        .map(|l| counter!("confab_transport_connections_rejected_total", "limit" => l.label()));
        let dropped = |r: &'static str| counter!("confab_transport_dropped_total", "reason" => r);
        let closed =
            |r: &'static str| counter!("confab_transport_connections_closed_total", "reason" => r);
        Metrics {
            received: per("confab_transport_messages_received_total"),
            sent: per("confab_transport_messages_sent_total"),
            opened: per("confab_transport_connections_opened_total"),
            open: TransportKind::ALL
                .map(|t| gauge!("confab_transport_connections", "transport" => t.spec_name())),
            handshake_failed: per("confab_transport_handshake_failures_total"),
            drop_rate_limited: dropped("rate_limited"),
            drop_garbage: dropped("garbage"),
            drop_queue_full: dropped("queue_full"),
            drop_framing_lost: dropped("framing_lost"),
            drop_foreign_response: dropped("foreign_response"),
            drop_stale: dropped("stale"),
            error_resp_sent: counter!("confab_transport_error_responses_total", "outcome" => "sent"),
            error_resp_suppressed: counter!("confab_transport_error_responses_total", "outcome" => "suppressed"),
            keepalive_stun: counter!("confab_transport_keepalives_total", "kind" => "stun"),
            keepalive_crlf: counter!("confab_transport_keepalives_total", "kind" => "crlf"),
            closed_peer: closed("peer"),
            closed_idle: closed("idle"),
            closed_error: closed("error"),
            closed_framing: closed("framing_lost"),
            closed_limit: closed("limit"),
            rejected,
            tls_reload_ok: counter!("confab_transport_tls_reloads_total", "result" => "ok"),
            tls_reload_failed: counter!("confab_transport_tls_reloads_total", "result" => "failed"),
        }
    }

    pub(crate) fn received(&self, t: TransportKind) -> &Counter {
        &self.received[idx(t)]
    }

    pub(crate) fn sent(&self, t: TransportKind) -> &Counter {
        &self.sent[idx(t)]
    }

    pub(crate) fn opened(&self, t: TransportKind) {
        self.opened[idx(t)].increment(1);
        self.open[idx(t)].increment(1.0);
    }

    pub(crate) fn closed(&self, t: TransportKind) {
        self.open[idx(t)].decrement(1.0);
    }

    pub(crate) fn handshake_failed(&self, t: TransportKind) {
        self.handshake_failed[idx(t)].increment(1);
    }

    pub(crate) fn rejected(&self, l: LimitExceeded) {
        let i = match l {
            LimitExceeded::Connections => 0,
            LimitExceeded::TotalConnections => 1,
            LimitExceeded::Handshakes => 2,
            LimitExceeded::BytesInFlight => 3,
        };
        self.rejected[i].increment(1);
    }
}
