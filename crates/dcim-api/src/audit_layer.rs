//! The audit middleware: every state-changing request of the API and the web UI gets
//! its record. It opens an [`AuditScope`] naming the action (the operation id of the
//! OpenAPI document, or `ui.ACTION`), the route template, the client address, the request
//! id and the target found in the path; authentication adds the caller
//! (`Caller::actor`); the store writes the record in the transaction of the change
//! ([`dcim_store::audit`]); the answer completes it. A request with no route (404) or a
//! read leaves none. The trail is read at [`crate::routes::audit`].

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use dcim_store::audit::{AuditScope, Outcome, RequestInfo};
use utoipa::OpenApi;

use crate::AppState;
use crate::error::ErrorInfo;

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
    // A site's link polls every few seconds and posts device answers: no actions of
    // anyone (the tasks they serve keep their own record).
    if route.contains("/dci/v3/site/link/") {
        return next.run(req).await;
    }
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
        address: crate::extract::client_ip(req.extensions()).map(|ip| ip.to_string()).unwrap_or_default(),
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
