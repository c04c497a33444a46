//! A Front End with `N` users (`user0`..`user{N-1}@example.com`, password `user{i}-pw`) on a
//! UDP port, for load tests with SIPp. Prints `udp=ADDR` and runs until stdin closes.
//!
//! ```text
//! cargo run --release -p confab-frontend --features testing --example serve_users -- 1000 [MD5,SHA-256] [WORKERS]
//! ```

use confab_frontend::FrontendSettings;
use confab_frontend::testing::TestServer;
use confab_transport::TransportKind;
use tokio::io::AsyncReadExt as _;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let algorithms: Vec<String> = args
        .next()
        .unwrap_or_else(|| "MD5,SHA-256".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut settings = FrontendSettings::new("bench", &["example.com".into()]);
    settings.frontend.workers = workers;
    settings.auth.algorithms = algorithms;
    settings.auth.max_failures_per_minute = 0;
    let server = TestServer::builder()
        .numbered_users("user", "example.com", n)
        .listen(&[TransportKind::Udp])
        .settings(settings)
        .start()
        .await;
    println!("udp={}", server.addr(TransportKind::Udp));
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    server.stop().await;
}
