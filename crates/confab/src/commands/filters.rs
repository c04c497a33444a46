//! `confab im-filter show|set` and `confab client-filter list|add|remove|default|test`: the
//! filter policy in the database (`confab_core::policy`), and the JSON shapes the admin API
//! (`/api/admin/v1/im-filter`, `/api/admin/v1/client-filter`) shares.
//!
//! Every write goes through the store's validation, so a refused value is reported with the
//! rule number (1-based, as `list` prints them) and the field; nothing is written then. A
//! running server (every front end of a pool) applies a change within a few seconds
//! (`confab serve` polls the policy versions), without a restart.

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use confab_core::policy::{
    ClientAction, ClientActionKind, ClientVersionPolicy, ClientVersionRule, FilterScope,
    ImFilterPolicy, PolicyStore, UrlAction, Versioned,
};
use confab_filters::{ClientDecision, ClientVersionFilter, RuleMatch};

use crate::UsageError;
use crate::config::Config;

// ---- views (CLI --json and the admin API) ----------------------------------------------

/// The IM filter policy with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImFilterView {
    /// Incremented by every write; 0 = never written (the default policy).
    pub version: u64,
    /// Last write, RFC 3339 UTC, or `null`.
    pub updated_at: Option<String>,
    /// The policy.
    pub policy: ImFilterPolicy,
}

impl From<Versioned<ImFilterPolicy>> for ImFilterView {
    fn from(v: Versioned<ImFilterPolicy>) -> Self {
        ImFilterView {
            version: v.version,
            updated_at: v.updated_at.map(|t| t.to_string()),
            policy: v.value,
        }
    }
}

/// The client version policy with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFilterView {
    /// Incremented by every write; 0 = never written (the default policy).
    pub version: u64,
    /// Last write, RFC 3339 UTC, or `null`.
    pub updated_at: Option<String>,
    /// Rules in order (rule 1 first).
    pub rules: Vec<ClientVersionRule>,
    /// For clients no rule matches.
    pub default: ClientAction,
}

impl From<Versioned<ClientVersionPolicy>> for ClientFilterView {
    fn from(v: Versioned<ClientVersionPolicy>) -> Self {
        ClientFilterView {
            version: v.version,
            updated_at: v.updated_at.map(|t| t.to_string()),
            rules: v.value.rules,
            default: v.value.default,
        }
    }
}

/// What `client-filter test` found for a User-Agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFilterTestView {
    /// The User-Agent tested (`null`: a request without one).
    pub user_agent: Option<String>,
    /// The deciding rule (1-based), or `null` when the default action decides.
    pub rule: Option<usize>,
    /// That rule.
    pub matched_rule: Option<ClientVersionRule>,
    /// The product of the User-Agent the rule matched (`name` or `name/version`).
    pub matched_product: Option<String>,
    /// The action taken.
    pub action: ClientAction,
    /// The status of the response a refused client gets (403), or `null` when allowed.
    pub status: Option<u16>,
    /// Its reason phrase.
    pub reason: Option<String>,
    /// The `Warning` header value sent (block with URL, upgrade notice), or `null`.
    pub warning: Option<String>,
}

/// Tests a User-Agent against a policy; `warn_agent` is the host in Warning headers.
///
/// # Errors
/// The policy cannot be compiled (a store only hands out valid ones).
pub fn test_user_agent(
    policy: &ClientVersionPolicy,
    warn_agent: &str,
    user_agent: Option<&str>,
) -> anyhow::Result<ClientFilterTestView> {
    let filter = ClientVersionFilter::compile(policy, warn_agent)?;
    let r = filter.test(user_agent);
    let rule = match r.matched {
        RuleMatch::Rule(i) => Some(i),
        RuleMatch::Default => None,
    };
    let (status, reason, warning) = match r.decision {
        ClientDecision::Pass => (None, None, None),
        ClientDecision::Refuse(reply) => (
            Some(reply.status),
            reply.reason.clone(),
            reply
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("warning"))
                .map(|(_, v)| v.clone()),
        ),
        ClientDecision::PassWithNotice(w) => (None, None, Some(w.to_owned())),
    };
    Ok(ClientFilterTestView {
        user_agent: user_agent.map(str::to_owned),
        rule: rule.map(|i| i + 1),
        matched_rule: rule.and_then(|i| policy.rules.get(i).cloned()),
        matched_product: r.product.map(|p| match p.version_text {
            Some(v) => format!("{}/{v}", p.name),
            None => p.name.to_owned(),
        }),
        action: r.action.clone(),
        status,
        reason,
        warning,
    })
}

/// The host name in Warning headers: the first served domain (as `confab serve` uses).
pub fn warn_agent(domains: &[String]) -> String {
    domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".to_owned())
}

// ---- CLI -------------------------------------------------------------------------------

/// `confab im-filter ...`.
#[derive(Debug, Subcommand)]
pub enum ImFilterCommand {
    /// Print the Intelligent IM Filter policy
    Show {
        /// Print JSON (version, updated_at, policy)
        #[arg(long)]
        json: bool,
    },
    /// Change the policy: only the options given change (a running server applies it
    /// within seconds)
    Set(ImFilterSetArgs),
}

/// `confab im-filter set`.
#[derive(Debug, Args)]
pub struct ImFilterSetArgs {
    /// Messages whose text holds a link: allow, block (403 with --url-reason) or
    /// disable_links (--prefix inserted before each link)
    #[arg(long, value_name = "ACTION")]
    pub urls: Option<String>,
    /// Whose messages the link rule applies to: all or external (senders outside the
    /// served domains)
    #[arg(long, value_name = "SCOPE")]
    pub url_scope: Option<String>,
    /// Text inserted before each link by disable_links (1-32 bytes, ending with a letter,
    /// digit or _)
    #[arg(long, value_name = "TEXT")]
    pub prefix: Option<String>,
    /// Reason phrase of the 403 answering a message blocked for its links
    #[arg(long, value_name = "TEXT")]
    pub url_reason: Option<String>,
    /// Blocked file extensions of file-transfer offers, comma-separated (exe,bat,tar.gz;
    /// * blocks every file transfer; an empty value blocks none)
    #[arg(long, value_name = "LIST")]
    pub block_extensions: Option<String>,
    /// Whose file transfers the extension rule applies to: all or external
    #[arg(long, value_name = "SCOPE")]
    pub file_scope: Option<String>,
    /// Reason phrase of the 403 answering a blocked file transfer
    #[arg(long, value_name = "TEXT")]
    pub file_reason: Option<String>,
    /// Replace the whole policy with this JSON file (the `policy` object of `show --json`);
    /// other options are applied on top
    #[arg(long, value_name = "FILE")]
    pub from_json: Option<std::path::PathBuf>,
    /// Print the resulting policy as JSON
    #[arg(long)]
    pub json: bool,
}

/// `confab client-filter ...`.
#[derive(Debug, Subcommand)]
pub enum ClientFilterCommand {
    /// List the Client Version Filter rules (numbered) and the default action
    List {
        /// Print JSON (version, updated_at, rules, default)
        #[arg(long)]
        json: bool,
    },
    /// Add a rule (at the end, or at --position)
    Add(ClientRuleArgs),
    /// Remove the rule with this number (as `list` shows it)
    Remove {
        /// Rule number (1 = first)
        number: usize,
        /// Print the resulting policy as JSON
        #[arg(long)]
        json: bool,
    },
    /// Set the action for clients no rule matches
    Default(ClientActionArgs),
    /// Show which rule a User-Agent matches and what the server answers it
    Test {
        /// The User-Agent header value, e.g. "Linphone/4.5.1 (belle-sip/4.5.1)"
        user_agent: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// An action and its parameters.
#[derive(Debug, Args)]
pub struct ClientActionArgs {
    /// allow, block, block_with_url or allow_with_notice
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    /// Reason phrase of the 403 (block, block_with_url)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Where to get a supported client (block_with_url, allow_with_notice)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Text of the upgrade notice (allow_with_notice)
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Print the resulting policy as JSON
    #[arg(long)]
    pub json: bool,
}

/// `confab client-filter add`.
#[derive(Debug, Args)]
pub struct ClientRuleArgs {
    /// Product name pattern from the User-Agent (Linphone, baresip, Zoiper*, *)
    #[arg(long, value_name = "PATTERN")]
    pub product: String,
    /// Version condition: "< 5.0", ">= 4.2.1", "4.*", "*" (quote it in the shell)
    #[arg(long, value_name = "CONDITION", allow_hyphen_values = true)]
    pub version: String,
    /// Insert as rule number N (1 = first) instead of at the end
    #[arg(long, value_name = "N")]
    pub position: Option<usize>,
    /// The action
    #[command(flatten)]
    pub then: ClientActionArgs,
}

impl ClientActionArgs {
    fn action(&self) -> Result<ClientAction, UsageError> {
        let kind = ClientActionKind::from_name(&self.action).ok_or_else(|| {
            UsageError(format!(
                "--action: '{}' is not one of allow, block, block_with_url, allow_with_notice",
                self.action
            ))
        })?;
        let a = ClientAction {
            action: kind,
            reason: self.reason.clone(),
            url: self.url.clone(),
            message: self.message.clone(),
        };
        a.validate(None)
            .map_err(|e| UsageError(format!("--{}: {}", e.field, e.message)))?;
        Ok(a)
    }
}

fn scope(option: &str, v: &str) -> Result<FilterScope, UsageError> {
    FilterScope::from_name(v)
        .ok_or_else(|| UsageError(format!("--{option}: '{v}' is not one of all, external")))
}

/// Applies the options of `set` to `p`.
///
/// # Errors
/// [`UsageError`] naming the option.
pub fn apply_set(mut p: ImFilterPolicy, a: &ImFilterSetArgs) -> Result<ImFilterPolicy, UsageError> {
    if let Some(v) = &a.urls {
        p.urls.action = UrlAction::from_name(v).ok_or_else(|| {
            UsageError(format!(
                "--urls: '{v}' is not one of allow, block, disable_links"
            ))
        })?;
    }
    if let Some(v) = &a.url_scope {
        p.urls.scope = scope("url-scope", v)?;
    }
    if let Some(v) = &a.prefix {
        p.urls.prefix.clone_from(v);
    }
    if let Some(v) = &a.url_reason {
        p.urls.reason.clone_from(v);
    }
    if let Some(v) = &a.block_extensions {
        p.files.extensions = v
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(v) = &a.file_scope {
        p.files.scope = scope("file-scope", v)?;
    }
    if let Some(v) = &a.file_reason {
        p.files.reason.clone_from(v);
    }
    Ok(p)
}

/// Maps a store refusal to a usage error (exit 2) naming the field.
fn refused(e: confab_core::StoreError) -> anyhow::Error {
    match e {
        confab_core::StoreError::Invalid { field, message } => {
            UsageError(format!("{field}: {message}")).into()
        }
        e => e.into(),
    }
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_im(v: &ImFilterView) {
    let p = &v.policy;
    println!("version:        {}", v.version);
    println!(
        "updated:        {}",
        v.updated_at.as_deref().unwrap_or("never (default policy)")
    );
    println!(
        "links:          {} (scope {})",
        p.urls.action.as_str(),
        p.urls.scope.as_str()
    );
    println!("link prefix:    {}", p.urls.prefix);
    println!("link reason:    {}", p.urls.reason);
    println!(
        "blocked files:  {} (scope {})",
        if p.files.extensions.is_empty() {
            "none".to_owned()
        } else {
            p.files.extensions.join(",")
        },
        p.files.scope.as_str()
    );
    println!("file reason:    {}", p.files.reason);
}

fn describe(a: &ClientAction) -> String {
    let mut s = a.action.as_str().to_owned();
    if let Some(r) = &a.reason {
        s.push_str(&format!(" reason=\"{r}\""));
    }
    if let Some(u) = &a.url {
        s.push_str(&format!(" url={u}"));
    }
    if let Some(m) = &a.message {
        s.push_str(&format!(" message=\"{m}\""));
    }
    s
}

fn print_client(v: &ClientFilterView) {
    println!(
        "version {} (updated {})",
        v.version,
        v.updated_at.as_deref().unwrap_or("never")
    );
    println!("{:>3}  {:<20} {:<12} ACTION", "#", "PRODUCT", "VERSION");
    for (i, r) in v.rules.iter().enumerate() {
        println!(
            "{:>3}  {:<20} {:<12} {}",
            i + 1,
            r.product,
            r.version,
            describe(&r.then)
        );
    }
    println!("default: {}", describe(&v.default));
}

/// `confab im-filter ...`.
pub async fn im_filter(config: &Config, cmd: ImFilterCommand) -> anyhow::Result<()> {
    let stores = crate::store::open(config).await?;
    let result = im_filter_inner(stores.policy.as_ref(), cmd).await;
    stores.close().await;
    result
}

async fn im_filter_inner(store: &dyn PolicyStore, cmd: ImFilterCommand) -> anyhow::Result<()> {
    match cmd {
        ImFilterCommand::Show { json } => {
            let v = ImFilterView::from(store.im_filter_policy().await?);
            if json { print_json(&v)? } else { print_im(&v) }
        }
        ImFilterCommand::Set(args) => {
            let base = match &args.from_json {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
                    let de = &mut serde_json::Deserializer::from_str(&text);
                    serde_path_to_error::deserialize(de).map_err(|e| {
                        UsageError(format!("{}: {}: {}", path.display(), e.path(), e.inner()))
                    })?
                }
                None => store.im_filter_policy().await?.value,
            };
            let p = apply_set(base, &args)?;
            let version = store.set_im_filter_policy(p).await.map_err(refused)?;
            let v = ImFilterView::from(store.im_filter_policy().await?);
            if args.json {
                print_json(&v)?;
            } else {
                print_im(&v);
                eprintln!("IM filter policy version {version} stored");
            }
        }
    }
    Ok(())
}

/// `confab client-filter ...`.
pub async fn client_filter(config: &Config, cmd: ClientFilterCommand) -> anyhow::Result<()> {
    let stores = crate::store::open(config).await?;
    let result = client_filter_inner(config, stores.policy.as_ref(), cmd).await;
    stores.close().await;
    result
}

async fn client_filter_inner(
    config: &Config,
    store: &dyn PolicyStore,
    cmd: ClientFilterCommand,
) -> anyhow::Result<()> {
    let show = |v: ClientFilterView, json: bool| -> anyhow::Result<()> {
        if json {
            print_json(&v)
        } else {
            print_client(&v);
            Ok(())
        }
    };
    match cmd {
        ClientFilterCommand::List { json } => {
            show(store.client_version_policy().await?.into(), json)?;
        }
        ClientFilterCommand::Add(args) => {
            let then = args.then.action()?;
            let rule = ClientVersionRule::new(&args.product, &args.version, then);
            let position = match args.position {
                Some(0) => {
                    return Err(UsageError("--position: rules are numbered from 1".into()).into());
                }
                Some(n) => Some(n - 1),
                None => None,
            };
            store
                .insert_client_version_rule(position, rule)
                .await
                .map_err(refused)?;
            show(store.client_version_policy().await?.into(), args.then.json)?;
        }
        ClientFilterCommand::Remove { number, json } => {
            if number == 0 {
                return Err(UsageError("rules are numbered from 1".into()).into());
            }
            let (rule, _) = store
                .remove_client_version_rule(number - 1)
                .await
                .map_err(refused)?;
            eprintln!(
                "removed rule {number}: {} {} {}",
                rule.product,
                rule.version,
                describe(&rule.then)
            );
            show(store.client_version_policy().await?.into(), json)?;
        }
        ClientFilterCommand::Default(args) => {
            let action = args.action()?;
            let mut p = store.client_version_policy().await?.value;
            p.default = action;
            store.set_client_version_policy(p).await.map_err(refused)?;
            show(store.client_version_policy().await?.into(), args.json)?;
        }
        ClientFilterCommand::Test { user_agent, json } => {
            let policy = store.client_version_policy().await?.value;
            let v = test_user_agent(&policy, &warn_agent(&config.domains), Some(&user_agent))?;
            if json {
                print_json(&v)?;
            } else {
                match (&v.rule, &v.matched_rule) {
                    (Some(n), Some(r)) => println!(
                        "rule {n}: {} {} (matched {})",
                        r.product,
                        r.version,
                        v.matched_product.as_deref().unwrap_or("?")
                    ),
                    _ => println!("no rule matches: default action"),
                }
                println!("action: {}", describe(&v.action));
                match (v.status, &v.warning) {
                    (Some(s), w) => {
                        println!("response: {s} {}", v.reason.as_deref().unwrap_or(""));
                        if let Some(w) = w {
                            println!("Warning: {w}");
                        }
                    }
                    (None, Some(w)) => println!("allowed, final responses carry Warning: {w}"),
                    (None, None) => println!("allowed"),
                }
            }
        }
    }
    Ok(())
}
