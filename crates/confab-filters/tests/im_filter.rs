//! The Intelligent IM Filter through its public API: one table row per rule, action, body
//! kind and scope, with the exact body the filter forwards.

use base64::Engine as _;
use confab_core::policy::{FilterScope, ImFilterPolicy, UrlAction};
use confab_filters::{
    BlockCause, HIDDEN_LINK_REASON, ImFilter, ImVerdict, TOO_LARGE_REASON, UNREADABLE_REASON,
};
use confab_sip::{Limits, Message, parse_datagram};

const DOMAINS: &[&str] = &["example.com"];

/// A request with extra header lines (`Name: value\r\n` each) and a body.
fn request(method: &str, headers: &str, body: &[u8]) -> Message {
    let mut text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.org>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    text.extend_from_slice(body);
    parse_datagram(text.into(), &Limits::DEFAULT).unwrap()
}

fn message(content_type: &str, body: &str) -> Message {
    request(
        "MESSAGE",
        &format!("Content-Type: {content_type}\r\n"),
        body.as_bytes(),
    )
}

fn policy(action: UrlAction, scope: FilterScope) -> ImFilterPolicy {
    let mut p = ImFilterPolicy::default();
    p.urls.action = action;
    p.urls.scope = scope;
    p.urls.prefix = "nolink_".into();
    p
}

fn files(exts: &[&str], scope: FilterScope) -> ImFilterPolicy {
    let mut p = ImFilterPolicy::default();
    p.files.extensions = exts.iter().map(|e| (*e).to_owned()).collect();
    p.files.scope = scope;
    p
}

fn filter(p: &ImFilterPolicy) -> ImFilter {
    let domains: Vec<String> = DOMAINS.iter().map(|d| (*d).to_owned()).collect();
    ImFilter::compile(p, &domains).unwrap()
}

/// What a row expects.
#[derive(Debug)]
enum Want<'a> {
    Pass,
    Block(BlockCause, &'a str),
    Rewrite(&'a str),
}

#[track_caller]
fn check(p: &ImFilterPolicy, req: &Message, external: bool, want: Want<'_>) {
    let f = filter(p);
    let got = f.inspect(req, external);
    match (&got, &want) {
        (ImVerdict::Pass, Want::Pass) => {}
        (ImVerdict::Block { reason, cause }, Want::Block(c, r)) => {
            assert_eq!((cause, *reason), (c, *r));
        }
        (ImVerdict::Rewrite { body, .. }, Want::Rewrite(b)) => {
            assert_eq!(String::from_utf8_lossy(body), *b, "rewritten body differs");
            // The rewritten request is a valid message with a right Content-Length.
            let mut m = req.clone();
            m.set_body(body.clone());
            let again = parse_datagram(m.to_bytes(), &Limits::DEFAULT).unwrap();
            assert_eq!(again.body(), &body[..]);
        }
        _ => panic!("expected {want:?}, got {got:?}"),
    }
}

const BLOCK_REASON: &str = "Message blocked: links are not allowed";

#[test]
fn url_rule_actions_and_scopes_on_plain_text() {
    use FilterScope::*;
    use UrlAction::*;
    let text = "see http://evil.example/x and www.example.net, or mail mailto:a@b.c";
    let rewritten =
        "see nolink_http://evil.example/x and nolink_www.example.net, or mail nolink_mailto:a@b.c";
    for (action, scope, external, want) in [
        (
            Block,
            All,
            false,
            Want::Block(BlockCause::Link, BLOCK_REASON),
        ),
        (
            Block,
            All,
            true,
            Want::Block(BlockCause::Link, BLOCK_REASON),
        ),
        (Block, External, false, Want::Pass),
        (
            Block,
            External,
            true,
            Want::Block(BlockCause::Link, BLOCK_REASON),
        ),
        (DisableLinks, All, false, Want::Rewrite(rewritten)),
        (DisableLinks, External, true, Want::Rewrite(rewritten)),
        (DisableLinks, External, false, Want::Pass),
        (Allow, All, true, Want::Pass),
    ] {
        check(
            &policy(action, scope),
            &message("text/plain;charset=UTF-8", text),
            external,
            want,
        );
    }
    // No link, no change.
    for action in [Block, DisableLinks] {
        check(
            &policy(action, All),
            &message("text/plain", "Tel: +1 555 1234, see example.com"),
            true,
            Want::Pass,
        );
    }
    // A body without Content-Type is text/plain.
    let no_type = request("MESSAGE", "", b"go to https://x.example");
    check(
        &policy(Block, All),
        &no_type,
        true,
        Want::Block(BlockCause::Link, BLOCK_REASON),
    );
    // Other text subtypes are text too.
    check(
        &policy(DisableLinks, All),
        &message("text/x-markdown", "[a](https://x.example)"),
        true,
        Want::Rewrite("[a](nolink_https://x.example)"),
    );
    // Empty bodies and other methods pass.
    check(
        &policy(Block, All),
        &message("text/plain", ""),
        true,
        Want::Pass,
    );
    let options = request(
        "OPTIONS",
        "Content-Type: text/plain\r\n",
        b"http://x.example",
    );
    check(&policy(Block, All), &options, true, Want::Pass);
}

#[test]
fn html_links_in_text_and_attributes() {
    let p = policy(UrlAction::DisableLinks, FilterScope::All);
    check(
        &p,
        &message(
            "text/html",
            "<p>Hi <a href=\"https://evil.example/a\">https://evil.example/a</a> \
             <img src=//cdn.example/i.png></p>",
        ),
        true,
        Want::Rewrite(
            "<p>Hi <a href=\"nolink_https://evil.example/a\">nolink_https://evil.example/a</a> \
             <img src=nolink_//cdn.example/i.png></p>",
        ),
    );
    // A link hidden behind character references cannot be prefixed: blocked.
    let hidden = message("text/html", "<a href=\"http&#58;//evil.example\">click</a>");
    check(
        &p,
        &hidden,
        true,
        Want::Block(BlockCause::HiddenLink, HIDDEN_LINK_REASON),
    );
    check(
        &policy(UrlAction::Block, FilterScope::All),
        &hidden,
        true,
        Want::Block(BlockCause::Link, BLOCK_REASON),
    );
    check(
        &policy(UrlAction::Block, FilterScope::All),
        &message(
            "text/html",
            "<a href=\"java&#9;script&colon;alert(1)\">x</a>",
        ),
        true,
        Want::Block(BlockCause::Link, BLOCK_REASON),
    );
}

const CPIM_HEAD: &str = "From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
     To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
     DateTime: 2000-12-13T13:40:00-08:00\r\n\
     Subject: the weather will be fine today\r\n\r\n";

#[test]
fn cpim_wrapped_text_is_rewritten_inside_the_wrapper() {
    let p = policy(UrlAction::DisableLinks, FilterScope::All);
    let body = format!(
        "{CPIM_HEAD}Content-type: text/plain\r\nContent-ID: <1234567890@foo.com>\r\n\r\n\
         Here is the link: http://x.example/y\r\n"
    );
    let want = body.replace("http://", "nolink_http://");
    check(
        &p,
        &message("message/cpim", &body),
        true,
        Want::Rewrite(&want),
    );

    // With a Content-Length inside the wrapper, it is fixed.
    let body =
        format!("{CPIM_HEAD}Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nsee www.x.org");
    let want = format!(
        "{CPIM_HEAD}Content-Type: text/plain\r\nContent-Length: 20\r\n\r\nsee nolink_www.x.org"
    );
    check(
        &p,
        &message("message/cpim", &body),
        true,
        Want::Rewrite(&want),
    );

    check(
        &policy(UrlAction::Block, FilterScope::All),
        &message(
            "message/cpim",
            &format!("{CPIM_HEAD}Content-Type: text/html\r\n\r\n<a href=\"http://x\">"),
        ),
        true,
        Want::Block(BlockCause::Link, BLOCK_REASON),
    );
    // A CPIM body without its second header block is malformed: refused while a rule applies.
    check(
        &policy(UrlAction::Block, FilterScope::All),
        &message(
            "message/cpim",
            "From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\nhttp://x",
        ),
        true,
        Want::Block(
            BlockCause::Unreadable("malformed message/cpim (no end of MIME headers)"),
            UNREADABLE_REASON,
        ),
    );
}

/// RFC 5438 §7.2.1.1 style delivery notification and RFC 3994 isComposing: both hold
/// `http://` strings (XML namespaces) and must pass byte for byte.
#[test]
fn imdn_and_iscomposing_pass_untouched() {
    let imdn = format!(
        "{CPIM_HEAD}Content-type: message/imdn+xml\r\nContent-Disposition: notification\r\n\
         Content-length: 295\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <imdn xmlns=\"urn:ietf:params:xml:ns:imdn\" xmlns:x=\"http://example.com/x\">\r\n\
         <message-id>34jk324j</message-id>\r\n<datetime>2008-04-04T12:16:49-05:00</datetime>\r\n\
         <recipient-uri>im:bob@example.com</recipient-uri>\r\n\
         <original-recipient-uri>im:bob@example.com</original-recipient-uri>\r\n\
         <delivery-notification><status><delivered/></status></delivery-notification>\r\n</imdn>\r\n"
    );
    let composing = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
        <isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"\r\n\
        xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\r\n\
        xsi:schemaLocation=\"urn:ietf:params:xml:ns:im-composing iscomposing.xsd\">\r\n\
        <state>active</state>\r\n<contenttype>text/plain</contenttype>\r\n\
        <refresh>60</refresh>\r\n</isComposing>\r\n";
    for action in [UrlAction::Block, UrlAction::DisableLinks] {
        let p = policy(action, FilterScope::All);
        check(&p, &message("message/cpim", &imdn), true, Want::Pass);
        check(
            &p,
            &message("message/imdn+xml", &imdn[CPIM_HEAD.len()..]),
            true,
            Want::Pass,
        );
        check(
            &p,
            &message("application/im-iscomposing+xml", composing),
            true,
            Want::Pass,
        );
    }
}

#[test]
fn multipart_parts_are_rewritten_in_place() {
    let p = policy(UrlAction::DisableLinks, FilterScope::All);
    let body = "preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee http://a.example\r\n\
         --b1\r\nContent-Type: text/html\r\n\r\n<a href=\"http://a.example\">a</a>\r\n\
         --b1\r\nContent-Type: image/png\r\n\r\nhttp://not-text\r\n--b1--\r\nepilogue";
    let want = body
        .replace("see http://", "see nolink_http://")
        .replace("href=\"http://", "href=\"nolink_http://");
    check(
        &p,
        &message("multipart/alternative; boundary=b1", body),
        true,
        Want::Rewrite(&want),
    );

    // Multipart inside CPIM inside multipart, and a base64 text part (re-encoded).
    let b64 = base64::engine::general_purpose::STANDARD.encode("click https://x.example now");
    let body = format!(
        "--outer\r\nContent-Type: message/cpim\r\n\r\n{CPIM_HEAD}Content-Type: multipart/mixed; boundary=\"in ner\"\r\n\r\n\
         --in ner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--in ner--\r\n\
         --outer--\r\n"
    );
    let f = filter(&p);
    let req = message("multipart/mixed;boundary=outer", &body);
    let ImVerdict::Rewrite { body: new, links } = f.inspect(&req, true) else {
        panic!("expected a rewrite");
    };
    assert_eq!(links, 1);
    let new = String::from_utf8(new.to_vec()).unwrap();
    let new_b64 =
        base64::engine::general_purpose::STANDARD.encode("click nolink_https://x.example now");
    assert_eq!(new, body.replace(&b64, &new_b64));

    // A part in quoted-printable cannot be read: refused while a rule applies.
    let qp = "--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nhttp=3A//x\r\n--b--\r\n";
    check(
        &policy(UrlAction::Block, FilterScope::All),
        &message("multipart/mixed; boundary=b", qp),
        true,
        Want::Block(
            BlockCause::Unreadable("text in a transfer encoding the filter cannot read"),
            UNREADABLE_REASON,
        ),
    );
    // No boundary parameter, or a boundary that never appears.
    for ct in ["multipart/mixed", "multipart/mixed; boundary=zz"] {
        let f = filter(&policy(UrlAction::Block, FilterScope::All));
        assert!(matches!(
            f.inspect(&message(ct, "--b\r\n\r\nx\r\n--b--"), true),
            ImVerdict::Block {
                cause: BlockCause::Unreadable(_),
                ..
            }
        ));
    }
}

#[test]
fn unreadable_text_is_refused_only_while_a_rule_applies() {
    let block = policy(UrlAction::Block, FilterScope::External);
    let utf16 = message("text/plain; charset=UTF-16", "h\0t\0t\0p\0");
    let gz = request(
        "MESSAGE",
        "Content-Type: text/plain\r\nContent-Encoding: gzip\r\n",
        b"\x1f\x8b\x08\x00",
    );
    let bom = request("MESSAGE", "Content-Type: text/plain\r\n", b"\xff\xfeh\0i\0");
    for (req, why) in [
        (&utf16, "text in a charset the filter cannot read"),
        (&gz, "compressed or encoded body"),
        (&bom, "UTF-16 text"),
    ] {
        check(
            &block,
            req,
            true,
            Want::Block(BlockCause::Unreadable(why), UNREADABLE_REASON),
        );
        // Internal sender: the external-only rule does not apply, nothing is read.
        check(&block, req, false, Want::Pass);
        check(&ImFilterPolicy::default(), req, true, Want::Pass);
    }
    // Latin-1 and other ASCII-compatible charsets are read.
    let latin1 = request(
        "MESSAGE",
        "Content-Type: text/plain; charset=ISO-8859-1\r\n",
        b"caf\xe9 http://x.example",
    );
    check(
        &block,
        &latin1,
        true,
        Want::Block(BlockCause::Link, BLOCK_REASON),
    );
}

fn sdp(selector: &str) -> String {
    format!(
        "v=0\r\no=alice 2890844526 2890844527 IN IP4 host.example.com\r\ns= \r\n\
         c=IN IP4 host.example.com\r\nt=0 0\r\nm=message 7654 TCP/MSRP *\r\n\
         i=This is my latest picture\r\na=sendonly\r\na=accept-types:message/cpim\r\n\
         a=accept-wrapped-types:*\r\na=path:msrp://host.example.com:7654/jshA7we;tcp\r\n\
         {selector}a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd\r\n"
    )
}

const FILE_REASON: &str = "File transfer blocked: file type not allowed";

#[test]
fn file_transfer_offers_are_blocked_by_extension() {
    let p = files(&["exe", ".BAT", "tar.gz"], FilterScope::All);
    let invite = |sel: &str| {
        request(
            "INVITE",
            "Content-Type: application/sdp\r\n",
            sdp(sel).as_bytes(),
        )
    };
    for (selector, want) in [
        (
            "a=file-selector:name:\"setup.exe\" type:application/octet-stream size:1\r\n",
            Want::Block(BlockCause::File("setup.exe".into()), FILE_REASON),
        ),
        (
            "a=file-selector:name:\"run%20me.bat.\" size:1\r\n",
            Want::Block(BlockCause::File("run me.bat.".into()), FILE_REASON),
        ),
        (
            "a=file-selector:name:\"src.TAR.GZ\"\r\n",
            Want::Block(BlockCause::File("src.TAR.GZ".into()), FILE_REASON),
        ),
        (
            "a=file-selector:name:\"photo.jpg\" type:image/jpeg\r\n",
            Want::Pass,
        ),
        ("", Want::Pass), // one-way MSRP naming no file: only * blocks it
    ] {
        check(&p, &invite(selector), true, want);
    }
    check(
        &files(&["*"], FilterScope::All),
        &invite(""),
        true,
        Want::Block(BlockCause::File("*".into()), FILE_REASON),
    );
    // Scope: external only.
    let ext = files(&["exe"], FilterScope::External);
    let bad = invite("a=file-selector:name:\"x.exe\"\r\n");
    check(&ext, &bad, false, Want::Pass);
    check(
        &ext,
        &bad,
        true,
        Want::Block(BlockCause::File("x.exe".into()), FILE_REASON),
    );
    // SDP inside multipart/mixed.
    let mp = format!(
        "--X\r\nContent-Type: application/sdp\r\n\r\n{}\r\n--X--\r\n",
        sdp("a=file-selector:name:\"x.exe\"\r\n")
    );
    let req = request(
        "INVITE",
        "Content-Type: multipart/mixed;boundary=X\r\n",
        mp.as_bytes(),
    );
    check(
        &p,
        &req,
        true,
        Want::Block(BlockCause::File("x.exe".into()), FILE_REASON),
    );
    // An audio call passes; the URL rule does not look at INVITE text.
    let audio =
        "v=0\r\no=a 1 1 IN IP4 h\r\ns= \r\nc=IN IP4 h\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    check(
        &p,
        &request(
            "INVITE",
            "Content-Type: application/sdp\r\n",
            audio.as_bytes(),
        ),
        true,
        Want::Pass,
    );
    let mut both = policy(UrlAction::Block, FilterScope::All);
    both.files = p.files.clone();
    check(
        &both,
        &request(
            "INVITE",
            "Content-Type: text/plain\r\n",
            b"http://x.example",
        ),
        true,
        Want::Pass,
    );
}

#[test]
fn named_attachments_in_messages() {
    let p = files(&["exe"], FilterScope::All);
    let att = request(
        "MESSAGE",
        "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"tool.exe\"\r\n",
        b"MZ\x90\x00",
    );
    check(
        &p,
        &att,
        true,
        Want::Block(BlockCause::File("tool.exe".into()), FILE_REASON),
    );
    let part = "--b\r\nContent-Type: application/octet-stream\r\n\
                Content-Disposition: attachment; filename*=UTF-8''t%C3%B6%C3%B6l.EXE\r\n\r\nMZ\r\n--b--\r\n";
    check(
        &p,
        &message("multipart/mixed; boundary=b", part),
        true,
        Want::Block(BlockCause::File("t\u{f6}\u{f6}l.EXE".into()), FILE_REASON),
    );
    let ok = request(
        "MESSAGE",
        "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\n",
        b"%PDF",
    );
    check(&p, &ok, true, Want::Pass);
}

#[test]
fn file_rule_wins_over_url_rule_and_size_is_capped() {
    let mut p = policy(UrlAction::DisableLinks, FilterScope::All);
    p.files.extensions = vec!["exe".into()];
    let req = request(
        "MESSAGE",
        "Content-Type: text/plain\r\nContent-Disposition: render; filename=a.exe\r\n",
        b"http://x",
    );
    check(
        &p,
        &req,
        true,
        Want::Block(BlockCause::File("a.exe".into()), FILE_REASON),
    );

    // 8000 links in a 64 KB body: disabling them would exceed the body limit.
    let mut p = policy(UrlAction::DisableLinks, FilterScope::All);
    p.urls.prefix = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_".into();
    let body = "ftp://a ".repeat(8000);
    let req = request("MESSAGE", "Content-Type: text/plain\r\n", body.as_bytes());
    check(
        &p,
        &req,
        true,
        Want::Block(BlockCause::TooLarge, TOO_LARGE_REASON),
    );
}
