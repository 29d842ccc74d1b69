//! Switches and PDUs for admins: the lists, and a device's page with every port or
//! outlet and the server on it, `sync` with its result, a switch port shut or opened
//! and an outlet switched on, off or rebooted (the confirmation names the server that
//! loses its link or its power), and the device's
//! settings. SNMP secrets are write-only: the settings form never holds a stored
//! community or key; a new one is sent only when typed, and an empty form keeps them.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, Path};
use dcim_api::routes::inventory as inv;
use dcim_api::wire::Empty;
use dcim_api::wire::inventory::{Device, DeviceEdit, OutletPower, PduPortEdit, PortAdmin, SnmpInput, SwitchPortEdit};
use dcim_core::{DeviceProtocol, PortStatus};
use dcim_store::inventory::DeviceKind;
use serde::Deserialize;

use crate::session::Ui;
use crate::shared::{fail, query, show};
use crate::view::{Chrome, Refusal, render};

/// A switch or a PDU in a list.
pub struct DeviceRow {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub ip: String,
    pub protocol: DeviceProtocol,
    pub model: String,
    pub ports: i64,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct Devices {
    chrome: Chrome,
    switches: Vec<DeviceRow>,
    pdus: Vec<DeviceRow>,
}

async fn rows(st: &AppState, kind: DeviceKind) -> Result<Vec<DeviceRow>, ApiError> {
    let names: std::collections::HashMap<i64, String> =
        st.store.list_locations(&query("", "", "")?).await?.items.into_iter().map(|l| (l.id, l.name)).collect();
    Ok(st
        .store
        .list_devices(kind, &query("", "name asc", "")?)
        .await?
        .items
        .into_iter()
        .map(|d| DeviceRow {
            id: d.id,
            location: names.get(&d.location_id).cloned().unwrap_or_default(),
            name: d.name,
            ip: d.ip,
            protocol: d.protocol,
            model: d.model,
            ports: d.port_count,
        })
        .collect())
}

/// `GET /ui/devices`: switches and PDUs.
pub async fn devices(ui: Ui, State(st): State<AppState>) -> Response {
    let page = async {
        ui.caller.require_admin()?;
        Ok::<_, ApiError>(Devices {
            chrome: ui.chrome("devices"),
            switches: rows(&st, DeviceKind::Switch).await?,
            pdus: rows(&st, DeviceKind::Pdu).await?,
        })
    };
    show(&ui, page).await
}

/// A port or an outlet.
pub struct PortLine {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub admin: PortStatus,
    pub oper: PortStatus,
    pub server: Option<(i64, String)>,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    chrome: Chrome,
    /// `switches` or `pdus`: the path's noun.
    noun: &'static str,
    d: Device,
    location: String,
    ports: Vec<PortLine>,
    /// What the last sync did, shown after it.
    synced: bool,
    refusal: Refusal,
}

async fn device_page(ui: &Ui, st: &AppState, kind: DeviceKind, id: i64) -> Result<DevicePage, ApiError> {
    ui.caller.require_admin()?;
    let row = st.store.get_device(kind, id).await?;
    let location = st.store.get_location(row.location_id).await.map(|l| l.name).unwrap_or_default();
    let ports = st
        .store
        .list_ports(kind, id, &query("", "index asc", "")?)
        .await?
        .items
        .into_iter()
        .map(|p| PortLine {
            id: p.id,
            name: p.name,
            description: p.description,
            admin: p.admin_status,
            oper: p.oper_status,
            server: p.server_id.zip(p.server_name),
        })
        .collect();
    let (d, noun) = match kind {
        DeviceKind::Switch => (Device::switch(row), "switches"),
        DeviceKind::Pdu => (Device::pdu(row), "pdus"),
    };
    Ok(DevicePage {
        chrome: ui.chrome("devices"),
        noun,
        d,
        location,
        ports,
        synced: false,
        refusal: Refusal::default(),
    })
}

/// `GET /ui/switches/{id}`.
pub async fn switch(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    device(ui, st, DeviceKind::Switch, id).await
}

/// `GET /ui/pdus/{id}`.
pub async fn pdu(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    device(ui, st, DeviceKind::Pdu, id).await
}

async fn device(ui: Ui, st: AppState, kind: DeviceKind, id: i64) -> Response {
    show(&ui, device_page(&ui, &st, kind, id)).await
}

/// Every field of the device forms. Debug leaves the secrets out.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeviceForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    ip: String,
    community: String,
    snmp_user: String,
    auth_protocol: String,
    auth_password: String,
    priv_protocol: String,
    priv_password: String,
    port: String,
}

impl std::fmt::Debug for DeviceForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceForm").field("name", &self.name).field("ip", &self.ip).finish_non_exhaustive()
    }
}

fn some(v: String) -> Option<String> {
    let v = v.trim().to_owned();
    (!v.is_empty()).then_some(v)
}

impl DeviceForm {
    /// The SNMP access data to send: none when nothing was typed, so stored secrets stay.
    fn snmp(&mut self) -> Option<SnmpInput> {
        let s = SnmpInput {
            community: some(std::mem::take(&mut self.community)),
            user: some(std::mem::take(&mut self.snmp_user)),
            auth_protocol: some(std::mem::take(&mut self.auth_protocol)),
            auth_password: some(std::mem::take(&mut self.auth_password)),
            priv_protocol: some(std::mem::take(&mut self.priv_protocol)),
            priv_password: some(std::mem::take(&mut self.priv_password)),
            context: None,
        };
        let any = s.community.is_some() || s.user.is_some();
        any.then_some(s)
    }
}

/// `POST /ui/switches/{id}/{action}`: `sync`, `settings`, `delete`, `port_up` and
/// `port_down` (with `port`).
pub async fn switch_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<DeviceForm>,
) -> Response {
    device_action(ui, st, headers, DeviceKind::Switch, id, action, f).await
}

/// `POST /ui/pdus/{id}/{action}`: `sync`, `settings`, `delete`, `outlet_on`,
/// `outlet_off` and `outlet_reboot` (with `port`).
pub async fn pdu_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<DeviceForm>,
) -> Response {
    device_action(ui, st, headers, DeviceKind::Pdu, id, action, f).await
}

async fn device_action(
    ui: Ui,
    st: AppState,
    headers: HeaderMap,
    kind: DeviceKind,
    id: i64,
    action: String,
    mut f: DeviceForm,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let noun = if kind == DeviceKind::Switch { "switches" } else { "pdus" };
    let page = format!("/ui/{noun}/{id}");
    let switch = kind == DeviceKind::Switch;
    let done: Result<Option<String>, ApiError> = match action.as_str() {
        // A sync's result is the page itself, with the ports as now read.
        "sync" if switch => inv::sync_switch(c, s, Path(id), Body(Empty {})).await.map(|_| None),
        "sync" => inv::sync_pdu(c, s, Path(id), Body(Empty {})).await.map(|_| None),
        "settings" => {
            let b = DeviceEdit {
                name: some(std::mem::take(&mut f.name)),
                ip: some(std::mem::take(&mut f.ip)),
                snmp: f.snmp(),
            };
            let r = if switch {
                inv::edit_switch(c, s, Path(id), Body(b)).await
            } else {
                inv::edit_pdu(c, s, Path(id), Body(b)).await
            };
            r.map(|_| Some(page))
        }
        "delete" => {
            let r = if switch {
                inv::delete_switch(c, s, Path(id), Body(Empty {})).await
            } else {
                inv::delete_pdu(c, s, Path(id), Body(Empty {})).await
            };
            r.map(|_| Some("/ui/devices".to_owned()))
        }
        "port_up" | "port_down" if switch => match f.port.trim().parse::<i64>() {
            Ok(port) => {
                let admin_status = if action == "port_up" { PortAdmin::Up } else { PortAdmin::Down };
                let b = SwitchPortEdit { admin_status };
                inv::edit_switch_port(c, s, Path((id, port)), Body(b))
                    .await
                    .map(|_| Some(format!("{page}#port-{port}")))
            }
            Err(_) => Err(ApiError::invalid("port", "choose a port")),
        },
        "outlet_on" | "outlet_off" | "outlet_reboot" if !switch => match f.port.trim().parse::<i64>() {
            Ok(port) => {
                let power_status = match action.as_str() {
                    "outlet_on" => OutletPower::On,
                    "outlet_off" => OutletPower::Off,
                    _ => OutletPower::Reboot,
                };
                let b = PduPortEdit { power_status };
                inv::edit_pdu_port(c, s, Path((id, port)), Body(b)).await.map(|_| Some(format!("{page}#port-{port}")))
            }
            Err(_) => Err(ApiError::invalid("port", "choose an outlet")),
        },
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    match done {
        Ok(Some(to)) => Redirect::to(&to).into_response(),
        Ok(None) => match device_page(&ui, &st, kind, id).await {
            Ok(mut p) => {
                p.synced = true;
                render(&p, StatusCode::OK)
            }
            Err(e) => fail(e, &ui),
        },
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::NoHandler | ErrorKind::Forbidden) => fail(e, &ui),
        Err(e) => match device_page(&ui, &st, kind, id).await {
            Ok(mut p) => {
                let form =
                    if action.starts_with("port_") || action.starts_with("outlet_") { "port" } else { action.as_str() };
                let status = p.refusal.set(form, e);
                render(&p, status)
            }
            Err(e) => fail(e, &ui),
        },
    }
}
