//! The `auth` step of the request chain.

use std::sync::Arc;

use async_trait::async_trait;
use confab_core::Address;
use confab_core::UserStore;
use confab_core::chain::{Identity, IdentityProof, Outcome, Reply, RequestContext, RequestHandler};
use confab_sip::{HeaderName, Uri};

use crate::authenticator::{Authenticator, Decision, Need};

/// Authenticates requests in the chain: trusted peers pass (and their P-Asserted-Identity
/// is believed); every other request needs digest as one of our users, whatever its From
/// says (unless `allow_foreign_unauthenticated` lets senders of other domains through to
/// local targets).
///
/// RFC 3325 on the way in: P-Asserted-Identity and P-Preferred-Identity from untrusted
/// senders are removed; for an authenticated sender the context's
/// [`RequestContext::asserted_identity`] is set, which the proxy writes toward trusted peers
/// (it removes the header toward untrusted ones).
#[derive(Clone)]
pub struct AuthHandler {
    auth: Arc<Authenticator>,
    users: Arc<dyn UserStore>,
}

impl std::fmt::Debug for AuthHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHandler")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl AuthHandler {
    /// The handler over an authenticator and the user store.
    pub fn new(auth: Arc<Authenticator>, users: Arc<dyn UserStore>) -> AuthHandler {
        AuthHandler { auth, users }
    }
}

#[async_trait]
impl RequestHandler for AuthHandler {
    fn name(&self) -> &'static str {
        "auth"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        match self.auth.assess(ctx) {
            Need::Trusted => {
                ctx.trusted = true;
                if ctx.identity.is_none() {
                    ctx.identity = asserted_identity(ctx).map(|address| Identity {
                        address,
                        proof: IdentityProof::Asserted,
                    });
                }
                Outcome::Continue
            }
            Need::NotRequired => {
                strip_asserted(ctx);
                Outcome::Continue
            }
            Need::Required {
                kind,
                realm,
                account,
            } => {
                let random: [u8; 8] = rand::random();
                let user = match &account {
                    None => None,
                    Some(a) => match self.users.get_user(a).await {
                        Ok(u) => u,
                        Err(e) => {
                            tracing::warn!(error = %e, "user store unavailable during authentication");
                            return Outcome::Respond(
                                Reply::with_reason(503, "Authentication store unavailable")
                                    .header("Retry-After", "5"),
                            );
                        }
                    },
                };
                match self
                    .auth
                    .decide(ctx, kind, &realm, user.as_ref(), ctx.now_ms, random)
                {
                    Decision::Authenticated(id) => {
                        strip_asserted(ctx);
                        ctx.asserted_identity = Some(format!("<{}>", id.address.to_sip_uri()));
                        ctx.identity = Some(id);
                        Outcome::Continue
                    }
                    Decision::Respond(r) => Outcome::Respond(r),
                }
            }
        }
    }
}

fn strip_asserted(ctx: &mut RequestContext) {
    ctx.request.remove_header(HeaderName::PAssertedIdentity);
    ctx.request.remove_header(HeaderName::PPreferredIdentity);
}

/// The first SIP P-Asserted-Identity that is a valid address.
fn asserted_identity(ctx: &RequestContext) -> Option<Address> {
    ctx.request
        .p_asserted_identities()
        .filter_map(Result::ok)
        .find_map(|na| match na.uri {
            Uri::Sip(u) => Address::new(u.user?, &u.host.to_string()).ok(),
            _ => None,
        })
}
