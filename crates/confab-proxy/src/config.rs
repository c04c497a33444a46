//! `[proxy]`: the stateful proxy's settings.

use serde::{Deserialize, Serialize};

/// The `[proxy]` table.
///
/// ```toml
/// [proxy]
/// timer_c_s = 185          # RFC 3261 §16.6 step 11: more than 3 minutes
/// recurse_on_3xx = false   # follow Contact of 3xx responses (§16.7 step 4)
/// max_branches = 16        # per request, including 3xx recursion
/// record_route = true
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Timer C in seconds: how long an INVITE branch may stay without a final response;
    /// reset by every provisional response. RFC 3261 asks for more than 3 minutes.
    pub timer_c_s: u32,
    /// Whether a 3xx response's Contacts become new branches (recursion) instead of being
    /// returned upstream.
    pub recurse_on_3xx: bool,
    /// Most branches one request may create (forking plus recursion).
    pub max_branches: u32,
    /// Whether dialog-creating requests get our Record-Route (needed for NAT traversal over
    /// flows and for the transport bridging of RFC 5658).
    pub record_route: bool,
    /// Max-Forwards set on requests that arrive without one.
    pub default_max_forwards: u8,
    /// Option tags this proxy supports in Proxy-Require; any other gets 420.
    pub supported_proxy_require: Vec<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            timer_c_s: 185,
            recurse_on_3xx: false,
            max_branches: 16,
            record_route: true,
            default_max_forwards: 70,
            supported_proxy_require: Vec::new(),
        }
    }
}

/// A `[proxy]` value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyConfigError {
    /// Timer C must exceed 3 minutes (RFC 3261 §16.6 step 11).
    #[error("proxy.timer_c_s: {0} s is not more than 3 minutes (RFC 3261 §16.6 asks for > 180)")]
    TimerCTooShort(u32),
    /// At least one branch is needed.
    #[error("proxy.max_branches: must be at least 1")]
    NoBranches,
    /// Max-Forwards 0 would make every request unforwardable.
    #[error("proxy.default_max_forwards: must be at least 1")]
    ZeroMaxForwards,
}

impl ProxyConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// The first [`ProxyConfigError`].
    pub fn validate(&self) -> Result<(), ProxyConfigError> {
        if self.timer_c_s <= 180 {
            return Err(ProxyConfigError::TimerCTooShort(self.timer_c_s));
        }
        if self.max_branches == 0 {
            return Err(ProxyConfigError::NoBranches);
        }
        if self.default_max_forwards == 0 {
            return Err(ProxyConfigError::ZeroMaxForwards);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, want: Result<(), ProxyConfigError>) {
        let c: ProxyConfig = toml::from_str(text).unwrap();
        assert_eq!(c.validate(), want, "{text}");
    }

    #[test]
    fn validation() {
        check("", Ok(()));
        check(
            "timer_c_s = 180",
            Err(ProxyConfigError::TimerCTooShort(180)),
        );
        check("timer_c_s = 181", Ok(()));
        check("max_branches = 0", Err(ProxyConfigError::NoBranches));
        check(
            "default_max_forwards = 0",
            Err(ProxyConfigError::ZeroMaxForwards),
        );
        assert!(toml::from_str::<ProxyConfig>("timer_c = 3").is_err());
    }
}
