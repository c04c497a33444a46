//! Deterministic scenarios, each aimed at particular edges of the transaction machines.
//! Shared by `tests/sim_calls.rs` (which checks their outcomes) and `tests/edges.rs`
//! (which checks that, together with randomized runs, they exercise every edge).

use std::time::Duration;

use confab_sip::Method;
use confab_sip::timer::Time;
use confab_sip::transaction::{Config, TryingPolicy};

use super::{InviteBehaviour, NetConfig, RequestBehaviour, Sim};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const END: Time = Time::from_millis(3_600_000);

fn two(net: NetConfig, callee: Config) -> Sim {
    Sim::new(7, 2, net, &[Config::default(), callee])
}

/// A call answered and hung up, over UDP or TCP, on a perfect network.
pub fn basic_call(reliable: bool) -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    sim.nodes[0].call(Time::ZERO, 1, reliable, ms(2000), None);
    sim.run_until_idle(END);
    sim
}

/// The callee answers 486.
pub fn busy(reliable: bool) -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    sim.nodes[1].invite_behaviours = vec![InviteBehaviour::Busy];
    sim.nodes[0].call(Time::ZERO, 1, reliable, ms(1000), None);
    sim.run_until_idle(END);
    sim
}

/// CANCEL requested before any provisional response (deferred), then ringing: 487.
pub fn cancel_deferred() -> Sim {
    let mut sim = two(
        NetConfig::perfect(),
        Config {
            trying: TryingPolicy::Never,
            ..Config::default()
        },
    );
    sim.nodes[1].invite_behaviours = vec![InviteBehaviour::Answer {
        ring: ms(300),
        answer: ms(5000),
    }];
    sim.nodes[0].call(Time::ZERO, 1, false, ms(1000), Some(ms(5)));
    sim.run_until_idle(END);
    sim
}

/// The callee rings, accepts the CANCEL but never answers the INVITE in time: the caller
/// gives up 64*T1 after the CANCEL; the late 487 finds no transaction and is never
/// acknowledged, so the callee's Timer H fires.
pub fn cancel_deaf() -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    sim.nodes[1].invite_behaviours = vec![InviteBehaviour::Deaf {
        late: Duration::from_secs(40),
    }];
    sim.nodes[0].call(Time::ZERO, 1, false, ms(1000), Some(ms(500)));
    sim.run_until_idle(END);
    sim
}

/// The callee sends nothing for 40 s (no 100 Trying): the caller's Timer B fires; the late
/// 200 is never acknowledged, so the callee gives up and sends BYE (answered 481).
pub fn invite_timeout() -> Sim {
    let mut sim = two(
        NetConfig::perfect(),
        Config {
            trying: TryingPolicy::Never,
            ..Config::default()
        },
    );
    sim.nodes[1].invite_behaviours = vec![InviteBehaviour::Slow {
        delay: Duration::from_secs(40),
    }];
    sim.nodes[0].call(Time::ZERO, 1, false, ms(1000), None);
    sim.run_until_idle(END);
    sim
}

/// A caller that acknowledges 2xx with the INVITE's own branch (RFC 2543 style): the ACK
/// matches the INVITE server transaction in the Accepted state. The callee's application
/// passes its 2xx to the transaction a second time ("2xx from TU" in Accepted).
pub fn legacy_ack() -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    sim.nodes[0].legacy_ack = true;
    sim.nodes[1].tu_resends_2xx = true;
    sim.nodes[0].call(Time::ZERO, 1, false, ms(1000), None);
    sim.run_until_idle(END);
    sim
}

/// REGISTER challenged with digest (MD5 and SHA-256 offered), answered, accepted.
pub fn register_with_digest() -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    sim.nodes[1].challenge_register = true;
    sim.nodes[0].request(Time::ZERO, 1, false, Method::Register);
    sim.run_until_idle(END);
    sim
}

/// Non-INVITE requests answered late: after a 100 (client times out in Proceeding) and
/// without one (client times out in Trying); and answered after 1.2 s (retransmissions
/// absorbed in Trying).
pub fn slow_requests() -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    for b in [
        RequestBehaviour::Provisional {
            delay: Duration::from_secs(40),
        },
        RequestBehaviour::Delayed {
            delay: Duration::from_secs(40),
        },
        RequestBehaviour::Delayed { delay: ms(1200) },
        RequestBehaviour::Provisional { delay: ms(2500) },
    ] {
        sim.nodes[1].request_behaviours = vec![b];
        let now = sim.now;
        sim.nodes[0].request(now, 1, false, Method::Options);
        sim.run_until_idle(END);
    }
    sim
}

/// A TCP connection drops while the caller waits for the final response.
pub fn connection_lost_while_ringing() -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    sim.nodes[1].invite_behaviours = vec![InviteBehaviour::Answer {
        ring: ms(10),
        answer: ms(5000),
    }];
    sim.nodes[0].call(Time::ZERO, 1, true, ms(1000), None);
    sim.run_until(Time::from_millis(1000));
    let tx = sim.nodes[0].client_invites()[0];
    let now = sim.now;
    sim.nodes[0]
        .layer
        .handle_transport_error(now, tx)
        .expect("ICT in Proceeding");
    sim.run_until_idle(END);
    sim
}

/// Heavy send failures on a lossy network: every transport-error edge.
pub fn failing_transport(seed: u64) -> Sim {
    let mut net = NetConfig::lossy(0.1);
    net.send_error = 0.15;
    let mut sim = Sim::new(seed, 4, net, &super::configs());
    for n in &mut sim.nodes {
        super::all_behaviours(n);
    }
    super::random_traffic(&mut sim, seed, 150, 300, Duration::from_secs(60));
    sim.run_until_idle(END);
    sim
}

/// A presence subscription whose first NOTIFY overtakes the 202 (RFC 6665 §4.1.2.4: the
/// NOTIFY creates the subscriber's dialog), ended 2 s later by a terminating NOTIFY.
pub fn subscription() -> Sim {
    let mut sim = two(NetConfig::perfect(), Config::default());
    sim.nodes[0].subscribe(Time::ZERO, 1, false);
    sim.run_until_idle(END);
    sim
}

/// Every scenario above (the randomized `failing_transport` with a fixed seed).
pub fn all() -> Vec<(&'static str, Sim)> {
    vec![
        ("basic_call_udp", basic_call(false)),
        ("basic_call_tcp", basic_call(true)),
        ("busy_udp", busy(false)),
        ("busy_tcp", busy(true)),
        ("cancel_deferred", cancel_deferred()),
        ("cancel_deaf", cancel_deaf()),
        ("invite_timeout", invite_timeout()),
        ("legacy_ack", legacy_ack()),
        ("register_with_digest", register_with_digest()),
        ("subscription", subscription()),
        ("slow_requests", slow_requests()),
        (
            "connection_lost_while_ringing",
            connection_lost_while_ringing(),
        ),
        ("failing_transport", failing_transport(11)),
    ]
}
