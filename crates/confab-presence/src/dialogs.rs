//! The INVITE dialogs of users (RFC 4235 dialog event package, busy lamps; "on the phone"
//! for aggregation), sans-IO: the proxy's [`confab_core::DialogObserver`] reports feed a
//! [`DialogTable`], which keeps one RFC 4235 state machine per dialog and per party, and
//! builds the full-state `dialog-info` document of a user.
//!
//! One call between two users is two entries: the caller's (`direction="initiator"`,
//! local tag = From tag) and the callee's (`recipient`, local tag = To tag). A forked INVITE
//! whose branches answer with different To tags gives one entry per early dialog
//! (RFC 4235 §3.7.1: a provisional response with a new tag creates a new state machine).
//!
//! ```text
//!             INVITE forwarded
//!                    |
//!                    v
//!   +--------+  1xx, no tag   +------------+
//!   | Trying |--------------->| Proceeding |
//!   +--------+                +------------+
//!     |  |  1xx with tag            |  1xx with tag
//!     |  +----------------------+   |
//!     |                         v   v
//!     |  2xx                  +--------+  1xx with another tag: a new entry (Early)
//!     +---------------------->| Early  |
//!     |                       +--------+
//!     |                           | 2xx
//!     |                           v
//!     |  2xx                  +-----------+
//!     +---------------------->| Confirmed |
//!                             +-----------+
//!   error response (rejected,     |  BYE (local-bye / remote-bye), or older than
//!   cancelled 487, timeout 408,   |  `max_duration_s` (timeout)
//!   or `setup_timeout_s` passed)  |
//!   from Trying/Proceeding/Early  v
//!   ------------------------> Terminated  (kept `terminated_linger_s`, then forgotten)
//! ```
//!
//! Out-of-order input is absorbed: a state never moves backwards (a late 180 after the 200
//! changes nothing), and a report for an unknown call is ignored. The state lives in
//! memory only: calls do not survive a restart of the proxy either (its transactions and
//! forks are in memory too), so after a restart every user starts with no dialog.
//!
//! What it does not do: know whether an address is a local user (the caller of
//! [`DialogTable`] only asks about local users; entries of foreign parties cost memory
//! until their dialog ends, bounded by `max_dialogs`); follow dialogs whose BYE does not
//! pass this proxy (with `proxy.record_route = false`, or a BYE sent elsewhere): those end
//! by `max_duration_s`.

use std::collections::{HashMap, HashSet};

use confab_core::{Address, Timestamp};
use confab_sip::{Host, Message, Method, Uri};
use confab_xml::dialog_info::{
    self, DialogInfo, DialogState, Direction, Identity, Participant, StateEvent, Target,
};
use serde::{Deserialize, Serialize};

/// `[presence.dialog]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialogConfig {
    /// A dialog older than this is ended (`timeout`) even if no BYE was seen, so a lamp
    /// never stays lit forever after a BYE that did not pass this proxy.
    pub max_duration_s: u32,
    /// A dialog still being set up (trying, proceeding, early) after this long is ended
    /// (`timeout`): its INVITE's final response was never seen (the caller's connection
    /// broke before it). Above the proxy's Timer C (180 s) so a ringing phone is not cut.
    pub setup_timeout_s: u32,
    /// How long an ended dialog stays in the document as `terminated` (so watchers see it
    /// end before it disappears).
    pub terminated_linger_s: u32,
    /// Most dialogs followed at once (both parties of a call count); past it new calls are
    /// not followed (they are still routed).
    pub max_dialogs: usize,
}

impl Default for DialogConfig {
    fn default() -> DialogConfig {
        DialogConfig {
            max_duration_s: 12 * 3600,
            setup_timeout_s: 300,
            terminated_linger_s: 10,
            max_dialogs: 100_000,
        }
    }
}

/// One party's view of one dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The party (`user@domain`).
    user: String,
    id: String,
    direction: Direction,
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    state: DialogState,
    event: Option<StateEvent>,
    code: Option<u16>,
    created_at: Timestamp,
    ended_at: Option<Timestamp>,
    caller: Party,
    callee: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Party {
    uri: String,
    display: Option<String>,
    target: Option<String>,
}

impl Entry {
    fn local_tag(&self) -> Option<&str> {
        match self.direction {
            Direction::Initiator => Some(&self.from_tag),
            Direction::Recipient => self.to_tag.as_deref(),
        }
    }

    fn remote_tag(&self) -> Option<&str> {
        match self.direction {
            Direction::Initiator => self.to_tag.as_deref(),
            Direction::Recipient => Some(&self.from_tag),
        }
    }

    /// Moves forward only (RFC 4235's machine has no way back).
    fn advance(&mut self, to: DialogState, now: Timestamp) -> bool {
        if to <= self.state {
            return false;
        }
        self.state = to;
        if to == DialogState::Terminated {
            self.ended_at = Some(now);
        }
        true
    }

    fn end(&mut self, event: StateEvent, code: Option<u16>, now: Timestamp) -> bool {
        if self.state == DialogState::Terminated {
            return false;
        }
        self.event = Some(event);
        self.code = code;
        self.advance(DialogState::Terminated, now)
    }

    fn to_dialog(&self, now: Timestamp) -> dialog_info::Dialog {
        let (local, remote) = match self.direction {
            Direction::Initiator => (&self.caller, &self.callee),
            Direction::Recipient => (&self.callee, &self.caller),
        };
        let participant = |p: &Party| Participant {
            identity: Some(Identity {
                display: p.display.clone(),
                uri: p.uri.clone(),
            }),
            target: p.target.as_ref().map(|t| Target {
                uri: t.clone(),
                params: Vec::new(),
            }),
            extensions: Vec::new(),
        };
        let end = self.ended_at.unwrap_or(now);
        let mut d = dialog_info::Dialog::new(self.id.clone(), self.state);
        d.call_id = Some(self.call_id.clone());
        d.local_tag = self.local_tag().map(str::to_owned);
        d.remote_tag = self.remote_tag().map(str::to_owned);
        d.direction = Some(self.direction);
        d.event = self.event;
        d.code = self.code;
        d.duration = Some(
            u32::try_from((end.as_millis() - self.created_at.as_millis()).max(0) / 1000)
                .unwrap_or(u32::MAX),
        );
        d.local = Some(participant(local));
        d.remote = Some(participant(remote));
        d
    }
}

/// What a report changed, per user: their watchers of `dialog` owe a NOTIFY, and those of
/// `presence` too when `on_the_phone` flipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The user (`user@domain`).
    pub user: String,
    /// Whether the user's "on the phone" (a confirmed dialog) changed.
    pub on_the_phone_changed: bool,
}

/// The dialogs of every party the proxy reported, by Call-ID.
#[derive(Debug, Default)]
pub struct DialogTable {
    by_call: HashMap<String, Vec<Entry>>,
    /// The calls each user has entries in. A set: a gateway or a call-centre user has
    /// thousands of dialogs, and every call start or end must not walk them all.
    by_user: HashMap<String, HashSet<String>>,
    /// Confirmed entries per user (only users with at least one), kept by [`Self::update`]
    /// (the only place an entry becomes or stops being confirmed), so "on the phone" is
    /// one lookup.
    confirmed_by_user: HashMap<String, usize>,
    count: usize,
}

/// Confirmed entries per user in one call's entries.
fn confirmed_in(entries: &[Entry]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for e in entries.iter().filter(|e| e.state == DialogState::Confirmed) {
        match out.iter_mut().find(|(u, _)| *u == e.user) {
            Some((_, n)) => *n += 1,
            None => out.push((e.user.clone(), 1)),
        }
    }
    out
}

/// `user@domain` of a SIP URI (`None` for tel:, other schemes, invalid users).
fn user_of(uri: &Uri<'_>) -> Option<String> {
    let Uri::Sip(u) = uri else {
        return None;
    };
    let domain = match u.host {
        Host::Domain(d) => d.to_owned(),
        other => other.to_string(),
    };
    Address::new(u.user?, &domain)
        .ok()
        .map(|a| a.as_str().to_owned())
}

fn unquote(display: Option<&str>) -> Option<String> {
    let d = display?.trim();
    let d = d
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(d);
    (!d.is_empty()).then(|| d.to_owned())
}

fn contact_of(m: &Message) -> Option<String> {
    m.contacts()
        .filter_map(Result::ok)
        .find_map(|c| c.addr().map(|a| a.addr.uri_str.to_owned()))
}

fn fnv(parts: &[&str]) -> u32 {
    parts.iter().fold(0x811c_9dc5_u32, |h, p| {
        p.bytes()
            .chain(std::iter::once(0))
            .fold(h, |h, x| (h ^ u32::from(x)).wrapping_mul(0x0100_0193))
    })
}

impl DialogTable {
    /// An empty table.
    pub fn new() -> DialogTable {
        DialogTable::default()
    }

    /// Dialogs followed (both parties counted).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no dialog is followed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn confirmed(&self, user: &str) -> bool {
        self.confirmed_by_user.get(user).is_some_and(|&n| n > 0)
    }

    fn entries_of<'a>(&'a self, user: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|c| self.by_call.get(c))
            .flatten()
            .filter(move |e| e.user == user)
    }

    /// Whether `user` has a confirmed dialog (aggregation's "on the phone").
    pub fn on_the_phone(&self, user: &str) -> bool {
        self.confirmed(user)
    }

    /// Runs `f` over the entries of `call_id` and reports the users whose state changed.
    fn update(
        &mut self,
        call_id: &str,
        f: impl FnMut(&mut Vec<Entry>) -> Vec<usize>,
    ) -> Vec<Changed> {
        let mut f = f;
        let Some(entries) = self.by_call.get_mut(call_id) else {
            return Vec::new();
        };
        let before = confirmed_in(entries);
        let len_before = entries.len();
        let touched = f(entries);
        self.count = self.count + entries.len() - len_before;
        let after = confirmed_in(entries);
        let mut touched_users: Vec<String> = Vec::new();
        for &i in &touched {
            if let Some(e) = entries.get(i)
                && !touched_users.contains(&e.user)
            {
                touched_users.push(e.user.clone());
            }
        }
        let was: Vec<bool> = touched_users.iter().map(|u| self.confirmed(u)).collect();
        for (u, n) in before {
            if let Some(c) = self.confirmed_by_user.get_mut(&u) {
                *c = c.saturating_sub(n);
                if *c == 0 {
                    self.confirmed_by_user.remove(&u);
                }
            }
        }
        for (u, n) in after {
            *self.confirmed_by_user.entry(u).or_default() += n;
        }
        touched_users
            .into_iter()
            .zip(was)
            .map(|(u, was)| Changed {
                on_the_phone_changed: was != self.confirmed(&u),
                user: u,
            })
            .collect()
    }

    /// An initial INVITE is forwarded: both parties get a `trying` dialog.
    pub fn handle_invite(
        &mut self,
        invite: &Message,
        now: Timestamp,
        config: &DialogConfig,
    ) -> Vec<Changed> {
        let (Some(Ok(call_id)), Some(Ok(from)), Some(Ok(to))) =
            (invite.call_id(), invite.from(), invite.to())
        else {
            return Vec::new();
        };
        let Some(from_tag) = from.tag() else {
            return Vec::new();
        };
        if to.tag().is_some() || self.by_call.contains_key(call_id) {
            return Vec::new();
        }
        let caller = Party {
            uri: from.uri_str.to_owned(),
            display: unquote(from.display_name),
            target: contact_of(invite),
        };
        let callee = Party {
            uri: to.uri_str.to_owned(),
            display: unquote(to.display_name),
            target: None,
        };
        let mut entries = Vec::new();
        for (user, direction) in [
            (user_of(&from.uri), Direction::Initiator),
            (user_of(&to.uri), Direction::Recipient),
        ] {
            let Some(user) = user else { continue };
            if self.count + entries.len() >= config.max_dialogs {
                tracing::debug!(call_id, "dialog table full; call not followed");
                break;
            }
            entries.push(Entry {
                id: format!("{:08x}", fnv(&[call_id, from_tag, direction.as_str()])),
                user,
                direction,
                call_id: call_id.to_owned(),
                from_tag: from_tag.to_owned(),
                to_tag: None,
                state: DialogState::Trying,
                event: None,
                code: None,
                created_at: now,
                ended_at: None,
                caller: caller.clone(),
                callee: callee.clone(),
            });
        }
        if entries.is_empty() {
            return Vec::new();
        }
        let out = entries
            .iter()
            .map(|e| Changed {
                user: e.user.clone(),
                on_the_phone_changed: false,
            })
            .collect();
        for e in &entries {
            let calls = self.by_user.entry(e.user.clone()).or_default();
            if !calls.contains(call_id) {
                calls.insert(call_id.to_owned());
            }
        }
        self.count += entries.len();
        self.by_call.insert(call_id.to_owned(), entries);
        out
    }

    /// A response to a followed INVITE goes upstream. A provisional or 2xx response with a
    /// new To tag while the call is still being set up is a new (forked) early dialog,
    /// within `max_dialogs`; after the call ended it changes nothing.
    pub fn handle_response(
        &mut self,
        invite: &Message,
        response: &Message,
        now: Timestamp,
        config: &DialogConfig,
    ) -> Vec<Changed> {
        let (Some(Ok(call_id)), Some(code)) = (invite.call_id(), response.status()) else {
            return Vec::new();
        };
        let from_tag = invite
            .from()
            .and_then(Result::ok)
            .and_then(|f| f.tag().map(str::to_owned));
        let to_tag = response
            .to()
            .and_then(Result::ok)
            .and_then(|t| t.tag().map(str::to_owned));
        let target = contact_of(response);
        let mut room = config.max_dialogs.saturating_sub(self.count);
        self.update(call_id, |entries| {
            let mut touched = Vec::new();
            let of_call = |e: &Entry| Some(&e.from_tag) == from_tag.as_ref();
            match (code, &to_tag) {
                (101..=199, None) => {
                    for (i, e) in entries.iter_mut().enumerate() {
                        if of_call(e)
                            && e.to_tag.is_none()
                            && e.advance(DialogState::Proceeding, now)
                        {
                            touched.push(i);
                        }
                    }
                }
                (101..=299, Some(tag)) => {
                    let to = if code >= 200 {
                        DialogState::Confirmed
                    } else {
                        DialogState::Early
                    };
                    for direction in [Direction::Initiator, Direction::Recipient] {
                        let mine = |e: &Entry| of_call(e) && e.direction == direction;
                        let idx = entries
                            .iter()
                            .position(|e| mine(e) && e.to_tag.as_ref() == Some(tag))
                            .or_else(|| {
                                entries.iter().position(|e| {
                                    mine(e)
                                        && e.to_tag.is_none()
                                        && e.state < DialogState::Terminated
                                })
                            });
                        let idx = match idx {
                            Some(i) => Some(i),
                            None => {
                                // A new tag from another branch of a call still being set
                                // up: a new early dialog (room permitting).
                                let template = entries
                                    .iter()
                                    .find(|e| mine(e) && e.state < DialogState::Terminated)
                                    .cloned()
                                    .filter(|_| room > 0);
                                room = room.saturating_sub(1);
                                template.map(|mut e| {
                                    e.id = format!(
                                        "{:08x}",
                                        fnv(&[&e.call_id, &e.from_tag, direction.as_str(), tag])
                                    );
                                    e.state = DialogState::Trying;
                                    e.event = None;
                                    e.code = None;
                                    e.ended_at = None;
                                    e.created_at = now;
                                    e.to_tag = None;
                                    entries.push(e);
                                    entries.len() - 1
                                })
                            }
                        };
                        let Some(i) = idx else { continue };
                        let e = &mut entries[i];
                        e.to_tag = Some(tag.clone());
                        if target.is_some() {
                            e.callee.target.clone_from(&target);
                        }
                        if e.advance(to, now) {
                            touched.push(i);
                        }
                    }
                    if code >= 200 {
                        // The other branches are cancelled by the proxy.
                        for (i, e) in entries.iter_mut().enumerate() {
                            if of_call(e)
                                && e.to_tag.as_ref() != Some(tag)
                                && e.state < DialogState::Confirmed
                                && e.end(StateEvent::Cancelled, None, now)
                            {
                                touched.push(i);
                            }
                        }
                    }
                }
                (300..=699, _) => {
                    let event = match code {
                        487 => StateEvent::Cancelled,
                        408 => StateEvent::Timeout,
                        _ => StateEvent::Rejected,
                    };
                    for (i, e) in entries.iter_mut().enumerate() {
                        if of_call(e)
                            && e.state < DialogState::Confirmed
                            && e.end(event, Some(code), now)
                        {
                            touched.push(i);
                        }
                    }
                }
                _ => {}
            }
            touched
        })
    }

    /// A BYE is forwarded inside a dialog: both parties' entries of that dialog end.
    pub fn handle_bye(&mut self, bye: &Message, now: Timestamp) -> Vec<Changed> {
        let (Some(Ok(call_id)), Some(Ok(from)), Some(Ok(to))) =
            (bye.call_id(), bye.from(), bye.to())
        else {
            return Vec::new();
        };
        let (Some(a), Some(b)) = (from.tag(), to.tag()) else {
            return Vec::new();
        };
        let (a, b) = (a.to_owned(), b.to_owned());
        self.update(call_id, |entries| {
            let mut touched = Vec::new();
            for (i, e) in entries.iter_mut().enumerate() {
                let Some(to_tag) = e.to_tag.clone() else {
                    continue;
                };
                let same = (e.from_tag == a && to_tag == b) || (e.from_tag == b && to_tag == a);
                if !same {
                    continue;
                }
                let event = if e.local_tag() == Some(a.as_str()) {
                    StateEvent::LocalBye
                } else {
                    StateEvent::RemoteBye
                };
                if e.end(event, None, now) {
                    touched.push(i);
                }
            }
            touched
        })
    }

    /// Forgets dialogs ended more than `terminated_linger_s` ago (users whose document
    /// shrinks are reported) and ends dialogs older than `max_duration_s` (`timeout`).
    pub fn sweep(&mut self, now: Timestamp, config: &DialogConfig) -> Vec<Changed> {
        let linger = i64::from(config.terminated_linger_s) * 1000;
        let max = i64::from(config.max_duration_s) * 1000;
        let setup = i64::from(config.setup_timeout_s) * 1000;
        let calls: Vec<String> = self.by_call.keys().cloned().collect();
        let mut out: Vec<Changed> = Vec::new();
        for call in calls {
            let due = |e: &Entry| {
                let age = now.as_millis() - e.created_at.as_millis();
                let limit = if e.state < DialogState::Confirmed {
                    setup.min(max)
                } else {
                    max
                };
                e.state != DialogState::Terminated && age >= limit
            };
            let lingering = |e: &Entry| {
                e.ended_at
                    .is_some_and(|t| now.as_millis() - t.as_millis() >= linger)
            };
            // Most calls have nothing to time out or forget: leave them untouched.
            if !self
                .by_call
                .get(&call)
                .is_some_and(|es| es.iter().any(|e| due(e) || lingering(e)))
            {
                continue;
            }
            let changed = self.update(&call, |entries| {
                let mut touched = Vec::new();
                for (i, e) in entries.iter_mut().enumerate() {
                    let age = now.as_millis() - e.created_at.as_millis();
                    let limit = if e.state < DialogState::Confirmed {
                        setup.min(max)
                    } else {
                        max
                    };
                    if e.state != DialogState::Terminated
                        && age >= limit
                        && e.end(StateEvent::Timeout, None, now)
                    {
                        touched.push(i);
                    }
                }
                touched
            });
            out.extend(changed);
            let Some(entries) = self.by_call.get_mut(&call) else {
                continue;
            };
            let before = entries.len();
            let mut gone_users = Vec::new();
            entries.retain(|e| {
                let keep = e
                    .ended_at
                    .is_none_or(|t| now.as_millis() - t.as_millis() < linger);
                if !keep {
                    gone_users.push(e.user.clone());
                }
                keep
            });
            self.count -= before - entries.len();
            let empty = entries.is_empty();
            let remaining: Vec<String> = entries.iter().map(|e| e.user.clone()).collect();
            if empty {
                self.by_call.remove(&call);
            }
            for u in gone_users {
                if !remaining.contains(&u)
                    && let Some(calls) = self.by_user.get_mut(&u)
                {
                    calls.remove(&call);
                    if calls.is_empty() {
                        self.by_user.remove(&u);
                    }
                }
                if !out.iter().any(|c| c.user == u) {
                    out.push(Changed {
                        user: u,
                        on_the_phone_changed: false,
                    });
                }
            }
        }
        out
    }

    /// The full-state document of `user` (every dialog, unfiltered: the access level is
    /// applied by [`crate::access::dialog_notify_body`]); `version` is the subscription's.
    pub fn document(&self, user: &str, version: u32, now: Timestamp) -> DialogInfo {
        let mut doc = DialogInfo::new(format!("sip:{user}"), version);
        let mut entries: Vec<&Entry> = self.entries_of(user).collect();
        entries.sort_by(|a, b| {
            (a.created_at.as_millis(), &a.id).cmp(&(b.created_at.as_millis(), &b.id))
        });
        doc.dialogs = entries.into_iter().map(|e| e.to_dialog(now)).collect();
        doc
    }
}

/// Whether a request is one the dialog observer follows: an initial INVITE or a BYE inside
/// a dialog.
pub fn followed(request: &Message, in_dialog: bool) -> bool {
    matches!(
        (request.method(), in_dialog),
        (Some(Method::Invite), false) | (Some(Method::Bye), true)
    )
}
