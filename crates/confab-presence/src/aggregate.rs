//! The RTC Aggregate: one presence document for a user from everything the server knows
//! about them — every endpoint's publication, their registrations, their calls and the
//! state they set by hand. A pure function: [`aggregate`].
//!
//! The rules (also in ARCHITECTURE.md, "Presence aggregation rules"), applied in order:
//!
//! 1. An unexpired state the user set by hand ([`ManualState`]) overrides everything the
//!    machines say; *appear offline* gives exactly the document of a user who is offline.
//! 2. The endpoints are the unexpired publications, plus every unexpired registration that
//!    no publication covers (same `+sip.instance`, or a tuple `<contact>` equal to the
//!    binding's contact). A registration without publication counts as
//!    [`AggregateConfig::registered_without_publication`] (default: available).
//! 3. No endpoint and no call: offline.
//! 4. The winning endpoint is the first by: online before offline, active before idle, most
//!    available ([`Availability`] order), most recently published.
//! 5. An idle winner that is available shows as away (idle yields to active by rule 4).
//! 6. A call in progress (the user's dialogs) makes an available or away user busy and adds
//!    the `on-the-phone` activity (also under a manual state, except appear offline).
//!
//! How availability is written in PIDF (so standard clients read it): offline is one
//! closed tuple and nothing else; every other state has open tuples and a person whose
//! RPID activities carry it: busy `<busy/>`, do not disturb `<busy/><other>do-not-disturb
//! </other>`, be right back `<away/><other>be-right-back</other>`, away `<away/>`,
//! available no availability activity. [`availability_of`] reads it back, from our
//! documents and from clients' publications alike.

use confab_core::{Binding, Timestamp};
use confab_xml::Text;
use confab_xml::pidf::{Basic, Contact, Device, Person, Presence, Tuple};
use confab_xml::rpid::{Activities, Activity, ActivityKind, InputState, UserInput};

/// How reachable a user is, most available first (the order Lync-style clients rank
/// states in: busy is more reachable than away).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Availability {
    /// Online and free.
    Available,
    /// Online, busy (in a call, a meeting, or set by hand).
    Busy,
    /// Online, only urgent contact.
    DoNotDisturb,
    /// Away for a short while.
    BeRightBack,
    /// Away (or idle).
    Away,
    /// Not online.
    Offline,
}

/// The text of `<rpid:other>` for do-not-disturb.
pub const OTHER_DND: &str = "do-not-disturb";
/// The text of `<rpid:other>` for be-right-back.
pub const OTHER_BRB: &str = "be-right-back";

/// A state the user set by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManualAvailability {
    /// Busy.
    Busy,
    /// Do not disturb.
    DoNotDisturb,
    /// Be right back.
    BeRightBack,
    /// Away.
    Away,
    /// Appear offline: watchers see exactly what they would see if the user were offline.
    AppearOffline,
}

/// The manual state with its optional note and end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManualState {
    /// The state.
    pub availability: ManualAvailability,
    /// A note to show instead of the endpoints' notes.
    pub note: Option<String>,
    /// When it ends by itself (e.g. be right back for 15 minutes); `None` until cleared.
    pub until: Option<Timestamp>,
}

/// One endpoint's current publication (RFC 3903), already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPublication {
    /// The entity-tag (identifies the publication).
    pub etag: String,
    /// When it was last published (initial or modify).
    pub published_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// The publisher's `+sip.instance`, when known (from its registration or flow).
    pub instance: Option<String>,
    /// The document.
    pub document: Presence,
}

/// What aggregation needs of a registration binding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// The Contact URI.
    pub contact: String,
    /// `+sip.instance`, if any.
    pub instance: Option<String>,
    /// When it was last refreshed.
    pub updated_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
}

impl From<&Binding> for Registration {
    fn from(b: &Binding) -> Registration {
        Registration {
            contact: b.contact.clone(),
            instance: b.instance.clone(),
            updated_at: b.updated_at,
            expires_at: b.expires_at,
        }
    }
}

/// Aggregation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateConfig {
    /// What a registered endpoint that publishes nothing counts as (desk phones that do not
    /// PUBLISH). Default: available.
    pub registered_without_publication: Availability,
}

impl Default for AggregateConfig {
    fn default() -> AggregateConfig {
        AggregateConfig {
            registered_without_publication: Availability::Available,
        }
    }
}

/// Everything aggregation reads, at one instant.
#[derive(Debug, Clone, Copy)]
pub struct AggregateInput<'a> {
    /// The presentity's URI (the `entity` of the document).
    pub entity: &'a str,
    /// The user's publications (expired ones are ignored).
    pub publications: &'a [EndpointPublication],
    /// The user's registrations (expired ones are ignored).
    pub registrations: &'a [Registration],
    /// Whether the user has a confirmed call (from their dialogs).
    pub on_the_phone: bool,
    /// The manual state, if set (ignored once `until` has passed).
    pub manual: Option<&'a ManualState>,
    /// Now.
    pub now: Timestamp,
}

/// Which input decided the availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The manual state.
    Manual,
    /// The publication with this entity-tag.
    Publication(String),
    /// A registration without publication (its contact).
    Registration(String),
    /// Only the call in progress.
    Call,
    /// Nothing: offline.
    Nothing,
}

/// The result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The availability.
    pub availability: Availability,
    /// What decided it.
    pub source: Source,
    /// Whether the winning endpoint is idle.
    pub idle: bool,
    /// The document to send (before the access filter).
    pub document: Presence,
}

/// How one endpoint reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View<'a> {
    availability: Availability,
    idle: bool,
    user_input: Option<&'a UserInput>,
    person: Option<&'a Person>,
}

/// The availability a document states (see the module doc for the encoding). A document
/// with an open tuple, or with a person and no tuple, is online; the first person's
/// activities say how. Tuples that are all closed make it offline unless the person states
/// an activity (an empty `<activities/>` states none).
pub fn availability_of(doc: &Presence) -> Availability {
    let open = doc
        .tuples
        .iter()
        .any(|t| t.status.basic == Some(Basic::Open));
    let person = doc.persons.first();
    if !open && person.is_none() {
        return Availability::Offline;
    }
    let states_activity = person
        .and_then(|p| p.activities.as_ref())
        .is_some_and(|a| !a.values.is_empty());
    if !open && !doc.tuples.is_empty() && !states_activity {
        return Availability::Offline;
    }
    let Some(acts) = person.and_then(|p| p.activities.as_ref()) else {
        return Availability::Available;
    };
    let other = |s: &str| {
        acts.values
            .iter()
            .any(|a| matches!(a, Activity::Other(t) if t.text.trim().eq_ignore_ascii_case(s)))
    };
    let any = |kinds: &[ActivityKind]| kinds.iter().any(|k| acts.contains(*k));
    if other(OTHER_DND) {
        Availability::DoNotDisturb
    } else if other(OTHER_BRB) {
        Availability::BeRightBack
    } else if any(&[
        ActivityKind::Away,
        ActivityKind::PermanentAbsence,
        ActivityKind::Vacation,
        ActivityKind::Holiday,
        ActivityKind::Sleeping,
    ]) {
        Availability::Away
    } else if any(&[
        ActivityKind::Busy,
        ActivityKind::OnThePhone,
        ActivityKind::Meeting,
        ActivityKind::Appointment,
        ActivityKind::Presentation,
        ActivityKind::Performance,
    ]) {
        Availability::Busy
    } else {
        Availability::Available
    }
}

/// The activities that write `availability` (empty for available and offline).
pub fn availability_activities(availability: Availability) -> Vec<Activity> {
    match availability {
        Availability::Available | Availability::Offline => Vec::new(),
        Availability::Busy => vec![Activity::Known(ActivityKind::Busy)],
        Availability::DoNotDisturb => vec![
            Activity::Known(ActivityKind::Busy),
            Activity::Other(Text::new(OTHER_DND)),
        ],
        Availability::BeRightBack => vec![
            Activity::Known(ActivityKind::Away),
            Activity::Other(Text::new(OTHER_BRB)),
        ],
        Availability::Away => vec![Activity::Known(ActivityKind::Away)],
    }
}

/// Whether an activity is one [`availability_activities`] writes.
pub fn is_availability_activity(a: &Activity) -> bool {
    match a {
        Activity::Known(k) => matches!(k, ActivityKind::Busy | ActivityKind::Away),
        Activity::Other(t) => t.text == OTHER_DND || t.text == OTHER_BRB,
        _ => false,
    }
}

/// The document of a user who is offline: one closed tuple, nothing else. Blocked
/// watchers get exactly this (so blocking cannot be told from being offline).
pub fn offline_document(entity: &str) -> Presence {
    let mut p = Presence::new(entity);
    p.tuples.push(Tuple::new("t", Basic::Closed));
    p
}

fn view(doc: &Presence) -> View<'_> {
    let person = doc.persons.first();
    let user_input = person
        .and_then(|p| p.user_input.as_ref())
        .or_else(|| doc.devices.iter().find_map(|d| d.user_input.as_ref()))
        .or_else(|| doc.tuples.iter().find_map(|t| t.user_input.as_ref()));
    View {
        availability: availability_of(doc),
        idle: user_input.is_some_and(|u| u.state == InputState::Idle),
        user_input,
        person,
    }
}

fn covered(reg: &Registration, publications: &[&EndpointPublication]) -> bool {
    publications.iter().any(|p| {
        (reg.instance.is_some() && p.instance == reg.instance)
            || p.document
                .tuples
                .iter()
                .any(|t| t.contact.as_ref().is_some_and(|c| c.uri == reg.contact))
    })
}

/// Aggregates (see the module doc for the rules).
pub fn aggregate(input: &AggregateInput<'_>, config: &AggregateConfig) -> Aggregate {
    let now = input.now;
    let manual = input.manual.filter(|m| m.until.is_none_or(|u| u > now));
    if manual.is_some_and(|m| m.availability == ManualAvailability::AppearOffline) {
        return Aggregate {
            availability: Availability::Offline,
            source: Source::Manual,
            idle: false,
            document: offline_document(input.entity),
        };
    }
    let pubs: Vec<&EndpointPublication> = input
        .publications
        .iter()
        .filter(|p| p.expires_at > now)
        .collect();
    let regs: Vec<&Registration> = input
        .registrations
        .iter()
        .filter(|r| r.expires_at > now && !covered(r, &pubs))
        .collect();

    // Candidates: (offline?, idle?, availability, -published, source, view).
    struct Candidate<'a> {
        key: (bool, bool, Availability, i64),
        source: Source,
        view: Option<View<'a>>,
    }
    let mut candidates: Vec<Candidate<'_>> = pubs
        .iter()
        .map(|p| {
            let v = view(&p.document);
            Candidate {
                key: (
                    v.availability == Availability::Offline,
                    v.idle,
                    v.availability,
                    -p.published_at.as_millis(),
                ),
                source: Source::Publication(p.etag.clone()),
                view: Some(v),
            }
        })
        .collect();
    let reg_av = config.registered_without_publication;
    candidates.extend(regs.iter().map(|r| Candidate {
        key: (
            reg_av == Availability::Offline,
            false,
            reg_av,
            -r.updated_at.as_millis(),
        ),
        source: Source::Registration(r.contact.clone()),
        view: None,
    }));
    candidates.sort_by_key(|c| c.key);
    let winner = candidates.first();

    let (mut availability, mut source, idle) = match winner {
        Some(c) if c.key.2 != Availability::Offline => {
            let idle = c.key.1;
            let av = if idle && c.key.2 == Availability::Available {
                Availability::Away
            } else {
                c.key.2
            };
            (av, c.source.clone(), idle)
        }
        _ => (Availability::Offline, Source::Nothing, false),
    };
    if input.on_the_phone
        && matches!(
            availability,
            Availability::Available | Availability::Away | Availability::Offline
        )
    {
        if availability == Availability::Offline {
            source = Source::Call;
        }
        availability = Availability::Busy;
    }
    if let Some(m) = manual {
        availability = match m.availability {
            ManualAvailability::Busy => Availability::Busy,
            ManualAvailability::DoNotDisturb => Availability::DoNotDisturb,
            ManualAvailability::BeRightBack => Availability::BeRightBack,
            ManualAvailability::Away => Availability::Away,
            ManualAvailability::AppearOffline => unreachable!("handled above"),
        };
        source = Source::Manual;
    }
    if availability == Availability::Offline {
        return Aggregate {
            availability,
            source,
            idle: false,
            document: offline_document(input.entity),
        };
    }

    // The document: every service of every live publication, a tuple per uncovered
    // registration, every device, and one person carrying the aggregated state.
    let mut doc = Presence::new(input.entity);
    for p in &pubs {
        for t in &p.document.tuples {
            let mut t = t.clone();
            if doc.tuples.iter().any(|o| o.id == t.id) {
                t.id = format!("{}-{}", p.etag, t.id);
            }
            if !doc.tuples.iter().any(|o| o.id == t.id) {
                doc.tuples.push(t);
            }
        }
        for d in &p.document.devices {
            if !doc.devices.iter().any(|o: &Device| o.id == d.id) {
                doc.devices.push(d.clone());
            }
        }
    }
    for (i, r) in regs.iter().enumerate() {
        let mut t = Tuple::new(
            format!("reg{i}"),
            if reg_av == Availability::Offline {
                Basic::Closed
            } else {
                Basic::Open
            },
        );
        t.contact = Some(Contact {
            uri: r.contact.clone(),
            priority: None,
        });
        doc.tuples.push(t);
    }
    if !doc
        .tuples
        .iter()
        .any(|t| t.status.basic == Some(Basic::Open))
    {
        // Online only through a call or a person-only publication: say so in a tuple.
        doc.tuples.insert(0, Tuple::new("t", Basic::Open));
    }

    let winner_view = winner.and_then(|c| c.view.as_ref());
    let winner_person = winner_view.and_then(|v| v.person);
    let mut person = Person {
        id: "p".to_owned(),
        ..Person::default()
    };
    let mut values = availability_activities(availability);
    let mut push = |a: Activity| {
        if !values.contains(&a) {
            values.push(a);
        }
    };
    if input.on_the_phone {
        push(Activity::Known(ActivityKind::OnThePhone));
    }
    if source != Source::Manual {
        // The winner's own activities (meeting, travel, ...) beyond the availability.
        if let Some(acts) = winner_person.and_then(|p| p.activities.as_ref()) {
            for a in &acts.values {
                if !matches!(a, Activity::Unknown) {
                    push(a.clone());
                }
            }
        }
    }
    if !values.is_empty() {
        person.activities = Some(Activities {
            values,
            ..Activities::default()
        });
    }
    if let Some(wp) = winner_person {
        person.mood = wp.mood.clone();
        person.place_type = wp.place_type.clone();
        person.extensions = wp.extensions.clone();
        person.timestamp = wp.timestamp.clone();
    }
    person.user_input = winner_view.and_then(|v| v.user_input.cloned()).or_else(|| {
        Some(UserInput::new(if idle {
            InputState::Idle
        } else {
            InputState::Active
        }))
    });
    match manual.and_then(|m| m.note.clone()) {
        Some(n) => person.notes.push(Text::new(n)),
        None => {
            if let Some(wp) = winner_person {
                person.notes = wp.notes.clone();
            }
            if let (true, Source::Publication(etag)) = (person.notes.is_empty(), &source)
                && let Some(p) = pubs.iter().find(|p| &p.etag == etag)
            {
                doc.notes = p.document.notes.clone();
            }
        }
    }
    doc.persons.push(person);
    Aggregate {
        availability,
        source,
        idle,
        document: doc,
    }
}
