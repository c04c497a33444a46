//! SIP request methods.

use std::fmt;

use bytes::Bytes;

use crate::scan::is_token;

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1): `invite` is an extension
/// method, not [`Method::Invite`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// INVITE (RFC 3261)
    Invite,
    /// ACK (RFC 3261)
    Ack,
    /// OPTIONS (RFC 3261)
    Options,
    /// BYE (RFC 3261)
    Bye,
    /// CANCEL (RFC 3261)
    Cancel,
    /// REGISTER (RFC 3261)
    Register,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// PUBLISH (RFC 3903)
    Publish,
    /// MESSAGE (RFC 3428)
    Message,
    /// REFER (RFC 3515)
    Refer,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// Any other (extension) method; guaranteed to be a valid token.
    Other(ExtensionMethod),
}

/// The name of an extension method: a valid RFC 3261 token, shared (zero-copy) with the
/// message it was read from when possible.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionMethod(Bytes);

impl ExtensionMethod {
    /// The method name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Checked to be a token (ASCII) at construction.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// The error for a string that is not a method token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a SIP method token")]
pub struct InvalidMethod;

impl Method {
    /// Classify a method token without allocating for the standard methods. `bytes` must
    /// be the whole token; an extension method shares `source` when it is given.
    pub(crate) fn from_token_bytes(
        tok: &[u8],
        source: Option<&Bytes>,
    ) -> Result<Method, InvalidMethod> {
        Ok(match tok {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"OPTIONS" => Method::Options,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"MESSAGE" => Method::Message,
            b"REFER" => Method::Refer,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            _ => {
                if tok.is_empty() || !tok.iter().all(|&b| is_token(b)) {
                    return Err(InvalidMethod);
                }
                let bytes = match source {
                    Some(src) => src.slice_ref(tok),
                    None => Bytes::copy_from_slice(tok),
                };
                Method::Other(ExtensionMethod(bytes))
            }
        })
    }

    /// Parse a method name (must be an RFC 3261 token).
    ///
    /// # Errors
    /// [`InvalidMethod`] if `s` is empty or holds a non-token character.
    pub fn parse(s: &str) -> Result<Method, InvalidMethod> {
        Method::from_token_bytes(s.as_bytes(), None)
    }

    /// The method name as written on the wire.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Options => "OPTIONS",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Message => "MESSAGE",
            Method::Refer => "REFER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Other(m) => m.as_str(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = InvalidMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_extension_methods() {
        assert_eq!(Method::parse("INVITE"), Ok(Method::Invite));
        assert_eq!(Method::parse("PRACK"), Ok(Method::Prack));
        let m = Method::parse("invite").unwrap();
        assert!(matches!(m, Method::Other(_)));
        assert_eq!(m.as_str(), "invite");
        assert_eq!(
            Method::parse("!interesting-Method0123456789_*+`.%indeed'~")
                .unwrap()
                .as_str(),
            "!interesting-Method0123456789_*+`.%indeed'~"
        );
        assert_eq!(Method::parse(""), Err(InvalidMethod));
        assert_eq!(Method::parse("IN VITE"), Err(InvalidMethod));
        assert_eq!(Method::parse("INVITE\r\n"), Err(InvalidMethod));
    }
}
