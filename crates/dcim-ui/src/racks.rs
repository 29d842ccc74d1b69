//! Locations and racks for admins: lists, forms, and the rack elevation, a rack drawn
//! unit by unit as inline SVG rendered on the server (no script needed, so a rack
//! page prints as it is shown).
//!
//! Every write goes through the API's own handler with the page's caller, so the
//! checks, the audit record and the refusals are the API's; a refused form is shown
//! again with the API's message beside the field it names. Deleting a location or a
//! rack that still holds something is refused by the store with the reason.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, Path};
use dcim_api::routes::inventory as inv;
use dcim_api::wire::Empty;
use dcim_api::wire::inventory::{LocationInput, NewRack, RackEdit};
use dcim_api::wire::server::Server;
use dcim_core::ServerState;
use serde::Deserialize;

use crate::session::Ui;
use crate::shared::{answer, query, show};
use crate::view::{Chrome, Refusal};

/// Height of one rack unit in the drawing, in SVG pixels.
const UNIT_PX: i64 = 16;
/// Width of the unit numbers' column and of a server box.
const LABEL_PX: i64 = 26;
const BOX_PX: i64 = 210;
/// Space above the units for the rack's name.
const TOP_PX: i64 = 22;

/// A server drawn in a rack.
pub struct Slot {
    pub id: i64,
    pub name: String,
    pub unit: i64,
    pub size: i64,
    /// What colours the box: `error`, `busy`, `suspended`, `new`, `rented` or `free`.
    pub class: &'static str,
    pub tooltip: String,
    pub y: i64,
    pub height: i64,
    /// The text's baseline.
    pub text_y: i64,
}

/// One empty unit of a rack.
pub struct Gap {
    pub unit: i64,
    pub y: i64,
}

/// A rack's front view.
#[derive(Template)]
#[template(path = "elevation.svg", escape = "html")]
pub struct Elevation {
    pub id: i64,
    pub name: String,
    pub size: i64,
    pub slots: Vec<Slot>,
    pub gaps: Vec<Gap>,
    /// Unit numbers and their baselines, bottom (1) to top.
    pub numbers: Vec<(i64, i64)>,
    pub width: i64,
    pub height: i64,
    pub label_px: i64,
    pub box_px: i64,
    pub unit_px: i64,
    pub top_px: i64,
    /// Servers placed beyond the rack's height (the rack was made smaller).
    pub outside: Vec<(i64, String, i64)>,
    pub free_units: i64,
}

/// What a server's box says about it, most urgent first.
fn class_of(s: &Server) -> &'static str {
    let busy = s.operation.as_ref().is_some_and(|o| o.status.is_active());
    if !s.diag_error.is_empty() || matches!(s.state, ServerState::SuspendError | ServerState::ResumeError) {
        "error"
    } else if busy {
        "busy"
    } else if s.state != ServerState::Ok {
        "suspended"
    } else if s.is_new {
        "new"
    } else if s.owner_email.is_some() {
        "rented"
    } else {
        "free"
    }
}

fn size_of(s: &Server) -> i64 {
    s.platform.as_ref().map_or(1, |p| p.size.max(1))
}

impl Elevation {
    /// The drawing of rack `id` named `name`, `size` units high, holding `servers`.
    pub fn new(id: i64, name: String, size: i64, servers: &[Server]) -> Elevation {
        let y_of = |top_unit: i64| TOP_PX + (size - top_unit) * UNIT_PX;
        let mut taken = vec![false; size.max(0) as usize + 1];
        let mut slots = vec![];
        let mut outside = vec![];
        for s in servers {
            let Some(unit) = s.unit else { continue };
            let h = size_of(s);
            if unit < 1 || unit + h - 1 > size {
                outside.push((s.id, s.name.clone(), unit));
                continue;
            }
            for u in unit..unit + h {
                taken[u as usize] = true;
            }
            let mut tooltip = format!("{} · unit {unit}", s.name);
            if h > 1 {
                tooltip.push_str(&format!("–{} ({h}U)", unit + h - 1));
            }
            tooltip.push_str(&format!(" · {} · power {}", s.state, s.power_status));
            if let Some(o) = &s.owner_email {
                tooltip.push_str(&format!(" · {o}"));
            }
            if let Some(op) = &s.operation {
                tooltip.push_str(&format!(" · task {} {}", op.id, op.status));
            }
            let y = y_of(unit + h - 1);
            let height = h * UNIT_PX;
            slots.push(Slot {
                id: s.id,
                name: s.name.clone(),
                unit,
                size: h,
                class: class_of(s),
                tooltip,
                y,
                height,
                text_y: y + height / 2 + 4,
            });
        }
        let gaps: Vec<Gap> = (1..=size).filter(|u| !taken[*u as usize]).map(|u| Gap { unit: u, y: y_of(u) }).collect();
        Elevation {
            id,
            name,
            size,
            free_units: gaps.len() as i64,
            slots,
            gaps,
            numbers: (1..=size).map(|u| (u, y_of(u) + UNIT_PX - 4)).collect(),
            width: LABEL_PX + BOX_PX + 4,
            height: TOP_PX + size * UNIT_PX + 4,
            label_px: LABEL_PX,
            box_px: BOX_PX,
            unit_px: UNIT_PX,
            top_px: TOP_PX,
            outside,
        }
    }
}

/// The servers of the racks matching `where_` that the caller sees, by rack.
async fn servers_by_rack(ui: &Ui, st: &AppState, where_: &str) -> Result<HashMap<i64, Vec<Server>>, ApiError> {
    let rows = st.store.list_servers(&query(where_, "unit asc", "")?, &ui.caller.server_scope()).await?.items;
    let mut by = HashMap::<i64, Vec<Server>>::new();
    for s in rows.into_iter().map(Server::from) {
        if let Some(r) = &s.rack {
            by.entry(r.id).or_default().push(s);
        }
    }
    Ok(by)
}

// --- locations

pub struct LocationRow {
    pub id: i64,
    pub name: String,
    pub geolocation: String,
    pub racks: i64,
    pub servers: i64,
}

#[derive(Template)]
#[template(path = "locations.html")]
struct Locations {
    chrome: Chrome,
    rows: Vec<LocationRow>,
    refusal: Refusal,
    /// What the refused create form held.
    name: String,
    geolocation: String,
}

async fn locations_page(ui: &Ui, st: &AppState) -> Result<Locations, ApiError> {
    ui.caller.require_admin()?;
    let mut rows = vec![];
    for l in st.store.list_locations(&query("", "name asc", "")?).await?.items {
        let racks = st.store.list_racks(&query(&format!("location_id EQ {}", l.id), "", "0,0")?).await?.size;
        let servers = st
            .store
            .list_servers(&query(&format!("location.id EQ {}", l.id), "", "0,0")?, &ui.caller.server_scope())
            .await?
            .size;
        rows.push(LocationRow { id: l.id, name: l.name, geolocation: l.geolocation, racks, servers });
    }
    Ok(Locations {
        chrome: ui.chrome("locations"),
        rows,
        refusal: Refusal::default(),
        name: String::new(),
        geolocation: String::new(),
    })
}

/// `GET /ui/locations`.
pub async fn locations(ui: Ui, State(st): State<AppState>) -> Response {
    show(&ui, locations_page(&ui, &st)).await
}

/// Every field of the location and rack forms.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct PlaceForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    geolocation: String,
    size: String,
}

fn units(field: &str, v: &str) -> Result<i64, ApiError> {
    v.trim().parse().map_err(|_| ApiError::invalid(field, "a whole number of rack units"))
}

/// `POST /ui/locations`: a new location, then its page.
pub async fn create_location(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<PlaceForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let b = LocationInput { name: Some(f.name.clone()), geolocation: Some(f.geolocation.clone()) };
    let done = inv::create_location(ui.caller.clone(), State(st.clone()), Body(b)).await;
    let done = done.map(|(_, id)| format!("/ui/locations/{}", id.id));
    answer(&ui, done, "create", locations_page(&ui, &st), |p| {
        (p.name, p.geolocation) = (f.name, f.geolocation);
        &mut p.refusal
    })
    .await
}

#[derive(Template)]
#[template(path = "location.html")]
struct LocationPage {
    chrome: Chrome,
    id: i64,
    name: String,
    geolocation: String,
    racks: Vec<Elevation>,
    unracked: i64,
    unracked_href: String,
    refusal: Refusal,
}

async fn location_page(ui: &Ui, st: &AppState, id: i64) -> Result<LocationPage, ApiError> {
    ui.caller.require_admin()?;
    let l = st.store.get_location(id).await?;
    let racks = st.store.list_racks(&query(&format!("location_id EQ {id}"), "name asc", "")?).await?.items;
    let mut by = servers_by_rack(ui, st, &format!("location.id EQ {id} AND rack.id IS NOT null")).await?;
    let unracked_where = format!("location.id EQ {id} AND rack.id IS null");
    let unracked = st.store.list_servers(&query(&unracked_where, "", "0,0")?, &ui.caller.server_scope()).await?.size;
    Ok(LocationPage {
        chrome: ui.chrome("locations"),
        id,
        name: l.name,
        geolocation: l.geolocation,
        racks: racks
            .into_iter()
            .map(|r| Elevation::new(r.id, r.name, r.size, &by.remove(&r.id).unwrap_or_default()))
            .collect(),
        unracked,
        unracked_href: format!("/ui/servers?where={}", crate::filter::encode(&unracked_where)),
        refusal: Refusal::default(),
    })
}

/// `GET /ui/locations/{id}`: the location's racks side by side.
pub async fn location(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, location_page(&ui, &st, id)).await
}

/// `POST /ui/locations/{id}/{action}`: `edit`, `delete`, or `rack` (a new rack in it).
pub async fn location_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<PlaceForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let done = match action.as_str() {
        "edit" => {
            let b = LocationInput { name: Some(f.name), geolocation: Some(f.geolocation) };
            inv::edit_location(c, s, Path(id), Body(b)).await.map(|_| format!("/ui/locations/{id}"))
        }
        "delete" => inv::delete_location(c, s, Path(id), Body(Empty {})).await.map(|_| "/ui/locations".to_owned()),
        "rack" => match units("size", &f.size) {
            Ok(size) => {
                let b = NewRack { name: f.name, location_id: id, size };
                inv::create_rack(c, s, Body(b)).await.map(|(_, r)| format!("/ui/racks/{}", r.id))
            }
            Err(e) => Err(e),
        },
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    answer(&ui, done, &action, location_page(&ui, &st, id), |p| &mut p.refusal).await
}

// --- racks

#[derive(Template)]
#[template(path = "rack.html")]
struct RackPage {
    chrome: Chrome,
    location_id: i64,
    location: String,
    elevation: Elevation,
    refusal: Refusal,
}

async fn rack_page(ui: &Ui, st: &AppState, id: i64) -> Result<RackPage, ApiError> {
    ui.caller.require_admin()?;
    let r = st.store.get_rack(id).await?;
    let l = st.store.get_location(r.location_id).await?;
    let servers = servers_by_rack(ui, st, &format!("rack.id EQ {id}")).await?.remove(&id).unwrap_or_default();
    Ok(RackPage {
        chrome: ui.chrome("locations"),
        location_id: l.id,
        location: l.name,
        elevation: Elevation::new(r.id, r.name, r.size, &servers),
        refusal: Refusal::default(),
    })
}

/// `GET /ui/racks/{id}`: the rack's elevation.
pub async fn rack(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, rack_page(&ui, &st, id)).await
}

/// `POST /ui/racks/{id}/{action}`: `edit` or `delete`.
pub async fn rack_action(
    ui: Ui,
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<PlaceForm>,
) -> Response {
    if let Err(r) = ui.check_csrf(&headers, &f.csrf) {
        return *r;
    }
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let location = st.store.get_rack(id).await.map(|r| r.location_id).unwrap_or_default();
    let done = match action.as_str() {
        "edit" => match units("size", &f.size) {
            Ok(size) => {
                let b = RackEdit { name: Some(f.name), size: Some(size) };
                inv::edit_rack(c, s, Path(id), Body(b)).await.map(|_| format!("/ui/racks/{id}"))
            }
            Err(e) => Err(e),
        },
        "delete" => inv::delete_rack(c, s, Path(id), Body(Empty {})).await.map(|_| format!("/ui/locations/{location}")),
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    answer(&ui, done, &action, rack_page(&ui, &st, id), |p| &mut p.refusal).await
}
