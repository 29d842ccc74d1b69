//! The HTTPS client: the server's certificate is checked against the web's authorities
//! (or a private CA's certificate), or, for a self-signed one such as the demo's,
//! against the SHA-256 fingerprint pinned at login, the way ssh pins host keys
//! ([`dcim_tls::PinOrTrust`]). There is no mode that trusts any certificate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use crate::Failure;

/// `AB:CD:...`: how fingerprints are shown and stored.
pub fn fingerprint_text(digest: &dcim_tls::Digest) -> String {
    dcim_tls::fingerprint(digest).to_uppercase()
}

/// The digest of a fingerprint as given (`AB:CD...`, `abcd...`, with `SHA256:` or not).
pub fn parse_fingerprint(s: &str) -> Result<dcim_tls::Digest, Failure> {
    dcim_tls::parse_fingerprint(s)
        .ok_or_else(|| Failure::Usage(format!("'{s}' is not a SHA-256 fingerprint (32 bytes in hex)")))
}

/// The API of one dcim.
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    pub seen: Arc<Mutex<Option<dcim_tls::Digest>>>,
}

impl Api {
    /// A client of `url`, trusting the pinned fingerprint, a private CA or the web's.
    pub fn new(url: &str, pin: Option<&str>, ca_cert: Option<&std::path::Path>) -> Result<Api, Failure> {
        let base = url.trim().trim_end_matches('/').to_owned();
        if !base.starts_with("https://") && !base.starts_with("http://") {
            return Err(Failure::Usage(format!("'{url}' is not an http:// or https:// URL")));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match ca_cert {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
                for c in certs {
                    let c = c.map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
                    roots.add(c).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let authorities = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Failure::Usage(format!("certificate authorities: {e}")))?;
        let pin = pin.map(parse_fingerprint).transpose()?;
        let check = dcim_tls::PinOrTrust::new(provider, pin, Some(authorities as Arc<dyn ServerCertVerifier>));
        let seen = check.seen();
        let tls = check.client_config();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("dcimctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Usage(format!("the HTTPS client: {e}")))?;
        Ok(Api { http, base, token: None, seen })
    }

    /// The fingerprint of the certificate the last connection saw.
    pub fn seen_fingerprint(&self) -> Option<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(fingerprint_text)
    }

    /// Calls the API; a JSON answer, or the API's error, or why it could not be reached.
    /// A request refused by the token's rate limit (429, code 1005) is sent again after
    /// the `Retry-After` it names, up to five times: a bulk action over hundreds of
    /// servers slows down instead of failing half-way.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let mut tries = 0;
        loop {
            match self.call_once(method.clone(), path, body).await {
                Err(Failure::Api { status: 429, code: 1005, body, .. }) if tries < 5 => {
                    tries += 1;
                    let secs = body["error"]["value"]["retry_after"].as_u64().unwrap_or(1).clamp(1, 30);
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.map_err(|e| self.connection_failure(&e))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| Failure::Connection(format!("reading the answer: {e}")))?;
        let v: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(v);
        }
        let err = &v["error"];
        Err(Failure::Api {
            status: status.as_u16(),
            code: err["code"].as_i64().unwrap_or(0),
            msg: err["msg"].as_str().map(str::to_owned).unwrap_or_else(|| format!("HTTP {status}")),
            body: v,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(Method::POST, path, Some(body)).await
    }

    fn connection_failure(&self, e: &reqwest::Error) -> Failure {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        if detail.contains(dcim_tls::NOT_PINNED) {
            return Failure::Connection(format!(
                "{}: the server's certificate changed (SHA-256 {}); if that is expected, log in again to pin the new one",
                self.base,
                self.seen_fingerprint().unwrap_or_default()
            ));
        }
        Failure::Connection(format!("{}: {detail}", self.base))
    }
}

/// Whether a failure was a certificate no authority signed (login then offers the pin).
pub fn unknown_issuer(f: &Failure) -> bool {
    matches!(f, Failure::Connection(m) if m.contains("UnknownIssuer") || m.contains("unknown issuer") || m.contains("invalid peer certificate"))
}
