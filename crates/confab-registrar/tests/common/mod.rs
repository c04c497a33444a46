//! Test support: an in-memory [`RegistrationStore`] with commit-failure injection, and a
//! harness that sends REGISTERs through a [`Registrar`] on a simulated clock.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use confab_core::{
    Address, Binding, BindingPlan, BindingsUpdate, FlowInfo, Page, PageRequest, RegistrationStore,
    SipTransport, StoreError, Timestamp, UpdateOutcome,
};
use confab_registrar::{RegisterInput, RegisterOutcome, Registrant, Registrar, RegistrarConfig};
use confab_sip::{HeaderName, Limits, Message, parse_datagram};

/// Bindings in a `Vec`, same contract as the SQLite store: the plan sees the AOR's rows in
/// registration order and its result replaces them atomically (one mutex), unless a commit
/// failure was injected, in which case nothing changes and the caller gets `Unavailable`.
#[derive(Debug, Default)]
pub struct MemStore {
    rows: Mutex<Vec<Binding>>,
    fail_commits: AtomicU32,
}

impl MemStore {
    /// The next `n` writes fail at "commit".
    pub fn fail_next_commits(&self, n: u32) {
        self.fail_commits.store(n, Ordering::SeqCst);
    }

    /// Every stored row (expired ones included).
    pub fn all(&self) -> Vec<Binding> {
        self.rows.lock().unwrap().clone()
    }

    fn failing(&self) -> bool {
        self.fail_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

fn order(v: &mut [Binding]) {
    v.sort_by_key(|b| b.registered_at);
}

#[async_trait]
impl RegistrationStore for MemStore {
    async fn update_bindings(
        &self,
        aor: &Address,
        plan: BindingPlan,
    ) -> Result<UpdateOutcome, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let mut before: Vec<Binding> = rows.iter().filter(|b| &b.aor == aor).cloned().collect();
        order(&mut before);
        let after = match plan(&before) {
            Ok(a) => a,
            Err(r) => return Ok(UpdateOutcome::Refused(r)),
        };
        if self.failing() {
            return Err(StoreError::unavailable("injected commit failure"));
        }
        rows.retain(|b| &b.aor != aor);
        rows.extend(after.iter().cloned());
        Ok(UpdateOutcome::Applied(BindingsUpdate { before, after }))
    }

    async fn lookup(&self, aor: &Address, now: Timestamp) -> Result<Vec<Binding>, StoreError> {
        let mut v: Vec<Binding> = self
            .rows
            .lock()
            .unwrap()
            .iter()
            .filter(|b| &b.aor == aor && !b.is_expired(now))
            .cloned()
            .collect();
        order(&mut v);
        Ok(v)
    }

    async fn lookup_temp_gruu(
        &self,
        id: u64,
        now: Timestamp,
    ) -> Result<Option<Binding>, StoreError> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .iter()
            .find(|b| b.temp_gruu.is_some_and(|t| t.id == id) && !b.is_expired(now))
            .cloned())
    }

    async fn list_bindings(&self, _page: PageRequest) -> Result<Page<Binding>, StoreError> {
        Ok(Page {
            items: self.all(),
            next: None,
        })
    }

    async fn remove_expired(&self, now: Timestamp, limit: u32) -> Result<Vec<Binding>, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let mut gone = Vec::new();
        rows.retain(|b| {
            if b.is_expired(now) && gone.len() < limit as usize {
                gone.push(b.clone());
                false
            } else {
                true
            }
        });
        Ok(gone)
    }

    async fn remove_flow(
        &self,
        node: &str,
        token: &str,
        outbound_only: bool,
    ) -> Result<Vec<Binding>, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let mut gone = Vec::new();
        rows.retain(|b| {
            let hit =
                b.flow.node == node && b.flow.token == token && (!outbound_only || b.is_outbound());
            if hit {
                gone.push(b.clone());
            }
            !hit
        });
        Ok(gone)
    }

    async fn count_bindings(&self) -> Result<u64, StoreError> {
        Ok(self.rows.lock().unwrap().len() as u64)
    }
}

/// A flow on node `node-1` from `192.0.2.10:<port>` over `transport`; the token names it.
pub fn flow(token: &str, transport: SipTransport, port: u16) -> FlowInfo {
    FlowInfo {
        token: token.to_owned(),
        transport,
        source: format!("192.0.2.10:{port}").parse().unwrap(),
        node: "node-1".to_owned(),
    }
}

/// A REGISTER for `aor` (`user@domain`) with the given Call-ID, CSeq and extra header
/// lines (each `Name: value`).
pub fn register(aor: &str, call_id: &str, cseq: u32, headers: &[&str]) -> Message {
    let mut text = format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{call_id}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{aor}>;tag=f{cseq}\r\n\
         To: <sip:{aor}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n",
        domain = aor.split_once('@').map_or(aor, |(_, d)| d),
    );
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    parse_datagram(Bytes::from(text), &Limits::DEFAULT).unwrap()
}

/// A registrar over a [`MemStore`] and a clock the test moves.
pub struct Harness {
    pub store: Arc<MemStore>,
    pub registrar: Registrar,
    /// Seconds since the epoch.
    pub now_s: i64,
    pub flow: FlowInfo,
    pub registrant: Registrant,
    seq: u8,
}

pub const GRUU_KEY: [u8; 32] = [42; 32];

impl Harness {
    pub fn new(config: RegistrarConfig) -> Harness {
        let store = Arc::new(MemStore::default());
        let registrar = Registrar::new(config, store.clone(), GRUU_KEY).unwrap();
        Harness {
            store,
            registrar,
            now_s: 1_700_000_000,
            flow: flow("udp-flow-1", SipTransport::Udp, 5060),
            registrant: Registrant::User(Address::parse("alice@example.com").unwrap()),
            seq: 0,
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(self.now_s * 1000)
    }

    /// Sends `request` and returns the outcome.
    pub async fn send(&mut self, request: &Message) -> RegisterOutcome {
        self.seq = self.seq.wrapping_add(1);
        self.registrar
            .handle_register(RegisterInput {
                request,
                registrant: &self.registrant,
                flow: self.flow.clone(),
                now: self.now(),
                random: [self.seq; 32],
            })
            .await
    }

    /// The live contacts of alice, as stored, in order.
    pub async fn stored(&self, aor: &str) -> Vec<String> {
        self.registrar
            .lookup(&Address::parse(aor).unwrap(), self.now())
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.contact)
            .collect()
    }
}

/// Status code of a response.
pub fn status(m: &Message) -> u16 {
    m.status().unwrap()
}

/// Every value of header `name` in a response, as written.
pub fn values(m: &Message, name: HeaderName) -> Vec<String> {
    m.headers()
        .filter(|h| h.name() == name)
        .map(|h| h.value_str().unwrap().to_owned())
        .collect()
}

/// The reason phrase.
pub fn reason(m: &Message) -> String {
    String::from_utf8(m.reason().unwrap().to_vec()).unwrap()
}
