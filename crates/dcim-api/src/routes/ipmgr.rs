//! IPmanager 6 as ISPsystem publishes it (`/ip/v3`, also served under DCImanager's own
//! `/dci/v3/ipmgr`): userspaces, networks and pools made inside a userspace, pool
//! ranges, addresses IPmanager gives out by itself (reserved, edited, locked, deleted),
//! and each address's history. Networks and pools themselves are in [`super::ip`].
//!
//! Everything is admin-only but reading addresses: a `@user` sees the addresses of its
//! own servers in `/ip/v3/ip`, filtered in the query.

use axum::Json;
use axum::extract::State;
use dcim_core::ip::{self as ipm, family_name, from_key, is_reserved, key, parse_addr, to_u128};
use dcim_core::validate::{domain_name, note as note_text, required_line};
use dcim_store::ids::ServerId;
use dcim_store::ipam::{IpRow, NewIp, RangeRow, Source};
use dcim_store::ipmgr::{IpPatch, RangeInfo};
use dcim_store::list::{Bind, Scope};
use ipnet::IpNet;

use super::ip::{allocate_next, create_network};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, ListParams, ListQueryDoc, Path};
use crate::wire::auth::auth_time;
use crate::wire::ip::{
    HistoryEntry, IpAllocate, IpAllocated, IpCreate, IpEdit, IpmgrIp, NewIpnet, Range, RangeBody, Userspace,
    UserspaceBody, UserspacePool,
};
use crate::wire::{Empty, Id, List};

/// IPmanager's statuses an address may be given.
pub(crate) const STATUSES: &[&str] =
    &["busy", "special", "locked", "problem", "service", "extended", "dnsbl", "deleted"];

fn check_status(field: &str, s: &str) -> ApiResult<String> {
    if STATUSES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(ApiError::invalid(field, format!("'{s}' is not one of {}", STATUSES.join(", "))))
    }
}

/// A userspace id from its path (the document types it as a string).
fn userspace_id(raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found("userspace", raw))
}

fn userspace_wire(r: dcim_store::ipmgr::UserspaceRow) -> Userspace {
    Userspace { id: r.id, is_public: r.is_public != 0, note: r.note }
}

pub(crate) fn ipmgr_ip_wire(r: IpRow) -> IpmgrIp {
    IpmgrIp {
        id: r.id,
        ip_addr: r.name.clone(),
        first: r.name.clone(),
        name: r.name,
        domain: r.domain,
        ipnet: r.ipnet_id,
        ipnet_name: r.network,
        ippool: r.pool_id,
        size: 1,
        status: r.ipm_status,
        note: r.note,
        userspace: r.userspace,
        locked: r.locked != 0,
        server: r.server_id.map(ServerId::get),
        purpose: r.purpose,
    }
}

fn range_wire(r: RangeInfo) -> Range {
    let row = RangeRow {
        id: r.id,
        pool_id: r.pool_id,
        ipnet_id: r.ipnet_id,
        start_key: r.start_key.clone(),
        end_key: r.end_key.clone(),
        family: r.family,
        net_name: r.net_name.clone(),
        gateway: r.gateway.clone(),
    };
    let first = from_key(r.family, &r.start_key).map(|a| a.to_string()).unwrap_or_default();
    let last = from_key(r.family, &r.end_key).map(|a| a.to_string()).unwrap_or_default();
    Range {
        id: r.id,
        family: r.family,
        ippool: r.pool_id,
        ipnet: r.ipnet_id,
        name: format!("{first}-{last}"),
        using_ip: r.using_ip.to_string(),
        total_ip: super::ip::range_total(&row).to_string(),
        first,
        last,
        locked: false,
    }
}

/// Userspaces.
#[utoipa::path(get, path = "/ip/v3/userspace", params(ListQueryDoc), tag = "ipmgr", responses((status = 200, body = List<Userspace>)))]
pub async fn list_userspaces(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Userspace>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_userspaces(&q).await?, userspace_wire)))
}

#[utoipa::path(post, path = "/ip/v3/userspace", tag = "ipmgr", request_body = UserspaceBody,
    responses((status = 200, body = Id)))]
pub async fn create_userspace(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<UserspaceBody>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let note = note_text("note", &b.note, 1024)?;
    Ok(Json(Id { id: st.store.create_userspace(&note).await? }))
}

#[utoipa::path(get, path = "/ip/v3/userspace/{id}", tag = "ipmgr", responses((status = 200, body = Userspace)))]
pub async fn get_userspace(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Userspace>> {
    caller.require_admin()?;
    Ok(Json(userspace_wire(st.store.get_userspace(userspace_id(&id)?).await?)))
}

#[utoipa::path(post, path = "/ip/v3/userspace/{id}", tag = "ipmgr", request_body = UserspaceBody,
    responses((status = 200, body = Id)))]
pub async fn edit_userspace(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<UserspaceBody>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let id = userspace_id(&id)?;
    st.store.update_userspace(id, &note_text("note", &b.note, 1024)?).await?;
    Ok(Json(Id { id }))
}

/// Delete a userspace that holds no network or pool and serves no location.
#[utoipa::path(delete, path = "/ip/v3/userspace/{id}", tag = "ipmgr",
    responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_userspace(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    _b: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let id = userspace_id(&id)?;
    st.store.delete_userspace(id).await?;
    Ok(Json(Id { id }))
}

/// Add a network to a userspace (the document's way; `POST /ip/v3/ipnet` adds to 1).
#[utoipa::path(post, path = "/ip/v3/userspace/{id}/ipnet", tag = "ipmgr", request_body = NewIpnet,
    responses((status = 200, body = Id), (status = 409), (status = 422)))]
pub async fn create_userspace_ipnet(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<NewIpnet>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let us = st.store.get_userspace(userspace_id(&id)?).await?.id;
    Ok(Json(Id { id: create_network(&st, us, b).await? }))
}

/// Add a pool to a userspace; its ranges come with `POST /ip/v3/ippool/{id}/range`.
#[utoipa::path(post, path = "/ip/v3/userspace/{id}/ippool", tag = "ipmgr", request_body = UserspacePool,
    responses((status = 200, body = Id), (status = 409), (status = 422)))]
pub async fn create_userspace_pool(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<UserspacePool>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let us = st.store.get_userspace(userspace_id(&id)?).await?.id;
    let name = required_line("name", &b.name, 128)?;
    let note = note_text("note", &b.note, 1024)?;
    Ok(Json(Id { id: st.store.create_pool(&name, &note, false, us, &[]).await? }))
}

/// Bounds of a range given as `first-last`, a CIDR, or one address.
fn parse_range(raw: &str) -> ApiResult<(std::net::IpAddr, std::net::IpAddr)> {
    let raw = raw.trim();
    let (a, b) = if let Some((a, b)) = raw.split_once('-') {
        (parse_addr("name", a.trim())?, parse_addr("name", b.trim())?)
    } else if raw.contains('/') {
        let n: IpNet = raw.parse().map_err(|e| ApiError::invalid("name", format!("'{raw}': {e}")))?;
        (n.network(), n.broadcast())
    } else {
        let a = parse_addr("name", raw)?;
        (a, a)
    };
    if ipm::family(&a) != ipm::family(&b) {
        return Err(ApiError::invalid("name", "both ends must be of one family"));
    }
    if to_u128(&a) > to_u128(&b) {
        return Err(ApiError::invalid("name", "the range ends before it starts"));
    }
    Ok((a, b))
}

/// The network of `userspace` that holds the whole range `raw`.
async fn range_in_userspace(st: &AppState, userspace: i64, raw: &str) -> ApiResult<(i64, String, String)> {
    let (a, b) = parse_range(raw)?;
    let (ka, kb) = (key(&a), key(&b));
    let (net, name, container) = st
        .store
        .network_holding(userspace, ipm::family(&a), &ka, &kb)
        .await?
        .ok_or_else(|| ApiError::invalid("name", format!("no network of userspace {userspace} holds {a}-{b}")))?;
    if container {
        return Err(ApiError::invalid(
            "name",
            format!("{a}-{b} lies in container network {name}, in none of its networks as a whole"),
        ));
    }
    Ok((net, ka, kb))
}

/// Add a range to a pool: inside one network of the pool's userspace, overlapping no
/// other range of that network.
#[utoipa::path(post, path = "/ip/v3/ippool/{id}/range", tag = "ipmgr", request_body = RangeBody,
    responses((status = 200, body = Id), (status = 409), (status = 422)))]
pub async fn create_range(
    caller: Caller,
    State(st): State<AppState>,
    Path(pool): Path<i64>,
    Body(b): Body<RangeBody>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let p = st.store.get_pool(pool).await?;
    let (net, a, b) = range_in_userspace(&st, p.userspace, &b.name).await?;
    Ok(Json(Id { id: st.store.create_range(pool, net, &a, &b).await? }))
}

/// Pool ranges.
#[utoipa::path(get, path = "/ip/v3/range", params(ListQueryDoc), tag = "ipmgr", responses((status = 200, body = List<Range>)))]
pub async fn list_ranges(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Range>>> {
    caller.require_admin()?;
    Ok(Json(List::from_page(st.store.list_ranges(&q).await?, range_wire)))
}

#[utoipa::path(get, path = "/ip/v3/range/{id}", tag = "ipmgr", responses((status = 200, body = Range)))]
pub async fn get_range(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Range>> {
    caller.require_admin()?;
    Ok(Json(range_wire(st.store.get_range(id).await?)))
}

/// Move a range's bounds within its network; refused while an address in use would
/// fall outside.
#[utoipa::path(post, path = "/ip/v3/range/{id}", tag = "ipmgr", request_body = RangeBody,
    responses((status = 200, body = Id), (status = 409), (status = 422)))]
pub async fn edit_range(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<RangeBody>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let r = st.store.get_range(id).await?;
    let pool = st.store.get_pool(r.pool_id).await?;
    let (net, a, b) = range_in_userspace(&st, pool.userspace, &b.name).await?;
    st.store.update_range(id, net, &a, &b).await?;
    Ok(Json(Id { id }))
}

#[utoipa::path(delete, path = "/ip/v3/range/{id}", tag = "ipmgr",
    responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_range(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _b: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_range(id).await?;
    Ok(Json(Id { id }))
}

/// The addresses in use in a range.
#[utoipa::path(get, path = "/ip/v3/range/{id}/ip", params(ListQueryDoc), tag = "ipmgr", responses((status = 200, body = List<IpmgrIp>)))]
pub async fn range_ips(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<IpmgrIp>>> {
    caller.require_admin()?;
    st.store.get_range(id).await?;
    let scopes = [Scope { sql: "i.range_id = ?", value: Bind::Int(id) }];
    Ok(Json(List::from_page(st.store.list_ips(&q, &scopes).await?, ipmgr_ip_wire)))
}

/// Addresses (a `@user` sees those of its servers). `where` takes IPmanager's field
/// names (`name`, `ip_addr`, `domain`, `ipnet`, `ipnet_name`, `ippool`, `userspace`,
/// `note`, `locked`, `ipm_status`...).
#[utoipa::path(get, path = "/ip/v3/ip", params(ListQueryDoc), tag = "ipmgr", responses((status = 200, body = List<IpmgrIp>)))]
pub async fn list_ips(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<IpmgrIp>>> {
    Ok(Json(List::from_page(st.store.list_ips(&q, &caller.server_scope()).await?, ipmgr_ip_wire)))
}

/// One address (a `@user`: one of its servers').
#[utoipa::path(get, path = "/ip/v3/ip/{id}", tag = "ipmgr", responses((status = 200, body = IpmgrIp)))]
pub async fn get_ip(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<IpmgrIp>> {
    let mut scopes = caller.server_scope();
    scopes.push(Scope { sql: "i.id = ?", value: Bind::Int(id) });
    let page = st.store.list_ips(&dcim_core::query::ListQuery::default(), &scopes).await?;
    let ip = page.items.into_iter().next().ok_or_else(|| ApiError::not_found("ip", id))?;
    Ok(Json(ipmgr_ip_wire(ip)))
}

/// Edit an address's domain, IPmanager status, note or lock (recorded in its history).
#[utoipa::path(post, path = "/ip/v3/ip/{id}", tag = "ipmgr", request_body = IpEdit,
    responses((status = 200, body = Id), (status = 404), (status = 422)))]
pub async fn edit_ip(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<IpEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let patch = IpPatch {
        domain: b.domain.as_deref().map(|d| domain_name("domain", d)).transpose()?,
        ipm_status: b.status.as_deref().map(|s| check_status("status", s)).transpose()?,
        note: b.note.as_deref().map(|n| note_text("note", n, 1024)).transpose()?,
        locked: b.locked,
    };
    st.store.update_ipmgr_ip(id, &patch).await?;
    Ok(Json(Id { id }))
}

/// Delete an address IPmanager gave out (one a server holds is taken back through
/// the server, a locked one is unlocked first: 409 otherwise).
#[utoipa::path(delete, path = "/ip/v3/ip/{id}", tag = "ipmgr",
    responses((status = 200, body = Id), (status = 404), (status = 409)))]
pub async fn delete_ip(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _b: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_ipmgr_ip(id).await?;
    Ok(Json(Id { id }))
}

/// The body's address fields as a new row without a server.
fn new_ipmgr_ip(family: i64, domain: &str, status: Option<&str>, note: &str) -> ApiResult<NewIp> {
    Ok(NewIp {
        server_id: None,
        family,
        domain: domain_name("domain", domain)?,
        purpose: dcim_core::IpPurpose::Ipmgr,
        ipm_status: status.map(|s| check_status("status", s)).transpose()?.unwrap_or_else(|| "busy".into()),
        note: note_text("note", note, 1024)?,
    })
}

/// Reserve address `name` of network `net_id` (in `pool`'s range when given).
async fn create_in_network(st: &AppState, net_id: i64, b: IpCreate) -> ApiResult<i64> {
    let nets = st.store.ipnets_plain().await?;
    let row = nets.iter().find(|r| r.id == net_id).ok_or_else(|| ApiError::not_found("ipnet", net_id))?;
    super::ip::refuse_container(row, "ipnet")?;
    let net: IpNet = row
        .name
        .parse()
        .map_err(|e| ApiError::internal_because(format!("stored network '{}' does not parse: {e}", row.name)))?;
    let new = new_ipmgr_ip(row.family, &b.domain, b.status.as_deref(), &b.note)?;
    let pool = b.ippool.filter(|p| *p != 0);
    if let Some(p) = pool {
        st.store.get_pool(p).await.map_err(|_| ApiError::invalid("ippool", format!("there is no pool {p}")))?;
    }
    let Some(name) = b.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) else {
        let source = match pool {
            Some(p) => Source::PoolPreferring(p, net_id),
            None => Source::Network(net_id),
        };
        return allocate_next(st, &nets, &new, source).await;
    };
    let addr = parse_addr("name", name)?;
    if !net.contains(&addr) {
        return Err(ApiError::invalid("name", format!("{addr} is outside {net}")));
    }
    let gw = row.gateway.parse().ok();
    if is_reserved(&net, gw.as_ref(), &addr) {
        return Err(ApiError::invalid("name", format!("{addr} is the network, broadcast or gateway address")));
    }
    let k = key(&addr);
    let range = match pool {
        Some(p) => Some(
            st.store
                .range_holding(p, net_id, &k)
                .await?
                .ok_or_else(|| ApiError::invalid("name", format!("{addr} is outside pool {p}")))?,
        ),
        None => None,
    };
    Ok(st.store.allocate_given(&new, net_id, pool, range, &k).await?)
}

/// Reserve an address of a network: `name`, or the network's (or `ippool`'s) next free one.
#[utoipa::path(post, path = "/ip/v3/ipnet/{id}/ip", tag = "ipmgr", request_body = IpCreate,
    responses((status = 200, body = Id), (status = 409), (status = 422)))]
pub async fn create_ip(
    caller: Caller,
    State(st): State<AppState>,
    Path(net): Path<i64>,
    Body(b): Body<IpCreate>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    Ok(Json(Id { id: create_in_network(&st, net, b).await? }))
}

/// Reserve address `name` in whichever network of the userspace holds it.
#[utoipa::path(post, path = "/ip/v3/userspace/{id}/ip", tag = "ipmgr", request_body = IpCreate,
    responses((status = 200, body = Id), (status = 409), (status = 422)))]
pub async fn create_userspace_ip(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<IpCreate>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let us = st.store.get_userspace(userspace_id(&id)?).await?.id;
    let name = b.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "give the address"));
    }
    let addr = parse_addr("name", name)?;
    let k = key(&addr);
    let (net, name, container) = st
        .store
        .network_holding(us, ipm::family(&addr), &k, &k)
        .await?
        .ok_or_else(|| ApiError::invalid("name", format!("no network of userspace {us} holds {addr}")))?;
    if container {
        return Err(ApiError::invalid(
            "name",
            format!("{addr} lies in container network {name}, in none of its networks"),
        ));
    }
    Ok(Json(Id { id: create_in_network(&st, net, b).await? }))
}

/// Give out the pool's next free address (its ranges in `prefered_net` first).
#[utoipa::path(post, path = "/ip/v3/ippool/{id}/ip", tag = "ipmgr", request_body = IpAllocate,
    responses((status = 200, body = IpAllocated), (status = 409), (status = 422)))]
pub async fn allocate_pool_ip(
    caller: Caller,
    State(st): State<AppState>,
    Path(pool): Path<i64>,
    Body(b): Body<IpAllocate>,
) -> ApiResult<Json<IpAllocated>> {
    caller.require_admin()?;
    st.store.get_pool(pool).await?;
    let family = match b.family.as_deref().map(str::trim) {
        None | Some("") | Some("ipv4") => 2,
        Some("ipv6") => 10,
        Some(other) => return Err(ApiError::invalid("family", format!("'{other}' is not ipv4 or ipv6"))),
    };
    let host = if family == 2 { 32 } else { 128 };
    if b.ip_prefix.is_some_and(|p| p != host) || b.subnet_by_address == Some(true) {
        return Err(ApiError::invalid(
            "ip_prefix",
            format!("dcim gives out single addresses only (/{host} for {})", family_name(family)),
        ));
    }
    let source = match b.prefered_net.filter(|n| *n != 0) {
        Some(n) => {
            let ranges = st.store.pool_ranges(Some(pool)).await?;
            if !ranges.iter().any(|r| r.ipnet_id == n) {
                return Err(ApiError::invalid("prefered_net", format!("pool {pool} has no range in network {n}")));
            }
            Source::PoolPreferring(pool, n)
        }
        None => Source::Pool(pool),
    };
    let new = new_ipmgr_ip(family, &b.domain, None, &b.note)?;
    let nets = st.store.ipnets_plain().await?;
    let id = allocate_next(&st, &nets, &new, source).await?;
    Ok(Json(IpAllocated { id, ids: vec![id] }))
}

/// The history of an address of a userspace: created (`old` null), edited, deleted
/// (`new` null), oldest first.
#[utoipa::path(get, path = "/ip/v3/userspace/{id}/history/{address}", tag = "ipmgr",
    responses((status = 200, body = List<HistoryEntry>)))]
pub async fn address_history(
    caller: Caller,
    State(st): State<AppState>,
    Path((id, address)): Path<(String, String)>,
) -> ApiResult<Json<List<HistoryEntry>>> {
    caller.require_admin()?;
    let us = st.store.get_userspace(userspace_id(&id)?).await?.id;
    let addr = parse_addr("address", &address)?;
    let list: Vec<HistoryEntry> = st
        .store
        .ip_history(us, &addr.to_string())
        .await?
        .into_iter()
        .map(|h| HistoryEntry {
            id: h.id,
            name: h.name,
            reference: h.reference,
            date_time: auth_time(h.created_at),
            data: serde_json::from_str(&h.data).unwrap_or_default(),
        })
        .collect();
    Ok(Json(List { size: list.len() as i64, list }))
}
