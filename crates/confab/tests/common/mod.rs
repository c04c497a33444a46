//! Helpers for the integration tests: they run the real `confab` binary in a temporary
//! folder, on ports the operating system picks, and talk to it with curl.

#![allow(dead_code)]

pub mod sipp;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_confab");

/// A `confab` command with a clean environment (no CONFAB_CONFIG / CONFAB_LOG from the
/// caller) running in `cwd`.
pub fn confab(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd)
        .env_remove("CONFAB_CONFIG")
        .env_remove("CONFAB_LOG")
        .stdin(Stdio::null());
    c
}

/// Runs `confab ARGS` with `--config DIR/confab.toml`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    let cfg = dir.join("confab.toml");
    let mut c = confab(dir);
    c.arg("--config").arg(&cfg).args(args);
    c.output().expect("run confab")
}

/// Runs `confab ARGS` feeding `stdin`.
pub fn run_with_stdin(dir: &Path, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Output {
    let cfg = dir.join("confab.toml");
    let mut c = confab(dir);
    c.arg("--config")
        .arg(&cfg)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn confab");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
#[track_caller]
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit code\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// A temporary data folder initialised with `confab init --domain DOMAIN`, with the HTTP
/// listeners moved to port 0 (the OS picks; the server logs the real ports).
pub fn init_dir(domain: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = confab(dir.path())
        .args(["init", "--dir", "."])
        .args(["--domain", domain])
        .output()
        .unwrap();
    expect_code(&out, 0);
    let cfg = dir.path().join("confab.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace("\"127.0.0.1:9090\"", "\"127.0.0.1:0\"")
        .replace("\"127.0.0.1:9443\"", "\"127.0.0.1:0\"")
        // The SIP listeners too, so tests run side by side (the server logs the real ports
        // as `transport.listen[i]`).
        .replace("\"udp:127.0.0.1:5060\"", "\"udp:127.0.0.1:0\"")
        .replace("\"tcp:127.0.0.1:5060\"", "\"tcp:127.0.0.1:0\"")
        .replace("\"tls:127.0.0.1:5061\"", "\"tls:127.0.0.1:0\"")
        .replace("\"ws:127.0.0.1:8080\"", "\"ws:127.0.0.1:0\"")
        .replace("\"wss:127.0.0.1:8443\"", "\"wss:127.0.0.1:0\"");
    std::fs::write(&cfg, text).unwrap();
    dir
}

/// Replaces `from` with `to` in the configuration file (must occur).
pub fn edit_config(dir: &Path, from: &str, to: &str) {
    let cfg = dir.join("confab.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(from), "`{from}` not in the config");
    std::fs::write(&cfg, text.replacen(from, to, 1)).unwrap();
}

/// Creates an admin API token and returns its secret.
pub fn token(dir: &Path, name: &str) -> String {
    let o = run(dir, &["token", "create", "--name", name]);
    expect_code(&o, 0);
    stdout(&o).trim().to_string()
}

/// Adds a user with a password.
pub fn add_user(dir: &Path, address: &str, password: &str) {
    let o = run_with_stdin(
        dir,
        &["user", "add", address, "--password-stdin"],
        password,
        &[],
    );
    expect_code(&o, 0);
}

/// A running `confab serve` (JSON logs); killed on drop.
pub struct Server {
    /// The child process (started by this test).
    pub child: Child,
    /// Log lines so far.
    pub lines: Arc<Mutex<Vec<String>>>,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// `https://127.0.0.1:PORT` of the user listener.
    pub user: String,
    /// Port of the user listener.
    pub user_port: u16,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Bound address of every listener that logged "listening", by config key.
    pub addrs: std::collections::HashMap<String, String>,
}

impl Server {
    /// Starts `confab serve` in `dir` with the given `CONFAB_LOG` and waits until both
    /// HTTP listeners are up.
    pub fn start(dir: &Path, log: &str) -> Server {
        Self::start_with(dir, log, &[], &["http.admin.listen", "http.user.listen"])
    }

    /// Starts `confab serve ARGS` and waits for a "listening" line for each of `listeners`
    /// (config keys such as `turn.listen_udp`).
    pub fn start_with(dir: &Path, log: &str, args: &[&str], listeners: &[&str]) -> Server {
        let mut child = confab(dir)
            .arg("--config")
            .arg(dir.join("confab.toml"))
            .args(["serve", "--log-format", "json"])
            .args(args)
            .env("CONFAB_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn confab serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for pipe in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut addrs = std::collections::HashMap::new();
        while listeners.iter().any(|l| !addrs.contains_key(*l)) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "confab serve exited with {status}:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
            if Instant::now() >= deadline {
                // Do not leave the server behind when the test fails.
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "confab serve did not start:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
            for l in lines.lock().unwrap().iter() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                    continue;
                };
                if v["message"] == "listening" {
                    addrs.insert(
                        v["listener"].as_str().unwrap().to_string(),
                        v["addr"].as_str().unwrap().to_string(),
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let get = |k: &str| addrs.get(k).cloned().unwrap_or_default();
        let user = get("http.user.listen");
        let user_port = user
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Server {
            child,
            lines,
            admin: format!("http://{}", get("http.admin.listen")),
            user: format!("https://{user}"),
            user_port,
            readers,
            addrs,
        }
    }

    /// All log lines so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the server (a process this test started).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit (and its output to be read); returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return s.code();
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path to curl, or a failure naming it.
pub fn curl_bin() -> PathBuf {
    which("curl").unwrap_or_else(|| {
        panic!("curl is not installed: the HTTP tests need it (Debian package `curl`)")
    })
}

/// Finds a program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// An HTTP response as curl saw it.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Header lines of the last response, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Asserts the one JSON error shape and returns (code, field).
    #[track_caller]
    pub fn error(&self, status: u16) -> (String, Option<String>) {
        assert_eq!(self.status, status, "{self:?}");
        let v = self.json();
        let e = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("no error object: {v}"));
        assert_eq!(e.len(), 3, "{v}");
        assert!(e["message"].is_string(), "{v}");
        (
            e["code"].as_str().unwrap().to_string(),
            e["field"].as_str().map(str::to_string),
        )
    }
}

/// Runs curl with `args` and returns the final response.
pub fn curl(args: &[&str]) -> Resp {
    let head = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(curl_bin())
        .args(["-sS", "-D"])
        .arg(head.path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        stderr(&out)
    );
    let raw = std::fs::read_to_string(head.path()).unwrap();
    // With --digest curl records both responses; keep the last.
    let last = raw
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .unwrap_or("");
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// curl arguments for the admin API with a bearer token.
pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}
