//! CPU cost of the filters per request, single-threaded, on this machine:
//! `cargo run --release -p confab-filters --example filter_cost`.
//!
//! Prints nanoseconds per operation; asserts nothing (figures vary with the machine).

use std::hint::black_box;
use std::time::Instant;

use confab_core::policy::{
    ClientAction, ClientVersionPolicy, ClientVersionRule, FilterScope, ImFilterPolicy, UrlAction,
};
use confab_filters::{ClientVersionFilter, ImFilter, Snapshot};
use confab_sip::{Limits, Message, parse_datagram};

fn request(method: &str, extra: &str, body: &str) -> Message {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.org>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    parse_datagram(text.into(), &Limits::DEFAULT).unwrap()
}

fn time(label: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{label:<58} {ns:>9.0} ns/op");
}

fn main() {
    // 20 rules, none of which matches the client: every rule is tried.
    let rules: Vec<ClientVersionRule> = (0..20)
        .map(|i| {
            ClientVersionRule::new(&format!("Product{i}*"), "< 5.0", ClientAction::block(None))
        })
        .collect();
    let cv = ClientVersionFilter::compile(
        &ClientVersionPolicy {
            rules,
            default: ClientAction::allow(),
        },
        "sip.example.com",
    )
    .unwrap();
    let register = request(
        "REGISTER",
        "User-Agent: Linphone-Desktop/5.2.1 (Ubuntu 22.04.3 LTS, Qt 5.15.3) LinphoneCore/5.2.0\r\n",
        "",
    );
    time(
        "client-version: REGISTER, 20 rules, no match",
        1_000_000,
        || {
            black_box(cv.check(black_box(&register)));
        },
    );
    let snap = Snapshot::new(cv);
    time(
        "snapshot load (Arc clone under read lock)",
        5_000_000,
        || {
            black_box(snap.load());
        },
    );

    let domains = vec!["example.com".to_owned()];
    let mut p = ImFilterPolicy::default();
    p.urls.action = UrlAction::DisableLinks;
    p.urls.scope = FilterScope::All;
    p.files.extensions = vec!["exe".into(), "bat".into()];
    let im = ImFilter::compile(&p, &domains).unwrap();
    let text = "Hello Bob, are we still on for the meeting this afternoon? I have the slides \
                ready and will share them once everyone has joined the call. Cheers, Alice.";
    let plain = request(
        "MESSAGE",
        "Content-Type: text/plain;charset=UTF-8\r\n",
        text,
    );
    time(
        "im-filter: MESSAGE text/plain 180 B, no link",
        1_000_000,
        || {
            black_box(im.inspect(black_box(&plain), true));
        },
    );
    let linked = request(
        "MESSAGE",
        "Content-Type: text/plain\r\n",
        "See https://intranet.example.com/slides and www.example.org/agenda before 3pm.",
    );
    time(
        "im-filter: MESSAGE text/plain, 2 links disabled (rewrite)",
        1_000_000,
        || {
            black_box(im.inspect(black_box(&linked), true));
        },
    );
    let cpim = request(
        "MESSAGE",
        "Content-Type: message/cpim\r\n",
        &format!(
            "From: <im:alice@example.org>\r\nTo: <im:bob@example.com>\r\nDateTime: 2024-01-01T00:00:00Z\r\n\r\n\
             Content-Type: text/plain\r\n\r\n{text}"
        ),
    );
    time(
        "im-filter: MESSAGE CPIM-wrapped text, no link",
        1_000_000,
        || {
            black_box(im.inspect(black_box(&cpim), true));
        },
    );
    let sdp = "v=0\r\no=a 1 1 IN IP4 h\r\ns= \r\nc=IN IP4 h\r\nt=0 0\r\n\
               m=message 7654 TCP/MSRP *\r\na=sendonly\r\na=path:msrp://h:7654/x;tcp\r\n\
               a=file-selector:name:\"report.pdf\" type:application/pdf size:1000\r\n";
    let invite = request("INVITE", "Content-Type: application/sdp\r\n", sdp);
    time(
        "im-filter: INVITE file offer (allowed extension)",
        1_000_000,
        || {
            black_box(im.inspect(black_box(&invite), true));
        },
    );
    let off = ImFilter::allow_all(&domains);
    time(
        "im-filter: default policy (nothing applies)",
        5_000_000,
        || {
            black_box(off.inspect(black_box(&plain), true));
        },
    );
}
