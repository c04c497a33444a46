//! Failed-attempt limits per (source IP, account) pair.
//!
//! Keyed by the pair, never by the account alone, so an attacker guessing a password from
//! one address locks out only that address for that account: the real user, elsewhere,
//! keeps working. Memory is bounded by `max_pairs`; when the table is full, entries whose
//! minute has passed and that are not locked are swept, and if none can go the new pair is
//! simply not tracked (the limit is best effort under a flood of distinct pairs, which the
//! transport's per-source message limits bound anyway).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;

const MINUTE_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start_ms: u64,
    failures: u32,
    locked_until_ms: u64,
}

/// Counts digest failures per (source IP, account) and locks pairs that exceed the limit.
#[derive(Debug)]
pub struct FailureLimiter {
    max_per_minute: u32,
    lockout_ms: u64,
    max_pairs: usize,
    hasher: RandomState,
    pairs: HashMap<(IpAddr, u64), Entry>,
}

impl FailureLimiter {
    /// `max_per_minute` failures allowed per pair and minute (0: no limit), then `lockout_s`
    /// seconds of refusal; at most `max_pairs` pairs tracked.
    pub fn new(max_per_minute: u32, lockout_s: u32, max_pairs: usize) -> FailureLimiter {
        FailureLimiter {
            max_per_minute,
            lockout_ms: u64::from(lockout_s) * 1000,
            max_pairs: max_pairs.max(1),
            // A per-process random key: clients cannot aim account names at one bucket.
            hasher: RandomState::new(),
            pairs: HashMap::new(),
        }
    }

    fn key(&self, ip: IpAddr, account: &str) -> (IpAddr, u64) {
        (ip, self.hasher.hash_one(account))
    }

    /// If the pair is locked at `now_ms`: the seconds until it may try again (at least 1).
    pub fn locked(&self, ip: IpAddr, account: &str, now_ms: u64) -> Option<u32> {
        if self.max_per_minute == 0 {
            return None;
        }
        let e = self.pairs.get(&self.key(ip, account))?;
        (e.locked_until_ms > now_ms).then(|| secs_until(e.locked_until_ms, now_ms))
    }

    /// Records one failure; returns the lock (seconds) if this failure reached the limit.
    pub fn record_failure(&mut self, ip: IpAddr, account: &str, now_ms: u64) -> Option<u32> {
        if self.max_per_minute == 0 {
            return None;
        }
        let key = self.key(ip, account);
        if !self.pairs.contains_key(&key) && self.pairs.len() >= self.max_pairs {
            self.sweep(now_ms);
            if self.pairs.len() >= self.max_pairs {
                tracing::warn!(
                    pairs = self.pairs.len(),
                    "auth failure table full; not tracking a new (source, account) pair"
                );
                return None;
            }
        }
        let e = self.pairs.entry(key).or_insert(Entry {
            window_start_ms: now_ms,
            failures: 0,
            locked_until_ms: 0,
        });
        if now_ms.saturating_sub(e.window_start_ms) >= MINUTE_MS {
            e.window_start_ms = now_ms;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= self.max_per_minute {
            e.locked_until_ms = now_ms + self.lockout_ms;
            e.failures = 0;
            e.window_start_ms = e.locked_until_ms;
            return Some(secs_until(e.locked_until_ms, now_ms));
        }
        None
    }

    /// Number of pairs tracked.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair is tracked.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn sweep(&mut self, now_ms: u64) {
        self.pairs.retain(|_, e| {
            e.locked_until_ms > now_ms || now_ms.saturating_sub(e.window_start_ms) < MINUTE_MS
        });
    }
}

fn secs_until(until_ms: u64, now_ms: u64) -> u32 {
    u32::try_from(until_ms.saturating_sub(now_ms).div_ceil(1000))
        .unwrap_or(u32::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pair_locks_after_limit_and_others_are_unaffected() {
        let mut l = FailureLimiter::new(3, 60, 100);
        let (attacker, user) = (ip("203.0.113.9"), ip("192.0.2.1"));
        assert_eq!(l.record_failure(attacker, "alice@example.com", 0), None);
        assert_eq!(l.record_failure(attacker, "alice@example.com", 1_000), None);
        assert_eq!(l.locked(attacker, "alice@example.com", 1_500), None);
        assert_eq!(
            l.record_failure(attacker, "alice@example.com", 2_000),
            Some(60)
        );
        assert_eq!(l.locked(attacker, "alice@example.com", 2_000), Some(60));
        assert_eq!(l.locked(attacker, "alice@example.com", 61_500), Some(1));
        // The real user elsewhere, and the attacker on another account: not locked.
        assert_eq!(l.locked(user, "alice@example.com", 3_000), None);
        assert_eq!(l.locked(attacker, "bob@example.com", 3_000), None);
        // After the lockout the pair starts afresh.
        assert_eq!(l.locked(attacker, "alice@example.com", 62_000), None);
        assert_eq!(
            l.record_failure(attacker, "alice@example.com", 62_000),
            None
        );
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_do_not_lock() {
        let mut l = FailureLimiter::new(3, 60, 100);
        let a = ip("203.0.113.9");
        for t in [0, 30_000, 60_000, 90_000, 120_000, 150_000] {
            assert_eq!(l.record_failure(a, "alice@example.com", t), None, "t={t}");
        }
    }

    #[test]
    fn table_is_bounded_and_swept() {
        let mut l = FailureLimiter::new(5, 60, 2);
        l.record_failure(ip("192.0.2.1"), "a", 0);
        l.record_failure(ip("192.0.2.2"), "a", 0);
        // Full: a third pair is not tracked while the others are fresh.
        l.record_failure(ip("192.0.2.3"), "a", 1_000);
        assert_eq!(l.len(), 2);
        // A minute later the old ones are swept and the new one fits.
        l.record_failure(ip("192.0.2.3"), "a", 61_000);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn zero_disables() {
        let mut l = FailureLimiter::new(0, 60, 10);
        for t in 0..100 {
            assert_eq!(l.record_failure(ip("192.0.2.1"), "a", t), None);
        }
        assert_eq!(l.locked(ip("192.0.2.1"), "a", 100), None);
        assert!(l.is_empty());
    }
}
