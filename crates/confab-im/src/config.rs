//! `[im]`: the IM role's settings.

use serde::{Deserialize, Serialize};

use confab_core::message_queue::Quota;

/// `[im]` of the configuration file.
///
/// Every front end of a pool should use the same values (they share the queue); the
/// defaults follow what Kamailio's msilo and Flexisip ship with, scaled to a small
/// organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImConfig {
    /// Store MESSAGEs for known users without a registered endpoint (answered 202) and
    /// deliver them when the user registers. `false`: such MESSAGEs get 480 as before.
    pub offline: bool,
    /// Seconds an undelivered message is kept (1 to 30 days' worth). Default 7 days.
    pub expiry_s: u32,
    /// Seconds after the first delivery during which endpoints that register also get the
    /// message (0 to 86400). Default 300.
    pub delivery_window_s: u32,
    /// Most messages queued per user (1 to 100000). Default 500.
    pub quota_messages: u32,
    /// Most bytes queued per user (1 KiB to 1 GiB). Default 4 MiB.
    pub quota_bytes: u64,
    /// Largest MESSAGE stored, in bytes (the whole request; 1 KiB to 1 MiB): larger ones
    /// get 413. Default 65536.
    pub max_message_bytes: u32,
    /// Status of the refusal when the recipient's queue is full: 480 (default: "the user
    /// is not available now", which clients show as undelivered) or 486.
    pub over_quota_status: u16,
    /// Seconds between expiry sweeps (1 to 3600). Default 30.
    pub sweep_interval_s: u32,
}

impl Default for ImConfig {
    fn default() -> Self {
        ImConfig {
            offline: true,
            expiry_s: 7 * 86_400,
            delivery_window_s: 300,
            quota_messages: 500,
            quota_bytes: 4 * 1024 * 1024,
            max_message_bytes: 65_536,
            over_quota_status: 480,
            sweep_interval_s: 30,
        }
    }
}

/// An `[im]` value out of range: names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("im.{key}: {message}")]
pub struct ImConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ImConfigError> {
    if v < lo || v > hi {
        return Err(ImConfigError {
            key,
            message: format!("must be between {lo} and {hi} (is {v})"),
        });
    }
    Ok(())
}

impl ImConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`ImConfigError`] naming the first key out of range.
    pub fn validate(&self) -> Result<(), ImConfigError> {
        range("expiry_s", self.expiry_s, 1, 30 * 86_400)?;
        range("delivery_window_s", self.delivery_window_s, 0, 86_400)?;
        range("quota_messages", self.quota_messages, 1, 100_000)?;
        range("quota_bytes", self.quota_bytes, 1024, 1 << 30)?;
        range("max_message_bytes", self.max_message_bytes, 1024, 1 << 20)?;
        range("sweep_interval_s", self.sweep_interval_s, 1, 3600)?;
        if !matches!(self.over_quota_status, 480 | 486) {
            return Err(ImConfigError {
                key: "over_quota_status",
                message: format!("must be 480 or 486 (is {})", self.over_quota_status),
            });
        }
        Ok(())
    }

    /// The per-user quota.
    pub fn quota(&self) -> Quota {
        Quota {
            max_messages: self.quota_messages,
            max_bytes: self.quota_bytes,
        }
    }

    /// The delivery window in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.delivery_window_s) * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        ImConfig::default().validate().unwrap();
        let c = ImConfig {
            over_quota_status: 404,
            ..ImConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "over_quota_status");
        let c = ImConfig {
            expiry_s: 0,
            ..ImConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "im.expiry_s: must be between 1 and 2592000 (is 0)"
        );
    }
}
