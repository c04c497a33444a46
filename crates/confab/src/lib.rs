//! The `confab` binary: the surface an administrator touches.
//!
//! What it does: parses the command line ([`cli`]), reads and validates the configuration
//! file ([`config`], listeners in [`listen`]), initialises a data folder (config file,
//! database, local CA and server certificate: [`init`], [`tls`]), administers users and
//! admin API tokens in the database ([`commands`]), issues TURN credentials for the A/V
//! Edge ([`turn_credentials`]: where the shared secrets and URIs live), and runs the server
//! ([`serve`]): today the admin and user HTTP listeners ([`http`]) and the A/V Edge relay;
//! SIP roles are wired in as their issues land (`serve` says in its log which roles are
//! not built yet).
//!
//! What it does not do: protocol work (the protocol crates), storage (`confab-store`
//! behind the `confab-core` traits), digest arithmetic (`confab-digest`). This crate is the
//! only one that knows the file format, the environment and the command line.
//!
//! Exit codes: 0 success, 1 failure, 2 usage or configuration error.

pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod init;
pub mod listen;
pub mod logging;
pub mod presence;
pub mod serve;
pub mod store;
pub mod tls;
pub mod turn_credentials;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH, LogFormat};

/// A mistake in how the command was called (exit code 2), as opposed to a failure while
/// doing it (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure while running the command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// The exit code an error maps to.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// Where the configuration file is and whether the user named it.
#[derive(Debug, Clone)]
pub struct ConfigLocation {
    /// The path.
    pub path: PathBuf,
    /// True when it came from `--config` or `CONFAB_CONFIG`.
    pub explicit: bool,
}

impl ConfigLocation {
    /// From the parsed command line (clap already merged `CONFAB_CONFIG`).
    pub fn from_cli(cli: &Cli) -> Self {
        match &cli.config {
            Some(p) => Self {
                path: p.clone(),
                explicit: true,
            },
            None => Self {
                path: PathBuf::from(DEFAULT_CONFIG_PATH),
                explicit: false,
            },
        }
    }

    /// Loads and validates the file.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.path)
    }

    /// The folder holding the file.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }
}

/// Runs the program with the process arguments and returns its exit code.
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("confab")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let location = ConfigLocation::from_cli(&cli);
    match cli.command {
        Command::Init(args) => {
            // Commands other than serve log warnings only, unless CONFAB_LOG says otherwise.
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            init::run_init(&location, &args).await
        }
        Command::Serve(args) => serve::run_serve(&location, cli.log_format, &args).await,
        Command::User(cmd) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::user(&config, cmd).await
        }
        Command::Token(cmd) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::token(&config, cmd).await
        }
        Command::Registrations(args) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::registrations::run(&config, &args).await
        }
        Command::ImFilter(cmd) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::filters::im_filter(&config, cmd).await
        }
        Command::ClientFilter(cmd) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::filters::client_filter(&config, cmd).await
        }
        Command::Messages(cmd) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::messages::run(&config, cmd).await
        }
        Command::Contacts(cmd) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::contacts::run(&config, cmd).await
        }
        Command::Backup { file } => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::backup(&config, &file).await
        }
        Command::TurnCredentials(args) => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            turn_credentials::run(&config, &location.path, &args).await
        }
        Command::Restore { file } => {
            logging::init("warn", cli.log_format.unwrap_or(LogFormat::Text));
            let config = location.load()?;
            commands::restore(&config, &file).await
        }
    }
}
