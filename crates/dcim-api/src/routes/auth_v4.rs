//! Auth API v4 (ISPsystem's published document): login by password or one-time key,
//! the second factor that confirms a login, long-lived tokens, logout, whoami, key
//! issue, roles, time, and the browser single-sign-on link. The user's own settings,
//! passwords, SSH keys, suspension and locks are in [`super::auth_v4_self`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dcim_core::validate::line;
use dcim_store::ids::UserId;
use serde_json::json;

use crate::AppState;
use crate::auth::{
    COOKIE, Caller, UI_COOKIE, caller_for_token, hash_secret, new_secret, request_token, verify_password,
};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Body, ClientIp, Path};
use crate::totp;
use crate::wire::auth::{
    ConfirmRequest, CurrentTime, KeyAnswer, KeyLoginRequest, LoginRequest, NewTokenAnswer, NewTokenRequest, QrRequest,
    ReserveCodes, Roles, Setup2fa, Time, TokenAnswer, TokenInfo, Whoami, auth_time, parse_auth_time,
};
use crate::wire::{Empty, List};

/// Wrong second factors a new session may take before it is ended.
const MAX_CONFIRM_FAILURES: i64 = 5;

async fn open_session(st: &AppState, user_id: UserId, confirmed: bool) -> ApiResult<TokenAnswer> {
    let token = new_secret();
    st.store.create_session(user_id, &hash_secret(&token), confirmed).await?;
    Ok(TokenAnswer { id: user_id.to_string(), token, expires_at: None, confirmed })
}

/// A user by id or e-mail, as Auth v4's `{user_id}` paths take it.
pub(crate) async fn resolve_user(st: &AppState, user: &str) -> ApiResult<UserId> {
    match user.parse::<i64>() {
        Ok(id) => Ok(st.store.get_user(UserId(id)).await?.id),
        Err(_) => st.store.find_user_id_by_email(user).await?.ok_or_else(|| ApiError::not_found("user", user)),
    }
}

fn throttled(secs: u64) -> ApiError {
    ApiError::new(ErrorKind::Throttled, format!("too many failed attempts; try again in {secs} s"))
        .with_value(json!({ "retry_after": secs }))
}

/// Log in with e-mail and password. For a user with two-factor authentication the
/// token comes back with `confirmed: false` and serves nothing until confirmed.
#[utoipa::path(post, path = "/auth/v4/public/token", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 201, body = TokenAnswer), (status = 401), (status = 429)))]
pub async fn login(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<LoginRequest>,
) -> ApiResult<(StatusCode, Json<TokenAnswer>)> {
    if let Some(secs) = st.throttle.blocked_for(&req.email, ip).await? {
        return Err(throttled(secs));
    }
    let creds = st.store.credentials_by_email(&req.email).await?;
    let ok = verify_password(req.password, creds.as_ref().map(|c| c.password_hash.clone())).await;
    let creds = match creds {
        Some(c) if ok => c,
        _ => {
            st.throttle.record_failure(&req.email, ip).await?;
            tracing::info!(email = %req.email, ?ip, "failed login");
            return Err(ApiError::new(ErrorKind::BadCredentials, "wrong e-mail or password"));
        }
    };
    if creds.blocked {
        return Err(ApiError::new(ErrorKind::Forbidden, "this account is blocked"));
    }
    st.throttle.record_success(&req.email).await?;
    Ok((StatusCode::CREATED, Json(open_session(&st, creds.id, !creds.two_factor).await?)))
}

/// Exchange a one-time key for a session. The key was issued by an admin (a billing
/// panel's single sign-on), so the session needs no second factor.
#[utoipa::path(post, path = "/auth/v4/public/key", tag = "auth", security(()), request_body = KeyLoginRequest,
    responses((status = 201, body = TokenAnswer), (status = 401)))]
pub async fn login_by_key(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<KeyLoginRequest>,
) -> ApiResult<(StatusCode, Json<TokenAnswer>)> {
    let user_id = use_key(&st, &req.key, ip).await?;
    Ok((StatusCode::CREATED, Json(open_session(&st, user_id, true).await?)))
}

async fn use_key(st: &AppState, key: &str, ip: Option<std::net::IpAddr>) -> ApiResult<UserId> {
    if let Some(secs) = st.throttle.key_blocked_for(ip).await? {
        return Err(throttled(secs));
    }
    match st.store.consume_auth_key(&hash_secret(key)).await? {
        Some(id) => Ok(id),
        None => {
            st.throttle.record_key_failure(ip).await?;
            Err(ApiError::new(ErrorKind::BadCredentials, "the key is unknown, used or expired"))
        }
    }
}

/// Single sign-on link (what billing panels send customers to): sets the API's `ses6`
/// cookie and the web UI's own, and goes to the web UI.
#[utoipa::path(get, path = "/auth/key-v4/{key}", tag = "auth", security(()),
    responses((status = 303, description = "cookies set, redirect to /ui/"), (status = 401)))]
pub async fn key_redirect(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let user_id = use_key(&st, &key, ip).await?;
    let t = open_session(&st, user_id, true).await?;
    let secure = if st.cfg.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={}; Path=/; SameSite=Lax{secure}", t.token);
    let ui = format!("{UI_COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict{secure}", t.token);
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/".to_owned())]).into_response();
    for c in [cookie, ui] {
        r.headers_mut().append(header::SET_COOKIE, c.parse().map_err(ApiError::internal_because)?);
    }
    Ok(r)
}

/// Log out, or revoke a token: `{token}` is the token itself (no other credential
/// needed: whoever holds it may end it) or the id of one of the caller's sessions or
/// long-lived tokens (an admin's: anyone's).
#[utoipa::path(delete, path = "/auth/v4/token/{token}", tag = "auth",
    params(("token" = String, Path, description = "the token, or a session or token id")),
    // The token in the path is its own credential; an id needs a session's.
    security((), ("ses6" = []), ("bearer" = []), ("isp_session" = []), ("xsrf" = [])),
    responses((status = 200, body = Empty), (status = 404)))]
pub async fn logout(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(token): Path<String>,
    _body: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    // Tokens are 64 hex digits; an id is a short number.
    if let Some(id) = token.parse::<i64>().ok().filter(|_| token.len() < 19) {
        let bearer = request_token(&method, &headers)?
            .ok_or_else(|| ApiError::unauthorized("log in to revoke a token by its id"))?;
        let caller = caller_for_token(&st, bearer).await?;
        let owner = (!caller.is_admin()).then_some(caller.user_id);
        let hash = st.store.delete_session_by_id(id, owner).await?.ok_or_else(|| ApiError::not_found("token", id))?;
        st.sessions.forget(Some(&hash), None);
        return Ok(Json(Empty {}));
    }
    let hash = hash_secret(&token);
    st.sessions.forget(Some(&hash), None);
    if st.store.delete_session(&hash).await? {
        Ok(Json(Empty {}))
    } else {
        Err(ApiError::not_found("session", "with that token"))
    }
}

/// Make a long-lived token for an integration: no idle limit, valid until
/// `expires_at`. The token is shown this once.
#[utoipa::path(post, path = "/auth/v4/token", tag = "auth", request_body = NewTokenRequest,
    responses((status = 201, body = NewTokenAnswer), (status = 422)))]
pub async fn create_token(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<NewTokenRequest>,
) -> ApiResult<(StatusCode, Json<NewTokenAnswer>)> {
    let expires_at = parse_auth_time(&b.expires_at)
        .ok_or_else(|| ApiError::invalid("expires_at", "must be a time as YYYY-MM-DD hh:mm:ss (UTC)"))?;
    if expires_at <= dcim_store::now() {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let description = line("description", &b.description, 255)?;
    let token = new_secret();
    let id = st.store.create_token(caller.user_id, &hash_secret(&token), expires_at, &description).await?;
    tracing::info!(user_id = caller.user_id.get(), token_id = id, "long-lived token made");
    let answer = NewTokenAnswer { id, token, expires_at: Some(auth_time(expires_at)), confirmed: true };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// The caller's sessions and long-lived tokens (dcim's own: the vendor document has no
/// list), so a forgotten or stolen one can be found and revoked by id.
#[utoipa::path(get, path = "/auth/v4/token", tag = "auth", responses((status = 200, body = List<TokenInfo>)))]
pub async fn list_tokens(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<List<TokenInfo>>> {
    let rows = st.store.list_tokens(caller.user_id).await?;
    let list: Vec<TokenInfo> = rows
        .into_iter()
        .map(|r| TokenInfo {
            id: r.id,
            kind: if r.expires_at.is_some() { "token" } else { "session" },
            description: r.description,
            created: auth_time(r.created_at),
            last_used: auth_time(r.last_seen),
            expires_at: r.expires_at.map(auth_time),
            confirmed: r.confirmed,
        })
        .collect();
    Ok(Json(List { size: list.len() as i64, list }))
}

/// Confirm a new session with the second factor: a TOTP `code` (each code works once)
/// or one of the user's `reserve_code`s. Five wrong answers end the session.
#[utoipa::path(post, path = "/auth/v4/public/token/confirm", tag = "auth", security(()), request_body = ConfirmRequest,
    responses((status = 200, body = Empty), (status = 401), (status = 422)))]
pub async fn confirm_token(State(st): State<AppState>, Body(b): Body<ConfirmRequest>) -> ApiResult<Json<Empty>> {
    let p = st
        .store
        .pending_session(&hash_secret(&b.token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token is unknown, expired or was logged out; log in again"))?;
    if p.confirmed {
        return Ok(Json(Empty {}));
    }
    let Some(secret) = p.totp_secret else {
        st.store.confirm_session(p.session_id).await?;
        return Ok(Json(Empty {}));
    };
    let accepted = match (b.code, b.reserve_code.as_deref()) {
        (Some(code), _) => {
            let totp = totp::parse_secret(&secret).map_err(|e| {
                tracing::error!(user_id = p.user_id.get(), error = %e, "stored TOTP secret unusable");
                ApiError::internal()
            })?;
            match u32::try_from(code).ok().and_then(|c| totp::check(&totp, c, dcim_store::now() as u64)) {
                Some(step) => st.store.claim_totp_step(p.user_id, step).await?,
                None => false,
            }
        }
        (None, Some(reserve)) => {
            st.store.use_reserve_code(p.user_id, &hash_secret(&totp::normalize_reserve_code(reserve))).await?
        }
        (None, None) => {
            return Err(ApiError::invalid("code", "give the code of the authenticator app, or a reserve_code"));
        }
    };
    if accepted {
        st.store.confirm_session(p.session_id).await?;
        return Ok(Json(Empty {}));
    }
    tracing::info!(user_id = p.user_id.get(), "wrong second factor");
    if st.store.fail_confirmation(p.session_id, MAX_CONFIRM_FAILURES).await? {
        Err(ApiError::new(ErrorKind::BadCredentials, "wrong or already used code"))
    } else {
        Err(ApiError::new(ErrorKind::BadCredentials, "too many wrong codes: the token is ended; log in again"))
    }
}

/// Turn two-factor authentication on with a secret the client made (64 base32
/// characters) and the current code from it. The caller's other sessions end.
#[utoipa::path(post, path = "/auth/v4/self/2fa", tag = "auth", request_body = Setup2fa,
    responses((status = 200, body = Empty), (status = 409), (status = 422)))]
pub async fn setup_2fa(caller: Caller, State(st): State<AppState>, Body(b): Body<Setup2fa>) -> ApiResult<Json<Empty>> {
    if st.store.totp_state(caller.user_id).await?.0.is_some() {
        return Err(ApiError::conflict("two-factor authentication is on already; turn it off first"));
    }
    let totp = totp::parse_secret(&b.secret).map_err(|e| ApiError::invalid("secret", e))?;
    let step = u32::try_from(b.code)
        .ok()
        .and_then(|c| totp::check(&totp, c, dcim_store::now() as u64))
        .ok_or_else(|| ApiError::invalid("code", "is not the current code of this secret"))?;
    st.store.enable_totp(caller.user_id, &b.secret, step, caller.session_id).await?;
    st.sessions.forget(None, Some(caller.user_id));
    tracing::info!(user_id = caller.user_id.get(), "two-factor authentication on");
    Ok(Json(Empty {}))
}

/// Turn the caller's two-factor authentication off.
#[utoipa::path(delete, path = "/auth/v4/self/2fa", tag = "auth", responses((status = 200, body = Empty)))]
pub async fn delete_self_2fa(caller: Caller, State(st): State<AppState>, _b: Body<Empty>) -> ApiResult<Json<Empty>> {
    if st.store.disable_totp(caller.user_id).await? {
        tracing::info!(user_id = caller.user_id.get(), "two-factor authentication off");
    }
    Ok(Json(Empty {}))
}

/// Turn a user's two-factor authentication off (admin: a user who lost the device and
/// the reserve codes).
#[utoipa::path(delete, path = "/auth/v4/user/{user}/2fa", tag = "auth",
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 200, body = Empty), (status = 403), (status = 404)))]
pub async fn delete_user_2fa(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
    _b: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    let id = resolve_user(&st, &user).await?;
    if st.store.disable_totp(id).await? {
        tracing::info!(user_id = id.get(), by = caller.user_id.get(), "two-factor authentication reset");
    }
    Ok(Json(Empty {}))
}

/// New reserve codes (the old ones stop working), shown this once; each confirms one
/// login instead of a code.
#[utoipa::path(post, path = "/auth/v4/self/2fa/reserve/generate", tag = "auth",
    responses((status = 200, body = ReserveCodes), (status = 409)))]
pub async fn generate_reserve_codes(
    caller: Caller,
    State(st): State<AppState>,
    _b: Body<Empty>,
) -> ApiResult<Json<ReserveCodes>> {
    if st.store.totp_state(caller.user_id).await?.0.is_none() {
        return Err(ApiError::conflict("two-factor authentication is off; turn it on first"));
    }
    let codes = totp::reserve_codes();
    let hashes: Vec<String> = codes.iter().map(|c| hash_secret(&totp::normalize_reserve_code(c))).collect();
    st.store.replace_reserve_codes(caller.user_id, &hashes).await?;
    Ok(Json(ReserveCodes { codes }))
}

/// A QR code (PNG) that carries a TOTP secret to an authenticator app.
#[utoipa::path(post, path = "/auth/v4/public/2fa/qrcode", tag = "auth", security(()), request_body = QrRequest,
    responses((status = 200, content_type = "image/png", description = "the QR code"), (status = 422)))]
pub async fn qrcode(Body(b): Body<QrRequest>) -> ApiResult<Response> {
    let name = line("name", &b.name, 255)?;
    totp::parse_secret(&b.secret).map_err(|e| ApiError::invalid("secret", e))?;
    let size = b.size.unwrap_or(256);
    if !(177..=1024).contains(&size) {
        return Err(ApiError::invalid("size", "must be 177 to 1024 pixels"));
    }
    let recovery = b.recovery.as_deref().unwrap_or("medium");
    let ecc =
        totp::ecc(recovery).ok_or_else(|| ApiError::invalid("recovery", "must be low, medium, high or highest"))?;
    let png = totp::qr_png(&totp::otpauth_uri("dcim", &name, &b.secret), size as u32, ecc)
        .map_err(|e| ApiError::invalid("name", e))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// The caller's own identity.
#[utoipa::path(get, path = "/auth/v4/whoami", tag = "auth", responses((status = 200, body = Whoami)))]
pub async fn whoami(caller: Caller) -> Json<Whoami> {
    Json(Whoami {
        id: caller.user_id.get(),
        email: caller.email.to_string(),
        roles: vec![caller.role.as_str().to_owned()],
        owner_id: caller.user_id.get(),
        owner_email: caller.email.to_string(),
    })
}

/// The roles there are.
#[utoipa::path(get, path = "/auth/v4/public/roles", tag = "auth", security(()), responses((status = 200, body = Roles)))]
pub async fn roles() -> Json<Roles> {
    Json(Roles { roles: vec!["@admin".into(), "@user".into()] })
}

/// The server's time, UTC.
#[utoipa::path(get, path = "/auth/v4/time", tag = "auth", security(()), responses((status = 200, body = Time)))]
pub async fn time(_caller: Caller) -> Json<Time> {
    Json(Time { list: vec![CurrentTime { current_time: auth_time(dcim_store::now()) }] })
}

/// Issue a one-time login key for a user (by id or e-mail). Admin only. 201, as the
/// Auth v4 document has it.
#[utoipa::path(post, path = "/auth/v4/user/{user}/key", tag = "auth",
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 201, body = KeyAnswer), (status = 403), (status = 404)))]
pub async fn issue_key(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
    _body: Body<Empty>,
) -> ApiResult<(StatusCode, Json<KeyAnswer>)> {
    caller.require_admin()?;
    let user_id = resolve_user(&st, &user).await?;
    let key = new_secret();
    st.store.create_auth_key(user_id, &hash_secret(&key), st.cfg.key_ttl_secs).await?;
    Ok((StatusCode::CREATED, Json(KeyAnswer { id: user_id.to_string(), key })))
}
