//! The fake lab's panel for admins, as the demo uses it: the built-in fake devices'
//! state (each machine's power, next boot device, network boots and commands), their
//! delay, the faults injected into them, and the hardware the fake agent reports for
//! a MAC. It exists only where the fake drivers are on (`--demo`, `fake_drivers`) and
//! something uses them (a server with a `fake` BMC, or a `fake` switch or PDU):
//! otherwise the page is not found and the dashboard does not link to it. Every change goes through the API's `/dci/v3/fake*` handlers.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, Path};
use dcim_api::routes::operations::{self as ops, DelayRequest, FakeHardwareRequest, FaultRequest};
use dcim_api::wire::Empty;
use dcim_store::inventory::DeviceKind;
use serde::Deserialize;

use crate::session::Ui;
use crate::shared::{answer, fail, query, show};
use crate::view::{Chrome, Refusal};

/// Whether any server, switch or PDU uses the fake drivers.
pub async fn in_use(st: &AppState) -> Result<bool, ApiError> {
    if st.engine.drivers.fake.is_none() {
        return Ok(false); // off in this server: no fake device can be driven
    }
    let servers = st.store.list_servers(&query("ipmi.type EQ 'fake'", "", "0,0")?, &[]).await?.size;
    if servers > 0 {
        return Ok(true);
    }
    for kind in [DeviceKind::Switch, DeviceKind::Pdu] {
        if st.store.list_devices(kind, &query("protocol EQ 'fake'", "", "0,0")?).await?.size > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

pub struct MachineRow {
    pub address: String,
    pub power: String,
    pub next_boot: String,
    pub persistent: bool,
    pub net_boots: u64,
    pub commands: u64,
}

pub struct FaultRow {
    pub device: String,
    pub op: String,
    pub times: String,
    pub transient: bool,
    pub message: String,
}

#[derive(Template)]
#[template(path = "lab.html")]
struct Lab {
    chrome: Chrome,
    delay_ms: u64,
    machines: Vec<MachineRow>,
    faults: Vec<FaultRow>,
    ops: &'static [&'static str],
    refusal: Refusal,
}

async fn lab_page(ui: &Ui, st: &AppState) -> Result<Lab, ApiError> {
    ui.caller.require_admin()?;
    if !in_use(st).await? {
        return Err(ApiError::new(ErrorKind::NotFound, "the fake lab is not in use: no device uses the fake drivers"));
    }
    let v = dcim_api::routes::operations::lab(st)?.view();
    let mut machines: Vec<MachineRow> = v
        .machines
        .iter()
        .map(|(address, m)| MachineRow {
            address: address.clone(),
            power: json_word(&m.power),
            next_boot: json_word(&m.next_boot),
            persistent: m.boot_persistent,
            net_boots: m.net_boots,
            commands: m.commands,
        })
        .collect();
    machines.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(Lab {
        chrome: ui.chrome("lab"),
        delay_ms: v.delay_ms,
        machines,
        faults: v
            .faults
            .iter()
            .map(|f| FaultRow {
                device: f.device.clone(),
                op: f.op.clone(),
                times: f.times.map_or("until cleared".to_owned(), |t| t.to_string()),
                transient: f.transient,
                message: f.message.clone().unwrap_or_default(),
            })
            .collect(),
        ops: dcim_drivers::fake::OPS,
        refusal: Refusal::default(),
    })
}

/// A value's JSON word (`"on"` → `on`), for the enums the lab serializes.
fn json_word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `GET /ui/lab`.
pub async fn lab(ui: Ui, State(st): State<AppState>) -> Response {
    show(&ui, lab_page(&ui, &st)).await
}

/// Every field of the lab's forms.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct LabForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    ms: String,
    device: String,
    op: String,
    times: String,
    transient: Option<String>,
    message: String,
    mac: String,
    hardware: String,
}

async fn run(ui: &Ui, st: &AppState, action: &str, f: LabForm) -> Result<(), ApiError> {
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    match action {
        "delay" => {
            let ms = f.ms.trim().parse().map_err(|_| ApiError::invalid("ms", "a whole number of milliseconds"))?;
            let device = Some(f.device.trim().to_owned()).filter(|d| !d.is_empty());
            ops::fake_delay(c, s, Body(DelayRequest { ms, device })).await.map(drop)
        }
        "fault" => {
            let times = match f.times.trim() {
                "" => None,
                t => Some(
                    t.parse().map_err(|_| ApiError::invalid("times", "a whole number, or empty for until cleared"))?,
                ),
            };
            let b = FaultRequest {
                device: if f.device.trim().is_empty() { "*".into() } else { f.device.trim().to_owned() },
                op: f.op,
                times,
                transient: f.transient.is_some(),
                message: Some(f.message.trim().to_owned()).filter(|m| !m.is_empty()),
                skip: 0,
            };
            ops::fake_fault(c, s, Body(b)).await.map(drop)
        }
        "clear" => ops::fake_clear_faults(c, s, Body(Empty {})).await.map(drop),
        "hardware" => {
            let hardware = serde_json::from_str(&f.hardware)
                .map_err(|e| ApiError::invalid("hardware", format!("is not JSON: {e}")))?;
            ops::fake_hardware(c, s, Body(FakeHardwareRequest { mac: f.mac, hardware })).await.map(drop)
        }
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    }
}

/// `POST /ui/lab/{action}`: `delay`, `fault`, `clear` or `hardware`.
pub async fn lab_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(f): Form<LabForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    if let Err(e) = ui.caller.require_admin() {
        return fail(e, &ui);
    }
    match in_use(&st).await {
        Ok(true) => {}
        Ok(false) => return fail(ApiError::new(ErrorKind::NotFound, "the fake lab is not in use"), &ui),
        Err(e) => return fail(e, &ui),
    }
    let done = run(&ui, &st, &action, f).await.map(|()| "/ui/lab".to_owned());
    answer(&ui, done, &action, lab_page(&ui, &st), |p| &mut p.refusal).await
}
