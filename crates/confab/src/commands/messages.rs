//! `confab messages list [ADDRESS] [--json]` and `confab messages remove ID`: the offline
//! message queue (MESSAGEs stored for users with no registered endpoint), and the JSON shape
//! the admin API (`GET /api/admin/v1/messages`) shares.
//!
//! Administrators see the envelope (who, when, type, size, delivery state), never the
//! message text: reading users' messages is not an administration task.

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use confab_core::message_queue::QueuedMessage;
use confab_core::{Cursor, PageRequest};

use crate::UsageError;
use crate::config::Config;
use crate::http::views;

/// `confab messages ...`.
#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List queued messages (oldest first), of one recipient or all
    List(ListArgs),
    /// Remove one queued message (it will not be delivered; no notification is sent)
    Remove {
        /// The message id (from `list`)
        id: u64,
    },
}

/// `confab messages list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only messages for this address (user@domain)
    pub address: Option<String>,
    /// Print JSON (an array of message objects)
    #[arg(long)]
    pub json: bool,
}

/// One queued message as administrators see it (CLI `--json` and the admin API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessageView {
    /// Queue id (delivery follows it).
    pub id: u64,
    /// The recipient, `user@domain`.
    pub recipient: String,
    /// The sender's URI (From).
    pub sender: String,
    /// `queued` (not delivered yet) or `delivering` (an endpoint accepted it; kept for
    /// endpoints registering within the delivery window).
    pub state: String,
    /// Content-Type of the message.
    pub content_type: String,
    /// Size of the stored request in bytes.
    pub size: u64,
    /// When the server took it, RFC 3339 UTC.
    pub received_at: String,
    /// When it expires if undelivered, RFC 3339 UTC.
    pub expires_at: String,
    /// When the first endpoint accepted it, or null.
    pub first_delivered_at: Option<String>,
    /// Endpoints (`+sip.instance` or Contact) that accepted it.
    pub delivered_to: Vec<String>,
    /// The sender asked for a failure notification (IMDN negative-delivery).
    pub notify_failure: bool,
    /// The IMDN Message-ID, or null.
    pub imdn_message_id: Option<String>,
}

impl From<&QueuedMessage> for QueuedMessageView {
    fn from(m: &QueuedMessage) -> Self {
        let q = &m.message;
        QueuedMessageView {
            id: m.id,
            recipient: q.recipient.to_string(),
            sender: q.sender.clone(),
            state: if m.first_delivered_at.is_some() {
                "delivering"
            } else {
                "queued"
            }
            .to_owned(),
            content_type: q.content_type.clone(),
            size: q.request.len() as u64,
            received_at: q.received_at.to_string(),
            expires_at: q.expires_at.to_string(),
            first_delivered_at: m.first_delivered_at.map(|t| t.to_string()),
            delivered_to: m.delivered_to.clone(),
            notify_failure: q.notify_failure,
            imdn_message_id: q.imdn_message_id.clone(),
        }
    }
}

/// `confab messages ...`.
pub async fn run(config: &Config, cmd: MessagesCommand) -> anyhow::Result<()> {
    let stores = crate::store::open(config).await?;
    let result = inner(config, &stores, cmd).await;
    stores.close().await;
    result
}

async fn inner(
    config: &Config,
    stores: &crate::store::Stores,
    cmd: MessagesCommand,
) -> anyhow::Result<()> {
    match cmd {
        MessagesCommand::List(args) => {
            let address = args
                .address
                .as_deref()
                .map(|a| views::parse_address(a, &config.domains))
                .transpose()
                .map_err(|e| UsageError(format!("ADDRESS: {}", e.message)))?;
            let mut all = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let page = stores
                    .messages
                    .list_queued(
                        address.as_ref(),
                        PageRequest {
                            after,
                            limit: PageRequest::MAX_LIMIT,
                        },
                    )
                    .await?;
                all.extend(page.items.iter().map(QueuedMessageView::from));
                match page.next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "{:>6}  {:<28} {:<28} {:<10} {:>6}  {:<24} EXPIRES",
                    "ID", "RECIPIENT", "SENDER", "STATE", "BYTES", "RECEIVED"
                );
                for m in &all {
                    println!(
                        "{:>6}  {:<28} {:<28} {:<10} {:>6}  {:<24} {}",
                        m.id, m.recipient, m.sender, m.state, m.size, m.received_at, m.expires_at
                    );
                }
                eprintln!("{} message(s)", all.len());
            }
        }
        MessagesCommand::Remove { id } => {
            if stores.messages.remove_queued(id).await? {
                println!("removed message {id}");
            } else {
                anyhow::bail!("no queued message {id}");
            }
        }
    }
    Ok(())
}
