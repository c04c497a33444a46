//! Per-source limits: connections, half-open TLS handshakes, bytes in flight, messages per
//! second, and error responses per second (anti-reflection).
//!
//! A "source" is the peer's IP address (not the port: one host opening many ports is one
//! source). State lives in a sharded table so that receive tasks on both cores rarely meet
//! on a lock. The table is bounded: once full, unknown sources share one overflow entry,
//! so a flood of spoofed addresses cannot grow memory, and it only throttles itself and
//! other unknown sources, never the sources already known.
//!
//! Time is an argument (`now`), so the accounting is unit-tested without a clock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;

const SHARDS: usize = 32;

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn full(burst: u32, now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token if available. A rate of 0 means unlimited.
    pub(crate) fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * f64::from(rate)).min(f64::from(burst.max(1)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Time until one token is available (zero if one is).
    pub(crate) fn wait_time(&self, rate: u32) -> Duration {
        if rate == 0 || self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / f64::from(rate))
        }
    }

    fn is_full(&self, rate: u32, burst: u32, now: Instant) -> bool {
        rate == 0
            || self.tokens
                + now.saturating_duration_since(self.last).as_secs_f64() * f64::from(rate)
                >= f64::from(burst.max(1))
    }
}

#[derive(Debug)]
struct SourceState {
    messages: TokenBucket,
    error_responses: TokenBucket,
    connections: u32,
    handshakes: u32,
    bytes_in_flight: usize,
}

impl SourceState {
    fn new(cfg: &LimitsConfig, now: Instant) -> Self {
        SourceState {
            messages: TokenBucket::full(cfg.message_burst_per_source, now),
            error_responses: TokenBucket::full(cfg.error_response_burst_per_source, now),
            connections: 0,
            handshakes: 0,
            bytes_in_flight: 0,
        }
    }

    fn idle(&self, cfg: &LimitsConfig, now: Instant) -> bool {
        self.connections == 0
            && self.handshakes == 0
            && self.bytes_in_flight == 0
            && self.messages.is_full(
                cfg.messages_per_second_per_source,
                cfg.message_burst_per_source,
                now,
            )
            && self.error_responses.is_full(
                cfg.error_responses_per_second_per_source,
                cfg.error_response_burst_per_source,
                now,
            )
    }
}

/// Which per-source limit refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// `max_connections_per_source`.
    #[error("too many connections from this source")]
    Connections,
    /// `max_connections`.
    #[error("too many connections in total")]
    TotalConnections,
    /// `max_tls_handshakes_per_source`.
    #[error("too many TLS/WebSocket handshakes in progress from this source")]
    Handshakes,
    /// `max_bytes_in_flight_per_source`.
    #[error("too many bytes in flight for this source")]
    BytesInFlight,
}

impl LimitExceeded {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Connections => "connections_per_source",
            Self::TotalConnections => "connections_total",
            Self::Handshakes => "handshakes_per_source",
            Self::BytesInFlight => "bytes_in_flight_per_source",
        }
    }
}

/// The per-source table. Shared by every task of one transport.
#[derive(Debug)]
pub(crate) struct SourceTable {
    cfg: LimitsConfig,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, SourceState>>>,
    total_connections: Mutex<u32>,
}

/// The key used for all sources once the table is full.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl SourceTable {
    pub(crate) fn new(cfg: LimitsConfig) -> Arc<Self> {
        Arc::new(SourceTable {
            cfg,
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            total_connections: Mutex::new(0),
        })
    }

    fn with<R>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut SourceState) -> R) -> R {
        let ip = canonical(ip);
        let shard = &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let per_shard = (self.cfg.max_tracked_sources / SHARDS).max(1);
        let key = if map.contains_key(&ip) || map.len() < per_shard {
            ip
        } else {
            OVERFLOW
        };
        let st = map
            .entry(key)
            .or_insert_with(|| SourceState::new(&self.cfg, now));
        f(st)
    }

    /// Counts one received message; false when the source is over its rate.
    pub(crate) fn admit_message(&self, ip: IpAddr, now: Instant) -> bool {
        let (rate, burst) = (
            self.cfg.messages_per_second_per_source,
            self.cfg.message_burst_per_source,
        );
        if rate == 0 {
            return true;
        }
        self.with(ip, now, |s| s.messages.take(rate, burst, now))
    }

    /// For streams: how long to pause reading before the next message is admitted (zero when
    /// admitted now; the token is then taken).
    pub(crate) fn message_delay(&self, ip: IpAddr, now: Instant) -> Duration {
        let (rate, burst) = (
            self.cfg.messages_per_second_per_source,
            self.cfg.message_burst_per_source,
        );
        if rate == 0 {
            return Duration::ZERO;
        }
        self.with(ip, now, |s| {
            if s.messages.take(rate, burst, now) {
                Duration::ZERO
            } else {
                s.messages.wait_time(rate).max(Duration::from_millis(1))
            }
        })
    }

    /// May we answer bad input from this source? (anti-reflection)
    pub(crate) fn admit_error_response(&self, ip: IpAddr, now: Instant) -> bool {
        let (rate, burst) = (
            self.cfg.error_responses_per_second_per_source,
            self.cfg.error_response_burst_per_source,
        );
        self.with(ip, now, |s| s.error_responses.take(rate, burst, now))
    }

    /// Accounts a new connection from `ip`; the guard gives it back on drop.
    pub(crate) fn open_connection(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<ConnectionGuard, LimitExceeded> {
        {
            let mut total = self
                .total_connections
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if self.cfg.max_connections != 0 && *total >= self.cfg.max_connections {
                return Err(LimitExceeded::TotalConnections);
            }
            let max = self.cfg.max_connections_per_source;
            self.with(ip, now, |s| {
                if max != 0 && s.connections >= max {
                    return Err(LimitExceeded::Connections);
                }
                s.connections += 1;
                Ok(())
            })?;
            *total += 1;
        }
        Ok(ConnectionGuard {
            table: self.clone(),
            ip,
        })
    }

    /// Accounts a TLS or WebSocket handshake in progress; the guard gives it back on drop.
    pub(crate) fn begin_handshake(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<HandshakeGuard, LimitExceeded> {
        let max = self.cfg.max_handshakes_per_source;
        self.with(ip, now, |s| {
            if max != 0 && s.handshakes >= max {
                return Err(LimitExceeded::Handshakes);
            }
            s.handshakes += 1;
            Ok(())
        })?;
        Ok(HandshakeGuard {
            table: self.clone(),
            ip,
        })
    }

    /// Reserves `n` bytes of buffer for `ip` (a partial message being received, or data
    /// queued to send).
    pub(crate) fn reserve_bytes(
        &self,
        ip: IpAddr,
        n: usize,
        now: Instant,
    ) -> Result<(), LimitExceeded> {
        let max = self.cfg.max_bytes_in_flight_per_source;
        self.with(ip, now, |s| {
            if max != 0 && s.bytes_in_flight + n > max {
                return Err(LimitExceeded::BytesInFlight);
            }
            s.bytes_in_flight += n;
            Ok(())
        })
    }

    /// Gives back bytes reserved with [`Self::reserve_bytes`].
    pub(crate) fn release_bytes(&self, ip: IpAddr, n: usize, now: Instant) {
        self.with(ip, now, |s| {
            s.bytes_in_flight = s.bytes_in_flight.saturating_sub(n)
        });
    }

    /// Drops entries with nothing in use and full buckets. Called periodically by one task.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut left = 0;
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, s| !s.idle(&self.cfg, now));
            left += map.len();
        }
        left
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 source they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Held while a connection is open.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    table: Arc<SourceTable>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.table.with(self.ip, Instant::now(), |s| {
            s.connections = s.connections.saturating_sub(1)
        });
        let mut total = self
            .table
            .total_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *total = total.saturating_sub(1);
    }
}

/// Held while a handshake is in progress.
#[derive(Debug)]
pub(crate) struct HandshakeGuard {
    table: Arc<SourceTable>,
    ip: IpAddr,
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        self.table.with(self.ip, Instant::now(), |s| {
            s.handshakes = s.handshakes.saturating_sub(1)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LimitsConfig {
        LimitsConfig {
            max_connections: 3,
            max_connections_per_source: 2,
            max_handshakes_per_source: 1,
            max_bytes_in_flight_per_source: 100,
            messages_per_second_per_source: 10,
            message_burst_per_source: 5,
            error_responses_per_second_per_source: 1,
            error_response_burst_per_source: 2,
            max_tracked_sources: SHARDS * 2,
        }
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn message_rate_is_per_source() {
        let t = SourceTable::new(cfg());
        let now = Instant::now();
        let admitted = (0..100).filter(|_| t.admit_message(A, now)).count();
        assert_eq!(admitted, 5, "the burst");
        // B is not slowed by A's flood
        assert!((0..5).all(|_| t.admit_message(B, now)));
        // 10/s: after 0.5 s five more tokens for A
        let later = now + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| t.admit_message(A, later)).count(), 5);
        // the IPv4-mapped form is the same source
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(!t.admit_message(mapped, later));
        let d = t.message_delay(A, later);
        assert!(
            d >= Duration::from_millis(99) && d <= Duration::from_millis(101),
            "{d:?}"
        );
        assert_eq!(t.message_delay(B, later), Duration::ZERO);
    }

    #[test]
    fn error_responses_are_rate_limited() {
        let t = SourceTable::new(cfg());
        let now = Instant::now();
        assert_eq!(
            (0..10).filter(|_| t.admit_error_response(A, now)).count(),
            2
        );
        assert!(t.admit_error_response(A, now + Duration::from_secs(1)));
        assert!(!t.admit_error_response(A, now + Duration::from_secs(1)));
    }

    #[test]
    fn connection_limits() {
        let t = SourceTable::new(cfg());
        let now = Instant::now();
        let a1 = t.open_connection(A, now).unwrap();
        let _a2 = t.open_connection(A, now).unwrap();
        assert_eq!(
            t.open_connection(A, now).unwrap_err(),
            LimitExceeded::Connections
        );
        let _b1 = t.open_connection(B, now).unwrap();
        assert_eq!(
            t.open_connection(B, now).unwrap_err(),
            LimitExceeded::TotalConnections
        );
        drop(a1);
        let _a3 = t.open_connection(A, now).unwrap();
        let h = t.begin_handshake(B, now).unwrap();
        assert_eq!(
            t.begin_handshake(B, now).unwrap_err(),
            LimitExceeded::Handshakes
        );
        drop(h);
        assert!(t.begin_handshake(B, now).is_ok());
    }

    #[test]
    fn bytes_in_flight() {
        let t = SourceTable::new(cfg());
        let now = Instant::now();
        t.reserve_bytes(A, 60, now).unwrap();
        assert_eq!(
            t.reserve_bytes(A, 41, now),
            Err(LimitExceeded::BytesInFlight)
        );
        t.reserve_bytes(B, 100, now).unwrap();
        t.release_bytes(A, 60, now);
        t.reserve_bytes(A, 100, now).unwrap();
    }

    #[test]
    fn table_is_bounded_and_swept() {
        let t = SourceTable::new(cfg());
        let now = Instant::now();
        for i in 0..1000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.admit_message(ip, now);
        }
        let live = t.sweep(now);
        assert!(live <= SHARDS * 2 + SHARDS, "{live}");
        // after the buckets refill, everything is idle and swept
        assert_eq!(t.sweep(now + Duration::from_secs(10)), 0);
    }
}
