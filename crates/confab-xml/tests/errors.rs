//! Bad bodies get a typed error naming the element and line (a SIP 400 reason phrase), or
//! 413 for size; never a panic.

use confab_xml::pidf::Presence;
use confab_xml::{Limits, XmlError};

const P: &str = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@example.com">"#;

#[track_caller]
fn check(body: &str, limits: Limits, expected: &str) {
    let err = Presence::parse(body.as_bytes(), &limits).expect_err("must be refused");
    assert_eq!(err.to_string(), expected, "{err:?}");
}

#[test]
fn refusals_name_the_problem() {
    let l = Limits::DOCUMENT;
    let table: &[(&str, &str)] = &[
        ("", "body has no XML root element"),
        ("  \n", "body has no XML root element"),
        (
            &format!(
                "{P}\n<tuple id=\"a\"><status><basic>maybe</basic></status></tuple></presence>"
            ),
            "line 2: <basic> has invalid text `maybe`; expected open or closed",
        ),
        (
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"/>"#,
            "line 1: <presence> has no `entity` attribute",
        ),
        (
            &format!("{P}\n\n<tuple id=\"a\"/></presence>"),
            "line 3: <tuple> has no <status>",
        ),
        (
            &format!("{P}<tuple><status/></tuple></presence>"),
            "line 1: <tuple> has no `id` attribute",
        ),
        (
            &format!(
                "{P}\n<tuple id=\"a\"><status/></tuple>\n<tuple id=\"a\"><status/></tuple></presence>"
            ),
            "line 3: duplicate <tuple> with id `a`",
        ),
        (
            &format!("{P}\n<tuple id=\"a\">\n<status/>\n</presence>"),
            "line 4: malformed XML in <tuple>: ill-formed document: expected `</tuple>`, but `</presence>` was found",
        ),
        (
            &format!(
                "{P}<tuple id=\"a\"><status/><contact priority=\"1.5\">sip:a@b</contact></tuple></presence>"
            ),
            "line 1: <contact> has invalid priority `1.5`; expected a decimal from 0 to 1",
        ),
        (
            &format!(
                "{P}<tuple id=\"a\"><status/><timestamp>yesterday</timestamp></tuple></presence>"
            ),
            "line 1: <timestamp> has invalid text `yesterday`; expected a date-time such as 2005-10-27T16:49:29Z",
        ),
        (
            &format!("<!DOCTYPE presence [<!ENTITY a \"b\">]>\n{P}</presence>"),
            "line 1: a DOCTYPE is not allowed",
        ),
        (
            &format!("{P}<note>&lol;</note></presence>"),
            "line 1: unknown entity `&lol;`",
        ),
        (
            &format!("{P}\n<x:foo/></presence>"),
            "line 2: namespace prefix `x` is not declared",
        ),
        (
            r#"<list xmlns="urn:ietf:params:xml:ns:rlmi"/>"#,
            "root element is <{urn:ietf:params:xml:ns:rlmi}list>, expected <{urn:ietf:params:xml:ns:pidf}presence>",
        ),
        (
            &format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{P}</presence>"),
            "encoding `ISO-8859-1` is not supported; use UTF-8",
        ),
        (
            &format!("{P}</presence>\n<presence/>"),
            "line 2: malformed XML: second root element <presence>",
        ),
        (
            &format!("{P}</presence>junk"),
            "line 1: malformed XML: text outside the root element",
        ),
        (
            &format!(
                "{P}<dm:person xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" id=\"p\"><rp:activities xmlns:rp=\"urn:ietf:params:xml:ns:pidf:rpid\"><rp:dancing/></rp:activities></dm:person></presence>"
            ),
            "line 1: <dancing> has invalid element `dancing`; expected an RFC 4480 §3.2 activity",
        ),
        (
            &format!(
                "{P}<tuple id=\"a\"><status/><rp:user-input xmlns:rp=\"urn:ietf:params:xml:ns:pidf:rpid\">asleep</rp:user-input></tuple></presence>"
            ),
            "line 1: <user-input> has invalid text `asleep`; expected active or idle",
        ),
    ];
    for (body, expected) in table {
        check(body, l, expected);
    }
}

#[test]
fn limits_are_checked() {
    let deep = format!("{P}{}{}</presence>", "<a>".repeat(30), "</a>".repeat(30));
    check(
        &deep,
        Limits::DOCUMENT,
        "line 1: element <a> nests deeper than 24 levels",
    );
    let many = format!("{P}{}</presence>", "<a/>".repeat(2_000));
    check(&many, Limits::DOCUMENT, "line 1: more than 2000 elements");
    let attrs: String = (0..40).map(|i| format!(" a{i}=\"x\"")).collect();
    check(
        &format!("{P}<x{attrs}/></presence>"),
        Limits::DOCUMENT,
        "line 1: element <x> has more than 32 attributes",
    );
    let big = format!("{P}<note>{}</note></presence>", "x".repeat(70_000));
    let err = Presence::parse(big.as_bytes(), &Limits::DOCUMENT).unwrap_err();
    assert!(err.is_too_large());
    assert_eq!(err.status_code(), 413);
    // Fine under a larger limit.
    assert!(Presence::parse(big.as_bytes(), &Limits::LIST).is_ok());
}

#[test]
fn not_utf8_names_the_line() {
    let mut body = format!("{P}\n\n<note>").into_bytes();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"</note></presence>");
    let err = Presence::parse(&body, &Limits::DOCUMENT).unwrap_err();
    assert_eq!(err, XmlError::NotUtf8 { line: 3 });
    assert_eq!(err.status_code(), 400);
}

#[test]
fn references_cdata_and_bom_are_read() {
    let body =
        format!("\u{feff}{P}<note>a &amp; b &#x263A; &lt;<![CDATA[<raw>]]></note></presence>");
    let p = Presence::parse(body.as_bytes(), &Limits::DOCUMENT).unwrap();
    assert_eq!(p.notes[0].text, "a & b \u{263a} <<raw>");
    // Written back escaped, read back equal.
    let again = Presence::parse(&p.to_bytes(), &Limits::DOCUMENT).unwrap();
    assert_eq!(again, p);
}
