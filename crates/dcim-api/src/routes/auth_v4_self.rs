//! Auth API v4, the account side: the caller's own settings (`/self`), passwords (own,
//! with the old one; any user's, for an admin), SSH keys, suspending and resuming a
//! user, and services' blocking dependencies ("locks") on a user.
//!
//! Everything under `/self` acts on the caller alone, so a `@user` reaches only its
//! own account; the `/user/{user}` routes are admin-only, except listing a user's SSH
//! keys, which a user may do for itself.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dcim_core::validate::{line, name, required_line};
use dcim_store::users::UserPatch;

use super::auth_v4::resolve_user;
use super::users::{check_password, set_blocked};
use crate::AppState;
use crate::auth::{Caller, hash_password, verify_password};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Body, ClientIp, Path};
use crate::wire::auth::{
    LockRequest, NewSshKey, SelfEdit, SelfInfo, SelfPassword, SshKey, SshKeyEdit, SshKeyList, UserPassword,
};
use crate::wire::{Empty, Id};

/// The caller's own account.
#[utoipa::path(get, path = "/auth/v4/self", tag = "auth", responses((status = 200, body = SelfInfo)))]
pub async fn get_self(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<SelfInfo>> {
    let u = st.store.get_user(caller.user_id).await?;
    Ok(Json(SelfInfo {
        id: u.id.get(),
        uuid: u.uuid.clone().unwrap_or_default(),
        email: u.email.clone(),
        full_name: u.full_name.clone(),
        phone_number: u.phone_number.clone(),
        roles: vec![u.role.as_str().to_owned()],
        state: if u.blocked { "disabled" } else { "active" },
        auth_source: "local",
        email_confirm: true,
        lang: u.lang,
        timezone: u.timezone,
        two_factor: u.two_factor,
    }))
}

/// Change the caller's name, interface language (`en`, `ru`) or time zone.
#[utoipa::path(post, path = "/auth/v4/self", tag = "auth", request_body = SelfEdit,
    responses((status = 200, body = Empty), (status = 422)))]
pub async fn edit_self(caller: Caller, State(st): State<AppState>, Body(b): Body<SelfEdit>) -> ApiResult<Json<Empty>> {
    if let Some(l) = &b.lang
        && !matches!(l.as_str(), "en" | "ru")
    {
        return Err(ApiError::invalid("lang", "must be en or ru"));
    }
    if let Some(tz) = &b.timezone
        && (tz.is_empty()
            || tz.len() > 64
            || !tz.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'/')))
    {
        return Err(ApiError::invalid("timezone", "must be a zone name such as Europe/Amsterdam"));
    }
    let patch = UserPatch {
        full_name: b.full_name.as_deref().map(|v| line("full_name", v, 255)).transpose()?,
        lang: b.lang,
        timezone: b.timezone,
        ..UserPatch::default()
    };
    st.store.update_user(caller.user_id, &patch).await?;
    Ok(Json(Empty {}))
}

/// Change the caller's password, given the current one. The caller's other sessions
/// end; this one goes on. Wrong current passwords count as failed logins.
#[utoipa::path(post, path = "/auth/v4/self/password", tag = "auth", request_body = SelfPassword,
    responses((status = 200, body = Empty), (status = 422), (status = 429)))]
pub async fn self_password(
    caller: Caller,
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(b): Body<SelfPassword>,
) -> ApiResult<Json<Empty>> {
    if let Some(secs) = st.throttle.blocked_for(&caller.email, ip).await? {
        return Err(ApiError::new(ErrorKind::Throttled, format!("too many failed attempts; try again in {secs} s"))
            .with_value(serde_json::json!({ "retry_after": secs })));
    }
    check_password(&st, &b.password)?;
    let stored = st.store.password_hash(caller.user_id).await?;
    if !verify_password(b.old_password, Some(stored)).await {
        st.throttle.record_failure(&caller.email, ip).await?;
        return Err(ApiError::invalid("old_password", "is not the current password"));
    }
    let hash = hash_password(b.password).await?;
    st.store.set_password(caller.user_id, &hash, caller.session_id).await?;
    st.sessions.forget(None, Some(caller.user_id));
    tracing::info!(user_id = caller.user_id.get(), "password changed");
    Ok(Json(Empty {}))
}

/// Set a user's password (admin). Its sessions end.
#[utoipa::path(post, path = "/auth/v4/user/{user}/password", tag = "auth", request_body = UserPassword,
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 200, body = Empty), (status = 403), (status = 404), (status = 422)))]
pub async fn user_password(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
    Body(b): Body<UserPassword>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    let id = resolve_user(&st, &user).await?;
    check_password(&st, &b.password)?;
    let hash = hash_password(b.password).await?;
    let keep = if id == caller.user_id { caller.session_id } else { 0 };
    st.store.set_password(id, &hash, keep).await?;
    st.sessions.forget(None, Some(id));
    tracing::info!(user_id = id.get(), by = caller.user_id.get(), "password set");
    Ok(Json(Empty {}))
}

/// Suspend a user (admin): its sessions end and it cannot log in.
#[utoipa::path(post, path = "/auth/v4/user/{user}/suspend", tag = "auth",
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 200, body = Empty), (status = 403), (status = 404), (status = 409)))]
pub async fn suspend_user(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
    _b: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    let id = resolve_user(&st, &user).await?;
    set_blocked(caller, st, id, true).await.map(|_| Json(Empty {}))
}

/// Resume a suspended user (admin).
#[utoipa::path(post, path = "/auth/v4/user/{user}/resume", tag = "auth",
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 200, body = Empty), (status = 403), (status = 404)))]
pub async fn resume_user(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
    _b: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    let id = resolve_user(&st, &user).await?;
    set_blocked(caller, st, id, false).await.map(|_| Json(Empty {}))
}

/// Add a service's blocking dependency on a user (admin): while any is there, the user
/// cannot be deleted (409 naming the services).
#[utoipa::path(post, path = "/auth/v4/user/{user}/lock", tag = "auth", request_body = LockRequest,
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 200, body = Empty), (status = 403), (status = 404), (status = 422)))]
pub async fn lock_user(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
    Body(b): Body<LockRequest>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    let id = resolve_user(&st, &user).await?;
    let service = name("service", &b.service)?;
    let description = line("description", &b.description, 255)?;
    st.store.lock_user(id, &service, &description).await?;
    Ok(Json(Empty {}))
}

/// Remove a service's blocking dependency (admin); 404 if it has none.
#[utoipa::path(delete, path = "/auth/v4/user/{user}/lock/{service}", tag = "auth",
    params(("user" = String, Path, description = "user id or e-mail"), ("service" = String, Path)),
    responses((status = 200, body = Empty), (status = 403), (status = 404)))]
pub async fn unlock_user(
    caller: Caller,
    State(st): State<AppState>,
    Path((user, service)): Path<(String, String)>,
    _b: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    let id = resolve_user(&st, &user).await?;
    if !st.store.unlock_user(id, &service).await? {
        return Err(ApiError::not_found("lock", format!("of {service} on user {id}")));
    }
    Ok(Json(Empty {}))
}

fn ssh_key(raw: &str) -> ApiResult<String> {
    let key = raw.trim();
    if key.len() > 16 * 1024 {
        return Err(ApiError::invalid("ssh_pub_key", "is longer than 16 KiB"));
    }
    ssh_key::PublicKey::from_openssh(key)
        .map_err(|e| ApiError::invalid("ssh_pub_key", format!("not an OpenSSH public key: {e}")))?;
    line("ssh_pub_key", key, 16 * 1024).map_err(Into::into)
}

/// The caller's public SSH keys.
#[utoipa::path(get, path = "/auth/v4/self/sshkey", tag = "auth", responses((status = 200, body = SshKeyList)))]
pub async fn list_self_ssh_keys(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<SshKeyList>> {
    let list = st.store.list_ssh_keys(caller.user_id).await?.into_iter().map(SshKey::from).collect();
    Ok(Json(SshKeyList { list }))
}

/// Add a public SSH key for the caller.
#[utoipa::path(post, path = "/auth/v4/self/sshkey", tag = "auth", request_body = NewSshKey,
    responses((status = 201, body = Id), (status = 422)))]
pub async fn create_self_ssh_key(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<NewSshKey>,
) -> ApiResult<(StatusCode, Json<Id>)> {
    let key_name = required_line("name", &b.name, 255)?;
    let key = ssh_key(&b.ssh_pub_key)?;
    let id = st.store.create_ssh_key(caller.user_id, &key_name, &key).await?;
    Ok((StatusCode::CREATED, Json(Id { id })))
}

/// One of the caller's SSH keys (another user's is not found).
#[utoipa::path(get, path = "/auth/v4/self/sshkey/{id}", tag = "auth", responses((status = 200, body = SshKey)))]
pub async fn get_self_ssh_key(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<SshKey>> {
    Ok(Json(st.store.get_ssh_key(caller.user_id, id).await?.into()))
}

/// Rename one of the caller's SSH keys.
#[utoipa::path(post, path = "/auth/v4/self/sshkey/{id}", tag = "auth", request_body = SshKeyEdit,
    responses((status = 200, body = Empty), (status = 404), (status = 422)))]
pub async fn edit_self_ssh_key(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<SshKeyEdit>,
) -> ApiResult<Json<Empty>> {
    match b.name {
        Some(n) => {
            let n = required_line("name", &n, 255)?;
            st.store.rename_ssh_key(caller.user_id, id, &n).await?;
        }
        None => {
            st.store.get_ssh_key(caller.user_id, id).await?;
        }
    }
    Ok(Json(Empty {}))
}

/// Remove one of the caller's SSH keys.
#[utoipa::path(delete, path = "/auth/v4/self/sshkey/{id}", tag = "auth",
    responses((status = 200, body = Empty), (status = 404)))]
pub async fn delete_self_ssh_key(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _b: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    st.store.delete_ssh_key(caller.user_id, id).await?;
    Ok(Json(Empty {}))
}

/// A user's SSH keys: an admin's view of anyone, a user's of itself.
#[utoipa::path(get, path = "/auth/v4/user/{user}/sshkey", tag = "auth",
    params(("user" = String, Path, description = "user id or e-mail")),
    responses((status = 200, body = SshKeyList), (status = 403), (status = 404)))]
pub async fn list_user_ssh_keys(
    caller: Caller,
    State(st): State<AppState>,
    Path(user): Path<String>,
) -> ApiResult<Json<SshKeyList>> {
    let id = if caller.is_admin() { resolve_user(&st, &user).await? } else { caller.user_id };
    if !caller.is_admin() && user != caller.user_id.to_string() && !user.eq_ignore_ascii_case(&caller.email) {
        return Err(ApiError::forbidden());
    }
    let list = st.store.list_ssh_keys(id).await?.into_iter().map(SshKey::from).collect();
    Ok(Json(SshKeyList { list }))
}
