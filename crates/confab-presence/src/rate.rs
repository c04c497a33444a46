//! Request rate limits per publisher and per watcher (token buckets), sans-IO: a user who
//! PUBLISHes, or a watcher who SUBSCRIBEs, faster than the configured rate gets `503` with
//! a `Retry-After` saying when the next request will be taken (issue 8: "503 with
//! Retry-After for publishers or subscribers over their rate"). This is in addition to the
//! caps (subscriptions per watcher, publications per user), which bound state, not rate.
//!
//! A bucket holds up to `burst` tokens and refills at `per_minute / 60` tokens per second;
//! each request takes one. Buckets that are full again carry no information and are
//! dropped by [`RateLimiter::prune`], so memory follows the number of recently active keys.

use std::collections::HashMap;

use confab_core::Timestamp;
use serde::{Deserialize, Serialize};

/// One limit (`[presence.rate.publish]`, `[presence.rate.subscribe]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Sustained requests per minute per key; 0 turns the limit off.
    pub per_minute: u32,
    /// Requests allowed at once above the sustained rate (a device starting up publishes and
    /// subscribes to its whole contact list in a burst).
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            per_minute: 120,
            burst: 60,
        }
    }
}

/// `[presence.rate]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// PUBLISH per publishing user.
    pub publish: RateLimit,
    /// SUBSCRIBE (new and refreshes) per watcher (the authenticated address, else the From
    /// URI).
    pub subscribe: RateLimit,
}

impl Default for RateConfig {
    fn default() -> RateConfig {
        RateConfig {
            publish: RateLimit {
                per_minute: 60,
                burst: 20,
            },
            subscribe: RateLimit {
                per_minute: 600,
                burst: 1_000,
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens in thousandths.
    milli: u64,
    at: i64,
}

/// Token buckets by key for one [`RateLimit`].
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    /// Keys with a bucket that is not full.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no key is limited.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn refill(b: &mut Bucket, now: Timestamp, limit: &RateLimit) {
        let elapsed = u64::try_from((now.as_millis() - b.at).max(0)).unwrap_or(0);
        // per_minute tokens per 60_000 ms = per_minute milli-tokens per 60 ms.
        let add = elapsed.saturating_mul(u64::from(limit.per_minute)) / 60;
        let cap = u64::from(limit.burst.max(1)) * 1000;
        b.milli = b.milli.saturating_add(add).min(cap);
        b.at = now.as_millis().max(b.at);
    }

    /// Takes one token for `key` at `now`; `Err(seconds)` (at least 1) when the bucket is
    /// empty: the `Retry-After` until one token is back.
    ///
    /// # Errors
    /// The number of seconds to wait.
    pub fn check(&mut self, key: &str, now: Timestamp, limit: &RateLimit) -> Result<(), u32> {
        if limit.per_minute == 0 {
            return Ok(());
        }
        let cap = u64::from(limit.burst.max(1)) * 1000;
        let b = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            milli: cap,
            at: now.as_millis(),
        });
        Self::refill(b, now, limit);
        if b.milli >= 1000 {
            b.milli -= 1000;
            return Ok(());
        }
        let missing = 1000 - b.milli;
        // ms until `missing` milli-tokens have accrued at per_minute/60 per ms... rounded up.
        let ms = (missing * 60).div_ceil(u64::from(limit.per_minute));
        Err(u32::try_from(ms.div_ceil(1000).max(1)).unwrap_or(u32::MAX))
    }

    /// Drops the buckets that are full again at `now`.
    pub fn prune(&mut self, now: Timestamp, limit: &RateLimit) {
        let cap = u64::from(limit.burst.max(1)) * 1000;
        self.buckets.retain(|_, b| {
            Self::refill(b, now, limit);
            b.milli < cap
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_the_sustained_rate_with_retry_after() {
        let limit = RateLimit {
            per_minute: 60,
            burst: 3,
        };
        let mut r = RateLimiter::new();
        let t0 = Timestamp(1_000_000);
        for _ in 0..3 {
            assert_eq!(r.check("alice", t0, &limit), Ok(()));
        }
        // Empty: one token per second comes back.
        assert_eq!(r.check("alice", t0, &limit), Err(1));
        // Another key has its own bucket.
        assert_eq!(r.check("bob", t0, &limit), Ok(()));
        assert_eq!(r.check("alice", Timestamp(1_000_500), &limit), Err(1));
        assert_eq!(r.check("alice", Timestamp(1_001_000), &limit), Ok(()));
        assert_eq!(r.check("alice", Timestamp(1_001_000), &limit), Err(1));
        // A slow rate gives a long Retry-After.
        let slow = RateLimit {
            per_minute: 2,
            burst: 1,
        };
        assert_eq!(r.check("carol", t0, &slow), Ok(()));
        assert_eq!(r.check("carol", t0, &slow), Err(30));
        // Full buckets are forgotten.
        r.prune(Timestamp(2_000_000), &limit);
        assert!(!r.buckets.contains_key("alice") && !r.buckets.contains_key("bob"));
        // 0 turns the limit off.
        let off = RateLimit {
            per_minute: 0,
            burst: 0,
        };
        for _ in 0..10_000 {
            assert_eq!(r.check("dave", t0, &off), Ok(()));
        }
    }
}
