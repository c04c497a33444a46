//! The command line (clap derive). Parsing only: the commands run in [`crate::run`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::LogFormat;
use crate::listen::ListenSpec;

/// Confab: a unified-communications server (SIP proxy, registrar, presence, conferencing).
///
/// Exit codes: 0 success, 1 failure, 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "confab", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file [default: ./confab-data/confab.toml]
    #[arg(long, global = true, env = "CONFAB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log output format (overrides `log.format`)
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a configuration file, database and TLS certificates
    Init(InitArgs),
    /// Run the server
    Serve(ServeArgs),
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Manage admin API bearer tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// List registered SIP contacts (bindings), of one address or of all
    Registrations(crate::commands::registrations::RegistrationsArgs),
    /// Copy the database to FILE (safe while the server runs)
    Backup {
        /// Destination file (must not exist)
        file: PathBuf,
    },
    /// Show or change the Intelligent IM Filter policy (links, file transfers)
    #[command(subcommand)]
    ImFilter(crate::commands::filters::ImFilterCommand),
    /// Manage the Client Version Filter rules (User-Agent products and versions)
    #[command(subcommand)]
    ClientFilter(crate::commands::filters::ClientFilterCommand),
    /// The offline message queue: MESSAGEs stored for users with no registered endpoint
    #[command(subcommand)]
    Messages(crate::commands::messages::MessagesCommand),
    /// A user's server-stored contact list and presence policy (who sees what)
    #[command(subcommand)]
    Contacts(crate::commands::contacts::ContactsCommand),
    /// Print time-limited TURN credentials and URIs for a user (TURN REST API scheme)
    TurnCredentials(crate::turn_credentials::TurnCredentialsArgs),
    /// Replace the database with the contents of FILE (safe while the server runs)
    Restore {
        /// A file written by `confab backup`
        file: PathBuf,
    },
}

/// `confab init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to initialise [default: the folder of --config, i.e. ./confab-data]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The SIP domain (digest realm) and the name in the server certificate
    #[arg(long, value_name = "DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// A SIP listener as TRANSPORT:ADDR:PORT (udp, tcp, tls, ws, wss; IPv6 as
    /// udp:[::1]:5060); repeat it; replaces the default listeners
    #[arg(long = "listen", value_name = "SPEC")]
    pub listen: Vec<ListenSpec>,
    /// Overwrite an existing configuration file and certificates (the database is kept)
    #[arg(long)]
    pub force: bool,
}

/// `confab serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Validate the configuration (file, certificates, database) and exit
    #[arg(long)]
    pub check: bool,
    /// The roles this node runs; repeat it [default: front-end]
    #[arg(long = "role", value_enum, value_name = "ROLE")]
    pub roles: Vec<ServeRole>,
}

/// Server roles `confab serve --role` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum ServeRole {
    /// Front End: HTTP listeners today; SIP registrar, proxy, presence as their issues land
    FrontEnd,
    /// A/V Edge: STUN/TURN relay (needs a [turn] table)
    AvEdge,
}

/// A role as the user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// An ordinary account
    User,
    /// May also administer
    Admin,
}

impl From<RoleArg> for confab_core::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::User => confab_core::Role::User,
            RoleArg::Admin => confab_core::Role::Admin,
        }
    }
}

/// Where a new password comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// The password (visible to other local users in the process list: prefer
    /// --password-stdin)
    #[arg(long, value_name = "P")]
    pub password: Option<String>,
}

/// `confab user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (fails if the address exists)
    Add {
        /// user@domain (a `sip:` prefix is accepted)
        address: String,
        /// The password
        #[command(flatten)]
        password: PasswordSource,
        /// Name shown to others
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
        /// E.164 number (+15551234567) or tel URI with optional ;ext=
        #[arg(long, value_name = "NUMBER")]
        phone: Option<String>,
        /// What the account may administer
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
    },
    /// Change a user's display name, phone number or role
    Modify {
        /// user@domain
        address: String,
        /// New display name
        #[arg(long, value_name = "NAME", conflicts_with = "clear_display_name")]
        display_name: Option<String>,
        /// Remove the display name
        #[arg(long)]
        clear_display_name: bool,
        /// New phone number
        #[arg(long, value_name = "NUMBER", conflicts_with = "clear_phone")]
        phone: Option<String>,
        /// Remove the phone number
        #[arg(long)]
        clear_phone: bool,
        /// New role
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Set a user's password
    Passwd {
        /// user@domain
        address: String,
        /// The password
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Remove a user
    Remove {
        /// user@domain
        address: String,
    },
    /// List users
    List {
        /// Print JSON (an array of user objects)
        #[arg(long)]
        json: bool,
    },
    /// Show one user
    Show {
        /// user@domain
        address: String,
        /// Print JSON (one user object)
        #[arg(long)]
        json: bool,
    },
    /// Add or update users from a CSV file with the header `address,password,display
    /// name,phone`
    Import {
        /// The CSV file (UTF-8)
        file: PathBuf,
    },
}

/// `confab token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown only once)
    Create {
        /// A unique name for the token (letters, digits, - _ .)
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// List tokens (names and creation times; secrets are never stored)
    List {
        /// Print JSON (an array of token objects)
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token
    Revoke {
        /// The token's name
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[track_caller]
    fn parse(args: &[&str]) -> Result<Cli, clap::error::ErrorKind> {
        Cli::try_parse_from(std::iter::once("confab").chain(args.iter().copied()))
            .map_err(|e| e.kind())
    }

    #[test]
    fn password_sources_are_exclusive_and_required() {
        use clap::error::ErrorKind::*;
        assert!(parse(&["user", "add", "a@b", "--password", "x"]).is_ok());
        assert!(parse(&["user", "add", "a@b", "--password-stdin"]).is_ok());
        assert_eq!(
            parse(&["user", "add", "a@b", "--password", "x", "--password-stdin"]).unwrap_err(),
            ArgumentConflict
        );
        assert_eq!(
            parse(&["user", "add", "a@b"]).unwrap_err(),
            MissingRequiredArgument
        );
        assert_eq!(
            parse(&["user", "add", "a@b", "--password", "x", "--role", "root"]).unwrap_err(),
            InvalidValue
        );
    }

    #[test]
    fn listen_specs_are_parsed_by_clap() {
        let cli = parse(&[
            "init",
            "--listen",
            "udp:[::1]:5060",
            "--listen",
            "tls:127.0.0.1:5061",
        ])
        .unwrap();
        let Command::Init(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.listen.len(), 2);
        assert_eq!(a.listen[0].to_string(), "udp:[::1]:5060");
        assert_eq!(
            parse(&["init", "--listen", "sctp:1.2.3.4:5"]).unwrap_err(),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&[
            "user",
            "list",
            "--json",
            "--config",
            "/x.toml",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/x.toml")));
        assert_eq!(cli.log_format, Some(LogFormat::Json));
    }
}
