//! RPID (RFC 4480) elements with a type here: `activities` (§3.2), `mood` (§3.4),
//! `place-type` (§3.6) and `user-input` (§3.13). The other RPID elements (`class`,
//! `place-is`, `privacy`, `relationship`, `service-class`, `sphere`, `status-icon`,
//! `time-offset`) stay [`Element`]s in the `extensions` of their parent and pass through.

use crate::{Element, Node, Text, XmlError, ns, opt_u32};

macro_rules! token_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )+
        }
        impl $name {
            /// Every value, in the RFC's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The element name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// From the element name.
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

token_enum!(
    /// The activities of RFC 4480 §3.2 (`unknown` and `other` are [`Activity`] variants).
    ActivityKind {
        Appointment = "appointment",
        Away = "away",
        Breakfast = "breakfast",
        Busy = "busy",
        Dinner = "dinner",
        Holiday = "holiday",
        InTransit = "in-transit",
        LookingForWork = "looking-for-work",
        Meal = "meal",
        Meeting = "meeting",
        OnThePhone = "on-the-phone",
        Performance = "performance",
        PermanentAbsence = "permanent-absence",
        Playing = "playing",
        Presentation = "presentation",
        Shopping = "shopping",
        Sleeping = "sleeping",
        Spectator = "spectator",
        Steering = "steering",
        Travel = "travel",
        Tv = "tv",
        Vacation = "vacation",
        Working = "working",
        Worship = "worship",
    }
);

token_enum!(
    /// The moods of RFC 4480 §3.4 (`unknown` and `other` are [`MoodValue`] variants).
    MoodKind {
        Afraid = "afraid",
        Amazed = "amazed",
        Angry = "angry",
        Annoyed = "annoyed",
        Anxious = "anxious",
        Ashamed = "ashamed",
        Bored = "bored",
        Brave = "brave",
        Calm = "calm",
        Cold = "cold",
        Confused = "confused",
        Contented = "contented",
        Cranky = "cranky",
        Curious = "curious",
        Depressed = "depressed",
        Disappointed = "disappointed",
        Disgusted = "disgusted",
        Distracted = "distracted",
        Embarrassed = "embarrassed",
        Excited = "excited",
        Flirtatious = "flirtatious",
        Frustrated = "frustrated",
        Grumpy = "grumpy",
        Guilty = "guilty",
        Happy = "happy",
        Hot = "hot",
        Humbled = "humbled",
        Humiliated = "humiliated",
        Hungry = "hungry",
        Hurt = "hurt",
        Impressed = "impressed",
        InAwe = "in_awe",
        InLove = "in_love",
        Indignant = "indignant",
        Interested = "interested",
        Invincible = "invincible",
        Jealous = "jealous",
        Lonely = "lonely",
        Mean = "mean",
        Moody = "moody",
        Nervous = "nervous",
        Neutral = "neutral",
        Offended = "offended",
        Playful = "playful",
        Proud = "proud",
        Relieved = "relieved",
        Remorseful = "remorseful",
        Restless = "restless",
        Sad = "sad",
        Sarcastic = "sarcastic",
        Serious = "serious",
        Shocked = "shocked",
        Shy = "shy",
        Sick = "sick",
        Sleepy = "sleepy",
        Stressed = "stressed",
        Surprised = "surprised",
        Thirsty = "thirsty",
        Worried = "worried",
    }
);

/// The attributes every RPID element with a validity period carries (RFC 4480 §2.2 `id`,
/// §2.1 `from`/`until`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Period {
    /// `id`.
    pub id: Option<String>,
    /// `from` (kept as written; [`crate::DateTime::parse`] reads it).
    pub from: Option<String>,
    /// `until`.
    pub until: Option<String>,
}

impl Period {
    fn read(e: &Element) -> Period {
        Period {
            id: e.attr("id").map(str::to_owned),
            from: e.attr("from").map(str::to_owned),
            until: e.attr("until").map(str::to_owned),
        }
    }

    fn write(&self, e: &mut Element) {
        for (k, v) in [
            ("id", &self.id),
            ("from", &self.from),
            ("until", &self.until),
        ] {
            if let Some(v) = v {
                e.set_attr(k, v.clone());
            }
        }
    }
}

/// One value inside `<rpid:activities>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// A value of RFC 4480 §3.2.
    Known(ActivityKind),
    /// `<unknown/>`: the activity is not known (only alone).
    Unknown,
    /// `<other>text</other>`.
    Other(Text),
    /// An element of another namespace.
    Extension(Element),
}

/// `<rpid:activities>` (RFC 4480 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Activities {
    /// `id`, `from`, `until`.
    pub period: Period,
    /// `<rpid:note>`s.
    pub notes: Vec<Text>,
    /// The activities, in document order.
    pub values: Vec<Activity>,
}

impl Activities {
    /// Activities with the given known values.
    pub fn of(kinds: &[ActivityKind]) -> Activities {
        Activities {
            values: kinds.iter().copied().map(Activity::Known).collect(),
            ..Activities::default()
        }
    }

    /// Whether `kind` is among the values.
    pub fn contains(&self, kind: ActivityKind) -> bool {
        self.values.contains(&Activity::Known(kind))
    }

    /// Reads `<rpid:activities>`.
    pub fn from_element(e: &Element) -> Result<Activities, XmlError> {
        let mut a = Activities {
            period: Period::read(e),
            ..Activities::default()
        };
        for c in e.elements() {
            if c.namespace == ns::RPID {
                match c.name.as_str() {
                    "note" => a.notes.push(Text::from_element(c)),
                    "unknown" => a.values.push(Activity::Unknown),
                    "other" => a.values.push(Activity::Other(Text::from_element(c))),
                    name => match ActivityKind::from_name(name) {
                        Some(k) => a.values.push(Activity::Known(k)),
                        None => {
                            return Err(XmlError::invalid(
                                c,
                                "element",
                                name,
                                "an RFC 4480 §3.2 activity",
                            ));
                        }
                    },
                }
            } else {
                a.values.push(Activity::Extension(c.clone()));
            }
        }
        Ok(a)
    }

    /// Writes `<rpid:activities>`.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::RPID, "activities");
        self.period.write(&mut e);
        for n in &self.notes {
            e.children
                .push(Node::Element(n.to_element(ns::RPID, "note")));
        }
        for v in &self.values {
            e.children.push(Node::Element(match v {
                Activity::Known(k) => Element::new(ns::RPID, k.as_str()),
                Activity::Unknown => Element::new(ns::RPID, "unknown"),
                Activity::Other(t) => t.to_element(ns::RPID, "other"),
                Activity::Extension(x) => x.clone(),
            }));
        }
        e
    }
}

/// One value inside `<rpid:mood>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoodValue {
    /// A value of RFC 4480 §3.4.
    Known(MoodKind),
    /// `<unknown/>`.
    Unknown,
    /// `<other>text</other>`.
    Other(Text),
    /// An element of another namespace.
    Extension(Element),
}

/// `<rpid:mood>` (RFC 4480 §3.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mood {
    /// `id`, `from`, `until`.
    pub period: Period,
    /// `<rpid:note>`s.
    pub notes: Vec<Text>,
    /// The moods.
    pub values: Vec<MoodValue>,
}

impl Mood {
    /// Reads `<rpid:mood>`.
    pub fn from_element(e: &Element) -> Result<Mood, XmlError> {
        let mut m = Mood {
            period: Period::read(e),
            ..Mood::default()
        };
        for c in e.elements() {
            if c.namespace == ns::RPID {
                match c.name.as_str() {
                    "note" => m.notes.push(Text::from_element(c)),
                    "unknown" => m.values.push(MoodValue::Unknown),
                    "other" => m.values.push(MoodValue::Other(Text::from_element(c))),
                    name => match MoodKind::from_name(name) {
                        Some(k) => m.values.push(MoodValue::Known(k)),
                        None => {
                            return Err(XmlError::invalid(
                                c,
                                "element",
                                name,
                                "an RFC 4480 §3.4 mood",
                            ));
                        }
                    },
                }
            } else {
                m.values.push(MoodValue::Extension(c.clone()));
            }
        }
        Ok(m)
    }

    /// Writes `<rpid:mood>`.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::RPID, "mood");
        self.period.write(&mut e);
        for n in &self.notes {
            e.children
                .push(Node::Element(n.to_element(ns::RPID, "note")));
        }
        for v in &self.values {
            e.children.push(Node::Element(match v {
                MoodValue::Known(k) => Element::new(ns::RPID, k.as_str()),
                MoodValue::Unknown => Element::new(ns::RPID, "unknown"),
                MoodValue::Other(t) => t.to_element(ns::RPID, "other"),
                MoodValue::Extension(x) => x.clone(),
            }));
        }
        e
    }
}

/// One value inside `<rpid:place-type>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceValue {
    /// An RFC 4589 location type (`<lt:residence/>`), by local name.
    LocationType(String),
    /// `<other>text</other>`.
    Other(Text),
    /// An element of another namespace.
    Extension(Element),
}

/// `<rpid:place-type>` (RFC 4480 §3.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaceType {
    /// `id`, `from`, `until`.
    pub period: Period,
    /// `<rpid:note>`s.
    pub notes: Vec<Text>,
    /// The place types.
    pub values: Vec<PlaceValue>,
}

impl PlaceType {
    /// Reads `<rpid:place-type>`.
    pub fn from_element(e: &Element) -> Result<PlaceType, XmlError> {
        let mut p = PlaceType {
            period: Period::read(e),
            ..PlaceType::default()
        };
        for c in e.elements() {
            match (c.namespace.as_str(), c.name.as_str()) {
                (ns::RPID, "note") => p.notes.push(Text::from_element(c)),
                (ns::RPID, "other") => p.values.push(PlaceValue::Other(Text::from_element(c))),
                (ns::RPID, name) => {
                    return Err(XmlError::invalid(
                        c,
                        "element",
                        name,
                        "note, other, or a location type (RFC 4589)",
                    ));
                }
                (ns::LOCATION_TYPE, name) => {
                    p.values.push(PlaceValue::LocationType(name.to_owned()));
                }
                _ => p.values.push(PlaceValue::Extension(c.clone())),
            }
        }
        Ok(p)
    }

    /// Writes `<rpid:place-type>`.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::RPID, "place-type");
        self.period.write(&mut e);
        for n in &self.notes {
            e.children
                .push(Node::Element(n.to_element(ns::RPID, "note")));
        }
        for v in &self.values {
            e.children.push(Node::Element(match v {
                PlaceValue::LocationType(t) => Element::new(ns::LOCATION_TYPE, t),
                PlaceValue::Other(t) => t.to_element(ns::RPID, "other"),
                PlaceValue::Extension(x) => x.clone(),
            }));
        }
        e
    }
}

/// `active` or `idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputState {
    /// `active`.
    Active,
    /// `idle`.
    Idle,
}

/// `<rpid:user-input>` (RFC 4480 §3.13): whether a person or device has seen input lately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInput {
    /// `id`, `from`, `until`.
    pub period: Period,
    /// `active` or `idle`.
    pub state: InputState,
    /// `idle-threshold` in seconds.
    pub idle_threshold: Option<u32>,
    /// `last-input` (kept as written).
    pub last_input: Option<String>,
}

impl UserInput {
    /// A bare `active`/`idle` value.
    pub fn new(state: InputState) -> UserInput {
        UserInput {
            period: Period::default(),
            state,
            idle_threshold: None,
            last_input: None,
        }
    }

    /// Reads `<rpid:user-input>`.
    pub fn from_element(e: &Element) -> Result<UserInput, XmlError> {
        let text = e.text();
        let state = match text.trim() {
            "active" => InputState::Active,
            "idle" => InputState::Idle,
            other => return Err(XmlError::invalid(e, "text", other, "active or idle")),
        };
        Ok(UserInput {
            period: Period::read(e),
            state,
            idle_threshold: opt_u32(e, "idle-threshold")?,
            last_input: e.attr("last-input").map(str::to_owned),
        })
    }

    /// Writes `<rpid:user-input>`.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::RPID, "user-input");
        self.period.write(&mut e);
        if let Some(t) = self.idle_threshold {
            e.set_attr("idle-threshold", t.to_string());
        }
        if let Some(l) = &self.last_input {
            e.set_attr("last-input", l.clone());
        }
        e.with_text(match self.state {
            InputState::Active => "active",
            InputState::Idle => "idle",
        })
    }
}
