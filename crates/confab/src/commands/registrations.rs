//! `confab registrations [ADDRESS] [--json]`: the bindings of one address, or of everyone,
//! read from the database (works beside a running server), and the JSON shape the admin
//! API (`GET /api/admin/v1/registrations`) shares.

use std::time::SystemTime;

use clap::Args;
use serde::{Deserialize, Serialize};

use confab_core::{Binding, PageRequest, RegistrationStore, Timestamp};

use crate::UsageError;
use crate::config::Config;
use crate::http::views;

/// `confab registrations`.
#[derive(Debug, Args)]
pub struct RegistrationsArgs {
    /// Only this address (user@domain); all addresses when left out
    pub address: Option<String>,
    /// Print JSON (an array of registration objects)
    #[arg(long)]
    pub json: bool,
}

/// One binding as shown to administrators (CLI `--json` and the admin API). Field names
/// are stable: scripts depend on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationView {
    /// The address-of-record, `user@domain`.
    pub aor: String,
    /// The Contact URI as the client wrote it.
    pub contact: String,
    /// Other Contact parameters as written (`+sip.instance=...;reg-id=1`), or `null`.
    pub params: Option<String>,
    /// `q` (0 to 1), or `null` when the client gave none.
    pub q: Option<f64>,
    /// `udp`, `tcp`, `tls`, `ws` or `wss`: the transport of the flow the REGISTER came on.
    pub transport: String,
    /// The flow token (opaque) of that flow.
    pub flow: String,
    /// The client's address as seen by the server (`ip:port`).
    pub source: String,
    /// The node id of the front end holding the flow.
    pub node: String,
    /// When the binding expires, RFC 3339 UTC.
    pub expires_at: String,
    /// Seconds left.
    pub expires_in_s: u32,
    /// The User-Agent of the REGISTER, or `null`.
    pub user_agent: Option<String>,
    /// The `+sip.instance` (RFC 5626/5627), e.g. `<urn:uuid:...>`, or `null`.
    pub instance: Option<String>,
    /// RFC 5626 `reg-id` (an outbound flow), or `null`.
    pub reg_id: Option<u32>,
    /// Path (RFC 3327) the REGISTER came through, in order.
    pub path: Vec<String>,
    /// Call-ID of the last REGISTER.
    pub call_id: String,
    /// CSeq of the last REGISTER.
    pub cseq: u32,
    /// First registered, RFC 3339 UTC.
    pub registered_at: String,
    /// Last refreshed, RFC 3339 UTC.
    pub updated_at: String,
}

impl RegistrationView {
    /// The view of `b` at `now`.
    pub fn new(b: &Binding, now: Timestamp) -> Self {
        Self {
            aor: b.aor.to_string(),
            contact: b.contact.clone(),
            params: (!b.params.is_empty()).then(|| b.params.clone()),
            q: b.q.map(|q| f64::from(q.thousandths()) / 1000.0),
            transport: b.flow.transport.as_str().to_owned(),
            flow: b.flow.token.clone(),
            source: b.flow.source.to_string(),
            node: b.flow.node.clone(),
            expires_at: b.expires_at.to_string(),
            expires_in_s: b.expires_in(now),
            user_agent: b.user_agent.clone(),
            instance: b.instance.clone(),
            reg_id: b.reg_id,
            path: b.path.clone(),
            call_id: b.call_id.clone(),
            cseq: b.cseq,
            registered_at: b.registered_at.to_string(),
            updated_at: b.updated_at.to_string(),
        }
    }
}

/// The current time as stored records carry it.
pub fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// The live bindings: of `address` when given (validated against the served domains),
/// else of everyone, ordered by address then registration time.
pub async fn live_bindings(
    store: &dyn RegistrationStore,
    domains: &[String],
    address: Option<&str>,
    now: Timestamp,
) -> anyhow::Result<Vec<Binding>> {
    if let Some(text) = address {
        let aor = views::parse_address(text, domains).map_err(UsageError::from)?;
        return Ok(store.lookup(&aor, now).await?);
    }
    let mut all = Vec::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let p = store.list_bindings(page.clone()).await?;
        all.extend(p.items.into_iter().filter(|b| !b.is_expired(now)));
        match p.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    Ok(all)
}

/// `confab registrations [ADDRESS] [--json]`.
pub async fn run(config: &Config, args: &RegistrationsArgs) -> anyhow::Result<()> {
    let stores = crate::store::open(config).await?;
    let now = now();
    let result = live_bindings(
        &*stores.registrations,
        &config.domains,
        args.address.as_deref(),
        now,
    )
    .await;
    stores.close().await;
    let views: Vec<RegistrationView> = result?
        .iter()
        .map(|b| RegistrationView::new(b, now))
        .collect();
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &views)?;
        use std::io::Write as _;
        writeln!(out)?;
    } else {
        print!("{}", table(&views));
    }
    Ok(())
}

/// The human-readable table: one line per binding.
pub fn table(views: &[RegistrationView]) -> String {
    const HEAD: [&str; 7] = [
        "AOR",
        "CONTACT",
        "TRANSPORT",
        "FLOW",
        "EXPIRES",
        "USER AGENT",
        "INSTANCE",
    ];
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            [
                v.aor.clone(),
                v.contact.clone(),
                v.transport.clone(),
                format!("{}@{} {}", v.flow, v.node, v.source),
                format!("{}s", v.expires_in_s),
                v.user_agent.clone().unwrap_or_else(|| "-".into()),
                match (&v.instance, v.reg_id) {
                    (Some(i), Some(r)) => format!("{i} reg-id={r}"),
                    (Some(i), None) => i.clone(),
                    (None, _) => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = HEAD.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEAD);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    if rows.is_empty() {
        out.push_str("(no registrations)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::{Address, FlowInfo, QValue, SipTransport};

    fn binding() -> Binding {
        Binding {
            aor: Address::parse("alice@example.com").unwrap(),
            contact: "sip:alice@192.0.2.10:5060;ob".into(),
            params: "+sip.instance=\"<urn:uuid:1>\";reg-id=1".into(),
            q: QValue::from_thousandths(500),
            expires_at: Timestamp(1_700_000_600_000),
            call_id: "c1".into(),
            cseq: 3,
            instance: Some("<urn:uuid:1>".into()),
            reg_id: Some(1),
            flow: FlowInfo {
                token: "YwAAAAAAAAAH".into(),
                transport: SipTransport::Tcp,
                source: "192.0.2.10:40000".parse().unwrap(),
                node: "node-1".into(),
            },
            path: vec!["<sip:edge.example.com;lr;ob>".into()],
            user_agent: Some("baresip v3".into()),
            registered_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
            temp_gruu: None,
        }
    }

    #[test]
    fn view_and_json_shape() {
        let v = RegistrationView::new(&binding(), Timestamp(1_700_000_000_000));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "aor": "alice@example.com",
                "contact": "sip:alice@192.0.2.10:5060;ob",
                "params": "+sip.instance=\"<urn:uuid:1>\";reg-id=1",
                "q": 0.5,
                "transport": "tcp",
                "flow": "YwAAAAAAAAAH",
                "source": "192.0.2.10:40000",
                "node": "node-1",
                "expires_at": "2023-11-14T22:23:20.000Z",
                "expires_in_s": 600,
                "user_agent": "baresip v3",
                "instance": "<urn:uuid:1>",
                "reg_id": 1,
                "path": ["<sip:edge.example.com;lr;ob>"],
                "call_id": "c1",
                "cseq": 3,
                "registered_at": "2023-11-14T22:13:20.000Z",
                "updated_at": "2023-11-14T22:13:20.000Z",
            })
        );
    }

    #[test]
    fn table_columns_line_up() {
        let v = RegistrationView::new(&binding(), Timestamp(1_700_000_000_000));
        let t = table(&[v]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        let col = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(col(lines[0], "TRANSPORT"), col(lines[1], "tcp"));
        assert_eq!(col(lines[0], "EXPIRES"), col(lines[1], "600s"));
        assert!(lines[1].ends_with("<urn:uuid:1> reg-id=1"), "{}", lines[1]);
        assert!(lines[1].contains("YwAAAAAAAAAH@node-1 192.0.2.10:40000"));
        assert_eq!(
            table(&[]),
            "AOR  CONTACT  TRANSPORT  FLOW  EXPIRES  USER AGENT  INSTANCE\n(no registrations)\n"
        );
    }
}
