//! A bounded, in-memory nonce-count replay window (RFC 7616 §3.4: the server "can detect
//! replays" by tracking `nc` per nonce).
//!
//! Per nonce it keeps the highest `nc` seen and a 64-bit bitmap of the 64 counts below it,
//! so requests that arrive out of order (parallel SIP transactions over UDP) are accepted
//! once each. Memory is bounded: two generations of at most `capacity / 2` nonces each; when
//! the young generation is full the old one is dropped (an approximation of LRU: a nonce
//! used again moves to the young generation).
//!
//! Forgetting must not open a replay hole, so the window keeps a *floor*: the largest expiry
//! of any nonce it forgot, and, at creation, a floor given by the caller (set it to
//! `start time + nonce lifetime`, so nonces minted by a previous run are unknown). A nonce
//! that is not tracked and whose expiry is at or below the floor is [`NcVerdict::Unknown`]:
//! the caller answers with a `stale=true` challenge, which costs the client one round trip
//! and never the password. This is the "losing it on restart only forces a new challenge"
//! rule of issue 6.
//!
//! Call [`NonceCountWindow::check`] only after the response digest verified, so
//! unauthenticated requests cannot fill the window.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::nonce::NonceId;

/// The verdict on one `(nonce, nc)` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcVerdict {
    /// First time this count is seen for this nonce: accept.
    Fresh,
    /// This count was already used with this nonce, is too far behind the highest one seen
    /// (more than 63), or is 0: reject (challenge again).
    Replay,
    /// The window does not know this nonce and cannot rule out a replay (it forgot the nonce,
    /// or the nonce predates this process): challenge again with `stale=true`.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_at: u64,
    highest: u32,
    /// Bit i set = count `highest - i` seen.
    seen: u64,
}

/// Nonce ids are HMAC tags, unpredictable to clients, so their first 8 bytes are already a
/// good hash and no random hasher state (which would need OS randomness) is needed.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
}

type Map = HashMap<NonceId, Entry, BuildHasherDefault<IdHasher>>;

/// Tracks nonce counts for at most `capacity` nonces. See the module docs.
#[derive(Debug)]
pub struct NonceCountWindow {
    young: Map,
    old: Map,
    generation_cap: usize,
    floor: u64,
}

impl std::fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdHasher")
    }
}

impl NonceCountWindow {
    /// A window for at most `capacity` nonces (at least 2). Nonces expiring at or before
    /// `floor` (Unix seconds) are [`NcVerdict::Unknown`] unless seen by this window.
    pub fn new(capacity: usize, floor: u64) -> NonceCountWindow {
        let generation_cap = (capacity / 2).max(1);
        NonceCountWindow {
            young: Map::with_capacity_and_hasher(generation_cap, Default::default()),
            old: Map::default(),
            generation_cap,
            floor,
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current floor (see the module docs).
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Records `nc` for the nonce `id` (which expires at `expires_at`) and says whether the
    /// request is fresh.
    pub fn check(&mut self, id: NonceId, expires_at: u64, nc: u32) -> NcVerdict {
        if nc == 0 {
            return NcVerdict::Replay;
        }
        if let Some(e) = self.young.get_mut(&id) {
            return record(e, nc);
        }
        if let Some(mut e) = self.old.remove(&id) {
            let v = record(&mut e, nc);
            self.insert_young(id, e);
            return v;
        }
        if expires_at <= self.floor {
            return NcVerdict::Unknown;
        }
        self.insert_young(
            id,
            Entry {
                expires_at,
                highest: nc,
                seen: 1,
            },
        );
        NcVerdict::Fresh
    }

    fn insert_young(&mut self, id: NonceId, e: Entry) {
        if self.young.len() >= self.generation_cap {
            let dropped = std::mem::replace(&mut self.old, std::mem::take(&mut self.young));
            if let Some(max) = dropped.values().map(|e| e.expires_at).max() {
                self.floor = self.floor.max(max);
            }
        }
        self.young.insert(id, e);
    }
}

fn record(e: &mut Entry, nc: u32) -> NcVerdict {
    if nc > e.highest {
        let shift = nc - e.highest;
        e.seen = if shift >= 64 { 0 } else { e.seen << shift };
        e.seen |= 1;
        e.highest = nc;
        return NcVerdict::Fresh;
    }
    let back = e.highest - nc;
    if back >= 64 {
        return NcVerdict::Replay;
    }
    let bit = 1u64 << back;
    if e.seen & bit != 0 {
        return NcVerdict::Replay;
    }
    e.seen |= bit;
    NcVerdict::Fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> NonceId {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&n.to_le_bytes());
        NonceId(b)
    }

    #[track_caller]
    fn check_seq(w: &mut NonceCountWindow, nonce: u32, exp: u64, seq: &[(u32, NcVerdict)]) {
        for &(nc, expected) in seq {
            assert_eq!(
                w.check(id(nonce), exp, nc),
                expected,
                "nonce {nonce} nc {nc}"
            );
        }
    }

    #[test]
    fn in_order_out_of_order_and_replays() {
        use NcVerdict::*;
        let mut w = NonceCountWindow::new(100, 0);
        check_seq(
            &mut w,
            1,
            500,
            &[
                (1, Fresh),
                (1, Replay),
                (3, Fresh),
                (2, Fresh),
                (2, Replay),
                (3, Replay),
                (0, Replay),
                (70, Fresh),
                (6, Replay), // 64 or more behind the highest
                (7, Fresh),  // 63 behind: still tracked
                (7, Replay),
                (200, Fresh),
                (199, Fresh),
            ],
        );
        // Another nonce has its own counts.
        check_seq(&mut w, 2, 500, &[(1, Fresh), (1, Replay)]);
    }

    #[test]
    fn restart_floor_makes_old_nonces_unknown() {
        let mut w = NonceCountWindow::new(100, 1_000);
        assert_eq!(w.check(id(1), 999, 1), NcVerdict::Unknown);
        assert_eq!(w.check(id(1), 1_000, 1), NcVerdict::Unknown);
        assert_eq!(w.check(id(2), 1_001, 1), NcVerdict::Fresh);
        assert!(w.len() == 1);
    }

    #[test]
    fn bounded_and_forgetting_raises_the_floor() {
        let mut w = NonceCountWindow::new(4, 0);
        // Nonces 1..=6 with expiries 101..=106: generations of 2.
        for n in 1..=6u32 {
            assert_eq!(w.check(id(n), 100 + u64::from(n), 1), NcVerdict::Fresh);
            assert!(w.len() <= 4, "len {} after {n}", w.len());
        }
        // 1 and 2 were dropped: a replay of their first request is not accepted as fresh.
        assert_eq!(w.check(id(1), 101, 1), NcVerdict::Unknown);
        assert_eq!(w.check(id(2), 102, 1), NcVerdict::Unknown);
        assert!(w.floor() >= 102);
        // Tracked nonces still detect replays.
        assert_eq!(w.check(id(6), 106, 1), NcVerdict::Replay);
        assert_eq!(w.check(id(6), 106, 2), NcVerdict::Fresh);
    }

    #[test]
    fn reuse_keeps_a_nonce_alive() {
        let mut w = NonceCountWindow::new(4, 0);
        assert_eq!(w.check(id(1), 1_000, 1), NcVerdict::Fresh);
        for n in 2..=20u32 {
            // Later nonces expire later (they are minted later).
            assert_eq!(w.check(id(n), 10 + u64::from(n), 1), NcVerdict::Fresh);
            // Nonce 1 used between every other insertion stays tracked.
            assert_eq!(w.check(id(1), 1_000, n), NcVerdict::Fresh, "nc {n}");
        }
        assert_eq!(w.check(id(1), 1_000, 20), NcVerdict::Replay);
    }
}
