//! How dcim's HTTPS clients check a server's certificate: `dcimctl` talking to a dcim,
//! and dcim talking to a Redfish BMC. A certificate whose SHA-256 is pinned is trusted
//! whoever signed it, as ssh trusts a known host key (most BMCs and a demo dcim carry
//! self-signed certificates); without a pin, the verifier given (certificate
//! authorities) decides, or nothing is checked when there is none. Whatever the
//! verdict, the certificate's digest is kept, so a refusal can name the fingerprint to
//! pin.
//!
//! rustls has no "pin, else authorities" verifier, so [`PinOrTrust`] is written here; the
//! handshake's signatures stay rustls' own checks, so a server must hold the key of the
//! certificate it shows.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// A certificate's SHA-256 (of its DER).
pub type Digest = [u8; 32];

/// What a refusal under a pin says, for clients that tell it apart.
pub const NOT_PINNED: &str = "is not the pinned one";

/// `ab:cd:...`, the form `openssl x509 -fingerprint -sha256` prints (in lower case).
pub fn fingerprint(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The fingerprint of the first certificate of a PEM file (what a client of the
/// server serving it pins); none when it holds no certificate.
pub fn pem_fingerprint(pem: &[u8]) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem).ok()?;
    Some(fingerprint(&Sha256::digest(der.as_ref()).into()))
}

/// A fingerprint as people write it: 64 hexadecimal digits, with colons or not, with
/// `SHA256:` before or not.
pub fn parse_fingerprint(s: &str) -> Option<Digest> {
    let digits: String = s.trim().trim_start_matches("SHA256:").chars().filter(|c| *c != ':').collect();
    let mut d = [0u8; 32];
    hex::decode_to_slice(digits, &mut d).ok().map(|_| d)
}

/// The pin, else `trust`, else nothing; see the module.
#[derive(Debug)]
pub struct PinOrTrust {
    pin: Option<Digest>,
    trust: Option<Arc<dyn ServerCertVerifier>>,
    seen: Arc<Mutex<Option<Digest>>>,
    provider: Arc<CryptoProvider>,
}

impl PinOrTrust {
    pub fn new(provider: Arc<CryptoProvider>, pin: Option<Digest>, trust: Option<Arc<dyn ServerCertVerifier>>) -> Self {
        PinOrTrust { pin, trust, seen: Arc::new(Mutex::new(None)), provider }
    }

    /// Where the digest of the last certificate shown is kept.
    pub fn seen(&self) -> Arc<Mutex<Option<Digest>>> {
        self.seen.clone()
    }

    /// A TLS 1.2 and 1.3 client configuration checking certificates so.
    pub fn client_config(self) -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth()
    }
}

impl ServerCertVerifier for PinOrTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let shown: Digest = Sha256::digest(end_entity.as_ref()).into();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(shown);
        match (&self.pin, &self.trust) {
            (Some(pin), _) if *pin == shown => Ok(ServerCertVerified::assertion()),
            (Some(pin), _) => Err(rustls::Error::General(format!(
                "the certificate (SHA-256 {}) {NOT_PINNED} ({})",
                fingerprint(&shown),
                fingerprint(pin)
            ))),
            (None, Some(trust)) => {
                trust.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).map_err(|e| {
                    rustls::Error::General(format!(
                        "the certificate is not trusted ({e}); its SHA-256 fingerprint is {}",
                        fingerprint(&shown)
                    ))
                })
            }
            (None, None) => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_written() {
        let d: Digest = core::array::from_fn(|i| i as u8 * 7);
        let shown = fingerprint(&d);
        assert_eq!(shown.len(), 95);
        assert_eq!(parse_fingerprint(&shown), Some(d));
        assert_eq!(parse_fingerprint(&shown.to_uppercase()), Some(d));
        assert_eq!(parse_fingerprint(&format!("SHA256:{}", shown.replace(':', ""))), Some(d));
        assert_eq!(parse_fingerprint("ab:cd"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }
}
