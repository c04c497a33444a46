//! The routing steps of the request chain: [`DialogRouter`] and [`Router`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use confab_core::chain::{Addressed, Hop, Outcome, Reply, RequestContext, RequestHandler, Target};
use confab_core::{Binding, FlowInfo, RegistrationStore, StoreError, Timestamp, UserStore};
use confab_sip::{Method, Uri};

use crate::core::ALLOW;

/// What the routing steps need from the running node: how to reach a binding's flow, and
/// which next hops are trusted (RFC 3325).
pub trait FlowResolver: Send + Sync + fmt::Debug {
    /// The hop over the flow a binding was registered on, if this node holds that flow and
    /// it is still open; `None` sends to the Contact (or Path) instead.
    fn hop_for(&self, flow: &FlowInfo) -> Option<Hop>;

    /// Whether a next hop is a trusted peer (P-Asserted-Identity is kept toward it).
    fn is_trusted(&self, hop: &Hop) -> bool;
}

/// What a Request-URI with a `gr` parameter names (RFC 5627).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gruu {
    /// Not one of our GRUUs: route it as any Request-URI.
    NotGruu,
    /// A GRUU naming no live binding: 480.
    Unknown,
    /// Route to this binding only.
    Binding(Box<Binding>),
}

/// Resolves GRUUs (the registrar knows their format and key); implemented by the runtime
/// over the registrar, so this role does not depend on another role.
#[async_trait]
pub trait GruuResolver: Send + Sync + fmt::Debug {
    /// Resolves `request_uri` at `now`.
    async fn resolve(&self, request_uri: &str, now: Timestamp) -> Result<Gruu, StoreError>;
}

fn request_uri(ctx: &RequestContext) -> String {
    std::str::from_utf8(ctx.request.request_uri_bytes().unwrap_or_default())
        .unwrap_or_default()
        .to_owned()
}

/// Chain step `dialog`: an in-dialog request that followed a route set we are on (we
/// removed our Route entries) goes straight to forwarding, over the flow our Record-Route
/// remembered when there is one. Runs before authentication: the dialog was authorised
/// when it was created, and the UAs cannot answer our challenges inside it.
#[derive(Debug, Clone)]
pub struct DialogRouter {
    flows: Arc<dyn FlowResolver>,
}

impl DialogRouter {
    /// The step.
    pub fn new(flows: Arc<dyn FlowResolver>) -> DialogRouter {
        DialogRouter { flows }
    }
}

#[async_trait]
impl RequestHandler for DialogRouter {
    fn name(&self) -> &'static str {
        "dialog"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        if !(ctx.in_dialog && ctx.own_route) {
            return Outcome::Continue;
        }
        let mut t = Target::new(request_uri(ctx));
        if let Some(h) = &ctx.route_flow {
            t.trusted = self.flows.is_trusted(h);
            t.hop = Some(h.clone());
        }
        Outcome::Forward(vec![t])
    }
}

/// Chain step `router`: where a request goes.
///
/// | request | outcome |
/// |---|---|
/// | REGISTER for one of our domains | the registrar |
/// | REGISTER for another domain | 403 "Relaying denied" |
/// | OPTIONS to the server | 200 with Allow, Accept, Supported |
/// | other methods to the server | 405 with Allow |
/// | a local user with bindings | forward to every binding (q-groups), over its flow |
/// | a GRUU (`;gr`), public or temporary | forward to that binding only; 480 if it names none |
/// | a local user without bindings | 480 |
/// | an unknown local user | 404 |
/// | a route set remains (pre-loaded route) from an authenticated or trusted sender | forward along it |
/// | a `tel:` URI | 404 (voice routing is a later role) |
/// | another domain | 403 "Relaying denied" |
#[derive(Clone)]
pub struct Router {
    registrations: Arc<dyn RegistrationStore>,
    users: Arc<dyn UserStore>,
    flows: Arc<dyn FlowResolver>,
    gruu: Option<Arc<dyn GruuResolver>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("flows", &self.flows)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// The step over the stores.
    pub fn new(
        registrations: Arc<dyn RegistrationStore>,
        users: Arc<dyn UserStore>,
        flows: Arc<dyn FlowResolver>,
    ) -> Router {
        Router {
            registrations,
            users,
            flows,
            gruu: None,
        }
    }

    /// Resolves GRUUs with `resolver` (without one, only public GRUUs are recognised, by
    /// the instance in `gr`).
    #[must_use]
    pub fn with_gruu(mut self, resolver: Arc<dyn GruuResolver>) -> Router {
        self.gruu = Some(resolver);
        self
    }

    /// The target of a binding: its Contact, its Path as Route, and the flow its REGISTER
    /// came on when requests must use it ([`uses_flow`]). Also used by roles that send
    /// requests of their own to a user's endpoints (offline message delivery).
    pub fn target(&self, b: &Binding) -> Target {
        let hop = if uses_flow(b) {
            self.flows.hop_for(&b.flow)
        } else {
            None
        };
        Target {
            uri: b.contact.clone(),
            route: b.path.clone(),
            trusted: hop.as_ref().is_some_and(|h| self.flows.is_trusted(h)),
            hop,
            q: b.q.map_or(1000, |q| q.thousandths()),
        }
    }
}

/// Whether requests to a binding go over the flow its REGISTER came on rather than to its
/// Contact: always for RFC 5626 outbound bindings and connection-oriented flows (a client
/// cannot be reached by a new connection from us, and WebSocket clients never), and for a
/// UDP binding whose Contact cannot be reached from here (a private or `.invalid` address,
/// i.e. a client behind NAT that did not use outbound). A plain UDP Contact with a public
/// or loopback address is used as registered (it may name another device than the one that
/// sent the REGISTER).
pub fn uses_flow(b: &Binding) -> bool {
    if b.is_outbound() || b.flow.transport.is_connection() {
        return true;
    }
    let Ok(Uri::Sip(u)) = Uri::parse(&b.contact) else {
        return true;
    };
    match u.host.ip() {
        Some(ip) => is_private(ip) && SocketAddr::new(ip, u.port.unwrap_or(5060)) != b.flow.source,
        None => u
            .host
            .to_string()
            .to_ascii_lowercase()
            .ends_with(".invalid"),
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || a.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

fn unavailable() -> Outcome {
    Outcome::Respond(
        Reply::with_reason(503, "Location service unavailable").header("Retry-After", "5"),
    )
}

#[async_trait]
impl RequestHandler for Router {
    fn name(&self) -> &'static str {
        "router"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        let method = ctx.method().cloned();
        if method == Some(Method::Register) {
            return match ctx.addressed {
                Addressed::Server | Addressed::LocalUser(_) => Outcome::Register,
                _ => Outcome::Respond(Reply::with_reason(403, "Relaying denied")),
            };
        }
        match &ctx.addressed {
            Addressed::Server => match method {
                Some(Method::Options) => Outcome::Respond(
                    Reply::new(200)
                        .header("Allow", ALLOW)
                        .header("Accept", "application/sdp, text/plain, message/cpim")
                        .header("Supported", "path, outbound"),
                ),
                _ => Outcome::Respond(Reply::new(405).header("Allow", ALLOW)),
            },
            Addressed::LocalUser(aor) => {
                let aor = aor.clone();
                let now = Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX));
                // A GRUU (RFC 5627 §5.5) reaches one binding only.
                let gr = ctx
                    .request
                    .request_uri()
                    .and_then(Result::ok)
                    .and_then(|u| match u {
                        Uri::Sip(s) => s.params.get("gr").map(|v| v.map(str::to_owned)),
                        _ => None,
                    });
                if let (Some(_), Some(resolver)) = (&gr, &self.gruu) {
                    match resolver.resolve(&request_uri(ctx), now).await {
                        Ok(Gruu::Binding(b)) => return Outcome::Forward(vec![self.target(&b)]),
                        Ok(Gruu::Unknown) => return Outcome::Respond(Reply::new(480)),
                        Ok(Gruu::NotGruu) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "registration store unavailable");
                            return unavailable();
                        }
                    }
                }
                let located = match ctx.located.take() {
                    Some((a, b)) if a == aor => Some(b),
                    _ => None,
                };
                let found = match located {
                    Some(b) => Ok(b),
                    None => self.registrations.lookup(&aor, now).await,
                };
                let mut bindings = match found {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "registration store unavailable");
                        return unavailable();
                    }
                };
                if let (Some(Some(gr)), None) = (gr, &self.gruu) {
                    bindings.retain(|b| {
                        b.instance
                            .as_deref()
                            .is_some_and(|i| i.trim_start_matches('<').trim_end_matches('>') == gr)
                    });
                }
                if bindings.is_empty() {
                    return match self.users.get_user(&aor).await {
                        Ok(Some(_)) => Outcome::Respond(Reply::new(480)),
                        Ok(None) => Outcome::Respond(Reply::new(404)),
                        Err(e) => {
                            tracing::warn!(error = %e, "user store unavailable");
                            unavailable()
                        }
                    };
                }
                Outcome::Forward(bindings.iter().map(|b| self.target(b)).collect())
            }
            Addressed::LocalInvalid => Outcome::Respond(Reply::new(404)),
            Addressed::Other => {
                if ctx.routed && (ctx.identity.is_some() || ctx.trusted) {
                    return Outcome::Forward(vec![Target::new(request_uri(ctx))]);
                }
                let tel = matches!(
                    ctx.request.request_uri().and_then(Result::ok),
                    Some(Uri::Tel(_))
                );
                if tel {
                    Outcome::Respond(Reply::with_reason(404, "No route to this number"))
                } else {
                    Outcome::Respond(Reply::with_reason(403, "Relaying denied"))
                }
            }
        }
    }
}
