//! Policy snapshots and their reload from the [`PolicyStore`].
//!
//! Each filter reads its compiled policy from a [`Snapshot`]: an `Arc` of an immutable
//! value, replaced as a whole when the policy changes. A request holds the `Arc` it took for
//! its whole inspection, so a change never shows half applied, and the next request sees the
//! new policy — without a restart, on every front end that polls the shared database.
//!
//! [`FilterPolicies`] owns both snapshots and the store handle. [`FilterPolicies::refresh`]
//! reads the two version counters (one small query) and reloads only a policy whose version
//! differs from the one it holds (any difference: a restore can move a version back);
//! [`FilterPolicies::watch`] calls it periodically. A policy that fails to load or compile
//! leaves the previous snapshot in place and is reported (logged by `watch`); it is retried
//! on the next poll.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use confab_core::StoreError;
use confab_core::policy::{PolicyError, PolicyStore, PolicyVersions};

use crate::client_version::{ClientVersionFilter, check_warn_agent};
use crate::handler::{ClientVersionHandler, ImFilterHandler};
use crate::im::ImFilter;

/// The current value of a policy, swapped atomically as a whole.
#[derive(Debug)]
pub struct Snapshot<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Snapshot<T> {
    /// A snapshot holding `value`.
    pub fn new(value: T) -> Snapshot<T> {
        Snapshot {
            current: RwLock::new(Arc::new(value)),
        }
    }

    /// The current value (a reference-count increment under an uncontended read lock).
    pub fn load(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value; requests already holding the old one finish with it.
    pub fn replace(&self, value: T) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

/// Node-local settings the filters need besides the policy (from the node's configuration,
/// not from the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSettings {
    /// The served SIP domains: senders outside them are "external".
    pub served_domains: Vec<String>,
    /// The warn-agent of `Warning` headers: this server's host name (RFC 3261 §20.43).
    pub warn_agent: String,
}

/// Why a policy could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The store failed (or holds a corrupt policy).
    #[error("filter policy store: {0}")]
    Store(#[from] StoreError),
    /// The stored policy or the settings cannot be compiled.
    #[error("filter policy: {0}")]
    Policy(#[from] PolicyError),
}

/// What [`FilterPolicies::refresh`] reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Refreshed {
    /// The client version policy was reloaded.
    pub client_version: bool,
    /// The IM filter policy was reloaded.
    pub im_filter: bool,
}

/// Both filters' snapshots, kept current from a [`PolicyStore`].
pub struct FilterPolicies {
    store: Arc<dyn PolicyStore>,
    settings: FilterSettings,
    client_version: Arc<Snapshot<ClientVersionFilter>>,
    im: Arc<Snapshot<ImFilter>>,
    held: Mutex<PolicyVersions>,
}

impl std::fmt::Debug for FilterPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterPolicies")
            .field("settings", &self.settings)
            .field("held", &self.versions())
            .finish_non_exhaustive()
    }
}

impl FilterPolicies {
    /// Loads both policies. A front end that cannot load its filter policy must not start
    /// (it would otherwise let through what the policy blocks).
    ///
    /// # Errors
    /// [`LoadError`] naming the store failure or the invalid setting.
    pub async fn load(
        store: Arc<dyn PolicyStore>,
        settings: FilterSettings,
    ) -> Result<FilterPolicies, LoadError> {
        check_warn_agent(&settings.warn_agent)?;
        let cv = store.client_version_policy().await?;
        let im = store.im_filter_policy().await?;
        let held = PolicyVersions {
            client_version: cv.version,
            im_filter: im.version,
        };
        Ok(FilterPolicies {
            client_version: Arc::new(Snapshot::new(ClientVersionFilter::compile(
                &cv.value,
                &settings.warn_agent,
            )?)),
            im: Arc::new(Snapshot::new(ImFilter::compile(
                &im.value,
                &settings.served_domains,
            )?)),
            store,
            settings,
            held: Mutex::new(held),
        })
    }

    /// The versions of the policies currently applied.
    pub fn versions(&self) -> PolicyVersions {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client version snapshot.
    pub fn client_version(&self) -> &Arc<Snapshot<ClientVersionFilter>> {
        &self.client_version
    }

    /// The IM filter snapshot.
    pub fn im_filter(&self) -> &Arc<Snapshot<ImFilter>> {
        &self.im
    }

    /// The chain step of the Client Version Filter, reading this snapshot.
    pub fn client_version_handler(&self) -> ClientVersionHandler {
        ClientVersionHandler::new(self.client_version.clone())
    }

    /// The chain step of the IM filter, reading this snapshot.
    pub fn im_filter_handler(&self) -> ImFilterHandler {
        ImFilterHandler::new(self.im.clone())
    }

    /// Polls the versions and reloads what changed.
    ///
    /// # Errors
    /// [`LoadError`]; the snapshots that could not be reloaded stay as they were.
    pub async fn refresh(&self) -> Result<Refreshed, LoadError> {
        let now = self.store.policy_versions().await?;
        let held = self.versions();
        let mut done = Refreshed::default();
        if now.client_version != held.client_version {
            let p = self.store.client_version_policy().await?;
            let f = ClientVersionFilter::compile(&p.value, &self.settings.warn_agent)?;
            self.client_version.replace(f);
            self.held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .client_version = p.version;
            done.client_version = true;
            tracing::info!(
                version = p.version,
                rules = p.value.rules.len(),
                "client version policy reloaded"
            );
        }
        if now.im_filter != held.im_filter {
            let p = self.store.im_filter_policy().await?;
            let f = ImFilter::compile(&p.value, &self.settings.served_domains)?;
            self.im.replace(f);
            self.held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .im_filter = p.version;
            done.im_filter = true;
            tracing::info!(version = p.version, "IM filter policy reloaded");
        }
        Ok(done)
    }

    /// Calls [`FilterPolicies::refresh`] every `period` until the task is dropped; failures
    /// are logged and retried on the next tick. Spawn it on the runtime:
    /// `tokio::spawn(policies.clone().watch(Duration::from_secs(2)))`.
    pub async fn watch(self: Arc<Self>, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "filter policy reload failed; keeping the current policy");
            }
        }
    }
}
