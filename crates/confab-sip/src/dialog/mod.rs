//! SIP dialogs (RFC 3261 §12), for INVITE sessions and for SUBSCRIBE/NOTIFY subscriptions
//! (RFC 6665), sans-IO.
//!
//! **What it does:** keeps the dialog state of §12.1 — dialog id (Call-ID, local tag, remote
//! tag), local and remote CSeq, local and remote URI, remote target, route set, secure flag,
//! early/confirmed/terminated — creates it from a 2xx or a 1xx with a To tag (UAC, one
//! early dialog per forked branch), from a request (UAS) or from a NOTIFY (RFC 6665
//! §4.1.2.4), refreshes the remote target (Contact of a 2xx, re-INVITE, UPDATE, SUBSCRIBE,
//! NOTIFY), enforces the remote CSeq rule (a lower CSeq gets 500), builds in-dialog
//! requests (loose routing, with the strict-route fallback of §12.2.1.1), tracks the
//! dialog's usages (the INVITE session and any number of subscriptions keyed by
//! Event package and `id`, RFC 6665 §4.5.2 / RFC 5057) and ends the dialog on BYE, on a
//! 481 or 408 to an in-dialog request, when an INVITE fails while the dialog is early, or
//! when its last usage ends.
//!
//! **What it does not do:** send anything or run transactions (the UA core does),
//! offer/answer, session timers, PRACK (RFC 3262), subscription state machines (the
//! presence issue builds them on [`Usage::Subscription`]).
//!
//! # States
//!
//! ```text
//!          1xx with To tag (UAC) /       2xx (UAC) / 2xx sent (UAS) /
//!          request answered 1xx (UAS)    NOTIFY (subscriber, RFC 6665)
//!   (none) ------------------------> Early ----------------------> Confirmed
//!     |                               |  non-2xx final to the         |
//!     |  2xx / NOTIFY                 |  creating INVITE, 481, 408    | BYE, 481, 408,
//!     +-------------------------------+-------------------------------+ last usage ends
//!                 (Confirmed)         v                               v
//!                                 Terminated <------------------------+
//! ```

use std::collections::HashMap;
use std::fmt;

use crate::headers::NameAddr;
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::uri::Uri;
use crate::{BuildError, RequestBuilder};

/// Dialog identifier (§12): Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: Box<str>,
    /// Our tag (From tag of requests we send).
    pub local_tag: Box<str>,
    /// The peer's tag.
    pub remote_tag: Box<str>,
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};local={};remote={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

/// Dialog state (§12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx (or by NOTIFY for a subscription).
    Confirmed,
    /// Ended; the registry removes it.
    Terminated,
}

/// Which side created the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request that created it.
    Uac,
    /// We received it.
    Uas,
}

/// Something a dialog is used for (RFC 5057): the dialog lives while it has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Usage {
    /// The INVITE session.
    Invite,
    /// A subscription: Event package and `id` parameter (RFC 6665 §4.5.2 allows several
    /// per dialog).
    Subscription {
        /// Event package (`presence`).
        event: Box<str>,
        /// The Event header's `id`, if any.
        id: Option<Box<str>>,
    },
}

/// Why a dialog operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header needed to create or update the dialog is missing or malformed.
    #[error("missing or malformed {0} header")]
    Header(HeaderName),
    /// The response has no To tag, so it cannot create a dialog.
    #[error("response has no To tag")]
    NoToTag,
    /// The request has no From tag.
    #[error("request has no From tag")]
    NoFromTag,
    /// This response status cannot create a dialog (only 101–299 can).
    #[error("status {0} cannot create a dialog")]
    NotDialogCreating(u16),
    /// The message does not belong to this dialog.
    #[error("message does not match the dialog")]
    Mismatch,
    /// The dialog is terminated.
    #[error("dialog terminated")]
    Terminated,
    /// Building an in-dialog request failed.
    #[error("building a request: {0}")]
    Build(#[from] BuildError),
}

/// An in-dialog request the UAS must reject, with the status to answer (§12.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestRejection {
    /// CSeq lower than the remote sequence number: 500 (out of order).
    #[error("CSeq {seq} lower than remote sequence {remote}: 500")]
    OutOfOrder {
        /// The request's CSeq.
        seq: u32,
        /// The dialog's remote sequence number.
        remote: u32,
    },
    /// The dialog has ended (answer 481).
    #[error("dialog terminated: 481")]
    Terminated,
}

impl RequestRejection {
    /// The status code to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            RequestRejection::OutOfOrder { .. } => 500,
            RequestRejection::Terminated => 481,
        }
    }
}

/// One dialog's state (§12.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    role: Role,
    local_seq: Option<u32>,
    remote_seq: Option<u32>,
    local_uri: Box<str>,
    remote_uri: Box<str>,
    remote_target: Box<str>,
    route_set: Vec<Box<str>>,
    secure: bool,
    usages: Vec<Usage>,
}

fn name_addr<'m>(m: &'m Message, h: HeaderName) -> Result<NameAddr<'m>, DialogError> {
    let r = if h == HeaderName::From {
        m.from()
    } else {
        m.to()
    };
    r.and_then(Result::ok).ok_or(DialogError::Header(h))
}

/// `display <uri>` without header parameters (the tag is added when a request is built).
fn addr_without_params(n: &NameAddr<'_>) -> Box<str> {
    match n.display_name {
        Some(d) => format!("{d} <{}>", n.uri_str).into(),
        None => format!("<{}>", n.uri_str).into(),
    }
}

fn contact_target(m: &Message) -> Option<Box<str>> {
    m.contacts()
        .next()
        .and_then(Result::ok)
        .and_then(|c| c.addr().map(|a| Box::<str>::from(a.addr.uri_str)))
}

fn record_route(m: &Message) -> Result<Vec<Box<str>>, DialogError> {
    m.values(HeaderName::RecordRoute)
        .map(|v| {
            std::str::from_utf8(v)
                .map(Box::from)
                .map_err(|_| DialogError::Header(HeaderName::RecordRoute))
        })
        .collect()
}

fn cseq_of(m: &Message) -> Result<crate::headers::CSeq, DialogError> {
    m.cseq()
        .and_then(Result::ok)
        .ok_or(DialogError::Header(HeaderName::CSeq))
}

fn call_id_of(m: &Message) -> Result<&str, DialogError> {
    m.call_id()
        .and_then(Result::ok)
        .ok_or(DialogError::Header(HeaderName::CallId))
}

fn is_sips(m: &Message) -> bool {
    matches!(m.request_uri(), Some(Ok(Uri::Sip(u))) if u.secure)
}

/// Whether a request of this method refreshes the remote target (§12.2, RFC 3311,
/// RFC 6665 §4.1.2.4 and §4.2.1.2).
#[must_use]
pub fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

impl Dialog {
    /// UAC: a dialog from a response to our dialog-creating request (§12.1.2). A 101–199
    /// with a To tag makes an early dialog, a 2xx a confirmed one. The route set is the
    /// response's Record-Route in reverse order; the remote target its Contact.
    ///
    /// # Errors
    /// [`DialogError::NotDialogCreating`], [`DialogError::NoToTag`], or a missing header.
    pub fn uac(request: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let status = response.status().unwrap_or(0);
        let state = match status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            s => return Err(DialogError::NotDialogCreating(s)),
        };
        let from = name_addr(request, HeaderName::From)?;
        let to = name_addr(response, HeaderName::To)?;
        let local_tag = from.tag().ok_or(DialogError::NoFromTag)?;
        let remote_tag = to.tag().ok_or(DialogError::NoToTag)?;
        let mut route_set = record_route(response)?;
        route_set.reverse();
        let method = request.method().cloned().unwrap_or(Method::Invite);
        Ok(Dialog {
            id: DialogId {
                call_id: call_id_of(request)?.into(),
                local_tag: local_tag.into(),
                remote_tag: remote_tag.into(),
            },
            state,
            role: Role::Uac,
            local_seq: Some(cseq_of(request)?.seq),
            remote_seq: None,
            local_uri: addr_without_params(&from),
            remote_uri: addr_without_params(&name_addr(request, HeaderName::To)?),
            remote_target: contact_target(response).unwrap_or_default(),
            route_set,
            secure: is_sips(request),
            usages: vec![usage_of(&method, request)],
        })
    }

    /// UAS: a dialog from a request we answer with a 101–299 carrying `local_tag` in its To
    /// (§12.1.1). The route set is the request's Record-Route in order; the remote target its
    /// Contact. `state` is [`DialogState::Early`] for a provisional answer.
    ///
    /// # Errors
    /// [`DialogError::NoFromTag`] or a missing header.
    pub fn uas(
        request: &Message,
        local_tag: &str,
        state: DialogState,
    ) -> Result<Dialog, DialogError> {
        let from = name_addr(request, HeaderName::From)?;
        let to = name_addr(request, HeaderName::To)?;
        let remote_tag = from.tag().ok_or(DialogError::NoFromTag)?;
        let method = request.method().cloned().unwrap_or(Method::Invite);
        Ok(Dialog {
            id: DialogId {
                call_id: call_id_of(request)?.into(),
                local_tag: local_tag.into(),
                remote_tag: remote_tag.into(),
            },
            state,
            role: Role::Uas,
            local_seq: None,
            remote_seq: Some(cseq_of(request)?.seq),
            local_uri: addr_without_params(&to),
            remote_uri: addr_without_params(&from),
            remote_target: contact_target(request).unwrap_or_default(),
            route_set: record_route(request)?,
            secure: is_sips(request),
            usages: vec![usage_of(&method, request)],
        })
    }

    /// Subscriber: a dialog created by a NOTIFY for our SUBSCRIBE (RFC 6665 §4.1.2.4: the
    /// NOTIFY may arrive before the 2xx, and a forked SUBSCRIBE gets one dialog per
    /// notifier). The NOTIFY's From tag is the remote tag; its Record-Route (in order) the
    /// route set; its Contact the remote target.
    ///
    /// # Errors
    /// [`DialogError::Mismatch`] if the NOTIFY's To tag or Call-ID is not our SUBSCRIBE's,
    /// or a missing header.
    pub fn from_notify(subscribe: &Message, notify: &Message) -> Result<Dialog, DialogError> {
        let sub_from = name_addr(subscribe, HeaderName::From)?;
        let local_tag = sub_from.tag().ok_or(DialogError::NoFromTag)?;
        let n_to = name_addr(notify, HeaderName::To)?;
        let n_from = name_addr(notify, HeaderName::From)?;
        if n_to.tag() != Some(local_tag) || call_id_of(notify)? != call_id_of(subscribe)? {
            return Err(DialogError::Mismatch);
        }
        let remote_tag = n_from.tag().ok_or(DialogError::NoFromTag)?;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id_of(subscribe)?.into(),
                local_tag: local_tag.into(),
                remote_tag: remote_tag.into(),
            },
            state: DialogState::Confirmed,
            role: Role::Uac,
            local_seq: Some(cseq_of(subscribe)?.seq),
            remote_seq: Some(cseq_of(notify)?.seq),
            local_uri: addr_without_params(&sub_from),
            remote_uri: addr_without_params(&name_addr(subscribe, HeaderName::To)?),
            remote_target: contact_target(notify).unwrap_or_default(),
            route_set: record_route(notify)?,
            secure: is_sips(subscribe),
            usages: vec![usage_of(&Method::Subscribe, notify)],
        })
    }

    /// The dialog id.
    #[must_use]
    pub fn id(&self) -> &DialogId {
        &self.id
    }
    /// The state.
    #[must_use]
    pub fn state(&self) -> DialogState {
        self.state
    }
    /// Who created the dialog.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }
    /// Local CSeq (of the last request we sent in it).
    #[must_use]
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }
    /// Remote CSeq (of the last request received in it).
    #[must_use]
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }
    /// The remote target URI (from the latest Contact).
    #[must_use]
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }
    /// The route set, in the order requests will carry it.
    #[must_use]
    pub fn route_set(&self) -> &[Box<str>] {
        &self.route_set
    }
    /// Local URI (`display <uri>` without tag).
    #[must_use]
    pub fn local_uri(&self) -> &str {
        &self.local_uri
    }
    /// Remote URI (`display <uri>` without tag).
    #[must_use]
    pub fn remote_uri(&self) -> &str {
        &self.remote_uri
    }
    /// Whether the dialog is secure (the creating Request-URI was `sips:`).
    #[must_use]
    pub fn secure(&self) -> bool {
        self.secure
    }
    /// Live usages.
    #[must_use]
    pub fn usages(&self) -> &[Usage] {
        &self.usages
    }

    /// Whether `msg` (request or response) carries this dialog's id.
    #[must_use]
    pub fn matches(&self, msg: &Message) -> bool {
        let (Some(Ok(from)), Some(Ok(to)), Some(Ok(cid))) = (msg.from(), msg.to(), msg.call_id())
        else {
            return false;
        };
        // Requests we receive carry our tag in To; responses to our requests in From.
        let (local, remote) = if msg.is_request() {
            (to.tag(), from.tag())
        } else {
            (from.tag(), to.tag())
        };
        cid == &*self.id.call_id
            && local == Some(&*self.id.local_tag)
            && remote == Some(&*self.id.remote_tag)
    }

    fn refresh_target(&mut self, m: &Message) {
        if let Some(t) = contact_target(m) {
            self.remote_target = t;
        }
    }

    /// A further response to the request that created the dialog, or the response to a
    /// request we sent in it (`request_method` is that request's method):
    ///
    /// * 2xx to INVITE on an early dialog confirms it and recomputes the route set
    ///   (§13.2.2.4);
    /// * 2xx to a target refresh request updates the remote target (§12.2.1.2);
    /// * 481 or 408 terminates the dialog (§12.2.1.2);
    /// * a 300–699 to the creating INVITE terminates an early dialog (§13.2.2.3 / §12.3).
    ///
    /// Returns the new state.
    ///
    /// # Errors
    /// [`DialogError::Terminated`], or a malformed Record-Route in a confirming 2xx.
    pub fn handle_response(
        &mut self,
        request_method: &Method,
        response: &Message,
    ) -> Result<DialogState, DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        let status = response.status().unwrap_or(0);
        match status {
            408 | 481 => self.state = DialogState::Terminated,
            200..=299 => {
                if *request_method == Method::Invite && self.state == DialogState::Early {
                    self.state = DialogState::Confirmed;
                    if self.role == Role::Uac {
                        let mut rs = record_route(response)?;
                        rs.reverse();
                        self.route_set = rs;
                    }
                }
                if is_target_refresh(request_method) {
                    self.refresh_target(response);
                }
            }
            101..=199 if self.state == DialogState::Early => {
                self.refresh_target(response);
            }
            300..=699 if *request_method == Method::Invite && self.state == DialogState::Early => {
                self.state = DialogState::Terminated;
            }
            _ => {}
        }
        Ok(self.state)
    }

    /// A request received in this dialog (§12.2.2): checks and advances the remote CSeq
    /// (ACK and CANCEL carry the INVITE's number and are not checked), refreshes the remote
    /// target for target refresh requests, and ends the INVITE usage on BYE.
    ///
    /// # Errors
    /// [`RequestRejection`]: answer with its [`RequestRejection::status`].
    pub fn handle_request(&mut self, request: &Message) -> Result<DialogState, RequestRejection> {
        if self.state == DialogState::Terminated {
            return Err(RequestRejection::Terminated);
        }
        let method = request.method().cloned().unwrap_or(Method::Ack);
        if !matches!(method, Method::Ack | Method::Cancel)
            && let Some(Ok(c)) = request.cseq()
        {
            if let Some(remote) = self.remote_seq
                && c.seq < remote
            {
                return Err(RequestRejection::OutOfOrder { seq: c.seq, remote });
            }
            self.remote_seq = Some(c.seq);
        }
        if is_target_refresh(&method) {
            self.refresh_target(request);
        }
        if method == Method::Bye {
            self.end_usage(&Usage::Invite);
            // BYE ends the session; the dialog ends with it unless subscriptions remain.
        }
        Ok(self.state)
    }

    /// We answered a request of an early dialog with a 2xx (UAS): confirm it.
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// End the dialog now (e.g. we sent BYE and do not wait for its answer).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
        self.usages.clear();
    }

    /// Add a usage (a new subscription in this dialog, RFC 6665 §4.5.2).
    pub fn add_usage(&mut self, usage: Usage) {
        if !self.usages.contains(&usage) {
            self.usages.push(usage);
        }
    }

    /// End a usage; the dialog terminates when none remains. Returns the new state.
    pub fn end_usage(&mut self, usage: &Usage) -> DialogState {
        self.usages.retain(|u| u != usage);
        if self.usages.is_empty() {
            self.state = DialogState::Terminated;
        }
        self.state
    }

    /// A request in this dialog (§12.2.1.1): Request-URI and Route from the remote target
    /// and route set (loose routing; if the first route lacks `lr`, the strict-route
    /// fallback puts it in the Request-URI and the remote target last in Route), To, From,
    /// Call-ID, and CSeq = local sequence + 1 (1 when empty), except ACK, which takes
    /// `ack_seq` (the INVITE's). The caller adds Via (with its branch), Contact and body.
    ///
    /// # Errors
    /// [`DialogError::Terminated`] (except for ACK), [`DialogError::Build`].
    pub fn request(
        &mut self,
        method: Method,
        ack_seq: Option<u32>,
    ) -> Result<RequestBuilder, DialogError> {
        if self.state == DialogState::Terminated && method != Method::Ack {
            return Err(DialogError::Terminated);
        }
        let seq = match (&method, ack_seq) {
            (Method::Ack | Method::Cancel, Some(s)) => s,
            _ => {
                let s = self.local_seq.map_or(1, |s| s.wrapping_add(1));
                self.local_seq = Some(s);
                s
            }
        };
        let strict = self.route_set.first().is_some_and(|r| !route_is_loose(r));
        let (ruri, routes): (String, Vec<&str>) = if strict {
            let first = strip_brackets(&self.route_set[0]);
            let mut routes: Vec<&str> = self.route_set[1..].iter().map(|r| &**r).collect();
            routes.push(&self.remote_target);
            (strip_uri_params_for_ruri(first), routes)
        } else {
            (
                self.remote_target.to_string(),
                self.route_set.iter().map(|r| &**r).collect(),
            )
        };
        let to = format!("{};tag={}", self.remote_uri, self.id.remote_tag);
        let from = format!("{};tag={}", self.local_uri, self.id.local_tag);
        let mut b = RequestBuilder::new(method, &ruri)
            .to(&to)
            .from(&from)
            .call_id(&self.id.call_id)
            .cseq(seq);
        for r in routes {
            if strict && !r.starts_with('<') {
                b = b.route(&format!("<{r}>"));
            } else {
                b = b.route(r);
            }
        }
        Ok(b)
    }
}

fn usage_of(method: &Method, m: &Message) -> Usage {
    match method {
        Method::Subscribe | Method::Notify | Method::Refer => {
            let ev = m.event().and_then(Result::ok);
            let (event, id) = match ev {
                Some(e) => (e.package, e.id()),
                None if *method == Method::Refer => ("refer", None),
                None => ("", None),
            };
            Usage::Subscription {
                event: event.into(),
                id: id.map(Into::into),
            }
        }
        _ => Usage::Invite,
    }
}

fn strip_brackets(route: &str) -> &str {
    match (route.find('<'), route.rfind('>')) {
        (Some(a), Some(b)) if a < b => &route[a + 1..b],
        _ => route,
    }
}

fn route_is_loose(route: &str) -> bool {
    match crate::uri::SipUri::parse(strip_brackets(route)) {
        Ok(u) => u.lr(),
        // Not a SIP URI: nothing sensible to strict-route through; treat as loose.
        Err(_) => true,
    }
}

/// §12.2.1.1: "with any parameters not allowed in a Request-URI removed" — of the
/// uri-parameters only `method` and headers are disallowed; drop the `?headers` part.
fn strip_uri_params_for_ruri(uri: &str) -> String {
    match uri.find('?') {
        Some(i) => uri[..i].to_owned(),
        None => uri.to_owned(),
    }
}

/// Every dialog of a UA, keyed for the lookups the UA core does: by full id, and by
/// (Call-ID, local tag) to reach all dialogs a forked request created.
#[derive(Debug, Default)]
pub struct Dialogs {
    sets: HashMap<Box<str>, Vec<Dialog>>,
    scratch: String,
    len: usize,
}

/// What [`Dialogs::route_request`] found for a request.
#[derive(Debug)]
pub enum RequestMatch<'a> {
    /// No To tag: the request is outside any dialog (it may create one).
    OutOfDialog,
    /// The dialog it belongs to.
    Dialog(&'a mut Dialog),
    /// A To tag but no such dialog: answer 481 (§12.2.2), or drop an ACK.
    NoDialog,
}

fn set_key(out: &mut String, call_id: &str, local_tag: &str) {
    out.clear();
    out.push_str(call_id);
    out.push('\n');
    out.push_str(local_tag);
}

impl Dialogs {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Dialogs {
        Dialogs::default()
    }

    /// Number of dialogs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add a dialog (replacing one with the same id). Terminated dialogs are not stored.
    pub fn insert(&mut self, d: Dialog) {
        if d.state == DialogState::Terminated {
            return;
        }
        set_key(&mut self.scratch, &d.id.call_id, &d.id.local_tag);
        let set = self.sets.entry(self.scratch.as_str().into()).or_default();
        if let Some(old) = set.iter_mut().find(|o| o.id.remote_tag == d.id.remote_tag) {
            *old = d;
        } else {
            set.push(d);
            self.len += 1;
        }
    }

    /// The dialog with this id.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.find_mut(&id.call_id, &id.local_tag, &id.remote_tag)
    }

    /// The dialog with this id.
    #[must_use]
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        let mut k = String::with_capacity(id.call_id.len() + id.local_tag.len() + 1);
        set_key(&mut k, &id.call_id, &id.local_tag);
        self.sets
            .get(k.as_str())?
            .iter()
            .find(|d| d.id.remote_tag == id.remote_tag)
    }

    fn find_mut(&mut self, call_id: &str, local: &str, remote: &str) -> Option<&mut Dialog> {
        set_key(&mut self.scratch, call_id, local);
        self.sets
            .get_mut(self.scratch.as_str())?
            .iter_mut()
            .find(|d| &*d.id.remote_tag == remote)
    }

    /// Every dialog created by the request with this Call-ID and local (From) tag: the
    /// early dialogs of a forked INVITE, the subscriptions of a forked SUBSCRIBE.
    pub fn forks_mut(
        &mut self,
        call_id: &str,
        local_tag: &str,
    ) -> impl Iterator<Item = &mut Dialog> {
        set_key(&mut self.scratch, call_id, local_tag);
        self.sets
            .get_mut(self.scratch.as_str())
            .into_iter()
            .flat_map(|v| v.iter_mut())
    }

    /// Find the dialog of a received request (To tag = local, From tag = remote).
    pub fn route_request(&mut self, request: &Message) -> RequestMatch<'_> {
        let (Some(Ok(from)), Some(Ok(to)), Some(Ok(cid))) =
            (request.from(), request.to(), request.call_id())
        else {
            return RequestMatch::NoDialog;
        };
        let Some(local) = to.tag() else {
            return RequestMatch::OutOfDialog;
        };
        let remote = from.tag().unwrap_or("");
        match self.find_mut(cid, local, remote) {
            Some(d) => RequestMatch::Dialog(d),
            None => RequestMatch::NoDialog,
        }
    }

    /// A response to a request we sent (INVITE, SUBSCRIBE, or in-dialog): creates the
    /// dialog (1xx with To tag / 2xx to a dialog-creating request — one per remote tag,
    /// so forks get their own), updates it, and removes it if it terminated. A non-2xx
    /// final response to the creating INVITE ends all its early dialogs. Returns the id and
    /// new state of the dialog concerned, if any.
    ///
    /// # Errors
    /// As [`Dialog::uac`] / [`Dialog::handle_response`].
    pub fn handle_uac_response(
        &mut self,
        request: &Message,
        response: &Message,
    ) -> Result<Option<(DialogId, DialogState)>, DialogError> {
        let method = request.method().cloned().unwrap_or(Method::Invite);
        let status = response.status().unwrap_or(0);
        let (Some(Ok(from)), Some(Ok(to)), Some(Ok(cid))) =
            (response.from(), response.to(), response.call_id())
        else {
            return Err(DialogError::Header(HeaderName::To));
        };
        let local = from.tag().unwrap_or("");
        if status >= 300 && method == Method::Invite {
            // Ends every early dialog of this INVITE (forks included); a confirmed dialog
            // (re-INVITE failure) survives unless 481/408.
            let mut ended = None;
            let creates = request
                .to()
                .and_then(Result::ok)
                .is_some_and(|t| t.tag().is_none());
            let remote = to.tag().unwrap_or("");
            for d in self.forks_mut(cid, local) {
                if (creates && d.state == DialogState::Early)
                    || (d.id.remote_tag.as_ref() == remote && matches!(status, 408 | 481))
                {
                    d.state = DialogState::Terminated;
                    ended = Some((d.id.clone(), DialogState::Terminated));
                }
            }
            self.purge(cid, local);
            return Ok(ended);
        }
        let Some(remote) = to.tag() else {
            return Ok(None);
        };
        if let Some(d) = self.find_mut(cid, local, remote) {
            let id = d.id.clone();
            let st = d.handle_response(&method, response)?;
            if st == DialogState::Terminated {
                self.purge(cid, local);
            }
            return Ok(Some((id, st)));
        }
        let creating = matches!(method, Method::Invite | Method::Subscribe | Method::Refer)
            && request
                .to()
                .and_then(Result::ok)
                .is_some_and(|t| t.tag().is_none());
        if creating && (101..=299).contains(&status) && !(method != Method::Invite && status < 200)
        {
            let d = Dialog::uac(request, response)?;
            let out = (d.id.clone(), d.state);
            self.insert(d);
            return Ok(Some(out));
        }
        Ok(None)
    }

    /// The INVITE transaction with this Call-ID and From tag ended (timeout, transport
    /// error, or Timer M after a 2xx from one fork): every dialog it left early is
    /// terminated and removed (RFC 3261 §13.2.2.4: early dialogs that never got a 2xx end
    /// with the transaction). Returns their ids.
    pub fn end_early(&mut self, call_id: &str, local_tag: &str) -> Vec<DialogId> {
        let mut ended = Vec::new();
        for d in self.forks_mut(call_id, local_tag) {
            if d.state == DialogState::Early {
                d.terminate();
                ended.push(d.id.clone());
            }
        }
        self.purge(call_id, local_tag);
        ended
    }

    /// Remove terminated dialogs of this (Call-ID, local tag).
    pub fn purge(&mut self, call_id: &str, local_tag: &str) {
        set_key(&mut self.scratch, call_id, local_tag);
        if let Some(v) = self.sets.get_mut(self.scratch.as_str()) {
            let before = v.len();
            v.retain(|d| d.state != DialogState::Terminated);
            self.len -= before - v.len();
            if v.is_empty() {
                self.sets.remove(self.scratch.as_str());
            }
        }
    }

    /// Remove the dialog with this id; returns it.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        set_key(&mut self.scratch, &id.call_id, &id.local_tag);
        let v = self.sets.get_mut(self.scratch.as_str())?;
        let i = v.iter().position(|d| d.id.remote_tag == id.remote_tag)?;
        let d = v.swap_remove(i);
        self.len -= 1;
        if v.is_empty() {
            self.sets.remove(self.scratch.as_str());
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests;
