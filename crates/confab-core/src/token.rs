//! Bearer tokens for the admin HTTP API.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::Timestamp;

/// Prefix of every token secret, so leaked tokens are easy to recognise in logs and scans.
pub const TOKEN_PREFIX: &str = "confab_";

/// The clear text of a new token, shown once to the operator and never stored.
///
/// Format: `confab_` followed by 32 random bytes in unpadded base64url (43 characters).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenSecret(String);

impl ApiTokenSecret {
    /// Builds a secret from 32 bytes the caller drew from a cryptographic RNG.
    pub fn from_random(random: [u8; 32]) -> ApiTokenSecret {
        let mut s = String::with_capacity(TOKEN_PREFIX.len() + 43);
        s.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(random, &mut s);
        ApiTokenSecret(s)
    }

    /// Accepts a presented bearer token; `None` when it does not have the token format.
    pub fn parse(presented: &str) -> Option<ApiTokenSecret> {
        let body = presented.strip_prefix(TOKEN_PREFIX)?;
        let ok = body.len() == 43
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| ApiTokenSecret(presented.to_owned()))
    }

    /// The text to hand to the operator.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which the store keeps this token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for ApiTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiTokenSecret(<redacted>)")
    }
}

/// SHA-256 of a token secret: what the store keeps and looks tokens up by. A plain hash is
/// enough (no salt, no slow KDF) because the secret has 256 random bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// The operator's name for a token (`ci-deploy`): 1 to 64 characters from letters, digits,
/// `-`, `_`, `.`; unique.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TokenName(String);

/// A bad token name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Empty or longer than 64 characters.
    #[error("token name must be 1 to 64 characters long (got {0})")]
    Length(usize),
    /// A character outside the allowed set.
    #[error("token name contains `{0}`; allowed are letters, digits, `-`, `_` and `.`")]
    InvalidChar(char),
}

impl TokenName {
    /// Validates a token name.
    pub fn parse(input: &str) -> Result<TokenName, TokenError> {
        let n = input.chars().count();
        if n == 0 || n > 64 {
            return Err(TokenError::Length(n));
        }
        if let Some(c) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(TokenError::InvalidChar(c));
        }
        Ok(TokenName(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenName({})", self.0)
    }
}

/// A stored API token (without its secret). Tokens grant admin rights.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    /// The operator's name for it.
    pub name: TokenName,
    /// When it was created.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_format_and_hash() {
        let s = ApiTokenSecret::from_random([0xfb; 32]);
        assert_eq!(s.expose().len(), 50);
        assert!(s.expose().starts_with("confab_-_v7"));
        let parsed = ApiTokenSecret::parse(s.expose()).unwrap();
        assert_eq!(parsed.hash(), s.hash());
        assert_ne!(ApiTokenSecret::from_random([0; 32]).hash(), s.hash());
        assert!(ApiTokenSecret::parse("confab_short").is_none());
        assert!(ApiTokenSecret::parse(&s.expose()[1..]).is_none());
        assert!(!format!("{s:?}").contains("confab_"));
    }

    #[test]
    fn names() {
        assert!(TokenName::parse("ci-deploy.v2_x").is_ok());
        assert_eq!(TokenName::parse(""), Err(TokenError::Length(0)));
        assert_eq!(TokenName::parse("a b"), Err(TokenError::InvalidChar(' ')));
        assert_eq!(
            TokenName::parse(&"x".repeat(65)),
            Err(TokenError::Length(65))
        );
    }
}
