//! The local certificate authority made by `confab init`, and the server certificate that
//! TLS listeners present, reloadable on SIGHUP.
//!
//! `confab init` writes four PEM files into `DIR/tls/`: `ca.crt` (give it to clients so they
//! trust the server), `ca.key` (0600; kept to issue more certificates later), `server.crt`
//! (the server certificate followed by the CA certificate) and `server.key` (0600). The
//! server certificate names the domain and the concrete IP addresses of the listeners. A
//! deployment with a public CA replaces `tls.cert_file` / `tls.key_file` and sends SIGHUP.
//!
//! Not done here: ACME, OCSP stapling, client certificates (mutual TLS for federation comes
//! with the Access Edge).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors while creating or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {what}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The key does not match the certificate, or rustls rejected it.
    #[error("{cert} / {key}: {source}")]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The rustls error.
        source: rustls::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The files written by [`create_ca_and_server_cert`].
#[derive(Debug, Clone)]
pub struct GeneratedFiles {
    /// CA certificate (public).
    pub ca_cert: PathBuf,
    /// CA private key (0600).
    pub ca_key: PathBuf,
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server private key (0600).
    pub server_key: PathBuf,
}

/// Writes `contents` to `path` readable and writable by the owner only (0600), also when the
/// file already existed with wider permissions.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Validity: from a day ago (clock skew) for `days` days.
fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

/// Creates a CA (valid 10 years) and a server certificate (valid 2 years) for `domain` and
/// `ips`, signed by it, in `tls_dir` (created if missing).
pub fn create_ca_and_server_cert(
    tls_dir: &Path,
    domain: &str,
    ips: &[IpAddr],
) -> Result<GeneratedFiles, TlsError> {
    fs::create_dir_all(tls_dir).map_err(io(tls_dir))?;
    let files = GeneratedFiles {
        ca_cert: tls_dir.join("ca.crt"),
        ca_key: tls_dir.join("ca.key"),
        server_cert: tls_dir.join("server.crt"),
        server_key: tls_dir.join("server.key"),
    };

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Confab local CA for {domain}"));
    dn.push(DnType::OrganizationName, "Confab");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca_params, 3650);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let mut names = vec![domain.to_string()];
    for ip in ips {
        let s = ip.to_string();
        if !names.contains(&s) {
            names.push(s);
        }
    }
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, domain);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 730);
    let server_cert = params.signed_by(&server_key, &issuer)?;

    fs::write(&files.ca_cert, ca_cert.pem()).map_err(io(&files.ca_cert))?;
    write_private(&files.ca_key, ca_key.serialize_pem().as_bytes()).map_err(io(&files.ca_key))?;
    let chain = format!("{}{}", server_cert.pem(), ca_cert.pem());
    fs::write(&files.server_cert, chain).map_err(io(&files.server_cert))?;
    write_private(&files.server_key, server_key.serialize_pem().as_bytes())
        .map_err(io(&files.server_key))?;
    Ok(files)
}

/// The crypto provider every TLS listener of the binary uses (ring, as in the workspace).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a PEM certificate chain and private key into a rustls [`CertifiedKey`], checking
/// that the key matches the certificate.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = fs::read(cert).map_err(io(cert))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadPem {
            path: cert.to_path_buf(),
            what: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::BadPem {
            path: cert.to_path_buf(),
            what: "no CERTIFICATE block found".into(),
        });
    }
    let key_pem = fs::read(key).map_err(io(key))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadPem {
        path: key.to_path_buf(),
        what: format!("no usable private key: {e}"),
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|source| TlsError::Rustls {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    })
}

/// A certificate resolver whose certificate can be swapped while listeners run (SIGHUP).
/// Handshakes in progress keep the certificate they started with.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl ReloadableCert {
    /// Loads the certificate and key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let ck = load_certified_key(cert_file, key_file)?;
        Ok(Self {
            current: RwLock::new(Arc::new(ck)),
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
        })
    }

    /// Reads the files again; on error the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = load_certified_key(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ck);
        Ok(())
    }

    /// The certificate currently presented.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server configuration presenting `cert` and offering the given ALPN protocols.
pub fn server_config(
    cert: Arc<ReloadableCert>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier as _;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generated_files_load_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let files = create_ca_and_server_cert(
            &dir.path().join("tls"),
            "example.com",
            &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(mode(&files.ca_key), 0o600);
        assert_eq!(mode(&files.server_key), 0o600);
        let ck = load_certified_key(&files.server_cert, &files.server_key).unwrap();
        assert_eq!(ck.cert.len(), 2, "server certificate then CA");
        // The key of the CA does not match the server certificate.
        let err = load_certified_key(&files.server_cert, &files.ca_key).unwrap_err();
        assert!(err.to_string().contains("server.crt"), "{err}");
    }

    #[test]
    fn server_certificate_verifies_against_the_ca_for_domain_and_ips() {
        let dir = tempfile::tempdir().unwrap();
        let files = create_ca_and_server_cert(
            dir.path(),
            "sip.example.com",
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
        let ca = CertificateDer::from_pem_file(&files.ca_cert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let ck = load_certified_key(&files.server_cert, &files.server_key).unwrap();
        let now = rustls_pki_types::UnixTime::now();
        for name in ["sip.example.com", "127.0.0.1"] {
            let sn = rustls_pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&ck.cert[0], &ck.cert[1..], &sn, &[], now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls_pki_types::ServerName::try_from("other.example.com").unwrap();
        assert!(
            verifier
                .verify_server_cert(&ck.cert[0], &ck.cert[1..], &other, &[], now)
                .is_err()
        );
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "not pem").unwrap();
        fs::write(&key, "").unwrap();
        let e = load_certified_key(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("c.pem") && e.contains("no CERTIFICATE"), "{e}");
        let e = load_certified_key(&dir.path().join("missing"), &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn reload_swaps_the_certificate_and_keeps_the_old_one_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = create_ca_and_server_cert(dir.path(), "a.example", &[]).unwrap();
        let r = ReloadableCert::load(&files.server_cert, &files.server_key).unwrap();
        let first = r.current().cert[0].clone();
        create_ca_and_server_cert(dir.path(), "b.example", &[]).unwrap();
        r.reload().unwrap();
        let second = r.current().cert[0].clone();
        assert_ne!(first, second);
        fs::write(&files.server_key, "garbage").unwrap();
        assert!(r.reload().is_err());
        assert_eq!(r.current().cert[0], second);
    }
}
