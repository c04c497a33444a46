//! The two filters as steps of the proxy's request chain.

use std::sync::Arc;

use async_trait::async_trait;
use confab_core::chain::{Outcome, Reply, RequestContext, RequestHandler};
use confab_sip::{Host, Uri};

use crate::client_version::{ClientDecision, ClientVersionFilter};
use crate::im::{ImFilter, ImVerdict};
use crate::snapshot::Snapshot;

/// The Client Version Filter step (name `client-version`).
///
/// Place it first in the chain (before `dialog` and `auth`): a refused client learns so
/// before it is challenged for credentials, and a blocked client costs one rule scan.
///
/// `allow_with_notice`: the request continues through the chain, and the step asks for
/// `Warning: 399 <agent> "<message>: <url>"` on the final response
/// ([`RequestContext::response_headers`]): the proxy adds it to its own reply, to the
/// registrar's response and to the final response it forwards upstream.
#[derive(Debug, Clone)]
pub struct ClientVersionHandler {
    filter: Arc<Snapshot<ClientVersionFilter>>,
}

impl ClientVersionHandler {
    /// The step reading `filter` on every request.
    pub fn new(filter: Arc<Snapshot<ClientVersionFilter>>) -> ClientVersionHandler {
        ClientVersionHandler { filter }
    }

    /// The decision for a context, as an outcome (synchronous: no I/O); an upgrade notice
    /// is added to the context's response headers.
    pub fn decide(&self, ctx: &mut RequestContext) -> Outcome {
        let filter = self.filter.load();
        match filter.check(&ctx.request) {
            ClientDecision::Pass => Outcome::Continue,
            ClientDecision::Refuse(reply) => {
                tracing::debug!(
                    user_agent = ctx.request.user_agent().and_then(Result::ok).unwrap_or(""),
                    status = reply.status,
                    "client version filter refused the request"
                );
                Outcome::Respond(reply.clone())
            }
            ClientDecision::PassWithNotice(warning) => {
                tracing::debug!(warning, "client version filter: upgrade notice");
                ctx.add_response_header("Warning", warning);
                Outcome::Continue
            }
        }
    }
}

#[async_trait]
impl RequestHandler for ClientVersionHandler {
    fn name(&self) -> &'static str {
        "client-version"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        self.decide(ctx)
    }
}

/// The Intelligent IM Filter step (name `im-filter`).
///
/// # Who is external
///
/// A sender is inside when the chain has authenticated it (`ctx.identity`, set by `auth`
/// for digest users and for trusted peers' P-Asserted-Identity) as an address of a served
/// domain; without an identity, when its From URI is a SIP URI in a served domain. Anyone
/// else — another domain, a `tel:` or IP-address From, an unreadable From — is external.
///
/// The From fallback is sound where the step sits in the chain:
///
/// * **after `auth`, before `router`** (the recommended place): an out-of-dialog request
///   whose From is in a served domain has been authenticated (auth demands digest for it),
///   so only trusted peers without P-Asserted-Identity reach the fallback;
/// * requests inside a dialog leave the chain at `dialog` (before `auth`) and are **not
///   filtered** in that position: session-mode MESSAGEs and re-INVITEs pass. Put the step
///   before `dialog` to filter them too; then out-of-dialog requests are classified by From
///   before `auth` runs, which is still sound for them (a forged served-domain From is
///   challenged by `auth` afterwards and never delivered), but an external party already in
///   a dialog could claim a served-domain From inside it and escape `external`-scoped rules
///   (`all`-scoped rules still apply).
#[derive(Debug, Clone)]
pub struct ImFilterHandler {
    filter: Arc<Snapshot<ImFilter>>,
}

impl ImFilterHandler {
    /// The step reading `filter` on every request.
    pub fn new(filter: Arc<Snapshot<ImFilter>>) -> ImFilterHandler {
        ImFilterHandler { filter }
    }

    /// Whether the sender of `ctx` is outside the served domains (see the type's docs).
    pub fn is_external(filter: &ImFilter, ctx: &RequestContext) -> bool {
        if let Some(id) = &ctx.identity {
            return !filter.is_served(id.address.domain());
        }
        match ctx.request.from() {
            Some(Ok(from)) => match from.uri {
                Uri::Sip(u) => match u.host {
                    Host::Domain(d) => !filter.is_served(d),
                    _ => true,
                },
                _ => true,
            },
            _ => true,
        }
    }

    /// Applies the filter to `ctx` (rewrites the body in place when links are disabled).
    pub fn apply(&self, ctx: &mut RequestContext) -> Outcome {
        let filter = self.filter.load();
        let external = ImFilterHandler::is_external(&filter, ctx);
        match filter.inspect(&ctx.request, external) {
            ImVerdict::Pass => Outcome::Continue,
            ImVerdict::Block { reason, cause } => {
                tracing::debug!(?cause, external, "IM filter blocked the request");
                Outcome::Respond(Reply::with_reason(403, reason))
            }
            ImVerdict::Rewrite { body, links } => {
                tracing::debug!(links, external, "IM filter disabled links");
                ctx.request.set_body(body);
                Outcome::Continue
            }
        }
    }
}

#[async_trait]
impl RequestHandler for ImFilterHandler {
    fn name(&self) -> &'static str {
        "im-filter"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        self.apply(ctx)
    }
}
