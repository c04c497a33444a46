//! Phone numbers of users (E.164, RFC 3966 `tel:` URIs).

use std::fmt;
use std::str::FromStr;

/// Most digits an E.164 number may have (ITU-T E.164 §6.1).
pub const MAX_E164_DIGITS: usize = 15;
/// Most digits accepted in an extension.
pub const MAX_EXT_DIGITS: usize = 20;

/// A global phone number, optionally with an extension, stored normalised.
///
/// Accepted input: `+12015550123`, `+1 (201) 555-0123`, `tel:+1-201-555-0123` and
/// `tel:+1-201-555-0123;ext=42` (visual separators `-`, `.`, `(`, `)` and, outside a URI,
/// spaces are dropped). The normalised form is `+12015550123` or `+12015550123;ext=42`;
/// two inputs denote the same number exactly when their normalised forms are equal, which
/// is what the store's uniqueness rule compares.
///
/// Not accepted: local numbers (no `+`; RFC 3966 would need a `phone-context`), and `tel:`
/// parameters other than `ext` (`isub`, `phone-context`, ...).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhoneNumber {
    /// `+digits` or `+digits;ext=digits`.
    text: String,
}

/// Why a string is not a valid [`PhoneNumber`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// Nothing was given.
    #[error("phone number is empty")]
    Empty,
    /// The number does not start with `+`.
    #[error(
        "phone number must be global E.164 starting with `+` (local numbers are not supported)"
    )]
    NotGlobal,
    /// A character that is neither a digit nor a visual separator.
    #[error("phone number contains `{0}`; only digits and the separators - . ( ) are allowed")]
    InvalidChar(char),
    /// No digits after the `+`.
    #[error("phone number has no digits")]
    NoDigits,
    /// The country code starts with 0.
    #[error("phone number country code cannot start with 0")]
    LeadingZero,
    /// More than [`MAX_E164_DIGITS`] digits.
    #[error("phone number has {0} digits; E.164 allows at most 15")]
    TooLong(usize),
    /// An empty or malformed `;ext=`.
    #[error("phone extension is invalid: {0}")]
    InvalidExtension(&'static str),
    /// A `tel:` parameter other than `ext`.
    #[error("tel URI parameter `{0}` is not supported (only `ext` is)")]
    UnsupportedParameter(String),
}

fn is_separator(c: char, allow_space: bool) -> bool {
    matches!(c, '-' | '.' | '(' | ')') || (allow_space && c == ' ')
}

fn collect_digits(
    input: &str,
    allow_space: bool,
    out: &mut String,
    max: usize,
) -> Result<usize, PhoneError> {
    let mut n = 0;
    for c in input.chars() {
        if c.is_ascii_digit() {
            n += 1;
            if n <= max {
                out.push(c);
            }
        } else if !is_separator(c, allow_space) {
            return Err(PhoneError::InvalidChar(c));
        }
    }
    Ok(n)
}

impl PhoneNumber {
    /// Parses and normalises an E.164 number or a `tel:` URI.
    pub fn parse(input: &str) -> Result<PhoneNumber, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let (is_uri, rest) = match trimmed.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("tel:") => (true, &trimmed[4..]),
            _ => (false, trimmed),
        };
        let mut parts = rest.split(';');
        let number = parts.next().unwrap_or("");
        let Some(digits) = number.strip_prefix('+') else {
            return Err(if number.is_empty() {
                PhoneError::Empty
            } else {
                PhoneError::NotGlobal
            });
        };
        let mut text = String::with_capacity(1 + MAX_E164_DIGITS + 5 + MAX_EXT_DIGITS);
        text.push('+');
        let n = collect_digits(digits, !is_uri, &mut text, MAX_E164_DIGITS)?;
        if n == 0 {
            return Err(PhoneError::NoDigits);
        }
        if n > MAX_E164_DIGITS {
            return Err(PhoneError::TooLong(n));
        }
        if text.as_bytes()[1] == b'0' {
            return Err(PhoneError::LeadingZero);
        }
        let mut have_ext = false;
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if !name.trim().eq_ignore_ascii_case("ext") {
                return Err(PhoneError::UnsupportedParameter(name.to_owned()));
            }
            if have_ext {
                return Err(PhoneError::InvalidExtension("given twice"));
            }
            have_ext = true;
            text.push_str(";ext=");
            let n = collect_digits(value, !is_uri, &mut text, MAX_EXT_DIGITS)
                .map_err(|_| PhoneError::InvalidExtension("only digits and - . ( ) are allowed"))?;
            if n == 0 {
                return Err(PhoneError::InvalidExtension("no digits"));
            }
            if n > MAX_EXT_DIGITS {
                return Err(PhoneError::InvalidExtension("more than 20 digits"));
            }
        }
        Ok(PhoneNumber { text })
    }

    /// The normalised form: `+12015550123` or `+12015550123;ext=42`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The E.164 digits with the leading `+`, without the extension.
    pub fn e164(&self) -> &str {
        self.text.split(';').next().unwrap_or(&self.text)
    }

    /// The extension digits, if any.
    pub fn extension(&self) -> Option<&str> {
        self.text.split_once(";ext=").map(|(_, e)| e)
    }

    /// `tel:+12015550123;ext=42`.
    pub fn to_tel_uri(&self) -> String {
        format!("tel:{}", self.text)
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<PhoneNumber, PhoneError> {
        PhoneNumber::parse(s)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.text)
    }
}

impl serde::Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PhoneNumber, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        PhoneNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(input: &str, normalised: &str) {
        let p = PhoneNumber::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(p.as_str(), normalised, "{input}");
        // The normalised form parses to itself, and so does its tel URI.
        assert_eq!(PhoneNumber::parse(p.as_str()).unwrap(), p);
        assert_eq!(PhoneNumber::parse(&p.to_tel_uri()).unwrap(), p);
    }

    #[track_caller]
    fn err(input: &str, expected: PhoneError) {
        assert_eq!(PhoneNumber::parse(input), Err(expected), "{input}");
    }

    #[test]
    fn normalisation() {
        ok("+12015550123", "+12015550123");
        ok("+1 (201) 555-0123", "+12015550123");
        ok("tel:+1-201-555-0123", "+12015550123");
        ok("TEL:+1.201.555.0123;ext=42", "+12015550123;ext=42");
        ok("tel:+44-20-7946-0958;ext=1-2", "+442079460958;ext=12");
        ok("+4930123456;ext=7", "+4930123456;ext=7");
        ok("+999999999999999", "+999999999999999");
    }

    #[test]
    fn errors() {
        err("", PhoneError::Empty);
        err("tel:", PhoneError::Empty);
        err("2015550123", PhoneError::NotGlobal);
        err(
            "tel:5550123;phone-context=example.com",
            PhoneError::NotGlobal,
        );
        err("+1 201 x", PhoneError::InvalidChar('x'));
        err("tel:+1 201", PhoneError::InvalidChar(' '));
        err("+", PhoneError::NoDigits);
        err("+-", PhoneError::NoDigits);
        err("+0123", PhoneError::LeadingZero);
        err("+1234567890123456", PhoneError::TooLong(16));
        err("+123;ext=", PhoneError::InvalidExtension("no digits"));
        err(
            "+123;ext=1;ext=2",
            PhoneError::InvalidExtension("given twice"),
        );
        err(
            "+123;ext=a",
            PhoneError::InvalidExtension("only digits and - . ( ) are allowed"),
        );
        err(
            "tel:+123;isub=44",
            PhoneError::UnsupportedParameter("isub".into()),
        );
    }

    #[test]
    fn parts() {
        let p = PhoneNumber::parse("tel:+1-201-555-0123;ext=42").unwrap();
        assert_eq!(p.e164(), "+12015550123");
        assert_eq!(p.extension(), Some("42"));
        assert_eq!(p.to_tel_uri(), "tel:+12015550123;ext=42");
        let q = PhoneNumber::parse("+12015550123").unwrap();
        assert_eq!(q.extension(), None);
        assert_ne!(p, q);
    }
}
