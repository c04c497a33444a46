//! Property tests: the filters never panic on arbitrary bodies and User-Agents, and a body
//! with its links disabled is the original body with only the prefix inserted, still a
//! valid message whose structure the filter reads the same way.

use confab_core::policy::{
    ClientAction, ClientVersionPolicy, ClientVersionRule, FilterScope, ImFilterPolicy, UrlAction,
};
use confab_filters::{BlockCause, ClientVersionFilter, ImFilter, ImVerdict, useragent};
use confab_sip::{Limits, Message, parse_datagram};
use proptest::prelude::*;

const PREFIX: &str = "QQnolinkQQ_";

fn request(method: &str, content_type: Option<&str>, body: &[u8]) -> Option<Message> {
    let ct = content_type
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    let mut text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.org>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{ct}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    text.extend_from_slice(body);
    parse_datagram(text.into(), &Limits::DEFAULT).ok()
}

fn filters() -> Vec<ImFilter> {
    let domains = vec!["example.com".to_owned()];
    let mut out = Vec::new();
    for action in [UrlAction::Block, UrlAction::DisableLinks] {
        let mut p = ImFilterPolicy::default();
        p.urls.action = action;
        p.urls.scope = FilterScope::All;
        p.urls.prefix = PREFIX.into();
        p.files.extensions = vec!["exe".into()];
        out.push(ImFilter::compile(&p, &domains).unwrap());
    }
    out
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("text/plain".to_owned())),
        Just(Some("text/plain; charset=utf-16".to_owned())),
        Just(Some("text/html".to_owned())),
        Just(Some("message/cpim".to_owned())),
        Just(Some("multipart/mixed; boundary=b".to_owned())),
        Just(Some("multipart/alternative; boundary=\"\"".to_owned())),
        Just(Some("application/sdp".to_owned())),
        Just(Some("message/imdn+xml".to_owned())),
        "[a-z/;= \"-]{0,30}".prop_map(Some),
    ]
}

/// Bytes biased toward the syntax the walker reacts to.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"http://x.example/".to_vec()),
        Just(b"www.a.b ".to_vec()),
        Just(b"sip:bob@x ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"--b\r\n".to_vec()),
        Just(b"--b--\r\n".to_vec()),
        Just(b"Content-Type: text/plain\r\n".to_vec()),
        Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
        Just(b"Content-Type: message/cpim\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Content-Disposition: attachment; filename=\"a.exe\"\r\n".to_vec()),
        Just(b"m=message 9 TCP/MSRP *\r\na=file-selector:name:\"x".to_vec()),
        Just(b"&#58;//&colon;".to_vec()),
        Just(b"<a href=//x>".to_vec()),
        prop::collection::vec(any::<u8>(), 0..12),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn im_filter_never_panics_and_rewrites_only_by_insertion(
        ct in content_type(),
        body in body_bytes(),
        method in prop_oneof![Just("MESSAGE"), Just("INVITE")],
    ) {
        let Some(req) = request(method, ct.as_deref(), &body) else { return Ok(()) };
        for f in filters() {
            for external in [false, true] {
                match f.inspect(&req, external) {
                    ImVerdict::Pass | ImVerdict::Block { .. } => {}
                    ImVerdict::Rewrite { body: new, links } => {
                        prop_assert!(links > 0);
                        // Valid message again, with a matching Content-Length.
                        let mut m = req.clone();
                        m.set_body(new.clone());
                        let again = parse_datagram(m.to_bytes(), &Limits::UNLIMITED).unwrap();
                        prop_assert_eq!(again.body(), &new[..]);
                        // The walk reads the new body the same way: no new unreadable part.
                        if let ImVerdict::Block { cause: BlockCause::Unreadable(why), .. } =
                            f.inspect(&again, external)
                        {
                            prop_assert!(false, "rewritten body became unreadable: {}", why);
                        }
                    }
                }
            }
        }
    }

    /// Structured bodies: texts with links, wrapped in CPIM or multipart. Disabling links
    /// only inserts the prefix: removing it gives the original bytes back.
    #[test]
    fn disabling_links_only_inserts_the_prefix(
        texts in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9 .,!?]{0,12}",
                    Just("http://a.example/x".to_owned()),
                    Just("www.b.example".to_owned()),
                    Just(" mailto:c@d.e".to_owned()),
                ],
                0..6,
            ).prop_map(|v| v.concat()),
            1..4,
        ),
        wrap in 0u8..3,
    ) {
        let (ct, body) = match wrap {
            0 => ("text/plain".to_owned(), texts.concat()),
            1 => (
                "message/cpim".to_owned(),
                format!("From: <im:a@b.c>\r\nNS: x <urn:x>\r\n\r\nContent-Type: text/html\r\n\r\n{}", texts.concat()),
            ),
            _ => {
                let mut b = String::from("pre\r\n");
                for t in &texts {
                    b.push_str("--bnd\r\nContent-Type: text/plain\r\n\r\n");
                    b.push_str(t);
                    b.push_str("\r\n");
                }
                b.push_str("--bnd--\r\n");
                ("multipart/mixed; boundary=bnd".to_owned(), b)
            }
        };
        let req = request("MESSAGE", Some(&ct), body.as_bytes()).unwrap();
        let has_links = |t: &str, html| !confab_filters::links(t.as_bytes(), html).is_empty();
        let any_link = match wrap {
            0 => has_links(&texts.concat(), false),
            1 => has_links(&texts.concat(), true),
            _ => texts.iter().any(|t| has_links(t, false)),
        };
        let f = &filters()[1];
        match f.inspect(&req, true) {
            ImVerdict::Rewrite { body: new, links } => {
                prop_assert!(any_link);
                let new = String::from_utf8(new.to_vec()).unwrap();
                prop_assert_eq!(new.matches(PREFIX).count(), links);
                prop_assert_eq!(new.replace(PREFIX, ""), body);
            }
            ImVerdict::Pass => prop_assert!(!any_link),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn user_agents_never_panic(ua in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let f = ClientVersionFilter::compile(
            &ClientVersionPolicy {
                rules: vec![
                    ClientVersionRule::new("*phone*", "< 5.0", ClientAction::block(None)),
                    ClientVersionRule::new("*", "!= 1.*", ClientAction::allow()),
                ],
                default: ClientAction::block(None),
            },
            "h.example",
        ).unwrap();
        let _ = f.test(Some(&ua));
        let n = useragent::products(&ua).count();
        prop_assert!(n <= ua.len());
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = f.test(Some(&lossy));
        // Through a request too (a header value that is valid SIP).
        let clean: String = ua.chars().filter(|c| !c.is_control()).collect();
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 REGISTER\r\nUser-Agent: {clean}\r\nContent-Length: 0\r\n\r\n"
        );
        if let Ok(m) = parse_datagram(text.into(), &Limits::DEFAULT) {
            let _ = f.check(&m);
        }
    }
}
