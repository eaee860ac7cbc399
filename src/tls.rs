//! TLS for the listeners: the rustls server config from PEM files, or from a
//! self-signed certificate generated at start (rcgen) when none is
//! configured, and the [`TlsInfo`] facts of an established session.
//!
//! A reload ([`ServerTls::reload`]) reads the PEM files again and serves a
//! new certificate from then on when it differs (certificate rotation
//! without a restart); a self-signed certificate is generated again only
//! when the names it is for change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConnection;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::context::TlsInfo;

/// A certificate or key that could not be loaded; names the config key.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    key: &'static str,
    message: String,
}

impl TlsError {
    /// The config key the error is about (`tls.cert` or `tls.key`).
    pub fn key(&self) -> &'static str {
        self.key
    }
}

/// A certificate chain and its private key.
pub type CertAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Loads a PEM certificate chain and private key, and checks they match.
pub fn load_pem(cert: &Path, key: &Path) -> Result<CertAndKey, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError {
            key: "tls.cert",
            message: format!("cannot read certificate {}: {e}", cert.display()),
        })?;
    if certs.is_empty() {
        return Err(TlsError {
            key: "tls.cert",
            message: format!("no certificate found in {}", cert.display()),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
        key: "tls.key",
        message: format!("cannot read private key {}: {e}", key.display()),
    })?;
    // Building a config checks that the key is usable and matches the certificate.
    build(certs.clone(), private.clone_key()).map_err(|e| TlsError {
        key: "tls.key",
        message: format!("{} does not fit {}: {e}", key.display(), cert.display()),
    })?;
    Ok((certs, private))
}

/// Generates a self-signed certificate for `names`.
pub fn self_signed(names: &[String]) -> anyhow::Result<CertAndKey> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("generated key: {e}"))?;
    Ok((vec![ck.cert.der().clone()], key))
}

fn build(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
}

/// The server TLS config for `[tls]`: the configured files, or a fresh
/// self-signed certificate for `self_signed_names` (default: `hostname`).
pub fn server_config(tls: &TlsConfig, hostname: &str) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (certs, key) = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => load_pem(cert, key)?,
        _ => {
            let names = if tls.self_signed_names.is_empty() {
                vec![hostname.to_string()]
            } else {
                tls.self_signed_names.clone()
            };
            tracing::info!(
                ?names,
                "no [tls] certificate configured: using a self-signed one"
            );
            self_signed(&names)?
        }
    };
    Ok(Arc::new(build(certs, key)?))
}

/// Where the served certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// `[tls] cert` and `key`.
    Files {
        /// The PEM certificate chain.
        cert: PathBuf,
        /// The PEM private key.
        key: PathBuf,
    },
    /// Generated at start for these names.
    SelfSigned(Vec<String>),
}

impl std::fmt::Display for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files { cert, .. } => write!(f, "{}", cert.display()),
            Self::SelfSigned(names) => write!(f, "self-signed for {}", names.join(", ")),
        }
    }
}

/// The TLS acceptor the listeners use, with what it serves.
#[derive(Clone)]
pub struct ServerTls {
    /// The acceptor for STARTTLS and smtps.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Where its certificate came from.
    pub source: TlsSource,
    /// SHA-256 of the leaf certificate, as `AB:CD:...` (what `openssl x509
    /// -fingerprint -sha256` prints).
    pub fingerprint: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("source", &self.source)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl ServerTls {
    /// The TLS of `[tls]`: the configured files, or a fresh self-signed
    /// certificate for `self_signed_names` (default: `hostname`).
    pub fn load(tls: &TlsConfig, hostname: &str) -> anyhow::Result<Self> {
        let source = source_of(tls, hostname);
        let (certs, key) = match &source {
            TlsSource::Files { cert, key } => load_pem(cert, key)?,
            TlsSource::SelfSigned(names) => {
                tracing::info!(
                    ?names,
                    "no [tls] certificate configured: using a self-signed one"
                );
                self_signed(names)?
            }
        };
        let fingerprint = certs.first().map(|c| fingerprint(c)).unwrap_or_default();
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(build(certs, key)?)),
            source,
            fingerprint,
        })
    }

    /// The TLS a reload to `tls` serves: `None` when it is what `self`
    /// serves already (the same files holding the same certificate, or a
    /// self-signed one for the same names, not generated again). The
    /// files are read again; an error names the file, and `self` stays.
    pub fn reload(&self, tls: &TlsConfig, hostname: &str) -> anyhow::Result<Option<Self>> {
        let source = source_of(tls, hostname);
        if matches!(source, TlsSource::SelfSigned(_)) && source == self.source {
            return Ok(None);
        }
        let new = Self::load(tls, hostname)?;
        if new.source == self.source && new.fingerprint == self.fingerprint {
            return Ok(None);
        }
        Ok(Some(new))
    }
}

fn source_of(tls: &TlsConfig, hostname: &str) -> TlsSource {
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ if tls.self_signed_names.is_empty() => TlsSource::SelfSigned(vec![hostname.to_string()]),
        _ => TlsSource::SelfSigned(tls.self_signed_names.clone()),
    }
}

/// SHA-256 of a certificate, `AB:CD:...`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(cert.as_ref());
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Protocol, cipher and SNI of an established server session.
pub fn tls_info(conn: &ServerConnection) -> TlsInfo {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "unknown".to_string(), |s| format!("{:?}", s.suite()));
    TlsInfo {
        protocol,
        cipher,
        sni: conn.server_name().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_builds_a_config() {
        let cfg = server_config(&TlsConfig::default(), "mx.example.test").unwrap();
        assert!(Arc::strong_count(&cfg) == 1);
    }

    fn write(dir: &Path) -> String {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("c.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.join("k.pem"), ck.signing_key.serialize_pem()).unwrap();
        fingerprint(ck.cert.der())
    }

    #[test]
    fn reload_rotates_changed_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(dir.path());
        let cfg = TlsConfig {
            cert: Some(dir.path().join("c.pem")),
            key: Some(dir.path().join("k.pem")),
            self_signed_names: Vec::new(),
        };
        let tls = ServerTls::load(&cfg, "mx.test").unwrap();
        assert_eq!(tls.fingerprint, first);
        assert!(tls.reload(&cfg, "mx.test").unwrap().is_none());
        let second = write(dir.path());
        let new = tls.reload(&cfg, "mx.test").unwrap().unwrap();
        assert_eq!(new.fingerprint, second);
        std::fs::write(dir.path().join("c.pem"), "junk").unwrap();
        let e = format!("{:#}", new.reload(&cfg, "mx.test").unwrap_err());
        assert!(e.contains("c.pem"), "{e}");
    }

    #[test]
    fn self_signed_is_kept_until_its_names_change() {
        let cfg = TlsConfig::default();
        let tls = ServerTls::load(&cfg, "mx.test").unwrap();
        assert!(tls.reload(&cfg, "mx.test").unwrap().is_none());
        let new = tls.reload(&cfg, "mx2.test").unwrap().unwrap();
        assert_eq!(new.source, TlsSource::SelfSigned(vec!["mx2.test".into()]));
        assert_ne!(new.fingerprint, tls.fingerprint);
    }

    #[test]
    fn missing_files_name_the_key() {
        let e = load_pem(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .unwrap_err();
        assert_eq!(e.key(), "tls.cert");
        assert!(e.to_string().contains("/nonexistent/c.pem"));
    }
}
