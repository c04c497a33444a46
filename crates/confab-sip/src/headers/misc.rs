//! Small typed values: CSeq, Content-Type, Event, Subscription-State, Date.

use crate::error::HeaderErrorKind;
use crate::method::Method;
use crate::scan::{Cur, is_token};
use crate::uri::{Params, scan_header_params};

/// `CSeq: 4711 INVITE` (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (must fit in 32 bits).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

/// A media type: `type/subtype *(;param)` (Content-Type, RFC 3261 §20.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// Top-level type as written (`application`).
    pub ty: &'a str,
    /// Subtype as written (`sdp`).
    pub subtype: &'a str,
    /// Parameters (`;boundary=...`, `;charset=...`).
    pub params: Params<'a>,
}

impl MediaType<'_> {
    /// Case-insensitive comparison with `type/subtype`.
    #[must_use]
    pub fn is(&self, ty: &str, subtype: &str) -> bool {
        self.ty.eq_ignore_ascii_case(ty) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// The `boundary` parameter of a multipart type, unquoted.
    #[must_use]
    pub fn boundary(&self) -> Option<&str> {
        self.params
            .get("boundary")
            .flatten()
            .map(|b| b.trim_matches('"'))
    }
}

/// `Event: presence;id=1` (RFC 6665 §8.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Event package (with template suffixes, e.g. `presence.winfo`).
    pub package: &'a str,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> Event<'a> {
    /// The `id` parameter.
    #[must_use]
    pub fn id(&self) -> Option<&'a str> {
        self.params.get("id").flatten()
    }
}

/// `Subscription-State: active;expires=600` (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    /// `active`, `pending`, `terminated` or an extension.
    pub state: &'a str,
    /// Parameters.
    pub params: Params<'a>,
    /// `expires`, validated.
    pub expires: Option<u32>,
    /// `retry-after`, validated.
    pub retry_after: Option<u32>,
}

impl<'a> SubscriptionState<'a> {
    /// The `reason` parameter.
    #[must_use]
    pub fn reason(&self) -> Option<&'a str> {
        self.params.get("reason").flatten()
    }
}

/// A Date header value (RFC 3261 §20.17: RFC 1123 date, always GMT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipDate {
    /// Year, e.g. 2005.
    pub year: u16,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=60.
    pub second: u8,
}

pub(crate) fn parse_cseq(
    s: &str,
    share: impl Fn(&str) -> Option<bytes::Bytes>,
) -> Result<CSeq, HeaderErrorKind> {
    let mut c = Cur::new(s);
    c.skip_lws();
    let digits = c.take_while(|b| b.is_ascii_digit());
    if digits.is_empty() {
        return Err(HeaderErrorKind::Syntax("sequence number missing"));
    }
    let seq = crate::scan::parse_u64(digits.as_bytes())
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(HeaderErrorKind::OutOfRange("sequence number"))?;
    if !c.skip_lws() {
        return Err(HeaderErrorKind::Syntax("expected whitespace before method"));
    }
    let m = c.token().ok_or(HeaderErrorKind::Syntax("method missing"))?;
    c.skip_lws();
    if !c.at_end() {
        return Err(HeaderErrorKind::Syntax("unexpected text after method"));
    }
    let shared = share(m);
    let method = Method::from_token_bytes(m.as_bytes(), shared.as_ref())
        .map_err(|_| HeaderErrorKind::Syntax("invalid method"))?;
    Ok(CSeq { seq, method })
}

pub(crate) fn parse_media_type(s: &str) -> Result<MediaType<'_>, HeaderErrorKind> {
    let mut c = Cur::new(s);
    c.skip_lws();
    let ty = c
        .token()
        .ok_or(HeaderErrorKind::Syntax("missing media type"))?;
    if !c.sep(b'/') {
        return Err(HeaderErrorKind::Syntax("expected / in media type"));
    }
    let subtype = c
        .token()
        .ok_or(HeaderErrorKind::Syntax("missing media subtype"))?;
    let params = scan_header_params(&mut c).map_err(HeaderErrorKind::Syntax)?;
    c.skip_lws();
    if !c.at_end() {
        return Err(HeaderErrorKind::Syntax("unexpected text after media type"));
    }
    Ok(MediaType {
        ty,
        subtype,
        params,
    })
}

fn token_with_params(s: &str) -> Result<(&str, Params<'_>), HeaderErrorKind> {
    let mut c = Cur::new(s);
    c.skip_lws();
    let t = c
        .token()
        .ok_or(HeaderErrorKind::Syntax("expected a token"))?;
    let params = scan_header_params(&mut c).map_err(HeaderErrorKind::Syntax)?;
    c.skip_lws();
    if !c.at_end() {
        return Err(HeaderErrorKind::Syntax("unexpected text after parameters"));
    }
    Ok((t, params))
}

pub(crate) fn parse_event(s: &str) -> Result<Event<'_>, HeaderErrorKind> {
    let (package, params) = token_with_params(s)?;
    Ok(Event { package, params })
}

pub(crate) fn parse_subscription_state(s: &str) -> Result<SubscriptionState<'_>, HeaderErrorKind> {
    let (state, params) = token_with_params(s)?;
    let num = |n: &str, what| {
        params
            .get(n)
            .map(|v| crate::headers::addr::parse_delta(v.unwrap_or(""), what))
            .transpose()
    };
    Ok(SubscriptionState {
        state,
        params,
        expires: num("expires", "expires")?,
        retry_after: num("retry-after", "retry-after")?,
    })
}

pub(crate) fn parse_single_token(s: &str) -> Result<&str, HeaderErrorKind> {
    let t = crate::scan::trim_lws(s);
    if t.is_empty() {
        return Err(HeaderErrorKind::Empty);
    }
    if !t.bytes().all(is_token) {
        return Err(HeaderErrorKind::Syntax("not a token"));
    }
    Ok(t)
}

pub(crate) fn parse_date(s: &str) -> Result<SipDate, HeaderErrorKind> {
    // rfc1123-date = wkday "," SP date1 SP time SP "GMT"; date1 = 2DIGIT SP month SP 4DIGIT
    const E: HeaderErrorKind = HeaderErrorKind::Syntax("not an RFC 1123 date in GMT");
    let s = crate::scan::trim_lws(s);
    let b = s.as_bytes();
    if b.len() != 29 {
        return Err(E);
    }
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if !DAYS.contains(&&s[0..3])
        || &s[3..5] != ", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || &s[25..] != " GMT"
    {
        return Err(E);
    }
    let num = |r: std::ops::Range<usize>| -> Result<u16, HeaderErrorKind> {
        let d = &s[r];
        if d.bytes().all(|c| c.is_ascii_digit()) {
            d.parse().map_err(|_| E)
        } else {
            Err(E)
        }
    };
    let month = MONTHS.iter().position(|m| *m == &s[8..11]).ok_or(E)? as u8 + 1;
    if b[19] != b':' || b[22] != b':' {
        return Err(E);
    }
    let (day, year, hour, minute, second) = (
        num(5..7)?,
        num(12..16)?,
        num(17..19)?,
        num(20..22)?,
        num(23..25)?,
    );
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(E);
    }
    Ok(SipDate {
        year,
        month,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_values() {
        assert_eq!(
            parse_cseq("0009\r\n  INVITE", |_| None),
            Ok(CSeq {
                seq: 9,
                method: Method::Invite
            })
        );
        assert_eq!(
            parse_cseq("36893488147419103232 REGISTER", |_| None),
            Err(HeaderErrorKind::OutOfRange("sequence number"))
        );
        assert!(parse_cseq("1", |_| None).is_err());
        assert!(parse_cseq("INVITE", |_| None).is_err());
        assert!(parse_cseq("1 INVITE x", |_| None).is_err());
        assert_eq!(
            parse_cseq("4294967295 FOO", |_| None)
                .unwrap()
                .method
                .as_str(),
            "FOO"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("Sat, 15 Oct 2005 04:44:56 GMT"),
            Ok(SipDate {
                year: 2005,
                month: 10,
                day: 15,
                hour: 4,
                minute: 44,
                second: 56
            })
        );
        assert!(parse_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(parse_date("Fri, 01 Jan 2010 16:00:00").is_err());
    }

    #[test]
    fn media_types() {
        let m = parse_media_type("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.boundary(), Some("7a9cbec02ceef655"));
        assert!(parse_media_type("application").is_err());
        assert!(parse_media_type("application/sdp;").is_err());
    }

    #[test]
    fn subscription_states() {
        let s = parse_subscription_state("terminated;reason=timeout;retry-after=30").unwrap();
        assert_eq!(
            (s.state, s.reason(), s.retry_after),
            ("terminated", Some("timeout"), Some(30))
        );
        assert!(parse_subscription_state("active;expires=x").is_err());
        let e = parse_event("presence.winfo;id=7").unwrap();
        assert_eq!((e.package, e.id()), ("presence.winfo", Some("7")));
    }
}
