//! IP address management for admins: networks and pools with how full they are (the
//! same counts the API reports: decimal strings, exact for IPv6; the bar is their
//! ratio), a network's and a pool's page to edit them and a pool's ranges, and the
//! address list filtered by network, pool, server and status or searched by address.
//! Giving a server an address and taking it back are on the server's inventory page
//! (`enroll.rs`), through the same API handlers.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, ListParams, Path};
use dcim_api::routes::{ip as api, ipmgr};
use dcim_api::wire::Empty;
use dcim_api::wire::ip::{Ip, IpnetEdit, Ippool, IppoolEdit, NewIpnet, NewIppool, PoolRange, Range, RangeBody};
use dcim_store::ids::ServerId;
use serde::Deserialize;

use crate::filter::{self, quote};
use crate::session::Ui;
use crate::shared::{Choice, Pager, answer, fail, query, show};
use crate::view::{Chrome, Refusal, render};

/// Addresses a page of the address list shows.
pub const ADDRESS_PAGE: u32 = 100;

/// How full a network or a pool is.
pub struct Usage {
    pub used: String,
    pub total: String,
    /// 0 to 100, for the bar.
    pub percent: u32,
}

impl Usage {
    fn new(used: &str, total: &str) -> Usage {
        // The counts are decimal strings (an IPv6 network holds more than any integer
        // type); their ratio only needs a float.
        let (u, t) = (used.parse::<f64>().unwrap_or(0.0), total.parse::<f64>().unwrap_or(0.0));
        let percent = if t > 0.0 { ((u / t) * 100.0).ceil().clamp(0.0, 100.0) as u32 } else { 0 };
        Usage { used: used.to_owned(), total: total.to_owned(), percent }
    }

    /// The bar's width class: CSP allows no inline style, so widths come in steps of 5.
    pub fn step(&self) -> u32 {
        if self.percent == 0 { 0 } else { self.percent.div_ceil(5) * 5 }
    }
}

pub struct NetRow {
    pub id: i64,
    pub name: String,
    pub family: &'static str,
    pub gateway: String,
    pub vlan: String,
    pub note: String,
    pub usage: Usage,
    pub pools: usize,
}

pub struct PoolRow {
    pub id: i64,
    pub name: String,
    pub note: String,
    pub networks: String,
    pub usage: Usage,
}

/// Every field of the IPAM forms.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default)]
pub struct IpamForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    gateway: String,
    vlan: String,
    note: String,
    ipnet: String,
    start: String,
    end: String,
    range: String,
    is_public: Option<String>,
}

#[derive(Template)]
#[template(path = "ipam.html")]
struct Ipam {
    chrome: Chrome,
    nets: Vec<NetRow>,
    pools: Vec<PoolRow>,
    net_choices: Vec<Choice>,
    f: IpamForm,
    refusal: Refusal,
}

async fn ipam_page(ui: &Ui, st: &AppState, f: IpamForm) -> Result<Ipam, ApiError> {
    ui.caller.require_admin()?;
    let c = ui.caller.clone();
    let nets = api::list_ipnets(c.clone(), State(st.clone()), ListParams(query("", "name asc", "")?)).await?.0.list;
    let pools = api::list_pools(c, State(st.clone()), ListParams(query("", "name asc", "")?)).await?.0.list;
    Ok(Ipam {
        chrome: ui.chrome("ipam"),
        net_choices: nets.iter().map(|n| Choice { value: n.id.to_string(), label: n.name.clone() }).collect(),
        nets: nets
            .into_iter()
            .map(|n| NetRow {
                usage: Usage::new(&n.using_ip, &n.total_ip),
                id: n.id,
                family: if n.family == 10 { "IPv6" } else { "IPv4" },
                name: n.name,
                gateway: n.gateway,
                vlan: n.vlan,
                note: n.note,
                pools: n.ippools.len(),
            })
            .collect(),
        pools: pools.into_iter().map(pool_row).collect(),
        f,
        refusal: Refusal::default(),
    })
}

fn pool_row(p: Ippool) -> PoolRow {
    PoolRow {
        usage: Usage::new(&p.using_ip, &p.total_ip),
        id: p.id,
        networks: p.ipnets.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
        name: p.name,
        note: p.note,
    }
}

/// `GET /ui/ipam`.
pub async fn ipam(ui: Ui, State(st): State<AppState>) -> Response {
    show(&ui, ipam_page(&ui, &st, IpamForm::default())).await
}

fn int(field: &str, v: &str) -> Result<i64, ApiError> {
    v.trim().parse().map_err(|_| ApiError::invalid(field, "choose one"))
}

/// `POST /ui/ipam/{kind}`: a new network (`networks`) or pool (`pools`), then its page.
pub async fn create(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    Form(f): Form<IpamForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let made = match kind.as_str() {
        "networks" => {
            let gateway = Some(f.gateway.trim().to_owned()).filter(|g| !g.is_empty());
            let b = NewIpnet {
                name: f.name.trim().to_owned(),
                gateway,
                vlan: f.vlan.clone(),
                note: f.note.clone(),
                need_reserve: None,
            };
            api::create_ipnet(c, s, Body(b)).await.map(|(_, id)| format!("/ui/ipam/networks/{}", id.id))
        }
        "pools" => match int("ipnet", &f.ipnet) {
            Ok(ipnet) => {
                let range = PoolRange { ipnet, start: f.start.trim().to_owned(), end: f.end.trim().to_owned() };
                let b = NewIppool {
                    name: f.name.clone(),
                    note: f.note.clone(),
                    is_public: f.is_public.is_some(),
                    ranges: vec![range],
                };
                api::create_pool(c, s, Body(b)).await.map(|(_, id)| format!("/ui/ipam/pools/{}", id.id))
            }
            Err(e) => Err(e),
        },
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no {kind} to make"))),
    };
    answer(&ui, made, &kind, ipam_page(&ui, &st, f), |p| &mut p.refusal).await
}

#[derive(Template)]
#[template(path = "ipam_network.html")]
struct NetworkPage {
    chrome: Chrome,
    n: NetRow,
    pools: Vec<PoolRow>,
    addresses_href: String,
    refusal: Refusal,
}

async fn network_page(ui: &Ui, st: &AppState, id: i64) -> Result<NetworkPage, ApiError> {
    ui.caller.require_admin()?;
    let n = api::get_ipnet(ui.caller.clone(), State(st.clone()), Path(id)).await?.0;
    let pool_ids = n.ippools.clone();
    let all =
        api::list_pools(ui.caller.clone(), State(st.clone()), ListParams(query("", "name asc", "")?)).await?.0.list;
    Ok(NetworkPage {
        chrome: ui.chrome("ipam"),
        pools: all.into_iter().filter(|p| pool_ids.contains(&p.id)).map(pool_row).collect(),
        addresses_href: format!("/ui/ipam/addresses?net={id}"),
        n: NetRow {
            usage: Usage::new(&n.using_ip, &n.total_ip),
            id: n.id,
            family: if n.family == 10 { "IPv6" } else { "IPv4" },
            name: n.name,
            gateway: n.gateway,
            vlan: n.vlan,
            note: n.note,
            pools: n.ippools.len(),
        },
        refusal: Refusal::default(),
    })
}

/// `GET /ui/ipam/networks/{id}`.
pub async fn network(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, network_page(&ui, &st, id)).await
}

#[derive(Template)]
#[template(path = "ipam_pool.html")]
struct PoolPage {
    chrome: Chrome,
    p: PoolRow,
    is_public: bool,
    ranges: Vec<Range>,
    addresses_href: String,
    refusal: Refusal,
}

async fn pool_page(ui: &Ui, st: &AppState, id: i64) -> Result<PoolPage, ApiError> {
    ui.caller.require_admin()?;
    let p = api::get_pool(ui.caller.clone(), State(st.clone()), Path(id)).await?.0;
    let q = query(&format!("ippool EQ {id}"), "id asc", "")?;
    let ranges = ipmgr::list_ranges(ui.caller.clone(), State(st.clone()), ListParams(q)).await?.0.list;
    Ok(PoolPage {
        chrome: ui.chrome("ipam"),
        is_public: p.is_public == "true",
        p: pool_row(p),
        ranges,
        addresses_href: format!("/ui/ipam/addresses?pool={id}"),
        refusal: Refusal::default(),
    })
}

/// `GET /ui/ipam/pools/{id}`.
pub async fn pool(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, pool_page(&ui, &st, id)).await
}

/// `POST /ui/ipam/networks/{id}/{action}`: `edit` or `delete`.
pub async fn network_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<IpamForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let done = match action.as_str() {
        "edit" => {
            let b = IpnetEdit {
                name: None,
                gateway: Some(f.gateway),
                vlan: Some(f.vlan),
                note: Some(f.note),
                need_reserve: None,
            };
            api::edit_ipnet(c, s, Path(id), Body(b)).await.map(|_| format!("/ui/ipam/networks/{id}"))
        }
        "delete" => api::delete_ipnet(c, s, Path(id), Body(Empty {})).await.map(|_| "/ui/ipam".to_owned()),
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    answer(&ui, done, &action, network_page(&ui, &st, id), |p| &mut p.refusal).await
}

/// `POST /ui/ipam/pools/{id}/{action}`: `edit`, `range` (a new range) or `delete`.
pub async fn pool_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<IpamForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let back = format!("/ui/ipam/pools/{id}");
    let done = match action.as_str() {
        "edit" => {
            let b = IppoolEdit { name: Some(f.name), note: Some(f.note), is_public: Some(f.is_public.is_some()) };
            api::edit_pool(c, s, Path(id), Body(b)).await.map(|_| back)
        }
        "range" => {
            ipmgr::create_range(c, s, Path(id), Body(RangeBody { name: f.range.trim().to_owned() })).await.map(|_| back)
        }
        "delete" => api::delete_pool(c, s, Path(id), Body(Empty {})).await.map(|_| "/ui/ipam".to_owned()),
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    answer(&ui, done, &action, pool_page(&ui, &st, id), |p| &mut p.refusal).await
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct AddressFilter {
    net: String,
    pool: String,
    server: String,
    status: String,
    q: String,
    page: Option<u32>,
}

impl AddressFilter {
    fn to_where(&self) -> String {
        let mut parts = vec![];
        for (field, v) in [("ipnet", &self.net), ("pool", &self.pool), ("server", &self.server)] {
            if let Ok(n) = v.trim().parse::<i64>() {
                parts.push(format!("{field} EQ {n}"));
            }
        }
        if !self.status.trim().is_empty() {
            parts.push(format!("status EQ {}", quote(self.status.trim())));
        }
        if !self.q.trim().is_empty() {
            parts.push(format!("name CP {}", quote(&format!("%{}%", self.q.trim()))));
        }
        parts.join(" AND ")
    }

    fn link(&self, page: u32) -> String {
        format!(
            "/ui/ipam/addresses?net={}&pool={}&server={}&status={}&q={}&page={page}",
            filter::encode(&self.net),
            filter::encode(&self.pool),
            filter::encode(&self.server),
            filter::encode(&self.status),
            filter::encode(&self.q)
        )
    }
}

pub struct AddressRow {
    pub ip: Ip,
    pub server_id: Option<i64>,
}

#[derive(Template)]
#[template(path = "ipam_addresses.html")]
struct Addresses {
    chrome: Chrome,
    f: AddressFilter,
    rows: Vec<AddressRow>,
    pager: Pager,
    nets: Vec<Choice>,
    pools: Vec<Choice>,
    error: String,
}

/// `GET /ui/ipam/addresses`: 100 a page, by address.
pub async fn addresses(ui: Ui, State(st): State<AppState>, Query(f): Query<AddressFilter>) -> Response {
    let page = async {
        ui.caller.require_admin()?;
        let nets = st.store.ipnets_plain().await?;
        let pools =
            api::list_pools(ui.caller.clone(), State(st.clone()), ListParams(query("", "name asc", "")?)).await?.0.list;
        let page_no = f.page.unwrap_or(1).max(1);
        let offset = (page_no - 1) * ADDRESS_PAGE;
        let mut page = Addresses {
            chrome: ui.chrome("ipam"),
            nets: nets.iter().map(|n| Choice { value: n.id.to_string(), label: n.name.clone() }).collect(),
            pools: pools.iter().map(|p| Choice { value: p.id.to_string(), label: p.name.clone() }).collect(),
            rows: vec![],
            pager: Pager::default(),
            error: String::new(),
            f: f.clone(),
        };
        // Ordered by the address's sortable key: numeric order, not text order.
        let q = match query(&f.to_where(), "", &format!("{offset},{ADDRESS_PAGE}")) {
            Ok(q) => q,
            Err(e) => {
                page.error = e.msg;
                return Ok(page);
            }
        };
        let listed = st.store.list_ips(&q, &ui.caller.server_scope()).await?;
        page.rows = listed
            .items
            .into_iter()
            .map(|r| {
                let server_id = r.server_id.map(ServerId::get);
                AddressRow { ip: api::ip_wire(r), server_id }
            })
            .collect();
        page.pager = Pager::new(offset, page.rows.len(), listed.size, page_no, |n| f.link(n));
        Ok::<_, ApiError>(page)
    };
    match page.await {
        Ok(p) => render(&p, if p.error.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST }),
        Err(e) => fail(e, &ui),
    }
}
