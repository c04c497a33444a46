//! Logging: `tracing` with structured fields to standard error, as text or one JSON object
//! per line; the level filter can be changed while running (SIGHUP re-reads `log.level`).
//!
//! What is never logged, anywhere in the binary: passwords, HA1 values, nonces, digest
//! responses, bearer tokens, `Authorization` headers and message bodies. HTTP requests are
//! logged by method, matched route and status only. A test runs the binary at `trace` level
//! through a user add and a digest login and greps the output for each secret.

use std::io::IsTerminal as _;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogFormat;

/// The environment variable that overrides `log.level`.
pub const LOG_ENV: &str = "CONFAB_LOG";

/// Changes the level filter of the installed subscriber.
#[derive(Debug, Clone)]
pub struct LogHandle {
    reload: reload::Handle<EnvFilter, Registry>,
}

impl LogHandle {
    /// Applies `level` (from the configuration file) unless `CONFAB_LOG` is set, which
    /// always wins. Returns the filter now in force.
    pub fn set_level(&self, level: &str) -> Result<String, String> {
        let directives = effective_level(level);
        let filter = EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| format!("`{directives}` is not a level filter: {e}"))?;
        self.reload
            .reload(filter)
            .map_err(|e| format!("cannot change the log level: {e}"))?;
        Ok(directives)
    }
}

/// `CONFAB_LOG` if set and non-empty, else `configured`.
pub fn effective_level(configured: &str) -> String {
    match std::env::var(LOG_ENV) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => configured.to_string(),
    }
}

/// Installs the global subscriber. `level` is the configured filter (overridden by
/// `CONFAB_LOG`); an invalid filter falls back to `info` and is reported by the caller's
/// configuration check.
pub fn init(level: &str, format: LogFormat) -> LogHandle {
    let directives = effective_level(level);
    let filter = EnvFilter::builder()
        .parse(&directives)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let (text, json) = match format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(true),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    // A second init (tests calling `run` twice in one process) keeps the first subscriber.
    let _ = Registry::default()
        .with(filter)
        .with(text)
        .with(json)
        .try_init();
    LogHandle { reload: handle }
}
