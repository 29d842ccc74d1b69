//! The audit trail: the middleware that gives every state-changing request its record,
//! `GET /dci/v3/audit` (admins) and `GET /dci/v3/server/{id}/history`.
//!
//! The middleware opens an [`AuditScope`] naming the action (the operation id of the
//! OpenAPI document), the route template, the client address, the request id and the
//! target found in the path; authentication adds the caller ([`actor`]); the store
//! writes the record in the transaction of the change ([`dcim_store::audit`]); the
//! answer completes it. A request with no route (404) or a read leaves none.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use dcim_core::query::{Limit, ListQuery};
use dcim_store::audit::{Actor, AuditScope, Outcome, RequestInfo};
use dcim_store::list::{Bind, Scope};
use utoipa::OpenApi;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorInfo};
use crate::extract::{ListParams, Path};
use crate::wire::List;
use crate::wire::audit::{AuditRecord, HistoryEntry};
use crate::wire::task::{Task, time};

/// The audit record of a caller, for the scope of its request.
pub fn actor(c: &Caller) -> Actor {
    Actor { user_id: Some(c.user_id), email: c.email.clone(), role: c.role.to_string(), token_id: Some(c.session_id) }
}

/// Operation ids of the OpenAPI document by method and path template.
fn operation_ids() -> &'static HashMap<(Method, String), String> {
    static IDS: OnceLock<HashMap<(Method, String), String>> = OnceLock::new();
    IDS.get_or_init(|| {
        let doc = crate::openapi::ApiDoc::openapi();
        let mut ids = HashMap::new();
        for (path, item) in doc.paths.paths {
            for (method, op) in [(Method::POST, &item.post), (Method::DELETE, &item.delete), (Method::PUT, &item.put)] {
                if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                    ids.insert((method, path.clone()), id);
                }
            }
        }
        ids
    })
}

/// A route template as the OpenAPI document spells it: without `/api`, and with
/// DCImanager's `/dci/v3/ipmgr` as IPmanager's `/ip/v3`.
fn document_path(route: &str) -> String {
    let route = route.strip_prefix("/api").filter(|r| r.starts_with('/')).unwrap_or(route);
    match route.strip_prefix("/dci/v3/ipmgr/") {
        Some(rest) => format!("/ip/v3/{rest}"),
        None => route.to_owned(),
    }
}

/// What a request acts on, from its route: the last `noun/{param}` pair
/// (`server/{id}/ip/{ip_id}` acts on the address), else the last noun (a creation,
/// whose id the store adds). Parameters that may hold a secret (a token given as
/// itself) show as `***` unless they are plain ids.
fn path_target(route: &str, params: &[(String, String)]) -> (String, String, Option<i64>) {
    let segs: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let value = |seg: &str| {
        let name = seg.strip_prefix('{')?.strip_suffix('}')?;
        let v = params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())?;
        let plain_id = !v.is_empty() && v.len() < 19 && v.bytes().all(|b| b.is_ascii_digit());
        Some(if dcim_store::audit::is_secret(name) && !plain_id { "***".to_owned() } else { v.to_owned() })
    };
    let mut target = (String::new(), String::new());
    let mut server = None;
    for w in segs.windows(2) {
        if let Some(v) = value(w[1])
            && !w[0].starts_with('{')
        {
            // The web UI's paths say `servers/{id}`.
            let noun = if w[0] == "servers" { "server" } else { w[0] };
            if noun == "server" {
                server = v.parse().ok();
            }
            target = (noun.to_owned(), v);
        }
    }
    if target.0.is_empty() {
        let noun = segs.iter().rev().find(|s| !s.starts_with('{')).copied().unwrap_or_default();
        target.0 = noun.to_owned();
    }
    (target.0, target.1, server)
}

/// A web UI action's name: `ui.` and the action in the path (`ui.power_off`), or the
/// route's last word (`ui.login`).
fn ui_action(route: &str, params: &[(String, String)]) -> Option<String> {
    let rest = route.strip_prefix("/ui/")?;
    let name = match params.iter().find(|(k, _)| k == "action") {
        Some((_, v)) => v.clone(),
        None => rest.split('/').rev().find(|s| !s.starts_with('{') && !s.is_empty())?.to_owned(),
    };
    Some(format!("ui.{name}"))
}

/// Opens the audit scope of a state-changing request and completes its record with
/// the answer.
pub async fn audit_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let Some(route) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let params: Vec<(String, String)> = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(p) => p.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        Err(_) => vec![],
    };
    let req = Request::from_parts(parts, body);
    let path = document_path(&route);
    let method = req.method().clone();
    let action = match operation_ids().get(&(method.clone(), path.clone())) {
        Some(id) => id.clone(),
        None => ui_action(&path, &params).unwrap_or_else(|| format!("{method} {path}")),
    };
    let (target_kind, target_id, server_id) = path_target(&path, &params);
    let info = RequestInfo {
        action,
        method: method.to_string(),
        route: path,
        address: req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default(),
        request_id: req
            .headers()
            .get(crate::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        target_kind,
        target_id,
        server_id,
    };
    let scope = AuditScope::new(info);
    let r = dcim_store::audit::in_scope(scope.clone(), next.run(req)).await;
    let err = r.extensions().get::<ErrorInfo>();
    let outcome = Outcome {
        status: r.status().as_u16(),
        error_code: err.map(|e| e.code),
        error_msg: err.map(|e| e.msg.clone()).unwrap_or_default(),
    };
    if let Err(e) = scope.finish(&st.store, &outcome).await {
        tracing::error!(error = ?e, "writing the audit record failed");
    }
    r
}

/// The audit trail (admins): every state-changing request and every task's end,
/// newest first unless `orderby` says otherwise.
#[utoipa::path(get, path = "/dci/v3/audit", tag = "audit",
    params(("where" = Option<String>, Query), ("orderby" = Option<String>, Query), ("limit" = Option<String>, Query)),
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
    st.store.check_server(id, &caller.server_scope()).await?;
    let since = if caller.is_admin() { 0 } else { st.store.owner_since(id).await?.unwrap_or(i64::MAX) };
    let limit = q.limit.map(|l| l.count).unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX);
    let page = ListQuery { limit: Some(Limit { offset: 0, count: limit }), ..ListQuery::default() };
    let limit = limit as usize;
    let records = st.store.list_audit(&page, &dcim_store::audit::of_server_since(id, since)).await?.items;
    let task_scope = [
        Scope { sql: "t.server_id = ?", value: Bind::Int(id) },
        Scope { sql: "t.created >= ?", value: Bind::Int(since) },
    ];
    let mut task_page = page.clone();
    task_page.order = vec![dcim_core::query::OrderBy { field: "id".into(), desc: true }];
    let tasks = st.store.list_tasks(&task_page, &task_scope).await?.items;
    let mut entries: Vec<(i64, i64, HistoryEntry)> = Vec::with_capacity(records.len() + tasks.len());
    for r in records {
        let at = r.at;
        let mut rec = AuditRecord::from(r);
        if !caller.is_admin() && rec.user_id != Some(caller.user_id) {
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

/// Removes audit records older than `days` every hour; `0` keeps them for ever.
pub async fn retention_loop(store: dcim_store::Store, days: u32) {
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let before = dcim_store::now() - i64::from(days) * 86_400;
        match store.purge_audit(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, days, "old audit records removed"),
            Err(e) => tracing::warn!(error = ?e, "removing old audit records failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn targets_come_from_the_route() {
        assert_eq!(
            path_target("/dci/v3/server/{id}/power_on", &p(&[("id", "7")])),
            ("server".into(), "7".into(), Some(7))
        );
        assert_eq!(
            path_target("/dci/v3/server/{id}/ip/{ip_id}", &p(&[("id", "7"), ("ip_id", "9")])),
            ("ip".into(), "9".into(), Some(7))
        );
        assert_eq!(path_target("/dci/v3/server", &[]), ("server".into(), String::new(), None));
        assert_eq!(path_target("/auth/v4/token/{token}", &p(&[("token", &"ab".repeat(32))])).1, "***");
        assert_eq!(path_target("/auth/v4/token/{token}", &p(&[("token", "12")])).1, "12");
        assert_eq!(document_path("/api/dci/v3/ipmgr/ipnet/{id}"), "/ip/v3/ipnet/{id}");
        let ui = p(&[("id", "5"), ("action", "power_off")]);
        assert_eq!(path_target("/ui/servers/{id}/{action}", &ui), ("server".into(), "5".into(), Some(5)));
        assert_eq!(ui_action("/ui/servers/{id}/{action}", &ui).as_deref(), Some("ui.power_off"));
        assert_eq!(ui_action("/ui/login", &[]).as_deref(), Some("ui.login"));
        assert_eq!(ui_action("/dci/v3/server", &[]), None);
    }
}
