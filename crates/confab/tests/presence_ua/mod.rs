//! A minimal SIP user agent over UDP for the presence tests: sends requests, answers the
//! digest challenge (MD5), answers every NOTIFY it receives with 200 and keeps them.
//! Written for the tests only: text in, text out, no parser of the project's crates (so it
//! checks the server's wire format independently).

#![allow(dead_code)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use confab_digest::{HashKind, ha1};

/// A received message.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The start line.
    pub start: String,
    /// Headers (name as written, value).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Msg {
    fn parse(text: &str) -> Option<Msg> {
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Some(Msg {
            start,
            headers,
            body: body.to_owned(),
        })
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.start
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
    }

    /// The first value of a header (case-insensitive, compact forms given by the caller).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `tag` parameter of the To header.
    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To").or_else(|| self.header("t"))?;
        to.split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .map(str::to_owned)
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        if self.start.starts_with("SIP/2.0") {
            None
        } else {
            self.start.split(' ').next()
        }
    }
}

/// A user agent for `user@domain` with `password`.
pub struct Ua {
    /// The socket.
    pub sock: UdpSocket,
    /// The server (`ip:port`).
    pub server: String,
    /// The user part.
    pub user: String,
    /// The domain.
    pub domain: String,
    password: String,
    /// NOTIFYs received (answered 200), in order.
    pub notifies: Vec<Msg>,
    n: u32,
}

fn md5_hex(parts: &[&[u8]]) -> String {
    HashKind::Md5.hash_parts(parts).to_hex().as_str().to_owned()
}

fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    challenge.split(',').find_map(|p| {
        let p = p.trim();
        let p = p.strip_prefix("Digest ").unwrap_or(p);
        let (n, v) = p.split_once('=')?;
        (n.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

impl Ua {
    /// A UA on a fresh loopback port.
    pub fn new(server: &str, user: &str, domain: &str, password: &str) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Ua {
            sock,
            server: server.to_owned(),
            user: user.to_owned(),
            domain: domain.to_owned(),
            password: password.to_owned(),
            notifies: Vec::new(),
            n: 0,
        }
    }

    /// Our `ip:port`.
    pub fn local(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    /// Sends raw text to the server.
    pub fn send_raw(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), &self.server).unwrap();
    }

    /// Receives one message (answering NOTIFYs and keeping them), or `None` at the deadline.
    fn recv_one(&mut self, until: Instant) -> Option<Msg> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let (n, from) = match self.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(_) => continue,
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let Some(m) = Msg::parse(&text) else { continue };
            if m.method().is_some() {
                // Answer requests from the server (NOTIFY) with 200.
                let mut resp = String::from("SIP/2.0 200 OK\r\n");
                for (name, v) in &m.headers {
                    if ["via", "v", "from", "f", "call-id", "i", "cseq"]
                        .contains(&name.to_ascii_lowercase().as_str())
                    {
                        resp.push_str(&format!("{name}: {v}\r\n"));
                    }
                    if ["to", "t"].contains(&name.to_ascii_lowercase().as_str()) {
                        resp.push_str(&format!("{name}: {v}\r\n"));
                    }
                }
                resp.push_str("Content-Length: 0\r\n\r\n");
                let _ = self.sock.send_to(resp.as_bytes(), from);
                if m.method() == Some("NOTIFY") {
                    self.notifies.push(m.clone());
                }
                return Some(m);
            }
            return Some(m);
        }
    }

    /// Waits until a NOTIFY beyond the first `seen` arrives; returns it.
    pub fn wait_notify(&mut self, seen: usize, timeout: Duration) -> Option<Msg> {
        let until = Instant::now() + timeout;
        while self.notifies.len() <= seen {
            self.recv_one(until)?;
        }
        Some(self.notifies[seen].clone())
    }

    /// Keeps receiving (answering NOTIFYs) for `d`.
    pub fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while self.recv_one(until).is_some() {}
    }

    /// Sends a request (template: start line and headers without Via, Content-Length,
    /// Max-Forwards, CSeq and auth; `{}` in the body is not interpreted) and returns the final
    /// response, answering a 401/407 once with MD5 digest.
    pub fn request(
        &mut self,
        method: &str,
        uri: &str,
        call_id: &str,
        cseq: &mut u32,
        headers: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Msg {
        let mut auth: Option<(String, String)> = None;
        for _attempt in 0..2 {
            *cseq += 1;
            self.n += 1;
            let branch = format!("z9hG4bKua{}x{}", std::process::id(), self.n);
            let mut t = format!(
                "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};rport;branch={branch}\r\nMax-Forwards: 70\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n",
                self.local()
            );
            for (n, v) in headers {
                t.push_str(&format!("{n}: {v}\r\n"));
            }
            if let Some((h, v)) = &auth {
                t.push_str(&format!("{h}: {v}\r\n"));
            }
            let (ct, b) = body.unwrap_or(("", ""));
            if !ct.is_empty() {
                t.push_str(&format!("Content-Type: {ct}\r\n"));
            }
            t.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
            self.send_raw(&t);
            let until = Instant::now() + Duration::from_secs(10);
            let resp = loop {
                let m = self
                    .recv_one(until)
                    .unwrap_or_else(|| panic!("no response to {method}"));
                if m.status().is_some_and(|s| s >= 200)
                    && m.header("CSeq")
                        .is_some_and(|c| c.starts_with(&cseq.to_string()))
                {
                    break m;
                }
            };
            let code = resp.status().unwrap();
            if (code == 401 || code == 407) && auth.is_none() {
                let (ch, ah) = if code == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let challenge = resp
                    .headers_named(ch)
                    .into_iter()
                    .find(|c| c.contains("MD5"))
                    .or_else(|| resp.header(ch))
                    .unwrap()
                    .to_owned();
                let realm = param(&challenge, "realm").unwrap();
                let nonce = param(&challenge, "nonce").unwrap();
                let h1 = ha1(HashKind::Md5, &self.user, realm, &self.password).to_hex();
                let h2 = md5_hex(&[method.as_bytes(), b":", uri.as_bytes()]);
                let cnonce = format!("c{}", self.n);
                let response = md5_hex(&[
                    h1.as_str().as_bytes(),
                    b":",
                    nonce.as_bytes(),
                    b":00000001:",
                    cnonce.as_bytes(),
                    b":auth:",
                    h2.as_bytes(),
                ]);
                auth = Some((
                    ah.to_owned(),
                    format!(
                        "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"",
                        self.user
                    ),
                ));
                continue;
            }
            return resp;
        }
        panic!("{method} still challenged after authenticating");
    }

    /// Our From header value with `tag`.
    pub fn from(&self, tag: &str) -> String {
        format!("<sip:{}@{}>;tag={tag}", self.user, self.domain)
    }

    /// Our Contact.
    pub fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.local())
    }
}

/// A PIDF document for `user@domain` with basic `open`/`closed` and an optional note.
pub fn pidf(entity: &str, basic: &str, note: Option<&str>) -> String {
    let note = note
        .map(|n| format!("<note>{n}</note>"))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:{entity}\"><tuple id=\"t1\"><status><basic>{basic}</basic></status></tuple>{note}</presence>"
    )
}
