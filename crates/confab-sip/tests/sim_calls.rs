//! Call flows on the simulated network, each checked for its outcome and for leaving no
//! state behind (every transaction terminated and removed, no dialog, no timer).

mod sim;

use confab_sip::transaction::Edge;
use sim::scenarios;

#[track_caller]
fn check(sim: &sim::Sim, expect: &[(&str, u64)], edges: &[Edge]) {
    sim.assert_idle();
    let s = sim.stats();
    for (what, n) in expect {
        let got = match *what {
            "calls" => s.calls,
            "answered" => s.answered,
            "rejected" => s.rejected,
            "timed_out" => s.timed_out,
            "cancels" => s.cancels,
            "byes" => s.byes,
            "requests" => s.requests,
            "request_finals" => s.request_finals,
            "auth_answers" => s.auth_answers,
            other => panic!("unknown stat {other}"),
        };
        assert_eq!(got, *n, "{what}: {s:?}");
    }
    let c = sim.edge_counts();
    for e in edges {
        assert!(c.get(*e) > 0, "edge {e} not taken: {c:?}");
    }
}

#[test]
fn call_over_udp() {
    check(
        &scenarios::basic_call(false),
        &[("calls", 1), ("answered", 1), ("byes", 1), ("timed_out", 0)],
        &[
            Edge::IctCalling1xx,
            Edge::IctProceeding2xx,
            Edge::IctAcceptedTimerM,
            Edge::IstProceeding2xx,
            Edge::IstAcceptedTimerL,
            Edge::NictCompletedTimerK,
            Edge::NistCompletedTimerJ,
        ],
    );
}

#[test]
fn call_over_tcp_never_retransmits() {
    let sim = scenarios::basic_call(true);
    check(
        &sim,
        &[("calls", 1), ("answered", 1), ("byes", 1)],
        &[Edge::NictTryingFinal],
    );
    let c = sim.edge_counts();
    for e in [
        Edge::IctCallingTimerA,
        Edge::NictTryingTimerE,
        Edge::IstCompletedTimerG,
        Edge::IstAcceptedRetransmit2xx,
    ] {
        assert_eq!(c.get(e), 0, "{e} on a reliable transport");
    }
}

#[test]
fn busy_callee() {
    for reliable in [false, true] {
        check(
            &scenarios::busy(reliable),
            &[("calls", 1), ("answered", 0), ("rejected", 1), ("byes", 0)],
            &[
                Edge::IctCalling3xx6xx,
                Edge::IctCompletedTimerD,
                Edge::IstProceeding3xx6xx,
                Edge::IstCompletedAck,
                Edge::IstConfirmedTimerI,
            ],
        );
    }
}

#[test]
fn cancel_before_any_provisional_is_deferred() {
    check(
        &scenarios::cancel_deferred(),
        &[
            ("calls", 1),
            ("cancels", 1),
            ("answered", 0),
            ("rejected", 1),
        ],
        &[Edge::IctCalling1xx, Edge::IctProceeding3xx6xx],
    );
}

#[test]
fn cancel_to_a_deaf_callee_times_out() {
    check(
        &scenarios::cancel_deaf(),
        &[("calls", 1), ("cancels", 1), ("answered", 0)],
        &[
            Edge::IctProceedingCancelGuard,
            Edge::IstCompletedTimerH,
            Edge::IstCompletedTimerG,
        ],
    );
}

#[test]
fn unanswered_invite_times_out_and_late_200_is_cleaned_up() {
    check(
        &scenarios::invite_timeout(),
        &[("calls", 1), ("timed_out", 1), ("answered", 0)],
        &[
            Edge::IctCallingTimerA,
            Edge::IctCallingTimerB,
            Edge::IstAcceptedRetransmit2xx,
        ],
    );
}

#[test]
fn legacy_ack_reaches_the_accepted_server_transaction() {
    check(
        &scenarios::legacy_ack(),
        &[("answered", 1), ("byes", 1)],
        &[
            Edge::IstAcceptedAck,
            Edge::IstAccepted2xx,
            Edge::IctAccepted2xx,
        ],
    );
}

#[test]
fn register_answers_a_digest_challenge() {
    check(
        &scenarios::register_with_digest(),
        &[("requests", 1), ("auth_answers", 1), ("request_finals", 2)],
        &[Edge::NictTryingFinal],
    );
}

#[test]
fn slow_non_invite_requests() {
    check(
        &scenarios::slow_requests(),
        &[("requests", 4), ("request_finals", 2)],
        &[
            Edge::NictProceedingTimerF,
            Edge::NictTryingTimerF,
            Edge::NistTryingRequest,
            Edge::NictProceedingTimerE,
            Edge::NistProceedingRequest,
        ],
    );
}

#[test]
fn connection_lost_while_ringing() {
    check(
        &scenarios::connection_lost_while_ringing(),
        &[("calls", 1), ("answered", 0)],
        &[Edge::IctProceedingTransportError],
    );
}

#[test]
fn notify_before_202_creates_the_subscription_dialog() {
    let sim = scenarios::subscription();
    sim.assert_idle();
    let s = sim.stats();
    assert_eq!(s.notify_dialogs, 1, "{s:?}");
    assert_eq!(s.subscriptions_ended, 1, "{s:?}");
    assert_eq!(s.request_finals, 1, "the 202 to SUBSCRIBE: {s:?}");
}
