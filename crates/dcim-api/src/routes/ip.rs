//! IPmanager's networks and pools (`/ip/v3`), and the addresses of servers
//! (`/dci/v3/ip`, `/dci/v3/server/{id}/ip`). Giving and taking back an address
//! answers `{"id","task"}`: the row is `allocating` (or `deleting`) until its task ends.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dcim_core::IpStatus;
use dcim_core::ip::{self as ipm, family_name, from_key, is_reserved, key, parse_addr, parse_network, to_u128};
use dcim_store::ids::{IpId, ServerId};
use dcim_store::ipam::{
    IpRow, IpnetRow, NewIp, NewIpnet as StoreNewIpnet, Place, PoolRow, RangeRow, Source, Take, Taken,
};
use dcim_tasks::Operation;
use dcim_tasks::ops::{IpAssign, IpRelease};
use ipnet::IpNet;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, ListParams, ListQueryDoc, Path};
use crate::wire::ip::{Ip, IpRequest, Ipnet, IpnetEdit, Ippool, IppoolEdit, NewIpnet, NewIppool, PoolNet};
use crate::wire::task::TaskAnswer;
use crate::wire::{Empty, Id, List};

fn net_of(r: &IpnetRow) -> Option<IpNet> {
    r.name.parse().ok()
}

/// The internal error of a stored network that does not parse.
fn unparsable(r: &IpnetRow) -> ApiError {
    ApiError::internal_because(format!("stored network {} '{}' does not parse", r.id, r.name))
}

fn gateway_of(gw: &str) -> Option<IpAddr> {
    gw.parse().ok()
}

pub(crate) fn ipnet_wire(r: IpnetRow, ranges: &[RangeRow]) -> Ipnet {
    let mut ippools: Vec<i64> = ranges.iter().filter(|x| x.ipnet_id == r.id).map(|x| x.pool_id).collect();
    ippools.sort_unstable();
    ippools.dedup();
    let (first, last) = (
        from_key(r.family, &r.first_key).map(|a| a.to_string()).unwrap_or_default(),
        from_key(r.family, &r.last_key).map(|a| a.to_string()).unwrap_or_default(),
    );
    let (size, total) = match net_of(&r) {
        Some(n) => {
            let gw = gateway_of(&r.gateway);
            (ipm::size(&n), ipm::usable_in(&n, gw.as_ref(), to_u128(&n.network()), to_u128(&n.broadcast())))
        }
        None => (0, 0),
    };
    Ipnet {
        id: r.id,
        name: r.name,
        family: r.family,
        mask: r.prefix,
        gateway: r.gateway,
        userspace: r.userspace,
        vlan: r.vlan,
        note: r.note,
        size: size.to_string(),
        using_ip: r.using_ip.to_string(),
        total_ip: total.to_string(),
        first,
        last,
        need_reserve: r.need_reserve != 0,
        ippools,
        kind: if r.subnets > 0 { "container" } else { "active" },
        parent: r.parent,
    }
}

/// A container network (one that holds networks) gives out no address itself: they
/// belong to its subnetworks.
pub(crate) fn refuse_container(r: &IpnetRow, field: &str) -> ApiResult<()> {
    if r.subnets > 0 {
        return Err(ApiError::invalid(
            field,
            format!("network {} is a container of {} network(s); use one of them", r.name, r.subnets),
        ));
    }
    Ok(())
}

/// Usable addresses of a range, given its network.
pub(crate) fn range_total(r: &RangeRow) -> u128 {
    let (Ok(net), Ok(s), Ok(e)) =
        (r.net_name.parse::<IpNet>(), u128::from_str_radix(&r.start_key, 16), u128::from_str_radix(&r.end_key, 16))
    else {
        return 0;
    };
    ipm::usable_in(&net, gateway_of(&r.gateway).as_ref(), s, e)
}

pub(crate) fn pool_wire(p: PoolRow, ranges: &[RangeRow]) -> Ippool {
    let mut ipnets: Vec<PoolNet> = vec![];
    for r in ranges.iter().filter(|r| r.pool_id == p.id) {
        if !ipnets.iter().any(|n| n.id == r.ipnet_id) {
            ipnets.push(PoolNet { id: r.ipnet_id, name: r.net_name.clone(), gateway: r.gateway.clone() });
        }
    }
    let total =
        |fam: i64| -> u128 { ranges.iter().filter(|r| r.pool_id == p.id && r.family == fam).map(range_total).sum() };
    let (t4, t6) = (total(2), total(10));
    Ippool {
        id: p.id,
        name: p.name,
        userspace: p.userspace,
        note: p.note,
        is_public: (p.is_public != 0).to_string(),
        using_ip: (p.using_ipv4 + p.using_ipv6).to_string(),
        using_ipv4: p.using_ipv4.to_string(),
        using_ipv6: p.using_ipv6.to_string(),
        total_ip: (t4 + t6).to_string(),
        total_ipv4: t4.to_string(),
        total_ipv6: t6.to_string(),
        ipnets,
    }
}

pub fn ip_wire(r: IpRow) -> Ip {
    Ip {
        domain: r.domain,
        family: family_name(r.family).into(),
        gateway: r.gateway,
        id: r.id,
        name: r.name,
        network: r.network,
        server: r.server_name,
        status: r.status,
        status_info: serde_json::from_str(&r.status_info).unwrap_or_else(|_| json!({})),
        purpose: r.purpose,
    }
}

/// List networks.
#[utoipa::path(get, path = "/ip/v3/ipnet", params(ListQueryDoc), tag = "ipam", responses((status = 200, body = List<Ipnet>)))]
pub async fn list_ipnets(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Ipnet>>> {
    caller.require_admin()?;
    let ranges = st.store.pool_ranges(None).await?;
    Ok(Json(List::from_page(st.store.list_ipnets(&q).await?, |r| ipnet_wire(r, &ranges))))
}

#[utoipa::path(get, path = "/ip/v3/ipnet/{id}", tag = "ipam", responses((status = 200, body = Ipnet)))]
pub async fn get_ipnet(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Ipnet>> {
    caller.require_admin()?;
    let ranges = st.store.pool_ranges(None).await?;
    Ok(Json(ipnet_wire(st.store.get_ipnet(id).await?, &ranges)))
}

pub(crate) fn check_gateway(net: &IpNet, gateway: &str) -> ApiResult<String> {
    if gateway.trim().is_empty() {
        return Ok(String::new());
    }
    let gw = parse_addr("gateway", gateway)?;
    if !net.contains(&gw)
        || gw == net.network()
        || (net.addr().is_ipv4() && gw == net.broadcast() && net.prefix_len() < 31)
    {
        return Err(ApiError::invalid("gateway", format!("{gw} is not a host address of {net}")));
    }
    Ok(gw.to_string())
}

/// Add a network.
#[utoipa::path(post, path = "/ip/v3/ipnet", tag = "ipam", request_body = NewIpnet, responses((status = 201, body = Id), (status = 409)))]
pub async fn create_ipnet(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<NewIpnet>,
) -> ApiResult<(StatusCode, Json<Id>)> {
    caller.require_admin()?;
    let id = create_network(&st, 1, b).await?;
    Ok((StatusCode::CREATED, Json(Id { id })))
}

/// Creates a network of `userspace` from a body (the userspace exists).
pub(crate) async fn create_network(st: &AppState, userspace: i64, b: NewIpnet) -> ApiResult<i64> {
    let net = parse_network("name", &b.name)?;
    let gateway = check_gateway(&net, b.gateway.as_deref().unwrap_or(""))?;
    let vlan = dcim_core::validate::line("vlan", &b.vlan, 64)?;
    let note = dcim_core::validate::note("note", &b.note, 1024)?;
    let id = st
        .store
        .create_ipnet(&StoreNewIpnet {
            name: net.to_string(),
            family: ipm::family(&net.addr()),
            prefix: i64::from(net.prefix_len()),
            first_key: key(&net.network()),
            last_key: key(&net.broadcast()),
            gateway,
            vlan,
            note,
            userspace,
            need_reserve: b.need_reserve.unwrap_or(true),
        })
        .await?;
    Ok(id)
}

#[utoipa::path(post, path = "/ip/v3/ipnet/{id}", tag = "ipam", request_body = IpnetEdit, responses((status = 200, body = Id)))]
pub async fn edit_ipnet(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<IpnetEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let current = st.store.get_ipnet(id).await?;
    if let Some(name) = &b.name
        && parse_network("name", name)?.to_string() != current.name
    {
        return Err(ApiError::invalid("name", "a network's address does not change; add a new network"));
    }
    let gateway = match &b.gateway {
        Some(g) => Some(check_gateway(&net_of(&current).ok_or_else(|| unparsable(&current))?, g)?),
        None => None,
    };
    let vlan = b.vlan.as_deref().map(|v| dcim_core::validate::line("vlan", v, 64)).transpose()?;
    let note = b.note.as_deref().map(|v| dcim_core::validate::note("note", v, 1024)).transpose()?;
    st.store.update_ipnet(id, gateway.as_deref(), vlan.as_deref(), note.as_deref(), b.need_reserve).await?;
    Ok(Json(Id { id }))
}

#[utoipa::path(delete, path = "/ip/v3/ipnet/{id}", tag = "ipam", responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_ipnet(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_ipnet(id).await?;
    Ok(Json(Id { id }))
}

/// List pools.
#[utoipa::path(get, path = "/ip/v3/ippool", params(ListQueryDoc), tag = "ipam", responses((status = 200, body = List<Ippool>)))]
pub async fn list_pools(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Ippool>>> {
    caller.require_admin()?;
    let ranges = st.store.pool_ranges(None).await?;
    Ok(Json(List::from_page(st.store.list_pools(&q).await?, |p| pool_wire(p, &ranges))))
}

#[utoipa::path(get, path = "/ip/v3/ippool/{id}", tag = "ipam", responses((status = 200, body = Ippool)))]
pub async fn get_pool(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Ippool>> {
    caller.require_admin()?;
    let ranges = st.store.pool_ranges(Some(id)).await?;
    Ok(Json(pool_wire(st.store.get_pool(id).await?, &ranges)))
}

/// Add a pool: ranges inside networks.
#[utoipa::path(post, path = "/ip/v3/ippool", tag = "ipam", request_body = NewIppool, responses((status = 201, body = Id)))]
pub async fn create_pool(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<NewIppool>,
) -> ApiResult<(StatusCode, Json<Id>)> {
    caller.require_admin()?;
    let name = dcim_core::validate::name("name", &b.name)?;
    let note = dcim_core::validate::note("note", &b.note, 1024)?;
    if b.ranges.is_empty() {
        return Err(ApiError::invalid("ranges", "a pool needs at least one range"));
    }
    let mut ranges = vec![];
    for (i, r) in b.ranges.iter().enumerate() {
        let field = |f: &str| format!("ranges[{i}].{f}");
        let net_row = match st.store.get_ipnet(r.ipnet).await {
            Ok(n) => n,
            Err(dcim_store::StoreError::NotFound { .. }) => {
                return Err(ApiError::invalid(&field("ipnet"), format!("there is no network {}", r.ipnet)));
            }
            Err(e) => return Err(e.into()),
        };
        refuse_container(&net_row, &field("ipnet"))?;
        let net = net_of(&net_row).ok_or_else(|| unparsable(&net_row))?;
        let start = parse_addr(&field("start"), &r.start)?;
        let end = parse_addr(&field("end"), &r.end)?;
        for (f, a) in [("start", start), ("end", end)] {
            if !net.contains(&a) {
                return Err(ApiError::invalid(&field(f), format!("{a} is outside {net}")));
            }
        }
        if to_u128(&start) > to_u128(&end) {
            return Err(ApiError::invalid(&field("end"), "the range ends before it starts"));
        }
        ranges.push((r.ipnet, key(&start), key(&end)));
    }
    let id = st.store.create_pool(&name, &note, b.is_public, 1, &ranges).await?;
    Ok((StatusCode::CREATED, Json(Id { id })))
}

#[utoipa::path(post, path = "/ip/v3/ippool/{id}", tag = "ipam", request_body = IppoolEdit, responses((status = 200, body = Id)))]
pub async fn edit_pool(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<IppoolEdit>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    // As when the pool was made: one line of 1 to 128 characters, a note of 1024.
    let name = b.name.as_deref().map(|n| dcim_core::validate::name("name", n)).transpose()?;
    let note = b.note.as_deref().map(|n| dcim_core::validate::note("note", n, 1024)).transpose()?;
    st.store.update_pool(id, name.as_deref(), note.as_deref(), b.is_public).await?;
    Ok(Json(Id { id }))
}

#[utoipa::path(delete, path = "/ip/v3/ippool/{id}", tag = "ipam", responses((status = 200, body = Id), (status = 409)))]
pub async fn delete_pool(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    st.store.delete_pool(id).await?;
    Ok(Json(Id { id }))
}

/// Every address (a `@user` sees those of its servers).
#[utoipa::path(get, path = "/dci/v3/ip", params(ListQueryDoc), tag = "ipam", responses((status = 200, body = List<Ip>)))]
pub async fn list_ips(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Ip>>> {
    Ok(Json(List::from_page(st.store.list_ips(&q, &caller.server_scope()).await?, ip_wire)))
}

/// A server's addresses.
#[utoipa::path(get, path = "/dci/v3/server/{id}/ip", params(ListQueryDoc), tag = "ipam", responses((status = 200, body = List<Ip>)))]
pub async fn server_ips(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Ip>>> {
    let id = ServerId(id);
    st.store.check_server(id, &caller.server_scope()).await?;
    let mut scopes = caller.server_scope();
    scopes.push(dcim_store::list::Scope { sql: "i.server_id = ?", value: dcim_store::list::Bind::Int(id.get()) });
    // The server's own addresses; its BMC's (setup_ipmi) are in /dci/v3/ip, `purpose` ipmi.
    scopes.push(dcim_store::list::Scope { sql: "i.purpose = ?", value: dcim_store::list::Bind::Text("server".into()) });
    Ok(Json(List::from_page(st.store.list_ips(&q, &scopes).await?, ip_wire)))
}

/// A network by id among `nets`.
fn find_net(nets: &[IpnetRow], id: i64) -> ApiResult<&IpnetRow> {
    nets.iter().find(|r| r.id == id).ok_or_else(|| ApiError::not_found("ipnet", id))
}

/// Give a server an address: a given one (`ip_name`), or the next free one of
/// `ip_pool` or `ip_net`.
#[utoipa::path(post, path = "/dci/v3/server/{id}/ip", tag = "ipam", request_body = IpRequest,
    responses((status = 200, body = TaskAnswer), (status = 409), (status = 422)))]
pub async fn allocate_ip(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<IpRequest>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    caller.require_admin()?;
    st.store.check_server(id, &[]).await?;
    // Every network, read once for all the checks below (no usage counts: cheap).
    let nets = st.store.ipnets_plain().await?;
    let family = match b.family.as_deref().map(str::trim) {
        None | Some("") | Some("ipv4") => 2,
        Some("ipv6") => 10,
        Some(other) => return Err(ApiError::invalid("family", format!("'{other}' is not ipv4 or ipv6"))),
    };
    let domain = dcim_core::validate::domain_name("domain", &b.domain)?;
    let pool = b.ip_pool.filter(|p| *p != 0);
    let net = b.ip_net.filter(|n| *n != 0);
    let name = b.ip_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let new = NewIp::for_server(id, family, domain, dcim_core::IpPurpose::Server);
    let k;
    let take = if let Some(name) = name {
        let addr = parse_addr("ip_name", name)?;
        if ipm::family(&addr) != family {
            return Err(ApiError::invalid("ip_name", format!("{addr} is not {}", family_name(family))));
        }
        k = key(&addr);
        // Where it belongs: the pool's range, the given network, or the network holding it.
        let (net_id, range_id) = if let Some(p) = pool {
            st.store.get_pool(p).await?;
            let ranges = st.store.pool_ranges(Some(p)).await?;
            let r = ranges
                .iter()
                .find(|r| r.family == family && r.start_key <= k && k <= r.end_key)
                .ok_or_else(|| ApiError::invalid("ip_name", format!("{addr} is outside pool {p}")))?;
            (r.ipnet_id, Some(r.id))
        } else if let Some(n) = net {
            let row = find_net(&nets, n)?;
            if !(row.family == family && row.first_key <= k && k <= row.last_key) {
                return Err(ApiError::invalid("ip_name", format!("{addr} is outside network {}", row.name)));
            }
            refuse_container(row, "ip_net")?;
            (n, None)
        } else {
            // The most specific network that holds it (networks of a userspace nest).
            let row = nets
                .iter()
                .filter(|r| r.family == family && r.first_key <= k && k <= r.last_key)
                .max_by_key(|r| r.prefix)
                .ok_or_else(|| ApiError::invalid("ip_name", format!("{addr} is in no known network")))?;
            refuse_container(row, "ip_name")?;
            (row.id, None)
        };
        let row = find_net(&nets, net_id)?;
        let netw = net_of(row).ok_or_else(|| unparsable(row))?;
        if is_reserved(&netw, gateway_of(&row.gateway).as_ref(), &addr) {
            return Err(ApiError::invalid("ip_name", format!("{addr} is the network, broadcast or gateway address")));
        }
        Take::Given(Place { ipnet_id: net_id, pool_id: pool, range_id, key: &k })
    } else {
        let source = match (pool, net) {
            (Some(p), _) => {
                st.store.get_pool(p).await?;
                Source::Pool(p)
            }
            (None, Some(n)) => {
                let row = find_net(&nets, n)?;
                refuse_container(row, "ip_net")?;
                if row.family != family {
                    return Err(ApiError::invalid(
                        "family",
                        format!("network {} is not {}", row.name, family_name(family)),
                    ));
                }
                Source::Network(n)
            }
            (None, None) => return Err(ApiError::invalid("ip_name", "give ip_name, ip_pool or ip_net")),
        };
        Take::Next(source)
    };
    // The address and its task in one transaction: nothing is left half-written.
    let main = b.set_as_main_ipv4;
    let op = |t: &Taken| Ok(Operation::IpAssign(IpAssign { ip_id: t.id, family, main }));
    let (task, _) = st.engine.submit_taking_ip(id, &new, &take, reserved(&nets, family), op).await?;
    Ok(Json(TaskAnswer { id: id.get(), task: task.get() }))
}

/// The next free address of `source` for `new`, never a network's own, broadcast or
/// gateway address (`nets`: every network).
pub(crate) async fn allocate_next(st: &AppState, nets: &[IpnetRow], new: &NewIp, source: Source) -> ApiResult<i64> {
    Ok(st.store.allocate_next(new, source, reserved(nets, new.family)).await?)
}

/// The addresses of `family` never handed out: a network's own, broadcast and gateway
/// addresses (`nets`: every network).
pub(crate) fn reserved(nets: &[IpnetRow], family: i64) -> impl Fn(&str) -> bool {
    let nets: Vec<(IpNet, Option<IpAddr>)> =
        nets.iter().filter_map(|r| Some((net_of(r)?, gateway_of(&r.gateway)))).collect();
    move |k: &str| {
        let Some(addr) = from_key(family, k) else { return true };
        nets.iter().any(|(n, gw)| n.contains(&addr) && is_reserved(n, gw.as_ref(), &addr))
    }
}

/// Take an address back from a server (the seed's POST, or DELETE).
#[utoipa::path(post, path = "/dci/v3/server/{id}/ip/{ip_id}", tag = "ipam", responses((status = 200, body = TaskAnswer), (status = 409)))]
pub async fn release_ip(
    caller: Caller,
    State(st): State<AppState>,
    Path((id, ip_id)): Path<(i64, i64)>,
    _body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    let id = ServerId(id);
    caller.require_admin()?;
    let ip = st.store.get_ip(ip_id).await?;
    if ip.server_id != Some(id) {
        return Err(ApiError::not_found("ip of server", format!("{ip_id} of server {id}")));
    }
    let ip_id = IpId(ip_id);
    let op = Operation::IpRelease(IpRelease { ip_id });
    let task = st.engine.submit_marking_ip(id, ip_id, IpStatus::Deleting, &op).await?;
    Ok(Json(TaskAnswer { id: id.get(), task: task.get() }))
}

/// The same as a DELETE.
#[utoipa::path(delete, path = "/dci/v3/server/{id}/ip/{ip_id}", tag = "ipam", responses((status = 200, body = TaskAnswer), (status = 409)))]
pub async fn release_ip_delete(
    caller: Caller,
    state: State<AppState>,
    path: Path<(i64, i64)>,
    body: Body<Empty>,
) -> ApiResult<Json<TaskAnswer>> {
    release_ip(caller, state, path, body).await
}
