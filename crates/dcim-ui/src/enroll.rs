//! A server's inventory for admins: enrolling a new server, and a server's inventory
//! page with its details, its placement (location, rack, unit and height), its BMC
//! access, its switch ports and PDU outlet picked from the free ones of its location,
//! its hardware entered by hand, its addresses (the next free of a pool or a network,
//! or a chosen one, optionally the main one; made the main one later; taken back), and
//! its deletion
//! (refused while it has an owner).
//!
//! The BMC's password is write-only: no page holds it. The API replaces a BMC's access
//! as a whole, so the BMC form asks for the password again whenever it is saved.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, ListParams, Path};
use dcim_api::routes::{ip, servers as api};
use dcim_api::wire::Empty;
use dcim_api::wire::ip::IpRequest;
use dcim_api::wire::server::{
    IpmiInput, NewServer, PduConnectionRequest, PlatformInput, Server, ServerEdit, SwitchConnectionRequest,
};
use dcim_core::{BmcType, IpStatus};
use dcim_store::ids::ServerId;
use dcim_store::inventory::DeviceKind;
use serde::Deserialize;

use crate::session::Ui;
use crate::shared::{Choice, answer, query, show};
use crate::view::{Chrome, Refusal};

/// The BMC kinds a form offers.
pub const BMC_TYPES: &[BmcType] = &[BmcType::IpmiLanplus, BmcType::Ipmi15, BmcType::Redfish, BmcType::Fake];

/// Every field of the inventory forms. Debug leaves the BMC password out.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct InventoryForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    domain: String,
    location_id: String,
    rack_id: String,
    unit: String,
    size: String,
    mac: String,
    barcode: String,
    serial_number: String,
    model: String,
    note: String,
    bmc_type: String,
    bmc_address: String,
    bmc_user: String,
    bmc_password: String,
    bmc_web_url: String,
    port: String,
    is_ipmi_connection: Option<String>,
    connection: String,
    hardware_info: String,
    /// An address's source: `pool:ID` or `net:ID`.
    source: String,
    ip_name: String,
    ip_domain: String,
    family: String,
    main: Option<String>,
    ip: String,
}

impl std::fmt::Debug for InventoryForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryForm").field("name", &self.name).finish_non_exhaustive()
    }
}

/// An optional whole number of a form: empty is none.
fn opt_int(field: &str, v: &str) -> Result<Option<i64>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| ApiError::invalid(field, "must be a whole number"))
}

fn int_of(field: &str, v: &str) -> Result<i64, ApiError> {
    v.trim().parse().map_err(|_| ApiError::invalid(field, "choose one"))
}

fn opt_text(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

impl InventoryForm {
    /// The BMC access of the form; none when no address was typed.
    fn bmc(&self) -> Option<IpmiInput> {
        opt_text(&self.bmc_address).map(|address| IpmiInput {
            address,
            kind: self.bmc_type.clone(),
            user: self.bmc_user.trim().to_owned(),
            password: self.bmc_password.clone(),
            web_url: opt_text(&self.bmc_web_url),
            tls_fingerprint: None,
        })
    }
}

/// What the enrollment and inventory forms pick from.
pub struct Choices {
    pub locations: Vec<Choice>,
    /// Racks as "location / rack", by id.
    pub racks: Vec<Choice>,
}

async fn choices(st: &AppState, location: Option<i64>) -> Result<Choices, ApiError> {
    let locs = st.store.list_locations(&query("", "name asc", "")?).await?.items;
    let w = location.map(|l| format!("location_id EQ {l}")).unwrap_or_default();
    let racks = st.store.list_racks(&query(&w, "name asc", "")?).await?.items;
    let loc_name = |id: i64| locs.iter().find(|l| l.id == id).map(|l| l.name.clone()).unwrap_or_default();
    Ok(Choices {
        racks: racks
            .into_iter()
            .map(|r| Choice {
                value: r.id.to_string(),
                label: format!("{} / {} ({}U)", loc_name(r.location_id), r.name, r.size),
            })
            .collect(),
        locations: locs.iter().map(|l| Choice { value: l.id.to_string(), label: l.name.clone() }).collect(),
    })
}

#[derive(Template)]
#[template(path = "server_new.html")]
struct NewPage {
    chrome: Chrome,
    c: Choices,
    bmc_types: &'static [BmcType],
    f: InventoryForm,
    refusal: Refusal,
}

async fn new_page(ui: &Ui, st: &AppState, f: InventoryForm) -> Result<NewPage, ApiError> {
    ui.caller.require_admin()?;
    Ok(NewPage {
        chrome: ui.chrome("servers"),
        c: choices(st, None).await?,
        bmc_types: BMC_TYPES,
        f,
        refusal: Refusal::default(),
    })
}

/// `GET /ui/servers/new`.
pub async fn new_server(ui: Ui, State(st): State<AppState>) -> Response {
    let f = InventoryForm { size: "1".into(), bmc_type: BMC_TYPES[0].as_str().into(), ..InventoryForm::default() };
    show(&ui, new_page(&ui, &st, f)).await
}

async fn create(ui: &Ui, st: &AppState, f: &InventoryForm) -> Result<i64, ApiError> {
    let location_id =
        opt_int("location_id", &f.location_id)?.ok_or_else(|| ApiError::invalid("location_id", "choose one"))?;
    let b = NewServer {
        name: f.name.clone(),
        location_id,
        rack_id: opt_int("rack_id", &f.rack_id)?,
        unit: opt_int("unit", &f.unit)?,
        mac: opt_text(&f.mac),
        domain: f.domain.trim().to_owned(),
        ipmi: f.bmc(),
        barcode: f.barcode.trim().to_owned(),
        serial_number: f.serial_number.trim().to_owned(),
        model: f.model.trim().to_owned(),
        note: f.note.clone(),
        user_note: String::new(),
        platform: Some(PlatformInput { name: None, size: opt_int("platform.size", &f.size)? }),
    };
    Ok(api::create_server(ui.caller.clone(), State(st.clone()), Body(b)).await?.1.id)
}

/// `POST /ui/servers/new`: the new server, then its inventory page.
pub async fn create_server(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<InventoryForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let done = create(&ui, &st, &f).await.map(|id| format!("/ui/servers/{id}/inventory"));
    // Shown again as typed, but for the password.
    let kept = InventoryForm { bmc_password: String::new(), ..f };
    answer(&ui, done, "create", new_page(&ui, &st, kept), |p| &mut p.refusal).await
}

pub struct Connected {
    pub connection: i64,
    pub device: String,
    pub port: String,
    pub ipmi: bool,
}

#[derive(Template)]
#[template(path = "server_inventory.html")]
struct InventoryPage {
    chrome: Chrome,
    s: Server,
    size: i64,
    c: Choices,
    bmc_types: &'static [BmcType],
    ports: Vec<Connected>,
    outlet: Option<Connected>,
    free_ports: Vec<Choice>,
    free_outlets: Vec<Choice>,
    hardware: String,
    ips: Vec<dcim_api::wire::ip::Ip>,
    /// The server's main IPv4 and IPv6 address ids.
    main_ips: Vec<i64>,
    sources: Vec<Choice>,
    refusal: Refusal,
}

/// Where an address can come from: every pool, then every network.
async fn sources(ui: &Ui, st: &AppState) -> Result<Vec<Choice>, ApiError> {
    let q = || query("", "name asc", "");
    let pools = ip::list_pools(ui.caller.clone(), State(st.clone()), ListParams(q()?)).await?.0.list;
    let nets = ip::list_ipnets(ui.caller.clone(), State(st.clone()), ListParams(q()?)).await?.0.list;
    let mut out: Vec<Choice> = pools
        .into_iter()
        .map(|p| Choice { value: format!("pool:{}", p.id), label: format!("pool {}", p.name) })
        .collect();
    out.extend(
        nets.into_iter().map(|n| Choice { value: format!("net:{}", n.id), label: format!("network {}", n.name) }),
    );
    Ok(out)
}

/// The unconnected ports (or outlets) of the devices of a location.
async fn free(st: &AppState, kind: DeviceKind, location: i64) -> Result<Vec<Choice>, ApiError> {
    let mut out = vec![];
    let devices = st.store.list_devices(kind, &query(&format!("location_id EQ {location}"), "name asc", "")?).await?;
    for d in devices.items {
        for p in st.store.list_ports(kind, d.id, &query("server IS null", "index asc", "")?).await?.items {
            out.push(Choice { value: p.id.to_string(), label: format!("{} {}", d.name, p.name) });
        }
    }
    Ok(out)
}

async fn inventory_page(ui: &Ui, st: &AppState, id: i64) -> Result<InventoryPage, ApiError> {
    ui.caller.require_admin()?;
    let s: Server = st.store.get_server(ServerId(id), &ui.caller.server_scope()).await?.into();
    let hardware = serde_json::from_str::<serde_json::Value>(s.hardware_info.get())
        .ok()
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default();
    Ok(InventoryPage {
        chrome: ui.chrome("servers"),
        size: s.platform.as_ref().map_or(1, |p| p.size),
        c: choices(st, Some(s.location_id)).await?,
        bmc_types: BMC_TYPES,
        ports: s
            .switch_connection
            .iter()
            .map(|c| Connected {
                connection: c.connection_id,
                device: c.switch_name.clone(),
                port: c.description.clone(),
                ipmi: c.is_ipmi_connection,
            })
            .collect(),
        outlet: s.pdu_connection.as_ref().map(|p| Connected {
            connection: p.connection_id,
            device: p.pdu_name.clone(),
            port: p.port_identity.clone(),
            ipmi: false,
        }),
        free_ports: free(st, DeviceKind::Switch, s.location_id).await?,
        free_outlets: free(st, DeviceKind::Pdu, s.location_id).await?,
        hardware,
        ips: ip::server_ips(ui.caller.clone(), State(st.clone()), Path(id), ListParams(query("", "", "")?))
            .await?
            .0
            .list,
        sources: sources(ui, st).await?,
        main_ips: [s.main_ipv4, s.main_ipv6].into_iter().flatten().collect(),
        s,
        refusal: Refusal::default(),
    })
}

/// `GET /ui/servers/{id}/inventory`.
pub async fn inventory(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, inventory_page(&ui, &st, id)).await
}

/// Runs inventory action `action` on server `id`; the answer is where to go next.
async fn run(ui: &Ui, st: &AppState, id: i64, action: &str, f: InventoryForm) -> Result<String, ApiError> {
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let back = format!("/ui/servers/{id}/inventory");
    match action {
        "edit" => {
            let unit = opt_int("unit", &f.unit)?;
            let b = ServerEdit {
                name: Some(f.name),
                domain: Some(f.domain.trim().to_owned()),
                mac: Some(opt_text(&f.mac)),
                rack_id: Some(opt_int("rack_id", &f.rack_id)?),
                unit: Some(unit),
                barcode: Some(f.barcode.trim().to_owned()),
                serial_number: Some(f.serial_number.trim().to_owned()),
                model: Some(f.model.trim().to_owned()),
                note: Some(f.note),
                platform: Some(PlatformInput { name: None, size: opt_int("platform.size", &f.size)? }),
                ..ServerEdit::default()
            };
            api::edit_server(c, s, Path(id), Body(b)).await.map(drop)?;
        }
        "bmc" => {
            let b = ServerEdit { ipmi: Some(f.bmc()), ..ServerEdit::default() };
            api::edit_server(c, s, Path(id), Body(b)).await.map(drop)?;
        }
        "connect_port" => {
            let port = opt_int("port", &f.port)?.ok_or_else(|| ApiError::invalid("port", "choose one"))?;
            let b = SwitchConnectionRequest { port, is_ipmi_connection: f.is_ipmi_connection.is_some() };
            api::connect_switch(c, s, Path(id), Body(b)).await.map(drop)?;
        }
        "connect_outlet" => {
            let port = opt_int("port", &f.port)?.ok_or_else(|| ApiError::invalid("port", "choose one"))?;
            api::connect_pdu(c, s, Path(id), Body(PduConnectionRequest { port })).await.map(drop)?;
        }
        "disconnect_port" | "disconnect_outlet" => {
            let cid =
                opt_int("connection", &f.connection)?.ok_or_else(|| ApiError::invalid("connection", "choose one"))?;
            if action == "disconnect_port" {
                api::disconnect_switch(c, s, Path((id, cid)), Body(Empty {})).await.map(drop)?;
            } else {
                api::disconnect_pdu(c, s, Path((id, cid)), Body(Empty {})).await.map(drop)?;
            }
        }
        "hardware" => {
            let v: serde_json::Value = serde_json::from_str(&f.hardware_info)
                .map_err(|e| ApiError::invalid("hardware_info", format!("is not JSON: {e}")))?;
            api::set_hardware_info(c, s, Path(id), Body(v)).await.map(drop)?;
        }
        "allocate_ip" => {
            let (pool, net) = match f.source.split_once(':') {
                Some(("pool", n)) => (Some(int_of("source", n)?), None),
                Some(("net", n)) => (None, Some(int_of("source", n)?)),
                _ => (None, None),
            };
            let b = IpRequest {
                domain: f.ip_domain.trim().to_owned(),
                family: opt_text(&f.family),
                ip_name: opt_text(&f.ip_name),
                ip_net: net,
                ip_pool: pool,
                set_as_main_ipv4: f.main.is_some(),
                userspace: None,
            };
            ip::allocate_ip(c, s, Path(id), Body(b)).await.map(drop)?;
        }
        "main_ip" => {
            let ip_id = opt_int("ip", &f.ip)?.ok_or_else(|| ApiError::invalid("ip", "choose one"))?;
            let b = if f.family == "ipv6" {
                ServerEdit { main_ipv6: Some(Some(ip_id)), ..ServerEdit::default() }
            } else {
                ServerEdit { main_ipv4: Some(Some(ip_id)), ..ServerEdit::default() }
            };
            api::edit_server(c, s, Path(id), Body(b)).await.map(drop)?;
        }
        "release_ip" => {
            let ip_id = opt_int("ip", &f.ip)?.ok_or_else(|| ApiError::invalid("ip", "choose one"))?;
            ip::release_ip(c, s, Path((id, ip_id)), Body(Empty {})).await.map(drop)?;
        }
        "delete" => {
            api::delete_server(c, s, Path(id), Body(Empty {})).await.map(drop)?;
            return Ok("/ui/servers".to_owned());
        }
        _ => return Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    }
    Ok(back)
}

/// `POST /ui/servers/{id}/inventory/{action}`: `edit`, `bmc`, `connect_port`,
/// `connect_outlet`, `disconnect_port`, `disconnect_outlet`, `hardware`, `allocate_ip`,
/// `main_ip`, `release_ip` or `delete`.
pub async fn inventory_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<InventoryForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let typed_hardware = f.hardware_info.clone();
    let done = run(&ui, &st, id, &action, f).await;
    let form = match action.as_str() {
        "disconnect_port" | "connect_port" => "ports",
        "disconnect_outlet" | "connect_outlet" => "outlet",
        "allocate_ip" | "release_ip" | "main_ip" => "ip",
        a => a,
    };
    answer(&ui, done, form, inventory_page(&ui, &st, id), |p| {
        if action == "hardware" {
            p.hardware = typed_hardware;
        }
        &mut p.refusal
    })
    .await
}
