//! The OpenAPI 3 document, generated from the handlers' annotations and the wire
//! types, served at `/swagger/openapi.json` with Swagger UI at `/swagger/`
//! (where DCImanager serves its own reference).

use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{
    auth_v4, auth_v4_self as auth_self, inventory as inv, ip, ipmgr, operations as ops, servers, users,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "dcim", description = "DCImanager 6 compatible bare-metal data-center manager. \
        Every path also answers under /api. Errors: {\"error\":{\"code\",\"msg\",\"value\"}}; see docs/API.md."),
    paths(
        auth_v4::login, auth_v4::login_by_key, auth_v4::logout, auth_v4::whoami, auth_v4::issue_key,
        auth_v4::key_redirect, auth_v4::create_token, auth_v4::list_tokens, auth_v4::confirm_token,
        auth_v4::setup_2fa, auth_v4::delete_self_2fa, auth_v4::delete_user_2fa, auth_v4::generate_reserve_codes,
        auth_v4::qrcode, auth_v4::roles, auth_v4::time,
        auth_self::get_self, auth_self::edit_self, auth_self::self_password, auth_self::user_password,
        auth_self::suspend_user, auth_self::resume_user, auth_self::lock_user, auth_self::unlock_user,
        auth_self::list_self_ssh_keys, auth_self::create_self_ssh_key, auth_self::get_self_ssh_key,
        auth_self::edit_self_ssh_key, auth_self::delete_self_ssh_key, auth_self::list_user_ssh_keys,
        users::list_users, users::get_user, users::create_user, users::edit_user, users::block_user,
        users::unblock_user, users::delete_user,
        servers::server_configuration, servers::list_servers, servers::warehouse_servers, servers::get_server, servers::set_owner,
        servers::release_owner, servers::create_server, servers::edit_server, servers::delete_server,
        servers::set_hardware_info, servers::connect_switch, servers::connect_pdu, servers::disconnect_switch,
        servers::disconnect_pdu,
        inv::list_locations, inv::get_location, inv::create_location, inv::edit_location, inv::delete_location,
        inv::list_racks, inv::get_rack, inv::create_rack, inv::edit_rack, inv::delete_rack,
        inv::list_switches, inv::get_switch, inv::create_switch, inv::edit_switch, inv::delete_switch,
        inv::sync_switch, inv::list_switch_ports, inv::get_switch_port, inv::edit_switch_port,
        inv::list_pdus, inv::get_pdu, inv::create_pdu, inv::edit_pdu, inv::delete_pdu, inv::sync_pdu,
        inv::list_pdu_ports, inv::edit_pdu_port,
        inv::list_os_templates, inv::get_os_template, inv::create_os_template, inv::edit_os_template,
        inv::delete_os_template,
        ops::power_on, ops::power_off, ops::power_reset, ops::boot_device, ops::suspend, ops::resume, ops::operation_diag,
        ops::operation_clear_hdd, ops::operation_os, ops::abort_operation, ops::list_tasks, ops::get_task,
        ops::agent_report, ops::fake_state, ops::fake_fault, ops::fake_clear_faults, ops::fake_delay,
        ops::fake_hardware,
        ip::list_ipnets, ip::get_ipnet, ip::create_ipnet, ip::edit_ipnet, ip::delete_ipnet, ip::list_pools,
        ip::get_pool, ip::create_pool, ip::edit_pool, ip::delete_pool, ip::list_ips, ip::server_ips,
        ip::allocate_ip, ip::release_ip, ip::release_ip_delete,
        ipmgr::list_userspaces, ipmgr::create_userspace, ipmgr::get_userspace, ipmgr::edit_userspace,
        ipmgr::delete_userspace, ipmgr::create_userspace_ipnet, ipmgr::create_userspace_pool,
        ipmgr::create_userspace_ip, ipmgr::address_history, ipmgr::create_ip, ipmgr::create_range,
        ipmgr::allocate_pool_ip, ipmgr::list_ranges, ipmgr::get_range, ipmgr::edit_range, ipmgr::delete_range,
        ipmgr::range_ips, ipmgr::list_ips, ipmgr::get_ip, ipmgr::edit_ip, ipmgr::delete_ip,
        crate::routes::audit::list_audit, crate::routes::audit::server_history,
        crate::routes::webhooks::list_webhooks, crate::routes::webhooks::get_webhook,
        crate::routes::webhooks::create_webhook, crate::routes::webhooks::edit_webhook,
        crate::routes::webhooks::delete_webhook, crate::routes::webhooks::list_deliveries,
        crate::routes::sites::list_sites, crate::routes::sites::get_site, crate::routes::sites::create_site,
        crate::routes::sites::edit_site, crate::routes::sites::delete_site, crate::routes::sites::revoke_site,
        crate::routes::sites::new_enrollment, crate::routes::sites::enroll_site, crate::routes::sites::link_poll,
        crate::routes::sites::link_answer,
        crate::routes::health, crate::routes::service::metrics, crate::routes::service::ready,
        crate::routes::service::list_workers,
    ),
    modifiers(&Security, &Errors),
    security(("ses6" = []), ("bearer" = []), ("isp_session" = []), ("xsrf" = []))
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme("ses6", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("ses6"))));
        c.add_security_scheme("isp_session", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("ISP-Session"))));
        // DCImanager's clients send the token in x-xsrf-token too, and a request that
        // carries it there alone is served.
        c.add_security_scheme("xsrf", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-xsrf-token"))));
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error answer is DCImanager's envelope: `{"error": {"code", "msg", "value"}}`.
/// Each operation's listed error statuses get it as their body, and `default` (any
/// other status, such as a 400 for a body that is not JSON, 401 without a session, 403
/// for a role, 413, 429) says the same, so a client or a fuzzer can check every answer.
struct Errors;

impl utoipa::Modify for Errors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = ObjectBuilder::new()
            .property("code", ObjectBuilder::new().schema_type(Type::Integer))
            .property("msg", ObjectBuilder::new().schema_type(Type::String))
            .property("value", ObjectBuilder::new().schema_type(Type::Object))
            .required("code")
            .required("msg")
            .required("value");
        let envelope = ObjectBuilder::new().property("error", error).required("error").build();
        let c = doc.components.get_or_insert_with(Default::default);
        c.schemas.insert("ErrorEnvelope".into(), RefOr::T(envelope.into()));
        let content = || ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build();
        for item in doc.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.delete, &mut item.put, &mut item.patch];
            for op in ops.into_iter().flatten() {
                for (status, r) in op.responses.responses.iter_mut() {
                    if let RefOr::T(r) = r
                        && !(status.starts_with('2') || status.starts_with('3'))
                        && r.content.is_empty()
                    {
                        r.content.insert("application/json".into(), RefOr::T(content()));
                    }
                }
                op.responses.responses.entry("default".into()).or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("An error: DCImanager's envelope")
                            .content("application/json", content())
                            .build(),
                    )
                });
            }
        }
    }
}

/// The OpenAPI document as served: what the routes declare, with the rules of
/// their request fields ([`crate::doc_rules`]).
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    crate::doc_rules::refine(&mut doc);
    doc
}

/// Swagger UI and the document it shows.
pub fn swagger() -> SwaggerUi {
    SwaggerUi::new("/swagger").external_url_unchecked("/swagger/openapi.json", document())
}
