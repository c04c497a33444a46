//! Time as an input, and the one timer structure every stateful layer of this crate uses.
//!
//! The crate never reads a clock: callers pass [`Time`], a monotonic instant measured from
//! an epoch of their choosing (the transport adapter typically uses
//! `Time::from_duration(start.elapsed())`; tests use a simulated clock). Deadlines come back
//! as [`Time`] from `poll_timeout()`, and the caller calls `handle_timeout(now)` when one
//! passes.
//!
//! The timer heap is a binary min-heap with **lazy deletion**: arming a timer pushes an
//! entry; cancelling does nothing; when an entry reaches the top, the owner checks whether
//! it is still current (same slot generation, same deadline still armed) and drops it
//! otherwise. Stale entries are compacted away when they outnumber live ones, so the heap
//! stays proportional to the number of live timers. One heap serves every transaction:
//! there is no per-transaction task, thread or allocation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

/// A monotonic instant: microseconds since an epoch chosen by the caller.
///
/// Only differences and order matter. Arithmetic saturates instead of overflowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(0);

    /// `micros` microseconds after the epoch.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Time {
        Time(micros)
    }

    /// `millis` milliseconds after the epoch.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Time {
        Time(millis.saturating_mul(1000))
    }

    /// `d` after the epoch (saturating at `u64::MAX` microseconds).
    #[must_use]
    pub fn from_duration(d: Duration) -> Time {
        Time(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Microseconds since the epoch.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The time since the epoch.
    #[must_use]
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// One scheduled wake-up: `owner` is an index into the owner's slab, `generation` tells a
/// reused slot from the one that armed the timer, `tag` says which of the owner's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    pub(crate) at: Time,
    pub(crate) owner: u32,
    pub(crate) generation: u32,
    pub(crate) tag: u8,
}

/// A binary min-heap of [`TimerEntry`] with lazy deletion (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl TimerHeap {
    pub(crate) fn push(&mut self, e: TimerEntry) {
        self.heap.push(Reverse(e));
    }

    /// The earliest entry, current or stale.
    pub(crate) fn peek(&self) -> Option<&TimerEntry> {
        self.heap.peek().map(|r| &r.0)
    }

    pub(crate) fn pop(&mut self) -> Option<TimerEntry> {
        self.heap.pop().map(|r| r.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drop every stale entry when stale ones dominate: called by the owner with the
    /// number of timers it knows to be armed.
    pub(crate) fn maybe_compact(&mut self, live: usize, is_live: impl FnMut(&TimerEntry) -> bool) {
        if self.heap.len() > 64 && self.heap.len() > live.saturating_mul(3) {
            let mut is_live = is_live;
            self.heap.retain(|r| is_live(&r.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arithmetic_saturates() {
        let t = Time::from_millis(1500);
        assert_eq!(t.as_micros(), 1_500_000);
        assert_eq!(
            (t + Duration::from_millis(500)).as_duration(),
            Duration::from_secs(2)
        );
        assert_eq!(
            Time::from_micros(u64::MAX - 1) + Duration::from_secs(1),
            Time::from_micros(u64::MAX)
        );
        assert_eq!(Time::ZERO.saturating_duration_since(t), Duration::ZERO);
        assert_eq!(t.to_string(), "1.500000s");
    }

    #[test]
    fn heap_orders_and_compacts() {
        let mut h = TimerHeap::default();
        for i in 0..200u32 {
            h.push(TimerEntry {
                at: Time::from_millis(u64::from(200 - i)),
                owner: i,
                generation: 0,
                tag: 0,
            });
        }
        assert_eq!(h.peek().map(|e| e.owner), Some(199));
        // Only even owners are live: compaction keeps exactly those.
        h.maybe_compact(10, |e| e.owner % 2 == 0 && e.owner < 20);
        assert_eq!(h.len(), 10);
        let mut last = Time::ZERO;
        while let Some(e) = h.pop() {
            assert!(e.at >= last);
            last = e.at;
        }
    }
}
