//! Choosing relay ports from a configured range, without syscalls.

use crate::turn::Parity;

/// Free/used ports of one relay IP within `[min, max]`. Ports are picked at random
/// (RFC 8656 §7.2 recommends unpredictable relay ports) from a seed the caller supplies.
#[derive(Debug, Clone)]
pub struct PortPool {
    min: u16,
    max: u16,
    used: Vec<u64>,
    n_used: u32,
    rng: u64,
}

impl PortPool {
    /// A pool over `[min, max]` (inclusive); `seed` drives the random choice.
    pub fn new(min: u16, max: u16, seed: u64) -> Self {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        let n = usize::from(max - min) + 1;
        PortPool {
            min,
            max,
            used: vec![0; n.div_ceil(64)],
            n_used: 0,
            rng: seed | 1,
        }
    }

    fn size(&self) -> u32 {
        u32::from(self.max - self.min) + 1
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn is_used(&self, port: u16) -> bool {
        let i = usize::from(port - self.min);
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, port: u16, used: bool) {
        let i = usize::from(port - self.min);
        let bit = 1u64 << (i % 64);
        let was = self.used[i / 64] & bit != 0;
        if used && !was {
            self.used[i / 64] |= bit;
            self.n_used += 1;
        } else if !used && was {
            self.used[i / 64] &= !bit;
            self.n_used -= 1;
        }
    }

    /// Takes a free port of the given parity; `None` if there is none.
    pub fn take(&mut self, parity: Parity) -> Option<u16> {
        let size = self.size();
        if self.n_used >= size {
            return None;
        }
        let ok = |p: u16| parity == Parity::Any || p.is_multiple_of(2);
        // A few random probes, then a scan from a random start.
        for _ in 0..16 {
            let p = self.min + (self.next() % u64::from(size)) as u16;
            if ok(p) && !self.is_used(p) {
                self.set(p, true);
                return Some(p);
            }
        }
        let start = (self.next() % u64::from(size)) as u32;
        for k in 0..size {
            let p = self.min + ((start + k) % size) as u16;
            if ok(p) && !self.is_used(p) {
                self.set(p, true);
                return Some(p);
            }
        }
        None
    }

    /// Takes `port` if it is in range and free.
    pub fn take_specific(&mut self, port: u16) -> bool {
        if port < self.min || port > self.max || self.is_used(port) {
            return false;
        }
        self.set(port, true);
        true
    }

    /// Returns `port` to the pool.
    pub fn release(&mut self, port: u16) {
        if port >= self.min && port <= self.max {
            self.set(port, false);
        }
    }

    /// Ports in use.
    pub fn in_use(&self) -> u32 {
        self.n_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_every_port_once_then_runs_dry() {
        let mut p = PortPool::new(50_000, 50_009, 42);
        let mut got: Vec<u16> = (0..10).map(|_| p.take(Parity::Any).unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (50_000..=50_009).collect::<Vec<_>>());
        assert_eq!(p.take(Parity::Any), None);
        p.release(50_004);
        assert_eq!(p.take(Parity::Even), Some(50_004));
        assert!(!p.take_specific(50_004));
        p.release(50_005);
        assert!(p.take_specific(50_005));
        assert!(!p.take_specific(49_999));
        assert_eq!(p.in_use(), 10);
    }

    #[test]
    fn even_parity_is_honoured() {
        let mut p = PortPool::new(40_000, 40_099, 7);
        for _ in 0..50 {
            assert_eq!(p.take(Parity::Even).unwrap() % 2, 0);
        }
        assert_eq!(p.take(Parity::Even), None);
        assert_eq!(p.take(Parity::Any).unwrap() % 2, 1);
    }
}
