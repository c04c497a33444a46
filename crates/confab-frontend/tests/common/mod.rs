//! A minimal SIP user agent for end-to-end tests over UDP, TCP and WebSocket: raw messages
//! in and out, digest answered with `confab-digest`'s client side.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use confab_digest::{Answer, Challenge, answer_challenge};
use confab_sip::{Frame, HeaderName, Limits, Message, ResponseBuilder};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
}

pub struct Ua {
    pub user: String,
    pub password: String,
    pub domain: String,
    pub conn: Conn,
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub via_transport: &'static str,
    pub counter: u32,
}

impl Ua {
    pub async fn udp(server: SocketAddr, user: &str, pw: &str) -> Ua {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = s.local_addr().unwrap();
        Ua::new(Conn::Udp(s), local, server, "UDP", user, pw)
    }

    pub async fn tcp(server: SocketAddr, user: &str, pw: &str) -> Ua {
        let s = TcpStream::connect(server).await.unwrap();
        let local = s.local_addr().unwrap();
        Ua::new(Conn::Tcp(s, Vec::new()), local, server, "TCP", user, pw)
    }

    pub async fn ws(server: SocketAddr, user: &str, pw: &str) -> Ua {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = format!("ws://{server}/").into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let local = match ws.get_ref() {
            MaybeTlsStream::Plain(s) => s.local_addr().unwrap(),
            _ => unreachable!(),
        };
        Ua::new(Conn::Ws(Box::new(ws)), local, server, "WS", user, pw)
    }

    fn new(
        conn: Conn,
        local: SocketAddr,
        server: SocketAddr,
        t: &'static str,
        user: &str,
        pw: &str,
    ) -> Ua {
        Ua {
            user: user.into(),
            password: pw.into(),
            domain: "example.com".into(),
            conn,
            local,
            server,
            via_transport: t,
            counter: 0,
        }
    }

    pub fn next(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    /// `sent-by` for Via and the Contact (WebSocket clients use an `.invalid` host).
    pub fn contact(&self) -> String {
        match self.conn {
            Conn::Ws(_) => format!("<sip:{}@{}.invalid;transport=ws>", self.user, self.user),
            Conn::Tcp(..) => format!("<sip:{}@{};transport=tcp>", self.user, self.local),
            Conn::Udp(_) => format!("<sip:{}@{}>", self.user, self.local),
        }
    }

    pub fn via(&mut self) -> String {
        let n = self.next();
        let host = match self.conn {
            Conn::Ws(_) => format!("{}.invalid", self.user),
            _ => self.local.to_string(),
        };
        format!(
            "SIP/2.0/{} {host};branch=z9hG4bK-{}-{n};rport",
            self.via_transport, self.user
        )
    }

    pub async fn send(&mut self, text: &str) {
        let bytes = text.replace("\r\n", "\n").replace('\n', "\r\n");
        match &mut self.conn {
            Conn::Udp(s) => {
                s.send_to(bytes.as_bytes(), self.server).await.unwrap();
            }
            Conn::Tcp(s, _) => s.write_all(bytes.as_bytes()).await.unwrap(),
            Conn::Ws(ws) => ws.send(WsMessage::text(bytes)).await.unwrap(),
        }
    }

    pub async fn send_msg(&mut self, m: &Message) {
        let text = String::from_utf8(m.to_bytes().to_vec()).unwrap();
        self.send(&text).await;
    }

    /// The next message (5 s at most).
    pub async fn recv(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(5), self.recv_inner())
            .await
            .unwrap_or_else(|_| panic!("{}: nothing received within 5 s", self.user))
    }

    async fn recv_inner(&mut self) -> Message {
        loop {
            match &mut self.conn {
                Conn::Udp(s) => {
                    let mut buf = vec![0u8; 65535];
                    let (n, _) = s.recv_from(&mut buf).await.unwrap();
                    buf.truncate(n);
                    return confab_sip::parse_datagram(Bytes::from(buf), &Limits::DEFAULT).unwrap();
                }
                Conn::Tcp(s, buf) => {
                    match confab_sip::frame_stream(buf, &Limits::DEFAULT) {
                        Frame::Message { len } => {
                            let m: Vec<u8> = buf.drain(..len).collect();
                            return confab_sip::parse_stream(Bytes::from(m), &Limits::DEFAULT)
                                .unwrap();
                        }
                        Frame::KeepAlive { len, .. } => {
                            buf.drain(..len);
                            continue;
                        }
                        Frame::NeedMore => {}
                        Frame::Lost(e) => panic!("framing lost: {e}"),
                    }
                    let mut chunk = [0u8; 8192];
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "{}: connection closed", self.user);
                    buf.extend_from_slice(&chunk[..n]);
                }
                Conn::Ws(ws) => {
                    let m = ws.next().await.expect("ws open").unwrap();
                    let data = match m {
                        WsMessage::Text(t) => Bytes::from(t.as_bytes().to_vec()),
                        WsMessage::Binary(b) => b,
                        _ => continue,
                    };
                    return confab_sip::parse_websocket(data, &Limits::DEFAULT).unwrap();
                }
            }
        }
    }

    /// The next message that is not a 100 Trying.
    pub async fn recv_skip_trying(&mut self) -> Message {
        loop {
            let m = self.recv().await;
            if m.status() != Some(100) {
                return m;
            }
        }
    }

    /// Credentials answering the first challenge of `resp` for `method` `uri`.
    pub fn answer(&self, resp: &Message, method: &str, uri: &str) -> (String, String) {
        let (ask, give) = if resp.status() == Some(401) {
            (HeaderName::WwwAuthenticate, "Authorization")
        } else {
            (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
        };
        let v = resp.get(ask).unwrap().value_str().unwrap().to_owned();
        let ch = Challenge::parse(&v).unwrap();
        let creds = answer_challenge(
            &ch,
            &Answer {
                username: &self.user,
                password: &self.password,
                method,
                uri,
                cnonce: "0a4f113b",
                nc: 1,
                body: b"",
            },
        )
        .unwrap();
        (give.to_owned(), creds.to_string())
    }

    /// REGISTER with digest; returns the 200.
    pub async fn register(&mut self) -> Message {
        let call_id = format!("reg-{}-{}", self.user, self.local);
        let uri = format!("sip:{}", self.domain);
        let mut auth = String::new();
        for cseq in 1..=2 {
            let via = self.via();
            let text = format!(
                "REGISTER {uri} SIP/2.0\nVia: {via}\nFrom: <sip:{u}@{d}>;tag=r{u}\n\
                 To: <sip:{u}@{d}>\nCall-ID: {call_id}\nCSeq: {cseq} REGISTER\n\
                 Contact: {c}\nExpires: 300\nMax-Forwards: 70\n{auth}Content-Length: 0\n\n",
                u = self.user,
                d = self.domain,
                c = self.contact(),
            );
            self.send(&text).await;
            let r = self.recv().await;
            match r.status() {
                Some(200) => return r,
                Some(401) if cseq == 1 => {
                    let (h, v) = self.answer(&r, "REGISTER", &uri);
                    auth = format!("{h}: {v}\n");
                }
                other => panic!("{}: REGISTER got {other:?}", self.user),
            }
        }
        unreachable!()
    }

    /// A response to `req` with our tag, Contact, and (for dialog-creating requests) its
    /// Record-Route.
    pub fn reply(&self, req: &Message, status: u16) -> Message {
        let mut b = ResponseBuilder::reply_to(req, status)
            .unwrap()
            .to_tag(&format!("t{}", self.user));
        if (200..300).contains(&status) || (101..200).contains(&status) {
            for rr in req.get_all(HeaderName::RecordRoute) {
                b = b.header(HeaderName::RecordRoute, rr.value_str().unwrap());
            }
            b = b.header(HeaderName::Contact, &self.contact());
        }
        b.build().unwrap()
    }
}

/// The values of a header, in order (lists split at commas outside `<>`).
pub fn values(m: &Message, name: HeaderName) -> Vec<String> {
    let mut out = Vec::new();
    for f in m.get_all(name) {
        let v = f.value_str().unwrap();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in v.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(v[start..i].trim().to_owned());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(v[start..].trim().to_owned());
    }
    out
}
