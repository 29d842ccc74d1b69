//! Who is calling: the session token in any of its four places, the double-submit
//! guard for cookie-authenticated writes, roles, password hashing and login
//! throttling.
//!
//! A token may arrive as `Authorization: Bearer`, `ISP-Session`, `x-xsrf-token` or
//! the `ses6` cookie. A POST or DELETE authenticated by the cookie alone must also
//! carry `x-xsrf-token` equal to it (a cross-site page can make the browser send
//! the cookie, but cannot read it to copy it into a header).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, header};
use dcim_core::Role;
use dcim_store::ids::UserId;
use dcim_store::list::Scope;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorKind};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    /// Shared with the session cache's copy: a cached session costs no copy of it.
    pub email: Arc<str>,
    pub role: Role,
    /// The session or long-lived token the request came with.
    pub session_id: i64,
    /// On PostgreSQL, which commits the read of the session saw, when this request
    /// read it (not when the session came from [`SessionCache`]): what a cache of
    /// reads may answer this request from ([`crate::server_cache`]).
    pub db_version: Option<dcim_store::DbVersion>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The caller as the audit trail names it.
    pub fn actor(&self) -> dcim_store::audit::Actor {
        dcim_store::audit::Actor {
            user_id: Some(self.user_id),
            email: self.email.to_string(),
            role: self.role.to_string(),
            token_id: Some(self.session_id),
        }
    }

    /// Refuses (403) a caller that is not `@admin`.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::forbidden()) }
    }

    /// The servers this caller may see: all for an admin, its own for a user. The
    /// restriction goes into the query, so another user's server is simply absent.
    pub fn server_scope(&self) -> Vec<Scope> {
        match self.role {
            Role::Admin => vec![],
            Role::User => vec![dcim_store::servers::owned_by(self.user_id)],
        }
    }
}

/// Name of the session cookie, as DCImanager names it.
pub const COOKIE: &str = "ses6";

/// Name of the web UI's session cookie (HttpOnly, SameSite=Strict, path `/ui`): the
/// same kind of session token, kept apart from the API's `ses6` rules.
pub const UI_COOKIE: &str = "dcim_ui";

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookie_value(h, name).map(str::trim).filter(|v| !v.is_empty())
}

fn cookie_value<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The token a request carries, after the double-submit check. A request may carry its
/// token in several places (DCImanager's clients send the cookie and `x-xsrf-token`
/// together), but never two different tokens: which one would count is a question an
/// attacker could answer for us, so such a request is refused.
/// A credential that is there but empty (`ISP-Session:`, `Authorization: Bearer`,
/// `Cookie: ses6=`) is refused rather than taken for no credential: a client that
/// sends one has lost its token, and serving the request on another carrier's token
/// would hide that.
pub fn request_token<'a>(method: &Method, h: &'a HeaderMap) -> ApiResult<Option<&'a str>> {
    let empty = |what: &str| Err(ApiError::unauthorized(format!("{what} is empty: send the session's token")));
    // Each carrier as sent: `None` when absent, `Some("")` when empty (or not text).
    // Looked up once each, by names parsed once: this runs at every request.
    let sent = |name: &HeaderName| h.get(name).map(|v| v.to_str().map(str::trim).unwrap_or(""));
    let isp = sent(&ISP_SESSION);
    if isp == Some("") {
        return empty("the ISP-Session header");
    }
    let xsrf = sent(&XSRF_TOKEN);
    if xsrf == Some("") {
        return empty("the x-xsrf-token header");
    }
    let authorization = sent(&header::AUTHORIZATION);
    if matches!(authorization, Some(a) if a.is_empty() || a.eq_ignore_ascii_case("bearer")) {
        return empty("the Authorization header");
    }
    let ses6 = cookie_value(h, COOKIE).map(str::trim);
    if ses6 == Some("") {
        return empty("the ses6 cookie");
    }
    let bearer = authorization.and_then(|v| v.strip_prefix("Bearer ").map(str::trim));
    let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && bearer.is_none() && isp.is_none() && ses6.is_some() && xsrf != ses6 {
        return Err(ApiError::new(
            ErrorKind::XsrfMismatch,
            "a POST or DELETE authenticated by the ses6 cookie must send the same token in x-xsrf-token",
        ));
    }
    let given = [("Authorization", bearer), ("ISP-Session", isp), ("x-xsrf-token", xsrf), ("the ses6 cookie", ses6)];
    let token = given.iter().find_map(|(_, t)| *t);
    if given.iter().any(|(_, t)| t.is_some() && *t != token) {
        let names: Vec<&str> = given.iter().filter(|(_, t)| t.is_some()).map(|(n, _)| *n).collect();
        return Err(ApiError::unauthorized(format!(
            "the request carries different tokens ({}): send one session's token",
            names.join(", ")
        )));
    }
    Ok(token)
}

/// DCImanager's session header.
const ISP_SESSION: HeaderName = HeaderName::from_static("isp-session");

/// The double-submit header DCImanager's clients send beside the `ses6` cookie.
const XSRF_TOKEN: HeaderName = HeaderName::from_static("x-xsrf-token");

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = request_token(&parts.method, &parts.headers)?.ok_or_else(|| {
            ApiError::unauthorized("no session: log in with POST /api/auth/v4/public/token and send the token")
        })?;
        caller_for_token(state, token).await
    }
}

/// The caller a session token belongs to (the web UI's sessions are looked up here too).
pub async fn caller_for_token(state: &AppState, token: &str) -> ApiResult<Caller> {
    // The digest alone keys this process's caches; the database keeps it as hex.
    let digest = digest_of(token);
    let caller = match state.sessions.get(&digest) {
        Some(caller) => caller,
        None => session_caller(state, digest).await?,
    };
    state.rate.check(&digest)?;
    tracing::Span::current().record("user_id", caller.user_id.get());
    dcim_store::audit::set_actor(|| caller.actor());
    Ok(caller)
}

/// How often a session's last use is written, for `idle` seconds of idle time: every
/// twentieth of it (three minutes of the default hour), so a session ends between 95%
/// and 100% of its idle time after its last use. Each write is a commit, and a commit
/// empties the server cache ([`crate::server_cache`]): a write every 30 s would keep
/// a 100,000-server cache on PostgreSQL (33 s of first reads) from ever filling.
fn touch_every(idle: i64) -> i64 {
    idle / 20
}

/// The caller of a session the cache does not hold, asked of the database (and cached).
async fn session_caller(state: &AppState, digest: TokenDigest) -> ApiResult<Caller> {
    let idle = state.cfg.session_idle_secs;
    let s = state
        .store
        .session_user(&hex::encode(digest), idle, touch_every(idle))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session has expired or was logged out; log in again"))?;
    if !s.confirmed {
        return Err(ApiError::new(
            ErrorKind::SecondFactor,
            "this token waits for the second factor: POST /auth/v4/public/token/confirm with the code",
        ));
    }
    let db_version = s.db_version();
    let caller =
        Caller { user_id: s.user_id, email: s.email.into(), role: s.role, session_id: s.session_id, db_version: None };
    state.sessions.put(digest, caller.clone());
    Ok(Caller { db_version, ..caller })
}

/// A fresh 256-bit secret as 64 hex digits: session tokens and one-time keys.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// What the database keeps of a token or key.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(digest_of(secret))
}

/// A session token's SHA-256, as [`hash_secret`] before its hex: what the session cache
/// and the rate limit key on (no hex string made at every request).
type TokenDigest = [u8; 32];

fn digest_of(secret: &str) -> TokenDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// The argon2id that hashes new passwords: 9 MiB of memory and four passes, one of the
/// configurations OWASP's password storage cheat sheet lists as equal in defence to
/// the crate's default (19 MiB, two passes), trading memory for time. Each login
/// holds its memory while it runs, and the process's peak carries it: the default's
/// 19 MiB was a quarter of dcim's whole footprint. The time is the same (four passes
/// over 9 MiB against two over 19). Hashes made with other parameters keep them:
/// verifying reads them from the stored hash.
fn hasher() -> Argon2<'static> {
    let params = argon2::Params::new(9 * 1024, 4, 1, None).expect("valid argon2 parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a password with argon2id (on a blocking thread: it is slow on purpose).
pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hasher().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|e| ApiError::internal_because(format!("the password hashing thread failed: {e}")))?
        .map_err(|e| ApiError::internal_because(format!("password hashing failed: {e}")))
}

/// An argon2id hash with [`hasher`]'s parameters of a random password nobody kept: a
/// login for an unknown e-mail is checked against it, so it takes as long as a wrong
/// password. A constant rather than a hash made at the first login, which cost that
/// login a second argon2 run. A test checks that its parameters are still
/// [`hasher`]'s.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=9216,t=4,p=1$dVNDTUMyT29hVEg1TEM$o5oM7ZVlRroxtk9zpOuIKcifyVatDxYTQiwbkDQKxqM";

/// Checks a password against a stored hash; `None` still burns the same time, so a
/// wrong e-mail cannot be told from a wrong password by the clock.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = PasswordHash::new(&hash)
            .map(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        ok && real
    })
    .await
    .unwrap_or(false)
}

/// Sessions checked against the database within the last `ttl`, so a busy client
/// costs one session query per `ttl` rather than one per request. A logout, block or
/// password change in this process takes effect at once ([`SessionCache::forget`]);
/// one made by another process sharing the database, within `ttl`: which is why dcim
/// runs with no cache (`ttl` 0) on PostgreSQL unless told otherwise.
pub struct SessionCache {
    ttl: Duration,
    map: Mutex<HashMap<TokenDigest, (Caller, Instant)>>,
}

impl SessionCache {
    /// Entries kept before expired ones are swept.
    const SWEEP_AT: usize = 10_000;

    pub fn new(ttl: Duration) -> Self {
        SessionCache { ttl, map: Mutex::new(HashMap::new()) }
    }

    fn get(&self, digest: &TokenDigest) -> Option<Caller> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(digest).filter(|(_, at)| at.elapsed() < self.ttl).map(|(c, _)| c.clone())
    }

    fn put(&self, digest: TokenDigest, caller: Caller) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::SWEEP_AT {
            map.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        map.insert(digest, (caller, Instant::now()));
    }

    /// Drops one session (by its token's hash, as the database keeps it), or every session
    /// of a user.
    pub fn forget(&self, token_hash: Option<&str>, user_id: Option<UserId>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut digest = TokenDigest::default();
        if let Some(h) = token_hash
            && hex::decode_to_slice(h, &mut digest).is_ok()
        {
            map.remove(&digest);
        }
        if let Some(u) = user_id {
            map.retain(|_, (c, _)| c.user_id != u);
        }
    }
}

/// Requests per token: a GCRA bucket (governor) for each token that made a request,
/// `per_sec` on average with bursts of `burst`. Kept in each process's memory: it guards
/// the process's own capacity (a runaway script or billing poller), so two processes
/// give a token twice the rate; what must hold across processes (failed logins) is in
/// the database.
pub struct RateLimit {
    limiter: Option<governor::DefaultKeyedRateLimiter<TokenDigest>>,
    checks: std::sync::atomic::AtomicU32,
}

impl RateLimit {
    /// Buckets kept before those full again are dropped: looked at once every
    /// `SWEEP_EVERY` requests, so a sweep is never on every request's path.
    const SWEEP_AT: usize = 10_000;
    const SWEEP_EVERY: u32 = 4096;

    /// `per_sec` 0: no limit.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let limiter = std::num::NonZeroU32::new(per_sec).map(|rate| {
            let burst = std::num::NonZeroU32::new(burst).unwrap_or(rate).max(rate);
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        });
        RateLimit { limiter, checks: std::sync::atomic::AtomicU32::new(0) }
    }

    /// One request with the token of `digest`: refused with 429 and the seconds to
    /// wait when its bucket is empty.
    pub fn check(&self, digest: &TokenDigest) -> ApiResult<()> {
        use governor::clock::Clock;
        let Some(l) = &self.limiter else { return Ok(()) };
        let n = self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(Self::SWEEP_EVERY) && l.len() >= Self::SWEEP_AT {
            l.retain_recent();
        }
        match l.check_key(digest) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                // The limiter's own clock: a new one (`DefaultClock::default()`) is
                // calibrated with CPUID each time, which cost a refused request three
                // times a served one's CPU.
                let wait = not_until.wait_time_from(l.clock().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError::new(
                    ErrorKind::RateLimited,
                    format!("too many requests with this token; try again in {secs} s"),
                )
                .with_value(serde_json::json!({ "retry_after": secs.max(1) })))
            }
        }
    }
}

/// Counts failed logins per account and per client address within a window, in the
/// database (`dcim_store::throttle`): every process of a database sees the same counts.
pub struct Throttle {
    store: dcim_store::Store,
    window: Duration,
    max_per_account: u32,
    max_per_address: u32,
}

fn account_key(account: &str) -> String {
    format!("a:{}", account.trim().to_ascii_lowercase())
}

fn address_key(addr: Option<IpAddr>) -> String {
    format!("i:{}", addr.map(|a| a.to_string()).unwrap_or_default())
}

/// One-time key tries are counted apart from passwords, per address.
fn key_try_key(addr: IpAddr) -> String {
    format!("k:{addr}")
}

impl Throttle {
    pub fn new(store: dcim_store::Store, window: Duration, max_per_account: u32, max_per_address: u32) -> Self {
        Throttle { store, window, max_per_account, max_per_address }
    }

    fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    fn secs(ms: Option<i64>) -> Option<u64> {
        ms.map(|ms| ((ms + 999) / 1000).max(1) as u64)
    }

    /// `Some(seconds to wait)` while the account or the address is locked out.
    pub async fn blocked_for(&self, account: &str, addr: Option<IpAddr>) -> ApiResult<Option<u64>> {
        let (a, i) = (account_key(account), address_key(addr));
        let keys = [(a.as_str(), i64::from(self.max_per_account)), (i.as_str(), i64::from(self.max_per_address))];
        Ok(Self::secs(self.store.throttled_for(&keys, self.window_ms()).await?))
    }

    pub async fn record_failure(&self, account: &str, addr: Option<IpAddr>) -> ApiResult<()> {
        let (a, i) = (account_key(account), address_key(addr));
        Ok(self.store.record_login_failure(&[&a, &i], self.window_ms()).await?)
    }

    /// One-time keys are throttled by client address alone: a key is a 256-bit secret
    /// that works once, so a count per key adds nothing, and a shared count would let
    /// one client's wrong keys lock every customer out of the panel. `None` (no peer
    /// address known) is never throttled, for the same reason.
    pub async fn key_blocked_for(&self, addr: Option<IpAddr>) -> ApiResult<Option<u64>> {
        let Some(addr) = addr else { return Ok(None) };
        let k = key_try_key(addr);
        Ok(Self::secs(self.store.throttled_for(&[(&k, i64::from(self.max_per_address))], self.window_ms()).await?))
    }

    pub async fn record_key_failure(&self, addr: Option<IpAddr>) -> ApiResult<()> {
        let Some(addr) = addr else { return Ok(()) };
        Ok(self.store.record_login_failure(&[&key_try_key(addr)], self.window_ms()).await?)
    }

    pub async fn record_success(&self, account: &str) -> ApiResult<()> {
        Ok(self.store.clear_login_failures(&account_key(account)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn token_sources_and_double_submit() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(request_token(&get, &headers(&[("cookie", "a=1; ses6=T1")])).unwrap(), Some("T1"));
        assert_eq!(request_token(&get, &headers(&[("authorization", "Bearer T2")])).unwrap(), Some("T2"));
        assert_eq!(request_token(&get, &headers(&[("isp-session", "T3")])).unwrap(), Some("T3"));
        assert_eq!(request_token(&post, &headers(&[("x-xsrf-token", "T4")])).unwrap(), Some("T4"));
        let both = headers(&[("cookie", "ses6=T5"), ("x-xsrf-token", "T5")]);
        assert_eq!(request_token(&post, &both).unwrap(), Some("T5"));
        let e = request_token(&post, &headers(&[("cookie", "ses6=T6")])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::XsrfMismatch);
        let e = request_token(&Method::DELETE, &headers(&[("cookie", "ses6=T7"), ("x-xsrf-token", "X")])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::XsrfMismatch);
        assert_eq!(request_token(&get, &headers(&[])).unwrap(), None);
        // The same token in two carriers is one token; two different ones are refused.
        let same = headers(&[("authorization", "Bearer T8"), ("cookie", "ses6=T8")]);
        assert_eq!(request_token(&get, &same).unwrap(), Some("T8"));
        let two = headers(&[("authorization", "Bearer T9"), ("cookie", "ses6=stale")]);
        let e = request_token(&get, &two).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.msg.contains("Authorization, the ses6 cookie"), "{}", e.msg);
        let e = request_token(&post, &headers(&[("isp-session", "A"), ("x-xsrf-token", "B")])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        // An empty carrier beside a good token is a lost token, not no token.
        for empty in [("isp-session", " "), ("x-xsrf-token", ""), ("authorization", "Bearer "), ("cookie", "ses6=")] {
            let good =
                if empty.0 == "authorization" { ("isp-session", "T10") } else { ("authorization", "Bearer T10") };
            let h = headers(&[good, empty]);
            let e = request_token(&get, &h).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unauthorized, "{empty:?}");
            assert!(e.msg.contains("is empty"), "{}", e.msg);
        }
    }

    /// The unknown e-mail's hash costs what a real one does: the same algorithm,
    /// version and parameters as a hash made now; and no password is taken for it.
    #[tokio::test]
    async fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = hash_password("some password".into()).await.unwrap();
        let head = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(head(DUMMY_HASH), head(&real));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password("dcim-dummy-password".into(), None).await);
        assert!(verify_password("some password".into(), Some(real)).await);
        // A hash made with other parameters (the crate's default, dcim's before) keeps
        // them.
        let old = Argon2::default().hash_password(b"older password").unwrap().to_string();
        assert!(old.contains("m=19456,t=2"), "{old}");
        assert!(verify_password("older password".into(), Some(old.clone())).await);
        assert!(!verify_password("another password".into(), Some(old)).await);
    }

    #[test]
    fn secrets_are_long_and_hashed() {
        let s = new_secret();
        assert_eq!(s.len(), 64);
        assert_ne!(s, new_secret());
        assert_eq!(hash_secret(&s).len(), 64);
        assert_ne!(hash_secret(&s), s);
    }
}
