//! rustls client configurations for STARTTLS to upstreams (ring provider).
//!
//! - `verified`: the chain must verify against `ca_file` (PEM) or, without
//!   one, the webpki roots, for the configured name (or the upstream IP).
//!   Used by the `required` policy.
//! - `unverified`: encryption without authentication, for the
//!   `opportunistic` policy (like Postfix `may`: a certificate that does not
//!   verify is still better than plaintext). Handshake signatures are still
//!   checked.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Both client configurations, built once per deliverer.
#[derive(Debug, Clone)]
pub struct TlsClientConfigs {
    /// Verifies the upstream certificate (policy `required`).
    pub verified: Arc<ClientConfig>,
    /// Encrypts without verifying (policy `opportunistic`).
    pub unverified: Arc<ClientConfig>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsClientConfigs {
    /// Loads the roots from `ca_file` (PEM) or takes the webpki roots.
    pub fn new(ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path).with_context(|| {
                    format!("delivery.forward.ca_file: cannot read {}", path.display())
                })?;
                for cert in certs {
                    let cert = cert.with_context(|| {
                        format!("delivery.forward.ca_file: bad PEM in {}", path.display())
                    })?;
                    roots.add(cert).with_context(|| {
                        format!(
                            "delivery.forward.ca_file: bad certificate in {}",
                            path.display()
                        )
                    })?;
                }
                if roots.is_empty() {
                    anyhow::bail!(
                        "delivery.forward.ca_file: no certificate in {}",
                        path.display()
                    );
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let verified = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let p = provider();
        let unverified = ClientConfig::builder_with_provider(p.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(
                p.signature_verification_algorithms,
            )))
            .with_no_client_auth();
        Ok(Self {
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        })
    }
}

/// Accepts any certificate; checks handshake signatures only.
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
