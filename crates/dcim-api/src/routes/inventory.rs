//! dcim's inventory API: locations, racks, switches and PDUs with their ports, and
//! OS templates. All admin-only. A fake switch or PDU reports its ports when it is
//! created; a real one (SNMP) is read by `sync`, which can be repeated: ports are
//! matched by index, so their connections to servers stay.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dcim_core::installer::InstallerKind;
use dcim_core::validate::device_address;
use dcim_core::{DeviceProtocol, PortStatus, TemplateType};
use dcim_drivers::{DeviceAccess, DriverError};
use dcim_store::inventory::{DeviceKind, DeviceRow, NewDevice as StoreNewDevice, OsImage, OsInstaller, PortReport};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Body, ListParams, ListQueryDoc, Path};
use crate::wire::inventory::{
    Device, DeviceEdit, Location, LocationInput, NewDevice, NewOsTemplate, NewRack, OsTemplate, OsTemplateEdit,
    OutletPower, PduPort, PduPortEdit, PortAdmin, Rack, RackEdit, SnmpInput, SwitchPort, SwitchPortEdit,
};
use crate::wire::{Empty, Id, List};

type Created = (StatusCode, Json<Id>);

fn created(id: i64) -> Created {
    (StatusCode::CREATED, Json(Id { id }))
}

fn name(field: &str, raw: &str) -> ApiResult<String> {
    Ok(dcim_core::validate::name(field, raw)?)
}

fn line(field: &str, raw: &str, max: usize) -> ApiResult<String> {
    Ok(dcim_core::validate::line(field, raw, max)?)
}

// --- locations

#[utoipa::path(get, path = "/dci/v3/location", params(ListQueryDoc), tag = "inventory", responses((status = 200, body = List<Location>)))]
pub async fn list_locations(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Location>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_locations(&q).await?, Location::from)))
}

#[utoipa::path(get, path = "/dci/v3/location/{id}", tag = "inventory", responses((status = 200, body = Location)))]
pub async fn get_location(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Location>> {
    caller.require_admin()?;
    Ok(Json(st.store.get_location(id).await?.into()))
}

#[utoipa::path(post, path = "/dci/v3/location", tag = "inventory", request_body = LocationInput,
    responses((status = 201, body = Id)))]
pub async fn create_location(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<LocationInput>,
) -> ApiResult<Created> {
    caller.require_admin()?;
    let n = name("name", b.name.as_deref().unwrap_or(""))?;
    let geo = line("geolocation", b.geolocation.as_deref().unwrap_or(""), 256)?;
    Ok(created(st.store.create_location(&n, &geo, None).await?))
}

#[utoipa::path(post, path = "/dci/v3/location/{id}", tag = "inventory", request_body = LocationInput,
    responses((status = 200, body = Id)))]
pub async fn edit_location(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<LocationInput>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let n = b.name.as_deref().map(|n| name("name", n)).transpose()?;
    let geo = b.geolocation.as_deref().map(|g| line("geolocation", g, 256)).transpose()?;
    st.store.update_location(id, n.as_deref(), geo.as_deref()).await?;
    Ok(Json(Id { id }))
}

#[utoipa::path(delete, path = "/dci/v3/location/{id}", tag = "inventory", responses((status = 200, body = Id)))]
pub async fn delete_location(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_location(id).await?;
    Ok(Json(Id { id }))
}

// --- racks

fn rack_size(size: i64) -> ApiResult<i64> {
    if (1..=100).contains(&size) { Ok(size) } else { Err(ApiError::invalid("size", "must be 1 to 100 units")) }
}

#[utoipa::path(get, path = "/dci/v3/rack", params(ListQueryDoc), tag = "inventory", responses((status = 200, body = List<Rack>)))]
pub async fn list_racks(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Rack>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_racks(&q).await?, Rack::from)))
}

#[utoipa::path(get, path = "/dci/v3/rack/{id}", tag = "inventory", responses((status = 200, body = Rack)))]
pub async fn get_rack(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Rack>> {
    caller.require_admin()?;
    Ok(Json(st.store.get_rack(id).await?.into()))
}

#[utoipa::path(post, path = "/dci/v3/rack", tag = "inventory", request_body = NewRack, responses((status = 201, body = Id)))]
pub async fn create_rack(caller: Caller, State(st): State<AppState>, Body(b): Body<NewRack>) -> ApiResult<Created> {
    caller.require_admin()?;
    let n = name("name", &b.name)?;
    Ok(created(st.store.create_rack(&n, b.location_id, rack_size(b.size)?).await?))
}

#[utoipa::path(post, path = "/dci/v3/rack/{id}", tag = "inventory", request_body = RackEdit, responses((status = 200, body = Id)))]
pub async fn edit_rack(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<RackEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let n = b.name.as_deref().map(|n| name("name", n)).transpose()?;
    st.store.update_rack(id, n.as_deref(), b.size.map(rack_size).transpose()?).await?;
    Ok(Json(Id { id }))
}

#[utoipa::path(delete, path = "/dci/v3/rack/{id}", tag = "inventory", responses((status = 200, body = Id)))]
pub async fn delete_rack(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_rack(id).await?;
    Ok(Json(Id { id }))
}

// --- switches and PDUs

fn snmp_secret(protocol: DeviceProtocol, snmp: Option<SnmpInput>) -> ApiResult<String> {
    let s = snmp.unwrap_or_default();
    match protocol {
        DeviceProtocol::SnmpV2c if s.community.as_deref().unwrap_or("").is_empty() => {
            return Err(ApiError::invalid("snmp.community", "is required for snmp_v2c"));
        }
        DeviceProtocol::SnmpV3 if s.user.as_deref().unwrap_or("").is_empty() => {
            return Err(ApiError::invalid("snmp.user", "is required for snmp_v3"));
        }
        _ => {}
    }
    for (field, value, allowed) in [
        ("snmp.auth_protocol", &s.auth_protocol, &["md5", "sha", "sha224", "sha256", "sha384", "sha512"][..]),
        ("snmp.priv_protocol", &s.priv_protocol, &["des", "aes", "aes128", "aes192", "aes256"][..]),
    ] {
        if let Some(v) = value
            && !allowed.contains(&v.to_ascii_lowercase().as_str())
        {
            return Err(ApiError::invalid(field, format!("'{v}' is not one of {allowed:?}")));
        }
    }
    serde_json::to_string(&s).map_err(ApiError::internal_because)
}

fn driver_error(e: DriverError) -> ApiError {
    device_error("the device could not be read", e)
}

/// A driver's failure as the API answers it: 501 for what the device cannot do, else 503
/// with `doing` and the reason.
fn device_error(doing: &str, e: DriverError) -> ApiError {
    match e {
        DriverError::Unsupported(m) => ApiError::new(ErrorKind::NotImplemented, m),
        other => ApiError::new(ErrorKind::Unavailable, format!("{doing}: {other}")),
    }
}

/// How a driver reaches a switch or PDU: its address and its SNMP access data.
async fn device_access(st: &AppState, kind: DeviceKind, d: &DeviceRow) -> ApiResult<(DeviceProtocol, DeviceAccess)> {
    let secret = st.store.device_secret(kind, d.id).await?;
    Ok((d.protocol, DeviceAccess { address: d.ip.clone(), secret, location: Some(d.location_id) }))
}

async fn read_ports(
    st: &AppState,
    kind: DeviceKind,
    protocol: DeviceProtocol,
    model: &str,
    access: &DeviceAccess,
) -> Result<Vec<PortReport>, DriverError> {
    let drivers = &st.engine.drivers;
    Ok(match kind {
        DeviceKind::Switch => drivers
            .switch(protocol, access)?
            .ports()
            .await?
            .into_iter()
            .map(|p| PortReport {
                idx: p.index,
                name: p.name,
                description: p.description,
                alias: p.alias,
                admin_status: p.admin_status.as_str().into(),
                oper_status: p.oper_status.as_str().into(),
                speed: p.speed,
            })
            .collect(),
        DeviceKind::Pdu => drivers
            .pdu(protocol, model, access)?
            .outlets()
            .await?
            .into_iter()
            .map(|o| PortReport {
                idx: o.index,
                name: o.name,
                description: String::new(),
                alias: String::new(),
                admin_status: o.status.as_str().into(),
                oper_status: o.status.as_str().into(),
                speed: None,
            })
            .collect(),
    })
}

async fn create_device(st: &AppState, kind: DeviceKind, b: NewDevice) -> ApiResult<Created> {
    let protocol: DeviceProtocol = b.protocol.parse().map_err(|e| ApiError::invalid("protocol", e))?;
    let model = match kind {
        DeviceKind::Switch => String::new(),
        DeviceKind::Pdu => {
            let m = b.model.as_deref().map(str::trim).unwrap_or("");
            if m.is_empty() && protocol != DeviceProtocol::Fake {
                return Err(ApiError::invalid("model", "names the PDU's MIB family, e.g. apc_rpdu"));
            }
            if protocol != DeviceProtocol::Fake && dcim_drivers::snmp::pdu::family(m).is_none() {
                let known = dcim_drivers::snmp::pdu::models();
                return Err(ApiError::invalid("model", format!("'{m}' is not a PDU MIB family dcim knows: {known:?}")));
            }
            if m.is_empty() { "fake".to_owned() } else { m.to_owned() }
        }
    };
    let device = StoreNewDevice {
        name: name("name", &b.name)?,
        location_id: b.location_id,
        ip: device_address("ip", &b.ip)?,
        protocol,
        model,
        secret: snmp_secret(protocol, b.snmp)?,
    };
    // A fake device reports its ports at once; a real one is read by `sync`.
    let ports = if protocol == DeviceProtocol::Fake {
        let access = DeviceAccess {
            address: device.ip.clone(),
            secret: device.secret.clone(),
            location: Some(device.location_id),
        };
        read_ports(st, kind, protocol, &device.model, &access).await.map_err(driver_error)?
    } else {
        vec![]
    };
    Ok(created(st.store.create_device(kind, &device, &ports).await?))
}

async fn sync_device(st: &AppState, kind: DeviceKind, id: i64) -> ApiResult<Json<Id>> {
    let d = st.store.get_device(kind, id).await?;
    let (protocol, access) = device_access(st, kind, &d).await?;
    let ports = read_ports(st, kind, protocol, &d.model, &access).await.map_err(driver_error)?;
    st.store.sync_ports(kind, id, &ports).await?;
    Ok(Json(Id { id }))
}

async fn edit_device(st: &AppState, kind: DeviceKind, id: i64, b: DeviceEdit) -> ApiResult<Json<Id>> {
    let d = st.store.get_device(kind, id).await?;
    let protocol = d.protocol;
    let n = b.name.as_deref().map(|n| name("name", n)).transpose()?;
    let ip = b.ip.as_deref().map(|ip| device_address("ip", ip)).transpose()?;
    let secret = b.snmp.map(|s| snmp_secret(protocol, Some(s))).transpose()?;
    st.store.update_device(kind, id, n.as_deref(), ip.as_deref(), secret.as_deref()).await?;
    Ok(Json(Id { id }))
}

#[utoipa::path(get, path = "/dci/v3/switch", params(ListQueryDoc), tag = "inventory", responses((status = 200, body = List<Device>)))]
pub async fn list_switches(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Device>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_devices(DeviceKind::Switch, &q).await?, Device::switch)))
}

#[utoipa::path(get, path = "/dci/v3/switch/{id}", tag = "inventory", responses((status = 200, body = Device)))]
pub async fn get_switch(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Device>> {
    caller.require_admin()?;
    Ok(Json(Device::switch(st.store.get_device(DeviceKind::Switch, id).await?)))
}

#[utoipa::path(post, path = "/dci/v3/switch", tag = "inventory", request_body = NewDevice, responses((status = 201, body = Id)))]
pub async fn create_switch(caller: Caller, State(st): State<AppState>, Body(b): Body<NewDevice>) -> ApiResult<Created> {
    caller.require_admin()?;
    create_device(&st, DeviceKind::Switch, b).await
}

#[utoipa::path(post, path = "/dci/v3/switch/{id}", tag = "inventory", request_body = DeviceEdit, responses((status = 200, body = Id)))]
pub async fn edit_switch(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<DeviceEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    edit_device(&st, DeviceKind::Switch, id, b).await
}

#[utoipa::path(delete, path = "/dci/v3/switch/{id}", tag = "inventory", responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_switch(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_device(DeviceKind::Switch, id).await?;
    Ok(Json(Id { id }))
}

/// Re-read the switch's ports from the device, keeping existing connections.
#[utoipa::path(post, path = "/dci/v3/switch/{id}/sync", tag = "inventory", responses((status = 200, body = Id), (status = 501)))]
pub async fn sync_switch(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    sync_device(&st, DeviceKind::Switch, id).await
}

#[utoipa::path(get, path = "/dci/v3/switch/{id}/port", params(ListQueryDoc), tag = "inventory", responses((status = 200, body = List<SwitchPort>)))]
pub async fn list_switch_ports(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<SwitchPort>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_ports(DeviceKind::Switch, id, &q).await?, SwitchPort::from)))
}

#[utoipa::path(get, path = "/dci/v3/switch/{id}/port/{port_id}", tag = "inventory", responses((status = 200, body = SwitchPort), (status = 404)))]
pub async fn get_switch_port(
    caller: Caller,
    State(st): State<AppState>,
    Path((id, port_id)): Path<(i64, i64)>,
) -> ApiResult<Json<SwitchPort>> {
    caller.require_admin()?;
    Ok(Json(st.store.get_port(DeviceKind::Switch, id, port_id).await?.into()))
}

/// Bring a switch port up or down on the device (SNMP ifAdminStatus), whether or not a
/// server is connected to it: an operator's override, kept in the audit trail. A
/// suspended server's port brought up stays `suspended` in dcim until it is resumed.
#[utoipa::path(post, path = "/dci/v3/switch/{id}/port/{port_id}", tag = "inventory", request_body = SwitchPortEdit,
    responses((status = 200, body = SwitchPort), (status = 404), (status = 503)))]
pub async fn edit_switch_port(
    caller: Caller,
    State(st): State<AppState>,
    Path((id, port_id)): Path<(i64, i64)>,
    Body(b): Body<SwitchPortEdit>,
) -> ApiResult<Json<SwitchPort>> {
    caller.require_admin()?;
    let mut port = st.store.get_port(DeviceKind::Switch, id, port_id).await?;
    let d = st.store.get_device(DeviceKind::Switch, id).await?;
    let (protocol, access) = device_access(&st, DeviceKind::Switch, &d).await?;
    let switch = st.engine.drivers.switch(protocol, &access).map_err(driver_error)?;
    let after = if b.admin_status == PortAdmin::Up { PortStatus::Up } else { PortStatus::Down };
    switch
        .set_admin(port.idx, b.admin_status == PortAdmin::Up)
        .await
        .map_err(|e| device_error("the switch did not take the change", e))?;
    st.store.set_switch_port_admin(port.id, port.admin_status, after).await?;
    // The row as it now is: only its admin status changed.
    port.admin_status = after;
    Ok(Json(port.into()))
}

/// Switch a PDU outlet on or off, or off and on again (`reboot`), on the device,
/// whatever is plugged into it: an operator's override, kept in the audit trail. The
/// answer is the outlet as it now is.
#[utoipa::path(post, path = "/dci/v3/pdu/{id}/port/{port_id}", tag = "inventory", request_body = PduPortEdit,
    responses((status = 200, body = PduPort), (status = 404), (status = 503)))]
pub async fn edit_pdu_port(
    caller: Caller,
    State(st): State<AppState>,
    Path((id, port_id)): Path<(i64, i64)>,
    Body(b): Body<PduPortEdit>,
) -> ApiResult<Json<PduPort>> {
    caller.require_admin()?;
    let mut port = st.store.get_port(DeviceKind::Pdu, id, port_id).await?;
    let d = st.store.get_device(DeviceKind::Pdu, id).await?;
    let (protocol, access) = device_access(&st, DeviceKind::Pdu, &d).await?;
    let pdu = st.engine.drivers.pdu(protocol, &d.model, &access).map_err(driver_error)?;
    let done = match b.power_status {
        OutletPower::On => pdu.set_outlet(port.idx, true).await,
        OutletPower::Off => pdu.set_outlet(port.idx, false).await,
        OutletPower::Reboot => pdu.reboot_outlet(port.idx).await,
    };
    done.map_err(|e| device_error("the PDU did not take the change", e))?;
    let after = if b.power_status == OutletPower::Off { PortStatus::Down } else { PortStatus::Up };
    st.store.set_pdu_port_power(port.id, port.oper_status, after).await?;
    port.oper_status = after;
    Ok(Json(port.into()))
}

#[utoipa::path(get, path = "/dci/v3/pdu", params(ListQueryDoc), tag = "inventory", responses((status = 200, body = List<Device>)))]
pub async fn list_pdus(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Device>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_devices(DeviceKind::Pdu, &q).await?, Device::pdu)))
}

#[utoipa::path(get, path = "/dci/v3/pdu/{id}", tag = "inventory", responses((status = 200, body = Device)))]
pub async fn get_pdu(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Device>> {
    caller.require_admin()?;
    Ok(Json(Device::pdu(st.store.get_device(DeviceKind::Pdu, id).await?)))
}

#[utoipa::path(post, path = "/dci/v3/pdu", tag = "inventory", request_body = NewDevice, responses((status = 201, body = Id)))]
pub async fn create_pdu(caller: Caller, State(st): State<AppState>, Body(b): Body<NewDevice>) -> ApiResult<Created> {
    caller.require_admin()?;
    create_device(&st, DeviceKind::Pdu, b).await
}

#[utoipa::path(post, path = "/dci/v3/pdu/{id}", tag = "inventory", request_body = DeviceEdit, responses((status = 200, body = Id)))]
pub async fn edit_pdu(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<DeviceEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    edit_device(&st, DeviceKind::Pdu, id, b).await
}

#[utoipa::path(delete, path = "/dci/v3/pdu/{id}", tag = "inventory", responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_pdu(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_device(DeviceKind::Pdu, id).await?;
    Ok(Json(Id { id }))
}

/// Re-read the PDU's outlets from the device, keeping existing connections.
#[utoipa::path(post, path = "/dci/v3/pdu/{id}/sync", tag = "inventory", responses((status = 200, body = Id), (status = 501)))]
pub async fn sync_pdu(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    sync_device(&st, DeviceKind::Pdu, id).await
}

#[utoipa::path(get, path = "/dci/v3/pdu/{id}/port", params(ListQueryDoc), tag = "inventory", responses((status = 200, body = List<PduPort>)))]
pub async fn list_pdu_ports(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<PduPort>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_ports(DeviceKind::Pdu, id, &q).await?, PduPort::from)))
}

// --- OS templates

fn tags(t: &[String]) -> ApiResult<String> {
    if t.iter().any(|t| t.trim().is_empty() || t.len() > 64) {
        return Err(ApiError::invalid("tags", "each tag must be 1 to 64 characters"));
    }
    serde_json::to_string(t).map_err(ApiError::internal_because)
}

fn http_url(field: &str, url: &str) -> ApiResult<()> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    let ok_url = host.is_some_and(|h| !h.is_empty() && !h.starts_with(':'))
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok_url {
        return Err(ApiError::invalid(field, format!("'{url}' is not an http or https URL")));
    }
    Ok(())
}

/// The installer fields: none given, or a kind with its kernel and initrd URLs
/// (and optionally the answer-file text).
fn installer(
    kind: Option<&str>,
    kernel: Option<&str>,
    initrd: Option<&str>,
    template: Option<&str>,
) -> ApiResult<Option<OsInstaller>> {
    let Some(kind) = kind else {
        for (f, v) in [("installer_kernel", kernel), ("installer_initrd", initrd), ("installer_template", template)] {
            if v.is_some() {
                return Err(ApiError::invalid(f, "only for a template with an installer"));
            }
        }
        return Ok(None);
    };
    let kind: InstallerKind = kind.trim().parse().map_err(|e| ApiError::invalid("installer", e))?;
    let kernel =
        kernel.map(str::trim).ok_or_else(|| ApiError::invalid("installer_kernel", "required with installer"))?;
    let initrd =
        initrd.map(str::trim).ok_or_else(|| ApiError::invalid("installer_initrd", "required with installer"))?;
    http_url("installer_kernel", kernel)?;
    http_url("installer_initrd", initrd)?;
    if template.is_some_and(|t| t.trim().is_empty() || t.len() > 65536) {
        return Err(ApiError::invalid("installer_template", "must be 1 to 65536 bytes (null for the default)"));
    }
    Ok(Some(OsInstaller {
        kind: kind.as_str().to_owned(),
        kernel: kernel.to_owned(),
        initrd: initrd.to_owned(),
        template: template.map(str::to_owned),
    }))
}

/// A template has an image or an installer, and only an `os` template has either.
fn check_boot(kind: TemplateType, image: bool, installer: bool) -> ApiResult<()> {
    if image && installer {
        return Err(ApiError::invalid("installer", "an OS template has an image or an installer, not both"));
    }
    if installer && kind != TemplateType::Os {
        return Err(ApiError::invalid("installer", "only an os template boots an installer"));
    }
    Ok(())
}

/// The image pair: both given (an http(s) URL or `/images/FILE`, and 64 hex digits, kept
/// lowercase) or neither.
fn image(url: Option<&str>, sha256: Option<&str>) -> ApiResult<Option<OsImage>> {
    let (url, sha256) = match (url, sha256) {
        (None, None) => return Ok(None),
        (Some(u), Some(h)) => (u.trim(), h.trim()),
        (Some(_), None) => return Err(ApiError::invalid("image_sha256", "required with image_url")),
        (None, Some(_)) => return Err(ApiError::invalid("image_url", "required with image_sha256")),
    };
    match url.strip_prefix("/images/") {
        // An image in dcim's own images directory, fetched from the listener the
        // agent reports to.
        Some(file) => {
            let ok = !file.is_empty()
                && !file.starts_with('.')
                && file.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(ApiError::invalid(
                    "image_url",
                    "/images/ is followed by a file name (letters, digits, . _ -)",
                ));
            }
        }
        None => http_url("image_url", url)?,
    }
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid("image_sha256", "must be 64 hexadecimal digits (a SHA-256)"));
    }
    Ok(Some(OsImage { url: url.to_owned(), sha256: sha256.to_ascii_lowercase() }))
}

#[utoipa::path(get, path = "/dci/v3/os_template", params(ListQueryDoc), tag = "inventory", responses((status = 200, body = List<OsTemplate>)))]
pub async fn list_os_templates(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<OsTemplate>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_os_templates(&q).await?, OsTemplate::from)))
}

#[utoipa::path(get, path = "/dci/v3/os_template/{id}", tag = "inventory", responses((status = 200, body = OsTemplate)))]
pub async fn get_os_template(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<OsTemplate>> {
    caller.require_admin()?;
    Ok(Json(st.store.get_os_template(id).await?.into()))
}

#[utoipa::path(post, path = "/dci/v3/os_template", tag = "inventory", request_body = NewOsTemplate, responses((status = 201, body = Id)))]
pub async fn create_os_template(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<NewOsTemplate>,
) -> ApiResult<Created> {
    caller.require_admin()?;
    let kind: TemplateType = b.kind.parse().map_err(|e| ApiError::invalid("type", e))?;
    let n = name("name", &b.name)?;
    let img = image(b.image_url.as_deref(), b.image_sha256.as_deref())?;
    let inst = installer(
        b.installer.as_deref(),
        b.installer_kernel.as_deref(),
        b.installer_initrd.as_deref(),
        b.installer_template.as_deref(),
    )?;
    check_boot(kind, img.is_some(), inst.is_some())?;
    let t = tags(&b.tags)?;
    Ok(created(st.store.create_os_template(&n, kind, &t, b.efi, img.as_ref(), inst.as_ref()).await?))
}

#[utoipa::path(post, path = "/dci/v3/os_template/{id}", tag = "inventory", request_body = OsTemplateEdit, responses((status = 200, body = Id)))]
pub async fn edit_os_template(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<OsTemplateEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let n = b.name.as_deref().map(|n| name("name", n)).transpose()?;
    let t = b.tags.as_deref().map(tags).transpose()?;
    let img = match (b.image_url, b.image_sha256) {
        (None, None) => None,
        (Some(None), Some(None)) => Some(None),
        (u, h) => Some(Some(image(u.flatten().as_deref(), h.flatten().as_deref())?.ok_or_else(|| {
            ApiError::invalid("image_url", "image_url and image_sha256 are set or cleared together")
        })?)),
    };
    let touches_installer = b.installer.is_some()
        || b.installer_kernel.is_some()
        || b.installer_initrd.is_some()
        || b.installer_template.is_some();
    let cur = st.store.get_os_template(id).await?;
    let cur_installer = cur.installer.is_some();
    // The installer fields are merged with the template's, then checked as a whole.
    let inst = if touches_installer {
        let kind = b.installer.unwrap_or(cur.installer);
        let (kernel, initrd, template) = if kind.is_none() {
            (b.installer_kernel.flatten(), b.installer_initrd.flatten(), b.installer_template.flatten())
        } else {
            (
                b.installer_kernel.unwrap_or(cur.installer_kernel),
                b.installer_initrd.unwrap_or(cur.installer_initrd),
                b.installer_template.unwrap_or(cur.installer_template),
            )
        };
        Some(installer(kind.as_deref(), kernel.as_deref(), initrd.as_deref(), template.as_deref())?)
    } else {
        None
    };
    let has_image = img.as_ref().map_or(cur.image_url.is_some(), Option::is_some);
    let has_installer = inst.as_ref().map_or(cur_installer, Option::is_some);
    check_boot(cur.kind, has_image, has_installer)?;
    let (img, inst) = (img.as_ref().map(Option::as_ref), inst.as_ref().map(Option::as_ref));
    st.store.update_os_template(id, n.as_deref(), t.as_deref(), b.efi, img, inst).await?;
    Ok(Json(Id { id }))
}

#[utoipa::path(delete, path = "/dci/v3/os_template/{id}", tag = "inventory", responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_os_template(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_os_template(id).await?;
    Ok(Json(Id { id }))
}
