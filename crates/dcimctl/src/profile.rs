//! Profiles: which dcim to talk to, as whom, and the certificate pinned for it, in
//! `$XDG_CONFIG_HOME/dcim/config.toml` (or `~/.config/dcim/config.toml`). Tokens are
//! kept apart, in `tokens.toml` beside it, readable by its owner only (0600), and are
//! never printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Failure;

/// One dcim as the operator knows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    #[serde(default)]
    pub email: String,
    /// SHA-256 of the server's certificate (`AB:CD:...`), pinned at login when no known
    /// authority signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// A private CA's certificate (PEM) that signs the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// When the profile's token ends (`YYYY-MM-DD HH:MM:SS`, UTC), to say so instead of
    /// a bare 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The directory of both files.
pub fn dir() -> Result<PathBuf, Failure> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("dcim"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Failure::Usage("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep profiles".into()))?;
    Ok(PathBuf::from(home).join(".config").join("dcim"))
}

fn read_toml<T: for<'de> Deserialize<'de> + Default>(name: &str) -> Result<T, Failure> {
    let path = dir()?.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Failure::Usage(format!("{}: {e}", path.display()))),
    }
}

/// Writes a file atomically, with mode 0600 from its creation when `private`.
fn write_file(name: &str, text: &str, private: bool) -> Result<(), Failure> {
    let d = dir()?;
    std::fs::create_dir_all(&d).map_err(|e| Failure::Usage(format!("{}: {e}", d.display())))?;
    let tmp = d.join(format!(".{name}.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let fail = |e: std::io::Error| Failure::Usage(format!("{}: {e}", tmp.display()));
    let mut f = opts.open(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, d.join(name)).map_err(fail)
}

impl Config {
    pub fn load() -> Result<Config, Failure> {
        read_toml("config.toml")
    }

    pub fn save(&self) -> Result<(), Failure> {
        let text = toml::to_string_pretty(self).map_err(|e| Failure::Usage(e.to_string()))?;
        write_file("config.toml", &text, false)
    }
}

/// Tokens by profile name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tokens {
    #[serde(flatten)]
    pub by_profile: BTreeMap<String, String>,
}

impl Tokens {
    pub fn load() -> Result<Tokens, Failure> {
        read_toml("tokens.toml")
    }

    pub fn save(&self) -> Result<(), Failure> {
        let text = toml::to_string(self).map_err(|e| Failure::Usage(e.to_string()))?;
        write_file("tokens.toml", &text, true)
    }
}
