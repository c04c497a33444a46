//! TLS with rustls (ring provider): certificates from PEM files, SNI with one certificate
//! per served domain, reload of renewed files without a restart, optional client
//! certificates with RFC 5922 identities, and the client side for server-to-server links.
//!
//! rustls speaks TLS 1.2 and 1.3 with ECDHE key exchange and AEAD ciphers only. Old desk
//! phones that need TLS 1.0/1.1, static-RSA key exchange or CBC suites cannot connect; that
//! is a deliberate trade (no legacy crypto), not a bug.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsConfig};
use crate::x509;

/// What went wrong loading TLS material. Each variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{0}: no PEM CERTIFICATE found")]
    NoCertificate(PathBuf),
    /// A key file holds no private key.
    #[error("{0}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    /// rustls refused the key or the chain.
    #[error("{path}: {source}")]
    Rustls {
        /// The file involved.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built.
    #[error("tls.client_ca {path}: {reason}")]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate without names and without `server_names`.
    #[error("{0}: the certificate has no DNS names; list them in server_names")]
    NoNames(PathBuf),
    /// No certificates configured.
    #[error("[tls] has no certificates")]
    Empty,
}

/// The identities of a TLS peer, per RFC 5922 §7.1: the host parts of `sip:` URIs in
/// subjectAltName if there are any, else the dNSName entries, else (only when there is no
/// subjectAltName at all) the subject Common Name. Wildcard names are never identities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    domains: Vec<String>,
}

impl PeerIdentity {
    /// Reads the identities of a DER certificate (the peer's end-entity certificate).
    pub fn from_der(der: &[u8]) -> Self {
        let Ok(names) = x509::cert_names(der) else {
            return PeerIdentity::default();
        };
        let mut domains: Vec<String> = names
            .uris
            .iter()
            .filter_map(|u| sip_uri_domain(u))
            .collect();
        if domains.is_empty() {
            domains = names
                .dns
                .iter()
                .filter(|d| !d.contains('*'))
                .map(|d| d.to_ascii_lowercase())
                .collect();
        }
        if domains.is_empty() && !names.has_san {
            domains.extend(
                names
                    .common_name
                    .filter(|c| !c.contains('*'))
                    .map(|c| c.to_ascii_lowercase()),
            );
        }
        domains.dedup();
        PeerIdentity { domains }
    }

    /// The SIP domains the certificate vouches for (lowercase).
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// RFC 5922 §7.2/§7.3: exact, case-insensitive match; no wildcards.
    pub fn matches(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        self.domains.iter().any(|x| x.eq_ignore_ascii_case(d))
    }
}

/// `sip:example.com` → `example.com`; URIs with a user part, another scheme, or nothing
/// after the colon are not domain identities (RFC 5922 §7.1).
fn sip_uri_domain(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") || rest.contains('@') {
        return None;
    }
    let host = rest.split([';', '?']).next()?;
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return k.clone();
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// Loaded TLS configuration, swappable at run time.
#[derive(Debug)]
pub(crate) struct TlsState {
    cfg: TlsConfig,
    provider: Arc<CryptoProvider>,
    server: RwLock<Arc<ServerConfig>>,
    client: RwLock<Arc<ClientConfig>>,
    stamps: RwLock<Vec<Option<SystemTime>>>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read_file(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(&data[..]))
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read_file(path)?;
    rustls_pemfile::private_key(&mut BufReader::new(&data[..]))
        .map_err(|source| TlsError::Read {
            path: path.into(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey(path.into()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|source| TlsError::Rustls {
            path: path.into(),
            source,
        })?;
    }
    Ok(roots)
}

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl TlsState {
    fn files(cfg: &TlsConfig) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = cfg
            .certificates
            .iter()
            .flat_map(|c| [c.cert_chain.clone(), c.private_key.clone()])
            .collect();
        v.extend(cfg.client_ca.clone());
        v.extend(cfg.trust_anchors.clone());
        v
    }

    fn stamps(cfg: &TlsConfig) -> Vec<Option<SystemTime>> {
        Self::files(cfg)
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    pub(crate) fn load(cfg: TlsConfig) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = Self::stamps(&cfg);
        let (server, client) = Self::build(&cfg, &provider)?;
        Ok(Arc::new(TlsState {
            cfg,
            provider,
            server: RwLock::new(server),
            client: RwLock::new(client),
            stamps: RwLock::new(stamps),
        }))
    }

    fn build(
        cfg: &TlsConfig,
        provider: &Arc<CryptoProvider>,
    ) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsError> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut first: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> = None;
        let mut default = None;
        for c in &cfg.certificates {
            let chain = load_certs(&c.cert_chain)?;
            let key = load_key(&c.private_key)?;
            let signing = provider
                .key_provider
                .load_private_key(key.clone_key())
                .map_err(|source| TlsError::Rustls {
                    path: c.private_key.clone(),
                    source,
                })?;
            let ck = Arc::new(CertifiedKey::new(chain.clone(), signing));
            ck.keys_match().map_err(|source| TlsError::Rustls {
                path: c.private_key.clone(),
                source,
            })?;
            let names = if c.server_names.is_empty() {
                x509::cert_names(&chain[0])
                    .map(|n| n.dns)
                    .unwrap_or_default()
            } else {
                c.server_names.clone()
            };
            if names.is_empty() {
                return Err(TlsError::NoNames(c.cert_chain.clone()));
            }
            for n in names {
                let n = n.to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(ck.clone()),
                    None => exact.entry(n).or_insert(ck.clone()),
                };
            }
            default.get_or_insert(ck);
            first.get_or_insert((chain, key));
        }
        let default = default.ok_or(TlsError::Empty)?;
        let resolver = SniResolver {
            exact,
            wildcard,
            default,
        };
        let verifier = match (cfg.client_auth, &cfg.client_ca) {
            (ClientAuth::None, _) | (_, None) => WebPkiClientVerifier::no_client_auth(),
            (mode, Some(path)) => {
                let b = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(load_roots(path)?),
                    provider.clone(),
                );
                let b = if mode == ClientAuth::Optional {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                b.build().map_err(|e| TlsError::Verifier {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
        };
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                path: PathBuf::new(),
                source,
            })?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(resolver));

        let anchors = cfg
            .trust_anchors
            .clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEM_BUNDLE));
        let roots = if anchors.exists() || cfg.trust_anchors.is_some() {
            load_roots(&anchors)?
        } else {
            RootCertStore::empty()
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                path: PathBuf::new(),
                source,
            })?
            .with_root_certificates(roots);
        let client = match first {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsError::Rustls {
                    path: cfg.certificates[0].cert_chain.clone(),
                    source,
                })?,
            None => builder.with_no_client_auth(),
        };
        Ok((Arc::new(server), Arc::new(client)))
    }

    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rebuilds everything from the files. On error the old configuration stays in force.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let stamps = Self::stamps(&self.cfg);
        let (server, client) = Self::build(&self.cfg, &self.provider)?;
        *self.server.write().unwrap_or_else(|e| e.into_inner()) = server;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
        *self.stamps.write().unwrap_or_else(|e| e.into_inner()) = stamps;
        Ok(())
    }

    /// Reloads when a file's modification time changed. Returns whether it reloaded.
    pub(crate) fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = Self::stamps(&self.cfg);
        if *self.stamps.read().unwrap_or_else(|e| e.into_inner()) == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    pub(crate) fn reload_interval_s(&self) -> u64 {
        self.cfg.reload_interval_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_uri(uri: &str, want: Option<&str>) {
        assert_eq!(sip_uri_domain(uri).as_deref(), want, "{uri}");
    }

    #[test]
    fn rfc5922_uri_identities() {
        check_uri("sip:Example.COM", Some("example.com"));
        check_uri("SIP:example.com;transport=tls", Some("example.com"));
        check_uri("sip:example.com:5061", Some("example.com"));
        check_uri("sip:[2001:db8::1]", Some("2001:db8::1"));
        check_uri("sip:alice@example.com", None);
        check_uri("https://example.com", None);
        check_uri("sip:", None);
    }

    fn identity(sans: Vec<rcgen::SanType>, cn: Option<&str>) -> PeerIdentity {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        if let Some(cn) = cn {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        PeerIdentity::from_der(p.self_signed(&key).unwrap().der())
    }

    #[test]
    fn rfc5922_precedence() {
        use rcgen::SanType::{DnsName, URI};
        let dns = |s: &str| DnsName(s.try_into().unwrap());
        let uri = |s: &str| URI(s.try_into().unwrap());
        // URI identities win over DNS names
        let id = identity(
            vec![uri("sip:a.example"), dns("b.example")],
            Some("c.example"),
        );
        assert_eq!(id.domains(), ["a.example"]);
        assert!(id.matches("A.Example.") && !id.matches("b.example"));
        // no sip URI: DNS names, wildcards excluded
        let id = identity(
            vec![uri("sip:u@x.example"), dns("b.example"), dns("*.w.example")],
            Some("c.example"),
        );
        assert_eq!(id.domains(), ["b.example"]);
        assert!(!id.matches("x.w.example"));
        // no SAN at all: the CN
        assert_eq!(identity(vec![], Some("C.example")).domains(), ["c.example"]);
        // SAN present but nothing usable: no identity, CN not consulted
        assert!(
            identity(vec![dns("*.w.example")], Some("c.example"))
                .domains()
                .is_empty()
        );
        assert!(PeerIdentity::from_der(b"junk").domains().is_empty());
    }
}
