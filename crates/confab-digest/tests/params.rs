//! The auth-param parser: table of accepted and rejected inputs, and property tests (no
//! panics on any input; build then parse gives back what was built).

use std::borrow::Cow;

use confab_digest::{
    Algorithm, AuthParams, Challenge, Credentials, ParamError, Qop, QopOptions, split_scheme,
};
use proptest::prelude::*;

#[track_caller]
fn params(input: &str) -> Result<Vec<(String, String)>, ParamError> {
    let (_, rest) = split_scheme(input)?;
    AuthParams::new(rest, input.len() - rest.len())
        .map(|r| r.map(|(n, v)| (n.to_owned(), v.into_owned())))
        .collect()
}

#[track_caller]
fn check(input: &str, expected: Result<&[(&str, &str)], ParamError>) {
    let got = params(input);
    let expected = expected.map(|v| {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<Vec<_>>()
    });
    assert_eq!(got, expected, "{input:?}");
}

#[test]
fn auth_param_syntax() {
    check("Digest a=1", Ok(&[("a", "1")]));
    check("Digest  a = \"x y\" ,b=2", Ok(&[("a", "x y"), ("b", "2")]));
    check("Digest a=\"q\\\"uo\\\\te\"", Ok(&[("a", "q\"uo\\te")]));
    check("Digest a=\"\"", Ok(&[("a", "")]));
    check("Digest a=1,,  ,b=2,", Ok(&[("a", "1"), ("b", "2")]));
    check("Digest a=\"x,y=z\"", Ok(&[("a", "x,y=z")]));
    check(
        "Digest\r\n a=1,\r\n\tb=\"é\"",
        Ok(&[("a", "1"), ("b", "é")]),
    );
    check("Digest a=\"\\é\"", Ok(&[("a", "é")]));
    check("Digest", Ok(&[]));
    check("", Err(ParamError::Empty));
    check("Digest a", Err(ParamError::ExpectedEquals(8)));
    check("Digest a=", Err(ParamError::ExpectedValue(9)));
    check("Digest a=\"abc", Err(ParamError::UnterminatedQuote(9)));
    check("Digest a=\"abc\\", Err(ParamError::UnterminatedQuote(9)));
    check("Digest a=\"a\u{1}b\"", Err(ParamError::ControlChar(11)));
    check("Digest a=1 b=2", Err(ParamError::ExpectedComma(11)));
    check("Digest =1", Err(ParamError::ExpectedName(7)));
    check("Digest a=x/y", Err(ParamError::ExpectedComma(10)));
    check("Di\"gest a=1", Err(ParamError::ExpectedName(2)));
}

#[test]
fn credentials_rules() {
    let base = "username=\"u\", realm=\"r\", nonce=\"n\", uri=\"/\", response=\"ab\"";
    let text = format!("digest {base}");
    let ok = Credentials::parse(&text).unwrap();
    assert_eq!(ok.username, "u");
    assert!(
        matches!(ok.username, Cow::Borrowed(_)),
        "no copy without escapes"
    );
    assert_eq!(ok.algorithm, None);
    assert_eq!(ok.effective_algorithm(), Algorithm::Md5);
    // SIP clients quote tokens; accepted.
    let text = format!(
        "Digest {base}, qop=\"auth\", nc=\"00000002\", cnonce=\"c\", algorithm=\"sha-256\""
    );
    let q = Credentials::parse(&text).unwrap();
    assert_eq!((q.qop, q.nonce_count()), (Some(Qop::Auth), Some(2)));
    assert_eq!(q.algorithm, Some(Algorithm::Sha256));

    #[track_caller]
    fn bad(input: String, e: ParamError) {
        assert_eq!(Credentials::parse(&input), Err(e), "{input}");
    }
    bad(
        format!("Basic {base}"),
        ParamError::NotDigest("Basic".into()),
    );
    bad(
        format!("Digest {base}, realm=\"x\""),
        ParamError::Duplicate("realm"),
    );
    bad(
        format!("Digest {base}, REALM=\"x\""),
        ParamError::Duplicate("realm"),
    );
    bad(
        "Digest realm=\"r\", nonce=\"n\", uri=\"/\", response=\"ab\"".into(),
        ParamError::Missing("username"),
    );
    bad(
        format!("Digest {base}, qop=auth, nc=00000001"),
        ParamError::Missing("cnonce"),
    );
    bad(
        format!("Digest {base}, qop=auth, cnonce=\"c\""),
        ParamError::Missing("nc"),
    );
    bad(
        format!("Digest {base}, qop=auth, cnonce=\"c\", nc=xyz"),
        ParamError::Invalid {
            name: "nc",
            reason: "expected 8 hex digits",
        },
    );
    bad(
        format!("Digest {base}, qop=auth-conf, cnonce=\"c\", nc=1"),
        ParamError::Invalid {
            name: "qop",
            reason: "expected auth or auth-int",
        },
    );
    bad(
        format!("Digest {base}, algorithm=SHA-1"),
        ParamError::UnknownAlgorithm("SHA-1".into()),
    );
    bad(
        format!("Digest {base}, username*=UTF-8''x"),
        ParamError::Duplicate("username"),
    );
    bad(
        "Digest username*=UTF-8''%+1, realm=\"r\", nonce=\"n\", uri=\"/\", response=\"ab\"".into(),
        ParamError::Invalid {
            name: "username*",
            reason: "expected UTF-8'lang'percent-encoded",
        },
    );
    bad(
        "Digest username*=ISO-8859-1''x, realm=\"r\", nonce=\"n\", uri=\"/\", response=\"ab\""
            .into(),
        ParamError::Invalid {
            name: "username*",
            reason: "only the UTF-8 charset is supported",
        },
    );
}

#[test]
fn challenge_parse_and_build() {
    let c = Challenge::parse(
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
         nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
         opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", stale=TRUE",
    )
    .unwrap();
    assert_eq!(c.realm, "http-auth@example.org");
    assert_eq!(
        c.qop,
        QopOptions {
            auth: true,
            auth_int: true
        }
    );
    assert_eq!(c.algorithm, Some(Algorithm::Sha256));
    assert!(c.stale);
    assert_eq!(
        Challenge::new("example.com", "n1", Algorithm::Sha512_256).to_string(),
        "Digest realm=\"example.com\", nonce=\"n1\", algorithm=SHA-512-256, qop=\"auth\""
    );
    assert_eq!(
        Challenge::parse("Digest nonce=\"x\""),
        Err(ParamError::Missing("realm"))
    );
}

fn text() -> impl Strategy<Value = String> {
    // Printable ASCII and some non-ASCII, including quotes and backslashes.
    proptest::string::string_regex("[ -~éß€\t]{0,24}").unwrap()
}

fn algorithm() -> impl Strategy<Value = Option<Algorithm>> {
    proptest::option::of(proptest::sample::select(Algorithm::ALL.to_vec()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic(s in "\\PC{0,200}") {
        let _ = Credentials::parse(&s);
        let _ = Challenge::parse(&s);
        let _ = params(&s);
    }

    #[test]
    fn parsers_never_panic_on_near_valid(s in "(Digest )?([a-z*]{1,6}=(\"([^\"\\\\]|\\\\.){0,8}\"?|[a-z0-9]{0,4}) ?,? ?){0,8}") {
        let _ = Credentials::parse(&s);
        let _ = Challenge::parse(&s);
    }

    #[test]
    fn credentials_round_trip(
        username in "[ -~]{1,16}", realm in text(), nonce in text(), uri in text(),
        response in "[0-9a-f]{32}", algorithm in algorithm(), opaque in proptest::option::of(text()),
        with_qop in any::<bool>(), int in any::<bool>(), cnonce in text(), nc in 1u32..,
        userhash in any::<bool>(),
    ) {
        let qop = with_qop.then_some(if int { Qop::AuthInt } else { Qop::Auth });
        let c = Credentials {
            username: username.into(), realm: realm.into(), nonce: nonce.into(), uri: uri.into(),
            response: response.into(), algorithm,
            cnonce: qop.map(|_| cnonce.into()), opaque: opaque.map(Into::into), qop,
            nc: qop.map(|_| format!("{nc:08x}").into()), userhash,
        };
        let wire = c.to_string();
        prop_assert_eq!(Credentials::parse(&wire), Ok(c), "{}", wire);
    }

    #[test]
    fn non_ascii_usernames_round_trip(username in "[a-zé€ 😀]{1,12}") {
        let c = Credentials {
            username: username.into(), realm: "r".into(), nonce: "n".into(), uri: "/".into(),
            response: "00".into(), algorithm: None, cnonce: None, opaque: None, qop: None,
            nc: None, userhash: false,
        };
        let wire = c.to_string();
        prop_assert_eq!(Credentials::parse(&wire), Ok(c), "{}", wire);
    }

    #[test]
    fn challenge_round_trip(
        realm in text(), nonce in text(), opaque in proptest::option::of(text()),
        stale in any::<bool>(), algorithm in algorithm(), auth in any::<bool>(),
        auth_int in any::<bool>(), domain in proptest::option::of(text()),
        charset_utf8 in any::<bool>(), userhash in any::<bool>(),
    ) {
        let c = Challenge {
            realm: realm.into(), nonce: nonce.into(), opaque: opaque.map(Into::into), stale,
            algorithm, qop: QopOptions { auth, auth_int }, domain: domain.map(Into::into),
            charset_utf8, userhash,
        };
        let wire = c.to_string();
        prop_assert_eq!(Challenge::parse(&wire), Ok(c), "{}", wire);
    }
}
