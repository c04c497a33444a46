//! Dialog information (RFC 4235 `dialog` event package, `application/dialog-info+xml`):
//! the INVITE-initiated dialogs of a user, written by the dialog notifier (busy lamps) and
//! read back (tests, clients).
//!
//! Modelled: the document (`version`, `state`, `entity`), each `<dialog>` with its
//! identifiers, `direction`, `<state>` (with `event` and `code`), `<duration>`, and the
//! `<local>` / `<remote>` participants (`<identity>` with `display`, `<target>` with its
//! `<param>`s). Other children (`<replaces>`, `<referred-by>`, `<route-set>`,
//! `<session-description>`, `<cseq>`, extensions) are kept as [`Element`] trees and written
//! back. Not done: RFC 4235 §3.3 filters in SUBSCRIBE bodies, the RFC 7463 shared-line
//! extensions.

use crate::{Element, Limits, Node, XmlError, opt_u32, required};

/// The media type.
pub const CONTENT_TYPE: &str = "application/dialog-info+xml";

/// The namespace (RFC 4235 §4.1).
pub const NAMESPACE: &str = "urn:ietf:params:xml:ns:dialog-info";

/// `state` of the document: all dialogs, or only the ones that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentState {
    /// `full`.
    Full,
    /// `partial`.
    Partial,
}

/// `direction` of a dialog: whether the subscribed user sent the INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `initiator`: the user called.
    Initiator,
    /// `recipient`: the user was called.
    Recipient,
}

impl Direction {
    /// The token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Initiator => "initiator",
            Direction::Recipient => "recipient",
        }
    }
}

/// The dialog state machine's state (RFC 4235 §3.7.1, Figure 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DialogState {
    /// `trying`: INVITE sent or received, no response with a To tag yet.
    Trying,
    /// `proceeding`: a provisional response without a To tag.
    Proceeding,
    /// `early`: a provisional response with a To tag (an early dialog).
    Early,
    /// `confirmed`: a 2xx (the call is up).
    Confirmed,
    /// `terminated`.
    Terminated,
}

impl DialogState {
    /// The token.
    pub const fn as_str(self) -> &'static str {
        match self {
            DialogState::Trying => "trying",
            DialogState::Proceeding => "proceeding",
            DialogState::Early => "early",
            DialogState::Confirmed => "confirmed",
            DialogState::Terminated => "terminated",
        }
    }

    fn parse(s: &str) -> Option<DialogState> {
        Some(match s {
            "trying" => DialogState::Trying,
            "proceeding" => DialogState::Proceeding,
            "early" => DialogState::Early,
            "confirmed" => DialogState::Confirmed,
            "terminated" => DialogState::Terminated,
            _ => return None,
        })
    }
}

/// Why a dialog reached a state (`event` attribute of `<state>`, RFC 4235 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateEvent {
    /// `cancelled`: the INVITE was cancelled.
    Cancelled,
    /// `rejected`: a final error response.
    Rejected,
    /// `replaced`: an INVITE with Replaces took it over.
    Replaced,
    /// `local-bye`: the subscribed user hung up.
    LocalBye,
    /// `remote-bye`: the other party hung up.
    RemoteBye,
    /// `error`: a request inside it failed fatally.
    Error,
    /// `timeout`: no response.
    Timeout,
}

impl StateEvent {
    /// Every value, in the RFC's order.
    pub const ALL: [StateEvent; 7] = [
        StateEvent::Cancelled,
        StateEvent::Rejected,
        StateEvent::Replaced,
        StateEvent::LocalBye,
        StateEvent::RemoteBye,
        StateEvent::Error,
        StateEvent::Timeout,
    ];

    /// The token.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateEvent::Cancelled => "cancelled",
            StateEvent::Rejected => "rejected",
            StateEvent::Replaced => "replaced",
            StateEvent::LocalBye => "local-bye",
            StateEvent::RemoteBye => "remote-bye",
            StateEvent::Error => "error",
            StateEvent::Timeout => "timeout",
        }
    }
}

/// `<identity>`: a participant's address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `display`.
    pub display: Option<String>,
    /// The URI.
    pub uri: String,
}

/// `<target>`: the participant's remote target (Contact) and its feature parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `uri`.
    pub uri: String,
    /// `<param pname pval>`, in order.
    pub params: Vec<(String, String)>,
}

/// `<local>` or `<remote>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Participant {
    /// `<identity>`.
    pub identity: Option<Identity>,
    /// `<target>`.
    pub target: Option<Target>,
    /// Other children (`<session-description>`, `<cseq>`, extensions), kept.
    pub extensions: Vec<Element>,
}

/// One `<dialog>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// `id`: unique among the dialogs of the entity within a subscription.
    pub id: String,
    /// `call-id`.
    pub call_id: Option<String>,
    /// `local-tag` (the subscribed user's tag).
    pub local_tag: Option<String>,
    /// `remote-tag`.
    pub remote_tag: Option<String>,
    /// `direction`.
    pub direction: Option<Direction>,
    /// `<state>`.
    pub state: DialogState,
    /// `event` of `<state>`.
    pub event: Option<StateEvent>,
    /// `code` of `<state>` (the response code that caused the transition).
    pub code: Option<u16>,
    /// `<duration>` in seconds.
    pub duration: Option<u32>,
    /// `<local>`.
    pub local: Option<Participant>,
    /// `<remote>`.
    pub remote: Option<Participant>,
    /// Other children (`<replaces>`, `<referred-by>`, `<route-set>`, extensions), kept.
    pub extensions: Vec<Element>,
}

impl Dialog {
    /// A dialog with only an id and a state.
    pub fn new(id: impl Into<String>, state: DialogState) -> Dialog {
        Dialog {
            id: id.into(),
            call_id: None,
            local_tag: None,
            remote_tag: None,
            direction: None,
            state,
            event: None,
            code: None,
            duration: None,
            local: None,
            remote: None,
            extensions: Vec::new(),
        }
    }
}

/// A `<dialog-info>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfo {
    /// `version`, incremented per NOTIFY of one subscription.
    pub version: u32,
    /// `state`.
    pub state: DocumentState,
    /// `entity`: the subscribed user's URI.
    pub entity: String,
    /// The dialogs.
    pub dialogs: Vec<Dialog>,
}

fn participant(e: &Element) -> Result<Participant, XmlError> {
    let mut p = Participant::default();
    for c in e.elements() {
        if c.is(NAMESPACE, "identity") && p.identity.is_none() {
            let uri = c.text().trim().to_owned();
            if uri.is_empty() {
                return Err(XmlError::invalid(c, "identity", "", "a URI"));
            }
            p.identity = Some(Identity {
                display: c.attr("display").map(str::to_owned),
                uri,
            });
        } else if c.is(NAMESPACE, "target") && p.target.is_none() {
            let mut t = Target {
                uri: required(c, "uri")?.to_owned(),
                params: Vec::new(),
            };
            for param in c.elements().filter(|x| x.is(NAMESPACE, "param")) {
                t.params.push((
                    required(param, "pname")?.to_owned(),
                    required(param, "pval")?.to_owned(),
                ));
            }
            p.target = Some(t);
        } else {
            p.extensions.push(c.clone());
        }
    }
    Ok(p)
}

fn dialog(e: &Element) -> Result<Dialog, XmlError> {
    let state_e = e
        .child(NAMESPACE, "state")
        .ok_or(XmlError::MissingElement {
            parent: "dialog".to_owned(),
            child: "state",
            line: e.line,
        })?;
    let text = state_e.text();
    let state = DialogState::parse(text.trim()).ok_or_else(|| {
        XmlError::invalid(
            state_e,
            "state",
            text.trim(),
            "trying, proceeding, early, confirmed or terminated",
        )
    })?;
    let event = match state_e.attr("event") {
        None => None,
        Some(v) => Some(
            StateEvent::ALL
                .into_iter()
                .find(|x| x.as_str() == v.trim())
                .ok_or_else(|| {
                    XmlError::invalid(
                        state_e,
                        "event",
                        v,
                        "cancelled, rejected, replaced, local-bye, remote-bye, error or timeout",
                    )
                })?,
        ),
    };
    let code = match opt_u32(state_e, "code")? {
        None => None,
        Some(c) if (100..700).contains(&c) => u16::try_from(c).ok(),
        Some(c) => {
            return Err(XmlError::invalid(
                state_e,
                "code",
                &c.to_string(),
                "a SIP response code (100-699)",
            ));
        }
    };
    let direction = match e.attr("direction") {
        None => None,
        Some("initiator") => Some(Direction::Initiator),
        Some("recipient") => Some(Direction::Recipient),
        Some(v) => {
            return Err(XmlError::invalid(
                e,
                "direction",
                v,
                "initiator or recipient",
            ));
        }
    };
    let mut d = Dialog {
        id: required(e, "id")?.to_owned(),
        call_id: e.attr("call-id").map(str::to_owned),
        local_tag: e.attr("local-tag").map(str::to_owned),
        remote_tag: e.attr("remote-tag").map(str::to_owned),
        direction,
        state,
        event,
        code,
        duration: None,
        local: None,
        remote: None,
        extensions: Vec::new(),
    };
    let mut seen_state = false;
    for c in e.elements() {
        if c.is(NAMESPACE, "state") && !seen_state {
            seen_state = true;
        } else if c.is(NAMESPACE, "duration") && d.duration.is_none() {
            let t = c.text();
            d.duration =
                Some(t.trim().parse().map_err(|_| {
                    XmlError::invalid(c, "duration", t.trim(), "an unsigned integer")
                })?);
        } else if c.is(NAMESPACE, "local") && d.local.is_none() {
            d.local = Some(participant(c)?);
        } else if c.is(NAMESPACE, "remote") && d.remote.is_none() {
            d.remote = Some(participant(c)?);
        } else {
            d.extensions.push(c.clone());
        }
    }
    Ok(d)
}

fn participant_element(name: &str, p: &Participant) -> Element {
    let mut e = Element::new(NAMESPACE, name);
    if let Some(i) = &p.identity {
        let mut ie = Element::new(NAMESPACE, "identity");
        if let Some(d) = &i.display {
            ie.set_attr("display", d.clone());
        }
        e.children.push(Node::Element(ie.with_text(i.uri.clone())));
    }
    if let Some(t) = &p.target {
        let mut te = Element::new(NAMESPACE, "target").with_attr("uri", t.uri.clone());
        for (n, v) in &t.params {
            te.children.push(Node::Element(
                Element::new(NAMESPACE, "param")
                    .with_attr("pname", n.clone())
                    .with_attr("pval", v.clone()),
            ));
        }
        e.children.push(Node::Element(te));
    }
    for x in &p.extensions {
        e.children.push(Node::Element(x.clone()));
    }
    e
}

impl DialogInfo {
    /// An empty full-state document (no dialogs: what a watcher sees of an idle user).
    pub fn new(entity: impl Into<String>, version: u32) -> DialogInfo {
        DialogInfo {
            version,
            state: DocumentState::Full,
            entity: entity.into(),
            dialogs: Vec::new(),
        }
    }

    /// Reads a document.
    ///
    /// # Errors
    /// [`XmlError`] naming the element and line: wrong root, a missing `version`, `state`,
    /// `entity`, dialog `id` or `<state>`, or a value outside the RFC 4235 schema.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<DialogInfo, XmlError> {
        let e = crate::root(body, limits, NAMESPACE, "dialog-info", "dialog-info")?;
        let version = opt_u32(&e, "version")?
            .ok_or_else(|| XmlError::invalid(&e, "version", "", "an unsigned integer"))?;
        let state = match required(&e, "state")? {
            "full" => DocumentState::Full,
            "partial" => DocumentState::Partial,
            v => return Err(XmlError::invalid(&e, "state", v, "full or partial")),
        };
        let entity = required(&e, "entity")?.to_owned();
        let dialogs = e
            .elements()
            .filter(|c| c.is(NAMESPACE, "dialog"))
            .map(dialog)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DialogInfo {
            version,
            state,
            entity,
            dialogs,
        })
    }

    /// The document as an element tree.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(NAMESPACE, "dialog-info")
            .with_attr("version", self.version.to_string())
            .with_attr(
                "state",
                match self.state {
                    DocumentState::Full => "full",
                    DocumentState::Partial => "partial",
                },
            )
            .with_attr("entity", self.entity.clone());
        for d in &self.dialogs {
            let mut de = Element::new(NAMESPACE, "dialog").with_attr("id", d.id.clone());
            if let Some(v) = &d.call_id {
                de.set_attr("call-id", v.clone());
            }
            if let Some(v) = &d.local_tag {
                de.set_attr("local-tag", v.clone());
            }
            if let Some(v) = &d.remote_tag {
                de.set_attr("remote-tag", v.clone());
            }
            if let Some(v) = d.direction {
                de.set_attr("direction", v.as_str());
            }
            let mut se = Element::new(NAMESPACE, "state");
            if let Some(ev) = d.event {
                se.set_attr("event", ev.as_str());
            }
            if let Some(c) = d.code {
                se.set_attr("code", c.to_string());
            }
            de.children
                .push(Node::Element(se.with_text(d.state.as_str())));
            if let Some(s) = d.duration {
                de.children.push(Node::Element(
                    Element::new(NAMESPACE, "duration").with_text(s.to_string()),
                ));
            }
            if let Some(p) = &d.local {
                de.children
                    .push(Node::Element(participant_element("local", p)));
            }
            if let Some(p) = &d.remote {
                de.children
                    .push(Node::Element(participant_element("remote", p)));
            }
            for x in &d.extensions {
                de.children.push(Node::Element(x.clone()));
            }
            e.children.push(Node::Element(de));
        }
        e
    }

    /// The document as bytes (UTF-8, with the XML declaration).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_element().to_document()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_state_is_refused_with_the_value() {
        let body = br#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1"
            state="full" entity="sip:a@example.com"><dialog id="x"><state>ringing</state>
            </dialog></dialog-info>"#;
        let e = DialogInfo::parse(body, &Limits::DOCUMENT).unwrap_err();
        assert!(e.to_string().contains("ringing"), "{e}");
    }

    #[test]
    fn a_dialog_without_state_is_refused() {
        let body = br#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1"
            state="full" entity="sip:a@example.com"><dialog id="x"/></dialog-info>"#;
        let e = DialogInfo::parse(body, &Limits::DOCUMENT).unwrap_err();
        assert!(e.to_string().contains("state"), "{e}");
    }
}
