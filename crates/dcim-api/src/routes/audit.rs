//! The audit trail's routes: `GET /dci/v3/audit` (admins) and
//! `GET /dci/v3/server/{id}/history`, and the job that removes old records. The records
//! are written by the store, in the transaction of each change, under the scope that
//! [`crate::audit_layer`] opens.

use axum::Json;
use axum::extract::State;
use dcim_core::query::{Limit, ListQuery};
use dcim_store::ids::ServerId;
use dcim_store::list::{Bind, Scope};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ListParams, ListQueryDoc, Path};
use crate::wire::List;
use crate::wire::audit::{AuditRecord, HistoryEntry};
use crate::wire::task::{Task, time};

/// The audit trail (admins): every state-changing request and every task's end,
/// newest first unless `orderby` says otherwise.
#[utoipa::path(get, path = "/dci/v3/audit", tag = "audit",
    params(ListQueryDoc),
    responses((status = 200, body = List<AuditRecord>), (status = 403)))]
pub async fn list_audit(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<AuditRecord>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_audit(&q, &[]).await?, AuditRecord::from)))
}

/// Entries a history answers at most, and without a `limit`.
const HISTORY_MAX: u64 = 1000;
const HISTORY_DEFAULT: u64 = 100;

/// A server's history: its audit records and its tasks, newest first. A `@user` sees
/// its own server's, from when it became the owner, and of other users' actions only
/// what was done and when.
#[utoipa::path(get, path = "/dci/v3/server/{id}/history", tag = "audit",
    params(("id" = i64, Path), ("limit" = Option<String>, Query, description = "at most this many entries (100; up to 1000)")),
    responses((status = 200, body = List<HistoryEntry>), (status = 404)))]
pub async fn server_history(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<HistoryEntry>>> {
    let id = ServerId(id);
    st.store.check_server(id, &caller.server_scope()).await?;
    let since = if caller.is_admin() { 0 } else { st.store.owner_since(id).await?.unwrap_or(i64::MAX) };
    let limit = q.limit.map(|l| l.count).unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX);
    let page = ListQuery { limit: Some(Limit { offset: 0, count: limit }), ..ListQuery::default() };
    let limit = limit as usize;
    let records = st.store.list_audit(&page, &dcim_store::trail::of_server_since(id, since)).await?.items;
    let task_scope = [
        Scope { sql: "t.server_id = ?", value: Bind::Int(id.get()) },
        Scope { sql: "t.created >= ?", value: Bind::Int(since) },
    ];
    let mut task_page = page.clone();
    task_page.order = vec![dcim_core::query::OrderBy { field: "id".into(), desc: true }];
    let tasks = st.store.list_tasks(&task_page, &task_scope).await?.items;
    let mut entries: Vec<(i64, i64, HistoryEntry)> = Vec::with_capacity(records.len() + tasks.len());
    for r in records {
        let at = r.at;
        let mut rec = AuditRecord::from(r);
        if !caller.is_admin() && rec.user_id != Some(caller.user_id.get()) {
            rec = rec.anonymized();
        }
        entries.push((at, 1, HistoryEntry { kind: "audit", time: time(at), audit: Some(rec), task: None }));
    }
    for t in tasks {
        let at = t.created;
        entries.push((at, 0, HistoryEntry { kind: "task", time: time(at), audit: None, task: Some(Task::from(t)) }));
    }
    // Newest first; at one second, a task's record after the request that made it.
    entries.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    entries.truncate(limit);
    let size = entries.len() as i64;
    Ok(Json(List { list: entries.into_iter().map(|e| e.2).collect(), size }))
}

/// One round of the audit retention: removes records older than `days` days.
pub async fn retention_round(store: &dcim_store::Store, days: u32) -> Result<String, String> {
    let before = dcim_store::now() - i64::from(days) * 86_400;
    match store.purge_audit(before).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(removed = n, days, "old audit records removed");
            }
            Ok(format!("{n} records older than {days} days removed"))
        }
        Err(e) => Err(format!("removing old audit records failed: {e}")),
    }
}
