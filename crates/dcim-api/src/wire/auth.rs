//! Auth API v4 shapes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Accepted as the spec has it; a login is confirmed exactly when the user has no
    /// second factor, whatever is asked here.
    #[serde(default)]
    pub confirmed: Option<bool>,
}

/// A new session. `id` is the user id as a string, as DCImanager sends it (the vendor
/// document says a number; running DCImanager 6 installations send the string).
/// `confirmed` is false when the user has two-factor authentication: the token then
/// serves nothing until `POST /auth/v4/public/token/confirm` gives a code.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    pub id: String,
    pub token: String,
    /// A session has no fixed end (it ends after an idle time): always null.
    pub expires_at: Option<String>,
    pub confirmed: bool,
}

/// `POST /auth/v4/token`: a long-lived token for an integration.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTokenRequest {
    /// `YYYY-MM-DD hh:mm:ss`, UTC, in the future.
    pub expires_at: String,
    #[serde(default)]
    pub description: String,
}

/// A long-lived token as made: its id (for `DELETE /auth/v4/token/{id}`) and the token,
/// shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenAnswer {
    pub id: i64,
    pub token: String,
    pub expires_at: Option<String>,
    pub confirmed: bool,
}

/// One of the caller's sessions or long-lived tokens (never the token itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    /// `session` (a login; ends when idle) or `token` (`POST /auth/v4/token`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: Option<String>,
    pub created: String,
    pub last_used: String,
    pub expires_at: Option<String>,
    pub confirmed: bool,
}

/// `POST /auth/v4/public/token/confirm`: a second factor for a new session.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmRequest {
    pub token: String,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub reserve_code: Option<String>,
}

/// `POST /auth/v4/self/2fa`: turn TOTP on with a secret and a first code from it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Setup2fa {
    pub secret: String,
    pub code: i64,
}

/// `POST /auth/v4/public/2fa/qrcode`: a QR code (PNG) of a TOTP secret.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QrRequest {
    pub name: String,
    pub secret: String,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub recovery: Option<String>,
}

/// Fresh reserve codes, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReserveCodes {
    pub codes: Vec<String>,
}

/// `GET /auth/v4/self`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SelfInfo {
    pub id: i64,
    pub uuid: String,
    pub email: String,
    pub full_name: String,
    pub phone_number: String,
    pub roles: Vec<String>,
    /// `active` or `disabled` (blocked).
    pub state: &'static str,
    /// Always `local`: dcim has no LDAP.
    pub auth_source: &'static str,
    pub email_confirm: bool,
    pub lang: String,
    pub timezone: String,
    /// Whether two-factor authentication (TOTP) is on.
    pub two_factor: bool,
}

/// `POST /auth/v4/self`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SelfEdit {
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SelfPassword {
    pub old_password: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPassword {
    pub password: String,
}

/// `POST /auth/v4/user/{id}/lock`: a service's blocking dependency on a user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LockRequest {
    pub service: String,
    pub description: String,
}

/// `GET /auth/v4/public/roles`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Roles {
    pub roles: Vec<String>,
}

/// `GET /auth/v4/time`: `{"list":[{"current_time":"YYYY-MM-DD hh:mm:ss"}]}`, UTC.
#[derive(Debug, Serialize, ToSchema)]
pub struct Time {
    pub list: Vec<CurrentTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentTime {
    pub current_time: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSshKey {
    pub name: String,
    pub ssh_pub_key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SshKeyEdit {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SshKey {
    pub id: i64,
    pub name: String,
    pub ssh_pub_key: String,
}

impl From<dcim_store::accounts::SshKeyRow> for SshKey {
    fn from(r: dcim_store::accounts::SshKeyRow) -> Self {
        SshKey { id: r.id, name: r.name, ssh_pub_key: r.ssh_pub_key }
    }
}

/// `{"list": [...]}` without a count, as Auth v4 lists SSH keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct SshKeyList {
    pub list: Vec<SshKey>,
}

/// The time format of Auth v4: `YYYY-MM-DD hh:mm:ss`, UTC.
pub fn auth_time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string().replace('T', " ").trim_end_matches('Z').to_owned()
}

/// Reads Auth v4's `YYYY-MM-DD hh:mm:ss` (UTC; `T` and a trailing `Z` are accepted too).
pub fn parse_auth_time(s: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(s.trim()).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().and_then(|d| i64::try_from(d.as_secs()).ok())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyLoginRequest {
    pub key: String,
}

/// A one-time login key, valid for one use within an hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyAnswer {
    pub id: String,
    pub key: String,
}

/// The caller: `id` and `email` as dcim has always answered, `owner_id` and
/// `owner_email` as the vendor document names them (no trustees: the same user).
#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    pub id: i64,
    pub email: String,
    pub roles: Vec<String>,
    pub owner_id: i64,
    pub owner_email: String,
}
