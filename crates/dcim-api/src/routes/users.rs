//! `/dci/v3/user`: the seed's list and create, plus edit, block and delete.

use axum::Json;
use axum::extract::State;
use dcim_core::validate::line;
use dcim_core::{Email, Role};
use dcim_store::ids::UserId;
use dcim_store::users::{NewUser as StoreNewUser, UserPatch};

use crate::AppState;
use crate::auth::{Caller, hash_password};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, ListParams, ListQueryDoc, Path};
use crate::wire::user::{NewUser, User, UserEdit};
use crate::wire::{Empty, Id, List};

fn parse_role(raw: &str) -> ApiResult<Role> {
    raw.trim().parse().map_err(|e| ApiError::invalid("role", e))
}

pub(crate) fn check_password(st: &AppState, p: &str) -> ApiResult<()> {
    let n = p.chars().count();
    if n < st.cfg.min_password_len {
        return Err(ApiError::invalid("password", format!("needs at least {} characters", st.cfg.min_password_len)));
    }
    if n > 1024 {
        return Err(ApiError::invalid("password", "is longer than 1024 characters"));
    }
    Ok(())
}

fn check_vlans(v: Option<i64>) -> ApiResult<()> {
    match v {
        Some(n) if !(0..=4094).contains(&n) => Err(ApiError::invalid("vlans_per_user", "must be 0 to 4094")),
        _ => Ok(()),
    }
}

/// List users.
#[utoipa::path(get, path = "/dci/v3/user", params(ListQueryDoc), tag = "users", responses((status = 200, body = List<User>)))]
pub async fn list_users(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<User>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_users(&q).await?, User::from)))
}

/// One user.
#[utoipa::path(get, path = "/dci/v3/user/{id}", tag = "users", responses((status = 200, body = User)))]
pub async fn get_user(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<User>> {
    let id = UserId(id);
    caller.require_admin()?;
    Ok(Json(st.store.get_user(id).await?.into()))
}

/// Add a user.
#[utoipa::path(post, path = "/dci/v3/user", tag = "users", request_body = NewUser,
    responses((status = 200, body = Id), (status = 409), (status = 422)))]
pub async fn create_user(caller: Caller, State(st): State<AppState>, Body(b): Body<NewUser>) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let email = Email::parse("email", &b.email)?;
    let role = b.role.as_deref().map(parse_role).transpose()?.unwrap_or(Role::User);
    check_password(&st, &b.password)?;
    check_vlans(b.vlans_per_user)?;
    let password_hash = hash_password(b.password).await?;
    let id = st
        .store
        .create_user(&StoreNewUser {
            email,
            password_hash,
            role,
            full_name: line("full_name", &b.full_name, 256)?,
            phone_number: line("phone_number", &b.phone_number, 64)?,
            vlans_per_user: b.vlans_per_user.unwrap_or(0),
        })
        .await?;
    tracing::info!(user_id = id.get(), by = caller.user_id.get(), "user created");
    Ok(Json(Id { id: id.get() }))
}

/// Edit a user: only the fields given change. A new password or a block ends its sessions.
#[utoipa::path(post, path = "/dci/v3/user/{id}", tag = "users", request_body = UserEdit,
    responses((status = 200, body = Id)))]
pub async fn edit_user(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<UserEdit>,
) -> ApiResult<Json<Id>> {
    let id = UserId(id);
    caller.require_admin()?;
    let role = b.role.as_deref().map(parse_role).transpose()?;
    if id == caller.user_id && (b.blocked == Some(true) || role == Some(Role::User)) {
        return Err(ApiError::conflict("you cannot block yourself or take away your own @admin role"));
    }
    check_vlans(b.vlans_per_user)?;
    let password_hash = match b.password {
        Some(p) => {
            check_password(&st, &p)?;
            Some(hash_password(p).await?)
        }
        None => None,
    };
    let patch = UserPatch {
        email: b.email.as_deref().map(|e| Email::parse("email", e)).transpose()?,
        password_hash,
        role,
        full_name: b.full_name.as_deref().map(|v| line("full_name", v, 256)).transpose()?,
        phone_number: b.phone_number.as_deref().map(|v| line("phone_number", v, 64)).transpose()?,
        vlans_per_user: b.vlans_per_user,
        blocked: b.blocked,
        // An admin who sets its own password keeps the session it did it with, as
        // with POST /auth/v4/user/{user}/password.
        keep_session: if id == caller.user_id { caller.session_id } else { 0 },
        ..UserPatch::default()
    };
    let ends_sessions = patch.blocked == Some(true) || patch.password_hash.is_some() || patch.role.is_some();
    st.store.update_user(id, &patch).await?;
    if ends_sessions {
        st.sessions.forget(None, Some(id));
    }
    Ok(Json(Id { id: id.get() }))
}

pub(crate) async fn set_blocked(caller: Caller, st: AppState, id: UserId, blocked: bool) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    if id == caller.user_id && blocked {
        return Err(ApiError::conflict("you cannot block yourself"));
    }
    st.store.update_user(id, &UserPatch { blocked: Some(blocked), ..UserPatch::default() }).await?;
    st.sessions.forget(None, Some(id));
    Ok(Json(Id { id: id.get() }))
}

/// Block a user: its sessions end and it cannot log in.
#[utoipa::path(post, path = "/dci/v3/user/{id}/block", tag = "users", responses((status = 200, body = Id)))]
pub async fn block_user(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    let id = UserId(id);
    set_blocked(caller, st, id, true).await
}

/// Unblock a user.
#[utoipa::path(post, path = "/dci/v3/user/{id}/unblock", tag = "users", responses((status = 200, body = Id)))]
pub async fn unblock_user(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    let id = UserId(id);
    set_blocked(caller, st, id, false).await
}

/// Delete a user; refused (409) while it owns servers.
#[utoipa::path(delete, path = "/dci/v3/user/{id}", tag = "users", responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_user(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    let id = UserId(id);
    caller.require_admin()?;
    if id == caller.user_id {
        return Err(ApiError::conflict("you cannot delete yourself"));
    }
    st.store.delete_user(id).await?;
    st.sessions.forget(None, Some(id));
    Ok(Json(Id { id: id.get() }))
}
