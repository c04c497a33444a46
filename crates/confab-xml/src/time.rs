//! `xs:dateTime` as PIDF `timestamp` and the RPID `from`/`until`/`last-input` attributes
//! use it (RFC 3339 profile).

use std::fmt;

/// A date-time as written, with its instant in milliseconds since the Unix epoch.
///
/// Parsing accepts `YYYY-MM-DDThh:mm:ss[.fraction][Z|±hh:mm]`; a value without a zone is
/// taken as UTC (XML Schema leaves it "local"; a server has no better guess). The text is
/// kept so a document is written back as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateTime {
    text: String,
    millis: i64,
}

/// A date-time that is not in the accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date-time (expected e.g. 2005-10-27T16:49:29Z)")]
pub struct DateTimeError(pub String);

impl DateTime {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<DateTime, DateTimeError> {
        let t = text.trim();
        let millis = parse_millis(t.as_bytes()).ok_or_else(|| DateTimeError(text.to_owned()))?;
        Ok(DateTime {
            text: t.to_owned(),
            millis,
        })
    }

    /// The UTC form `YYYY-MM-DDThh:mm:ss.mmmZ` of an instant (milliseconds since the epoch).
    pub fn from_unix_millis(millis: i64) -> DateTime {
        let secs = millis.div_euclid(1000);
        let ms = millis.rem_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let text = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        );
        DateTime { text, millis }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        self.millis
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0i64, |n, d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

fn parse_millis(b: &[u8]) -> Option<i64> {
    // Date: at least 4-digit year.
    let t = b.iter().position(|&c| c == b'T' || c == b't')?;
    let (date, rest) = (&b[..t], &b[t + 1..]);
    if date.len() < 10 || date[date.len() - 3] != b'-' || date[date.len() - 6] != b'-' {
        return None;
    }
    let year = num(&date[..date.len() - 6])?;
    let month = num(&date[date.len() - 5..date.len() - 3])?;
    let day = num(&date[date.len() - 2..])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if rest.len() < 8 || rest[2] != b':' || rest[5] != b':' {
        return None;
    }
    let (h, mi, s) = (num(&rest[..2])?, num(&rest[3..5])?, num(&rest[6..8])?);
    if h > 24 || mi > 59 || s > 60 || (h == 24 && (mi, s) != (0, 0)) {
        return None;
    }
    let mut rest = &rest[8..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for i in 0..3 {
            ms = ms * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &frac[n..];
    }
    let offset_min = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), hh @ .., b':', m1, m2] if hh.len() == 2 => {
            let off = num(hh)? * 60 + num(&[*m1, *m2])?;
            if num(hh)? > 14 || num(&[*m1, *m2])? > 59 {
                return None;
            }
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s.min(59) - offset_min * 60;
    secs.checked_mul(1000)?.checked_add(ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: Option<i64>) {
        assert_eq!(
            DateTime::parse(text).ok().map(|d| d.unix_millis()),
            expected,
            "{text}"
        );
    }

    #[test]
    fn rfc3339_forms() {
        check("1970-01-01T00:00:00Z", Some(0));
        check("2001-10-27T16:49:29Z", Some(1_004_201_369_000));
        check("2004-10-21T13:20:00.000-05:00", Some(1_098_382_800_000));
        check("2005-05-30T12:00:00+05:00", Some(1_117_436_400_000));
        check("2005-05-30T07:00:00.5Z", Some(1_117_436_400_500));
        check("2005-05-30T07:00:00", Some(1_117_436_400_000));
        check("2000-02-29T00:00:00Z", Some(951_782_400_000));
        check("2001-02-29T00:00:00Z", None);
        check("2001-13-01T00:00:00Z", None);
        check("2001-10-27 16:49:29Z", None);
        check("2001-10-27T16:49Z", None);
        check("2001-10-27T16:49:29+5:00", None);
        check("2001-10-27T16:49:29.Z", None);
        check("", None);
        check("1795-10-27T16:49:29Z", Some(-5_496_534_631_000));
    }

    #[test]
    fn from_millis_round_trips() {
        for ms in [
            0,
            1_004_201_369_123,
            -5_496_534_631_000,
            253_402_300_799_999,
        ] {
            let d = DateTime::from_unix_millis(ms);
            assert_eq!(DateTime::parse(d.as_str()).unwrap().unix_millis(), ms);
        }
        assert_eq!(
            DateTime::from_unix_millis(1_004_201_369_000).as_str(),
            "2001-10-27T16:49:29.000Z"
        );
    }
}
