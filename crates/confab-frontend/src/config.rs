//! `[frontend]`: how the Front End runtime uses the machine.

use serde::{Deserialize, Serialize};

/// The `[frontend]` table.
///
/// ```toml
/// [frontend]
/// workers = 0                 # 0: one per CPU core
/// max_pending_per_worker = 2000
/// max_queue_delay_ms = 200
/// inbox = 256
/// overload_retry_after_s = 5
/// drain_timeout_s = 32
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontendConfig {
    /// Worker tasks, each owning one transaction layer and proxy; messages are spread by a
    /// hash of Call-ID so every transaction of a call stays on one worker. 0 = the number
    /// of CPU cores.
    pub workers: usize,
    /// Requests a worker may have in the request chain or the registrar at once; beyond,
    /// new requests are answered 503 with `Retry-After` at once (their retransmissions are
    /// then absorbed by the transaction).
    pub max_pending_per_worker: usize,
    /// Overload control by delay: when requests have recently spent longer than this in the
    /// chain and the registrar (a moving average), new out-of-dialog requests are answered
    /// 503 with `Retry-After` at once instead of queueing; in-dialog requests still pass.
    /// Below SIP's 500 ms retransmission timer, so accepted requests are answered before UDP
    /// clients retransmit. 0 turns it off (only `max_pending_per_worker` limits).
    pub max_queue_delay_ms: u32,
    /// Messages queued for a worker; when full, the dispatcher waits (backpressure to the
    /// transport, whose UDP receivers then leave the backlog in the kernel buffer, where
    /// stale new requests are dropped unparsed). Keep it short in time: every message in it
    /// waits behind the others.
    pub inbox: usize,
    /// `Retry-After` seconds in overload and drain 503s.
    pub overload_retry_after_s: u32,
    /// How long a drain (SIGTERM) waits for transactions to finish, in seconds.
    pub drain_timeout_s: u32,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            workers: 0,
            max_pending_per_worker: 2000,
            max_queue_delay_ms: 200,
            inbox: 256,
            overload_retry_after_s: 5,
            drain_timeout_s: 32,
        }
    }
}

/// A `[frontend]` value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frontend.{key}: {message}")]
pub struct FrontendConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub message: &'static str,
}

impl FrontendConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), FrontendConfigError> {
        let bad = |key, message| Err(FrontendConfigError { key, message });
        if self.workers > 256 {
            return bad("workers", "at most 256");
        }
        if self.max_pending_per_worker == 0 {
            return bad("max_pending_per_worker", "must be at least 1");
        }
        if self.inbox == 0 {
            return bad("inbox", "must be at least 1");
        }
        Ok(())
    }

    /// The number of workers to run.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}
