//! Who may see what: access levels (issue 8 item 5) as two pure functions — the level of a
//! watcher for a presentity ([`access_level`]) and the document that level may see
//! ([`filter`]) — plus the helpers that apply the filter to partial (RFC 5263) and
//! resource-list (RFC 4662) NOTIFY bodies, so no path can skip it.
//!
//! | level | sees |
//! |---|---|
//! | blocked | exactly the document of an offline user ([`offline_document`]) |
//! | public | availability only: one tuple (open/closed), the availability activities |
//! | colleague | availability, every activity, the notes |
//! | personal | everything (services with contacts, devices, mood, place, idle, extensions) |

use confab_core::Address;
use confab_xml::XmlError;
use confab_xml::multipart::{Part, Related};
use confab_xml::pidf::{self, Basic, Person, Presence, Tuple};
use confab_xml::pidf_diff::{self, PidfDiff};
use confab_xml::rlmi::{self, Instance, InstanceState, Resource};
use confab_xml::rpid::{Activities, Activity};

use crate::aggregate::{Availability, availability_activities, availability_of, offline_document};

/// An access level, least to most (defined beside the stored policy in `confab-core`, since
/// the contact store keeps levels too).
pub use confab_core::contacts::AccessLevel;

/// A presentity's access policy (plain data: persisted by the policy store).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessPolicy {
    /// Levels the user set for particular watchers (blocking included); these win.
    pub overrides: Vec<(Address, AccessLevel)>,
    /// Levels the user set for whole domains (lowercase), below `overrides`.
    pub domain_overrides: Vec<(String, AccessLevel)>,
    /// The user's contacts (personal by default).
    pub contacts: Vec<Address>,
    /// Level of an unauthenticated watcher. Default public.
    pub anonymous: Option<AccessLevel>,
    /// When true, a watcher the user has not placed (no override, not a contact, not in the
    /// domain) waits as a pending watcher (RFC 3857) until the user allows or blocks them.
    /// Default false: such watchers are public at once.
    pub confirm_strangers: bool,
}

/// The level `watcher` has on `presentity` under `policy`: the user's explicit choice for
/// that watcher, else for their domain, else personal for the user themself and their
/// contacts, colleague for the same domain, public for others (and for anonymous watchers
/// unless the policy says otherwise).
pub fn access_level(
    watcher: Option<&Address>,
    presentity: &Address,
    policy: &AccessPolicy,
) -> AccessLevel {
    let Some(w) = watcher else {
        return policy.anonymous.unwrap_or(AccessLevel::Public);
    };
    if let Some((_, l)) = policy.overrides.iter().find(|(a, _)| a == w) {
        return *l;
    }
    if let Some((_, l)) = policy
        .domain_overrides
        .iter()
        .find(|(d, _)| d.eq_ignore_ascii_case(w.domain()))
    {
        return *l;
    }
    if w == presentity || policy.contacts.contains(w) {
        AccessLevel::Personal
    } else if w.domain().eq_ignore_ascii_case(presentity.domain()) {
        AccessLevel::Colleague
    } else {
        AccessLevel::Public
    }
}

/// What to do with a new subscription (RFC 3857 authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// Accept at this level (blocked watchers are accepted too and see offline: "polite
    /// blocking", so they cannot tell).
    Accept(AccessLevel),
    /// Pending until the user decides.
    Pending,
}

/// The authorization of a new subscription.
pub fn authorize(
    watcher: Option<&Address>,
    presentity: &Address,
    policy: &AccessPolicy,
) -> Authorization {
    let level = access_level(watcher, presentity, policy);
    let placed = watcher.is_some_and(|w| {
        policy.overrides.iter().any(|(a, _)| a == w)
            || policy
                .domain_overrides
                .iter()
                .any(|(d, _)| d.eq_ignore_ascii_case(w.domain()))
    });
    if policy.confirm_strangers && level == AccessLevel::Public && !placed {
        Authorization::Pending
    } else {
        Authorization::Accept(level)
    }
}

fn summary(doc: &Presence, availability: Availability) -> Presence {
    let mut p = Presence::new(doc.entity.clone());
    p.tuples.push(Tuple::new("t", Basic::Open));
    let acts = availability_activities(availability);
    if !acts.is_empty() {
        p.persons.push(Person {
            id: "p".to_owned(),
            activities: Some(Activities {
                values: acts,
                ..Activities::default()
            }),
            ..Person::default()
        });
    }
    p
}

/// The part of `doc` a watcher at `level` may see.
pub fn filter(doc: &Presence, level: AccessLevel) -> Presence {
    let availability = availability_of(doc);
    if level == AccessLevel::Blocked || availability == Availability::Offline {
        return offline_document(&doc.entity);
    }
    match level {
        AccessLevel::Blocked => unreachable!("handled above"),
        AccessLevel::Public => summary(doc, availability),
        AccessLevel::Colleague => {
            let mut p = summary(doc, availability);
            let mut values = availability_activities(availability);
            let mut notes = Vec::new();
            if let Some(person) = doc.persons.first() {
                if let Some(a) = &person.activities {
                    for v in &a.values {
                        if !matches!(v, Activity::Extension(_)) && !values.contains(v) {
                            values.push(v.clone());
                        }
                    }
                }
                notes = person.notes.clone();
            }
            if !values.is_empty() || !notes.is_empty() {
                p.persons = vec![Person {
                    id: "p".to_owned(),
                    activities: (!values.is_empty()).then(|| Activities {
                        values,
                        ..Activities::default()
                    }),
                    notes,
                    ..Person::default()
                }];
            }
            p.notes = doc.notes.clone();
            p
        }
        AccessLevel::Personal => doc.clone(),
    }
}

/// The body of a NOTIFY for a watcher at `level`, full or partial (RFC 5263): with
/// `previous` (the full document of the last NOTIFY, unfiltered) and a watcher that accepts
/// `application/pidf-diff+xml`, a patch between the two filtered documents when one is
/// possible; otherwise the full filtered document. `version` is the pidf-diff version.
pub fn notify_body(
    current: &Presence,
    previous: Option<&Presence>,
    level: AccessLevel,
    partial: bool,
    version: u32,
) -> (&'static str, Vec<u8>) {
    let now = filter(current, level);
    if !partial {
        return (pidf::CONTENT_TYPE, now.to_bytes());
    }
    let patch = previous.and_then(|prev| pidf_diff::diff(&filter(prev, level), &now, version));
    let body = match patch {
        Some(p) => PidfDiff::Patch(p),
        None => PidfDiff::Full {
            version,
            presence: now,
        },
    };
    (pidf_diff::CONTENT_TYPE, body.to_bytes())
}

/// One resource of a list subscription, with the level of this watcher on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMember<'a> {
    /// The resource URI.
    pub uri: &'a str,
    /// Display name.
    pub name: Option<&'a str>,
    /// Back-end subscription state and its instance id.
    pub state: InstanceState,
    /// Instance id (stable per back-end subscription).
    pub instance_id: &'a str,
    /// `reason` for a terminated instance.
    pub reason: Option<&'a str>,
    /// The resource's current document (unfiltered), if active.
    pub document: Option<&'a Presence>,
    /// The watcher's level on this resource.
    pub level: AccessLevel,
}

/// A resource-list NOTIFY body (RFC 4662): the RLMI root and one filtered PIDF part per
/// active member. `random` seeds the boundary and Content-IDs.
pub fn list_notify_body(
    list_uri: &str,
    version: u32,
    full_state: bool,
    members: &[ListMember<'_>],
    random: [u8; 12],
) -> Result<Related, XmlError> {
    let tag: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut list = rlmi::List {
        uri: list_uri.to_owned(),
        version,
        full_state,
        cid: None,
        names: Vec::new(),
        resources: Vec::new(),
    };
    let mut parts = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let cid = m
            .document
            .filter(|_| m.state == InstanceState::Active)
            .map(|doc| {
                let cid = format!("r{i}.{tag}@confab");
                parts.push(Part::new(
                    cid.clone(),
                    "application/pidf+xml;charset=\"UTF-8\"",
                    filter(doc, m.level).to_bytes(),
                ));
                cid
            });
        list.resources.push(Resource {
            uri: m.uri.to_owned(),
            names: m
                .name
                .map(|n| vec![confab_xml::Text::new(n)])
                .unwrap_or_default(),
            instances: vec![Instance {
                id: m.instance_id.to_owned(),
                state: m.state,
                reason: m.reason.map(str::to_owned),
                cid,
            }],
        });
    }
    parts.insert(
        0,
        Part::new(
            format!("list.{tag}@confab"),
            "application/rlmi+xml;charset=\"UTF-8\"",
            list.to_bytes(),
        ),
    );
    Related::build(parts, random)
}

/// Whether a watcher at `level` may see a user's calls (the `dialog` package): colleague
/// and personal only. Public and blocked watchers see no call at all (an empty
/// `dialog-info` document: not even that calls are hidden from them).
pub const fn sees_dialogs(level: AccessLevel) -> bool {
    matches!(level, AccessLevel::Colleague | AccessLevel::Personal)
}

/// The body of a `dialog` NOTIFY (RFC 4235) for a watcher at `level`, from the user's full
/// document (`doc`, unfiltered, carrying the subscription's version):
///
/// | level | sees |
/// |---|---|
/// | blocked, public | no dialog |
/// | colleague | each dialog's id, direction and state (with event and code): the busy lamp; no Call-ID, tags, parties or targets |
/// | personal | everything (Call-ID and tags, both parties and their targets: what call pickup needs) |
pub fn dialog_notify_body(
    doc: &confab_xml::dialog_info::DialogInfo,
    level: AccessLevel,
) -> (&'static str, Vec<u8>) {
    use confab_xml::dialog_info::{CONTENT_TYPE, Dialog, DialogInfo};
    let out = match level {
        AccessLevel::Personal => doc.clone(),
        AccessLevel::Colleague => DialogInfo {
            dialogs: doc
                .dialogs
                .iter()
                .map(|d| {
                    let mut x = Dialog::new(d.id.clone(), d.state);
                    x.direction = d.direction;
                    x.event = d.event;
                    x.code = d.code;
                    x
                })
                .collect(),
            ..doc.clone()
        },
        AccessLevel::Public | AccessLevel::Blocked => DialogInfo {
            dialogs: Vec::new(),
            ..doc.clone()
        },
    };
    (CONTENT_TYPE, out.to_bytes())
}
