//! The JSON shapes shared by `--json` CLI output and the HTTP APIs, and the validation of
//! user input they share. Field names are stable: scripts depend on them.

use confab_core::{Address, ApiToken, DisplayName, PhoneNumber, User};
use serde::{Deserialize, Deserializer, Serialize};

/// A user as shown to administrators and to the user themself. Never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// `user@domain`.
    pub address: String,
    /// The digest username (user part).
    pub username: String,
    /// The domain (digest realm).
    pub domain: String,
    /// Name shown to others.
    pub display_name: Option<String>,
    /// Normalised phone number (`+15551234567;ext=12`).
    pub phone: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// Whether a password is set (without one, authentication always fails).
    pub has_password: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            address: u.address.to_string(),
            username: u.address.user().to_string(),
            domain: u.address.domain().to_string(),
            display_name: u.display_name.as_ref().map(|d| d.as_str().to_string()),
            phone: u.phone.as_ref().map(|p| p.as_str().to_string()),
            role: u.role.as_str().to_string(),
            has_password: u.credentials.is_some(),
            created_at: u.created_at.to_string(),
            updated_at: u.updated_at.to_string(),
        }
    }
}

/// An admin API token as listed (the secret is never stored, so never shown again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// The token's name.
    pub name: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        Self {
            name: t.name.as_str().to_string(),
            created_at: t.created_at.to_string(),
        }
    }
}

/// A rejected input field: which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field (`address`, `password`, `display_name`, `phone`, `role`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn field(field: &'static str) -> impl FnOnce(String) -> FieldError {
    move |message| FieldError { field, message }
}

/// Longest password accepted, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Parses an address (`user@domain`, `sip:` accepted) and checks that its domain is served.
pub fn parse_address(text: &str, domains: &[String]) -> Result<Address, FieldError> {
    let a = Address::parse(text.trim()).map_err(|e| field("address")(e.to_string()))?;
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(a.domain())) {
        return Err(field("address")(format!(
            "domain `{}` is not served by this server (served: {})",
            a.domain(),
            domains.join(", ")
        )));
    }
    Ok(a)
}

/// Checks a new password: 1 to [`MAX_PASSWORD_CHARS`] characters, no control characters
/// (the OpenAPI file states the same rule as a pattern).
pub fn check_password(p: &str) -> Result<(), FieldError> {
    if p.is_empty() {
        return Err(field("password")("password is empty".into()));
    }
    let n = p.chars().count();
    if n > MAX_PASSWORD_CHARS {
        return Err(field("password")(format!(
            "password has {n} characters; the limit is {MAX_PASSWORD_CHARS}"
        )));
    }
    if p.chars().any(char::is_control) {
        return Err(field("password")(
            "password contains a control character".into(),
        ));
    }
    Ok(())
}

/// Parses a display name.
pub fn parse_display_name(text: &str) -> Result<DisplayName, FieldError> {
    DisplayName::parse(text).map_err(|e| field("display_name")(e.to_string()))
}

/// Parses a phone number (E.164 or tel URI with `;ext=`).
pub fn parse_phone(text: &str) -> Result<PhoneNumber, FieldError> {
    PhoneNumber::parse(text).map_err(|e| field("phone")(e.to_string()))
}

/// Parses `user` / `admin`.
pub fn parse_role(text: &str) -> Result<confab_core::Role, FieldError> {
    text.parse()
        .map_err(|e: confab_core::RoleError| field("role")(e.to_string()))
}

/// For PATCH bodies: absent = `None`, `null` = `Some(None)`, a value = `Some(Some(v))`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_in_a_served_domain() {
        let domains = vec!["example.com".to_string()];
        let a = parse_address("sip:alice@Example.COM", &domains).unwrap();
        assert_eq!(a.to_string(), "alice@example.com");
        let e = parse_address("bob@other.org", &domains).unwrap_err();
        assert_eq!(e.field, "address");
        assert!(e.message.contains("`other.org` is not served"), "{e}");
        assert_eq!(
            parse_address("nobody", &domains).unwrap_err().field,
            "address"
        );
    }

    #[test]
    fn passwords() {
        assert!(check_password("s3cret pass").is_ok());
        assert!(check_password("pässwörd").is_ok());
        assert!(check_password(&"é".repeat(256)).is_ok());
        for bad in ["", "a\nb", "a\u{0}b", "a\u{85}", &"x".repeat(257)] {
            assert_eq!(
                check_password(bad).unwrap_err().field,
                "password",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn double_option_tells_absent_from_null() {
        #[derive(Deserialize)]
        struct P {
            #[serde(default, deserialize_with = "double_option")]
            x: Option<Option<String>>,
        }
        let p: P = serde_json::from_str("{}").unwrap();
        assert_eq!(p.x, None);
        let p: P = serde_json::from_str(r#"{"x":null}"#).unwrap();
        assert_eq!(p.x, Some(None));
        let p: P = serde_json::from_str(r#"{"x":"v"}"#).unwrap();
        assert_eq!(p.x, Some(Some("v".into())));
    }
}
