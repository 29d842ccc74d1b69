//! `/dci/v3/server`: the seed's reads and owner calls, and dcim's server inventory
//! (create, edit, delete, connections, hardware by hand).

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dcim_core::configuration::{HardwareInfo, generate};
use dcim_core::validate::{device_address, domain_name, redfish_address};
use dcim_core::{BmcType, Mac};
use dcim_store::StoreError;
use dcim_store::ids::{ServerId, UserId};
use dcim_store::servers::{BmcAccess, NewServer as StoreNewServer, ServerDetail, ServerDetails, ServerPatch};
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, ListParams, ListQueryDoc, Path};
use crate::wire::inventory::HardwareInput;
use crate::wire::server::{
    Configuration, IpmiInput, NewServer, OwnerRequest, PduConnectionRequest, PlatformInput, Server, ServerEdit,
    SwitchConnectionRequest,
};
use crate::wire::{Empty, Id, List};

/// Number of free servers per configuration.
#[utoipa::path(get, path = "/dci/v3/server/configuration", params(ListQueryDoc), tag = "servers",
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
///
/// Without `limit` (every server) the answer is streamed as it is read.
#[utoipa::path(get, path = "/dci/v3/server", params(ListQueryDoc), tag = "servers", responses((status = 200, body = List<Server>)))]
pub async fn list_servers(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Response> {
    let scopes = caller.server_scope();
    if q.limit.is_some() {
        let page = st.store.list_servers(&q, &scopes).await?;
        return Ok(Json(List::from_page(page, Server::from)).into_response());
    }
    stream_list(st.store.stream_servers(&q, &scopes, STREAM_CHUNK).await?).await
}

/// Servers rendered at a time in a streamed list (about 200 KB of JSON).
const STREAM_CHUNK: usize = 128;

/// Where a streamed list is.
struct Streaming {
    rx: mpsc::Receiver<Result<Vec<ServerDetail>, StoreError>>,
    first: Option<Vec<ServerDetail>>,
    count: usize,
    done: bool,
    /// The request's span: a failure while sending is logged with its request id.
    span: tracing::Span,
}

/// The full list as its chunks arrive: `{"list":[`, each server, then `],"size":N}`,
/// the same bytes `Json(List)` writes, without holding the list or its text whole. The
/// statement's own failure still answers the error envelope; a failure after the
/// answer began ends the body early, so the client sees a broken answer, never a short
/// list that parses.
async fn stream_list(mut rx: mpsc::Receiver<Result<Vec<ServerDetail>, StoreError>>) -> ApiResult<Response> {
    let first = match rx.recv().await {
        Some(Ok(first)) => first,
        Some(Err(e)) => return Err(e.into()),
        None => return Err(ApiError::internal_because("the server list's reader ended without an answer")),
    };
    let start = Streaming { rx, first: Some(first), count: 0, done: false, span: tracing::Span::current() };
    let body = futures_util::stream::unfold(start, |mut s| async move {
        if s.done {
            return None;
        }
        let (head, chunk): (&[u8], _) = match s.first.take() {
            Some(c) => (b"{\"list\":[", c),
            None => match s.rx.recv().await {
                Some(Ok(c)) => (b"", c),
                Some(Err(e)) => {
                    s.span.in_scope(|| tracing::error!(error = ?e, "the server list failed while it was being sent"));
                    s.done = true;
                    return Some((Err(std::io::Error::other("the server list could not be read to its end")), s));
                }
                None => {
                    s.done = true;
                    let tail = format!("],\"size\":{}}}", s.count);
                    return Some((Ok(axum::body::Bytes::from(tail)), s));
                }
            },
        };
        // A server is about 1.5 KB of JSON with its hardware.
        let mut out = Vec::with_capacity(head.len() + chunk.len() * 2048);
        out.extend_from_slice(head);
        for d in chunk {
            if s.count > 0 {
                out.push(b',');
            }
            s.count += 1;
            if let Err(e) = serde_json::to_writer(&mut out, &Server::from(d)) {
                s.span.in_scope(|| tracing::error!(error = %e, "a server of the list could not be written"));
                s.done = true;
                return Some((Err(std::io::Error::other(e)), s));
            }
        }
        Some((Ok(axum::body::Bytes::from(out)), s))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], HttpBody::from_stream(body)).into_response())
}

/// Servers kept in their location's warehouse rather than in a rack (DCImanager's
/// warehouse list of servers; list conventions as for `/dci/v3/server`). Admin only.
#[utoipa::path(get, path = "/dci/v3/warehouse/server", params(ListQueryDoc), tag = "servers", responses((status = 200, body = List<Server>)))]
pub async fn warehouse_servers(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Server>>> {
    caller.require_admin()?;
    // Rack ids start at 1: 0 stands for "no rack".
    let scopes = [dcim_store::list::Scope { sql: "COALESCE(s.rack_id, 0) = ?", value: dcim_store::list::Bind::Int(0) }];
    let page = st.store.list_servers(&q, &scopes).await?;
    Ok(Json(List::from_page(page, Server::from)))
}

/// One server (another user's is a 404).
#[utoipa::path(get, path = "/dci/v3/server/{id}", tag = "servers", responses((status = 200, body = Server), (status = 404)))]
pub async fn get_server(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Response> {
    let json = |body: axum::body::Bytes| ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    // Only an admin's read goes through the cache: a customer's stays a query with its
    // scope in the SQL. The database's version now: SQLite's read here, PostgreSQL's
    // taken with the session.
    let now = if caller.is_admin() { st.store.db_version().or_else(|| caller.db_version.clone()) } else { None };
    if let Some(body) = now.as_ref().and_then(|v| st.servers.get(id, v)) {
        return Ok(json(body));
    }
    let (detail, read_at) = st.store.get_server_versioned(ServerId(id), &caller.server_scope()).await?;
    let body = serde_json::to_vec(&Server::from(detail))
        .map_err(|e| ApiError::internal_because(format!("rendering server {id}: {e}")))?;
    // Exactly its length: a kept answer would otherwise hold the growth's spare room.
    let body = axum::body::Bytes::from(body.into_boxed_slice());
    if let Some(now) = now {
        match read_at {
            // PostgreSQL: the read's own snapshot. It replaces answers kept at another
            // (at worst a newer one's, read by a request that overtook this one: a lost
            // hit, never a stale answer).
            Some(read_at) => st.servers.put(id, read_at.clone(), body.clone(), || Some(read_at)),
            // SQLite: the version before the read, kept if it is still the current one.
            None => st.servers.put(id, now, body.clone(), || st.store.db_version()),
        }
    }
    Ok(json(body))
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
    let id = ServerId(id);
    caller.require_admin()?;
    st.store.assign_owner(id, UserId(b.owner)).await?;
    tracing::info!(server = id.get(), owner = b.owner, by = caller.user_id.get(), "server assigned");
    Ok(Json(Id { id: id.get() }))
}

/// Release the server.
#[utoipa::path(delete, path = "/dci/v3/server/{id}/owner", tag = "servers", responses((status = 200, body = Id)))]
pub async fn release_owner(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    let id = ServerId(id);
    caller.require_admin()?;
    st.store.release_owner(id).await?;
    tracing::info!(server = id.get(), by = caller.user_id.get(), "server released");
    Ok(Json(Id { id: id.get() }))
}

fn bmc(input: IpmiInput) -> ApiResult<BmcAccess> {
    let kind: BmcType = input.kind.parse().map_err(|e| ApiError::invalid("ipmi.type", e))?;
    let address = match kind {
        BmcType::Redfish => redfish_address("ipmi.address", &input.address)?,
        _ => device_address("ipmi.address", &input.address)?,
    };
    let tls_fingerprint = match input.tls_fingerprint.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => Some(fingerprint(f).ok_or_else(|| {
            ApiError::invalid(
                "ipmi.tls_fingerprint",
                "must be a SHA-256: 64 hexadecimal digits, with or without colons",
            )
        })?),
    };
    Ok(BmcAccess {
        address,
        kind,
        user: input.user,
        password: input.password,
        web_url: input.web_url.filter(|u| !u.trim().is_empty()),
        tls_fingerprint,
    })
}

/// `ab:cd:...` (32 pairs) or 64 bare hexadecimal digits, as 64 lower-case digits.
fn fingerprint(f: &str) -> Option<String> {
    let digits: String = if f.len() == 95 {
        let pairs: Vec<&str> = f.split(':').collect();
        if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
            return None;
        }
        pairs.concat()
    } else {
        f.to_owned()
    };
    (digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digits.to_ascii_lowercase())
}

fn name(field: &str, raw: &str) -> ApiResult<String> {
    Ok(dcim_core::validate::name(field, raw)?)
}

fn label(field: &str, raw: &str) -> ApiResult<String> {
    Ok(dcim_core::validate::line(field, raw, 128)?)
}

fn note(field: &str, raw: &str) -> ApiResult<String> {
    Ok(dcim_core::validate::note(field, raw, 4096)?)
}

/// A platform's name and height (1 to 64 units).
fn platform(p: &PlatformInput) -> ApiResult<(Option<String>, Option<i64>)> {
    if let Some(size) = p.size
        && !(1..=64).contains(&size)
    {
        return Err(ApiError::invalid("platform.size", "must be 1 to 64 rack units"));
    }
    Ok((p.name.as_deref().map(|n| label("platform.name", n)).transpose()?, p.size))
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
    let (platform_name, size) = platform(&b.platform.unwrap_or_default())?;
    let s = StoreNewServer {
        name: name("name", &b.name)?,
        location_id: b.location_id,
        rack_id: b.rack_id,
        unit: b.unit,
        mac: b.mac.as_deref().map(|m| Mac::parse("mac", m).map(|m| m.to_string())).transpose()?,
        domain: domain_name("domain", &b.domain)?,
        bmc: b.ipmi.map(bmc).transpose()?,
        details: ServerDetails {
            barcode: label("barcode", &b.barcode)?,
            serial_number: label("serial_number", &b.serial_number)?,
            model: label("model", &b.model)?,
            note: note("note", &b.note)?,
            user_note: note("user_note", &b.user_note)?,
            platform_name: platform_name.unwrap_or_default(),
            size: size.unwrap_or(1),
        },
    };
    let id = st.store.create_server(&s).await?;
    Ok((axum::http::StatusCode::CREATED, Json(Id { id: id.get() })))
}

/// Edit a server: only the fields given change. The server's owner (a `@user`) may
/// edit its `user_note` and nothing else.
#[utoipa::path(post, path = "/dci/v3/server/{id}", tag = "inventory", request_body = ServerEdit,
    responses((status = 200, body = Id), (status = 403), (status = 409), (status = 422)))]
pub async fn edit_server(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<ServerEdit>,
) -> ApiResult<Json<Id>> {
    let id = ServerId(id);
    if !caller.is_admin() {
        st.store.check_server(id, &caller.server_scope()).await?;
        let only_user_note = ServerEdit { user_note: None, ..b };
        let user_note = b.user_note.clone();
        if !only_user_note.is_empty() || user_note.is_none() {
            return Err(ApiError::new(
                crate::error::ErrorKind::Forbidden,
                "a server's owner may edit its user_note only; the rest needs the @admin role",
            ));
        }
        let patch = ServerPatch {
            user_note: user_note.as_deref().map(|n| note("user_note", n)).transpose()?,
            ..ServerPatch::default()
        };
        st.store.update_server(id, &patch).await?;
        return Ok(Json(Id { id: id.get() }));
    }
    let (platform_name, size) = match &b.platform {
        Some(p) => platform(p)?,
        None => (None, None),
    };
    for (field, family, v) in [("main_ipv4", 2, b.main_ipv4), ("main_ipv6", 10, b.main_ipv6)] {
        if let Some(Some(ip)) = v {
            main_ip(&st, id, field, family, ip).await?;
        }
    }
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
        barcode: b.barcode.as_deref().map(|v| label("barcode", v)).transpose()?,
        serial_number: b.serial_number.as_deref().map(|v| label("serial_number", v)).transpose()?,
        model: b.model.as_deref().map(|v| label("model", v)).transpose()?,
        note: b.note.as_deref().map(|v| note("note", v)).transpose()?,
        user_note: b.user_note.as_deref().map(|v| note("user_note", v)).transpose()?,
        platform_name,
        size,
        main_ipv4: b.main_ipv4,
        main_ipv6: b.main_ipv6,
    };
    st.store.update_server(id, &patch).await?;
    Ok(Json(Id { id: id.get() }))
}

/// Whether address `ip` may be server `id`'s main address of `family`: its own, of
/// that family, in use. The store checks again in the write's transaction.
async fn main_ip(st: &AppState, id: ServerId, field: &str, family: i64, ip: i64) -> ApiResult<()> {
    let row = match st.store.get_ip(ip).await {
        Ok(r) => r,
        Err(dcim_store::StoreError::NotFound { .. }) => {
            return Err(ApiError::invalid(field, format!("there is no address {ip}")));
        }
        Err(e) => return Err(e.into()),
    };
    let fam = if family == 2 { "IPv4" } else { "IPv6" };
    if row.server_id != Some(id) || row.purpose != dcim_core::IpPurpose::Server {
        return Err(ApiError::invalid(field, format!("address {} is not one of server {id}'s", row.name)));
    }
    if row.family != family {
        return Err(ApiError::invalid(field, format!("address {} is not {fam}", row.name)));
    }
    if row.status != dcim_core::IpStatus::Ok {
        return Err(ApiError::conflict(format!("address {} is {}; wait for its task", row.name, row.status)));
    }
    Ok(())
}

/// Delete a server; refused (409) while it has an owner.
#[utoipa::path(delete, path = "/dci/v3/server/{id}", tag = "inventory", responses((status = 200, body = Id)))]
pub async fn delete_server(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    let id = ServerId(id);
    caller.require_admin()?;
    st.store.delete_server(id).await?;
    Ok(Json(Id { id: id.get() }))
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
    let id = ServerId(id);
    caller.require_admin()?;
    if !b.is_object() {
        return Err(ApiError::bad_request("body: hardware_info must be a JSON object"));
    }
    let hw: HardwareInfo = crate::extract::typed(&b).map_err(|e| ApiError::invalid("hardware_info", e))?;
    let configuration = generate(&hw);
    st.store.set_hardware_info(id, &b.to_string(), configuration.as_deref()).await?;
    Ok(Json(Id { id: id.get() }))
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
    let id = ServerId(id);
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
    let id = ServerId(id);
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
    let id = ServerId(id);
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
    let id = ServerId(id);
    caller.require_admin()?;
    st.store.disconnect(id, cid, true).await?;
    Ok(Json(Id { id: cid }))
}
