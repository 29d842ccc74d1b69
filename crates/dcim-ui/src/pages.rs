//! The pages: each one handler that calls the same store functions and API handlers
//! the API routes call, with the caller's own [`Caller`] (so a `@user` sees what the
//! API's `Scope` lets it see, and may do what the API lets it do), and one template.
//!
//! Actions post plain forms (htmx boosts them, so the page is swapped, not reloaded)
//! and answer with a redirect to the server page (post, redirect, get); a refused one
//! renders the page again with the API's message next to the form's field. The live
//! part of a server page and of a task page is a fragment that polls itself every
//! second while a task runs: it reads the database, so it follows a task whichever
//! `dcim` process runs it.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dcim_api::AppState;
use dcim_api::auth::Caller;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, Path};
use dcim_api::routes::{operations as ops, servers as srv};
use dcim_api::wire::Empty;
use dcim_api::wire::server::Server;
use dcim_api::wire::task::Task;
use dcim_core::configuration::HardwareInfo;
use dcim_core::query::ListQuery;
use dcim_core::{BmcType, PortStatus, PowerStatus, ServerState, TemplateType};
use dcim_store::ids::ServerId;
use serde::Deserialize;
use serde_json::Value;

use crate::filter::{self, ServerFilter, quote};
use crate::session::Ui;
use crate::shared::{Choice, Pager, fail, query, show};
use crate::view::{Chrome, render};

// --- dashboard

/// A number with the list it stands for.
pub struct Count {
    pub label: String,
    pub n: i64,
    pub href: String,
}

pub struct BmcIssue {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    total: i64,
    by_state: Vec<Count>,
    by_power: Vec<Count>,
    free: Vec<Count>,
    tasks: Vec<Count>,
    diag_errors: Count,
    bmc_unknown: Vec<BmcIssue>,
    bmc_unknown_total: i64,
    /// Whether the fake lab's panel exists (an admin, and fake devices in use).
    lab: bool,
}

async fn count(st: &AppState, caller: &Caller, w: &str) -> Result<i64, ApiError> {
    Ok(st.store.list_servers(&query(w, "", "0,0")?, &caller.server_scope()).await?.size)
}

fn servers_href(w: &str) -> String {
    format!("/ui/servers?where={}", filter::encode(w))
}

/// `GET /ui/`.
pub async fn dashboard(ui: Ui, State(st): State<AppState>) -> Response {
    show(&ui, dashboard_page(&ui, &st)).await
}

async fn dashboard_page(ui: &Ui, st: &AppState) -> Result<Dashboard, ApiError> {
    let c = &ui.caller;
    let total = count(st, c, "").await?;
    let mut by_state = vec![];
    for s in ServerState::ALL.iter().map(|s| s.as_str()) {
        let w = format!("state EQ {}", quote(s));
        by_state.push(Count { label: s.into(), n: count(st, c, &w).await?, href: servers_href(&w) });
    }
    let mut by_power = vec![];
    for p in PowerStatus::ALL.iter().map(|p| p.as_str()) {
        let w = format!("power_status EQ {}", quote(p));
        by_power.push(Count { label: p.into(), n: count(st, c, &w).await?, href: servers_href(&w) });
    }
    let mut free = vec![];
    if c.is_admin() {
        for conf in st.store.configuration_counts(&query("", "configuration asc", "")?).await?.items {
            let href =
                format!("/ui/servers?configuration={}&rent=free&new=no&state=ok", filter::encode(&conf.configuration));
            free.push(Count { label: conf.configuration, n: conf.free_server_count, href });
        }
    }
    let day_ago = now() - 86_400;
    let mut tasks = vec![];
    for (label, w) in [
        ("running", "status EQ 'running'".to_owned()),
        ("waiting", "status EQ 'pending'".to_owned()),
        ("failed in the last 24 hours", format!("status EQ 'fail' AND finished GT {day_ago}")),
        ("complete in the last 24 hours", format!("status EQ 'complete' AND finished GT {day_ago}")),
    ] {
        let n = st.store.list_tasks(&query(&w, "", "0,0")?, &c.server_scope()).await?.size;
        tasks.push(Count { label: label.into(), n, href: format!("/ui/tasks?where={}", filter::encode(&w)) });
    }
    let w = "diag_error IS NOT null";
    let diag_errors =
        Count { label: "with diagnostics errors".into(), n: count(st, c, w).await?, href: servers_href(w) };
    let w = "power_status EQ 'unknown' AND ipmi.address IS NOT null";
    let page = st.store.list_servers(&query(w, "name asc", "0,10")?, &c.server_scope()).await?;
    let bmc_unknown_total = page.size;
    let bmc_unknown = page
        .items
        .into_iter()
        .map(Server::from)
        .map(|s| {
            let (address, reason) = s
                .ipmi
                .as_ref()
                .map_or((String::new(), String::new()), |i| (i.address.clone(), info_text(&i.status_info)));
            BmcIssue { id: s.id, name: s.name, address, reason: if reason.is_empty() { s.state_info } else { reason } }
        })
        .collect();
    Ok(Dashboard {
        chrome: ui.chrome("dashboard"),
        total,
        by_state,
        by_power,
        free,
        tasks,
        diag_errors,
        bmc_unknown,
        bmc_unknown_total,
        lab: c.is_admin() && crate::lab::in_use(st).await?,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A `status_info`-like value as one line of text.
fn info_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(m) if m.is_empty() => String::new(),
        Value::Object(m) => {
            for k in ["msg", "message", "reason", "error"] {
                if let Some(Value::String(s)) = m.get(k) {
                    return s.clone();
                }
            }
            v.to_string()
        }
        other => other.to_string(),
    }
}

// --- servers

/// A server as a list row and as the head of its page.
pub struct Row {
    pub id: i64,
    pub name: String,
    pub domain: String,
    pub state: ServerState,
    pub power: PowerStatus,
    pub configuration: String,
    pub location: String,
    pub rack: String,
    /// The rack's id, 0 when the server is in none.
    pub rack_id: i64,
    pub unit: String,
    pub owner: String,
    pub mac: String,
    pub is_new: bool,
    pub diag_errors: usize,
    pub operation: String,
}

impl From<&Server> for Row {
    fn from(s: &Server) -> Row {
        Row {
            id: s.id,
            name: s.name.clone(),
            domain: s.domain.clone(),
            state: s.state,
            power: s.power_status,
            configuration: s.configuration.clone().unwrap_or_default(),
            location: s.location.name.clone(),
            rack: s.rack.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
            rack_id: s.rack.as_ref().map_or(0, |r| r.id),
            unit: s.unit.map(|u| u.to_string()).unwrap_or_default(),
            owner: s.owner_email.clone().unwrap_or_default(),
            mac: s.mac.clone().unwrap_or_default(),
            is_new: s.is_new,
            diag_errors: s.diag_error.len(),
            operation: s.operation.as_ref().map(|o| o.status.to_string()).unwrap_or_default(),
        }
    }
}

/// A sortable column header.
pub struct Col {
    pub label: &'static str,
    pub href: String,
    pub mark: &'static str,
}

#[derive(Template)]
#[template(path = "servers.html")]
struct Servers {
    chrome: Chrome,
    f: ServerFilter,
    rows: Vec<Row>,
    pager: Pager,
    cols: Vec<Col>,
    where_text: String,
    api_url: String,
    error: String,
    configurations: Vec<String>,
    actions: Vec<(&'static str, &'static str)>,
    csv_url: String,
}

/// `GET /ui/servers`.
pub async fn servers(ui: Ui, State(st): State<AppState>, Query(f): Query<ServerFilter>) -> Response {
    let mut page = Servers {
        chrome: ui.chrome("servers"),
        rows: vec![],
        pager: Pager::default(),
        cols: vec![],
        where_text: f.to_where(),
        api_url: String::new(),
        error: String::new(),
        configurations: vec![],
        actions: crate::bulk::actions(ui.caller.is_admin()),
        csv_url: format!("/ui/servers.csv?{}", f.query(1, &f.sort)),
        f,
    };
    let f = page.f.clone();
    let sort = f.orderby();
    for (label, field) in [
        ("Name", "name"),
        ("State", "state"),
        ("Power", "power_status"),
        ("Configuration", "configuration"),
        ("Location", "location.name"),
        ("Owner", "owner_email"),
    ] {
        let (dir, mark) = match sort.split_once(' ') {
            Some((s, "asc")) if s == field => ("desc", " ▲"),
            Some((s, _)) if s == field => ("asc", " ▼"),
            _ => ("asc", ""),
        };
        page.cols.push(Col { label, href: format!("/ui/servers?{}", f.query(1, &format!("{field} {dir}"))), mark });
    }
    page.api_url = format!(
        "/api/dci/v3/server?where={}&orderby={}&limit={}",
        filter::encode(&page.where_text),
        filter::encode(&sort),
        filter::encode(&f.limit())
    );
    if ui.caller.is_admin()
        && let Ok(confs) = st.store.configuration_counts(&ListQuery::default()).await
    {
        page.configurations = confs.items.into_iter().map(|c| c.configuration).collect();
    }
    let q = match query(&page.where_text, &sort, &f.limit()) {
        Ok(q) => q,
        Err(e) => {
            page.error = e.msg;
            return render(&page, StatusCode::BAD_REQUEST);
        }
    };
    match st.store.list_servers(&q, &ui.caller.server_scope()).await {
        Ok(p) => {
            page.rows = p.items.into_iter().map(Server::from).map(|s| Row::from(&s)).collect();
            let link = |n: u32| format!("/ui/servers?{}", f.query(n, &f.sort));
            page.pager = Pager::new(f.offset(), page.rows.len(), p.size, f.page(), link);
            render(&page, StatusCode::OK)
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.kind != ErrorKind::BadQuery {
                return fail(e, &ui);
            }
            page.error = e.msg;
            render(&page, StatusCode::BAD_REQUEST)
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SearchQuery {
    q: String,
}

/// `GET /ui/search?q=`: a server list filtered by name, MAC, owner, hardware (serials)
/// or an address the server holds; the answer is that list's URL.
pub async fn search(ui: Ui, State(st): State<AppState>, Query(s): Query<SearchQuery>) -> Response {
    let q = s.q.trim();
    if q.is_empty() {
        return Redirect::to("/ui/servers").into_response();
    }
    let like = quote(&format!("%{q}%"));
    let mut terms: Vec<String> =
        ["name", "domain", "mac", "owner_email", "hardware_info"].iter().map(|f| format!("{f} CP {like}")).collect();
    if let Ok(iq) = query(&format!("name CP {like}"), "", "0,20")
        && let Ok(ips) = st.store.list_ips(&iq, &ui.caller.server_scope()).await
    {
        let mut ids: Vec<ServerId> = ips.items.iter().filter_map(|i| i.server_id).collect();
        ids.sort_unstable();
        ids.dedup();
        terms.extend(ids.iter().map(|id| format!("id EQ {id}")));
    }
    Redirect::to(&format!("/ui/servers?where={}", filter::encode(&terms.join(" OR ")))).into_response()
}

// --- one server

pub struct Step {
    pub name: String,
    pub status: String,
    pub started: String,
    pub finished: String,
    pub message: String,
}

fn steps(progress_info: &[Value]) -> Vec<Step> {
    let text = |v: &Value, k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    progress_info
        .iter()
        .map(|v| Step {
            name: text(v, "name"),
            status: text(v, "status"),
            started: text(v, "started"),
            finished: text(v, "finished"),
            message: text(v, "message"),
        })
        .collect()
}

pub struct DiskRow {
    pub name: String,
    pub size: String,
    pub kind: String,
    pub serial: String,
    pub model: String,
}

pub struct PortRow {
    pub switch: i64,
    pub port: String,
    pub admin: PortStatus,
    pub oper: PortStatus,
    pub ipmi: bool,
}

pub struct IpRow {
    pub address: String,
    pub family: String,
    pub network: String,
    pub gateway: String,
    pub main: bool,
}

/// The part of a server page that changes while a task runs.
#[derive(Template)]
#[template(path = "live.html")]
pub struct Live {
    pub id: i64,
    pub row: Row,
    pub state_info: String,
    /// The current or last task, and whether it is still going.
    pub task: Option<(i64, String)>,
    pub active: bool,
    pub failure: String,
    pub steps: Vec<Step>,
    pub bmc: Option<(BmcType, String, PowerStatus, String, Option<String>)>,
    pub cpu: String,
    pub ram: String,
    pub board: String,
    pub disks: Vec<DiskRow>,
    pub nics: Vec<(String, String)>,
    pub ports: Vec<PortRow>,
    pub pdu: String,
    pub ips: Vec<IpRow>,
    pub os: String,
    pub diag_errors: Vec<(String, String)>,
    pub admin: bool,
    pub csrf: String,
}

fn live_of(s: &Server, ui: &Ui) -> Live {
    let hw: HardwareInfo = serde_json::from_str(s.hardware_info.get()).unwrap_or_default();
    let op = s.operation.as_ref();
    let active = op.is_some_and(|o| o.status.is_active());
    let cpu = hw.cpu.as_ref().map_or(String::new(), |c| {
        let model = c.model.clone().unwrap_or_default();
        match (c.sockets, c.cores) {
            (Some(sk), Some(co)) => format!("{model} ({sk} × {co} cores)"),
            _ => model,
        }
    });
    let ram = hw.memory.as_ref().and_then(|m| m.total_mib).map_or(String::new(), |m| format!("{} GiB", m / 1024));
    let board = hw.motherboard.as_ref().map_or(String::new(), |b| {
        [b.vendor.clone(), b.model.clone(), b.serial.clone().map(|s| format!("serial {s}"))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    let main: Vec<i64> = [s.main_ipv4, s.main_ipv6].into_iter().flatten().collect();
    Live {
        id: s.id,
        row: Row::from(s),
        state_info: s.state_info.clone(),
        task: op.map(|o| (o.id, o.status.to_string())),
        active,
        failure: op.filter(|o| o.status.is_unsuccessful()).map(|o| info_text(&o.status_info)).unwrap_or_default(),
        steps: op.map(|o| steps(&o.progress_info)).unwrap_or_default(),
        bmc: s
            .ipmi
            .as_ref()
            .map(|i| (i.kind, i.address.clone(), i.status, info_text(&i.status_info), i.web_url.clone())),
        cpu,
        ram,
        board,
        disks: hw
            .disks
            .iter()
            .map(|d| DiskRow {
                name: d.name.clone().unwrap_or_default(),
                size: d.size_gb.map(|g| format!("{g} GB")).unwrap_or_default(),
                kind: d.kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
                serial: d.serial.clone().unwrap_or_default(),
                model: d.model.clone().unwrap_or_default(),
            })
            .collect(),
        nics: hw.nics.iter().map(|n| (n.name.clone().unwrap_or_default(), n.mac.clone().unwrap_or_default())).collect(),
        ports: s
            .switch_connection
            .iter()
            .map(|c| PortRow {
                switch: c.switch,
                port: c.description.clone(),
                admin: c.admin_status,
                oper: c.oper_status,
                ipmi: c.is_ipmi_connection,
            })
            .collect(),
        pdu: s
            .pdu_connection
            .as_ref()
            .map(|p| format!("{} outlet {} ({})", p.pdu_name, p.port_identity, p.power_status))
            .unwrap_or_default(),
        ips: s
            .ip
            .iter()
            .map(|i| IpRow {
                address: i.name.clone(),
                family: i.family.clone(),
                network: i.network.clone(),
                gateway: i.gateway.clone(),
                main: main.contains(&i.id),
            })
            .collect(),
        os: s.os_template.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        diag_errors: s.diag_error.iter().map(|d| (d.kind.clone(), d.info.clone())).collect(),
        admin: ui.caller.is_admin(),
        csrf: ui.csrf.clone(),
    }
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    chrome: Chrome,
    live: Live,
    templates: Vec<Choice>,
    diag_templates: Vec<Choice>,
    /// The form that was refused, and the field and message to show by it.
    form: String,
    field: String,
    error: String,
}

async fn server_page(ui: &Ui, st: &AppState, id: i64) -> Result<ServerPage, ApiError> {
    let s: Server = st.store.get_server(ServerId(id), &ui.caller.server_scope()).await?.into();
    let all = st.store.list_os_templates(&query("", "name asc", "")?).await?.items;
    let pick = |kind: TemplateType| {
        all.iter()
            .filter(|t| t.kind == kind)
            .map(|t| Choice { value: t.id.to_string(), label: t.name.clone() })
            .collect::<Vec<_>>()
    };
    Ok(ServerPage {
        chrome: ui.chrome("servers"),
        live: live_of(&s, ui),
        templates: pick(TemplateType::Os),
        diag_templates: pick(TemplateType::Diag),
        form: String::new(),
        field: String::new(),
        error: String::new(),
    })
}

/// `GET /ui/servers/{id}`.
pub async fn server(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, server_page(&ui, &st, id)).await
}

/// `GET /ui/servers/{id}/live`: the fragment a running task's page polls.
pub async fn live(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    match st.store.get_server(ServerId(id), &ui.caller.server_scope()).await {
        Ok(s) => render(&live_of(&Server::from(s), &ui), StatusCode::OK),
        Err(e) => fail(e.into(), &ui),
    }
}

/// Every field any action form has.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct ActionForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    device: String,
    persistent: Option<String>,
    clear_hdd: String,
    setup_ipmi: Option<String>,
    ipmi_pool: String,
    os_template_id: String,
    hdd_raid: String,
    password: String,
    ssh_pub_keys: String,
    hostname: String,
    owner: String,
    confirm: Option<String>,
}

fn int_field(field: &str, v: &str) -> Result<i64, ApiError> {
    v.trim().parse().map_err(|_| ApiError::invalid(field, "choose one"))
}

/// A destructive action's box was ticked; if not, the refusal names the server.
async fn confirmed(st: &AppState, c: &Caller, id: i64, ticked: bool) -> Result<(), ApiError> {
    if ticked {
        return Ok(());
    }
    let name = st.store.get_server(ServerId(id), &c.server_scope()).await?.server.name;
    Err(ApiError::invalid("confirm", format!("tick the box to confirm this on {name}")))
}

/// Runs `action` through the API's own handler, as the caller.
async fn run_action(st: &AppState, c: Caller, id: i64, action: &str, f: ActionForm) -> Result<(), ApiError> {
    let s = State(st.clone());
    match action {
        "power_on" => ops::power_on(c, s, Path(id), Body(Empty {})).await.map(drop),
        "power_off" => ops::power_off(c, s, Path(id), Body(Empty {})).await.map(drop),
        "power_reset" => ops::power_reset(c, s, Path(id), Body(Empty {})).await.map(drop),
        "suspend" => ops::suspend(c, s, Path(id), Body(Empty {})).await.map(drop),
        "resume" => ops::resume(c, s, Path(id), Body(Empty {})).await.map(drop),
        "abort" => ops::abort_operation(c, s, Path(id), Body(Empty {})).await.map(drop),
        "boot_device" => {
            let b = ops::BootDeviceRequest { device: f.device, persistent: f.persistent.is_some(), efi: None };
            ops::boot_device(c, s, Path(id), Body(b)).await.map(drop)
        }
        "diag" => {
            let pool = f.ipmi_pool.trim();
            let b = dcim_api::wire::task::DiagRequest {
                setup_ipmi: f.setup_ipmi.is_some(),
                ipmi_pool: if pool.is_empty() { None } else { Some(int_field("ipmi_pool", pool)?) },
                os_template_id: f.os_template_id.trim().parse().ok(),
                clear_hdd: if f.clear_hdd.is_empty() { "none".into() } else { f.clear_hdd },
            };
            ops::operation_diag(c, s, Path(id), Body(b)).await.map(drop)
        }
        "wipe" => {
            confirmed(st, &c, id, f.confirm.is_some()).await?;
            let b = dcim_api::wire::task::ClearHddRequest { clear_hdd: f.clear_hdd };
            ops::operation_clear_hdd(c, s, Path(id), Body(b)).await.map(drop)
        }
        "install" => {
            let b = dcim_api::wire::task::OsRequest {
                hdd_raid: f.hdd_raid,
                os_template_id: int_field("os_template_id", &f.os_template_id)?,
                password: f.password,
                ssh_pub_keys: f
                    .ssh_pub_keys
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                hostname: Some(f.hostname),
            };
            confirmed(st, &c, id, f.confirm.is_some()).await?;
            ops::operation_os(c, s, Path(id), Body(b)).await.map(drop)
        }
        "owner" => {
            c.require_admin()?;
            let email = f.owner.trim();
            let owner = st
                .store
                .find_user_id_by_email(email)
                .await?
                .ok_or_else(|| ApiError::invalid("owner", format!("there is no user {email}")))?;
            let b = dcim_api::wire::server::OwnerRequest { owner: owner.get() };
            srv::set_owner(c, s, Path(id), Body(b)).await.map(drop)
        }
        "release" => srv::release_owner(c, s, Path(id), Body(Empty {})).await.map(drop),
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    }
}

/// `POST /ui/servers/{id}/{action}`.
pub async fn action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let form = action.clone();
    match run_action(&st, ui.caller.clone(), id, &action, f).await {
        Ok(()) => Redirect::to(&format!("/ui/servers/{id}")).into_response(),
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::NoHandler) => fail(e, &ui),
        Err(e) => {
            let (status, _) = e.kind.status_and_code();
            match server_page(&ui, &st, id).await {
                Ok(mut p) => {
                    p.form = form;
                    p.field = e.value.get("field").and_then(Value::as_str).unwrap_or_default().to_owned();
                    p.error = e.msg;
                    render(&p, status)
                }
                Err(e) => fail(e, &ui),
            }
        }
    }
}

// --- tasks

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct TaskFilter {
    status: String,
    name: String,
    server: String,
    #[serde(rename = "where")]
    raw: String,
    page: Option<u32>,
}

pub struct TaskRow {
    pub id: i64,
    pub server: String,
    pub name: String,
    pub status: String,
    pub progress: i64,
    pub created: String,
    pub finished: String,
    pub failure: String,
}

impl From<Task> for TaskRow {
    fn from(t: Task) -> TaskRow {
        let failed = t.status.is_unsuccessful();
        TaskRow {
            id: t.id,
            server: t.server.map(|s| s.to_string()).unwrap_or_default(),
            name: t.name,
            status: t.status.to_string(),
            progress: t.progress,
            created: t.created,
            finished: t.finished.unwrap_or_default(),
            failure: if failed { info_text(&t.status_info) } else { String::new() },
        }
    }
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct Tasks {
    chrome: Chrome,
    status: String,
    name: String,
    server: String,
    raw: String,
    rows: Vec<TaskRow>,
    pager: Pager,
    error: String,
}

/// `GET /ui/tasks`: newest first.
pub async fn tasks(ui: Ui, State(st): State<AppState>, Query(f): Query<TaskFilter>) -> Response {
    let mut parts = vec![];
    if !f.status.trim().is_empty() {
        parts.push(format!("status EQ {}", quote(f.status.trim())));
    }
    if !f.name.trim().is_empty() {
        parts.push(format!("name EQ {}", quote(f.name.trim())));
    }
    if let Ok(sid) = f.server.trim().parse::<i64>() {
        parts.push(format!("server EQ {sid}"));
    }
    if !f.raw.trim().is_empty() {
        parts.push(format!("({})", f.raw.trim()));
    }
    let page_no = f.page.unwrap_or(1).max(1);
    let offset = (page_no - 1) * filter::PAGE;
    let mut page = Tasks {
        chrome: ui.chrome("tasks"),
        status: f.status.clone(),
        name: f.name.clone(),
        server: f.server.clone(),
        raw: f.raw.clone(),
        rows: vec![],
        pager: Pager::default(),
        error: String::new(),
    };
    let link = |p: u32| {
        format!(
            "/ui/tasks?status={}&name={}&server={}&where={}&page={p}",
            filter::encode(&f.status),
            filter::encode(&f.name),
            filter::encode(&f.server),
            filter::encode(&f.raw)
        )
    };
    let listed = match query(&parts.join(" AND "), "id desc", &format!("{offset},{}", filter::PAGE)) {
        Ok(q) => st.store.list_tasks(&q, &ui.caller.server_scope()).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match listed {
        Ok(p) => {
            page.rows = p.items.into_iter().map(Task::from).map(TaskRow::from).collect();
            page.pager = Pager::new(offset, page.rows.len(), p.size, page_no, link);
            render(&page, StatusCode::OK)
        }
        Err(e) if e.kind == ErrorKind::BadQuery => {
            page.error = e.msg;
            render(&page, StatusCode::BAD_REQUEST)
        }
        Err(e) => fail(e, &ui),
    }
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    chrome: Chrome,
    steps: TaskSteps,
}

/// The live part of a task page.
#[derive(Template)]
#[template(path = "task_steps.html")]
struct TaskSteps {
    row: TaskRow,
    started: String,
    active: bool,
    steps: Vec<Step>,
    csrf: String,
}

async fn task_steps(ui: &Ui, st: &AppState, id: i64) -> Result<TaskSteps, ApiError> {
    let t = Task::from(st.store.get_task(dcim_store::ids::TaskId(id), &ui.caller.server_scope()).await?);
    let active = t.status.is_active();
    let steps = steps(&t.progress_info);
    let started = t.started.clone().unwrap_or_default();
    Ok(TaskSteps { row: TaskRow::from(t), started, active, steps, csrf: ui.csrf.clone() })
}

/// `GET /ui/tasks/{id}`.
pub async fn task(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    match task_steps(&ui, &st, id).await {
        Ok(steps) => render(&TaskPage { chrome: ui.chrome("tasks"), steps }, StatusCode::OK),
        Err(e) => fail(e, &ui),
    }
}

/// `GET /ui/tasks/{id}/steps`: the fragment a running task's page polls.
pub async fn task_live(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    match task_steps(&ui, &st, id).await {
        Ok(steps) => render(&steps, StatusCode::OK),
        Err(e) => fail(e, &ui),
    }
}
