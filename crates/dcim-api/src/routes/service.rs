//! The service's own routes: `GET /metrics` (Prometheus) and `GET /ready`; `/health`
//! is in [`super`]. Also the middleware that counts every HTTP answer by route template.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dcim_metrics::Snapshot;
use serde_json::json;

use crate::AppState;
use crate::auth::{caller_for_token, request_token};
use crate::error::{ApiError, ErrorKind};

/// Counts the answer of every request by its route template (`/dci/v3/server/{id}`,
/// never the raw path; `unmatched` for a path no route has), method and status class;
/// names the route in the request's log span; and makes the request id known to the
/// tasks the request starts. `inner` answers the request (the audit's middleware and
/// the route: `crate::routed`).
pub async fn track_http<F>(st: &AppState, req: Request, inner: impl FnOnce(Request) -> F) -> Response
where
    F: std::future::Future<Output = Response>,
{
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    tracing::Span::current().record("route", route.as_deref().unwrap_or("unmatched"));
    let request_id = req
        .headers()
        .get(crate::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let r = dcim_tasks::REQUEST_ID.scope(request_id, inner(req)).await;
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    st.engine.drivers.metrics().http(route, method, r.status().as_u16(), started.elapsed().as_secs_f64());
    r
}

/// Whether the request may read the metrics: the configured `metrics_token` as
/// `Authorization: Bearer` (what Prometheus sends), or an admin's session.
async fn may_read_metrics(st: &AppState, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (Some(want), Some(got)) = (st.cfg.metrics_token.as_deref(), bearer)
        && !want.is_empty()
        && crate::auth::hash_secret(want) == crate::auth::hash_secret(got)
    {
        return Ok(());
    }
    let token = request_token(method, headers)?
        .ok_or_else(|| ApiError::unauthorized("metrics need the metrics_token or an admin's session"))?;
    caller_for_token(st, token).await?.require_admin()
}

/// `/metrics` on the `metrics_listen` listener: the `metrics_token` when one is set,
/// else open.
pub async fn metrics_on_own_listener(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(want) = st.cfg.metrics_token.as_deref().filter(|t| !t.is_empty()) {
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if crate::auth::hash_secret(want) != crate::auth::hash_secret(got) {
            return Err(ApiError::unauthorized("this listener's metrics need the metrics_token"));
        }
    }
    exposition(&st).await
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, content_type = "application/openmetrics-text", description = "OpenMetrics text format"), (status = 401), (status = 403)))]
pub async fn metrics(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    may_read_metrics(&st, &method, &headers).await?;
    exposition(&st).await
}

/// The exposition itself, read from the process's counters and the database.
async fn exposition(st: &AppState) -> Result<Response, ApiError> {
    let (states, power, running, pending) = st.store.metric_counts().await?;
    let ranges = st.store.pool_ranges(None).await?;
    let pools = st.store.list_pools(&dcim_core::query::ListQuery::default()).await?;
    let pools = pools
        .items
        .into_iter()
        .map(|p| {
            let total: u128 = ranges.iter().filter(|r| r.pool_id == p.id).map(super::ip::range_total).sum();
            (p.name, p.using_ipv4 + p.using_ipv6, i64::try_from(total).unwrap_or(i64::MAX))
        })
        .collect();
    let sites = st.store.list_sites(&dcim_core::query::ListQuery::default()).await?;
    let sites = (sites.items.into_iter())
        .map(|s| dcim_metrics::SiteStatus {
            connected: st.engine.sites.connected(s.last_seen) && s.has_credential != 0,
            last_seen: s.last_seen.unwrap_or(0),
            calls_in_flight: s.calls_in_flight,
            name: s.name,
        })
        .collect();
    let (open, idle) = st.store.pool_stats();
    let (entries, bytes) = st.servers.size();
    let snap = Snapshot {
        servers_by_state: states,
        servers_by_power: power,
        pools,
        tasks_running: running,
        tasks_waiting: pending,
        db_connections_in_use: i64::from(open) - idle as i64,
        db_connections_idle: idle as i64,
        workers_behind: (st.engine.workers.list().into_iter())
            .map(|(w, s)| (w.name.to_owned(), s.behind_ms as f64 / 1000.0))
            .collect(),
        sites,
        server_cache_entries: entries as i64,
        server_cache_bytes: bytes as i64,
    };
    let text = st.engine.drivers.metrics().encode_with(&snap).map_err(ApiError::internal_because)?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

/// Readiness for a load balancer: 200 only when the database answers, its migrations
/// are this build's, and the task dispatcher runs; otherwise 503 saying which failed.
#[utoipa::path(get, path = "/ready", tag = "service", security(()), responses((status = 200), (status = 503)))]
pub async fn ready(State(st): State<AppState>) -> Response {
    let db = st.store.ping().await;
    let migrations = match &db {
        Ok(()) => match st.store.pending_migrations().await {
            Ok(p) if p.is_empty() => json!({"ok": true}),
            Ok(p) => json!({"ok": false, "pending": p}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        },
        Err(_) => json!({"ok": false, "error": "the database is unreachable"}),
    };
    let dispatcher = st.engine.dispatching();
    let checks = json!({
        "database": match &db { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e.to_string()}) },
        "migrations": migrations,
        "dispatcher": {"ok": dispatcher},
    });
    let ok = db.is_ok() && checks["migrations"]["ok"] == true && dispatcher;
    if ok {
        (StatusCode::OK, axum::Json(json!({"status": "ready", "checks": checks}))).into_response()
    } else {
        let failed: Vec<&str> =
            ["database", "migrations", "dispatcher"].into_iter().filter(|k| checks[*k]["ok"] != true).collect();
        ApiError::new(ErrorKind::Unavailable, format!("not ready: {}", failed.join(", ")))
            .with_value(json!({"checks": checks}))
            .into_response()
    }
}

/// A background worker of the process that answers, with its last round.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BackgroundWorker {
    /// `power_poller`, `port_poller`, `webhook_delivery`, `session_purge`, `audit_retention`.
    pub name: String,
    /// Time between the starts of two rounds, in milliseconds.
    pub interval_ms: i64,
    /// How many device calls or sends a round makes at once.
    pub concurrency: i64,
    /// Whether a round is under way.
    pub running: bool,
    pub runs: i64,
    pub failures: i64,
    pub last_started: Option<String>,
    pub last_finished: Option<String>,
    pub last_duration_ms: Option<i64>,
    /// How much longer than the interval the last round took, in milliseconds: how late
    /// the next round starts (0: on schedule). A power poller with more BMCs than it
    /// can read in one interval is behind.
    pub behind_ms: i64,
    /// What the last round did, or `failed: ` and why.
    pub last_result: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// The background workers of the process that answers (pollers, purges, webhook
/// deliveries), each with its interval and its last round: when, how long, what it did,
/// and its last error. Each `dcim` process has its own; admin only.
#[utoipa::path(get, path = "/dci/v3/worker", tag = "service",
    responses((status = 200, body = crate::wire::List<BackgroundWorker>), (status = 403)))]
pub async fn list_workers(
    caller: crate::auth::Caller,
    State(st): State<AppState>,
) -> crate::error::ApiResult<axum::Json<crate::wire::List<BackgroundWorker>>> {
    caller.require_admin()?;
    let time = |t: Option<i64>| t.map(crate::wire::task::time);
    let list: Vec<BackgroundWorker> = st
        .engine
        .workers
        .list()
        .into_iter()
        .map(|(w, s)| BackgroundWorker {
            name: w.name.to_owned(),
            interval_ms: w.interval.as_millis() as i64,
            concurrency: w.concurrency as i64,
            running: s.running,
            runs: s.runs as i64,
            failures: s.failures as i64,
            last_started: time(s.last_started),
            last_finished: time(s.last_finished),
            last_duration_ms: s.last_duration_ms.map(|d| d as i64),
            behind_ms: s.behind_ms as i64,
            last_result: s.last_result,
            last_error: s.last_error,
            last_error_at: time(s.last_error_at),
        })
        .collect();
    let size = list.len() as i64;
    Ok(axum::Json(crate::wire::List { list, size }))
}
