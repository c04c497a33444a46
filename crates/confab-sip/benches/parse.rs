//! Parse + read the headers a proxy needs + serialize, for an INVITE with SDP, a REGISTER
//! with Authorization and a 200 OK; the same through `sipx-sip` in the same group. Prints
//! the sipx/confab ratio per message at the end (measured in the same run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:edge.atlanta.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Confab-Bench/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 292\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=Session SDP\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 97 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:97 opus/48000/2\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const REGISTER: &[u8] = b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1827 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4;transport=tcp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1\r\n\
Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:registrar.biloxi.example.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=MD5\r\n\
Expires: 7200\r\n\
Supported: path, outbound, gruu\r\n\
Content-Length: 0\r\n\
\r\n";

const OK200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP server10.biloxi.example.com;branch=z9hG4bK4b43c2ff8.1\r\n\
Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n\
Record-Route: <sip:server10.biloxi.example.com;lr>, <sip:bigbox3.site3.atlanta.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Content-Length: 0\r\n\
\r\n";

/// Ours: parse, read what a proxy reads, serialize into a buffer.
fn confab(bytes: &'static [u8], out: &mut Vec<u8>) -> usize {
    use confab_sip::{Limits, parse_datagram};
    let m = parse_datagram(Bytes::from_static(bytes), &Limits::DEFAULT).unwrap();
    let mut acc = 0usize;
    let via = m.top_via().unwrap().unwrap();
    acc += via.branch.map_or(0, str::len);
    acc += m.from().unwrap().unwrap().tag().map_or(0, str::len);
    acc += m.to().unwrap().unwrap().tag().map_or(0, str::len);
    acc += m.call_id().unwrap().unwrap().len();
    acc += m.cseq().unwrap().unwrap().seq as usize;
    acc += m.max_forwards().map_or(0, |r| r.unwrap() as usize);
    for r in m.routes() {
        acc += r.unwrap().uri_str.len();
    }
    if let Some(c) = m.contacts().next() {
        acc += c.unwrap().addr().map_or(0, |a| a.addr.uri_str.len());
    }
    acc += m.content_length().unwrap().unwrap();
    out.clear();
    m.write_to(out);
    acc + out.len()
}

/// The same through sipx-sip 1.0.1.
fn sipx(bytes: &'static [u8], out: &mut Vec<u8>) -> usize {
    use sipx_sip::headers::{
        CSeq, CallId, ContactValue, ContentLength, From, MaxForwards, Route, To, Via,
    };
    let m =
        sipx_sip::parse_datagram(Bytes::from_static(bytes), &sipx_sip::Limits::default()).unwrap();
    let h = m.headers();
    let mut acc = 0usize;
    let via = h.typed::<Via>().unwrap().unwrap();
    acc += via.branch().map_or(0, <[u8]>::len);
    acc += h
        .typed::<From>()
        .unwrap()
        .unwrap()
        .tag()
        .map_or(0, <[u8]>::len);
    acc += h
        .typed::<To>()
        .unwrap()
        .unwrap()
        .tag()
        .map_or(0, <[u8]>::len);
    let _ = black_box(h.typed::<CallId>().unwrap().unwrap());
    acc += 1;
    let _ = black_box(h.typed::<CSeq>().unwrap().unwrap());
    acc += h
        .typed::<MaxForwards>()
        .map_or(0, |r| r.unwrap().0 as usize);
    for r in h.typed_all::<Route>() {
        let _ = black_box(r.unwrap());
        acc += 1;
    }
    if let Some(c) = h.typed::<ContactValue>() {
        let _ = black_box(c.unwrap());
        acc += 1;
    }
    acc += h.typed::<ContentLength>().unwrap().unwrap().0 as usize;
    out.clear();
    m.write_to(out);
    acc + out.len()
}

/// A proxy hop with ours: parse, read, prepend Via, decrement Max-Forwards, pop a Route,
/// serialize.
fn confab_forward(bytes: &'static [u8], out: &mut Vec<u8>) -> usize {
    use confab_sip::{Limits, parse_datagram};
    let mut m = parse_datagram(Bytes::from_static(bytes), &Limits::DEFAULT).unwrap();
    let branch_len = m.top_via().unwrap().unwrap().branch.map_or(0, str::len);
    let mf = m.max_forwards().map_or(70, |r| r.unwrap());
    let _ = m.from().unwrap().unwrap().tag();
    let _ = m.to().unwrap().unwrap().tag();
    let _ = m.call_id().unwrap().unwrap();
    let _ = m.cseq().unwrap().unwrap();
    m.prepend_via("SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKproxy1")
        .unwrap();
    m.set_max_forwards(mf.saturating_sub(1));
    m.remove_first_route();
    out.clear();
    m.write_to(out);
    branch_len + out.len()
}

const MESSAGES: [(&str, &[u8]); 3] = [
    ("invite_sdp", INVITE),
    ("register_auth", REGISTER),
    ("ok200", OK200),
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_read_serialize");
    for (name, bytes) in MESSAGES {
        let mut out = Vec::with_capacity(2048);
        g.bench_function(format!("confab/{name}"), |b| {
            b.iter(|| confab(black_box(bytes), &mut out))
        });
        g.bench_function(format!("sipx/{name}"), |b| {
            b.iter(|| sipx(black_box(bytes), &mut out))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("proxy_forward");
    let mut out = Vec::with_capacity(2048);
    g.bench_function("confab/invite_sdp", |b| {
        b.iter(|| confab_forward(black_box(INVITE), &mut out))
    });
    g.finish();
}

/// CPU time of this thread in ns (Linux `/proc/thread-self/schedstat`), so the figure is
/// not inflated by other processes on a shared machine; `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// (wall, cpu) per operation: best of 5 runs of 100k.
fn time_per_op(
    f: fn(&'static [u8], &mut Vec<u8>) -> usize,
    bytes: &'static [u8],
) -> (Duration, Option<Duration>) {
    let mut out = Vec::with_capacity(2048);
    for _ in 0..10_000 {
        black_box(f(black_box(bytes), &mut out));
    }
    let mut best = Duration::MAX;
    let mut best_cpu: Option<Duration> = None;
    for _ in 0..5 {
        let n = 100_000u32;
        let c0 = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..n {
            black_box(f(black_box(bytes), &mut out));
        }
        best = best.min(t.elapsed() / n);
        if let (Some(c0), Some(c1)) = (c0, thread_cpu_ns()) {
            let cpu = Duration::from_nanos((c1 - c0) / u64::from(n));
            best_cpu = Some(best_cpu.map_or(cpu, |b| b.min(cpu)));
        }
    }
    (best, best_cpu)
}

fn ratios() {
    println!(
        "\nper operation, ours vs sipx-sip 1.0.1 (best of 5 x 100k, same process; CPU = this thread's on-CPU time):"
    );
    for (name, bytes) in MESSAGES {
        let (ours, ours_cpu) = time_per_op(confab, bytes);
        let (theirs, theirs_cpu) = time_per_op(sipx, bytes);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        print!(
            "  {name:14} {:4} B  wall: confab {:>7.3} µs  sipx {:>7.3} µs  ratio {:.2}x",
            bytes.len(),
            us(ours),
            us(theirs),
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
        if let (Some(o), Some(t)) = (ours_cpu, theirs_cpu) {
            print!(
                "   cpu: confab {:>7.3} µs  sipx {:>7.3} µs  ratio {:.2}x",
                us(o),
                us(t),
                t.as_secs_f64() / o.as_secs_f64()
            );
        }
        println!();
    }
    let (fwd, fwd_cpu) = time_per_op(confab_forward, INVITE);
    println!(
        "  proxy hop (parse, read, prepend Via, Max-Forwards, pop Route, serialize) invite_sdp: wall {:.3} µs, cpu {}",
        fwd.as_secs_f64() * 1e6,
        fwd_cpu.map_or("n/a".to_owned(), |c| format!(
            "{:.3} µs",
            c.as_secs_f64() * 1e6
        ))
    );
}

criterion_group!(benches, bench);

fn main() {
    // Sanity: both parsers agree on what was read, and ours round-trips byte-exact.
    for (name, bytes) in MESSAGES {
        let m = confab_sip::Message::parse(bytes).unwrap();
        assert_eq!(m.to_bytes(), bytes, "{name}");
        assert!(m.check().is_ok(), "{name}");
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
