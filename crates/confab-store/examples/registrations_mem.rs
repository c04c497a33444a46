//! Memory per binding of the SQLite `RegistrationStore` (issue 7's measure):
//! (RSS with N bindings, after every AOR was looked up once - RSS with none) / N.
//!
//! ```text
//! cargo run --release -p confab-store --example registrations_mem [N]
//! ```
//!
//! N defaults to 100,000. The database is a temporary file. What the figure holds: the
//! in-memory lookup mirror (one compact entry per AOR) plus SQLite's page caches, which are
//! bounded (default 2 MB per connection: one writer and `read_connections` readers), plus
//! whatever the allocator keeps from the write phase. Also prints the wall and process CPU
//! time per REGISTER-like update (64 concurrent writers, group commit, `synchronous=FULL`)
//! and per lookup.

use std::sync::Arc;
use std::time::Instant;

use confab_core::{Address, Binding, FlowInfo, QValue, RegistrationStore, SipTransport, Timestamp};
use confab_store::{SqliteStore, StoreConfig};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time (user + system) of this process, in microseconds.
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 * 1e6 / 100.0
}

fn binding(i: u32) -> Binding {
    let aor = Address::parse(&format!("user{i}@example.com")).expect("valid address");
    Binding {
        aor,
        contact: format!(
            "sip:user{i}@10.{}.{}.{}:5060;transport=udp",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ),
        params: "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\"".into(),
        q: QValue::from_thousandths(1000),
        expires_at: Timestamp(4_000_000_000_000),
        call_id: format!("{i:08x}-4d2a-11ef-9c1e-0242ac120002"),
        cseq: 2,
        instance: Some("<urn:uuid:00000000-0000-1000-8000-000a95a0e128>".into()),
        reg_id: None,
        flow: FlowInfo {
            token: "NAoAAAATxAAA".into(),
            transport: SipTransport::Udp,
            source: format!("10.{}.{}.{}:5060", i >> 16, (i >> 8) & 255, i & 255)
                .parse()
                .expect("valid address"),
            node: "node-1".into(),
        },
        path: vec![],
        user_agent: Some("baresip v3.10.1 (x86_64/linux)".into()),
        registered_at: Timestamp(1_700_000_000_000),
        updated_at: Timestamp(1_700_000_000_000),
        temp_gruu: None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("confab-regmem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = Arc::new(
        SqliteStore::open_or_create(StoreConfig::new(dir.join("r.db")))
            .await
            .expect("open store"),
    );
    // Warm the read pool and the writer once, so the baseline holds their fixed costs.
    let probe = Address::parse("nobody@example.com").expect("valid");
    let _ = store.lookup(&probe, Timestamp(0)).await;
    let base = rss_bytes();

    let (t, c) = (Instant::now(), cpu_us());
    let writers = 64u32;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                let b = binding(i);
                let aor = b.aor.clone();
                s.update_bindings(&aor, Box::new(move |_| Ok(vec![b])))
                    .await
                    .expect("update");
                i += writers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let (write, write_cpu) = (t.elapsed(), cpu_us() - c);

    let (t, c) = (Instant::now(), cpu_us());
    for i in 0..n {
        let aor = Address::parse(&format!("user{i}@example.com")).expect("valid");
        let found = store.lookup(&aor, Timestamp(0)).await.expect("lookup");
        assert_eq!(found.len(), 1);
    }
    let (read, read_cpu) = (t.elapsed(), cpu_us() - c);
    let after = rss_bytes();
    let count = store.count_bindings().await.expect("count");
    let file = std::fs::metadata(dir.join("r.db"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(dir.join("r.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!("bindings: {count}");
    println!(
        "RSS: {} KiB before, {} KiB after; {:.0} bytes per binding",
        base / 1024,
        after / 1024,
        after.saturating_sub(base) as f64 / f64::from(n)
    );
    println!(
        "database + WAL on disk: {:.0} bytes per binding",
        file as f64 / f64::from(n)
    );
    println!(
        "updates (64 concurrent writers, group commit): {:.1} µs wall, {:.1} µs CPU each",
        write.as_secs_f64() * 1e6 / f64::from(n),
        write_cpu / f64::from(n)
    );
    println!(
        "lookups (sequential): {:.1} µs wall, {:.1} µs CPU each",
        read.as_secs_f64() * 1e6 / f64::from(n),
        read_cpu / f64::from(n)
    );
}
