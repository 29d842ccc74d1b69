//! The audit trail's shapes: `GET /dci/v3/audit` and `GET /dci/v3/server/{id}/history`.

use dcim_store::trail::AuditRow;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::task::{Task, time};

/// One audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    /// When, as RFC 3339 (UTC) and as unix seconds (what `where at ...` compares).
    pub time: String,
    pub at: i64,
    /// Who: the user, its e-mail and role then (`system` for a task's end), the
    /// client address and the session or token used. Empty for a login attempt, an
    /// agent's report, or another customer's action seen in a customer's history.
    pub user_id: Option<i64>,
    pub email: String,
    pub role: String,
    pub address: String,
    pub token_id: Option<i64>,
    /// The request's `X-Request-Id` (a task's: the request that started it).
    pub request_id: String,
    /// The operation id of the OpenAPI document (`power_on`, `edit_server`), `task.NAME`
    /// for a task's end, or `ui.ACTION` for the web UI (`ui.power_off`).
    pub action: String,
    pub method: String,
    /// The route template, never the raw path.
    pub route: String,
    pub target_kind: String,
    pub target_id: String,
    pub server_id: Option<i64>,
    pub task_id: Option<i64>,
    /// `ok` or `error`.
    pub result: String,
    /// The HTTP status of the answer (0 for a task's end).
    pub status: i64,
    /// DCImanager's error code and message, when it failed.
    pub error_code: Option<i64>,
    pub error_msg: String,
    /// For edits, `{"field": {"before": ..., "after": ...}}`; secrets show as `"***"`.
    #[schema(value_type = Object)]
    pub changes: Value,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            id: r.id,
            time: time(r.at),
            at: r.at,
            user_id: r.user_id,
            email: r.email,
            role: r.role,
            address: r.address,
            token_id: r.token_id,
            request_id: r.request_id,
            action: r.action,
            method: r.method,
            route: r.route,
            target_kind: r.target_kind,
            target_id: r.target_id,
            server_id: r.server_id,
            task_id: r.task_id,
            result: r.result,
            status: r.status,
            error_code: r.error_code,
            error_msg: r.error_msg,
            changes: serde_json::from_str(&r.changes).unwrap_or_else(|_| json!({})),
        }
    }
}

impl AuditRecord {
    /// What a customer may see of a record another user made: what and when, not who
    /// or what was changed.
    pub fn anonymized(mut self) -> Self {
        self.user_id = None;
        self.email = String::new();
        self.address = String::new();
        self.token_id = None;
        self.changes = json!({});
        self
    }
}

/// One entry of a server's history: an audit record or a task, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// `audit` or `task`.
    pub kind: &'static str,
    /// The record's time, or the task's creation, as RFC 3339.
    pub time: String,
    pub audit: Option<AuditRecord>,
    pub task: Option<Task>,
}
