//! The seam to the registrar role: REGISTER processing and GRUU resolution for the router.

use async_trait::async_trait;
use confab_core::chain::RequestContext;
use confab_core::{FlowInfo, StoreError, Timestamp};
use confab_proxy::{Gruu, GruuResolver};
use confab_registrar::{GruuTarget, RegisterInput, Registrant, Registrar};
use confab_sip::Message;

/// Runs the registrar for a REGISTER the chain handed over
/// ([`confab_core::chain::Outcome::Register`]): the registrant is the trusted peer, or the
/// authenticated identity. The registrar commits bindings before it returns a 2xx.
pub(crate) async fn register(
    registrar: &Registrar,
    ctx: &RequestContext,
    flow: FlowInfo,
) -> Message {
    let registrant = match (&ctx.identity, ctx.trusted) {
        (_, true) => Registrant::TrustedPeer,
        (Some(id), false) => Registrant::User(id.address.clone()),
        (None, false) => {
            // The chain never hands over an unauthenticated REGISTER; refuse if it did.
            tracing::error!("unauthenticated REGISTER reached the registrar");
            return confab_sip::ResponseBuilder::reply_to(&ctx.request, 403)
                .and_then(|b| b.to_tag(&format!("{:016x}", rand::random::<u64>())).build())
                .unwrap_or_else(|_| ctx.request.clone());
        }
    };
    let out = registrar
        .handle_register(RegisterInput {
            request: &ctx.request,
            registrant: &registrant,
            flow,
            now: Timestamp(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
            random: rand::random(),
        })
        .await;
    let mut response = out.response;
    // The chain's response headers (an upgrade notice) go on the registrar's final answer.
    if response.status().is_some_and(|s| s >= 200) {
        for (n, v) in &ctx.response_headers {
            if response.push_header(n.as_str(), v).is_err() {
                tracing::debug!(name = %n, "response header refused");
            }
        }
    }
    response
}

/// The router's GRUU resolution, over the registrar (which owns the GRUU format and key).
#[derive(Debug)]
pub(crate) struct RegistrarGruu(pub(crate) Registrar);

#[async_trait]
impl GruuResolver for RegistrarGruu {
    async fn resolve(&self, request_uri: &str, now: Timestamp) -> Result<Gruu, StoreError> {
        Ok(match self.0.resolve_gruu(request_uri, now).await? {
            GruuTarget::NotGruu => Gruu::NotGruu,
            GruuTarget::Unknown => Gruu::Unknown,
            GruuTarget::Binding(b) => Gruu::Binding(b),
            #[allow(unreachable_patterns)]
            _ => Gruu::NotGruu,
        })
    }
}

/// The address-of-record of a REGISTER (its To URI, `sip:user@domain`).
pub(crate) fn aor_of(request: &Message) -> Option<confab_core::Address> {
    let to = request.to()?.ok()?;
    match to.uri {
        confab_sip::Uri::Sip(u) => confab_core::Address::new(u.user?, &u.host.to_string()).ok(),
        _ => None,
    }
}
