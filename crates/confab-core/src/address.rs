//! `user@domain` addresses of accounts.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Longest user part accepted, in bytes.
pub const MAX_USER_LEN: usize = 128;
/// Longest domain accepted, in bytes (RFC 1035 §2.3.4).
pub const MAX_DOMAIN_LEN: usize = 253;

/// The address of a user account: `user@domain`.
///
/// The user part is the digest username and is case sensitive (RFC 3261 §19.1.4); the domain
/// is the digest realm and is stored lowercase. Parsing accepts a `sip:` or `sips:` prefix
/// (`sip:alice@example.com`), nothing else of a URI (no port, no parameters, no headers).
///
/// Accepted user characters: ASCII letters and digits, the RFC 3261 `mark` characters
/// `- _ . ! ~ * ' ( )` and the `user-unreserved` characters `& = + $ ,`. Not accepted (on
/// purpose, even though RFC 3261 allows some of them): `;` `?` `/` and `%`-escapes, which
/// make addresses ambiguous on a command line and in digest usernames.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// `user@domain`, with the lowercase domain.
    text: String,
    /// Byte index of `@` in `text`.
    at: usize,
}

/// Why a string is not a valid [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing was given.
    #[error("address is empty; expected user@domain")]
    Empty,
    /// There is no `@`.
    #[error("address `{0}` has no `@`; expected user@domain")]
    MissingAt(String),
    /// More than one `@`.
    #[error("address has more than one `@`; expected user@domain")]
    MultipleAt,
    /// A URI scheme other than `sip:`/`sips:`.
    #[error("address scheme `{0}:` is not supported; use user@domain or sip:user@domain")]
    UnsupportedScheme(String),
    /// Nothing before the `@`.
    #[error("address has an empty user part")]
    EmptyUser,
    /// The user part is longer than [`MAX_USER_LEN`].
    #[error("address user part is {len} bytes long; the limit is {max}")]
    UserTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The user part contains a character not accepted.
    #[error(
        "address user part contains `{ch}` at position {position}; allowed are letters, digits and - _ . ! ~ * ' ( ) & = + $ ,"
    )]
    InvalidUserChar {
        /// The offending character.
        ch: char,
        /// Its character index in the user part (0-based).
        position: usize,
    },
    /// Nothing after the `@`.
    #[error("address has an empty domain")]
    EmptyDomain,
    /// A port, parameter or header follows the domain.
    #[error("address domain must not carry a port, parameters or headers (found `{0}`)")]
    DomainSuffix(String),
    /// The domain is not a valid host name or IP literal.
    #[error("address domain `{domain}` is invalid: {reason}")]
    InvalidDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong.
        reason: &'static str,
    },
}

fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '_' | '.' | '!' | '~' | '*' | '\'' | '(' | ')' | '&' | '=' | '+' | '$' | ','
        )
}

impl Address {
    /// Parses `user@domain`, `sip:user@domain` or `sips:user@domain`.
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        let rest = strip_scheme(input)?;
        let Some((user, domain)) = rest.split_once('@') else {
            return Err(AddressError::MissingAt(input.to_owned()));
        };
        if domain.contains('@') {
            return Err(AddressError::MultipleAt);
        }
        validate_user(user)?;
        let domain = normalise_domain(domain)?;
        Ok(Address::from_parts_unchecked(user, &domain))
    }

    /// Builds an address from a user part and a domain, validating both.
    pub fn new(user: &str, domain: &str) -> Result<Address, AddressError> {
        validate_user(user)?;
        let domain = normalise_domain(domain)?;
        Ok(Address::from_parts_unchecked(user, &domain))
    }

    fn from_parts_unchecked(user: &str, domain: &str) -> Address {
        let mut text = String::with_capacity(user.len() + 1 + domain.len());
        text.push_str(user);
        text.push('@');
        text.push_str(domain);
        Address {
            text,
            at: user.len(),
        }
    }

    /// The user part: the digest username.
    pub fn user(&self) -> &str {
        &self.text[..self.at]
    }

    /// The lowercase domain: the digest realm.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// `user@domain`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `sip:user@domain`.
    pub fn to_sip_uri(&self) -> String {
        format!("sip:{}", self.text)
    }
}

fn strip_scheme(input: &str) -> Result<&str, AddressError> {
    if let Some((scheme, rest)) = input.split_once(':') {
        // A colon before any `@` is a scheme; after the `@` it is a port (checked later).
        if !scheme.contains('@') {
            if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
                return Ok(rest);
            }
            return Err(AddressError::UnsupportedScheme(scheme.to_owned()));
        }
    }
    Ok(input)
}

fn validate_user(user: &str) -> Result<(), AddressError> {
    if user.is_empty() {
        return Err(AddressError::EmptyUser);
    }
    if let Some((position, ch)) = user.chars().enumerate().find(|(_, c)| !is_user_char(*c)) {
        return Err(AddressError::InvalidUserChar { ch, position });
    }
    if user.len() > MAX_USER_LEN {
        return Err(AddressError::UserTooLong {
            len: user.len(),
            max: MAX_USER_LEN,
        });
    }
    Ok(())
}

fn normalise_domain(domain: &str) -> Result<String, AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    let invalid = |reason| AddressError::InvalidDomain {
        domain: domain.to_owned(),
        reason,
    };
    if let Some(inner) = domain.strip_prefix('[') {
        let Some(end) = inner.find(']') else {
            return Err(invalid("IPv6 literal has no closing `]`"));
        };
        let suffix = &inner[end + 1..];
        if !suffix.is_empty() {
            return Err(AddressError::DomainSuffix(suffix.to_owned()));
        }
        let ip: Ipv6Addr = inner[..end]
            .parse()
            .map_err(|_| invalid("not a valid IPv6 address"))?;
        return Ok(format!("[{ip}]"));
    }
    if let Some(i) = domain.find([':', ';', '?', '>']) {
        return Err(AddressError::DomainSuffix(domain[i..].to_owned()));
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(invalid("longer than 253 bytes"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(invalid("empty label (leading, trailing or double dot)"));
        }
        if label.len() > 63 {
            return Err(invalid("a label is longer than 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid("only letters, digits, `-` and `.` are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label starts or ends with `-`"));
        }
    }
    Ok(domain.to_ascii_lowercase())
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Address, AddressError> {
        Address::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.text)
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Address::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(input: &str, user: &str, domain: &str) {
        let a = Address::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!((a.user(), a.domain()), (user, domain), "{input}");
        assert_eq!(a.as_str(), format!("{user}@{domain}"));
    }

    #[track_caller]
    fn err(input: &str, expected: AddressError) {
        assert_eq!(Address::parse(input), Err(expected), "{input}");
    }

    #[test]
    fn accepted_forms() {
        ok("alice@example.com", "alice", "example.com");
        ok("sip:alice@Example.COM", "alice", "example.com");
        ok("SIPS:Bob.Smith@example.com", "Bob.Smith", "example.com");
        ok("+12015550123@pbx.example", "+12015550123", "pbx.example");
        ok("a_b-c!~*'()&=$,@x", "a_b-c!~*'()&=$,", "x");
        ok("alice@192.0.2.1", "alice", "192.0.2.1");
        ok("alice@[2001:DB8::0:1]", "alice", "[2001:db8::1]");
    }

    #[test]
    fn rejected_forms_say_what_is_wrong() {
        err("", AddressError::Empty);
        err("alice", AddressError::MissingAt("alice".into()));
        err("a@b@c", AddressError::MultipleAt);
        err("tel:+123@x", AddressError::UnsupportedScheme("tel".into()));
        err("@example.com", AddressError::EmptyUser);
        err("sip:@example.com", AddressError::EmptyUser);
        err("alice@", AddressError::EmptyDomain);
        err(
            "al ice@example.com",
            AddressError::InvalidUserChar {
                ch: ' ',
                position: 2,
            },
        );
        err(
            "al;ice@example.com",
            AddressError::InvalidUserChar {
                ch: ';',
                position: 2,
            },
        );
        err(
            "al%20ice@example.com",
            AddressError::InvalidUserChar {
                ch: '%',
                position: 2,
            },
        );
        err(
            "alice@example.com:5060",
            AddressError::DomainSuffix(":5060".into()),
        );
        err(
            "alice@example.com;transport=tcp",
            AddressError::DomainSuffix(";transport=tcp".into()),
        );
        err(
            "alice@exa_mple.com",
            AddressError::InvalidDomain {
                domain: "exa_mple.com".into(),
                reason: "only letters, digits, `-` and `.` are allowed",
            },
        );
        err(
            "alice@example..com",
            AddressError::InvalidDomain {
                domain: "example..com".into(),
                reason: "empty label (leading, trailing or double dot)",
            },
        );
        err(
            "alice@-x.com",
            AddressError::InvalidDomain {
                domain: "-x.com".into(),
                reason: "a label starts or ends with `-`",
            },
        );
        err(
            "alice@[::1",
            AddressError::InvalidDomain {
                domain: "[::1".into(),
                reason: "IPv6 literal has no closing `]`",
            },
        );
        let long = "u".repeat(MAX_USER_LEN + 1);
        err(
            &format!("{long}@x"),
            AddressError::UserTooLong {
                len: MAX_USER_LEN + 1,
                max: MAX_USER_LEN,
            },
        );
    }

    #[test]
    fn equality_ignores_domain_case_not_user_case() {
        assert_eq!(
            Address::parse("alice@EXAMPLE.com").unwrap(),
            Address::parse("sip:alice@example.com").unwrap()
        );
        assert_ne!(
            Address::parse("Alice@example.com").unwrap(),
            Address::parse("alice@example.com").unwrap()
        );
    }

    #[test]
    fn serde_round_trip_validates() {
        let a = Address::parse("bob@example.com").unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"bob@example.com\"");
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Address>("\"nope\"").is_err());
    }
}
