//! Runs the relay from a TOML file with a `[turn]` table until SIGINT (for benchmarks and
//! manual tests, until the `confab` binary wires `confab serve --role av-edge`).
//!
//! `cargo run --release -p confab-turn --example turn-server -- bench/turn/confab.toml`

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    turn: confab_turn::TurnConfig,
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: turn-server CONFIG.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let handle = confab_turn::serve(file.turn).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!(
            "listening udp={:?} tcp={:?} tls={:?}",
            handle.udp_addrs(),
            handle.tcp_addrs(),
            handle.tls_addrs()
        );
        let _ = tokio::signal::ctrl_c().await;
        let stats = handle.stats();
        handle.shutdown().await;
        println!("stopped: {stats:?}");
    });
}
