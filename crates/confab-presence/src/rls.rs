//! The resource list server (RFC 4662): one subscription for a user's whole contact list.
//!
//! A user subscribes to `sip:USER-contacts@DOMAIN` ([`list_uri`]) with `Event: presence`
//! and `Supported: eventlist`; every NOTIFY carries `Require: eventlist` and a
//! `multipart/related; type="application/rlmi+xml"` body: the RLMI document (RFC 4662 §5)
//! naming each contact, plus one PIDF part per contact whose state the subscriber may see,
//! each cut to the subscriber's access level on that contact by
//! [`crate::access::list_notify_body`] (so no list NOTIFY skips the filter). The first
//! NOTIFY, the one after a refresh or a restart, and the one after the list itself changed
//! carry full state (`fullState="true"`, every contact); the others carry only the
//! contacts whose visible state changed (`fullState="false"`, RFC 4662 §5.2: "partial
//! state"). A SUBSCRIBE to a list URI without `Supported: eventlist` gets
//! `421 Extension Required` with `Require: eventlist` (RFC 4662 §4.1: the subscriber must
//! signal support; otherwise the RLS rejects with 421). These RFC 4662 rules are
//! paraphrased: the stored copies of the RFC reachable when this was written returned only
//! its first page, so §4 could not be quoted; the RLMI and multipart examples of §5 are the
//! vectors in `confab-xml/tests/vectors` (provenance in their README) and
//! `tests/rls.rs` checks produced bodies against them.
//!
//! Back-end subscriptions are internal: a contact who is a user of this server is watched
//! through the server's own state (no SIP), with the same aggregation and the same
//! contact's policy as a direct subscription. A contact of another domain is listed with an
//! instance in state `pending` and no body: subscribing across domains (federation) is
//! not built, and the list says so rather than showing such contacts offline (a contact
//! with no account here is shown the same way). A contact whose user asks to confirm
//! strangers and has not placed the subscriber is `pending` too, as a direct subscription
//! would be.
//!
//! The pure parts — list URIs, the `eventlist` negotiation, the member set and which
//! members a NOTIFY carries ([`ListState::plan`]) — are sans-IO and tested without a
//! server; the glue (subscribe, notify, changes) runs inside the presence server.
//!
//! Not built: per-group list URIs, nested lists, lists of other packages than presence,
//! XCAP-managed lists (RFC 4826), back-end SIP subscriptions to other domains.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use confab_core::chain::{Reply, RequestContext};
use confab_core::contacts::Contact;
use confab_core::{Address, Timestamp};
use confab_sip::{HeaderName, Message};
use confab_xml::rlmi::InstanceState;
use serde::{Deserialize, Serialize};

use crate::access::{self, AccessLevel, Authorization, ListMember};
use crate::policies::UserSettings;
use crate::server::{
    DialogState, Inner, Job, Registry, Sub, fnv, lock, on_notify_outcome, presence_state, reply,
    subscribe_error, unavailable,
};
use crate::subscription::{EventPackage, SubscribeRequest, Subscribed, Subscription};

/// The user part suffix of a list URI: `sip:alice-contacts@example.com` is Alice's list.
pub const LIST_SUFFIX: &str = "-contacts";

/// The option tag (RFC 4662 §4.1).
pub const EVENTLIST: &str = "eventlist";

/// The list URI of `owner` (`alice-contacts@example.com`, without scheme).
pub fn list_uri(owner: &Address) -> String {
    format!("{}{LIST_SUFFIX}@{}", owner.user(), owner.domain())
}

/// The owner a list URI names, if it has the list form (whether that user exists is the
/// caller's question; a real user named `bob-contacts` takes precedence).
pub fn list_owner(resource: &Address) -> Option<Address> {
    let user = resource.user().strip_suffix(LIST_SUFFIX)?;
    Address::new(user, resource.domain()).ok()
}

/// Whether `Supported` header values (raw) include `eventlist`.
pub fn supports_eventlist<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|v| {
        std::str::from_utf8(v).is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(EVENTLIST))
        })
    })
}

/// One resource of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The contact's address (`user@domain`).
    pub uri: String,
    /// The display name the owner gave.
    pub name: Option<String>,
    /// The RLMI instance id (stable per contact).
    pub instance: String,
    /// Hash of the last body part sent for it (filtered), to send only changes.
    #[serde(skip)]
    pub sent: Option<u64>,
}

impl Member {
    fn of(c: &Contact) -> Member {
        Member {
            uri: c.address.as_str().to_owned(),
            name: c.display_name.as_ref().map(|n| n.as_str().to_owned()),
            instance: format!("{:08x}", fnv(c.address.as_str().as_bytes())),
            sent: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The state of one list subscription beyond the RFC 6665 machine (stored with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListState {
    /// The list's owner (the subscriber).
    pub owner: String,
    /// The list's resources, in list order.
    pub members: Vec<Member>,
    /// The next NOTIFY carries full state (set at creation, after a restart and when the
    /// list changed).
    #[serde(skip, default = "yes")]
    pub full: bool,
    /// Members whose state changed since the last NOTIFY.
    #[serde(skip)]
    pub dirty: BTreeSet<String>,
}

/// Which members one NOTIFY carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `fullState`.
    pub full_state: bool,
    /// Indexes into [`ListState::members`].
    pub members: Vec<usize>,
}

impl ListState {
    /// A new list subscription's state.
    pub fn new(owner: &Address, contacts: &[Contact]) -> ListState {
        ListState {
            owner: owner.as_str().to_owned(),
            members: contacts.iter().map(Member::of).collect(),
            full: true,
            dirty: BTreeSet::new(),
        }
    }

    /// The contact list changed: adopt it. Returns whether the member set (or a name)
    /// changed, in which case the next NOTIFY carries full state.
    pub fn set_contacts(&mut self, contacts: &[Contact]) -> bool {
        let next: Vec<Member> = contacts.iter().map(Member::of).collect();
        let same = next.len() == self.members.len()
            && next
                .iter()
                .zip(&self.members)
                .all(|(a, b)| a.uri == b.uri && a.name == b.name);
        if same {
            return false;
        }
        let old: HashMap<String, Option<u64>> =
            self.members.drain(..).map(|m| (m.uri, m.sent)).collect();
        self.members = next
            .into_iter()
            .map(|mut m| {
                m.sent = old.get(&m.uri).copied().flatten();
                m
            })
            .collect();
        self.full = true;
        true
    }

    /// Which members the next NOTIFY carries, given `visible(i)`: the hash of what member
    /// `i` would show now. Full state when owed (or when nothing is dirty: a refresh or a
    /// restart owes the whole state); otherwise the dirty members whose hash differs from
    /// the last one sent. Records the hashes of the members it includes and clears the
    /// dirty set. An empty partial plan means: nothing visible changed, send nothing.
    pub fn plan(&mut self, mut visible: impl FnMut(usize) -> u64) -> Plan {
        let full = self.full || self.dirty.is_empty();
        let mut members = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if !full && !self.dirty.contains(&m.uri) {
                continue;
            }
            let h = visible(i);
            if full || m.sent != Some(h) {
                members.push(i);
            }
            m.sent = Some(h);
        }
        self.full = false;
        self.dirty.clear();
        Plan {
            full_state: full,
            members,
        }
    }
}

/// Index of the list subscriptions by member (kept by the registry).
#[derive(Debug, Default)]
pub(crate) struct ListIndex {
    by_member: HashMap<String, Vec<String>>,
}

impl ListIndex {
    pub(crate) fn insert(&mut self, id: &str, s: &Sub) {
        if let Some(l) = &s.list {
            for m in &l.members {
                let v = self.by_member.entry(m.uri.clone()).or_default();
                if !v.iter().any(|x| x == id) {
                    v.push(id.to_owned());
                }
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &str, s: &Sub) {
        if let Some(l) = &s.list {
            for m in &l.members {
                if let Some(v) = self.by_member.get_mut(&m.uri) {
                    v.retain(|x| x != id);
                    if v.is_empty() {
                        self.by_member.remove(&m.uri);
                    }
                }
            }
        }
    }

    fn ids(&self, member: &str) -> Vec<String> {
        self.by_member.get(member).cloned().unwrap_or_default()
    }
}

impl Registry {
    /// `member`'s presence changed: the list subscriptions showing it owe a NOTIFY.
    pub(crate) fn member_changed(&mut self, member: &str, t: Timestamp) {
        for id in self.lists.ids(member) {
            if let Some(s) = self.subs.get_mut(&id)
                && let Some(l) = &mut s.list
            {
                l.dirty.insert(member.to_owned());
                s.sub.handle_change(t);
                self.arm(&id);
            }
        }
    }
}

/// Whether a list URI names an existing user's list: the owner.
pub(crate) async fn existing_owner(inner: &Inner, resource: &Address) -> Option<Address> {
    let owner = list_owner(resource)?;
    match inner.ports.users.get_user(&owner).await {
        Ok(Some(_)) => Some(owner),
        _ => None,
    }
}

/// A new SUBSCRIBE to `owner`'s list (the caller found no user at the list URI).
pub(crate) async fn subscribe_list(
    inner: &Inner,
    ctx: &RequestContext,
    owner: Address,
    package: EventPackage,
    expires: Option<u32>,
    dialog: DialogState,
) -> Reply {
    if package != EventPackage::Presence {
        return reply(
            489,
            "Bad Event: a contact list serves the presence package only",
        )
        .header("Allow-Events", "presence");
    }
    if !supports_eventlist(ctx.request.values(HeaderName::Supported)) {
        return reply(421, "Extension Required").header("Require", EVENTLIST);
    }
    let mine = ctx.identity.as_ref().is_some_and(|i| i.address == owner);
    if !mine {
        return reply(403, "Only the user may subscribe to their contact list");
    }
    let contacts = match inner.ports.contacts.list_contacts(&owner).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "contact list unreadable");
            return unavailable(inner);
        }
    };
    let t = Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX));
    let resource = list_uri(&owner);
    let existing = lock(&inner.state)
        .by_watcher
        .get(owner.as_str())
        .copied()
        .unwrap_or(0);
    let (subscription, outcome) = match Subscription::handle_subscribe(
        &SubscribeRequest {
            event: package.as_str(),
            expires,
        },
        owner.as_str(),
        &resource,
        true,
        existing,
        t,
        &inner.config.subscription,
    ) {
        Ok(x) => x,
        Err(e) => return subscribe_error(inner, &e),
    };
    let local_tag = dialog.local_tag.clone();
    let contact = dialog.contact.clone();
    let sub = Sub {
        sub: subscription,
        dialog,
        transport: ctx.source.hop.transport,
        remote: ctx.source.hop.remote,
        authenticated: true,
        level: AccessLevel::Personal,
        // A list NOTIFY is RLMI + full or partial PIDF parts of its own (RFC 4662), never a
        // pidf-diff patch.
        partial: false,
        last_sent: None,
        flow: ctx.source.hop.flow,
        in_flight: false,
        awaiting_flow: false,
        ephemeral: matches!(outcome, Subscribed::Ended),
        list: Some(ListState::new(&owner, &contacts)),
    };
    let expires = match outcome {
        Subscribed::Kept { expires } => {
            let stored = match sub.stored() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "list subscription not serializable");
                    return reply(500, "Server Internal Error");
                }
            };
            if let Err(e) = inner.ports.subscriptions.put_subscription(stored).await {
                tracing::warn!(error = %e, "list subscription not stored");
                return unavailable(inner);
            }
            expires
        }
        Subscribed::Ended => 0,
    };
    lock(&inner.state).insert(sub);
    inner.wake.notify_one();
    Reply::new(200)
        .with_to_tag(local_tag)
        .header("Expires", expires.to_string())
        .header("Contact", contact)
        .header("Require", EVENTLIST)
}

/// Whether these jobs (one group) are list NOTIFYs.
pub(crate) fn is_list_group(inner: &Inner, jobs: &[Job]) -> bool {
    let st = lock(&inner.state);
    jobs.first()
        .and_then(|j| st.subs.get(&j.id))
        .is_some_and(|s| s.list.is_some())
}

/// What one member shows the subscriber now.
struct View {
    state: InstanceState,
    reason: Option<&'static str>,
    document: Option<confab_xml::pidf::Presence>,
    level: AccessLevel,
}

async fn member_view(inner: &Inner, subscriber: &Address, uri: &str) -> View {
    let pending = View {
        state: InstanceState::Pending,
        reason: None,
        document: None,
        level: AccessLevel::Blocked,
    };
    let Ok(member) = Address::parse(uri) else {
        return pending;
    };
    match inner.ports.users.get_user(&member).await {
        Ok(Some(_)) => {}
        // Not a user here: another domain (no back-end subscription, federation is not
        // built) or no such account.
        Ok(None) | Err(_) => return pending,
    }
    let settings: Arc<UserSettings> = inner.policies.get(&*inner.ports.contacts, uri).await;
    match access::authorize(Some(subscriber), &member, &settings.policy) {
        Authorization::Pending => pending,
        Authorization::Accept(level) => View {
            state: InstanceState::Active,
            reason: None,
            document: Some(presence_state(inner, uri).await),
            level,
        },
    }
}

fn visible_hash(v: &View) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.state.as_str().hash(&mut h);
    v.reason.hash(&mut h);
    if let Some(d) = &v.document {
        access::filter(d, v.level).to_bytes().hash(&mut h);
    }
    h.finish()
}

/// Builds and sends the NOTIFYs of list subscriptions.
pub(crate) async fn notify_list_group(inner: Arc<Inner>, jobs: Vec<Job>) {
    let Some(sender) = inner.sender.get().cloned() else {
        return;
    };
    for job in jobs {
        let snapshot = {
            let st = lock(&inner.state);
            st.subs.get(&job.id).and_then(|s| s.list.clone())
        };
        let Some(mut list) = snapshot else {
            continue;
        };
        let body = if job.notify.with_state {
            let Ok(subscriber) = Address::parse(&list.owner) else {
                continue;
            };
            if job.notify.state_change {
                // A new, refreshed, restored or ending subscription gets the whole state.
                list.full = true;
            }
            let mut views = Vec::with_capacity(list.members.len());
            let wanted: Vec<bool> = list
                .members
                .iter()
                .map(|m| list.full || list.dirty.is_empty() || list.dirty.contains(&m.uri))
                .collect();
            for (m, w) in list.members.iter().zip(&wanted) {
                views.push(if *w {
                    Some(member_view(&inner, &subscriber, &m.uri).await)
                } else {
                    None
                });
            }
            let (orig_dirty, orig_full) = (list.dirty.clone(), list.full);
            let plan = list.plan(|i| views[i].as_ref().map_or(0, visible_hash));
            // Keep what was sent (hashes); changes that arrived meanwhile stay owed.
            {
                let mut st = lock(&inner.state);
                if let Some(s) = st.subs.get_mut(&job.id)
                    && let Some(l) = &mut s.list
                {
                    l.dirty = l.dirty.difference(&orig_dirty).cloned().collect();
                    l.full = l.full && !orig_full;
                    for m in &mut l.members {
                        if let Some(sent) = list.members.iter().find(|x| x.uri == m.uri) {
                            m.sent = sent.sent;
                        }
                    }
                }
                if !plan.full_state && plan.members.is_empty() {
                    // Nothing visible changed: no NOTIFY (the version is not used up).
                    if let Some(s) = st.subs.get_mut(&job.id) {
                        s.in_flight = false;
                        s.sub.next_version = s.sub.next_version.wrapping_sub(1);
                        s.dialog.cseq = s.dialog.cseq.wrapping_sub(1);
                    }
                    st.arm(&job.id);
                    continue;
                }
            }
            let members: Vec<ListMember<'_>> = plan
                .members
                .iter()
                .filter_map(|&i| {
                    let m = &list.members[i];
                    let v = views[i].as_ref()?;
                    Some(ListMember {
                        uri: &m.uri,
                        name: m.name.as_deref(),
                        state: v.state,
                        instance_id: &m.instance,
                        reason: v.reason,
                        document: v.document.as_ref(),
                        level: v.level,
                    })
                })
                .collect();
            let uri_owned: Vec<String> = members.iter().map(|m| format!("sip:{}", m.uri)).collect();
            let members: Vec<ListMember<'_>> = members
                .into_iter()
                .zip(&uri_owned)
                .map(|(mut m, u)| {
                    m.uri = u;
                    m
                })
                .collect();
            let list_uri = format!("sip:{}", job.resource);
            match access::list_notify_body(
                &list_uri,
                job.notify.version,
                plan.full_state,
                &members,
                rand::random(),
            ) {
                Ok(r) => Some((r.content_type(), r.to_bytes())),
                Err(e) => {
                    tracing::warn!(error = %e, "list NOTIFY body not built");
                    None
                }
            }
        } else {
            None
        };
        let request = match build_list_notify(&job, body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, id = %job.id, "cannot build list NOTIFY; subscription dropped");
                crate::server::finish(&inner, &job.id, true).await;
                continue;
            }
        };
        let sender = sender.clone();
        let inner = inner.clone();
        tokio::spawn(async move {
            let outcome = sender.send_request(request, job.hop.clone()).await;
            on_notify_outcome(&inner, &job, &outcome).await;
        });
    }
}

fn build_list_notify(
    job: &Job,
    body: Option<(String, Vec<u8>)>,
) -> Result<Message, confab_sip::BuildError> {
    let mut b = crate::server::notify_builder(job).header(HeaderName::Require, EVENTLIST);
    if let Some((ct, bytes)) = body {
        b = b.body(&ct, bytes::Bytes::from(bytes));
    }
    b.build()
}

/// `owner`'s contact list may have changed: their list subscriptions adopt it (full state
/// NOTIFY when it did change).
pub(crate) async fn owner_changed(
    inner: &Inner,
    owner: &Address,
    settings: &UserSettings,
    t: Timestamp,
) {
    let resource = list_uri(owner);
    let mut st = lock(&inner.state);
    let ids: Vec<String> = st
        .by_resource
        .get(&resource)
        .map(|r| r.ids(EventPackage::Presence).to_vec())
        .unwrap_or_default();
    for id in ids {
        let Some(s) = st.subs.get_mut(&id) else {
            continue;
        };
        let Some(mut l) = s.list.take() else {
            continue;
        };
        let before = Sub {
            list: Some(l.clone()),
            ..(**s).clone()
        };
        let changed = l.set_contacts(&settings.stored.contacts);
        s.list = Some(l);
        if changed {
            s.sub.handle_change(t);
            let after = (**s).clone();
            st.lists.remove(&id, &before);
            st.lists.insert(&id, &after);
            st.arm(&id);
        }
    }
}

/// `owner`'s policy may have changed: the lists that show `owner` re-evaluate that member
/// (only a change of what the subscriber sees is sent).
pub(crate) async fn member_policy_changed(inner: &Inner, owner: &Address, t: Timestamp) {
    lock(&inner.state).member_changed(owner.as_str(), t);
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::DisplayName;

    fn contact(a: &str, name: Option<&str>) -> Contact {
        Contact {
            address: Address::parse(a).unwrap(),
            display_name: name.map(|n| DisplayName::parse(n).unwrap()),
            groups: Vec::new(),
        }
    }

    #[test]
    fn list_uris() {
        let alice = Address::parse("alice@example.com").unwrap();
        assert_eq!(list_uri(&alice), "alice-contacts@example.com");
        let l = Address::parse("alice-contacts@example.com").unwrap();
        assert_eq!(list_owner(&l), Some(alice));
        assert_eq!(
            list_owner(&Address::parse("alice@example.com").unwrap()),
            None
        );
        assert_eq!(
            list_owner(&Address::parse("-contacts@example.com").unwrap()),
            None
        );
    }

    #[test]
    fn eventlist_negotiation() {
        let ok: [&[u8]; 2] = [b"100rel", b"timer, EventList"];
        assert!(supports_eventlist(ok));
        let no: [&[u8]; 1] = [b"eventlists, 100rel"];
        assert!(!supports_eventlist(no));
        assert!(!supports_eventlist(std::iter::empty()));
        let bad: [&[u8]; 1] = [b"\xff"];
        assert!(!supports_eventlist(bad));
    }

    #[test]
    fn full_state_first_then_only_changed_members() {
        let owner = Address::parse("alice@example.com").unwrap();
        let mut l = ListState::new(
            &owner,
            &[
                contact("bob@example.com", Some("Bob")),
                contact("carol@example.com", None),
            ],
        );
        let mut shown = [1u64, 2];
        // First NOTIFY: everything.
        let p = l.plan(|i| shown[i]);
        assert_eq!(
            p,
            Plan {
                full_state: true,
                members: vec![0, 1]
            }
        );
        // Bob changes visibly: only Bob.
        shown[0] = 10;
        l.dirty.insert("bob@example.com".into());
        assert_eq!(
            l.plan(|i| shown[i]),
            Plan {
                full_state: false,
                members: vec![0]
            }
        );
        // Carol changes invisibly (same hash): nothing to send.
        l.dirty.insert("carol@example.com".into());
        assert_eq!(
            l.plan(|i| shown[i]),
            Plan {
                full_state: false,
                members: vec![]
            }
        );
        // A refresh (nothing dirty): full state again.
        assert_eq!(
            l.plan(|i| shown[i]),
            Plan {
                full_state: true,
                members: vec![0, 1]
            }
        );
        // The list changes: full state with the new member set; unchanged list: no change.
        assert!(!l.set_contacts(&[
            contact("bob@example.com", Some("Bob")),
            contact("carol@example.com", None)
        ]));
        assert!(l.set_contacts(&[contact("carol@example.com", None)]));
        assert!(l.full);
        l.dirty.insert("carol@example.com".into());
        assert_eq!(
            l.plan(|_| 2),
            Plan {
                full_state: true,
                members: vec![0]
            }
        );
        // The kept member remembers its hash.
        l.dirty.insert("carol@example.com".into());
        assert_eq!(
            l.plan(|_| 2),
            Plan {
                full_state: false,
                members: vec![]
            }
        );
    }

    #[test]
    fn restored_state_owes_full_state() {
        let owner = Address::parse("alice@example.com").unwrap();
        let mut l = ListState::new(&owner, &[contact("bob@example.com", None)]);
        let _ = l.plan(|_| 1);
        let json = serde_json::to_string(&l).unwrap();
        let back: ListState = serde_json::from_str(&json).unwrap();
        assert!(back.full);
        assert_eq!(back.members[0].sent, None);
        assert_eq!(back.members[0].instance, l.members[0].instance);
    }
}
