//! The operator web UI, served by the `dcim` binary at `/ui/`: server-rendered HTML
//! (askama templates, checked when the crate compiles) with one vendored copy of
//! htmx for partial updates and polling, and one stylesheet and script of its own,
//! all embedded in the binary. `cargo build` alone builds it.
//!
//! Pages call the store and the API's own handler functions in process, with the
//! caller of the page ([`session::Ui`]): a `@user` sees and may do exactly what the
//! API lets it, through the same `Scope` in the same queries.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles only
//! from `/ui/assets/`, nothing inline), `X-Frame-Options: DENY`, `Referrer-Policy:
//! same-origin`, `X-Content-Type-Options: nosniff`, and pages `Cache-Control:
//! no-store`. Reading works without JavaScript: every list and filter is a GET with
//! its state in the URL.
//!
//! This module must not hold SQL or call the API over HTTP.

pub mod bulk;
pub mod devices;
pub mod enroll;
pub mod filter;
pub mod ipam;
pub mod lab;
pub mod pages;
pub mod racks;
pub mod session;
pub mod shared;
pub mod sites;
pub mod templates;
pub mod users;
pub mod view;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dcim_api::AppState;

/// htmx, vendored and pinned (`assets/htmx-LICENSE`: Zero-Clause BSD).
pub const HTMX: &[u8] = include_bytes!("../assets/htmx-2.0.11.min.js");
pub const HTMX_NAME: &str = "htmx-2.0.11.min.js";
const CSS: &[u8] = include_bytes!("../assets/dcim.css");
const JS: &[u8] = include_bytes!("../assets/dcim.js");

/// The policy of every UI answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every route of the UI, under `/ui`.
pub fn router(state: AppState) -> Router {
    use pages as p;
    use racks as r;
    use users as u;
    let ui = Router::new()
        .route("/ui/", get(p::dashboard))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/servers", get(p::servers))
        .route("/ui/servers.csv", get(bulk::csv))
        .route("/ui/servers/bulk", post(bulk::bulk))
        .route("/ui/servers/new", get(enroll::new_server).post(enroll::create_server))
        .route("/ui/servers/{id}/inventory", get(enroll::inventory))
        .route("/ui/servers/{id}/inventory/{action}", post(enroll::inventory_action))
        .route("/ui/servers/{id}", get(p::server))
        .route("/ui/servers/{id}/live", get(p::live))
        .route("/ui/servers/{id}/{action}", post(p::action))
        .route("/ui/search", get(p::search))
        .route("/ui/tasks", get(p::tasks))
        .route("/ui/tasks/{id}", get(p::task))
        .route("/ui/tasks/{id}/steps", get(p::task_live))
        .route("/ui/locations", get(r::locations).post(r::create_location))
        .route("/ui/locations/{id}", get(r::location))
        .route("/ui/locations/{id}/{action}", post(r::location_action))
        .route("/ui/racks/{id}", get(r::rack))
        .route("/ui/racks/{id}/{action}", post(r::rack_action))
        .route("/ui/devices", get(devices::devices))
        .route("/ui/switches/{id}", get(devices::switch))
        .route("/ui/switches/{id}/{action}", post(devices::switch_action))
        .route("/ui/pdus/{id}", get(devices::pdu))
        .route("/ui/pdus/{id}/{action}", post(devices::pdu_action))
        .route("/ui/ipam", get(ipam::ipam))
        .route("/ui/ipam/addresses", get(ipam::addresses))
        .route("/ui/ipam/{kind}", post(ipam::create))
        .route("/ui/ipam/networks/{id}", get(ipam::network))
        .route("/ui/ipam/networks/{id}/{action}", post(ipam::network_action))
        .route("/ui/ipam/pools/{id}", get(ipam::pool))
        .route("/ui/ipam/pools/{id}/{action}", post(ipam::pool_action))
        .route("/ui/lab", get(lab::lab))
        .route("/ui/lab/{action}", post(lab::lab_action))
        .route("/ui/templates", get(templates::templates).post(templates::create_template))
        .route("/ui/templates/{id}", get(templates::template))
        .route("/ui/templates/{id}/{action}", post(templates::template_action))
        .route("/ui/sites", get(sites::sites).post(sites::create_site))
        .route("/ui/sites/{id}", get(sites::site))
        .route("/ui/sites/{id}/{action}", post(sites::site_action))
        .route("/ui/users", get(u::users).post(u::create_user))
        .route("/ui/users/{id}", get(u::user))
        .route("/ui/users/{id}/{action}", post(u::user_action))
        .route("/ui/assets/{file}", get(asset))
        .layer(axum::middleware::from_fn_with_state(state.clone(), session::adopt_api_cookie))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state);
    ui.route("/ui", get(|| async { axum::response::Redirect::to("/ui/") }))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        f if f == HTMX_NAME => (HTMX, "text/javascript"),
        "dcim.css" => (CSS, "text/css"),
        "dcim.js" => (JS, "text/javascript"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let cache = if file == HTMX_NAME { "public, max-age=31536000, immutable" } else { "public, max-age=300" };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)], body).into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with("/ui/assets/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    #[test]
    fn htmx_is_the_pinned_release() {
        // npm's htmx.org 2.0.11, dist/htmx.min.js.
        assert_eq!(
            hex::encode(sha2::Sha256::digest(super::HTMX)),
            "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
        );
    }
}
