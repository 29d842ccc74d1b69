//! Acting on many servers at once, and the server list as CSV.
//!
//! A bulk action is two posts. The first carries what the list showed: the ticked
//! servers, or "every server matching this filter" with the filter's `where`. It is
//! answered with a confirmation that names the servers (all of them up to 50, then the
//! count) and carries their ids, resolved then, as the set to act on. The second post
//! acts on exactly those ids, never on the filter again: a server that came to match
//! the filter in between is not touched (the classic bug of acting on a different set
//! than the one confirmed). Each server goes through the API's own handler as the
//! caller, so a customer acts only on its own servers and every refusal is the API's
//! (a busy server: 409 naming its task); the answer is a table of one row per server
//! with its task or its refusal.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dcim_api::AppState;
use dcim_api::auth::Caller;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, Path};
use dcim_api::routes::operations as ops;
use dcim_api::wire::Empty;
use dcim_api::wire::server::Server;
use dcim_api::wire::task::{ClearHddRequest, DiagRequest};
use dcim_core::query::ListQuery;
use dcim_store::ids::ServerId;
use dcim_store::servers::with_ids;

use crate::filter::ServerFilter;
use crate::session::Ui;
use crate::shared::{fail, query};
use crate::view::{Chrome, render};

/// The most servers one bulk action takes.
pub const MAX_BULK: usize = 10_000;
/// The servers a confirmation names one by one; beyond that it gives the count.
const NAMED: usize = 50;

/// The actions, their labels, and whether a customer may start them.
const ACTIONS: &[(&str, &str, bool)] = &[
    ("power_on", "Power on", true),
    ("power_off", "Power off", true),
    ("power_reset", "Power reset", true),
    ("suspend", "Suspend", false),
    ("resume", "Resume", false),
    ("diag", "Diagnostics", false),
    ("wipe", "Wipe the disks", true),
];

/// The actions `admin` may choose, as (value, label).
pub fn actions(admin: bool) -> Vec<(&'static str, &'static str)> {
    ACTIONS.iter().filter(|a| admin || a.2).map(|a| (a.0, a.1)).collect()
}

fn label_of(action: &str) -> Option<&'static str> {
    ACTIONS.iter().find(|a| a.0 == action).map(|a| a.1)
}

/// The fields of the bulk forms; `id` repeats, so the body is read by hand.
#[derive(Default)]
struct BulkForm {
    csrf: String,
    action: String,
    stage: String,
    /// `all`: every server matching `where`; else the ticked `id`s.
    scope: String,
    where_: String,
    ids: Vec<ServerId>,
    clear_hdd: String,
}

fn parse_form(body: &[u8]) -> Result<BulkForm, ApiError> {
    let mut f = BulkForm::default();
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "_csrf" => f.csrf = v.into_owned(),
            "action" => f.action = v.into_owned(),
            "stage" => f.stage = v.into_owned(),
            "scope" => f.scope = v.into_owned(),
            "where" => f.where_ = v.into_owned(),
            "clear_hdd" => f.clear_hdd = v.into_owned(),
            "id" | "ids" => {
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let id =
                        part.parse().map_err(|_| ApiError::invalid("id", format!("'{part}' is not a server id")))?;
                    f.ids.push(ServerId(id));
                }
            }
            _ => {}
        }
        if f.ids.len() > MAX_BULK {
            return Err(ApiError::invalid("id", format!("one bulk action takes at most {MAX_BULK} servers")));
        }
    }
    Ok(f)
}

pub struct Named {
    pub id: ServerId,
    pub name: String,
}

#[derive(Template)]
#[template(path = "bulk_confirm.html")]
struct Confirm {
    chrome: Chrome,
    action: String,
    label: &'static str,
    where_: String,
    /// The ids to act on, comma-separated.
    ids: String,
    count: usize,
    named: Vec<Named>,
    wipe: bool,
}

pub struct Outcome {
    pub id: ServerId,
    pub name: String,
    pub task: i64,
    pub refusal: String,
    pub status: u16,
}

#[derive(Template)]
#[template(path = "bulk_result.html")]
struct Result_ {
    chrome: Chrome,
    label: &'static str,
    rows: Vec<Outcome>,
    started: usize,
    refused: usize,
}

/// The servers to confirm: the ticked ones the caller sees, or every one matching.
async fn resolve(st: &AppState, c: &Caller, f: &BulkForm) -> Result<Vec<Named>, ApiError> {
    let mut scope = c.server_scope();
    let where_ = if f.scope == "all" {
        f.where_.as_str()
    } else {
        if f.ids.is_empty() {
            return Err(ApiError::invalid(
                "id",
                "tick at least one server, or choose every server matching the filter",
            ));
        }
        scope.push(with_ids(st.store.backend(), &f.ids));
        ""
    };
    let limit = format!("0,{}", MAX_BULK + 1);
    let rows = st.store.list_servers(&query(where_, "name asc", &limit)?, &scope).await?.items;
    if rows.len() > MAX_BULK {
        return Err(ApiError::invalid(
            "where",
            format!("one bulk action takes at most {MAX_BULK} servers; narrow the filter"),
        ));
    }
    if rows.is_empty() {
        return Err(ApiError::invalid("id", "no server matches"));
    }
    Ok(rows.into_iter().map(|r| Named { id: r.server.id, name: r.server.name }).collect())
}

/// Starts `action` on server `id` as `c`, through the API's handler.
async fn start(st: &AppState, c: Caller, id: ServerId, action: &str, clear_hdd: &str) -> Result<i64, ApiError> {
    let s = State(st.clone());
    let id = id.get();
    let t = match action {
        "power_on" => ops::power_on(c, s, Path(id), Body(Empty {})).await?,
        "power_off" => ops::power_off(c, s, Path(id), Body(Empty {})).await?,
        "power_reset" => ops::power_reset(c, s, Path(id), Body(Empty {})).await?,
        "suspend" => ops::suspend(c, s, Path(id), Body(Empty {})).await?,
        "resume" => ops::resume(c, s, Path(id), Body(Empty {})).await?,
        "diag" => {
            let b = DiagRequest { setup_ipmi: false, ipmi_pool: None, os_template_id: None, clear_hdd: "none".into() };
            ops::operation_diag(c, s, Path(id), Body(b)).await?
        }
        "wipe" => {
            let b = ClearHddRequest { clear_hdd: clear_hdd.to_owned() };
            ops::operation_clear_hdd(c, s, Path(id), Body(b)).await?
        }
        _ => return Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    Ok(t.task)
}

/// `POST /ui/servers/bulk`: the confirmation (stage `confirm`), then the run (`run`).
pub async fn bulk(ui: Ui, State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let f = match parse_form(&body) {
        Ok(f) => f,
        Err(e) => {
            if let Err(r) = ui.check_csrf(&headers, "") {
                return *r;
            }
            return fail(e, &ui);
        }
    };
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let Some(label) = label_of(&f.action).filter(|_| actions(ui.caller.is_admin()).iter().any(|a| a.0 == f.action))
    else {
        return fail(ApiError::invalid("action", format!("'{}' is not an action you can take here", f.action)), &ui);
    };
    if f.stage == "run" {
        return run(ui, st, f, label).await;
    }
    match resolve(&st, &ui.caller, &f).await {
        Ok(servers) => {
            let ids: Vec<String> = servers.iter().map(|s| s.id.to_string()).collect();
            let page = Confirm {
                chrome: ui.chrome("servers"),
                wipe: f.action == "wipe",
                action: f.action,
                label,
                where_: if f.scope == "all" { f.where_ } else { String::new() },
                ids: ids.join(","),
                count: servers.len(),
                named: servers.into_iter().take(NAMED).collect(),
            };
            render(&page, StatusCode::OK)
        }
        Err(e) => fail(e, &ui),
    }
}

async fn run(ui: Ui, st: AppState, f: BulkForm, label: &'static str) -> Response {
    if f.ids.is_empty() {
        return fail(ApiError::invalid("id", "no server to act on"), &ui);
    }
    let wipe_mode = f.clear_hdd.parse::<dcim_core::ClearMode>();
    if f.action == "wipe" && !matches!(wipe_mode, Ok(dcim_core::ClearMode::Simple | dcim_core::ClearMode::Full)) {
        return fail(ApiError::invalid("clear_hdd", "choose simple or full"), &ui);
    }
    // Names for the table, of the servers the caller sees; the rest are refused by the
    // handler as not found, like any server the caller may not see.
    let mut scope = ui.caller.server_scope();
    scope.push(with_ids(st.store.backend(), &f.ids));
    let names: std::collections::HashMap<ServerId, String> =
        match st.store.list_servers(&ListQuery::default(), &scope).await {
            Ok(p) => p.items.into_iter().map(|r| (r.server.id, r.server.name)).collect(),
            Err(e) => return fail(e.into(), &ui),
        };
    let mut rows = Vec::with_capacity(f.ids.len());
    let mut seen = std::collections::HashSet::new();
    for id in f.ids.iter().copied().filter(|id| seen.insert(*id)) {
        let name = names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
        let r = start(&st, ui.caller.clone(), id, &f.action, &f.clear_hdd).await;
        rows.push(match r {
            Ok(task) => Outcome { id, name, task, refusal: String::new(), status: 200 },
            Err(e) => {
                let (status, _) = e.kind.status_and_code();
                Outcome { id, name, task: 0, refusal: e.msg, status: status.as_u16() }
            }
        });
    }
    let started = rows.iter().filter(|r| r.task > 0).count();
    let refused = rows.len() - started;
    render(&Result_ { chrome: ui.chrome("servers"), label, rows, started, refused }, StatusCode::OK)
}

/// `GET /ui/servers.csv`: the server list with the filter and order of the page,
/// every page of it.
pub async fn csv(ui: Ui, State(st): State<AppState>, Query(f): Query<ServerFilter>) -> Response {
    let q = match query(&f.to_where(), &f.orderby(), "") {
        Ok(q) => q,
        Err(e) => return fail(e, &ui),
    };
    let rows = match st.store.list_servers(&q, &ui.caller.server_scope()).await {
        Ok(p) => p.items,
        Err(e) => return fail(e.into(), &ui),
    };
    let mut w = ::csv::Writer::from_writer(Vec::with_capacity(rows.len() * 160));
    let head = [
        "id",
        "name",
        "domain",
        "state",
        "power_status",
        "configuration",
        "location",
        "rack",
        "unit",
        "size",
        "owner_email",
        "mac",
        "ipmi_address",
        "is_new",
        "operation",
    ];
    let mut out = w.write_record(head);
    for s in rows.into_iter().map(Server::from) {
        if out.is_err() {
            break;
        }
        let cells = [
            s.id.to_string(),
            s.name,
            s.domain,
            s.state.to_string(),
            s.power_status.to_string(),
            s.configuration.unwrap_or_default(),
            s.location.name,
            s.rack.map(|r| r.name).unwrap_or_default(),
            s.unit.map(|u| u.to_string()).unwrap_or_default(),
            s.platform.map(|p| p.size.to_string()).unwrap_or_default(),
            s.owner_email.unwrap_or_default(),
            s.mac.unwrap_or_default(),
            s.ipmi.map(|i| i.address).unwrap_or_default(),
            s.is_new.to_string(),
            s.operation.map(|o| o.status.to_string()).unwrap_or_default(),
        ];
        out = w.write_record(cells.iter().map(|c| inert(c).into_owned()));
    }
    let body = match out.and_then(|()| w.into_inner().map_err(|e| e.into_error().into())) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "the server list could not be written as CSV");
            return fail(ApiError::internal(), &ui);
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"servers.csv\""),
        ],
        body,
    )
        .into_response()
}

/// A cell a spreadsheet will not run as a formula: one that starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's advice on CSV
/// injection). Names, e-mails and notes are the operator's or a customer's text.
fn inert(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_made_inert() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert("-1"), "'-1");
        assert_eq!(inert("srv-1"), "srv-1");
        assert_eq!(inert(""), "");
    }

    #[test]
    fn the_form_takes_repeated_ids_and_a_list() {
        let f = parse_form(b"_csrf=t&action=power_on&id=3&id=5&ids=7%2C9").unwrap();
        assert_eq!(f.ids, [3, 5, 7, 9].map(ServerId));
        assert_eq!(f.action, "power_on");
        assert!(parse_form(b"id=x").is_err());
    }
}
