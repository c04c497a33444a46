//! The sans-IO part of processing a REGISTER (RFC 3261 §10.3): reading the request into a
//! [`Parsed`] request or an early error [`Early`], the binding plan that runs inside the
//! store's transaction, and the response.
//!
//! Order of the checks (§10.3 steps, with the extensions):
//!
//! 1. `Require` holds only `path`, `outbound`, `gruu` (else 420 with Unsupported, §8.2.2.3);
//! 2. the To address is a valid AOR (else 404, step 3) the registrant may register (else
//!    403, step 3 "authorized to modify the registrations");
//! 3. Contact, Expires, CSeq, Call-ID parse (else 400 naming the header); `*` is alone and
//!    comes with `Expires: 0` (else 400, step 6);
//! 4. each contact is a `sip:`/`sips:` URI (else 400) and not a GRUU (a `gr` parameter:
//!    RFC 5627 forbids binding a GRUU as a contact; 403);
//! 5. outbound (RFC 5626 §6) applies to a contact with `+sip.instance` and `reg-id` when the
//!    REGISTER has `Supported: outbound`; if the first hop is not outbound-aware (the
//!    REGISTER came through proxies and the first hop's Path URI — the last Path value —
//!    has no `ob`), 439;
//! 6. expiry per contact: the `expires` parameter, else the Expires header, else
//!    `default_expires_s`; below `min_expires_s` and not 0 → 423 with Min-Expires; above
//!    `max_expires_s` → shortened;
//! 7. in the store's transaction ([`plan`]): expired bindings are dropped; for `*`, the
//!    Call-ID/CSeq rule of step 6; for each contact, the binding it names (see the binding
//!    key below) is compared by Call-ID and CSeq (same Call-ID and CSeq not higher → the
//!    whole REGISTER fails, 500), then updated, removed (expiry 0) or added; the cap on
//!    bindings per AOR applies when bindings are added;
//! 8. 200 listing every binding with its remaining expiry (and GRUUs, Path, Service-Route,
//!    `Require: outbound`, Flow-Timer, Date).
//!
//! **Binding key**: a contact with instance and reg-id (outbound applied) names the binding
//! with the same pair (RFC 5626 §6); a contact with an instance and no reg-id names the
//! binding of that instance without reg-id (RFC 5627: one binding per instance, so a device
//! that changed address replaces its old contact); any other contact names the binding
//! without instance whose Contact URI is equivalent (RFC 3261 §19.1.4), so a plain
//! contact never overwrites a device's instance binding.

use std::fmt::Write as _;

use confab_core::{
    Address, Binding, BindingPlan, FlowInfo, QValue, Refusal, TempGruuState, Timestamp,
};
use confab_sip::headers::Contact;
use confab_sip::{HeaderName, Message, SipUri, Uri};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{RegistrarConfig, TooManyContacts};

/// The option tags this registrar implements.
pub const SUPPORTED: [&str; 3] = ["path", "outbound", "gruu"];

/// Who sends the REGISTER, as authentication established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registrant {
    /// A user authenticated by digest (or asserted by a trusted peer): may register their
    /// own address only.
    User(Address),
    /// A trusted peer (configured gateway, another front end) exempt from digest: may
    /// register any address.
    TrustedPeer,
}

/// An error response decided before the store is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Early {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
    pub(crate) headers: Vec<(HeaderName, String)>,
}

impl Early {
    fn new(status: u16, reason: &'static str) -> Early {
        Early {
            status,
            reason,
            headers: Vec::new(),
        }
    }
}

/// One Contact of the REGISTER, checked.
#[derive(Debug, Clone)]
pub(crate) struct ContactIn {
    pub(crate) uri: String,
    pub(crate) params: String,
    pub(crate) q: Option<QValue>,
    pub(crate) expires: u32,
    pub(crate) instance: Option<String>,
    /// Only when outbound applies.
    pub(crate) reg_id: Option<u32>,
}

/// What the REGISTER asks.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// No Contact: list the bindings.
    Query,
    /// `Contact: *` with `Expires: 0`.
    RemoveAll,
    /// Add, refresh or remove these.
    Contacts(Vec<ContactIn>),
}

/// The REGISTER, read and checked.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) aor: Address,
    pub(crate) call_id: String,
    pub(crate) cseq: u32,
    pub(crate) action: Action,
    pub(crate) supports_path: bool,
    pub(crate) supports_gruu: bool,
    pub(crate) outbound: bool,
    pub(crate) path: Vec<String>,
    pub(crate) user_agent: Option<String>,
}

fn has_tag<'m>(
    mut tags: impl Iterator<Item = Result<&'m str, confab_sip::HeaderError>>,
    tag: &str,
) -> bool {
    tags.any(|t| t.is_ok_and(|t| t.eq_ignore_ascii_case(tag)))
}

fn bad(reason: &'static str) -> Early {
    Early::new(400, reason)
}

/// Reads and checks a REGISTER (steps 1-6 above).
pub(crate) fn parse(
    config: &RegistrarConfig,
    request: &Message,
    registrant: &Registrant,
) -> Result<Parsed, Early> {
    // 1. Require.
    let mut unsupported = String::new();
    for tag in request.require() {
        let tag = tag.map_err(|_| bad("Malformed Require header"))?;
        if !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
            if !unsupported.is_empty() {
                unsupported.push_str(", ");
            }
            unsupported.push_str(tag);
        }
    }
    if !unsupported.is_empty() {
        let mut e = Early::new(420, "Bad Extension");
        e.headers.push((HeaderName::Unsupported, unsupported));
        return Err(e);
    }

    // 2. The AOR and who may register it.
    let to = match request.to() {
        Some(Ok(to)) => to,
        _ => return Err(bad("Malformed To header")),
    };
    let aor = match to.uri {
        Uri::Sip(SipUri {
            user: Some(user),
            host,
            ..
        }) => Address::new(user, &host.to_string()).ok(),
        _ => None,
    };
    let Some(aor) = aor else {
        return Err(Early::new(
            404,
            "Not Found (To is not a valid address-of-record)",
        ));
    };
    match registrant {
        Registrant::TrustedPeer => {}
        Registrant::User(user) if *user == aor => {}
        Registrant::User(_) => {
            return Err(Early::new(
                403,
                "Forbidden (not allowed to register this address)",
            ));
        }
    }

    // 3. Headers.
    let call_id = match request.call_id() {
        Some(Ok(c)) => c.to_owned(),
        _ => return Err(bad("Malformed Call-ID header")),
    };
    let cseq = match request.cseq() {
        Some(Ok(c)) => c.seq,
        _ => return Err(bad("Malformed CSeq header")),
    };
    let header_expires = match request.expires() {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(_)) => return Err(bad("Malformed Expires header")),
    };
    let supports_path = has_tag(request.supported(), "path");
    let supports_gruu = has_tag(request.supported(), "gruu") && config.gruu;
    let supports_outbound = has_tag(request.supported(), "outbound");
    let mut path = Vec::new();
    for p in request.paths() {
        let p = p.map_err(|_| bad("Malformed Path header"))?;
        path.push(render_name_addr(
            p.display_name,
            p.uri_str,
            p.params.as_str(),
        ));
    }
    let user_agent = match request.user_agent() {
        Some(Ok(ua)) => Some(ua.to_owned()),
        _ => None,
    };

    let mut star = false;
    let mut contacts = Vec::new();
    let mut too_brief = false;
    let mut any_outbound = false;
    for c in request.contacts() {
        let c = c.map_err(|_| bad("Malformed Contact header"))?;
        let ca = match c {
            Contact::Star => {
                star = true;
                continue;
            }
            Contact::Addr(ca) => ca,
        };
        // 4. Contact URI.
        let Uri::Sip(uri) = ca.addr.uri else {
            return Err(bad("Contact URI must be sip: or sips:"));
        };
        if uri.params.contains("gr") {
            return Err(Early::new(403, "Forbidden (Contact is a GRUU)"));
        }
        // 5. Outbound.
        let outbound = supports_outbound && ca.instance.is_some() && ca.reg_id.is_some();
        any_outbound |= outbound;
        // 6. Expiry.
        let mut expires = ca
            .expires
            .or(header_expires)
            .unwrap_or(config.default_expires_s);
        if expires != 0 && expires < config.min_expires_s {
            too_brief = true;
        }
        expires = expires.min(config.max_expires_s);
        let mut params = String::new();
        for p in ca.addr.params.iter() {
            let skip = p.name.eq_ignore_ascii_case("expires")
                || p.name.eq_ignore_ascii_case("q")
                || (!outbound && p.name.eq_ignore_ascii_case("reg-id"));
            if skip {
                continue;
            }
            if !params.is_empty() {
                params.push(';');
            }
            params.push_str(p.name);
            if let Some(v) = p.value {
                params.push('=');
                params.push_str(v);
            }
        }
        contacts.push(ContactIn {
            uri: ca.addr.uri_str.to_owned(),
            params,
            q: ca.q.and_then(QValue::from_thousandths),
            expires,
            instance: ca.instance.map(str::to_owned),
            reg_id: if outbound { ca.reg_id } else { None },
        });
    }
    if star && (!contacts.is_empty() || request.count(HeaderName::Contact) > 1) {
        return Err(bad("Bad Request (Contact: * must be the only contact)"));
    }
    if star && header_expires != Some(0) {
        return Err(bad("Bad Request (Contact: * requires Expires: 0)"));
    }
    if too_brief {
        let mut e = Early::new(423, "Interval Too Brief");
        e.headers
            .push((HeaderName::MinExpires, config.min_expires_s.to_string()));
        return Err(e);
    }
    if any_outbound && !first_hop_supports_outbound(request, &path) {
        return Err(Early::new(439, "First Hop Lacks Outbound Support"));
    }
    let action = if star {
        Action::RemoveAll
    } else if contacts.is_empty() {
        Action::Query
    } else {
        Action::Contacts(contacts)
    };
    Ok(Parsed {
        aor,
        call_id,
        cseq,
        action,
        supports_path,
        supports_gruu,
        outbound: any_outbound,
        path,
        user_agent,
    })
}

/// RFC 5626 §6: with no proxy between the UA and us (one Via, no Path) we hold the flow
/// ourselves; otherwise the first hop (whose Path value is the last one) must have put
/// `ob` in its Path URI.
fn first_hop_supports_outbound(request: &Message, path: &[String]) -> bool {
    match request.paths().last() {
        None => request.vias().count() <= 1 && path.is_empty(),
        Some(Ok(p)) => matches!(p.uri, Uri::Sip(u) if u.params.contains("ob")),
        Some(Err(_)) => false,
    }
}

/// A name-addr in canonical form: `"Name" <uri>;params` (no folding, no extra spaces).
fn render_name_addr(display: Option<&str>, uri: &str, params: &str) -> String {
    let mut s = String::with_capacity(uri.len() + params.len() + 4);
    if let Some(d) = display {
        s.push_str(d);
        s.push(' ');
    }
    s.push('<');
    s.push_str(uri);
    s.push('>');
    let params = params.trim_start_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    if !params.is_empty() {
        s.push(';');
        s.push_str(params);
    }
    s
}

/// Deterministic bytes derived from the caller's randomness (HMAC-SHA256 as a PRF), so a
/// REGISTER needing several random values takes one 32-byte input.
#[derive(Debug, Clone)]
pub(crate) struct Drbg {
    seed: [u8; 32],
}

impl Drbg {
    pub(crate) fn new(seed: [u8; 32]) -> Drbg {
        Drbg { seed }
    }

    pub(crate) fn bytes(&self, label: &[u8], index: u32) -> [u8; 32] {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.seed).expect("HMAC takes any key length");
        m.update(label);
        m.update(&index.to_be_bytes());
        m.finalize().into_bytes().into()
    }

    pub(crate) fn u64(&self, label: &[u8], index: u32) -> u64 {
        let b = self.bytes(label, index);
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

fn same_binding(b: &Binding, c: &ContactIn) -> bool {
    match (&c.instance, c.reg_id) {
        (Some(i), Some(r)) => b.instance.as_deref() == Some(i) && b.reg_id == Some(r),
        (Some(i), None) => b.instance.as_deref() == Some(i) && b.reg_id.is_none(),
        (None, _) => {
            b.instance.is_none()
                && match (SipUri::parse(&b.contact), SipUri::parse(&c.uri)) {
                    (Ok(x), Ok(y)) => x.equivalent(&y),
                    _ => b.contact == c.uri,
                }
        }
    }
}

/// Everything the plan needs, owned (it runs on the store's writer).
#[derive(Debug, Clone)]
pub(crate) struct PlanInput {
    pub(crate) parsed: Parsed,
    pub(crate) flow: FlowInfo,
    pub(crate) now: Timestamp,
    pub(crate) drbg: Drbg,
    pub(crate) max_contacts: u32,
    pub(crate) on_too_many: TooManyContacts,
}

fn out_of_order(b: &Binding, cseq: u32) -> Refusal {
    Refusal::OutOfOrder {
        call_id: b.call_id.clone(),
        stored: b.cseq,
        received: cseq,
    }
}

/// Step 7: the new binding set of the AOR from the current one.
pub(crate) fn apply(input: &PlanInput, current: &[Binding]) -> Result<Vec<Binding>, Refusal> {
    let p = &input.parsed;
    let now = input.now;
    let mut set: Vec<Binding> = current
        .iter()
        .filter(|b| !b.is_expired(now))
        .cloned()
        .collect();
    let mut touched = vec![false; set.len()];
    let contacts = match &p.action {
        Action::Query => return Ok(set),
        Action::RemoveAll => {
            if let Some(b) = set
                .iter()
                .find(|b| b.call_id == p.call_id && p.cseq <= b.cseq)
            {
                return Err(out_of_order(b, p.cseq));
            }
            return Ok(Vec::new());
        }
        Action::Contacts(c) => c,
    };
    let mut added = 0usize;
    for (i, c) in contacts.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let expires_at = Timestamp(
            now.as_millis()
                .saturating_add(i64::from(c.expires).saturating_mul(1000)),
        );
        let fresh_gruu = || TempGruuState {
            id: input.drbg.u64(b"temp-gruu-id", index),
            issued: 0,
        };
        match set.iter().position(|b| same_binding(b, c)) {
            Some(j) => {
                let b = &mut set[j];
                if !touched[j] && b.call_id == p.call_id && p.cseq <= b.cseq {
                    return Err(out_of_order(b, p.cseq));
                }
                if c.expires == 0 {
                    set.remove(j);
                    touched.remove(j);
                    continue;
                }
                let same_call = b.call_id == p.call_id;
                b.contact.clone_from(&c.uri);
                b.params.clone_from(&c.params);
                b.q = c.q;
                b.expires_at = expires_at;
                b.call_id.clone_from(&p.call_id);
                b.cseq = p.cseq;
                b.instance.clone_from(&c.instance);
                b.reg_id = c.reg_id;
                b.flow = input.flow.clone();
                b.path.clone_from(&p.path);
                b.user_agent.clone_from(&p.user_agent);
                b.updated_at = now;
                let kept = if same_call { b.temp_gruu } else { None };
                b.temp_gruu = if p.supports_gruu && c.instance.is_some() {
                    let mut st = kept.unwrap_or_else(fresh_gruu);
                    st.issued = st.issued.saturating_add(1);
                    Some(st)
                } else {
                    kept
                };
                touched[j] = true;
            }
            None if c.expires == 0 => {}
            None => {
                added += 1;
                set.push(Binding {
                    aor: p.aor.clone(),
                    contact: c.uri.clone(),
                    params: c.params.clone(),
                    q: c.q,
                    expires_at,
                    call_id: p.call_id.clone(),
                    cseq: p.cseq,
                    instance: c.instance.clone(),
                    reg_id: c.reg_id,
                    flow: input.flow.clone(),
                    path: p.path.clone(),
                    user_agent: p.user_agent.clone(),
                    registered_at: now,
                    updated_at: now,
                    temp_gruu: (p.supports_gruu && c.instance.is_some()).then(|| {
                        let mut st = fresh_gruu();
                        st.issued = 1;
                        st
                    }),
                });
                touched.push(true);
            }
        }
    }
    let max = input.max_contacts as usize;
    if added > 0 && set.len() > max {
        let written = touched.iter().filter(|t| **t).count();
        if input.on_too_many == TooManyContacts::Reject || written > max {
            return Err(Refusal::TooManyBindings {
                max: input.max_contacts,
            });
        }
        while set.len() > max {
            let oldest = set
                .iter()
                .enumerate()
                .filter(|(k, _)| !touched[*k])
                .min_by_key(|(_, b)| b.updated_at)
                .map(|(k, _)| k);
            match oldest {
                Some(k) => {
                    set.remove(k);
                    touched.remove(k);
                }
                None => break,
            }
        }
    }
    Ok(set)
}

/// The plan handed to the store.
pub(crate) fn plan(input: PlanInput) -> BindingPlan {
    Box::new(move |current| apply(&input, current))
}

/// `Date` value (RFC 3261 §20.17, RFC 1123 form, always GMT).
pub(crate) fn http_date(now: Timestamp) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now.as_millis().max(0) / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut s = String::with_capacity(29);
    let _ = write!(
        s,
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(Timestamp(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(Timestamp(1_289_690_940_000)),
            "Sat, 13 Nov 2010 23:29:00 GMT"
        );
        assert_eq!(
            http_date(Timestamp(951_782_400_999)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn name_addr_rendering() {
        assert_eq!(render_name_addr(None, "sip:a;lr", ""), "<sip:a;lr>");
        assert_eq!(
            render_name_addr(Some("\"E\""), "sip:a;lr", " ;x=1"),
            "\"E\" <sip:a;lr>;x=1"
        );
    }
}
