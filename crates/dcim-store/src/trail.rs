//! Reading the audit trail that [`crate::audit`] writes: the list, a server's records,
//! and the removal of old ones.

use dcim_core::query::ListQuery;
use sqlx::FromRow;

use crate::ids::ServerId;
use crate::list::{Bind, Field, FieldType, ListSpec, Page, Scope};
use crate::{Result, Store};

/// An audit record as stored.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub user_id: Option<i64>,
    pub email: String,
    pub role: String,
    pub address: String,
    pub token_id: Option<i64>,
    pub request_id: String,
    pub action: String,
    pub method: String,
    pub route: String,
    pub target_kind: String,
    pub target_id: String,
    pub server_id: Option<i64>,
    pub task_id: Option<i64>,
    pub result: String,
    pub status: i64,
    pub error_code: Option<i64>,
    pub error_msg: String,
    pub changes: String,
}

pub const AUDIT_LIST: ListSpec = ListSpec {
    select: "SELECT a.id, a.at, a.user_id, a.email, a.role, a.address, a.token_id, a.request_id, a.action, \
             a.method, a.route, a.target_kind, a.target_id, a.server_id, a.task_id, a.result, a.status, \
             a.error_code, a.error_msg, a.changes FROM audit a",
    from: "audit a",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "a.id", FieldType::Int),
        Field::new("at", "a.at", FieldType::Int),
        Field::new("user_id", "a.user_id", FieldType::Int),
        Field::new("email", "a.email", FieldType::Text),
        Field::new("role", "a.role", FieldType::Text),
        Field::new("address", "a.address", FieldType::Text),
        Field::new("token_id", "a.token_id", FieldType::Int),
        Field::new("request_id", "a.request_id", FieldType::Text),
        Field::new("action", "a.action", FieldType::Text),
        Field::new("method", "a.method", FieldType::Text),
        Field::new("route", "a.route", FieldType::Text),
        Field::new("target_kind", "a.target_kind", FieldType::Text),
        Field::new("target_id", "a.target_id", FieldType::Text),
        Field::new("server_id", "a.server_id", FieldType::Int),
        Field::new("task_id", "a.task_id", FieldType::Int),
        Field::new("result", "a.result", FieldType::Text),
        Field::new("status", "a.status", FieldType::Int),
        Field::new("error_code", "a.error_code", FieldType::Int),
    ],
    tiebreak: "a.id DESC",
};

/// Records of one server since a time (the customer's view starts at its ownership).
pub fn of_server_since(server_id: ServerId, since: i64) -> [Scope; 2] {
    [
        Scope { sql: "a.server_id = ?", value: Bind::Int(server_id.get()) },
        Scope { sql: "a.at >= ?", value: Bind::Int(since) },
    ]
}

impl Store {
    /// The audit trail, newest first unless the query orders it.
    pub async fn list_audit(&self, q: &ListQuery, scopes: &[Scope]) -> Result<Page<AuditRow>> {
        self.fetch_page(&AUDIT_LIST, q, scopes).await
    }

    /// Since when the current owner has had the server (`None`: free).
    pub async fn owner_since(&self, server_id: ServerId) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT owner_since FROM servers WHERE id = $1")
            .bind(server_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Removes records older than `before` (unix seconds); how many.
    pub async fn purge_audit(&self, before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM audit WHERE at < $1").bind(before).execute(self.pool()).await?;
        Ok(r.rows_affected())
    }
}
