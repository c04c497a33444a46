//! Edge coverage: every (state, input) edge of RFC 3261 Figures 5–8 as modified by RFC
//! 6026 (the table is `Edge::ALL`, see `confab_sip::transaction::Edge`) must be taken at
//! least once by the deterministic scenarios plus a few seeded randomized runs. The test
//! prints the table with counts and fails naming every edge never exercised.

mod sim;

use std::time::Duration;

use confab_sip::timer::Time;
use confab_sip::transaction::{Edge, EdgeCounts};
use sim::{NetConfig, Sim};

fn randomized(seed: u64, loss: f64) -> Sim {
    let mut sim = Sim::new(seed, 6, NetConfig::lossy(loss), &sim::configs());
    for n in &mut sim.nodes {
        sim::all_behaviours(n);
    }
    sim.nodes[1].challenge_register = true;
    sim::random_traffic(&mut sim, seed, 250, 500, Duration::from_secs(300));
    sim.run_until_idle(Time::from_millis(3_600_000));
    sim.assert_idle();
    sim
}

#[test]
fn every_edge_of_the_four_machines_is_exercised() {
    let mut total = EdgeCounts::default();
    for (name, sim) in sim::scenarios::all() {
        sim.assert_idle();
        let c = sim.edge_counts();
        eprintln!(
            "{name}: {} edges taken",
            c.iter().filter(|(_, n)| *n > 0).count()
        );
        total.merge(&c);
    }
    for (seed, loss) in [(21, 0.05), (22, 0.3)] {
        total.merge(&randomized(seed, loss).edge_counts());
    }
    let mut missing = Vec::new();
    eprintln!(
        "{:<32} {:<16} {:<11} {:<20} {:<11} {:>8}  source",
        "edge", "machine", "from", "input", "to", "count"
    );
    for (e, n) in total.iter() {
        let s = e.spec();
        eprintln!(
            "{:<32} {:<16} {:<11} {:<20} {:<11} {:>8}  {}",
            format!("{e:?}"),
            format!("{:?}", s.kind),
            s.from.to_string(),
            format!("{:?}", s.input),
            s.to.to_string(),
            n,
            s.source
        );
        if n == 0 {
            missing.push(e);
        }
    }
    assert!(missing.is_empty(), "edges never exercised: {missing:?}");
    assert_eq!(total.iter().count(), Edge::ALL.len());
}
