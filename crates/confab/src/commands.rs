//! The administration commands: `user ...`, `token ...`, `backup`, `restore`. They open
//! the same database as a running server (SQLite in WAL mode allows that), so they work
//! while it runs.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::Context as _;
use rand::RngCore as _;

use confab_core::{
    ApiTokenSecret, Ha1Set, ImportOutcome, ImportRow, PageRequest, Role, TokenName, User,
};

use crate::UsageError;
use crate::cli::{PasswordSource, TokenCommand, UserCommand};
use crate::config::Config;
use crate::http::admin::{new_user, user_changes};
use crate::http::views::{self, FieldError, TokenView, UserView};
use crate::store::Stores;

pub mod contacts;
pub mod filters;
pub mod messages;
pub mod registrations;

impl From<FieldError> for UsageError {
    fn from(e: FieldError) -> Self {
        UsageError(e.to_string())
    }
}

/// Reads the password from `--password` or the first line of standard input.
fn read_password(src: &PasswordSource) -> anyhow::Result<String> {
    let password = match &src.password {
        Some(p) => p.clone(),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("password: ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    views::check_password(&password).map_err(UsageError::from)?;
    Ok(password)
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn print_user(u: &User) {
    let v = UserView::from(u);
    println!("address:      {}", v.address);
    println!("username:     {}", v.username);
    println!("domain:       {}", v.domain);
    println!("display name: {}", v.display_name.as_deref().unwrap_or("-"));
    println!("phone:        {}", v.phone.as_deref().unwrap_or("-"));
    println!("role:         {}", v.role);
    println!(
        "password:     {}",
        if v.has_password { "set" } else { "not set" }
    );
    println!("created:      {}", v.created_at);
    println!("updated:      {}", v.updated_at);
}

/// `confab user ...`.
pub async fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let stores = crate::store::open(config).await?;
    let result = user_inner(config, &stores, cmd).await;
    stores.close().await;
    result
}

async fn user_inner(config: &Config, stores: &Stores, cmd: UserCommand) -> anyhow::Result<()> {
    let domains = &config.domains;
    match cmd {
        UserCommand::Add {
            address,
            password,
            display_name,
            phone,
            role,
        } => {
            // Validate the address before asking for a password.
            views::parse_address(&address, domains).map_err(UsageError::from)?;
            let password = read_password(&password)?;
            let new = new_user(
                domains,
                &address,
                &password,
                display_name.as_deref(),
                phone.as_deref(),
                Role::from(role),
            )
            .map_err(UsageError::from)?;
            let user = stores.users.add_user(new).await?;
            println!("added {}", user.address);
        }
        UserCommand::Modify {
            address,
            display_name,
            clear_display_name,
            phone,
            clear_phone,
            role,
        } => {
            let address = views::parse_address(&address, domains).map_err(UsageError::from)?;
            let dn = match (display_name.as_deref(), clear_display_name) {
                (Some(d), _) => Some(Some(d)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let ph = match (phone.as_deref(), clear_phone) {
                (Some(p), _) => Some(Some(p)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let role = role.map(|r| Role::from(r).as_str());
            if dn.is_none() && ph.is_none() && role.is_none() {
                return Err(UsageError(
                    "nothing to change: give --display-name, --clear-display-name, --phone, --clear-phone or --role".into(),
                )
                .into());
            }
            let changes = user_changes(dn, ph, role).map_err(UsageError::from)?;
            let user = stores.users.modify_user(&address, changes).await?;
            println!("modified {}", user.address);
        }
        UserCommand::Passwd { address, password } => {
            let address = views::parse_address(&address, domains).map_err(UsageError::from)?;
            let password = read_password(&password)?;
            let ha1 = Ha1Set::compute(address.user(), address.domain(), &password);
            stores.users.set_password(&address, ha1).await?;
            println!("password set for {address}");
        }
        UserCommand::Remove { address } => {
            let address = views::parse_address(&address, domains).map_err(UsageError::from)?;
            stores.users.remove_user(&address).await?;
            println!("removed {address}");
        }
        UserCommand::Show { address, json } => {
            let address = views::parse_address(&address, domains).map_err(UsageError::from)?;
            let Some(user) = stores.users.get_user(&address).await? else {
                anyhow::bail!("user {address} not found");
            };
            if json {
                print_json(&UserView::from(&user))?;
            } else {
                print_user(&user);
            }
        }
        UserCommand::List { json } => {
            let mut all = Vec::new();
            let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
            loop {
                let p = stores.users.list_users(page.clone()).await?;
                all.extend(p.items.iter().map(UserView::from));
                match p.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            if json {
                print_json(&all)?;
            } else {
                print_user_table(&all);
            }
        }
        UserCommand::Import { file } => import(config, stores, &file).await?,
    }
    Ok(())
}

fn print_user_table(users: &[UserView]) {
    let w = users
        .iter()
        .map(|u| u.address.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let pw = users
        .iter()
        .map(|u| u.phone.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<w$}  {:<5}  {:<pw$}  DISPLAY NAME",
        "ADDRESS", "ROLE", "PHONE"
    );
    for u in users {
        println!(
            "{:<w$}  {:<5}  {:<pw$}  {}",
            u.address,
            u.role,
            u.phone.as_deref().unwrap_or("-"),
            u.display_name.as_deref().unwrap_or("-")
        );
    }
}

/// Rows handed to the store at once.
const IMPORT_BATCH: usize = 1000;

/// The columns of an import file, by position.
struct Columns {
    address: usize,
    password: Option<usize>,
    display_name: Option<usize>,
    phone: Option<usize>,
}

impl Columns {
    fn from_header(h: &csv::StringRecord) -> Result<Columns, String> {
        let (mut address, mut password, mut display_name, mut phone) = (None, None, None, None);
        for (i, name) in h.iter().enumerate() {
            let slot = match name.trim().to_ascii_lowercase().as_str() {
                "address" => &mut address,
                "password" => &mut password,
                "display name" => &mut display_name,
                "phone" => &mut phone,
                other => {
                    return Err(format!(
                        "unknown column `{other}`; the header is `address,password,display name,phone`"
                    ));
                }
            };
            if slot.replace(i).is_some() {
                return Err(format!("column `{}` appears twice", name.trim()));
            }
        }
        Ok(Columns {
            address: address.ok_or("the header has no `address` column (expected `address,password,display name,phone`)")?,
            password,
            display_name,
            phone,
        })
    }
}

/// Maps increasing byte offsets of a file to 1-based line numbers.
struct LineCounter<'a> {
    data: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            line: 1,
        }
    }

    /// The line holding byte `offset` (offsets must not decrease between calls).
    fn line_at(&mut self, offset: u64) -> u64 {
        let end = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        if end > self.pos {
            self.line += self.data[self.pos..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.pos = end;
        }
        self.line
    }
}

/// Import summary.
#[derive(Debug, Default)]
struct Tally {
    added: u64,
    updated: u64,
    failed: u64,
}

async fn flush(
    stores: &Stores,
    rows: &mut Vec<ImportRow>,
    lines: &mut Vec<u64>,
    tally: &mut Tally,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let results = stores
        .users
        .import_users(std::mem::take(rows))
        .await
        .context("the import batch failed; nothing of it was saved")?;
    for (line, r) in lines.drain(..).zip(results) {
        match r {
            Ok(ImportOutcome::Added) => tally.added += 1,
            Ok(ImportOutcome::Updated) => tally.updated += 1,
            Err(e) => {
                tally.failed += 1;
                bar.suspend(|| eprintln!("line {line}: {e}"));
            }
        }
    }
    Ok(())
}

/// `confab user import FILE.csv`.
async fn import(config: &Config, stores: &Stores, file: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let size = data.len() as u64;
    // Line numbers come from byte offsets (csv's own line count skips blank lines).
    let mut lines_of = LineCounter::new(&data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(&data[..]);
    let header = reader
        .headers()
        .with_context(|| format!("{}: line 1: cannot read the header", file.display()))?
        .clone();
    let cols = Columns::from_header(&header)
        .map_err(|m| UsageError(format!("{}: line 1: {m}", file.display())))?;
    let ncols = header.len();

    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {percent}% {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut tally = Tally::default();
    let mut rows = Vec::with_capacity(IMPORT_BATCH);
    let mut lines = Vec::with_capacity(IMPORT_BATCH);
    let mut record = csv::StringRecord::new();
    let mut seen = 0u64;
    loop {
        let before = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // A CSV syntax error (e.g. invalid UTF-8) spoils only its row.
                tally.failed += 1;
                let at = lines_of.line_at(e.position().map_or(before, |p| p.byte()));
                bar.suspend(|| eprintln!("line {at}: {e}"));
                continue;
            }
        }
        // The position may point at blank lines the reader skipped before the record.
        let mut start = record.position().map_or(before, |p| p.byte());
        while data
            .get(usize::try_from(start).unwrap_or(usize::MAX))
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            start += 1;
        }
        let line = lines_of.line_at(start);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        match import_row(config, &cols, ncols, &record) {
            Ok(row) => {
                rows.push(row);
                lines.push(line);
            }
            Err(message) => {
                tally.failed += 1;
                bar.suspend(|| eprintln!("line {line}: {message}"));
            }
        }
        if rows.len() >= IMPORT_BATCH {
            flush(stores, &mut rows, &mut lines, &mut tally, &bar).await?;
        }
        seen += 1;
        if seen.is_multiple_of(256) {
            bar.set_position(reader.position().byte());
            bar.set_message(format!(
                "{} added, {} updated, {} failed",
                tally.added, tally.updated, tally.failed
            ));
        }
    }
    flush(stores, &mut rows, &mut lines, &mut tally, &bar).await?;
    bar.finish_and_clear();
    println!(
        "imported {} rows ({} added, {} updated); {} rows failed",
        tally.added + tally.updated,
        tally.added,
        tally.updated,
        tally.failed
    );
    if tally.failed > 0 {
        anyhow::bail!(
            "{} of the rows in {} were not imported (see above)",
            tally.failed,
            file.display()
        );
    }
    Ok(())
}

fn import_row(
    config: &Config,
    cols: &Columns,
    ncols: usize,
    record: &csv::StringRecord,
) -> Result<ImportRow, String> {
    if record.len() != ncols {
        return Err(format!(
            "has {} fields; the header has {ncols}",
            record.len()
        ));
    }
    let get = |i: Option<usize>| {
        i.and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let address = get(Some(cols.address)).ok_or("address: the address is empty")?;
    let address = views::parse_address(address, &config.domains).map_err(|e| e.to_string())?;
    // Passwords are taken as written (not trimmed), but an empty cell means "keep".
    let credentials = match cols
        .password
        .and_then(|i| record.get(i))
        .filter(|p| !p.is_empty())
    {
        Some(p) => {
            views::check_password(p).map_err(|e| e.to_string())?;
            Some(Ha1Set::compute(address.user(), address.domain(), p))
        }
        None => None,
    };
    let display_name = get(cols.display_name)
        .map(views::parse_display_name)
        .transpose()
        .map_err(|e| e.to_string())?;
    let phone = get(cols.phone)
        .map(views::parse_phone)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(ImportRow {
        address,
        display_name,
        phone,
        credentials,
    })
}

/// `confab token ...`.
pub async fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let stores = crate::store::open(config).await?;
    let result = token_inner(&stores, cmd).await;
    stores.close().await;
    result
}

async fn token_inner(stores: &Stores, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { name } => {
            let name = TokenName::parse(&name).map_err(|e| UsageError(format!("--name: {e}")))?;
            let mut random = [0u8; 32];
            rand::rng().fill_bytes(&mut random);
            let secret = ApiTokenSecret::from_random(random);
            stores
                .tokens
                .create_token(name.clone(), secret.hash())
                .await?;
            // The secret alone on stdout, so `TOKEN=$(confab token create --name x)` works.
            println!("{}", secret.expose());
            eprintln!(
                "token `{name}` created; use it as `Authorization: Bearer <token>`. It is shown only now."
            );
        }
        TokenCommand::List { json } => {
            let tokens: Vec<TokenView> = stores
                .tokens
                .list_tokens()
                .await?
                .iter()
                .map(TokenView::from)
                .collect();
            if json {
                print_json(&tokens)?;
            } else {
                println!("{:<24}  CREATED", "NAME");
                for t in tokens {
                    println!("{:<24}  {}", t.name, t.created_at);
                }
            }
        }
        TokenCommand::Revoke { name } => {
            let name = TokenName::parse(&name).map_err(|e| UsageError(format!("--name: {e}")))?;
            stores.tokens.revoke_token(&name).await?;
            println!("revoked {name}");
        }
    }
    Ok(())
}

/// `confab backup FILE`.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    if file.exists() {
        return Err(UsageError(format!(
            "{} already exists; choose a new file name",
            file.display()
        ))
        .into());
    }
    crate::store::backup(config, file).await?;
    println!(
        "backed up {} to {}",
        config.store.path.display(),
        file.display()
    );
    Ok(())
}

/// `confab restore FILE`.
pub async fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    if !file.is_file() {
        return Err(UsageError(format!("{} is not a file", file.display())).into());
    }
    crate::store::restore(config, file).await?;
    println!(
        "restored {} from {}",
        config.store.path.display(),
        file.display()
    );
    Ok(())
}
