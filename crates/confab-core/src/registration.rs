//! Registrations: the bindings of addresses-of-record to contacts (RFC 3261 §10), with the
//! RFC 5626 (outbound), RFC 5627 (GRUU) and RFC 3327 (Path) data a registrar keeps, and the
//! [`RegistrationStore`] trait.
//!
//! A [`Binding`] is one row: one contact of one AOR. The registrar role (`confab-registrar`)
//! decides what a REGISTER changes; the store only keeps the result. Which bindings are
//! "the same" (the binding key) is the registrar's business, not the store's: the store
//! replaces the whole set of one AOR atomically, see [`RegistrationStore::update_bindings`].
//!
//! What this module does not do: parse SIP (the registrar turns a REGISTER into bindings),
//! read the clock (`now` is always an argument), or generate GRUU text (the registrar does;
//! a binding only keeps the state needed to recognise its temporary GRUUs later).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use async_trait::async_trait;

use crate::{Address, Page, PageRequest, StoreError, Timestamp};

/// The transport a binding's flow uses (the Via transport of the REGISTER as received).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// WebSocket over TLS.
    Wss,
}

impl SipTransport {
    /// All transports.
    pub const ALL: [SipTransport; 5] = [
        SipTransport::Udp,
        SipTransport::Tcp,
        SipTransport::Tls,
        SipTransport::Ws,
        SipTransport::Wss,
    ];

    /// Lowercase name (`udp`, `tcp`, `tls`, `ws`, `wss`), as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
            SipTransport::Ws => "ws",
            SipTransport::Wss => "wss",
        }
    }

    /// True for the connection-oriented transports (all but UDP).
    pub const fn is_connection(self) -> bool {
        !matches!(self, SipTransport::Udp)
    }
}

/// An unknown transport name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport `{0}` is unknown; expected udp, tcp, tls, ws or wss")]
pub struct SipTransportError(pub String);

impl FromStr for SipTransport {
    type Err = SipTransportError;
    /// Accepts the names case-insensitively (so a Via token like `TLS` works too).
    fn from_str(s: &str) -> Result<SipTransport, SipTransportError> {
        SipTransport::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| SipTransportError(s.to_owned()))
    }
}

impl fmt::Display for SipTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Contact `q` value (RFC 3261 §20.10 `qvalue`), kept in thousandths: `0.5` is 500.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct QValue(u16);

/// A `q` parameter that is not a RFC 3261 `qvalue`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("q value `{0}` is invalid; expected 0 to 1 with at most three decimals (e.g. 0.5)")]
pub struct QValueError(pub String);

impl QValue {
    /// q = 1.
    pub const MAX: QValue = QValue(1000);

    /// From thousandths; `None` above 1000.
    pub const fn from_thousandths(n: u16) -> Option<QValue> {
        if n <= 1000 { Some(QValue(n)) } else { None }
    }

    /// The value in thousandths (0..=1000).
    pub const fn thousandths(self) -> u16 {
        self.0
    }

    /// Parses `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
    pub fn parse(s: &str) -> Result<QValue, QValueError> {
        let bad = || QValueError(s.to_owned());
        let b = s.as_bytes();
        let (int, frac) = match b.iter().position(|&c| c == b'.') {
            Some(i) => (&b[..i], &b[i + 1..]),
            None => (b, &[][..]),
        };
        if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let mut n: u16 = 0;
        for i in 0..3 {
            n = n * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
        }
        match int[0] {
            b'0' => Ok(QValue(n)),
            b'1' if n == 0 => Ok(QValue(1000)),
            _ => Err(bad()),
        }
    }
}

impl FromStr for QValue {
    type Err = QValueError;
    fn from_str(s: &str) -> Result<QValue, QValueError> {
        QValue::parse(s)
    }
}

impl fmt::Display for QValue {
    /// Shortest form: `1`, `0`, `0.5`, `0.25`, `0.125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1000 => f.write_str("1"),
            0 => f.write_str("0"),
            n => {
                let mut digits = format!("{n:03}");
                while digits.ends_with('0') {
                    digits.pop();
                }
                write!(f, "0.{digits}")
            }
        }
    }
}

/// The flow a binding's REGISTER arrived on (RFC 5626 §5), and which front end holds it.
///
/// The token is opaque here: the transport adapter's text form (for `confab-transport`,
/// `FlowToken::encode`). Only the node named by `node` can send on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FlowInfo {
    /// The transport adapter's token for the flow.
    pub token: String,
    /// Transport of the flow.
    pub transport: SipTransport,
    /// The client's address as seen by the server (the `received`/`rport` address).
    pub source: SocketAddr,
    /// The node id of the front end that holds the flow (`node_id` in `confab.toml`).
    pub node: String,
}

/// Temporary-GRUU state of a binding (RFC 5627 §3.2): the registrar issues a new temporary
/// GRUU at every REGISTER refresh, and all issued with the same Call-ID stay valid while the
/// binding lives. A temporary GRUU encodes (`id`, sequence number); it resolves to this binding
/// when `id` matches and the sequence number is below `issued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TempGruuState {
    /// Random identifier chosen when the binding was created with its current Call-ID.
    pub id: u64,
    /// How many temporary GRUUs were issued for `id` (the next one gets this number).
    pub issued: u32,
}

/// One binding of an address-of-record to a contact.
///
/// Built by the registrar from a REGISTER; the store keeps it as given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    /// The address-of-record (the To of the REGISTER).
    pub aor: Address,
    /// The Contact URI exactly as the client wrote it (without `<>` and header parameters).
    pub contact: String,
    /// Contact header parameters to echo in responses and use for caller preferences, as
    /// written, without the leading `;` and without `expires` and `q` (those are the fields
    /// below). Includes `+sip.instance` and `reg-id` when present. Empty when none.
    pub params: String,
    /// The `q` parameter, if given.
    pub q: Option<QValue>,
    /// When the binding expires.
    pub expires_at: Timestamp,
    /// Call-ID of the REGISTER that last wrote this binding.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// `+sip.instance` value without the surrounding quotes (e.g. `<urn:uuid:...>`).
    pub instance: Option<String>,
    /// RFC 5626 `reg-id`, only together with `instance`.
    pub reg_id: Option<u32>,
    /// The flow the REGISTER arrived on.
    pub flow: FlowInfo,
    /// Path header values (RFC 3327) of the REGISTER, in order, each as written
    /// (`<sip:edge.example.com;lr>`). Empty when there was no Path.
    pub path: Vec<String>,
    /// User-Agent header of the REGISTER.
    pub user_agent: Option<String>,
    /// When this binding was first created.
    pub registered_at: Timestamp,
    /// When the last REGISTER refreshed or changed it.
    pub updated_at: Timestamp,
    /// Temporary-GRUU state, when the client asked for GRUUs (`Supported: gruu` with an
    /// instance). The public GRUU needs no state: it is the AOR with `;gr=` the instance.
    pub temp_gruu: Option<TempGruuState>,
}

impl Binding {
    /// Seconds left until expiry at `now`, rounded down; 0 when expired.
    pub fn expires_in(&self, now: Timestamp) -> u32 {
        let ms = self.expires_at.as_millis().saturating_sub(now.as_millis());
        u32::try_from((ms.max(0)) / 1000).unwrap_or(u32::MAX)
    }

    /// Whether the binding has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// True for an RFC 5626 outbound binding (instance and reg-id), which a flow failure
    /// removes.
    pub fn is_outbound(&self) -> bool {
        self.instance.is_some() && self.reg_id.is_some()
    }
}

/// Why a binding plan refused to change anything (RFC 3261 §10.3). Carried back from the
/// plan to the caller of [`RegistrationStore::update_bindings`] untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// §10.3 step 7: a binding exists with the same Call-ID and a CSeq not lower than the
    /// request's (an old or repeated REGISTER).
    #[error(
        "out of order REGISTER: binding has Call-ID {call_id} with CSeq {stored}, request has {received}"
    )]
    OutOfOrder {
        /// The Call-ID.
        call_id: String,
        /// The stored CSeq.
        stored: u32,
        /// The request's CSeq.
        received: u32,
    },
    /// The AOR would have more bindings than allowed.
    #[error("too many bindings: at most {max} contacts per address")]
    TooManyBindings {
        /// The configured cap.
        max: u32,
    },
}

/// What one REGISTER changed: the AOR's bindings before (as stored, expired ones included)
/// and after (as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingsUpdate {
    /// Bindings before the change, in store order.
    pub before: Vec<Binding>,
    /// Bindings after the change, as the plan returned them.
    pub after: Vec<Binding>,
}

/// The outcome of [`RegistrationStore::update_bindings`] when the store worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The plan's set was committed.
    Applied(BindingsUpdate),
    /// The plan refused; nothing was written.
    Refused(Refusal),
}

/// The registrar's decision for one REGISTER: given the AOR's current bindings (all stored
/// rows, expired ones included, in store order), return the complete new set, or refuse.
///
/// The plan runs inside the store's write transaction, so it must be quick and pure: no I/O,
/// no locks, no clock (capture `now`). It may run at most once.
pub type BindingPlan = Box<dyn FnOnce(&[Binding]) -> Result<Vec<Binding>, Refusal> + Send>;

/// Durable registrations.
///
/// Contract for every implementation (beyond the crate-wide one: `Ok` for a write means
/// committed, `Err` means nothing written):
/// - [`update_bindings`](Self::update_bindings) is atomic per AOR: two REGISTERs for the same
///   AOR never interleave between reading the current set and writing the new one;
/// - an AOR's bindings are listed in the order they were first stored (a binding the plan
///   keeps keeps its place; new ones go last);
/// - expired bindings stay stored until [`remove_expired`](Self::remove_expired) or the
///   AOR's next update removes them, but [`lookup`](Self::lookup) never returns them.
#[async_trait]
pub trait RegistrationStore: Send + Sync {
    /// Reads the bindings of `aor`, hands them to `plan` and, unless it refuses, replaces
    /// the AOR's bindings with the set it returns, all in one transaction, and returns only
    /// after the commit. An empty set removes every binding of the AOR.
    async fn update_bindings(
        &self,
        aor: &Address,
        plan: BindingPlan,
    ) -> Result<UpdateOutcome, StoreError>;

    /// The unexpired bindings of `aor` at `now` (for routing and query REGISTERs).
    async fn lookup(&self, aor: &Address, now: Timestamp) -> Result<Vec<Binding>, StoreError>;

    /// The unexpired binding whose temporary-GRUU id is `id`, if any.
    async fn lookup_temp_gruu(
        &self,
        id: u64,
        now: Timestamp,
    ) -> Result<Option<Binding>, StoreError>;

    /// All bindings (expired ones included until swept), ordered by AOR then insertion, one
    /// page at a time.
    async fn list_bindings(&self, page: PageRequest) -> Result<Page<Binding>, StoreError>;

    /// Removes up to `limit` bindings that expired at or before `now` and returns them
    /// (so a caller can send registration-event notifications). Call again while it
    /// returns `limit` items.
    async fn remove_expired(&self, now: Timestamp, limit: u32) -> Result<Vec<Binding>, StoreError>;

    /// Removes the bindings registered over the flow `token` held by node `node` (RFC 5626
    /// §5.3: the flow failed) and returns them. With `outbound_only`, only outbound bindings
    /// (instance and reg-id) are removed; plain RFC 3261 bindings stay until they expire.
    async fn remove_flow(
        &self,
        node: &str,
        token: &str,
        outbound_only: bool,
    ) -> Result<Vec<Binding>, StoreError>;

    /// How many bindings are stored (expired ones included until swept).
    async fn count_bindings(&self) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn q_ok(input: &str, thousandths: u16, shown: &str) {
        let q = QValue::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(q.thousandths(), thousandths, "{input}");
        assert_eq!(q.to_string(), shown, "{input}");
    }

    #[test]
    fn qvalues() {
        q_ok("0", 0, "0");
        q_ok("0.", 0, "0");
        q_ok("0.5", 500, "0.5");
        q_ok("0.25", 250, "0.25");
        q_ok("0.125", 125, "0.125");
        q_ok("0.010", 10, "0.01");
        q_ok("1", 1000, "1");
        q_ok("1.000", 1000, "1");
        for bad in [
            "", "1.5", "1.001", "2", "0.1234", ".5", "0,5", "-0", "0.5x", "00.5",
        ] {
            assert_eq!(QValue::parse(bad), Err(QValueError(bad.into())), "{bad}");
        }
    }

    #[test]
    fn transports() {
        for t in SipTransport::ALL {
            assert_eq!(t.as_str().parse::<SipTransport>(), Ok(t));
            assert_eq!(t.as_str().to_uppercase().parse::<SipTransport>(), Ok(t));
        }
        assert_eq!(
            "sctp".parse::<SipTransport>(),
            Err(SipTransportError("sctp".into()))
        );
        assert!(!SipTransport::Udp.is_connection());
        assert!(SipTransport::Wss.is_connection());
    }

    #[test]
    fn expiry_arithmetic() {
        let b = Binding {
            aor: Address::parse("alice@example.com").unwrap(),
            contact: "sip:alice@192.0.2.1".into(),
            params: String::new(),
            q: None,
            expires_at: Timestamp(10_500),
            call_id: "c".into(),
            cseq: 1,
            instance: None,
            reg_id: None,
            flow: FlowInfo {
                token: "t".into(),
                transport: SipTransport::Udp,
                source: "192.0.2.1:5060".parse().unwrap(),
                node: "n".into(),
            },
            path: vec![],
            user_agent: None,
            registered_at: Timestamp(0),
            updated_at: Timestamp(0),
            temp_gruu: None,
        };
        assert_eq!(b.expires_in(Timestamp(0)), 10);
        assert_eq!(b.expires_in(Timestamp(10_499)), 0);
        assert!(!b.is_expired(Timestamp(10_499)));
        assert!(b.is_expired(Timestamp(10_500)));
        assert_eq!(b.expires_in(Timestamp(20_000)), 0);
        assert!(!b.is_outbound());
    }
}
