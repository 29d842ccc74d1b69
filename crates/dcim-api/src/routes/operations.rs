//! The seed's operations (power, suspend and resume, diagnostics, disk clearing,
//! OS install), their tasks, the abort call, the agents' report route, and the
//! admin controls of the fake device set.
//!
//! A handler validates everything it can before the task exists: a bad body never
//! leaves a task behind.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use dcim_core::configuration::HardwareInfo;
use dcim_core::{ClearMode, IpPurpose, RaidLevel, ReportKind, TemplateType, UnknownValue};
use dcim_drivers::fake::{Fault, LabView, OPS};
use dcim_store::ids::{ServerId, TaskId};
use dcim_store::ipam::{IpnetRow, NewIp, Source, Take, Taken};
use dcim_tasks::Operation;
use dcim_tasks::ops::{BmcIp, BmcSetup, BootDeviceChoice, ClearHdd, Diag, InstallOs, InstallerSpec, raid_disks};
use serde::Deserialize;

use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Caller, hash_secret};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Body, ListParams, ListQueryDoc, Path};
use crate::wire::task::{AgentReport, ClearHddRequest, DiagRequest, OsRequest, Task, TaskAnswer};
use crate::wire::{Empty, List};

/// Starts `op` on a server the caller may see (404 otherwise).
async fn start(st: &AppState, caller: &Caller, server_id: ServerId, op: Operation) -> ApiResult<Json<TaskAnswer>> {
    st.store.check_server(server_id, &caller.server_scope()).await?;
    let task = st.engine.submit(server_id, &op).await?.get();
    tracing::info!(server = server_id.get(), task, op = op.name(), by = caller.user_id.get(), "operation started");
    Ok(Json(TaskAnswer { id: server_id.get(), task }))
}

/// Power on.
#[utoipa::path(post, path = "/dci/v3/server/{id}/power_on", tag = "operations", responses((status = 200, body = TaskAnswer), (status = 409)))]
pub async fn power_on(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    start(&st, &caller, id, Operation::PowerOn).await
}

/// Power off.
#[utoipa::path(post, path = "/dci/v3/server/{id}/power_off", tag = "operations", responses((status = 200, body = TaskAnswer), (status = 409)))]
pub async fn power_off(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    start(&st, &caller, id, Operation::PowerOff).await
}

/// Reboot (or power on a server that is off).
#[utoipa::path(post, path = "/dci/v3/server/{id}/power_reset", tag = "operations", responses((status = 200, body = TaskAnswer), (status = 409)))]
pub async fn power_reset(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    start(&st, &caller, id, Operation::PowerReset).await
}

/// The next boot device: `pxe` or `disk`, once or `persistent`; `efi` defaults to the
/// server's boot mode.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootDeviceRequest {
    pub device: String,
    #[serde(default)]
    pub persistent: bool,
    pub efi: Option<bool>,
}

/// Set the server's next boot device at its BMC (not in DCImanager's API; as Ironic's
/// `management/boot_device`).
#[utoipa::path(post, path = "/dci/v3/server/{id}/boot_device", tag = "operations", request_body = BootDeviceRequest,
    responses((status = 200, body = TaskAnswer), (status = 409), (status = 422)))]
pub async fn boot_device(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<BootDeviceRequest>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    caller.require_admin()?;
    let pxe = match b.device.as_str() {
        "pxe" => true,
        "disk" => false,
        other => return Err(ApiError::invalid("device", format!("'{other}' is not one of pxe, disk"))),
    };
    start(&st, &caller, id, Operation::BootDevice(BootDeviceChoice { pxe, efi: b.efi, persistent: b.persistent })).await
}

/// Shut the server's switch ports (all but its BMC's).
#[utoipa::path(post, path = "/dci/v3/server/{id}/suspend", tag = "operations", responses((status = 200, body = TaskAnswer), (status = 409)))]
pub async fn suspend(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    caller.require_admin()?;
    start(&st, &caller, id, Operation::Suspend).await
}

/// Open the server's switch ports again.
#[utoipa::path(post, path = "/dci/v3/server/{id}/resume", tag = "operations", responses((status = 200, body = TaskAnswer), (status = 409)))]
pub async fn resume(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    caller.require_admin()?;
    start(&st, &caller, id, Operation::Resume).await
}

fn clear_mode(v: &str) -> ApiResult<ClearMode> {
    v.parse().map_err(|_| ApiError::invalid("clear_hdd", format!("'{v}' is not one of none, simple, full")))
}

/// Diagnostics: boot the diagnostics template, collect hardware, optionally wipe.
#[utoipa::path(post, path = "/dci/v3/server/{id}/operation_diag", tag = "operations", request_body = DiagRequest,
    responses((status = 200, body = TaskAnswer), (status = 409), (status = 422)))]
pub async fn operation_diag(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<DiagRequest>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    caller.require_admin()?;
    let clear_hdd = clear_mode(&b.clear_hdd)?;
    let pool = b.ipmi_pool.filter(|p| *p != 0);
    if pool.is_some() && !b.setup_ipmi {
        return Err(ApiError::invalid("ipmi_pool", "is used only with setup_ipmi: true"));
    }
    let template = match b.os_template_id.filter(|t| *t != 0) {
        Some(t) => {
            let tpl = st.store.get_os_template(t).await?;
            if tpl.kind != TemplateType::Diag {
                return Err(ApiError::invalid("os_template_id", format!("template {t} is not a diagnostics template")));
            }
            tpl.name
        }
        None => {
            let q = dcim_core::query::ListQuery::parse(Some("type EQ diag"), None, Some("1")).expect("valid query");
            let found = st.store.list_os_templates(&q).await?;
            found
                .items
                .into_iter()
                .next()
                .map(|t| t.name)
                .ok_or_else(|| ApiError::conflict("there is no diagnostics template; add one (type diag) first"))?
        }
    };
    if !b.setup_ipmi {
        return start(&st, &caller, id, Operation::Diag(Diag { template, clear_hdd, setup_ipmi: None })).await;
    }
    // setup_ipmi: the BMC's address from ipmi_pool is taken with the task, in one
    // transaction (the request fails if the pool has none, or the server is busy, and
    // then nothing is taken), given by the agent, and confirmed when dcim reaches it.
    let Some(pool) = pool else {
        let op = Operation::Diag(Diag { template, clear_hdd, setup_ipmi: Some(BmcSetup { ip: None }) });
        return start(&st, &caller, id, op).await;
    };
    st.store.check_server(id, &caller.server_scope()).await?;
    match st.store.get_pool(pool).await {
        Ok(_) => {}
        Err(dcim_store::StoreError::NotFound { .. }) => {
            return Err(ApiError::invalid("ipmi_pool", format!("there is no IP pool {pool}")));
        }
        Err(e) => return Err(e.into()),
    }
    let nets = st.store.ipnets_plain().await?;
    let new = NewIp::for_server(id, 2, String::new(), IpPurpose::Ipmi);
    let op = |t: &Taken| {
        let ip = bmc_ip(&nets, t)?;
        Ok(Operation::Diag(Diag { template, clear_hdd, setup_ipmi: Some(BmcSetup { ip: Some(ip) }) }))
    };
    let take = Take::Next(Source::Pool(pool));
    let reserved = crate::routes::ip::reserved(&nets, 2);
    let (task, _) = st.engine.submit_taking_ip(id, &new, &take, reserved, op).await?;
    tracing::info!(server = id.get(), task = task.get(), op = "diag", by = caller.user_id.get(), "operation started");
    Ok(Json(TaskAnswer { id: id.get(), task: task.get() }))
}

/// The BMC's static address: the address taken, with its network's netmask and gateway.
fn bmc_ip(nets: &[IpnetRow], t: &Taken) -> Result<BmcIp, dcim_store::StoreError> {
    let net = nets.iter().find(|n| n.id == t.ipnet_id).ok_or_else(|| {
        dcim_store::StoreError::Conflict(format!(
            "network {} of address {} was just deleted; retry",
            t.ipnet_id, t.name
        ))
    })?;
    let mask = u32::MAX.checked_shl(32 - net.prefix.clamp(0, 32) as u32).unwrap_or(0);
    Ok(BmcIp {
        ip_id: t.id,
        address: t.name.clone(),
        netmask: std::net::Ipv4Addr::from(mask).to_string(),
        gateway: net.gateway.clone(),
    })
}

/// Clear the server's disks.
#[utoipa::path(post, path = "/dci/v3/server/{id}/operation_clear_hdd", tag = "operations", request_body = ClearHddRequest,
    responses((status = 200, body = TaskAnswer), (status = 409), (status = 422)))]
pub async fn operation_clear_hdd(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<ClearHddRequest>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    let clear_hdd = clear_mode(&b.clear_hdd)?;
    start(&st, &caller, id, Operation::ClearHdd(ClearHdd { clear_hdd })).await
}

/// Install an operating system.
#[utoipa::path(post, path = "/dci/v3/server/{id}/operation_os", tag = "operations", request_body = OsRequest,
    responses((status = 200, body = TaskAnswer), (status = 409), (status = 422)))]
pub async fn operation_os(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<OsRequest>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    let server = st.store.get_server(id, &caller.server_scope()).await?.server;
    let raid: RaidLevel = b.hdd_raid.parse().map_err(|_| {
        ApiError::invalid(
            "hdd_raid",
            format!("'{}' is not one of no_raid, raid_0, raid_1, raid_5, raid_10", b.hdd_raid),
        )
    })?;
    let tpl = match st.store.get_os_template(b.os_template_id).await {
        Ok(t) => t,
        Err(dcim_store::StoreError::NotFound { .. }) => {
            return Err(ApiError::invalid("os_template_id", format!("there is no OS template {}", b.os_template_id)));
        }
        Err(e) => return Err(e.into()),
    };
    if tpl.kind != TemplateType::Os {
        return Err(ApiError::invalid(
            "os_template_id",
            format!("template {} ({}) is a {} template, not an OS", tpl.id, tpl.name, tpl.kind),
        ));
    }
    // An image to write, or an installer to boot.
    let installer = match (tpl.installer, tpl.installer_kernel, tpl.installer_initrd) {
        (Some(kind), Some(kernel), Some(initrd)) => {
            Some(Box::new(InstallerSpec { kind, kernel, initrd, template: tpl.installer_template }))
        }
        _ => None,
    };
    let (image_url, image_sha256) = match (tpl.image_url, tpl.image_sha256) {
        (Some(u), Some(h)) if installer.is_none() => (u, h),
        _ if installer.is_some() => (String::new(), String::new()),
        _ => {
            return Err(ApiError::invalid(
                "os_template_id",
                format!(
                    "OS template {} ({}) has no image or installer to install; set its image_url and image_sha256, \
                     or its installer",
                    tpl.id, tpl.name
                ),
            ));
        }
    };
    let n = b.password.chars().count();
    if n == 0 || n > 256 || b.password.chars().any(char::is_control) {
        return Err(ApiError::invalid("password", "must be 1 to 256 printable characters"));
    }
    for (i, k) in b.ssh_pub_keys.iter().enumerate() {
        ssh_key::PublicKey::from_openssh(k.trim())
            .map_err(|e| ApiError::invalid(&format!("ssh_pub_keys[{i}]"), format!("not an OpenSSH public key: {e}")))?;
    }
    // The RAID needs identical disks (same size and type).
    let hw: HardwareInfo = serde_json::from_str(&server.hardware_info).unwrap_or_default();
    let disks = raid_disks(&hw, raid).map_err(ApiError::conflict)?;
    let password = b.password;
    let password_hash = tokio::task::spawn_blocking(move || {
        sha_crypt::sha512_simple(&password, &sha_crypt::Sha512Params::default()).map_err(|_| ())
    })
    .await
    .map_err(|e| ApiError::internal_because(format!("the password hashing thread failed: {e}")))?
    .map_err(|()| ApiError::internal_because("hashing the root password (SHA-512 crypt) failed"))?;
    let given = b.hostname.as_deref().map(|h| dcim_core::validate::domain_name("hostname", h)).transpose()?;
    let hostname = match given.filter(|h| !h.is_empty()) {
        Some(h) => h,
        None if server.domain.is_empty() => server.name.clone(),
        None => server.domain.clone(),
    };
    let op = Operation::InstallOs(InstallOs {
        template_id: tpl.id,
        template: tpl.name,
        raid,
        hostname,
        password_hash,
        ssh_keys: b.ssh_pub_keys.iter().map(|k| k.trim().to_owned()).collect(),
        disks,
        image_url,
        image_sha256,
        installer,
    });
    start(&st, &caller, id, op).await
}

/// Abort the server's running operation; it unwinds and ends `canceled`.
#[utoipa::path(delete, path = "/dci/v3/server/{id}/operation", tag = "operations",
    responses((status = 200, body = TaskAnswer), (status = 404)))]
pub async fn abort_operation(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    st.store.check_server(id, &caller.server_scope()).await?;
    match st.engine.abort(id).await? {
        Some(task) => Ok(Json(TaskAnswer { id: id.get(), task: task.get() })),
        None => Err(ApiError::not_found("running operation of server", id)),
    }
}

/// List tasks (a `@user` sees those of its servers).
#[utoipa::path(get, path = "/dci/v3/task", params(ListQueryDoc), tag = "operations", responses((status = 200, body = List<Task>)))]
pub async fn list_tasks(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Task>>> {
    Ok(Json(List::from_page(st.store.list_tasks(&q, &caller.server_scope()).await?, Task::from)))
}

/// One task.
#[utoipa::path(get, path = "/dci/v3/task/{id}", tag = "operations", responses((status = 200, body = Task), (status = 404)))]
pub async fn get_task(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Task>> {
    Ok(Json(st.store.get_task(TaskId(id), &caller.server_scope()).await?.into()))
}

/// The in-band agent reports a step, authenticated by its task's secret (Bearer),
/// never by a user session.
#[utoipa::path(post, path = "/agent/v1/task/{id}/report", tag = "agent", request_body = AgentReport,
    security(()), responses((status = 200, body = Empty), (status = 404)))]
pub async fn agent_report(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Body(b): Body<AgentReport>,
) -> ApiResult<Json<Empty>> {
    let secret = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("an agent report needs its task's secret as a Bearer token"))?;
    let kind: ReportKind = b
        .kind
        .parse()
        .map_err(|e: UnknownValue| ApiError::invalid("kind", format!("'{}' is not one of {:?}", b.kind, e.allowed)))?;
    if !b.data.is_object() {
        return Err(ApiError::bad_request("data: must be a JSON object"));
    }
    if kind == ReportKind::Hardware {
        crate::extract::typed::<HardwareInfo>(&b.data).map_err(|e| ApiError::invalid("data", e))?;
    }
    if !st.store.add_task_report(TaskId(id), &hash_secret(secret.trim()), kind, &b.data.to_string()).await? {
        return Err(ApiError::not_found("running task with that secret", id));
    }
    st.engine.nudge();
    Ok(Json(Empty {}))
}

/// The fake lab. Its routes exist only when its drivers are on; this answers for a
/// caller that reached a handler some other way (the UI).
pub fn lab(st: &AppState) -> ApiResult<&std::sync::Arc<dcim_drivers::fake::FakeLab>> {
    st.engine
        .drivers
        .fake
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "the fake drivers are off in this server"))
}

/// The fake devices' state (admin; only where the fake drivers are on: the demo, tests).
#[utoipa::path(get, path = "/dci/v3/fake", tag = "fake", responses((status = 200, body = Object)))]
pub async fn fake_state(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let v: LabView = lab(&st)?.view();
    Ok(Json(serde_json::to_value(v).map_err(ApiError::internal_because)?))
}

/// A fault to inject into fake devices.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FaultRequest {
    /// A device address (BMC address, switch or PDU `ip`, `boot`, `agent:<mac>`) or `*`.
    pub device: String,
    /// The operation to break, or `*`.
    pub op: String,
    /// How many calls fail; absent: until cleared.
    pub times: Option<u32>,
    #[serde(default)]
    pub transient: bool,
    pub message: Option<String>,
    /// Let this many matching calls through first.
    #[serde(default)]
    pub skip: u32,
}

/// Inject a failure into the fake devices (admin; fake drivers only).
#[utoipa::path(post, path = "/dci/v3/fake/fault", tag = "fake", request_body = FaultRequest, responses((status = 200, body = Empty)))]
pub async fn fake_fault(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<FaultRequest>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    if b.op != "*" && !OPS.contains(&b.op.as_str()) {
        return Err(ApiError::invalid("op", format!("'{}' is not one of {OPS:?} or *", b.op)));
    }
    lab(&st)?.add_fault(Fault {
        device: b.device,
        op: b.op,
        times: b.times,
        transient: b.transient,
        message: b.message,
        skip: b.skip,
    });
    Ok(Json(Empty {}))
}

/// Remove every injected failure (admin; fake drivers only).
#[utoipa::path(delete, path = "/dci/v3/fake/fault", tag = "fake", responses((status = 200, body = Empty)))]
pub async fn fake_clear_faults(
    caller: Caller,
    State(st): State<AppState>,
    _body: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    lab(&st)?.clear_faults();
    Ok(Json(Empty {}))
}

/// How long fake devices take.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DelayRequest {
    pub ms: u64,
    /// One device, or every device when absent.
    pub device: Option<String>,
}

/// Set the fake devices' delay (admin; fake drivers only).
#[utoipa::path(post, path = "/dci/v3/fake/delay", tag = "fake", request_body = DelayRequest, responses((status = 200, body = Empty)))]
pub async fn fake_delay(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<DelayRequest>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    if b.ms > 600_000 {
        return Err(ApiError::invalid("ms", "at most 600000"));
    }
    lab(&st)?.set_delay(b.device.as_deref(), std::time::Duration::from_millis(b.ms));
    Ok(Json(Empty {}))
}

/// What the fake agent reports as a machine's hardware.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FakeHardwareRequest {
    pub mac: String,
    #[schema(value_type = Object)]
    pub hardware: serde_json::Value,
}

/// Set the hardware the fake agent finds on a machine (admin; fake drivers only).
#[utoipa::path(post, path = "/dci/v3/fake/hardware", tag = "fake", request_body = FakeHardwareRequest, responses((status = 200, body = Empty)))]
pub async fn fake_hardware(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<FakeHardwareRequest>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    let mac = dcim_core::Mac::parse("mac", &b.mac)?;
    crate::extract::typed::<HardwareInfo>(&b.hardware).map_err(|e| ApiError::invalid("hardware", e))?;
    lab(&st)?.set_hardware(&mac.to_string(), b.hardware);
    Ok(Json(Empty {}))
}
