//! The HTTP API: DCImanager 6's Auth API v4 and `dci/v3` services, and dcim's own
//! inventory API in the same style.
//!
//! Handlers extract and authorize, call the store, and map rows to the wire shapes
//! of [`wire`]; they hold no SQL. Errors go through the one table in [`error`].

pub mod audit_layer;
pub mod auth;
pub mod doc_rules;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;
pub mod server_cache;
pub mod totp;
pub mod webhook_guard;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use dcim_store::Store;
use tower_http::trace::TraceLayer;

/// Settings of the API layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// A session unused for this long is over.
    pub session_idle_secs: i64,
    /// How long a one-time login key lives.
    pub key_ttl_secs: i64,
    pub min_password_len: usize,
    /// Largest request body accepted, in bytes, but on the routes below.
    pub body_limit: usize,
    /// Largest body of an agent's report, a server's hardware and an OS template.
    pub large_body_limit: usize,
    /// Failed logins allowed per account, and per client address, within `throttle_window`.
    pub max_failures_per_account: u32,
    pub max_failures_per_address: u32,
    pub throttle_window: Duration,
    /// Mark the session cookie `Secure` (when serving HTTPS).
    pub secure_cookies: bool,
    /// How long a checked session is trusted without asking the database again
    /// (bounds how late another process's logout is seen); zero disables the cache.
    pub session_cache: Duration,
    /// Bytes of rendered servers kept for `GET /dci/v3/server/{id}`, compressed
    /// ([`server_cache`]); 0 turns the cache off.
    pub server_cache_bytes: usize,
    /// OS images served at `/images/` to anyone who reaches the listener (agents
    /// fetch them without credentials, as they fetch boot files); `None`: not served.
    pub images_dir: Option<std::path::PathBuf>,
    /// A bearer token that may read `/metrics` (Prometheus' scrape credential); an
    /// admin's session may always.
    pub metrics_token: Option<String>,
    /// Where webhooks may post.
    pub webhook_guard: webhook_guard::UrlGuard,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none by default: the
    /// header is ignored and the connection's peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Serving HTTPS: answers carry `Strict-Transport-Security`.
    pub hsts: bool,
    /// Requests per second a token may make on average, and in a burst (0: no limit).
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// The certificate this process serves (HTTPS): its SHA-256 is what a remote site
    /// pins, shown with the command that starts one.
    pub tls_cert: Option<std::path::PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            session_idle_secs: 3600,
            key_ttl_secs: 3600,
            min_password_len: 8,
            body_limit: 64 * 1024,
            large_body_limit: 4 * 1024 * 1024,
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            throttle_window: Duration::from_secs(900),
            secure_cookies: false,
            session_cache: Duration::from_secs(5),
            server_cache_bytes: 64 << 20,
            images_dir: None,
            metrics_token: None,
            webhook_guard: webhook_guard::UrlGuard::default(),
            trusted_proxies: vec![],
            hsts: false,
            rate_limit_per_sec: 100,
            rate_limit_burst: 400,
            tls_cert: None,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub engine: Arc<dcim_tasks::Engine>,
    pub cfg: ApiConfig,
    pub throttle: auth::Throttle,
    pub rate: auth::RateLimit,
    pub sessions: auth::SessionCache,
    pub servers: server_cache::ServerCache,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Store, engine: Arc<dcim_tasks::Engine>, cfg: ApiConfig) -> Self {
        let throttle = auth::Throttle::new(
            store.clone(),
            cfg.throttle_window,
            cfg.max_failures_per_account,
            cfg.max_failures_per_address,
        );
        // A cached session must not outlive its idle limit.
        let idle = Duration::from_secs(cfg.session_idle_secs.max(0) as u64);
        let sessions = auth::SessionCache::new(cfg.session_cache.min(idle / 2));
        let rate = auth::RateLimit::new(cfg.rate_limit_per_sec, cfg.rate_limit_burst);
        let servers = server_cache::ServerCache::new(cfg.server_cache_bytes, engine.drivers.metrics());
        AppState(Arc::new(Inner { store, engine, cfg, throttle, rate, sessions, servers }))
    }
}

/// The in-band agents' route alone (`/agent/v1/task/{id}/report`), for the plain-HTTP
/// listener on a provisioning network, where nothing else of the API belongs.
pub fn agent_app(state: AppState) -> Router {
    let limit = state.cfg.large_body_limit;
    let images = state.cfg.images_dir.clone();
    with_images(
        Router::new()
            .route("/agent/v1/task/{id}/report", axum::routing::post(routes::operations::agent_report))
            .with_state(state.clone()),
        images,
    )
    .layer(axum::middleware::from_fn_with_state(state.clone(), routed))
    .layer(axum::middleware::from_fn_with_state(state, extract::client_address))
    .layer(DefaultBodyLimit::max(limit))
    .layer(axum::middleware::from_fn(refuse_ambiguous_framing))
    .layer(request_log())
    .layer(axum::middleware::from_fn(request_id))
}

/// The `metrics_listen` listener's application: `/metrics` (the `metrics_token` as
/// `Authorization: Bearer` when one is configured; open otherwise, for a listener on a
/// management network), `/ready` and `/health`; no other route.
pub fn metrics_app(state: AppState) -> Router {
    use axum::routing::get;
    Router::new()
        .route("/metrics", get(routes::service::metrics_on_own_listener))
        .route("/ready", get(routes::service::ready))
        .route("/health", get(routes::health))
        .with_state(state)
        .layer(request_log())
        .layer(axum::middleware::from_fn(request_id))
}

/// The complete application: the API's routes, the OpenAPI document with Swagger UI,
/// and `extra` (the web UI's routes), under one body limit, framing check and request
/// tracing. The layers wrap the router as a plain service, not as a second
/// `Router` with them as its fallback: that one matched every request against no
/// routes, then cloned and boxed its fallback before the real router did the same.
pub fn app_with<B>(
    state: AppState,
    extra: Router,
) -> impl tower::Service<
    axum::http::Request<B>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let limit = state.cfg.body_limit;
    let images = state.cfg.images_dir.clone();
    let routed = axum::middleware::from_fn_with_state(state.clone(), routed);
    let edge = axum::middleware::from_fn_with_state(state.clone(), edge);
    // The layer that reads the matched route (metrics and audit, `routed`) runs
    // inside the router, on each route; the others wrap the router once.
    // `Router::layer` would wrap every route in each of them, and each would then be
    // cloned, boxed and polled through its own box at every request (a tenth of the
    // CPU of `GET /dci/v3/server/{id}`); for the same reason the framing check, the
    // client's address and the security headers are one middleware (`edge`).
    let routes = with_images(routes::router(state), images).merge(extra).merge(openapi::swagger()).layer(routed);
    tower::ServiceBuilder::new()
        .map_request(|req: axum::http::Request<B>| req.map(axum::body::Body::new))
        .layer(axum::middleware::from_fn(request_id))
        .layer(request_log())
        .layer(DefaultBodyLimit::max(limit))
        .layer(edge)
        .service(routes)
}

/// On each route: its metrics and its name in the log span
/// ([`routes::service::track_http`]), and the audit of a state-changing request
/// ([`audit_layer::audit_requests`]), in one layer: a layer on the routes costs a
/// clone and a box at every request.
async fn routed(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let audit = state.clone();
    routes::service::track_http(&state, req, |req| audit_layer::audit_requests(State(audit), req, next)).await
}

/// The API's and the web UI's way in and out: an ambiguously framed request is
/// refused ([`refuse_ambiguous_framing`]), the client's address is recorded
/// ([`extract::client_address`]), and the answer gets the security headers
/// ([`add_security_headers`]).
async fn edge(
    State(state): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(refused) = ambiguous_framing(&req) {
        return refused;
    }
    extract::record_client(&state, &mut req);
    let mut r = next.run(req).await;
    add_security_headers(&state, &mut r);
    r
}

/// Headers on every answer: no MIME sniffing, no framing, no referrer, and (serving
/// HTTPS) `Strict-Transport-Security` for a year. API answers (JSON, some with tokens)
/// are never stored by caches; the web UI sets its own policy and caching on top.
fn add_security_headers(state: &AppState, r: &mut axum::response::Response) {
    use axum::http::{HeaderValue, header};
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if state.cfg.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
}

/// The request id header: taken from the client when it is a plain token, else made
/// (a UUID), and returned in the answer.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Gives the request its id: the client's `X-Request-Id` when it is a short plain token
/// (1 to 128 of `A-Z a-z 0-9 . _ : -`), else a new UUID in its place. The id goes into
/// every log line, and back to the client in the answer's header. One middleware
/// rather than tower-http's two request-id layers and a check of the client's id:
/// each layer costs a clone and a box at every request.
async fn request_id(mut req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let given = req.headers().get(REQUEST_ID_HEADER).filter(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    });
    let id = match given {
        Some(id) => id.clone(),
        None => {
            let mut text = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            let id = axum::http::HeaderValue::from_str(text).expect("a UUID is a header value");
            req.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
            id
        }
    };
    let mut r = next.run(req).await;
    r.headers_mut().entry(REQUEST_ID_HEADER).or_insert(id);
    r
}

/// One log span per request, with its id, method and (once routed) route template and
/// caller; one line when it is answered, with the status and latency. Raw paths and
/// queries are never logged: some carry a token or a one-time key.
type RequestLog = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&axum::http::Request<axum::body::Body>) -> tracing::Span,
    tower_http::trace::DefaultOnRequest,
    fn(&axum::http::Response<axum::body::Body>, Duration, &tracing::Span),
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    (),
>;

fn request_log() -> RequestLog {
    fn span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
        let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            route = tracing::field::Empty,
            user_id = tracing::field::Empty,
        )
    }
    fn answered(r: &axum::http::Response<axum::body::Body>, latency: Duration, _span: &tracing::Span) {
        tracing::info!(
            target: "dcim::access",
            status = r.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "answered"
        );
    }
    // A 500 is not logged again as a "failure": its cause was logged where it arose
    // (`ApiError::internal_because`), and its "answered" line has the status.
    TraceLayer::new_for_http().make_span_with(span as fn(&_) -> _).on_response(answered as fn(&_, _, &_)).on_failure(())
}

/// `GET /images/FILE` from `dir` (no listing, nothing outside it).
fn with_images(router: Router, dir: Option<std::path::PathBuf>) -> Router {
    match dir {
        Some(dir) => router.nest_service("/images", tower_http::services::ServeDir::new(dir)),
        None => router,
    }
}

/// The header that the listener's framing check (the `dcim` binary's `framing`
/// module) puts in place of `Content-Length` when a request also has
/// `Transfer-Encoding`, which hyper would otherwise drop unseen.
pub const AMBIGUOUS_FRAMING_MARK: &str = "x-dcim-both-cl";

/// A request with both `Transfer-Encoding` and `Content-Length` is refused with a 400
/// and the connection closed (RFC 9112, section 6.3): a proxy in front of dcim may
/// have framed it the other way, which is how requests are smuggled.
async fn refuse_ambiguous_framing(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match ambiguous_framing(&req) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

/// [`refuse_ambiguous_framing`]'s refusal of `req`, if it is one to refuse.
fn ambiguous_framing(req: &axum::extract::Request) -> Option<axum::response::Response> {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    use axum::response::IntoResponse;
    let h = req.headers();
    let te = h.contains_key(TRANSFER_ENCODING);
    if te && (h.contains_key(CONTENT_LENGTH) || h.contains_key(AMBIGUOUS_FRAMING_MARK)) {
        let mut r = error::ApiError::bad_request("a request may not have both Transfer-Encoding and Content-Length")
            .into_response();
        r.headers_mut().insert(CONNECTION, axum::http::HeaderValue::from_static("close"));
        return Some(r);
    }
    None
}
