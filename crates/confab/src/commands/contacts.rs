//! `confab contacts list|add|remove ADDRESS [CONTACT] [--group G]` and
//! `confab contacts rule|policy ...`: a user's server-stored contact list and presence
//! policy, the same data the user API and the admin API manage. A running server applies a
//! change within a second (it follows the store's change feed) and re-notifies the watchers
//! whose view changed.

use clap::{Args, Subcommand};

use confab_core::Address;
use confab_core::contacts::{AccessLevel, PresenceSettings};

use crate::UsageError;
use crate::config::Config;
use crate::http::ApiError;
use crate::http::contacts::{
    ContactList, ContactView, PolicyView, parse_contact, parse_group, parse_level, parse_name,
    parse_watcher,
};
use crate::http::views;

/// `confab contacts ...`.
#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// List a user's contacts (with their groups) and their list URI
    List {
        /// The user (user@domain)
        address: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Add a contact to a user's list (or put it in one more group)
    Add(AddArgs),
    /// Remove a contact from a user's list (or, with --group, from that group only)
    Remove {
        /// The user (user@domain)
        address: String,
        /// The contact (user@domain)
        contact: String,
        /// Remove from this group only
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// Set (or with `none` remove) a user's presence rule for a watcher address or domain
    Rule {
        /// The user (user@domain)
        address: String,
        /// A watcher address (user@domain) or a whole domain
        watcher: String,
        /// blocked, public, colleague, personal, or none
        level: String,
    },
    /// Show a user's presence policy, or change whether strangers wait for approval
    Policy {
        /// The user (user@domain)
        address: String,
        /// Make watchers nobody placed wait as pending (RFC 3857) until allowed or blocked
        #[arg(long, value_name = "BOOL")]
        confirm_strangers: Option<bool>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `confab contacts add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user (user@domain)
    pub address: String,
    /// The contact (user@domain, any domain)
    pub contact: String,
    /// Put the contact in this group
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// A display name for the contact
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

fn usage(what: &str, e: ApiError) -> UsageError {
    UsageError(format!("{what}: {}", e.message))
}

fn owner(config: &Config, text: &str) -> Result<Address, UsageError> {
    views::parse_address(text, &config.domains)
        .map_err(|e| UsageError(format!("ADDRESS: {}", e.message)))
}

/// `confab contacts ...`.
pub async fn run(config: &Config, cmd: ContactsCommand) -> anyhow::Result<()> {
    let stores = crate::store::open(config).await?;
    let result = inner(config, &stores, cmd).await;
    stores.close().await;
    result
}

fn print_policy(owner: &Address, s: &PresenceSettings, json: bool) -> anyhow::Result<()> {
    let view = PolicyView::from(s);
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    println!(
        "{owner}: confirm strangers: {}",
        if view.confirm_strangers { "yes" } else { "no" }
    );
    for r in &view.rules {
        println!("  {:<40} {}", r.watcher, r.level);
    }
    Ok(())
}

async fn inner(
    config: &Config,
    stores: &crate::store::Stores,
    cmd: ContactsCommand,
) -> anyhow::Result<()> {
    match cmd {
        ContactsCommand::List { address, json } => {
            let owner = owner(config, &address)?;
            let contacts = stores.contacts.list_contacts(&owner).await?;
            let list = ContactList {
                owner: owner.to_string(),
                list_uri: format!("sip:{}", confab_presence::rls::list_uri(&owner)),
                contacts: contacts.iter().map(ContactView::from).collect(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<40} {:<24} GROUPS", "CONTACT", "NAME");
                for c in &list.contacts {
                    println!(
                        "{:<40} {:<24} {}",
                        c.address,
                        c.display_name.as_deref().unwrap_or("-"),
                        c.groups.join(", ")
                    );
                }
                eprintln!(
                    "{} contact(s); list URI {}",
                    list.contacts.len(),
                    list.list_uri
                );
            }
        }
        ContactsCommand::Add(a) => {
            let owner = owner(config, &a.address)?;
            let contact = parse_contact(&owner, &a.contact).map_err(|e| usage("CONTACT", e))?;
            let group = a
                .group
                .as_deref()
                .map(parse_group)
                .transpose()
                .map_err(|e| usage("--group", e))?;
            let name = a
                .name
                .as_deref()
                .map(parse_name)
                .transpose()
                .map_err(|e| usage("--name", e))?;
            let c = stores
                .contacts
                .add_contact(&owner, &contact, name, group)
                .await?;
            let groups = c
                .groups
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            println!("{owner}: contact {} (groups: {groups})", c.address);
        }
        ContactsCommand::Remove {
            address,
            contact,
            group,
        } => {
            let owner = owner(config, &address)?;
            let contact = parse_contact(&owner, &contact).map_err(|e| usage("CONTACT", e))?;
            let group = group
                .as_deref()
                .map(parse_group)
                .transpose()
                .map_err(|e| usage("--group", e))?;
            if stores
                .contacts
                .remove_contact(&owner, &contact, group.as_ref())
                .await?
            {
                match &group {
                    Some(g) => println!("{owner}: {contact} removed from group {g}"),
                    None => println!("{owner}: {contact} removed"),
                }
            } else {
                match &group {
                    Some(g) => {
                        anyhow::bail!("{contact} is not in group `{g}` of {owner}'s contacts")
                    }
                    None => anyhow::bail!("{contact} is not one of {owner}'s contacts"),
                }
            }
        }
        ContactsCommand::Rule {
            address,
            watcher,
            level,
        } => {
            let owner = owner(config, &address)?;
            let w = parse_watcher(&watcher).map_err(|e| usage("WATCHER", e))?;
            let level: Option<AccessLevel> = if level.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(parse_level(&level).map_err(|e| usage("LEVEL", e))?)
            };
            let changed = stores.contacts.set_presence_rule(&owner, &w, level).await?;
            match (level, changed) {
                (Some(l), _) => println!("{owner}: {w} is {l}"),
                (None, true) => println!("{owner}: rule for {w} removed"),
                (None, false) => anyhow::bail!("{owner} has no presence rule for {w}"),
            }
        }
        ContactsCommand::Policy {
            address,
            confirm_strangers,
            json,
        } => {
            let owner = owner(config, &address)?;
            if let Some(on) = confirm_strangers {
                stores.contacts.set_confirm_strangers(&owner, on).await?;
            }
            let s = stores.contacts.presence_settings(&owner).await?;
            print_policy(&owner, &s, json)?;
        }
    }
    Ok(())
}
