//! Property tests: generated messages (compact forms, random case, folding, whitespace
//! before the colon, %-escaping, IPv6 references, quoted strings with escapes, vendor
//! headers with non-UTF-8 bytes, multipart bodies) parse into what was generated, serialize
//! byte-exact, re-parse equal, and proxy edits leave every other line byte-exact.

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, parse_datagram};
use proptest::prelude::*;

/// A generated header: name as written, value as written (may contain folding), and what
/// the typed accessor should find.
#[derive(Debug, Clone)]
struct GenHeader {
    name: String,
    ws_before_colon: String,
    ws_after_colon: String,
    value: Vec<u8>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Via {
        branch: String,
    },
    NameAddr {
        which: HeaderName,
        display: Option<String>,
        tag: Option<String>,
    },
    CallId,
    CSeq(u32),
    MaxForwards(u8),
    Route,
    Opaque,
}

fn random_case(s: &str) -> impl Strategy<Value = String> {
    let s = s.to_owned();
    proptest::collection::vec(any::<bool>(), s.len()).prop_map(move |flips| {
        s.chars()
            .zip(flips)
            .map(|(c, f)| {
                if f {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    })
}

fn name_for(long: &'static str, compact: Option<&'static str>) -> BoxedStrategy<String> {
    match compact {
        Some(c) => prop_oneof![
            random_case(long),
            Just(c.to_owned()),
            Just(c.to_uppercase())
        ]
        .boxed(),
        None => random_case(long).boxed(),
    }
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,12}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (any::<u16>(), any::<u16>(), any::<u16>())
            .prop_map(|(a, b, c)| format!("[2001:db8:{a:x}::{b:x}:{c:x}]")),
        (1u8..=254).prop_map(|d| format!("[::ffff:192.0.2.{d}]")),
    ]
}

fn escaped_user() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9]".prop_map(|s| s),
            Just("-".to_owned()),
            Just(".".to_owned()),
            Just("%20".to_owned()),
            Just("%40".to_owned()),
            Just("%00".to_owned()),
            Just("+".to_owned()),
            Just(";".to_owned()),
            Just("?".to_owned()),
        ],
        1..12,
    )
    .prop_map(|v| v.concat())
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::option::of(escaped_user()),
        host(),
        proptest::option::of(1u16..),
        proptest::collection::vec(
            (
                "[a-z][a-z0-9-]{0,7}",
                proptest::option::of("([a-zA-Z0-9!~*'()]|%5B){1,8}"),
            ),
            0..3,
        ),
    )
        .prop_map(|(secure, user, host, port, params)| {
            let mut s = String::from(if secure { "sips:" } else { "sip:" });
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

/// A quoted display name with escaped quotes/backslashes, commas and UTF-8.
fn display_name() -> impl Strategy<Value = (String, String)> {
    proptest::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9 ,;:<>@]".prop_map(|s| (s.clone(), s)),
            Just(("\\\"".to_owned(), "\"".to_owned())),
            Just(("\\\\".to_owned(), "\\".to_owned())),
            Just(("é".to_owned(), "é".to_owned())),
            Just(("日本".to_owned(), "日本".to_owned())),
        ],
        0..10,
    )
    .prop_map(|parts| {
        let raw: String = parts.iter().map(|p| p.0.as_str()).collect();
        let plain: String = parts.iter().map(|p| p.1.as_str()).collect();
        (format!("\"{raw}\""), plain)
    })
}

/// Insert folding (CRLF + 1..3 SP/HT) at some of the spaces of a value.
fn fold(value: String) -> impl Strategy<Value = String> {
    // Spaces outside quoted strings (folding inside one is legal but changes the unquoted
    // text, which this generator compares).
    let mut spaces = Vec::new();
    let (mut in_quote, mut escaped) = (false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            ' ' if !in_quote => spaces.push(i),
            _ => {}
        }
    }
    let n = spaces.len();
    (
        proptest::collection::vec(any::<bool>(), n),
        prop_oneof![Just(" "), Just("\t"), Just("   ")],
    )
        .prop_map(move |(which, ws)| {
            let mut out = String::new();
            let mut last = 0;
            for (k, &i) in spaces.iter().enumerate() {
                if which[k] {
                    out.push_str(&value[last..i]);
                    out.push_str("\r\n");
                    out.push_str(ws);
                    last = i + 1;
                }
            }
            out.push_str(&value[last..]);
            out
        })
}

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("  ".to_owned()),
        Just("\t".to_owned())
    ]
}

fn header(
    name: BoxedStrategy<String>,
    value: impl Strategy<Value = (String, Kind)>,
) -> impl Strategy<Value = GenHeader> {
    (name, ws(), ws(), value)
        .prop_flat_map(|(name, b, a, (v, kind))| {
            (Just(name), Just(b), Just(a), fold(v), Just(kind))
        })
        .prop_map(
            |(name, ws_before_colon, ws_after_colon, v, kind)| GenHeader {
                name,
                ws_before_colon,
                ws_after_colon: if ws_after_colon.is_empty() {
                    " ".into()
                } else {
                    ws_after_colon
                },
                value: v.into_bytes(),
                kind,
            },
        )
}

fn via() -> impl Strategy<Value = GenHeader> {
    let v = (
        prop_oneof![Just("UDP"), Just("TCP"), Just("TLS"), Just("WSS")],
        host(),
        proptest::option::of(1u16..),
        token(),
        any::<bool>(),
    )
        .prop_map(|(t, h, port, br, rport)| {
            let branch = format!("z9hG4bK{br}");
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let rport = if rport { " ;rport" } else { "" };
            (
                format!("SIP/2.0/{t} {h}{port};branch={branch}{rport}"),
                Kind::Via { branch },
            )
        });
    header(name_for("Via", Some("v")), v)
}

fn name_addr(
    which: HeaderName,
    long: &'static str,
    compact: &'static str,
) -> impl Strategy<Value = GenHeader> {
    let v = (
        proptest::option::of(display_name()),
        sip_uri(),
        proptest::option::of(token()),
    )
        .prop_map(move |(d, uri, tag)| {
            let mut s = String::new();
            if let Some((raw, _)) = &d {
                s.push_str(raw);
                s.push(' ');
            }
            s.push('<');
            s.push_str(&uri);
            s.push('>');
            if let Some(t) = &tag {
                s.push_str(";tag=");
                s.push_str(t);
            }
            (
                s,
                Kind::NameAddr {
                    which,
                    display: d.map(|d| d.1),
                    tag,
                },
            )
        });
    header(name_for(long, Some(compact)), v)
}

fn opaque() -> impl Strategy<Value = GenHeader> {
    // vendor headers with arbitrary bytes (no CR/LF/NUL, not starting/ending with space)
    let name = prop_oneof!["ms-[a-z-]{1,12}", "X-[A-Za-z-]{1,12}", "P-[A-Z][a-z]{1,8}"].boxed();
    (
        name,
        ws(),
        proptest::collection::vec(prop_oneof![0x21u8..0x7f, 0x80u8..=0xff], 1..40),
    )
        .prop_map(|(name, b, value)| GenHeader {
            name,
            ws_before_colon: b,
            ws_after_colon: " ".into(),
            value,
            kind: Kind::Opaque,
        })
}

fn multipart_body() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        "[a-zA-Z0-9]{8,20}",
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 1..4),
    )
        .prop_map(|(boundary, parts)| {
            let mut body = Vec::new();
            for p in &parts {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n")
                        .as_bytes(),
                );
                body.extend_from_slice(p);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            (format!("multipart/mixed;boundary={boundary}"), body)
        })
}

#[derive(Debug, Clone)]
struct GenMessage {
    start: String,
    headers: Vec<GenHeader>,
    body: Option<(String, Vec<u8>)>,
    cl_name: String,
}

fn message() -> impl Strategy<Value = GenMessage> {
    let start = prop_oneof![
        (
            prop_oneof![
                Just("INVITE".to_owned()),
                Just("OPTIONS".to_owned()),
                Just("MESSAGE".to_owned()),
                token()
            ],
            sip_uri()
        )
            .prop_map(|(m, u)| format!("{m} {u} SIP/2.0")),
        (100u16..700, "[ -~]{0,20}").prop_map(|(c, r)| format!("SIP/2.0 {c} {r}")),
    ];
    let fixed = (
        proptest::collection::vec(via(), 1..4),
        name_addr(HeaderName::From, "From", "f"),
        name_addr(HeaderName::To, "To", "t"),
        header(
            name_for("Call-ID", Some("i")),
            token().prop_map(|t| (format!("{t}@host"), Kind::CallId)),
        ),
        header(
            name_for("CSeq", None),
            any::<u32>().prop_map(|n| (format!("{n} INVITE"), Kind::CSeq(n))),
        ),
        header(
            name_for("Max-Forwards", None),
            any::<u8>().prop_map(|n| (n.to_string(), Kind::MaxForwards(n))),
        ),
        proptest::collection::vec(
            header(
                name_for("Route", None),
                sip_uri().prop_map(|u| (format!("<{u};lr>"), Kind::Route)),
            ),
            0..3,
        ),
        proptest::collection::vec(opaque(), 0..5),
    );
    (
        start,
        fixed,
        proptest::option::of(multipart_body()),
        name_for("Content-Length", Some("l")),
        any::<u64>(),
    )
        .prop_map(
            |(start, (vias, from, to, cid, cseq, mf, routes, opaque), body, cl_name, seed)| {
                let mut headers = Vec::new();
                headers.extend(vias);
                headers.extend(routes);
                headers.extend([from, to, cid, cseq, mf]);
                // interleave vendor headers deterministically from the seed
                for (i, o) in opaque.into_iter().enumerate() {
                    let at = (seed as usize).wrapping_add(i * 7) % (headers.len() + 1);
                    headers.insert(at, o);
                }
                GenMessage {
                    start,
                    headers,
                    body,
                    cl_name,
                }
            },
        )
}

fn serialize(g: &GenMessage) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(g.start.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &g.headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(h.ws_before_colon.as_bytes());
        out.push(b':');
        out.extend_from_slice(h.ws_after_colon.as_bytes());
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
    let body: &[u8] = g.body.as_ref().map_or(&[], |b| &b.1);
    if let Some((ct, _)) = &g.body {
        out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("{}: {}\r\n\r\n", g.cl_name, body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_messages_parse_as_generated_and_round_trip(g in message()) {
        let bytes = serialize(&g);
        let m = parse_datagram(Bytes::from(bytes.clone()), &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        // serialize(parse(bytes)) == bytes
        prop_assert_eq!(m.to_bytes(), &bytes[..]);
        // parse(serialize(m)) == m
        prop_assert_eq!(&Message::parse(&m.to_bytes()).unwrap(), &m);
        // every generated header is there as written
        let fields: Vec<_> = m.headers().collect();
        for (f, h) in fields.iter().zip(&g.headers) {
            prop_assert_eq!(f.raw_name(), h.name.as_bytes());
            prop_assert_eq!(f.value(), &h.value[..]);
        }
        // typed values are what was generated
        let mut vias = m.vias();
        let mut routes = 0;
        for h in &g.headers {
            match &h.kind {
                Kind::Via { branch } => {
                    let v = vias.next().unwrap().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(v.branch, Some(branch.as_str()));
                }
                Kind::NameAddr { which, display, tag } => {
                    let n = if *which == HeaderName::From { m.from() } else { m.to() };
                    let n = n.unwrap().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(n.tag(), tag.as_deref());
                    prop_assert_eq!(n.display_name_unquoted().map(|d| d.into_owned()), display.clone());
                }
                Kind::CSeq(n) => prop_assert_eq!(m.cseq().unwrap().unwrap().seq, *n),
                Kind::MaxForwards(n) => prop_assert_eq!(m.max_forwards().unwrap().unwrap(), *n),
                Kind::CallId => prop_assert!(m.call_id().unwrap().is_ok()),
                Kind::Route => routes += 1,
                Kind::Opaque => {}
            }
        }
        prop_assert_eq!(m.routes().filter(|r| r.is_ok()).count(), routes);
        prop_assert_eq!(m.body(), g.body.as_ref().map_or(&[][..], |b| &b.1[..]));
        if let Some((ct, _)) = &g.body {
            let ctv = m.content_type().unwrap().unwrap();
            prop_assert_eq!(Some(ctv.boundary().unwrap()), ct.split('=').nth(1));
        }
    }

    #[test]
    fn proxy_edits_keep_unrelated_lines_byte_exact(g in message(), new_body in proptest::collection::vec(any::<u8>(), 0..100)) {
        let bytes = serialize(&g);
        let mut m = parse_datagram(Bytes::from(bytes), &Limits::default()).unwrap();
        let untouched = |m: &Message| -> Vec<Vec<u8>> {
            m.headers()
                .filter(|f| !matches!(f.name(), HeaderName::Via | HeaderName::MaxForwards | HeaderName::Route
                    | HeaderName::RecordRoute | HeaderName::ContentLength))
                .map(|f| f.raw_line().to_vec())
                .collect()
        };
        let before = untouched(&m);
        let vias_before = m.vias().count();
        let routes_before = m.routes().count();
        m.prepend_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy").unwrap();
        m.set_max_forwards(42);
        m.remove_first_route();
        m.prepend_record_route("<sip:proxy.example.com;lr>").unwrap();
        m.set_body(Bytes::from(new_body.clone()));
        let out = m.to_bytes();
        let re = Message::parse(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(untouched(&re), before);
        prop_assert_eq!(re.vias().count(), vias_before + 1);
        prop_assert_eq!(re.top_via().unwrap().unwrap().branch, Some("z9hG4bKproxy"));
        prop_assert_eq!(re.max_forwards().unwrap().unwrap(), 42);
        prop_assert_eq!(re.routes().count(), routes_before.saturating_sub(1));
        prop_assert_eq!(re.record_routes().count(), 1);
        prop_assert_eq!(re.body(), &new_body[..]);
        prop_assert_eq!(&re, &m);
        // and the response direction removes exactly the Via we added
        let mut back = re.clone();
        back.remove_top_via();
        prop_assert_eq!(back.vias().count(), vias_before);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(m) = parse_datagram(Bytes::from(data.clone()), &Limits::default()) {
            let _ = m.typed_header_errors();
            let _ = m.check();
            let re = Message::parse(&m.to_bytes()).ok();
            prop_assert_eq!(re.as_ref(), Some(&m));
        }
        let _ = confab_sip::frame_stream(&data, &Limits::default());
    }
}
