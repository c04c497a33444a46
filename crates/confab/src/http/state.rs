//! What the HTTP handlers share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use confab_core::{TokenStore, UserStore};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::http::digest::DigestAuth;

/// Shared, cheaply clonable handler state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// User accounts.
    pub users: Arc<dyn UserStore>,
    /// Admin API tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// Registrar bindings (`GET /api/admin/v1/registrations`).
    pub registrations: Arc<dyn confab_core::RegistrationStore>,
    /// Filter policy (`/api/admin/v1/im-filter`, `/api/admin/v1/client-filter`).
    pub policy: Arc<dyn confab_core::policy::PolicyStore>,
    /// The offline message queue (`/api/admin/v1/messages`).
    pub messages: Arc<dyn confab_core::message_queue::MessageQueueStore>,
    /// Contact lists and presence policies (`/api/{user,admin}/v1/.../contacts`).
    pub contacts: Arc<dyn confab_core::contacts::ContactStore>,
    /// The presence role of this process, once started (pending watchers, immediate
    /// re-notification after a policy change).
    pub presence: std::sync::OnceLock<confab_presence::server::PresenceServer>,
    /// Renders `/metrics`; `None` when no recorder is installed (unit tests).
    pub metrics: Option<PrometheusHandle>,
    /// Set when SIGTERM arrived: `/readyz` answers 503 so load balancers move away.
    pub draining: AtomicBool,
    /// This node's name.
    pub node_id: String,
    /// The domains served (lower case).
    pub domains: Vec<String>,
    /// Digest authentication of the user API.
    pub digest: DigestAuth,
    /// TURN credentials (user API) and the relay's usage spool (admin API).
    pub turn: crate::http::turn::TurnApi,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("node_id", &self.node_id)
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("node_id", &self.0.node_id)
            .field("domains", &self.0.domains)
            .field("draining", &self.0.draining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Wraps the shared parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Marks the node as draining (`/readyz` turns 503).
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
