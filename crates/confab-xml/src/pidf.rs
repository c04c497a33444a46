//! PIDF (RFC 3863) with the presence data model (RFC 4479) and RPID (RFC 4480).
//!
//! ```text
//! <presence entity="pres:someone@example.com">      Presence
//!   <tuple id="..">                                  Tuple (a service, RFC 4479 §3.1)
//!     <status><basic>open</basic>...</status>        Status
//!     <dm:deviceID>..</dm:deviceID>                  the device the service runs on
//!     <rpid:user-input>idle</rpid:user-input>
//!     ...extensions...
//!     <contact priority="0.8">sip:..</contact>
//!     <note>..</note>* <timestamp>..</timestamp>
//!   </tuple>*
//!   <note>..</note>*
//!   <dm:person id=".."> rpid:activities, mood, place-type, user-input, ..., dm:note*,
//!                       dm:timestamp </dm:person>*
//!   <dm:device id=".."> ..., dm:deviceID, dm:note*, dm:timestamp </dm:device>*
//!   ...extensions...
//! </presence>
//! ```
//!
//! Checked when reading: the root is `{urn:ietf:params:xml:ns:pidf}presence` with an
//! `entity`; every tuple has an `id` (unique) and a `status`; `basic` is `open` or `closed`;
//! `contact priority` is a decimal from 0 to 1; timestamps are date-times; persons and
//! devices have unique `id`s. Unknown attributes on the typed elements are not kept;
//! unknown child elements are (as `extensions`).

use crate::rpid::{Activities, Mood, PlaceType, UserInput};
use crate::{DateTime, Element, Limits, Node, Text, XmlError, ns, required};

/// `open` or `closed` (RFC 3863 §4.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Basic {
    /// `open`: the service is willing to communicate.
    Open,
    /// `closed`.
    Closed,
}

impl Basic {
    /// `open` / `closed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Basic::Open => "open",
            Basic::Closed => "closed",
        }
    }
}

/// `<status>` of a tuple.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `<basic>`, if present.
    pub basic: Option<Basic>,
    /// Other status elements (e.g. `im:im`), kept as written.
    pub extensions: Vec<Element>,
}

/// `<contact>` of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The URI.
    pub uri: String,
    /// `priority`, a decimal 0..=1 as written.
    pub priority: Option<String>,
}

/// A `<tuple>`: one service of the presentity (RFC 4479 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    /// `id` (unique in the document).
    pub id: String,
    /// `<status>`.
    pub status: Status,
    /// `<dm:deviceID>`: the device the service runs on.
    pub device_id: Option<String>,
    /// `<rpid:user-input>` on the service.
    pub user_input: Option<UserInput>,
    /// Other child elements (RPID `class`, `relationship`, caps, vendor), kept as written.
    pub extensions: Vec<Element>,
    /// `<contact>`.
    pub contact: Option<Contact>,
    /// `<note>`s.
    pub notes: Vec<Text>,
    /// `<timestamp>`.
    pub timestamp: Option<DateTime>,
}

impl Tuple {
    /// A tuple with `id` and a basic status, nothing else.
    pub fn new(id: impl Into<String>, basic: Basic) -> Tuple {
        Tuple {
            id: id.into(),
            status: Status {
                basic: Some(basic),
                extensions: Vec::new(),
            },
            device_id: None,
            user_input: None,
            extensions: Vec::new(),
            contact: None,
            notes: Vec::new(),
            timestamp: None,
        }
    }
}

/// A `<dm:person>` (RFC 4479 §3.2): the human.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// `id`.
    pub id: String,
    /// `<rpid:activities>`.
    pub activities: Option<Activities>,
    /// `<rpid:mood>`.
    pub mood: Option<Mood>,
    /// `<rpid:place-type>`.
    pub place_type: Option<PlaceType>,
    /// `<rpid:user-input>`.
    pub user_input: Option<UserInput>,
    /// Other child elements (other RPID elements, cipid, vendor), kept as written.
    pub extensions: Vec<Element>,
    /// `<dm:note>`s.
    pub notes: Vec<Text>,
    /// `<dm:timestamp>`.
    pub timestamp: Option<DateTime>,
}

/// A `<dm:device>` (RFC 4479 §3.3): a piece of hardware services run on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    /// `id`.
    pub id: String,
    /// `<rpid:user-input>`.
    pub user_input: Option<UserInput>,
    /// Other child elements, kept as written.
    pub extensions: Vec<Element>,
    /// `<dm:deviceID>`.
    pub device_id: Option<String>,
    /// `<dm:note>`s.
    pub notes: Vec<Text>,
    /// `<dm:timestamp>`.
    pub timestamp: Option<DateTime>,
}

/// A PIDF document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// `entity` (a `pres:` or `sip:` URI).
    pub entity: String,
    /// `<tuple>`s in order.
    pub tuples: Vec<Tuple>,
    /// Document-level `<note>`s.
    pub notes: Vec<Text>,
    /// `<dm:person>`s.
    pub persons: Vec<Person>,
    /// `<dm:device>`s.
    pub devices: Vec<Device>,
    /// Other top-level elements, kept as written.
    pub extensions: Vec<Element>,
}

/// The media type.
pub const CONTENT_TYPE: &str = "application/pidf+xml";

impl Presence {
    /// An empty document for `entity`.
    pub fn new(entity: impl Into<String>) -> Presence {
        Presence {
            entity: entity.into(),
            ..Presence::default()
        }
    }

    /// Reads a PIDF body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Presence, XmlError> {
        let root = crate::root(
            body,
            limits,
            ns::PIDF,
            "presence",
            "{urn:ietf:params:xml:ns:pidf}presence",
        )?;
        Presence::from_element(&root)
    }

    /// Reads a `<presence>` element.
    pub fn from_element(e: &Element) -> Result<Presence, XmlError> {
        let mut p = Presence::new(required(e, "entity")?);
        for c in e.elements() {
            match (c.namespace.as_str(), c.name.as_str()) {
                (ns::PIDF, "tuple") => {
                    let t = read_tuple(c)?;
                    if p.tuples.iter().any(|o| o.id == t.id) {
                        return Err(dup(c, &t.id));
                    }
                    p.tuples.push(t);
                }
                (ns::PIDF, "note") => p.notes.push(Text::from_element(c)),
                (ns::DATA_MODEL, "person") => {
                    let x = read_person(c)?;
                    if p.persons.iter().any(|o| o.id == x.id) {
                        return Err(dup(c, &x.id));
                    }
                    p.persons.push(x);
                }
                (ns::DATA_MODEL, "device") => {
                    let x = read_device(c)?;
                    if p.devices.iter().any(|o| o.id == x.id) {
                        return Err(dup(c, &x.id));
                    }
                    p.devices.push(x);
                }
                _ => p.extensions.push(c.clone()),
            }
        }
        Ok(p)
    }

    /// Builds the `<presence>` element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::PIDF, "presence").with_attr("entity", self.entity.clone());
        let push = |e: &mut Element, c: Element| e.children.push(Node::Element(c));
        for t in &self.tuples {
            push(&mut e, write_tuple(t));
        }
        for n in &self.notes {
            push(&mut e, n.to_element(ns::PIDF, "note"));
        }
        for p in &self.persons {
            push(&mut e, write_person(p));
        }
        for d in &self.devices {
            push(&mut e, write_device(d));
        }
        for x in &self.extensions {
            push(&mut e, x.clone());
        }
        e
    }

    /// Writes the document (UTF-8, with an XML declaration).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_element().to_document()
    }

    /// The tuple with `id`.
    pub fn tuple(&self, id: &str) -> Option<&Tuple> {
        self.tuples.iter().find(|t| t.id == id)
    }
}

fn dup(e: &Element, id: &str) -> XmlError {
    XmlError::Duplicate {
        element: e.name.clone(),
        id: id.to_owned(),
        line: e.line,
    }
}

fn read_timestamp(e: &Element) -> Result<DateTime, XmlError> {
    DateTime::parse(&e.text()).map_err(|_| {
        XmlError::invalid(
            e,
            "text",
            &e.text(),
            "a date-time such as 2005-10-27T16:49:29Z",
        )
    })
}

fn write_timestamp(namespace: &str, t: &DateTime) -> Element {
    Element::new(namespace, "timestamp").with_text(t.as_str())
}

fn read_tuple(e: &Element) -> Result<Tuple, XmlError> {
    let id = required(e, "id")?;
    let mut status = None;
    let mut t = Tuple::new(id, Basic::Open);
    for c in e.elements() {
        match (c.namespace.as_str(), c.name.as_str()) {
            (ns::PIDF, "status") => status = Some(read_status(c)?),
            (ns::PIDF, "contact") => {
                let priority = c.attr("priority").map(str::to_owned);
                if let Some(p) = priority.as_ref().filter(|p| !valid_priority(p)) {
                    return Err(XmlError::invalid(c, "priority", p, "a decimal from 0 to 1"));
                }
                t.contact = Some(Contact {
                    uri: c.text().trim().to_owned(),
                    priority,
                });
            }
            (ns::PIDF, "note") => t.notes.push(Text::from_element(c)),
            (ns::PIDF, "timestamp") => t.timestamp = Some(read_timestamp(c)?),
            (ns::DATA_MODEL, "deviceID") => t.device_id = Some(c.text().trim().to_owned()),
            (ns::RPID, "user-input") => t.user_input = Some(UserInput::from_element(c)?),
            _ => t.extensions.push(c.clone()),
        }
    }
    t.status = status.ok_or_else(|| XmlError::MissingElement {
        parent: "tuple".to_owned(),
        child: "status",
        line: e.line,
    })?;
    Ok(t)
}

fn valid_priority(p: &str) -> bool {
    let p = p.trim();
    !p.is_empty()
        && p.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && p.bytes().filter(|&b| b == b'.').count() <= 1
        && p.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v))
}

fn read_status(e: &Element) -> Result<Status, XmlError> {
    let mut s = Status::default();
    for c in e.elements() {
        if c.is(ns::PIDF, "basic") {
            s.basic = Some(match c.text().trim() {
                "open" => Basic::Open,
                "closed" => Basic::Closed,
                other => return Err(XmlError::invalid(c, "text", other, "open or closed")),
            });
        } else {
            s.extensions.push(c.clone());
        }
    }
    Ok(s)
}

fn write_tuple(t: &Tuple) -> Element {
    let mut e = Element::new(ns::PIDF, "tuple").with_attr("id", t.id.clone());
    let mut status = Element::new(ns::PIDF, "status");
    if let Some(b) = t.status.basic {
        status = status.with_child(Element::new(ns::PIDF, "basic").with_text(b.as_str()));
    }
    for x in &t.status.extensions {
        status = status.with_child(x.clone());
    }
    e = e.with_child(status);
    if let Some(d) = &t.device_id {
        e = e.with_child(Element::new(ns::DATA_MODEL, "deviceID").with_text(d.clone()));
    }
    if let Some(u) = &t.user_input {
        e = e.with_child(u.to_element());
    }
    for x in &t.extensions {
        e = e.with_child(x.clone());
    }
    if let Some(c) = &t.contact {
        let mut ce = Element::new(ns::PIDF, "contact");
        if let Some(p) = &c.priority {
            ce.set_attr("priority", p.clone());
        }
        e = e.with_child(ce.with_text(c.uri.clone()));
    }
    for n in &t.notes {
        e = e.with_child(n.to_element(ns::PIDF, "note"));
    }
    if let Some(ts) = &t.timestamp {
        e = e.with_child(write_timestamp(ns::PIDF, ts));
    }
    e
}

fn read_person(e: &Element) -> Result<Person, XmlError> {
    let mut p = Person {
        id: required(e, "id")?.to_owned(),
        ..Person::default()
    };
    for c in e.elements() {
        match (c.namespace.as_str(), c.name.as_str()) {
            (ns::RPID, "activities") => p.activities = Some(Activities::from_element(c)?),
            (ns::RPID, "mood") => p.mood = Some(Mood::from_element(c)?),
            (ns::RPID, "place-type") => p.place_type = Some(PlaceType::from_element(c)?),
            (ns::RPID, "user-input") => p.user_input = Some(UserInput::from_element(c)?),
            (ns::DATA_MODEL, "note") => p.notes.push(Text::from_element(c)),
            (ns::DATA_MODEL, "timestamp") => p.timestamp = Some(read_timestamp(c)?),
            _ => p.extensions.push(c.clone()),
        }
    }
    Ok(p)
}

fn write_person(p: &Person) -> Element {
    let mut e = Element::new(ns::DATA_MODEL, "person").with_attr("id", p.id.clone());
    if let Some(a) = &p.activities {
        e = e.with_child(a.to_element());
    }
    if let Some(m) = &p.mood {
        e = e.with_child(m.to_element());
    }
    if let Some(pt) = &p.place_type {
        e = e.with_child(pt.to_element());
    }
    if let Some(u) = &p.user_input {
        e = e.with_child(u.to_element());
    }
    for x in &p.extensions {
        e = e.with_child(x.clone());
    }
    for n in &p.notes {
        e = e.with_child(n.to_element(ns::DATA_MODEL, "note"));
    }
    if let Some(ts) = &p.timestamp {
        e = e.with_child(write_timestamp(ns::DATA_MODEL, ts));
    }
    e
}

fn read_device(e: &Element) -> Result<Device, XmlError> {
    let mut d = Device {
        id: required(e, "id")?.to_owned(),
        ..Device::default()
    };
    for c in e.elements() {
        match (c.namespace.as_str(), c.name.as_str()) {
            (ns::RPID, "user-input") => d.user_input = Some(UserInput::from_element(c)?),
            (ns::DATA_MODEL, "deviceID") => d.device_id = Some(c.text().trim().to_owned()),
            (ns::DATA_MODEL, "note") => d.notes.push(Text::from_element(c)),
            (ns::DATA_MODEL, "timestamp") => d.timestamp = Some(read_timestamp(c)?),
            _ => d.extensions.push(c.clone()),
        }
    }
    Ok(d)
}

fn write_device(d: &Device) -> Element {
    let mut e = Element::new(ns::DATA_MODEL, "device").with_attr("id", d.id.clone());
    if let Some(u) = &d.user_input {
        e = e.with_child(u.to_element());
    }
    for x in &d.extensions {
        e = e.with_child(x.clone());
    }
    if let Some(id) = &d.device_id {
        e = e.with_child(Element::new(ns::DATA_MODEL, "deviceID").with_text(id.clone()));
    }
    for n in &d.notes {
        e = e.with_child(n.to_element(ns::DATA_MODEL, "note"));
    }
    if let Some(ts) = &d.timestamp {
        e = e.with_child(write_timestamp(ns::DATA_MODEL, ts));
    }
    e
}
