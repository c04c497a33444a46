//! [`Registrar`]: REGISTER in, response out, bindings durably stored in between.

use std::fmt::Write as _;
use std::sync::Arc;

use confab_core::{
    Address, Binding, BindingsUpdate, FlowInfo, Refusal, RegistrationStore, StoreError, Timestamp,
    UpdateOutcome,
};
use confab_sip::{HeaderName, Message, ResponseBuilder, SipUri, Uri};

use crate::config::{ConfigError, FlowFailure, RegistrarConfig};
use crate::gruu;
use crate::register::{self, Action, Drbg, Early, Parsed, PlanInput, Registrant};

/// Bindings removed per store call by [`Registrar::sweep_expired`].
const SWEEP_BATCH: u32 = 1000;

/// One REGISTER to process, with everything the registrar does not find in the message.
#[derive(Debug)]
pub struct RegisterInput<'a> {
    /// The REGISTER, already authenticated (or from a trusted peer).
    pub request: &'a Message,
    /// Who sent it, as authentication established.
    pub registrant: &'a Registrant,
    /// The flow it arrived on and the node holding that flow.
    pub flow: FlowInfo,
    /// Wall-clock time the request was taken in.
    pub now: Timestamp,
    /// 32 fresh random bytes (from a CSPRNG): the To tag, temporary-GRUU ids and salts
    /// are derived from them.
    pub random: [u8; 32],
}

/// What processing a REGISTER produced.
#[derive(Debug)]
pub struct RegisterOutcome {
    /// The response to send (through the server transaction).
    pub response: Message,
    /// The AOR's bindings before and after, when the REGISTER changed the store (a 200 to
    /// a REGISTER with contacts or `*`). `None` for queries and errors. The registration
    /// event package and queued-message delivery start from here.
    pub update: Option<BindingsUpdate>,
}

/// The registrar role (RFC 3261 §10).
///
/// Calling contract: the Front End runtime hands every REGISTER that the request chain
/// routed to the registrar (the Request-URI is one of our domains, authentication done) to
/// [`handle_register`](Self::handle_register) and sends the response it returns; a 200 is
/// only returned after the store committed the bindings. It calls
/// [`handle_flow_failure`](Self::handle_flow_failure) when a flow closes or its keep-alives
/// stop (RFC 5626), and [`sweep_expired`](Self::sweep_expired) periodically (every few
/// seconds; expired bindings are never returned by lookups in between). The proxy routes
/// with [`lookup`](Self::lookup) and [`resolve_gruu`](Self::resolve_gruu).
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Registrar {
    config: Arc<RegistrarConfig>,
    store: Arc<dyn RegistrationStore>,
    gruu_key: [u8; 32],
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a URI resolved as a GRUU (RFC 5627) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GruuTarget {
    /// Not a GRUU of ours (no `gr` parameter, or not a temporary-GRUU form): route it as
    /// a normal Request-URI.
    NotGruu,
    /// A GRUU that names no live binding: answer 480 (RFC 5627 §5.5: the instance is not
    /// registered now) — or 404 for a temporary GRUU that was never issued.
    Unknown,
    /// Route to this binding only.
    Binding(Box<Binding>),
}

impl Registrar {
    /// A registrar over `store`. `gruu_key` keys the temporary-GRUU tokens: it must persist
    /// across restarts and be the same on every front end of a pool, or temporary GRUUs
    /// handed out earlier stop resolving. Fails when the config does not validate.
    pub fn new(
        config: RegistrarConfig,
        store: Arc<dyn RegistrationStore>,
        gruu_key: [u8; 32],
    ) -> Result<Registrar, ConfigError> {
        config.validate()?;
        Ok(Registrar {
            config: Arc::new(config),
            store,
            gruu_key,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Processes one REGISTER and returns the response to send. Never fails: a store that
    /// is down gives `500` with `Retry-After` and nothing is reported saved.
    pub async fn handle_register(&self, input: RegisterInput<'_>) -> RegisterOutcome {
        let drbg = Drbg::new(input.random);
        let tag = to_tag(&drbg);
        let parsed = match register::parse(&self.config, input.request, input.registrant) {
            Ok(p) => p,
            Err(early) => return self.error(input.request, &tag, &early),
        };
        if let Action::Query = parsed.action {
            return match self.store.lookup(&parsed.aor, input.now).await {
                Ok(set) => RegisterOutcome {
                    response: self.ok(input.request, &tag, &parsed, &set, input.now, &drbg),
                    update: None,
                },
                Err(e) => self.store_failed(input.request, &tag, &e),
            };
        }
        let plan = register::plan(PlanInput {
            parsed: parsed.clone(),
            flow: input.flow,
            now: input.now,
            drbg: drbg.clone(),
            max_contacts: self.config.max_contacts,
            on_too_many: self.config.on_too_many_contacts,
        });
        match self.store.update_bindings(&parsed.aor, plan).await {
            Ok(UpdateOutcome::Applied(update)) => RegisterOutcome {
                response: self.ok(
                    input.request,
                    &tag,
                    &parsed,
                    &update.after,
                    input.now,
                    &drbg,
                ),
                update: Some(update),
            },
            Ok(UpdateOutcome::Refused(refusal)) => {
                let early = match refusal {
                    Refusal::TooManyBindings { .. } => Early {
                        status: 403,
                        reason: "Too Many Contacts",
                        headers: Vec::new(),
                    },
                    // `Refusal::OutOfOrder` (and any later kind): §10.3 step 7 says only
                    // that "the request fails"; 500 is what RFC 3261 §12.2.2 uses for a
                    // lower CSeq inside a dialog.
                    _ => Early {
                        status: 500,
                        reason: "Out Of Order Request",
                        headers: Vec::new(),
                    },
                };
                tracing::debug!(aor = %parsed.aor, %refusal, "REGISTER refused");
                self.error(input.request, &tag, &early)
            }
            Err(e) => self.store_failed(input.request, &tag, &e),
        }
    }

    /// The live bindings of `aor` (for routing), in registration order.
    pub async fn lookup(&self, aor: &Address, now: Timestamp) -> Result<Vec<Binding>, StoreError> {
        self.store.lookup(aor, now).await
    }

    /// Resolves a Request-URI that may be a GRUU of ours (RFC 5627 §5.5): a public GRUU
    /// (`;gr=<instance>`) names the most recently refreshed live binding of that instance;
    /// a temporary GRUU (`tgruu.<token>@domain;gr`) the binding it was issued for, while
    /// that binding lives with the Call-ID it was issued under.
    pub async fn resolve_gruu(&self, uri: &str, now: Timestamp) -> Result<GruuTarget, StoreError> {
        let Ok(Uri::Sip(u)) = Uri::parse(uri) else {
            return Ok(GruuTarget::NotGruu);
        };
        let Some(gr) = u.params.get("gr") else {
            return Ok(GruuTarget::NotGruu);
        };
        let Some(user) = u.user else {
            return Ok(GruuTarget::NotGruu);
        };
        match gr {
            Some(urn) => {
                let Ok(aor) = Address::new(user, &u.host.to_string()) else {
                    return Ok(GruuTarget::Unknown);
                };
                let best = self
                    .store
                    .lookup(&aor, now)
                    .await?
                    .into_iter()
                    .filter(|b| {
                        b.instance
                            .as_deref()
                            .is_some_and(|i| gruu::instance_urn(i) == urn)
                    })
                    .max_by_key(|b| b.updated_at);
                Ok(best.map_or(GruuTarget::Unknown, |b| GruuTarget::Binding(Box::new(b))))
            }
            None => {
                let Some(token) = user.strip_prefix(gruu::TEMP_GRUU_PREFIX) else {
                    return Ok(GruuTarget::NotGruu);
                };
                let Some((id, n)) = gruu::decode_temp(&self.gruu_key, token) else {
                    return Ok(GruuTarget::Unknown);
                };
                let found = self.store.lookup_temp_gruu(id, now).await?;
                Ok(match found {
                    Some(b)
                        if b.temp_gruu.is_some_and(|t| n < t.issued)
                            && Host(&u).matches(b.aor.domain()) =>
                    {
                        GruuTarget::Binding(Box::new(b))
                    }
                    _ => GruuTarget::Unknown,
                })
            }
        }
    }

    /// A flow closed or stopped answering keep-alives (RFC 5626 §5.3): removes the bindings
    /// registered over it (per `flow_failure_removes`) and returns them.
    pub async fn handle_flow_failure(
        &self,
        node: &str,
        token: &str,
    ) -> Result<Vec<Binding>, StoreError> {
        let outbound_only = self.config.flow_failure_removes == FlowFailure::Outbound;
        self.store.remove_flow(node, token, outbound_only).await
    }

    /// Removes bindings expired at `now`, in batches, and returns them (at most
    /// `max_total`; call again if exactly that many came back).
    pub async fn sweep_expired(
        &self,
        now: Timestamp,
        max_total: usize,
    ) -> Result<Vec<Binding>, StoreError> {
        let mut removed = Vec::new();
        while removed.len() < max_total {
            let want = u32::try_from(max_total - removed.len())
                .unwrap_or(u32::MAX)
                .min(SWEEP_BATCH);
            let batch = self.store.remove_expired(now, want).await?;
            let done = (batch.len() as u32) < want;
            removed.extend(batch);
            if done {
                break;
            }
        }
        Ok(removed)
    }

    fn error(&self, request: &Message, tag: &str, early: &Early) -> RegisterOutcome {
        let mut b = ResponseBuilder::reply_to(request, early.status)
            .map(|b| b.reason(early.reason).to_tag(tag));
        for (name, value) in &early.headers {
            b = b.map(|b| b.header(*name, value));
        }
        RegisterOutcome {
            response: finish(b, request),
            update: None,
        }
    }

    fn store_failed(&self, request: &Message, tag: &str, e: &StoreError) -> RegisterOutcome {
        tracing::warn!(error = %e, "REGISTER not saved: store failed; answering 500");
        self.error(
            request,
            tag,
            &Early {
                status: 500,
                reason: "Server Internal Error (registration not saved)",
                headers: vec![(HeaderName::RetryAfter, "5".to_owned())],
            },
        )
    }

    fn ok(
        &self,
        request: &Message,
        tag: &str,
        parsed: &Parsed,
        set: &[Binding],
        now: Timestamp,
        drbg: &Drbg,
    ) -> Message {
        let mut b = ResponseBuilder::reply_to(request, 200).map(|b| b.to_tag(tag));
        let mut value = String::new();
        for (i, binding) in set.iter().enumerate() {
            if binding.is_expired(now) {
                continue;
            }
            value.clear();
            self.render_contact(&mut value, binding, parsed, now, drbg, i);
            b = b.map(|b| b.header(HeaderName::Contact, &value));
        }
        if parsed.outbound {
            b = b.map(|b| b.header(HeaderName::Require, "outbound"));
            if let Some(t) = self.config.flow_timer_s {
                b = b.map(|b| b.header(HeaderName::FlowTimer, &t.to_string()));
            }
        }
        b = b.map(|b| b.header(HeaderName::Supported, &register::SUPPORTED.join(", ")));
        if parsed.supports_path {
            for p in &parsed.path {
                b = b.map(|b| b.header(HeaderName::Path, p));
            }
        }
        for r in &self.config.service_route {
            b = b.map(|b| b.header(HeaderName::ServiceRoute, &format!("<{r}>")));
        }
        b = b.map(|b| b.header(HeaderName::Date, &register::http_date(now)));
        finish(b, request)
    }

    fn render_contact(
        &self,
        out: &mut String,
        b: &Binding,
        parsed: &Parsed,
        now: Timestamp,
        drbg: &Drbg,
        index: usize,
    ) {
        out.push('<');
        out.push_str(&b.contact);
        out.push('>');
        if !b.params.is_empty() {
            out.push(';');
            out.push_str(&b.params);
        }
        let _ = write!(out, ";expires={}", b.expires_in(now));
        if let Some(q) = b.q {
            let _ = write!(out, ";q={q}");
        }
        if !parsed.supports_gruu {
            return;
        }
        let Some(instance) = &b.instance else {
            return;
        };
        if let Some(public) = gruu::public_gruu_uri(b.aor.as_str(), instance) {
            let _ = write!(out, ";pub-gruu=\"{public}\"");
        }
        if let Some(t) = b.temp_gruu.filter(|t| t.issued > 0) {
            let salt_src = drbg.bytes(b"temp-gruu-salt", u32::try_from(index).unwrap_or(0));
            let mut salt = [0u8; 8];
            salt.copy_from_slice(&salt_src[..8]);
            let token = gruu::encode_temp(&self.gruu_key, salt, t.id, t.issued - 1);
            let _ = write!(
                out,
                ";temp-gruu=\"{}\"",
                gruu::temp_gruu_uri(b.aor.domain(), &token)
            );
        }
    }
}

/// Host comparison for a temporary GRUU's domain.
struct Host<'u, 'a>(&'u SipUri<'a>);

impl Host<'_, '_> {
    fn matches(&self, domain: &str) -> bool {
        self.0.host.to_string().eq_ignore_ascii_case(domain)
    }
}

fn to_tag(drbg: &Drbg) -> String {
    let b = drbg.bytes(b"to-tag", 0);
    let mut s = String::with_capacity(16);
    for x in &b[..8] {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Builds the response; a value the builder refuses (it cannot happen with the values
/// above, which come from parsed headers and validated config) falls back to a bare 500.
fn finish(b: Result<ResponseBuilder, confab_sip::BuildError>, request: &Message) -> Message {
    match b.and_then(ResponseBuilder::build) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "could not build a REGISTER response; sending 500");
            ResponseBuilder::reply_to(request, 500)
                .and_then(ResponseBuilder::build)
                .or_else(|_| ResponseBuilder::new(500).build())
                .unwrap_or_else(|_| unreachable_response())
        }
    }
}

/// A 500 built from constant text; the builder accepts it.
fn unreachable_response() -> Message {
    confab_sip::parse_datagram(
        bytes_of("SIP/2.0 500 Server Internal Error\r\nContent-Length: 0\r\n\r\n"),
        &confab_sip::Limits::DEFAULT,
    )
    .unwrap_or_else(|_| unreachable!("constant response parses"))
}

fn bytes_of(s: &'static str) -> bytes::Bytes {
    bytes::Bytes::from_static(s.as_bytes())
}
