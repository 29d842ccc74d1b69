//! Webhooks: the endpoints admins register, the outbox of events and their deliveries.
//!
//! A change that tells of an event ([`EVENT_KINDS`]) writes it with [`emit`] in its own
//! transaction, with one delivery for each enabled endpoint that wants the kind; with
//! no such endpoint it writes nothing. Deliveries are claimed with a lease like tasks
//! ([`Store::claim_deliveries`]), so one process delivers each; of one endpoint's
//! deliveries for one server only the oldest undelivered one is claimable, which keeps
//! them in order. Delivery times (`next_at`, `lease_until`, `created`, `finished`) are
//! unix milliseconds.

use dcim_core::DeliveryStatus;
use dcim_core::query::ListQuery;
use serde_json::Value;
use sqlx::FromRow;

use crate::audit::Tx;
use crate::ids::ServerId;

use crate::list::{Field, FieldType, ListSpec, Page, Patch};
use crate::{Result, Store, StoreError, now};

/// The kinds of event an endpoint may ask for.
pub const EVENT_KINDS: &[&str] = &[
    "task.finished",
    "server.state",
    "server.power",
    "server.owner",
    "ip.assigned",
    "ip.released",
    "user.created",
    "user.blocked",
];

/// Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Writes an event in the transaction of the change it tells of, with a delivery for
/// each enabled endpoint that wants its kind (nothing when none does).
pub(crate) async fn emit(tx: &mut Tx<'_>, kind: &str, server_id: Option<ServerId>, data: Value) -> Result<()> {
    debug_assert!(EVENT_KINDS.contains(&kind));
    if !tx.wants(kind).await? {
        return Ok(());
    }
    let wanted = format!("%,{kind},%");
    let (event,): (i64,) =
        sqlx::query_as("INSERT INTO events (at, kind, server_id, data) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(now())
            .bind(kind.to_owned())
            .bind(server_id)
            .bind(data.to_string())
            .fetch_one(&mut **tx)
            .await?;
    let t = now_ms();
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, server_key, next_at, created) \
         SELECT id, $1, $2, $3, $3 FROM webhooks WHERE enabled = 1 AND events LIKE $4 ORDER BY id",
    )
    .bind(event)
    .bind(server_id.map_or(0, ServerId::get))
    .bind(t)
    .bind(wanted)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An endpoint as shown (never its secret).
#[derive(Debug, Clone, FromRow)]
pub struct WebhookRow {
    pub id: i64,
    pub url: String,
    /// `,kind,kind,`
    pub events: String,
    pub enabled: i64,
    pub description: String,
    pub created_at: i64,
}

impl WebhookRow {
    pub fn kinds(&self) -> Vec<String> {
        self.events.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect()
    }
}

/// How the kinds are stored: `,a,b,`, so that `LIKE '%,a,%'` finds exactly `a`.
pub fn kinds_column(kinds: &[String]) -> String {
    format!(",{},", kinds.join(","))
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub description: String,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

pub const WEBHOOK_LIST: ListSpec = ListSpec {
    select: "SELECT w.id, w.url, w.events, w.enabled, w.description, w.created_at FROM webhooks w",
    from: "webhooks w",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "w.id", FieldType::Int),
        Field::new("url", "w.url", FieldType::Text),
        Field::new("enabled", "w.enabled", FieldType::Bool),
        Field::new("description", "w.description", FieldType::Text),
    ],
    tiebreak: "w.id ASC",
};

/// A delivery as shown.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: i64,
    pub kind: String,
    pub server_id: Option<i64>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_at: i64,
    pub last_status: Option<i64>,
    pub last_error: String,
    pub last_latency_ms: Option<i64>,
    pub created: i64,
    pub finished: Option<i64>,
}

pub const DELIVERY_LIST: ListSpec = ListSpec {
    select: "SELECT d.id, d.webhook_id, d.event_id, e.kind, e.server_id, d.status, d.attempts, d.next_at, \
             d.last_status, d.last_error, d.last_latency_ms, d.created, d.finished \
             FROM webhook_deliveries d JOIN events e ON e.id = d.event_id",
    from: "webhook_deliveries d JOIN events e ON e.id = d.event_id",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "d.id", FieldType::Int),
        Field::new("event_id", "d.event_id", FieldType::Int),
        Field::new("kind", "e.kind", FieldType::Text),
        Field::new("server_id", "e.server_id", FieldType::Int),
        Field::new("status", "d.status", FieldType::Text),
        Field::new("attempts", "d.attempts", FieldType::Int),
        Field::new("last_status", "d.last_status", FieldType::Int),
        Field::new("created", "d.created", FieldType::Int),
    ],
    tiebreak: "d.id DESC",
};

/// One attempt of a delivery.
#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: String,
}

/// A delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone, FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook_id: i64,
    pub url: String,
    pub secret: String,
    pub event_id: i64,
    pub kind: String,
    pub at: i64,
    pub server_id: Option<i64>,
    pub data: String,
    pub attempts: i64,
    pub created: i64,
}

/// How an attempt went, and what comes next.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The receiver's HTTP status; `None` when it did not answer.
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: String,
    /// `Delivered`, `Retry(at_ms)` or `GiveUp`.
    pub next: Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    Retry(i64),
    GiveUp,
}

impl Store {
    pub async fn create_webhook(&self, w: &NewWebhook) -> Result<i64> {
        let mut tx = self.write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO webhooks (url, secret, events, enabled, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(w.url.clone())
        .bind(self.seal(crate::seal::WEBHOOK_SECRET, &w.secret))
        .bind(kinds_column(&w.events))
        .bind(i64::from(w.enabled))
        .bind(w.description.clone())
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::set_target("webhook", id);
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_webhooks(&self, q: &ListQuery) -> Result<Page<WebhookRow>> {
        self.fetch_page(&WEBHOOK_LIST, q, &[]).await
    }

    pub async fn get_webhook(&self, id: i64) -> Result<WebhookRow> {
        let sql = format!("{} WHERE w.id = $1", WEBHOOK_LIST.select);
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("webhook", id))
    }

    pub async fn update_webhook(&self, id: i64, p: &WebhookPatch) -> Result<()> {
        let mut u = Patch::new("webhooks");
        if let Some(v) = &p.url {
            u.set("url", v.as_str().into());
        }
        if let Some(v) = &p.secret {
            u.set("secret", self.seal(crate::seal::WEBHOOK_SECRET, v).into());
        }
        if let Some(v) = &p.events {
            u.set("events", kinds_column(v).into());
        }
        if let Some(v) = p.enabled {
            u.set("enabled", i64::from(v).into());
        }
        if let Some(v) = &p.description {
            u.set("description", v.as_str().into());
        }
        if u.is_empty() {
            return self.get_webhook(id).await.map(|_| ());
        }
        if u.execute(self, id).await? == 0 {
            return Err(StoreError::not_found("webhook", id));
        }
        Ok(())
    }

    /// Deletes an endpoint with its deliveries.
    pub async fn delete_webhook(&self, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let r = sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("webhook", id));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_deliveries(&self, webhook: i64, q: &ListQuery) -> Result<Page<DeliveryRow>> {
        self.get_webhook(webhook).await?;
        let scope = [crate::list::Scope { sql: "d.webhook_id = ?", value: crate::list::Bind::Int(webhook) }];
        self.fetch_page(&DELIVERY_LIST, q, &scope).await
    }

    /// The attempts of these deliveries, oldest first.
    pub async fn delivery_attempts(&self, ids: &[i64]) -> Result<Vec<AttemptRow>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT delivery_id, at, status, latency_ms, error FROM webhook_attempts WHERE delivery_id IN ({}) \
             ORDER BY id",
            list.join(", ")
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?)
    }

    /// Claims up to `limit` due deliveries for `owner` for `lease_ms`: of each
    /// endpoint's undelivered ones for a server, only the oldest.
    pub async fn claim_deliveries(&self, owner: &str, lease_ms: i64, limit: i64) -> Result<Vec<DueDelivery>> {
        let t = now_ms();
        let claimed: Vec<(i64,)> = sqlx::query_as(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN (\
               SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending' AND d.next_at <= $3 \
               AND (d.lease_until IS NULL OR d.lease_until < $3) AND NOT EXISTS (SELECT 1 FROM \
               webhook_deliveries e WHERE e.webhook_id = d.webhook_id AND e.server_key = d.server_key \
               AND e.status = 'pending' AND e.id < d.id) ORDER BY d.id LIMIT $4) \
             AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3) RETURNING id",
        )
        .bind(owner.to_owned())
        .bind(t + lease_ms)
        .bind(t)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        if claimed.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<String> = claimed.iter().map(|r| r.0.to_string()).collect();
        let sql = format!(
            "SELECT d.id, d.webhook_id, w.url, w.secret, e.id AS event_id, e.kind, e.at, e.server_id, e.data, \
             d.attempts, d.created FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             JOIN events e ON e.id = d.event_id WHERE d.id IN ({}) ORDER BY d.id",
            ids.join(", ")
        );
        let due: Vec<DueDelivery> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        due.into_iter()
            .map(|mut d| {
                d.secret = self.open(crate::seal::WEBHOOK_SECRET, &d.secret)?;
                Ok(d)
            })
            .collect()
    }

    /// Records an attempt of a delivery `owner` holds; false when it lost the lease
    /// (another process has it now, and this attempt is not recorded).
    pub async fn record_attempt(&self, id: i64, owner: &str, a: &Attempt) -> Result<bool> {
        let t = now_ms();
        let (status, next_at, finished) = match a.next {
            Next::Delivered => (DeliveryStatus::Delivered, t, Some(t)),
            Next::Retry(at) => (DeliveryStatus::Pending, at, None),
            Next::GiveUp => (DeliveryStatus::Failed, t, Some(t)),
        };
        let status = status.as_str();
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, next_at = $2, finished = $3, attempts = attempts + 1, \
             last_status = $4, last_error = $5, last_latency_ms = $6, lease_owner = NULL, lease_until = NULL \
             WHERE id = $7 AND lease_owner = $8 AND status = 'pending'",
        )
        .bind(status)
        .bind(next_at)
        .bind(finished)
        .bind(a.status)
        .bind(a.error.clone())
        .bind(a.latency_ms)
        .bind(id)
        .bind(owner.to_owned())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, at, status, latency_ms, error) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(t)
        .bind(a.status)
        .bind(a.latency_ms)
        .bind(a.error.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
