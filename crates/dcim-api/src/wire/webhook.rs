//! Webhook shapes: `/dci/v3/webhook` and its deliveries.

use dcim_store::webhooks::{AttemptRow, DeliveryRow, WebhookRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::task::time;

/// An endpoint (its secret is never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// The event kinds it gets.
    pub events: Vec<String>,
    pub enabled: bool,
    pub description: String,
    pub created: String,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            events: r.kinds(),
            url: r.url,
            enabled: r.enabled != 0,
            description: r.description,
            created: time(r.created_at),
        }
    }
}

/// `POST /dci/v3/webhook` and `POST /dci/v3/webhook/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookInput {
    /// `http://` or `https://`; not link-local, not dcim itself.
    pub url: Option<String>,
    /// The HMAC-SHA256 key of `Dcim-Signature` (16 to 256 characters); write-only. On
    /// creation without one, dcim makes one and answers it once.
    pub secret: Option<String>,
    /// Any of `task.finished`, `server.state`, `server.power`, `server.owner`,
    /// `ip.assigned`, `ip.released`, `user.created`, `user.blocked`.
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// What a creation answers: the id, and the secret when dcim made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    /// RFC 3339 with milliseconds.
    pub time: String,
    /// The receiver's status; `null` when it did not answer.
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: String,
}

impl From<AttemptRow> for DeliveryAttempt {
    fn from(a: AttemptRow) -> Self {
        DeliveryAttempt { time: time_ms(a.at), status: a.status, latency_ms: a.latency_ms, error: a.error }
    }
}

/// One event's delivery to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// The event id (the body's `id`; receivers deduplicate by it).
    pub event_id: i64,
    pub kind: String,
    pub server: Option<i64>,
    /// `pending`, `delivered` or `failed` (given up after `webhook_retry_secs`).
    pub status: String,
    pub attempts: i64,
    /// When a pending delivery is tried next.
    pub next_attempt: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: String,
    pub last_latency_ms: Option<i64>,
    pub created: String,
    pub finished: Option<String>,
    pub attempt_log: Vec<DeliveryAttempt>,
}

impl Delivery {
    pub fn new(d: DeliveryRow, attempts: Vec<DeliveryAttempt>) -> Self {
        Delivery {
            id: d.id,
            event_id: d.event_id,
            kind: d.kind,
            server: d.server_id,
            next_attempt: (d.status == dcim_core::DeliveryStatus::Pending).then(|| time_ms(d.next_at)),
            status: d.status.to_string(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            last_latency_ms: d.last_latency_ms,
            created: time_ms(d.created),
            finished: d.finished.map(time_ms),
            attempt_log: attempts,
        }
    }
}

/// Unix milliseconds as RFC 3339 with milliseconds.
pub fn time_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
