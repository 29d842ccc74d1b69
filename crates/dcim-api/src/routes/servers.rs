//! `/dci/v3/server`: the seed's reads and owner calls, and dcim's server inventory
//! (create, edit, delete, connections, hardware by hand).

use axum::Json;
use axum::extract::State;
use dcim_core::configuration::{HardwareInfo, generate};
use dcim_core::validate::{device_address, domain_name, redfish_address};
use dcim_core::{BmcType, Mac};
use dcim_store::servers::{BmcAccess, NewServer as StoreNewServer, ServerPatch};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, ListParams, Path};
use crate::wire::inventory::HardwareInput;
use crate::wire::server::{
    Configuration, IpmiInput, NewServer, OwnerRequest, PduConnectionRequest, Server, ServerEdit,
    SwitchConnectionRequest,
};
use crate::wire::{Empty, Id, List};

/// Number of free servers per configuration.
#[utoipa::path(get, path = "/dci/v3/server/configuration", tag = "servers",
    responses((status = 200, body = List<Configuration>)))]
pub async fn server_configuration(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Configuration>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.configuration_counts(&q).await?, Configuration::from)))
}

/// List servers (a `@user` sees its own).
#[utoipa::path(get, path = "/dci/v3/server", tag = "servers", responses((status = 200, body = List<Server>)))]
pub async fn list_servers(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Server>>> {
    let page = st.store.list_servers(&q, &caller.server_scope()).await?;
    Ok(Json(List::from_page(page, Server::from)))
}

/// One server (another user's is a 404).
#[utoipa::path(get, path = "/dci/v3/server/{id}", tag = "servers", responses((status = 200, body = Server), (status = 404)))]
pub async fn get_server(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Server>> {
    Ok(Json(st.store.get_server(id, &caller.server_scope()).await?.into()))
}

/// Make a user the server's owner.
#[utoipa::path(post, path = "/dci/v3/server/{id}/owner", tag = "servers", request_body = OwnerRequest,
    responses((status = 200, body = Id), (status = 409)))]
pub async fn set_owner(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<OwnerRequest>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.assign_owner(id, b.owner).await?;
    tracing::info!(server = id, owner = b.owner, by = caller.user_id, "server assigned");
    Ok(Json(Id { id }))
}

/// Release the server.
#[utoipa::path(delete, path = "/dci/v3/server/{id}/owner", tag = "servers", responses((status = 200, body = Id)))]
pub async fn release_owner(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.release_owner(id).await?;
    tracing::info!(server = id, by = caller.user_id, "server released");
    Ok(Json(Id { id }))
}

fn bmc(input: IpmiInput) -> ApiResult<BmcAccess> {
    let kind: BmcType = input.kind.parse().map_err(|e| ApiError::invalid("ipmi.type", e))?;
    let address = match kind {
        BmcType::Redfish => redfish_address("ipmi.address", &input.address)?,
        _ => device_address("ipmi.address", &input.address)?,
    };
    Ok(BmcAccess {
        address,
        kind: kind.as_str().to_owned(),
        user: input.user,
        password: input.password,
        web_url: input.web_url.filter(|u| !u.trim().is_empty()),
    })
}

fn name(field: &str, raw: &str) -> ApiResult<String> {
    Ok(dcim_core::validate::name(field, raw)?)
}

/// Add a server.
#[utoipa::path(post, path = "/dci/v3/server", tag = "inventory", request_body = NewServer,
    responses((status = 201, body = Id)))]
pub async fn create_server(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<NewServer>,
) -> ApiResult<(axum::http::StatusCode, Json<Id>)> {
    caller.require_admin()?;
    let s = StoreNewServer {
        name: name("name", &b.name)?,
        location_id: b.location_id,
        rack_id: b.rack_id,
        unit: b.unit,
        mac: b.mac.as_deref().map(|m| Mac::parse("mac", m).map(|m| m.to_string())).transpose()?,
        domain: domain_name("domain", &b.domain)?,
        bmc: b.ipmi.map(bmc).transpose()?,
    };
    let id = st.store.create_server(&s).await?;
    Ok((axum::http::StatusCode::CREATED, Json(Id { id })))
}

/// Edit a server: only the fields given change.
#[utoipa::path(post, path = "/dci/v3/server/{id}", tag = "inventory", request_body = ServerEdit,
    responses((status = 200, body = Id)))]
pub async fn edit_server(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<ServerEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let patch = ServerPatch {
        name: b.name.as_deref().map(|n| name("name", n)).transpose()?,
        domain: b.domain.as_deref().map(|d| domain_name("domain", d)).transpose()?,
        mac: b
            .mac
            .map(|m| m.as_deref().map(|m| Mac::parse("mac", m).map(|m| m.to_string())).transpose())
            .transpose()?,
        rack_id: b.rack_id,
        unit: b.unit,
        bmc: b.ipmi.map(|i| i.map(bmc).transpose()).transpose()?,
        custom_configuration: b.configuration.map(|c| c.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty())),
        is_new: b.is_new,
    };
    st.store.update_server(id, &patch).await?;
    Ok(Json(Id { id }))
}

/// Delete a server; refused (409) while it has an owner.
#[utoipa::path(delete, path = "/dci/v3/server/{id}", tag = "inventory", responses((status = 200, body = Id)))]
pub async fn delete_server(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_server(id).await?;
    Ok(Json(Id { id }))
}

/// Set the server's hardware by hand; the configuration is generated from it.
#[utoipa::path(post, path = "/dci/v3/server/{id}/hardware_info", tag = "inventory",
    request_body = Object, responses((status = 200, body = Id)))]
pub async fn set_hardware_info(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<HardwareInput>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    if !b.is_object() {
        return Err(ApiError::bad_request("body: hardware_info must be a JSON object"));
    }
    let hw: HardwareInfo = serde_json::from_value(b.clone()).map_err(|e| ApiError::invalid("hardware_info", e))?;
    let configuration = generate(&hw);
    st.store.set_hardware_info(id, &b.to_string(), configuration.as_deref()).await?;
    Ok(Json(Id { id }))
}

/// Connect the server to a switch port.
#[utoipa::path(post, path = "/dci/v3/server/{id}/switch_connection", tag = "inventory",
    request_body = SwitchConnectionRequest, responses((status = 200, body = Id), (status = 409)))]
pub async fn connect_switch(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<SwitchConnectionRequest>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let cid = st.store.connect_switch_port(id, b.port, b.is_ipmi_connection).await?;
    Ok(Json(Id { id: cid }))
}

/// Connect the server to a PDU outlet.
#[utoipa::path(post, path = "/dci/v3/server/{id}/pdu_connection", tag = "inventory",
    request_body = PduConnectionRequest, responses((status = 200, body = Id), (status = 409)))]
pub async fn connect_pdu(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<PduConnectionRequest>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let cid = st.store.connect_pdu_port(id, b.port).await?;
    Ok(Json(Id { id: cid }))
}

/// Remove a switch connection.
#[utoipa::path(delete, path = "/dci/v3/server/{id}/switch_connection/{connection_id}", tag = "inventory",
    responses((status = 200, body = Id)))]
pub async fn disconnect_switch(
    caller: Caller,
    State(st): State<AppState>,
    Path((id, cid)): Path<(i64, i64)>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.disconnect(id, cid, false).await?;
    Ok(Json(Id { id: cid }))
}

/// Remove a PDU connection.
#[utoipa::path(delete, path = "/dci/v3/server/{id}/pdu_connection/{connection_id}", tag = "inventory",
    responses((status = 200, body = Id)))]
pub async fn disconnect_pdu(
    caller: Caller,
    State(st): State<AppState>,
    Path((id, cid)): Path<(i64, i64)>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.disconnect(id, cid, true).await?;
    Ok(Json(Id { id: cid }))
}
