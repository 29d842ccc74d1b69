//! Webhooks (admins): endpoints that get signed events, and their deliveries. The
//! delivery worker is the `dcim` binary's; the events are written by the store with
//! the changes they tell of.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dcim_store::webhooks::{EVENT_KINDS, NewWebhook, WebhookPatch};

use crate::AppState;
use crate::auth::{Caller, new_secret};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, ListParams, ListQueryDoc, Path};
use crate::wire::webhook::{Delivery, DeliveryAttempt, Webhook, WebhookCreated, WebhookInput};
use crate::wire::{Empty, Id, List};

/// The URL, checked by the guard of the configuration.
async fn url(st: &AppState, raw: &str) -> ApiResult<String> {
    let url = dcim_core::validate::required_line("url", raw, 2048)?;
    st.cfg.webhook_guard.check(&url).await.map_err(|m| ApiError::invalid("url", m))?;
    Ok(url)
}

fn secret(raw: &str) -> ApiResult<String> {
    let s = dcim_core::validate::line("secret", raw, 256)?;
    if s.len() < 16 {
        return Err(ApiError::invalid("secret", "the secret needs at least 16 characters"));
    }
    Ok(s)
}

fn kinds(raw: &[String]) -> ApiResult<Vec<String>> {
    if raw.is_empty() {
        return Err(ApiError::invalid("events", "name at least one event kind"));
    }
    let mut out: Vec<String> = vec![];
    for k in raw {
        if !EVENT_KINDS.contains(&k.as_str()) {
            return Err(ApiError::invalid(
                "events",
                format!("unknown event kind '{k}'; known: {}", EVENT_KINDS.join(", ")),
            ));
        }
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/dci/v3/webhook", params(ListQueryDoc), tag = "webhooks", responses((status = 200, body = List<Webhook>)))]
pub async fn list_webhooks(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Webhook>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_webhooks(&q).await?, Webhook::from)))
}

#[utoipa::path(get, path = "/dci/v3/webhook/{id}", tag = "webhooks", responses((status = 200, body = Webhook), (status = 404)))]
pub async fn get_webhook(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Webhook>> {
    caller.require_admin()?;
    Ok(Json(st.store.get_webhook(id).await?.into()))
}

/// Registers an endpoint. Without a `secret`, dcim makes one and answers it this once.
#[utoipa::path(post, path = "/dci/v3/webhook", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = WebhookCreated), (status = 422)))]
pub async fn create_webhook(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<WebhookInput>,
) -> ApiResult<(StatusCode, Json<WebhookCreated>)> {
    caller.require_admin()?;
    let url = url(&st, b.url.as_deref().unwrap_or("")).await?;
    let events = kinds(b.events.as_deref().unwrap_or_default())?;
    let (secret, made) = match b.secret.as_deref() {
        Some(s) => (secret(s)?, false),
        None => (new_secret(), true),
    };
    let description = dcim_core::validate::line("description", b.description.as_deref().unwrap_or(""), 256)?;
    let w = NewWebhook { url, secret: secret.clone(), events, enabled: b.enabled.unwrap_or(true), description };
    let id = st.store.create_webhook(&w).await?;
    Ok((StatusCode::CREATED, Json(WebhookCreated { id, secret: made.then_some(secret) })))
}

#[utoipa::path(post, path = "/dci/v3/webhook/{id}", tag = "webhooks", request_body = WebhookInput,
    responses((status = 200, body = Id), (status = 404), (status = 422)))]
pub async fn edit_webhook(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<WebhookInput>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let p = WebhookPatch {
        url: match b.url.as_deref() {
            Some(u) => Some(url(&st, u).await?),
            None => None,
        },
        secret: b.secret.as_deref().map(secret).transpose()?,
        events: b.events.as_deref().map(kinds).transpose()?,
        enabled: b.enabled,
        description: b.description.as_deref().map(|d| dcim_core::validate::line("description", d, 256)).transpose()?,
    };
    st.store.update_webhook(id, &p).await?;
    Ok(Json(Id { id }))
}

/// Deletes an endpoint and its deliveries (pending ones are not sent).
#[utoipa::path(delete, path = "/dci/v3/webhook/{id}", tag = "webhooks", responses((status = 200, body = Empty), (status = 404)))]
pub async fn delete_webhook(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    st.store.delete_webhook(id).await?;
    Ok(Json(Empty {}))
}

/// An endpoint's deliveries, newest first, each with its attempts.
#[utoipa::path(get, path = "/dci/v3/webhook/{id}/delivery", tag = "webhooks",
    params(ListQueryDoc),
    responses((status = 200, body = List<Delivery>), (status = 404)))]
pub async fn list_deliveries(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Delivery>>> {
    caller.require_admin()?;
    let page = st.store.list_deliveries(id, &q).await?;
    let ids: Vec<i64> = page.items.iter().map(|d| d.id).collect();
    let mut attempts = st.store.delivery_attempts(&ids).await?;
    let list = page
        .items
        .into_iter()
        .map(|d| {
            let mine: Vec<DeliveryAttempt> =
                attempts.extract_if(.., |a| a.delivery_id == d.id).map(DeliveryAttempt::from).collect();
            Delivery::new(d, mine)
        })
        .collect();
    Ok(Json(List { list, size: page.size }))
}
