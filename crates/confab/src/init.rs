//! `confab init`: a data folder with a configuration file, a database and certificates.

use std::fs::DirBuilder;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::InitArgs;
use crate::config::{self, Config, ConfigError, InitSettings};
use crate::listen::default_listeners;
use crate::{ConfigLocation, UsageError};

/// What `init` created.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The configuration file.
    pub config_file: PathBuf,
    /// The database.
    pub database: PathBuf,
    /// The CA certificate to give to clients.
    pub ca_cert: PathBuf,
}

/// `confab init [--dir DIR] [--domain DOMAIN] [--listen SPEC]... [--force]`.
pub async fn run_init(location: &ConfigLocation, args: &InitArgs) -> anyhow::Result<()> {
    let file = match &args.dir {
        Some(dir) => dir.join("confab.toml"),
        None => location.path.clone(),
    };
    let settings = InitSettings {
        domain: args.domain.to_ascii_lowercase(),
        listen: if args.listen.is_empty() {
            default_listeners()
        } else {
            args.listen.clone()
        },
    };
    let report = init_dir(&file, &settings, args.force).await?;
    println!("created {}", report.config_file.display());
    println!("database {}", report.database.display());
    println!(
        "CA certificate {} (give it to clients so they trust this server)",
        report.ca_cert.display()
    );
    println!(
        "next: confab{} user add alice@{} --password-stdin",
        match &args.dir {
            Some(_) => format!(" --config {}", report.config_file.display()),
            None if location.explicit => format!(" --config {}", report.config_file.display()),
            None => String::new(),
        },
        settings.domain
    );
    Ok(())
}

/// Concrete addresses worth naming in the server certificate.
fn certificate_ips(config: &Config) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = config
        .transport
        .listen
        .iter()
        .map(|l| l.addr.ip())
        .chain(std::iter::once(config.http.user.listen.ip()))
        .filter(|ip| !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Creates `file` (and its folder), the certificates and the database. Refuses to overwrite
/// an existing configuration file unless `force`; with `force` the configuration file and
/// certificates are rewritten and an existing database is kept (and migrated).
pub async fn init_dir(
    file: &Path,
    settings: &InitSettings,
    force: bool,
) -> anyhow::Result<InitReport> {
    if let Err(why) = config::check_domain(&settings.domain) {
        return Err(UsageError(format!("--domain `{}` {why}", settings.domain)).into());
    }
    if file.exists() && !force {
        anyhow::bail!(
            "{} already exists; use --force to overwrite it (the database is kept)",
            file.display()
        );
    }
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let text = config::render(settings);
    let mut config = Config::parse(file, &text)?;
    config.resolve_paths(&dir);
    // Everything but the certificates and the folder (made below) must already be right.
    if let Err(mut e) = config.validate(file, &text) {
        e.problems
            .retain(|p| !p.key.starts_with("tls.") && p.key != "store.path");
        if !e.problems.is_empty() {
            return Err(ConfigError {
                file: e.file,
                problems: e.problems,
            }
            .into());
        }
    }

    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let tls_dir = config
        .tls
        .certificates
        .first()
        .and_then(|c| c.cert_chain.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("tls"));
    let files = crate::tls::create_ca_and_server_cert(
        &tls_dir,
        &settings.domain,
        &certificate_ips(&config),
    )?;
    std::fs::write(file, &text).with_context(|| format!("cannot write {}", file.display()))?;

    // The file just written must load as a whole (paths resolved, certificates present).
    let config = Config::load(file)?;
    crate::store::create(&config).await?;
    Ok(InitReport {
        config_file: file.to_path_buf(),
        database: config.store.path.clone(),
        ca_cert: files.ca_cert,
    })
}
