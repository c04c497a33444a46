//! The request chain of the Front End's SIP proxy: one small trait, [`RequestHandler`], and
//! the records that travel through it.
//!
//! A request that starts a server transaction (after transaction matching, overload checks
//! and the RFC 3261 §16.3 / §16.4 checks the proxy core does first) is wrapped in a
//! [`RequestContext`] and handed to an ordered [`Chain`] of handlers. Each handler looks at
//! the context, may enrich it (the authentication handler sets [`RequestContext::identity`])
//! and returns an [`Outcome`]: [`Outcome::Continue`] passes the request to the next handler;
//! anything else ends the chain. The order is written in `ARCHITECTURE.md` ("The request
//! chain"); in short: client version filter, dialog routing, authentication, filters,
//! routing (registrar, the server itself, local users, later voice and conferences),
//! forwarding.
//!
//! Roles that come later (presence, IM, filters, voice routing) implement
//! [`RequestHandler`] in their own crate and are inserted into the chain by the surface that
//! composes the Front End; the proxy does not change.
//!
//! What it does not do: run anything. No I/O, no clock: the caller stamps
//! [`RequestContext::now_ms`]. The flow, transport and hop types here mirror the transport
//! adapter's so that roles can name flows without depending on an adapter.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use confab_sip::Message;

use crate::{Address, SipTransport};

// `SipTransport` is the registration module's type (a binding records the transport of its
// flow); the proxy additionally needs the wire names and default ports, added here.
impl SipTransport {
    /// The Via transport token (`UDP`, `TCP`, `TLS`, `WS`, `WSS`).
    pub const fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WS",
            Self::Wss => "WSS",
        }
    }

    /// TLS or WSS.
    pub const fn is_secure(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// The port used when a URI or Via names none (5060, or 5061 for TLS; WS/WSS use
    /// 80/443 by RFC 7118).
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 5060,
            Self::Tls => 5061,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }
}

/// One flow (RFC 5626 §5): a connection, or for UDP the pair (our listener, the peer's
/// address). Mirrors the transport adapter's flow token so roles can keep and compare flows
/// (a binding records the flow its REGISTER came on) without depending on the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowId {
    /// Datagrams from `remote` received on listener `listener`.
    Datagram {
        /// Index of our listener.
        listener: u16,
        /// The peer.
        remote: SocketAddr,
    },
    /// Connection `id` (never reused within a process lifetime).
    Connection {
        /// The connection id.
        id: u64,
    },
}

impl FlowId {
    /// True for a connection flow.
    pub const fn is_connection(&self) -> bool {
        matches!(self, FlowId::Connection { .. })
    }
}

/// Where a message comes from or goes to: the next hop of a client transaction, the peer of
/// a server transaction. Implements the transaction layer's `Flow` so the proxy uses it as
/// the transaction layer's flow type.
///
/// With `flow` set the message goes over that flow (the one a request came on, the one a
/// registered client keeps open); without, to `remote` over `transport` (a new connection
/// for connection-oriented transports).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    /// The transport.
    pub transport: SipTransport,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The flow to use, if there is one.
    pub flow: Option<FlowId>,
    /// For TLS without a flow: the name to verify the peer's certificate against (RFC 5922).
    pub server_name: Option<Arc<str>>,
}

impl Hop {
    /// A hop over an existing flow.
    pub fn over_flow(transport: SipTransport, remote: SocketAddr, flow: FlowId) -> Hop {
        Hop {
            transport,
            remote,
            flow: Some(flow),
            server_name: None,
        }
    }

    /// A hop to an address (a new connection if needed).
    pub fn to_addr(transport: SipTransport, remote: SocketAddr) -> Hop {
        Hop {
            transport,
            remote,
            flow: None,
            server_name: None,
        }
    }
}

impl confab_sip::transaction::Flow for Hop {
    fn is_reliable(&self) -> bool {
        self.transport.is_connection()
    }
}

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The peer and the flow it used (always with `flow` set).
    pub hop: Hop,
    /// Our local address of the socket or connection.
    pub local: SocketAddr,
    /// For TLS/WSS with a verified client certificate: its RFC 5922 identities (domain
    /// names), which may make the peer trusted.
    pub tls_names: Option<Arc<[String]>>,
}

impl Source {
    /// The flow the request came on.
    pub fn flow(&self) -> Option<FlowId> {
        self.hop.flow
    }
}

/// How the identity of a request's sender was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityProof {
    /// Digest authentication (RFC 8760) against the user's stored HA1.
    Digest,
    /// A P-Asserted-Identity from a trusted peer (RFC 3325).
    Asserted,
}

/// The authenticated sender of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account.
    pub address: Address,
    /// How it was established.
    pub proof: IdentityProof,
}

/// What the Request-URI names, as classified before the chain runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressed {
    /// The server itself: one of our domains or addresses without a user part (OPTIONS
    /// pings, REGISTER's Request-URI, later SUBSCRIBE/PUBLISH to the server).
    Server,
    /// A user of a served domain (which may or may not exist).
    LocalUser(Address),
    /// A served domain with a user part that is not a valid address (answered 404).
    LocalInvalid,
    /// Anything else: another domain, a `tel:` URI, a URI with our host and a foreign user
    /// syntax. Routed by later roles (voice), else refused ("Relaying denied").
    Other,
}

/// The record that travels through the chain for one request.
#[derive(Debug)]
pub struct RequestContext {
    /// The request as received (after the proxy's §16.4 Route pre-processing). Handlers may
    /// edit it (a filter rewriting a body); the proxy forwards what is here.
    pub request: Message,
    /// Where it came from.
    pub source: Source,
    /// What the Request-URI names.
    pub addressed: Addressed,
    /// The request is inside a dialog (the To header has a tag).
    pub in_dialog: bool,
    /// §16.4 pre-processing removed Route entries naming this proxy: the request follows a
    /// route set we are on (a dialog we Record-Routed, a Path or Service-Route of ours).
    pub own_route: bool,
    /// After §16.4 pre-processing a Route header remains: the request follows a route set
    /// (Record-Route of a dialog, a pre-loaded route) to a next hop that is not us.
    pub routed: bool,
    /// The flow a Route entry of ours (a Record-Route we wrote) says the request must go
    /// out on (RFC 5626 §5.3), when that is not the flow it came on.
    pub route_flow: Option<Hop>,
    /// The sender is a trusted peer (configured address or certificate name): exempt from
    /// digest, and its P-Asserted-Identity is believed (RFC 3325).
    pub trusted: bool,
    /// The authenticated sender, once a handler established it.
    pub identity: Option<Identity>,
    /// The identity to assert in P-Asserted-Identity when forwarding to trusted peers:
    /// `None` leaves the header as it is (a trusted peer's), `Some` replaces it.
    pub asserted_identity: Option<String>,
    /// Wall-clock time the request was taken in, milliseconds since the Unix epoch (the
    /// handlers' clock; they never read one).
    pub now_ms: u64,
    /// Header fields a handler wants on the final response to this request, whoever
    /// produces it: a reply of the chain, the registrar's response, or the final response
    /// the proxy forwards upstream. Appended after the response's own fields, in order
    /// (the Client Version Filter's `Warning: 399` upgrade notice). Never on provisional
    /// responses.
    pub response_headers: Vec<(String, String)>,
    /// Who wants to follow the dialog this request creates or ends (an initial INVITE, an
    /// in-dialog BYE): set by a chain step (the presence role's `dialog-events`); the proxy
    /// core reports to it once it forwards the request. `None`: nobody is told.
    pub dialog_observer: Option<Arc<dyn crate::DialogObserver>>,
    /// The live bindings of an AOR that a handler already looked up for this request (the
    /// offline-IM step asks whether a MESSAGE's recipient is online): the router takes them
    /// instead of asking the location service a second time, when they are for the AOR it
    /// routes to. Looked up at `now_ms`, within this chain run.
    pub located: Option<(crate::Address, Vec<crate::Binding>)>,
}

impl fmt::Debug for dyn crate::DialogObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DialogObserver")
    }
}

impl RequestContext {
    /// A context with nothing established yet (not trusted, no identity).
    pub fn new(request: Message, source: Source, addressed: Addressed, now_ms: u64) -> Self {
        let in_dialog = request
            .to()
            .and_then(Result::ok)
            .is_some_and(|t| t.tag().is_some());
        RequestContext {
            request,
            source,
            addressed,
            in_dialog,
            own_route: false,
            routed: false,
            route_flow: None,
            trusted: false,
            identity: None,
            asserted_identity: None,
            now_ms,
            response_headers: Vec::new(),
            dialog_observer: None,
            located: None,
        }
    }

    /// The request method.
    pub fn method(&self) -> Option<&confab_sip::Method> {
        self.request.method()
    }

    /// Asks for a header field on the final response (see
    /// [`RequestContext::response_headers`]).
    pub fn add_response_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.response_headers.push((name.into(), value.into()));
    }
}

/// A response the chain wants sent, as status, reason and extra headers; the proxy builds
/// it from the request (Via, From, To with a tag, Call-ID, CSeq copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code (100-699).
    pub status: u16,
    /// Reason phrase; `None` uses the standard one.
    pub reason: Option<String>,
    /// Extra header fields, in order (`WWW-Authenticate`, `Retry-After`, `Allow` ...).
    pub headers: Vec<(String, String)>,
    /// An optional body with its content type.
    pub body: Option<(String, Vec<u8>)>,
    /// The To tag to put in the response (a dialog-creating response of a role that is the
    /// UAS, like the notifier's 200 to SUBSCRIBE); `None` lets the proxy choose one.
    /// (Boxed to keep `Reply` small: it travels in `Result` errors.)
    pub to_tag: Option<Box<str>>,
}

impl Reply {
    /// A response with the standard reason phrase and no extra header.
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            reason: None,
            headers: Vec::new(),
            body: None,
            to_tag: None,
        }
    }

    /// A response with a reason phrase.
    pub fn with_reason(status: u16, reason: impl Into<String>) -> Reply {
        Reply {
            reason: Some(reason.into()),
            ..Reply::new(status)
        }
    }

    /// Sets the To tag of the response.
    #[must_use]
    pub fn with_to_tag(mut self, tag: impl Into<String>) -> Reply {
        self.to_tag = Some(tag.into().into_boxed_str());
        self
    }

    /// Adds a header field.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One destination of a forwarded request (RFC 3261 §16.5 target set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The new Request-URI (a registered Contact, or the original Request-URI).
    pub uri: String,
    /// Route entries to put in front (the Path of a binding, RFC 3327), in order.
    pub route: Vec<String>,
    /// The hop to send to, when known (the flow a binding was registered over). `None`: the
    /// forwarding step resolves the next hop from the first Route entry or the URI.
    pub hop: Option<Hop>,
    /// Priority in thousandths (Contact `q`, RFC 3261 §16.6): higher groups are tried
    /// first, equal values in parallel. 1000 when none was given.
    pub q: u16,
    /// The next hop is a trusted peer (P-Asserted-Identity is kept toward it).
    pub trusted: bool,
}

impl Target {
    /// A target to `uri` with default priority and no known hop.
    pub fn new(uri: impl Into<String>) -> Target {
        Target {
            uri: uri.into(),
            route: Vec::new(),
            hop: None,
            q: 1000,
            trusted: false,
        }
    }
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not mine (or passed): run the next handler.
    Continue,
    /// Answer the request with this response and stop.
    Respond(Reply),
    /// A REGISTER for the registrar (the identity in the context is authenticated).
    Register,
    /// Proxy the request to these targets (forking per RFC 3261 §16.6; a single target for
    /// a routed in-dialog request). An empty list is answered 480.
    Forward(Vec<Target>),
}

/// One step of the request chain. Implementations are shared by every worker
/// (`Arc<dyn RequestHandler>`), so they keep their state behind their own locks.
#[async_trait]
pub trait RequestHandler: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics (`auth`, `router`).
    fn name(&self) -> &'static str;

    /// Looks at (and may enrich) the request; says what to do next. Failures are outcomes
    /// too: a store that is down is `Respond(Reply::new(503))` with `Retry-After`.
    async fn handle(&self, ctx: &mut RequestContext) -> Outcome;
}

/// An ordered list of handlers.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    handlers: Vec<Arc<dyn RequestHandler>>,
}

impl Chain {
    /// An empty chain.
    pub fn new() -> Chain {
        Chain::default()
    }

    /// Appends a handler at the end.
    #[must_use]
    pub fn then(mut self, handler: Arc<dyn RequestHandler>) -> Chain {
        self.handlers.push(handler);
        self
    }

    /// Inserts a handler before the one named `before` (or at the end if there is none), so
    /// a later role slots into the documented position.
    pub fn insert_before(&mut self, before: &str, handler: Arc<dyn RequestHandler>) {
        let at = self
            .handlers
            .iter()
            .position(|h| h.name() == before)
            .unwrap_or(self.handlers.len());
        self.handlers.insert(at, handler);
    }

    /// The handler names in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.name()).collect()
    }

    /// Runs the handlers in order until one returns something other than
    /// [`Outcome::Continue`]. When all continue, the request has no route:
    /// `Respond(404)`.
    pub async fn run(&self, ctx: &mut RequestContext) -> Outcome {
        for h in &self.handlers {
            match h.handle(ctx).await {
                Outcome::Continue => {}
                other => return other,
            }
        }
        Outcome::Respond(Reply::new(404))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug)]
    struct Step {
        name: &'static str,
        out: Outcome,
        seen: Arc<Mutex<Vec<&'static str>>>,
    }

    #[async_trait]
    impl RequestHandler for Step {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
            self.seen.lock().unwrap().push(self.name);
            if self.name == "auth" {
                ctx.identity = Some(Identity {
                    address: Address::parse("alice@example.com").unwrap(),
                    proof: IdentityProof::Digest,
                });
            }
            self.out.clone()
        }
    }

    fn ctx(to: &str) -> RequestContext {
        let text = format!(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.com>;tag=a\r\nTo: {to}\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let msg = confab_sip::parse_datagram(text.into(), &confab_sip::Limits::DEFAULT).unwrap();
        let remote: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let source = Source {
            hop: Hop::over_flow(
                SipTransport::Udp,
                remote,
                FlowId::Datagram {
                    listener: 0,
                    remote,
                },
            ),
            local: "192.0.2.2:5060".parse().unwrap(),
            tls_names: None,
        };
        RequestContext::new(msg, source, Addressed::Other, 0)
    }

    fn step(
        name: &'static str,
        out: Outcome,
        seen: &Arc<Mutex<Vec<&'static str>>>,
    ) -> Arc<dyn RequestHandler> {
        Arc::new(Step {
            name,
            out,
            seen: seen.clone(),
        })
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The handlers above never wait, so one poll finishes the future.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("test handler waited"),
        }
    }

    #[test]
    fn chain_stops_at_first_decision_and_keeps_enrichment() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut chain = Chain::new()
            .then(step("auth", Outcome::Continue, &seen))
            .then(step("router", Outcome::Register, &seen))
            .then(step("never", Outcome::Continue, &seen));
        chain.insert_before("auth", step("version", Outcome::Continue, &seen));
        assert_eq!(chain.names(), ["version", "auth", "router", "never"]);
        let mut c = ctx("<sip:bob@example.com>");
        assert!(!c.in_dialog);
        assert_eq!(block_on(chain.run(&mut c)), Outcome::Register);
        assert_eq!(*seen.lock().unwrap(), ["version", "auth", "router"]);
        assert_eq!(c.identity.unwrap().address.as_str(), "alice@example.com");
    }

    #[test]
    fn empty_decision_is_404_and_dialog_is_detected() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let chain = Chain::new().then(step("a", Outcome::Continue, &seen));
        let mut c = ctx("<sip:bob@example.com>;tag=x");
        assert!(c.in_dialog);
        assert_eq!(
            block_on(chain.run(&mut c)),
            Outcome::Respond(Reply::new(404))
        );
    }

    #[test]
    fn transport_wire_names() {
        for t in SipTransport::ALL {
            assert_eq!(t.via_name().parse::<SipTransport>(), Ok(t));
        }
        assert!(SipTransport::Wss.is_secure() && !SipTransport::Ws.is_secure());
        assert_eq!(SipTransport::Tls.default_port(), 5061);
        assert_eq!(SipTransport::Udp.default_port(), 5060);
    }
}
