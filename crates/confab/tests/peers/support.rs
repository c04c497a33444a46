//! Shared helpers of the real-peer suite (`peers_*.rs`): finding the peer programs (a
//! missing one fails the test, naming it, when `CONFAB_REQUIRE_PEERS=1`, and otherwise
//! skips it with a notice), free ports, a `confab serve` with the SIP listeners up, and
//! running a peer with a time limit.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Server, edit_config, which};

/// The peer program `tool` (from the Debian/PyPI/npm package `package`), or `None` when it
/// is missing and the suite may skip. With `CONFAB_REQUIRE_PEERS=1` a missing tool fails.
pub fn require(tool: &str, package: &str) -> Option<PathBuf> {
    if let Some(p) = which(tool) {
        return Some(p);
    }
    let required = std::env::var_os("CONFAB_REQUIRE_PEERS").is_some_and(|v| v == "1");
    assert!(
        !required,
        "CONFAB_REQUIRE_PEERS=1 but `{tool}` is not installed (package {package}; .ci/run installs it)"
    );
    eprintln!(
        "skipping: `{tool}` is not installed (package {package}); set CONFAB_REQUIRE_PEERS=1 to fail instead"
    );
    None
}

/// Fails (or skips, see [`require`]) unless python3 can import `module`.
pub fn require_python_module(module: &str, package: &str) -> Option<PathBuf> {
    let py = require("python3", "python3")?;
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    let required = std::env::var_os("CONFAB_REQUIRE_PEERS").is_some_and(|v| v == "1");
    assert!(
        !required,
        "CONFAB_REQUIRE_PEERS=1 but the python module `{module}` is missing (PyPI package {package}; .ci/run installs it)"
    );
    eprintln!("skipping: python module `{module}` is missing (PyPI package {package})");
    None
}

/// A UDP port nobody uses right now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free for both UDP and TCP on 127.0.0.1 (clients such as baresip bind both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// Files of the suite (`crates/confab/tests/peers/...`).
pub fn peers_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(rel)
}

/// SIP listener keys of a fresh `confab init` folder, in its order.
pub const UDP: &str = "transport.listen[0]";
pub const TCP: &str = "transport.listen[1]";
pub const TLS: &str = "transport.listen[2]";
pub const WS: &str = "transport.listen[3]";
pub const WSS: &str = "transport.listen[4]";

/// Sets `[auth] algorithms` (the order of the challenges).
pub fn set_algorithms(dir: &Path, algorithms: &[&str]) {
    let list: Vec<String> = algorithms.iter().map(|a| format!("\"{a}\"")).collect();
    edit_config(
        dir,
        "algorithms = [\"SHA-256\", \"MD5\"]",
        &format!("algorithms = [{}]", list.join(", ")),
    );
}

/// A log filter that keeps the "listening" lines [`serve`] waits for and little else.
pub const QUIET: &str = "warn,confab::serve=info,confab_frontend=info";

/// Starts `confab serve` (JSON logs at `log`) and waits for the admin and all five SIP
/// listeners.
pub fn serve(dir: &Path, log: &str) -> Server {
    Server::start_with(
        dir,
        log,
        &[],
        &["http.admin.listen", UDP, TCP, TLS, WS, WSS],
    )
}

/// Port of a listener address `127.0.0.1:PORT`.
pub fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Runs `cmd` to completion within `limit`; kills it (and fails, showing its output) when it
/// takes longer.
#[track_caller]
pub fn output_within(mut cmd: Command, limit: Duration, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    wait_within(child, limit, what)
}

/// Waits for `child` (stdout/stderr piped) to exit within `limit`, killing it otherwise.
#[track_caller]
pub fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let mut readers = Vec::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ] {
        readers.push(std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        }));
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = readers.pop().unwrap().join().unwrap();
    let stdout = readers.pop().unwrap().join().unwrap();
    let Some(status) = status else {
        panic!(
            "{what}: still running after {limit:?}, killed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Asserts a peer exited 0, showing its output otherwise.
#[track_caller]
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A long-running peer whose stdout and stderr lines are collected as they come; killed on
/// drop.
pub struct Peer {
    pub child: Child,
    pub name: String,
    pub lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Peer {
    /// Spawns `cmd` with piped stdout/stderr (stdin as the caller set it, null otherwise).
    pub fn spawn(mut cmd: Command, name: &str) -> Peer {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Peer {
            child,
            name: name.to_string(),
            lines,
            readers,
        }
    }

    /// Everything the peer printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a line contains `needle`; fails after `limit` with the output.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the readers catch up with the last lines before deciding.
                std::thread::sleep(Duration::from_millis(100));
                if self
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|l| l.contains(needle))
                {
                    return;
                }
                panic!(
                    "{}: exited ({s}) without printing `{needle}`:\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no `{needle}` within {limit:?}:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the peer to exit within `limit` (killing it otherwise) and returns its
    /// exit status's success.
    #[track_caller]
    pub fn wait(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return s.success();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{}: still running after {limit:?}, killed:\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
