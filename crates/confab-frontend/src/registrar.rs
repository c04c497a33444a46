//! The seam to the registrar role: REGISTER processing and GRUU resolution for the router.

use async_trait::async_trait;
use confab_core::chain::RequestContext;
use confab_core::{FlowInfo, StoreError, Timestamp};
use confab_proxy::{Gruu, GruuResolver};
use confab_registrar::{GruuTarget, RegisterInput, Registrant, Registrar};
use confab_sip::Message;

/// Runs the registrar for a REGISTER the chain handed over
/// ([`confab_core::chain::Outcome::Register`]): the registrant is the trusted peer, or the
/// authenticated identity. The registrar commits bindings before it returns a 2xx. Also
/// returns the AOR whose bindings changed, if any (for the registration observer).
pub(crate) async fn register(
    registrar: &Registrar,
    ctx: &RequestContext,
    flow: FlowInfo,
) -> (Message, Option<confab_core::Address>) {
    let registrant = match (&ctx.identity, ctx.trusted) {
        (_, true) => Registrant::TrustedPeer,
        (Some(id), false) => Registrant::User(id.address.clone()),
        (None, false) => {
            // The chain never hands over an unauthenticated REGISTER; refuse if it did.
            tracing::error!("unauthenticated REGISTER reached the registrar");
            let r = confab_sip::ResponseBuilder::reply_to(&ctx.request, 403)
                .and_then(|b| b.to_tag(&format!("{:016x}", rand::random::<u64>())).build())
                .unwrap_or_else(|_| ctx.request.clone());
            return (r, None);
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
    let aor = out.update.as_ref().and_then(|u| {
        u.after
            .first()
            .or_else(|| u.before.first())
            .map(|b| b.aor.clone())
    });
    (out.response, aor)
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
