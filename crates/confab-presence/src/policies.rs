//! Stored presence policies and contact lists applied to the running subscriptions (issue 8
//! item 5): the user's rules and contacts come from the [`ContactStore`] port, become an
//! [`AccessPolicy`] ([`access_policy`]), and every change re-evaluates exactly the
//! subscriptions it can affect ([`reevaluate`], pure and table-tested).
//!
//! Changes arrive two ways: [`crate::server::PresenceServer::policy_changed`] (the HTTP API
//! of this process, at once) and the store's change feed, polled every
//! [`POLL_INTERVAL`] (the CLI, another process or another front end). Both run the same
//! idempotent [`apply_change`], so seeing a change twice sends nothing twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_core::contacts::{ContactStore, PresenceSettings, WatcherPattern};
use confab_core::{Address, Timestamp};

use crate::access::{self, AccessLevel, AccessPolicy, Authorization};
use crate::server::{Inner, PresenceServer, lock, now};
use crate::subscription::{EventPackage, State};

/// How often the change feed is read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Most users whose settings are cached (the cache is cleared when full).
const CACHE_ENTRIES: usize = 100_000;

/// The access policy a user's stored settings mean: rules for addresses and domains as
/// overrides, the contact list as personal contacts, strangers pending when asked.
pub fn access_policy(settings: &PresenceSettings) -> AccessPolicy {
    let mut p = AccessPolicy {
        confirm_strangers: settings.policy.confirm_strangers,
        contacts: settings
            .contacts
            .iter()
            .map(|c| c.address.clone())
            .collect(),
        ..AccessPolicy::default()
    };
    for r in &settings.policy.rules {
        match &r.watcher {
            WatcherPattern::Address(a) => p.overrides.push((a.clone(), r.level)),
            WatcherPattern::Domain(d) => p.domain_overrides.push((d.clone(), r.level)),
        }
    }
    p
}

/// A user's settings as the presence role uses them.
#[derive(Debug, Clone, Default)]
pub struct UserSettings {
    /// What the store holds.
    pub stored: PresenceSettings,
    /// [`access_policy`] of it.
    pub policy: AccessPolicy,
}

/// Settings per user, read through from the store.
#[derive(Debug, Default)]
pub(crate) struct PolicyCache {
    map: Mutex<HashMap<String, Arc<UserSettings>>>,
}

impl PolicyCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<UserSettings>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settings of `owner` (an address string). A store failure gives the default
    /// policy (logged, not cached): the domain defaults still apply.
    pub(crate) async fn get(&self, store: &dyn ContactStore, owner: &str) -> Arc<UserSettings> {
        if let Some(s) = self.map().get(owner) {
            return s.clone();
        }
        let Ok(address) = Address::parse(owner) else {
            return Arc::new(UserSettings::default());
        };
        match store.presence_settings(&address).await {
            Ok(stored) => {
                let s = Arc::new(UserSettings {
                    policy: access_policy(&stored),
                    stored,
                });
                let mut m = self.map();
                if m.len() >= CACHE_ENTRIES {
                    m.clear();
                }
                m.insert(owner.to_owned(), s.clone());
                s
            }
            Err(e) => {
                if !e.is_not_found() {
                    tracing::warn!(error = %e, owner, "presence settings unreadable; defaults apply");
                }
                Arc::new(UserSettings::default())
            }
        }
    }

    fn invalidate(&self, owner: &str) {
        self.map().remove(owner);
    }
}

/// What a policy change does to one subscription to the user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing the watcher can see changes: no NOTIFY.
    Unchanged,
    /// A pending watcher the policy now places: active at this level, NOTIFY with state.
    Approve(AccessLevel),
    /// An active watcher's level changed: NOTIFY with the newly filtered document (a
    /// newly blocked watcher sees offline).
    Relevel(AccessLevel),
}

/// Re-evaluates one subscription (`state`, `level` it was notified at) under `policy`.
/// A pending watcher stays pending until a rule or the contact list places them; an active
/// one never goes back to pending (RFC 3857: authorization is not withdrawn silently; a
/// blocked watcher sees offline instead).
pub fn reevaluate(
    state: State,
    level: AccessLevel,
    watcher: Option<&Address>,
    presentity: &Address,
    policy: &AccessPolicy,
) -> Decision {
    match state {
        State::Pending => match access::authorize(watcher, presentity, policy) {
            Authorization::Accept(l) => Decision::Approve(l),
            Authorization::Pending => Decision::Unchanged,
        },
        State::Active => {
            let l = access::access_level(watcher, presentity, policy);
            if l == level {
                Decision::Unchanged
            } else {
                Decision::Relevel(l)
            }
        }
        State::Terminated(_) => Decision::Unchanged,
    }
}

/// The packages whose NOTIFYs are cut by the watcher's level (and so follow the policy).
pub fn levelled(package: EventPackage) -> bool {
    matches!(package, EventPackage::Presence | EventPackage::Dialog)
}

/// Applies `policy` to the presence subscriptions of `owner` in the registry; returns how
/// many were changed.
fn apply_to_subscriptions(
    inner: &Inner,
    owner: &Address,
    policy: &AccessPolicy,
    t: Timestamp,
) -> usize {
    let mut st = lock(&inner.state);
    let ids: Vec<String> = st
        .by_resource
        .get(owner.as_str())
        .map(|r| {
            let mut v = r.ids(EventPackage::Presence).to_vec();
            v.extend_from_slice(r.ids(EventPackage::Dialog));
            v
        })
        .unwrap_or_default();
    let mut changed = 0;
    for id in ids {
        let Some(s) = st.subs.get_mut(&id) else {
            continue;
        };
        // Presence and calls (the `dialog` package) are cut by the same level.
        if !levelled(s.sub.package) || s.list.is_some() {
            continue;
        }
        let watcher = if s.authenticated {
            Address::parse(&s.sub.watcher).ok()
        } else {
            None
        };
        match reevaluate(s.sub.state(), s.level, watcher.as_ref(), owner, policy) {
            Decision::Unchanged => continue,
            Decision::Approve(l) => {
                s.level = l;
                s.sub.handle_approve(t);
            }
            Decision::Relevel(l) => {
                s.level = l;
                s.sub.handle_change(t);
            }
        }
        // A partial watcher holds a document cut at its old level: the next NOTIFY is full
        // state (RFC 5263 patches apply only to the document the watcher has).
        s.last_sent = None;
        changed += 1;
        st.arm(&id);
    }
    if changed > 0 {
        // Watcher information shows the approved watchers as active.
        st.changed(owner.as_str(), EventPackage::PresenceWinfo, t);
    }
    changed
}

/// `owner`'s contacts or policy changed: reload them and re-notify the watchers whose view
/// changed (their own subscriptions, the resource lists that show `owner`, and `owner`'s
/// own list subscriptions when the list changed).
pub(crate) async fn apply_change(inner: &Arc<Inner>, owner: &Address) {
    inner.policies.invalidate(owner.as_str());
    let settings = inner
        .policies
        .get(&*inner.ports.contacts, owner.as_str())
        .await;
    let t = now();
    let n = apply_to_subscriptions(inner, owner, &settings.policy, t);
    crate::rls::owner_changed(inner, owner, &settings, t).await;
    crate::rls::member_policy_changed(inner, owner, t).await;
    if n > 0 {
        tracing::debug!(%owner, subscriptions = n, "presence policy change re-notifies");
    }
    inner.wake.notify_one();
}

/// At load: every restored subscription gets the level its user's stored policy gives now
/// (decisions taken while the server was down included), and every restored list
/// subscription the contact list as stored now.
pub(crate) async fn relevel_all(inner: &Arc<Inner>) {
    let list_owners: Vec<String> = {
        let st = lock(&inner.state);
        let mut v: Vec<String> = st
            .subs
            .values()
            .filter_map(|s| s.list.as_ref().map(|l| l.owner.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for o in list_owners {
        if let Ok(owner) = Address::parse(&o) {
            let settings = inner.policies.get(&*inner.ports.contacts, &o).await;
            crate::rls::owner_changed(inner, &owner, &settings, now()).await;
        }
    }
    let owners: Vec<String> = {
        let st = lock(&inner.state);
        let mut v: Vec<String> = st
            .subs
            .values()
            .filter(|s| levelled(s.sub.package) && s.list.is_none())
            .map(|s| s.sub.resource.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let t = now();
    for o in owners {
        if let Ok(owner) = Address::parse(&o) {
            let settings = inner.policies.get(&*inner.ports.contacts, &o).await;
            apply_to_subscriptions(inner, &owner, &settings.policy, t);
        }
    }
}

/// Follows the store's change feed (changes made by other processes and front ends).
pub(crate) async fn watch(inner: Arc<Inner>) {
    let mut head = loop {
        match inner.ports.contacts.presence_change_head().await {
            Ok(h) => break h,
            Err(e) => {
                tracing::warn!(error = %e, "presence change feed unreadable; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    };
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match inner.ports.contacts.presence_changes(head, 1_000).await {
            Ok(changes) => {
                for c in changes {
                    head = head.max(c.seq);
                    apply_change(&inner, &c.owner).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "presence change feed unreadable"),
        }
    }
}

/// A watcher waiting for the user's decision (RFC 3857 pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWatcher {
    /// The watcher (an address, or the From URI of an unauthenticated watcher).
    pub watcher: String,
    /// When their oldest pending subscription started.
    pub since: Timestamp,
    /// How many subscriptions they hold pending.
    pub subscriptions: usize,
}

impl PresenceServer {
    /// `owner`'s contacts or policy changed (through this process's API): re-notify the
    /// affected watchers now rather than at the next poll of the change feed.
    pub async fn policy_changed(&self, owner: &Address) {
        apply_change(&self.inner, owner).await;
    }

    /// The watchers waiting for `owner`'s decision, oldest first.
    pub fn pending_watchers(&self, owner: &Address) -> Vec<PendingWatcher> {
        let st = lock(&self.inner.state);
        let mut out: Vec<PendingWatcher> = Vec::new();
        for s in st
            .by_resource
            .get(owner.as_str())
            .into_iter()
            .flatten()
            .filter_map(|id| st.subs.get(id))
            .filter(|s| s.sub.package == EventPackage::Presence && s.list.is_none())
            .filter(|s| s.sub.state() == State::Pending)
        {
            match out.iter_mut().find(|p| p.watcher == s.sub.watcher) {
                Some(p) => {
                    p.subscriptions += 1;
                    p.since = p.since.min(s.sub.created_at);
                }
                None => out.push(PendingWatcher {
                    watcher: s.sub.watcher.clone(),
                    since: s.sub.created_at,
                    subscriptions: 1,
                }),
            }
        }
        out.sort_by(|a, b| a.since.cmp(&b.since).then(a.watcher.cmp(&b.watcher)));
        out
    }
}
