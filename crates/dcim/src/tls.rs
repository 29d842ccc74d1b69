//! TLS for the API: the operator's certificate, or a self-signed one for the demo
//! (billing systems call `https://`). The demo certificate is made once and kept
//! in the data directory so clients that pinned it keep working.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Paths of the demo certificate and key under `data_dir`, created if missing.
pub fn demo_certificate(data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = data_dir.join("demo-cert.pem");
    let key = data_dir.join("demo-key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let ck = rcgen::generate_simple_self_signed(names).context("generating the demo certificate")?;
    std::fs::write(&cert, ck.cert.pem()).with_context(|| format!("writing {}", cert.display()))?;
    write_private(&key, ck.signing_key.serialize_pem().as_bytes())?;
    Ok((cert, key))
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// A rustls server configuration from PEM files.
pub async fn rustls_config(cert: &Path, key: &Path) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))
}
