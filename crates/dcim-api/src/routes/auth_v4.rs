//! Auth API v4: login by password or one-time key, logout, whoami, key issue, and
//! the browser single-sign-on link.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::auth::{COOKIE, Caller, UI_COOKIE, hash_secret, new_secret, verify_password};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Body, ClientIp, Path};
use crate::wire::Empty;
use crate::wire::auth::{KeyAnswer, KeyLoginRequest, LoginRequest, TokenAnswer, Whoami};

async fn open_session(st: &AppState, user_id: i64) -> ApiResult<TokenAnswer> {
    let token = new_secret();
    st.store.create_session(user_id, &hash_secret(&token)).await?;
    Ok(TokenAnswer { id: user_id.to_string(), token })
}

fn throttled(secs: u64) -> ApiError {
    ApiError::new(ErrorKind::Throttled, format!("too many failed attempts; try again in {secs} s"))
        .with_value(json!({ "retry_after": secs }))
}

/// Log in with e-mail and password.
#[utoipa::path(post, path = "/auth/v4/public/token", tag = "auth", request_body = LoginRequest,
    responses((status = 201, body = TokenAnswer), (status = 401), (status = 429)))]
pub async fn login(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<LoginRequest>,
) -> ApiResult<(StatusCode, Json<TokenAnswer>)> {
    if let Some(secs) = st.throttle.blocked_for(&req.email, ip) {
        return Err(throttled(secs));
    }
    let creds = st.store.credentials_by_email(&req.email).await?;
    let ok = verify_password(req.password, creds.as_ref().map(|c| c.password_hash.clone())).await;
    let creds = match creds {
        Some(c) if ok => c,
        _ => {
            st.throttle.record_failure(&req.email, ip);
            tracing::info!(email = %req.email, ?ip, "failed login");
            return Err(ApiError::new(ErrorKind::BadCredentials, "wrong e-mail or password"));
        }
    };
    if creds.blocked != 0 {
        return Err(ApiError::new(ErrorKind::Forbidden, "this account is blocked"));
    }
    st.throttle.record_success(&req.email);
    Ok((StatusCode::CREATED, Json(open_session(&st, creds.id).await?)))
}

/// Exchange a one-time key for a session.
#[utoipa::path(post, path = "/auth/v4/public/key", tag = "auth", request_body = KeyLoginRequest,
    responses((status = 201, body = TokenAnswer), (status = 401)))]
pub async fn login_by_key(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<KeyLoginRequest>,
) -> ApiResult<(StatusCode, Json<TokenAnswer>)> {
    let user_id = use_key(&st, &req.key, ip).await?;
    Ok((StatusCode::CREATED, Json(open_session(&st, user_id).await?)))
}

async fn use_key(st: &AppState, key: &str, ip: Option<std::net::IpAddr>) -> ApiResult<i64> {
    if let Some(secs) = st.throttle.key_blocked_for(ip) {
        return Err(throttled(secs));
    }
    match st.store.consume_auth_key(&hash_secret(key)).await? {
        Some(id) => Ok(id),
        None => {
            st.throttle.record_key_failure(ip);
            Err(ApiError::new(ErrorKind::BadCredentials, "the key is unknown, used or expired"))
        }
    }
}

/// Single sign-on link (what billing panels send customers to): sets the API's `ses6`
/// cookie and the web UI's own, and goes to the web UI.
#[utoipa::path(get, path = "/auth/key-v4/{key}", tag = "auth",
    responses((status = 303, description = "cookies set, redirect to /ui/"), (status = 401)))]
pub async fn key_redirect(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let user_id = use_key(&st, &key, ip).await?;
    let t = open_session(&st, user_id).await?;
    let secure = if st.cfg.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={}; Path=/; SameSite=Lax{secure}", t.token);
    let ui = format!("{UI_COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict{secure}", t.token);
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/".to_owned())]).into_response();
    for c in [cookie, ui] {
        r.headers_mut().append(header::SET_COOKIE, c.parse().map_err(|_| ApiError::internal())?);
    }
    Ok(r)
}

/// Log out: the token stops working at once.
#[utoipa::path(delete, path = "/auth/v4/token/{token}", tag = "auth",
    responses((status = 200, body = Empty), (status = 404)))]
pub async fn logout(
    State(st): State<AppState>,
    Path(token): Path<String>,
    _body: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    let hash = hash_secret(&token);
    st.sessions.forget(Some(&hash), None);
    if st.store.delete_session(&hash).await? {
        Ok(Json(Empty {}))
    } else {
        Err(ApiError::not_found("session", "with that token"))
    }
}

/// The caller's own identity.
#[utoipa::path(get, path = "/auth/v4/whoami", tag = "auth", responses((status = 200, body = Whoami)))]
pub async fn whoami(caller: Caller) -> Json<Whoami> {
    Json(Whoami { id: caller.user_id, email: caller.email, roles: vec![caller.role.as_str().to_owned()] })
}

/// Issue a one-time login key for a user (by id or e-mail). Admin only.
#[utoipa::path(post, path = "/auth/v4/user/{user}/key", tag = "auth",
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 200, body = KeyAnswer), (status = 403), (status = 404)))]
pub async fn issue_key(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
    _body: Body<Empty>,
) -> ApiResult<Json<KeyAnswer>> {
    caller.require_admin()?;
    let user_id = match user.parse::<i64>() {
        Ok(id) => st.store.get_user(id).await?.id,
        Err(_) => st.store.find_user_id_by_email(&user).await?.ok_or_else(|| ApiError::not_found("user", &user))?,
    };
    let key = new_secret();
    st.store.create_auth_key(user_id, &hash_secret(&key), st.cfg.key_ttl_secs).await?;
    Ok(Json(KeyAnswer { id: user_id.to_string(), key }))
}
