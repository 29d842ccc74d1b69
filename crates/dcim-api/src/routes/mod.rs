//! Every route of the API in one place. Each route answers with and without the
//! `/api` prefix, as DCImanager's reverse proxy does.

pub mod audit;
pub mod auth_v4;
pub mod auth_v4_self;
pub mod inventory;
pub mod ip;
pub mod ipmgr;
pub mod operations;
pub mod servers;
pub mod service;
pub mod sites;
pub mod users;
pub mod webhooks;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{delete, get, post};

use crate::AppState;
use crate::error::{ApiError, ErrorKind};

/// The routes without the `/api` prefix.
fn api(state: AppState) -> Router {
    use auth_v4_self as auth_self;
    use inventory as inv;
    use operations as ops;
    // What may be large: an agent's report, a server's hardware, an OS template with
    // its installer's files. Every other body is held to `body_limit`.
    let large = axum::extract::DefaultBodyLimit::max(state.cfg.large_body_limit);
    Router::new()
        // Auth API v4
        .route("/auth/v4/public/token", post(auth_v4::login))
        .route("/auth/v4/public/key", post(auth_v4::login_by_key))
        .route("/auth/v4/public/token/confirm", post(auth_v4::confirm_token))
        .route("/auth/v4/public/2fa/qrcode", post(auth_v4::qrcode))
        .route("/auth/v4/public/roles", get(auth_v4::roles))
        .route("/auth/v4/token", get(auth_v4::list_tokens).post(auth_v4::create_token))
        .route("/auth/v4/token/{token}", delete(auth_v4::logout))
        .route("/auth/v4/whoami", get(auth_v4::whoami))
        .route("/auth/v4/time", get(auth_v4::time))
        .route("/auth/v4/self", get(auth_self::get_self).post(auth_self::edit_self))
        .route("/auth/v4/self/password", post(auth_self::self_password))
        .route("/auth/v4/self/2fa", post(auth_v4::setup_2fa).delete(auth_v4::delete_self_2fa))
        .route("/auth/v4/self/2fa/reserve/generate", post(auth_v4::generate_reserve_codes))
        .route("/auth/v4/self/sshkey", get(auth_self::list_self_ssh_keys).post(auth_self::create_self_ssh_key))
        .route(
            "/auth/v4/self/sshkey/{id}",
            get(auth_self::get_self_ssh_key).post(auth_self::edit_self_ssh_key).delete(auth_self::delete_self_ssh_key),
        )
        .route("/auth/v4/user/{user}/key", post(auth_v4::issue_key))
        .route("/auth/v4/user/{user}/password", post(auth_self::user_password))
        .route("/auth/v4/user/{user}/suspend", post(auth_self::suspend_user))
        .route("/auth/v4/user/{user}/resume", post(auth_self::resume_user))
        .route("/auth/v4/user/{user}/lock", post(auth_self::lock_user))
        .route("/auth/v4/user/{user}/lock/{service}", delete(auth_self::unlock_user))
        .route("/auth/v4/user/{user}/2fa", delete(auth_v4::delete_user_2fa))
        .route("/auth/v4/user/{user}/sshkey", get(auth_self::list_user_ssh_keys))
        .route("/auth/key-v4/{key}", get(auth_v4::key_redirect))
        // users
        .route("/dci/v3/user", get(users::list_users).post(users::create_user))
        .route("/dci/v3/user/{id}", get(users::get_user).post(users::edit_user).delete(users::delete_user))
        .route("/dci/v3/user/{id}/block", post(users::block_user))
        .route("/dci/v3/user/{id}/unblock", post(users::unblock_user))
        // servers
        .route("/dci/v3/server/configuration", get(servers::server_configuration))
        .route("/dci/v3/warehouse/server", get(servers::warehouse_servers))
        .route("/dci/v3/server", get(servers::list_servers).post(servers::create_server))
        .route(
            "/dci/v3/server/{id}",
            get(servers::get_server).post(servers::edit_server).delete(servers::delete_server),
        )
        .route("/dci/v3/server/{id}/history", get(audit::server_history))
        .route("/dci/v3/server/{id}/owner", post(servers::set_owner).delete(servers::release_owner))
        .route("/dci/v3/server/{id}/hardware_info", post(servers::set_hardware_info).layer(large))
        .route("/dci/v3/server/{id}/switch_connection", post(servers::connect_switch))
        .route("/dci/v3/server/{id}/switch_connection/{connection_id}", delete(servers::disconnect_switch))
        .route("/dci/v3/server/{id}/pdu_connection", post(servers::connect_pdu))
        .route("/dci/v3/server/{id}/pdu_connection/{connection_id}", delete(servers::disconnect_pdu))
        // operations
        .route("/dci/v3/server/{id}/power_on", post(ops::power_on))
        .route("/dci/v3/server/{id}/power_off", post(ops::power_off))
        .route("/dci/v3/server/{id}/power_reset", post(ops::power_reset))
        .route("/dci/v3/server/{id}/boot_device", post(ops::boot_device))
        .route("/dci/v3/server/{id}/suspend", post(ops::suspend))
        .route("/dci/v3/server/{id}/resume", post(ops::resume))
        .route("/dci/v3/server/{id}/operation_diag", post(ops::operation_diag))
        .route("/dci/v3/server/{id}/operation_clear_hdd", post(ops::operation_clear_hdd))
        .route("/dci/v3/server/{id}/operation_os", post(ops::operation_os))
        .route("/dci/v3/server/{id}/operation", delete(ops::abort_operation))
        .route("/dci/v3/task", get(ops::list_tasks))
        .route("/dci/v3/worker", get(service::list_workers))
        .route("/dci/v3/audit", get(audit::list_audit))
        .route("/dci/v3/site", get(sites::list_sites).post(sites::create_site))
        .route("/dci/v3/site/{id}", get(sites::get_site).post(sites::edit_site).delete(sites::delete_site))
        .route("/dci/v3/site/{id}/revoke", post(sites::revoke_site))
        .route("/dci/v3/site/{id}/enrollment", post(sites::new_enrollment))
        .route("/dci/v3/site/enroll", post(sites::enroll_site))
        .route("/dci/v3/site/link/poll", post(sites::link_poll))
        .route("/dci/v3/site/link/answer", post(sites::link_answer).layer(large))
        .route("/dci/v3/webhook", get(webhooks::list_webhooks).post(webhooks::create_webhook))
        .route(
            "/dci/v3/webhook/{id}",
            get(webhooks::get_webhook).post(webhooks::edit_webhook).delete(webhooks::delete_webhook),
        )
        .route("/dci/v3/webhook/{id}/delivery", get(webhooks::list_deliveries))
        .route("/dci/v3/task/{id}", get(ops::get_task))
        .route("/agent/v1/task/{id}/report", post(ops::agent_report).layer(large))
        // IP addresses: IPmanager at /ip/v3, and under DCImanager's own /dci/v3/ipmgr
        .nest("/ip/v3", ipmgr_routes())
        .nest("/dci/v3/ipmgr", ipmgr_routes())
        .route("/dci/v3/ip", get(ip::list_ips))
        .route("/dci/v3/server/{id}/ip", get(ip::server_ips).post(ip::allocate_ip))
        .route("/dci/v3/server/{id}/ip/{ip_id}", post(ip::release_ip).delete(ip::release_ip_delete))
        // inventory
        .route("/dci/v3/location", get(inv::list_locations).post(inv::create_location))
        .route("/dci/v3/location/{id}", get(inv::get_location).post(inv::edit_location).delete(inv::delete_location))
        .route("/dci/v3/rack", get(inv::list_racks).post(inv::create_rack))
        .route("/dci/v3/rack/{id}", get(inv::get_rack).post(inv::edit_rack).delete(inv::delete_rack))
        .route("/dci/v3/switch", get(inv::list_switches).post(inv::create_switch))
        .route("/dci/v3/switch/{id}", get(inv::get_switch).post(inv::edit_switch).delete(inv::delete_switch))
        .route("/dci/v3/switch/{id}/sync", post(inv::sync_switch))
        .route("/dci/v3/switch/{id}/port", get(inv::list_switch_ports))
        .route("/dci/v3/switch/{id}/port/{port_id}", get(inv::get_switch_port).post(inv::edit_switch_port))
        .route("/dci/v3/pdu", get(inv::list_pdus).post(inv::create_pdu))
        .route("/dci/v3/pdu/{id}", get(inv::get_pdu).post(inv::edit_pdu).delete(inv::delete_pdu))
        .route("/dci/v3/pdu/{id}/sync", post(inv::sync_pdu))
        .route("/dci/v3/pdu/{id}/port", get(inv::list_pdu_ports))
        .route("/dci/v3/pdu/{id}/port/{port_id}", post(inv::edit_pdu_port))
        .route("/dci/v3/os_template", get(inv::list_os_templates).post(inv::create_os_template).layer(large))
        .route(
            "/dci/v3/os_template/{id}",
            get(inv::get_os_template).post(inv::edit_os_template).delete(inv::delete_os_template).layer(large),
        )
        .route("/health", get(health))
        .route("/ready", get(service::ready))
        .route("/metrics", get(service::metrics))
        .merge(fake_routes(&state))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The fake lab's routes, only when its drivers are on (the demo, tests, benchmarks):
/// a production server has none.
fn fake_routes(state: &AppState) -> Router<AppState> {
    use operations as ops;
    if state.engine.drivers.fake.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/dci/v3/fake", get(ops::fake_state))
        .route("/dci/v3/fake/fault", post(ops::fake_fault).delete(ops::fake_clear_faults))
        .route("/dci/v3/fake/delay", post(ops::fake_delay))
        .route("/dci/v3/fake/hardware", post(ops::fake_hardware))
}

/// IPmanager 6's routes, relative to `/ip/v3` (and `/dci/v3/ipmgr`, where DCImanager
/// shows the same).
fn ipmgr_routes() -> Router<AppState> {
    Router::new()
        .route("/userspace", get(ipmgr::list_userspaces).post(ipmgr::create_userspace))
        .route("/userspace/{id}", get(ipmgr::get_userspace).post(ipmgr::edit_userspace).delete(ipmgr::delete_userspace))
        .route("/userspace/{id}/ipnet", post(ipmgr::create_userspace_ipnet))
        .route("/userspace/{id}/ippool", post(ipmgr::create_userspace_pool))
        .route("/userspace/{id}/ip", post(ipmgr::create_userspace_ip))
        .route("/userspace/{id}/history/{address}", get(ipmgr::address_history))
        .route("/ipnet", get(ip::list_ipnets).post(ip::create_ipnet))
        .route("/ipnet/{id}", get(ip::get_ipnet).post(ip::edit_ipnet).delete(ip::delete_ipnet))
        .route("/ipnet/{id}/ip", post(ipmgr::create_ip))
        .route("/ippool", get(ip::list_pools).post(ip::create_pool))
        .route("/ippool/{id}", get(ip::get_pool).post(ip::edit_pool).delete(ip::delete_pool))
        .route("/ippool/{id}/range", post(ipmgr::create_range))
        .route("/ippool/{id}/ip", post(ipmgr::allocate_pool_ip))
        .route("/range", get(ipmgr::list_ranges))
        .route("/range/{id}", get(ipmgr::get_range).post(ipmgr::edit_range).delete(ipmgr::delete_range))
        .route("/range/{id}/ip", get(ipmgr::range_ips))
        .route("/ip", get(ipmgr::list_ips))
        .route("/ip/{id}", get(ipmgr::get_ip).post(ipmgr::edit_ip).delete(ipmgr::delete_ip))
        .method_not_allowed_fallback(method_not_allowed)
}

/// The API at `/` and `/api`, and the answer for everything else; `/` sends a
/// browser to the web UI.
pub fn router(state: AppState) -> Router {
    let api = api(state);
    Router::new()
        .nest("/api", api.clone())
        .merge(api)
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .fallback(no_handler)
}

async fn no_handler() -> ApiError {
    ApiError::new(ErrorKind::NoHandler, "request handler not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorKind::MethodNotAllowed, "this path does not take that method")
}

/// Liveness and database reachability, for load balancers.
#[utoipa::path(get, path = "/health", tag = "service", security(()), responses((status = 200), (status = 503)))]
pub async fn health(State(st): State<AppState>) -> impl IntoResponse {
    match st.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "health check: database unreachable");
            ApiError::new(ErrorKind::Unavailable, "the database is unreachable").into_response()
        }
    }
}
