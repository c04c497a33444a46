//! Randomized runs on the simulated network (seeded, reproducible): thousands of calls
//! (INVITE, ringing, answer, ACK, BYE, CANCEL, busy, deaf and slow callees) and non-INVITE
//! requests (OPTIONS, MESSAGE, REGISTER with digest, an unknown method), over reliable and
//! unreliable flows, with loss up to 30 %, duplication, reordering and send failures. Each
//! run checks that every transaction ended and was removed, no dialog, timer or UA
//! context is left, and the calls add up.
//!
//! The default run takes a few seconds in the dev profile. `CONFAB_SOAK=1` runs the long
//! soak (many more seeds and calls); `CONFAB_SOAK_SEED=n` replays one seed.

mod sim;

use std::time::Duration;

use confab_sip::timer::Time;
use sim::{NetConfig, Sim};

struct Run {
    seed: u64,
    nodes: usize,
    loss: f64,
    calls: usize,
    requests: usize,
}

fn run(r: &Run) -> sim::UaStats {
    let mut sim = Sim::new(r.seed, r.nodes, NetConfig::lossy(r.loss), &sim::configs());
    for n in &mut sim.nodes {
        sim::all_behaviours(n);
    }
    for n in sim.nodes.iter_mut().step_by(3) {
        n.challenge_register = true;
    }
    sim.nodes[0].legacy_ack = true;
    let span = Duration::from_secs(600);
    sim::random_traffic(&mut sim, r.seed, r.calls, r.requests, span);
    // Everything must wind down: the longest chain is a deaf/slow callee (80 s) plus
    // a 120 s hang-up guard plus 64*T1 timers.
    let end = sim.run_until_idle(Time::from_millis(3_600_000));
    sim.assert_idle();
    let s = sim.stats();
    assert_eq!(s.calls, r.calls as u64);
    assert!(s.requests >= r.requests as u64);
    // Every call ends exactly one way.
    assert_eq!(
        s.answered + s.rejected + s.timed_out + s.failed,
        s.calls,
        "{s:?}"
    );
    assert!(s.answered > 0 && s.rejected > 0, "{s:?}");
    eprintln!(
        "seed {} loss {:.0}%: {} transactions, {} calls ({} answered, {} rejected, {} timed out, {} failed, {} cancels, {} BYEs), {} requests ({} auth), {} transport errors, {} datagrams ({} lost, {} duplicated), idle at {}",
        r.seed,
        r.loss * 100.0,
        s.transactions,
        s.calls,
        s.answered,
        s.rejected,
        s.timed_out,
        s.failed,
        s.cancels,
        s.byes,
        s.requests,
        s.auth_answers,
        s.transport_errors,
        sim.net.sent,
        sim.net.lost,
        sim.net.duplicated,
        end
    );
    s
}

#[test]
fn randomized_runs_end_clean() {
    let soak = std::env::var("CONFAB_SOAK").is_ok_and(|v| v == "1");
    let only: Option<u64> = std::env::var("CONFAB_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut runs = vec![
        Run {
            seed: 1,
            nodes: 6,
            loss: 0.0,
            calls: 300,
            requests: 600,
        },
        Run {
            seed: 2,
            nodes: 6,
            loss: 0.1,
            calls: 400,
            requests: 800,
        },
        Run {
            seed: 3,
            nodes: 8,
            loss: 0.3,
            calls: 400,
            requests: 800,
        },
    ];
    if soak {
        runs.clear();
        for seed in 100..120 {
            runs.push(Run {
                seed,
                nodes: 10,
                loss: [0.0, 0.05, 0.15, 0.3][seed as usize % 4],
                calls: 3000,
                requests: 6000,
            });
        }
    }
    if let Some(seed) = only {
        runs.retain(|r| r.seed == seed);
    }
    let mut total = 0;
    for r in &runs {
        total += run(r).transactions;
    }
    eprintln!("{} runs, {total} transactions", runs.len());
    assert!(runs.is_empty() || total > 5_000, "{total}");
}
