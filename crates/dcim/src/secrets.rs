//! The key that seals secrets in the database (see `dcim_store::seal`): from
//! `secret_key` (the environment's `DCIM_SECRET_KEY`) or a key file, made with mode
//! 0600 at the first start; and its rotation (`dcim secrets rotate`), which writes the
//! new key beside the old one (`secret.key.next`), re-seals every value in one
//! transaction, then puts the new file in place. A rotation cut short is finished, or
//! undone, at the next start: the database says which key its values are sealed with.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dcim_store::Store;
use dcim_store::seal::SecretKey;

use crate::Config;

/// Where the key in force came from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Setting,
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Setting => f.write_str("the secret_key setting (DCIM_SECRET_KEY)"),
            KeySource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The key of the configuration: `secret_key`, else its file (made when missing).
pub fn load(cfg: &Config) -> anyhow::Result<(SecretKey, KeySource)> {
    if let Some(k) = cfg.secret_key.as_deref().filter(|k| !k.trim().is_empty()) {
        let key = SecretKey::parse(k).map_err(|e| anyhow::anyhow!("secret_key: {e}"))?;
        return Ok((key, KeySource::Setting));
    }
    let path = cfg.secret_key_path();
    let key = match read_key(&path)? {
        Some(k) => k,
        None => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let key = SecretKey::generate();
            match write_new(&path, &key) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), key_id = %key.id(), "made a new secret key");
                    key
                }
                // Another process made it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_key(&path)?.context("the secret key file vanished")?
                }
                Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
            }
        }
    };
    Ok((key, KeySource::File(path)))
}

/// The key in a file; none when there is no file. A file others may read is refused.
fn read_key(path: &Path) -> anyhow::Result<Option<SecretKey>> {
    use std::os::unix::fs::PermissionsExt;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading the secret key file {}", path.display())),
    };
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    anyhow::ensure!(
        mode & 0o077 == 0,
        "the secret key file {} may be read by others (mode {mode:o}): chmod 600 it",
        path.display()
    );
    SecretKey::parse(&text).map(Some).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes a key to a file that must not exist yet, readable by its owner only.
fn write_new(path: &Path, key: &SecretKey) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(f, "{}", key.to_hex())?;
    f.sync_all()
}

fn next_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// The store with its key adopted: a rotation cut short is finished (the database
/// took the new key) or dropped (it did not); values still in clear are sealed.
pub async fn adopt(store: Store, cfg: &Config) -> anyhow::Result<Store> {
    let (mut key, source) = load(cfg)?;
    if let KeySource::File(path) = &source {
        let next = next_path(path);
        if let Some(new) = read_key(&next)? {
            if store.sealing_key_id().await?.as_deref() == Some(new.id().as_str()) {
                std::fs::rename(&next, path)
                    .with_context(|| format!("finishing the rotation of {}", path.display()))?;
                tracing::warn!(key_id = %new.id(), "finished a key rotation that was cut short");
                key = new;
            } else {
                std::fs::remove_file(&next)?;
                tracing::warn!("dropped the new key of a rotation that did not reach the database");
            }
        }
    }
    let store = store.with_key(key);
    let sealed = store.adopt_key().await.with_context(|| format!("the secret key from {source}"))?;
    if sealed > 0 {
        tracing::info!(sealed, "sealed secrets the database kept in clear");
    }
    Ok(store)
}

/// `dcim secrets rotate`: a new key for the key file, every sealed value re-sealed.
pub async fn rotate(store: &Store, cfg: &Config) -> anyhow::Result<(usize, String)> {
    let (_, source) = load(cfg)?;
    let KeySource::File(path) = source else {
        anyhow::bail!(
            "the key comes from the secret_key setting: rotation writes the new key to a file, so give \
             secret_key_file (DCIM_SECRET_KEY_FILE) instead"
        );
    };
    let next = next_path(&path);
    let new = SecretKey::generate();
    write_new(&next, &new).with_context(|| format!("writing {} (a rotation already under way?)", next.display()))?;
    let n = match store.rotate_key(&new).await {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&next);
            return Err(e).context("re-sealing the secrets");
        }
    };
    std::fs::rename(&next, &path).with_context(|| format!("putting {} in place", path.display()))?;
    Ok((n, new.id()))
}
