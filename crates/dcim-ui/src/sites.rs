//! Remote sites for admins: the list with each site's link (connected, last seen,
//! version, calls in flight, last error), a new site, and a site's page to change its
//! name and the locations it serves, revoke its credential, give it a new enrollment
//! secret, or delete it.
//!
//! An enrollment secret is shown once: on the page that answers the form that made it
//! (it is never kept to be shown again), with the command that starts the site, this
//! server's address as the browser reached it and the SHA-256 of the certificate it
//! serves. Every write goes through the API's own handler with the page's caller.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use dcim_api::AppState;
use dcim_api::error::{ApiError, ErrorKind};
use dcim_api::extract::{Body, ListParams, Path};
use dcim_api::routes::sites as api;
use dcim_api::wire::Empty;
use dcim_api::wire::site::{Site, SiteEnrollment, SiteInput};

use crate::session::Ui;
use crate::shared::{answer, fail, query, show};
use crate::view::{Chrome, Refusal, render};

/// The fields of the site forms; `location` repeats (one box per location), so the
/// body is read by hand.
#[derive(Default, Clone)]
pub struct SiteForm {
    csrf: String,
    name: String,
    description: String,
    locations: Vec<i64>,
}

impl SiteForm {
    fn parse(body: &[u8]) -> Result<SiteForm, ApiError> {
        let mut f = SiteForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "_csrf" => f.csrf = v.into_owned(),
                "name" => f.name = v.into_owned(),
                "description" => f.description = v.into_owned(),
                "location" => f.locations.push(
                    v.trim().parse().map_err(|_| ApiError::invalid("locations", format!("'{v}' is not a location")))?,
                ),
                _ => {}
            }
        }
        Ok(f)
    }

    fn input(&self) -> SiteInput {
        SiteInput {
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            locations: Some(self.locations.clone()),
        }
    }
}

/// A location as a box of the form: ticked when the site serves it; the site that
/// serves it now, when another does.
pub struct LocationBox {
    pub id: i64,
    pub name: String,
    pub ticked: bool,
    pub other: String,
}

/// A site as the list shows it.
pub struct Row {
    pub site: Site,
    pub locations: String,
}

/// How the browser reached this server: the address a site is told to connect to.
struct Reached<'a> {
    headers: &'a HeaderMap,
    uri: &'a Uri,
}

/// A secret just made, and the command that starts the site with it.
pub struct Enrolled {
    pub secret: String,
    pub expires: String,
    pub command: String,
    /// What the operator must know before running it (this server serves plain HTTP).
    pub warning: String,
}

/// The command a site's machine runs: the secret in the environment, where other
/// users of that machine cannot read it (unlike a command's arguments).
fn command(st: &AppState, at: &Reached, e: &SiteEnrollment) -> Enrolled {
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the request's authority.
    let host = (at.headers.get("host").and_then(|h| h.to_str().ok()))
        .or(at.uri.authority().map(|a| a.as_str()))
        .unwrap_or("central.example:8443");
    let fingerprint = (st.cfg.tls_cert.as_deref())
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|pem| dcim_tls::pem_fingerprint(&pem));
    let warning = if fingerprint.is_some() {
        String::new()
    } else {
        "This server serves plain HTTP, and a site connects over HTTPS only: give the site the address and \
         certificate fingerprint of the TLS proxy in front of this server."
            .into()
    };
    let fingerprint = fingerprint.unwrap_or_else(|| "SHA256-OF-THE-PROXY-CERTIFICATE".into());
    Enrolled {
        secret: e.enrollment_secret.clone(),
        expires: e.enrollment_expires.clone(),
        command: format!(
            "DCIM_SITE_ENROLLMENT={} dcim site --central https://{host} --central-fingerprint {fingerprint}",
            e.enrollment_secret
        ),
        warning,
    }
}

#[derive(Template)]
#[template(path = "sites.html")]
struct Sites {
    chrome: Chrome,
    rows: Vec<Row>,
    f: SiteForm,
    boxes: Vec<LocationBox>,
    refusal: Refusal,
}

/// Every site, and every location's id and name by name: what a sites page reads, once.
async fn sites_and_locations(ui: &Ui, st: &AppState) -> Result<(Vec<Site>, Vec<(i64, String)>), ApiError> {
    let sites = api::list_sites(ui.caller.clone(), State(st.clone()), ListParams(query("", "name asc", "")?)).await?;
    let locations = st.store.list_locations(&query("", "name asc", "")?).await?.items;
    Ok((sites.0.list, locations.into_iter().map(|l| (l.id, l.name)).collect()))
}

/// Every location, ticked as `mine`, with the site that serves it when another does.
fn boxes(locations: &[(i64, String)], sites: &[Site], site: Option<i64>, mine: &[i64]) -> Vec<LocationBox> {
    locations
        .iter()
        .map(|(id, name)| {
            let other = sites
                .iter()
                .find(|s| Some(s.id) != site && s.locations.contains(id))
                .map(|s| s.name.clone())
                .unwrap_or_default();
            LocationBox { id: *id, ticked: mine.contains(id), name: name.clone(), other }
        })
        .collect()
}

async fn list_page(ui: &Ui, st: &AppState, f: SiteForm) -> Result<Sites, ApiError> {
    ui.caller.require_admin()?;
    let (sites, locations) = sites_and_locations(ui, st).await?;
    let boxes = boxes(&locations, &sites, None, &f.locations);
    let rows = sites
        .into_iter()
        .map(|site| {
            let named =
                |id: &i64| locations.iter().find(|(l, _)| l == id).map_or_else(|| id.to_string(), |l| l.1.clone());
            let locations = site.locations.iter().map(named).collect::<Vec<_>>().join(", ");
            Row { site, locations }
        })
        .collect();
    Ok(Sites { chrome: ui.chrome("sites"), rows, f, boxes, refusal: Refusal::default() })
}

/// `GET /ui/sites`.
pub async fn sites(ui: Ui, State(st): State<AppState>) -> Response {
    show(&ui, list_page(&ui, &st, SiteForm::default())).await
}

/// Reads a site form, its CSRF token checked first.
fn read_form(ui: &Ui, headers: &HeaderMap, body: &[u8]) -> Result<SiteForm, Box<Response>> {
    let f = SiteForm::parse(body);
    let csrf = f.as_ref().map(|f| f.csrf.as_str()).unwrap_or("");
    ui.check_csrf(headers, csrf)?;
    f.map_err(|e| Box::new(fail(e, ui)))
}

/// `POST /ui/sites`: a new site, then its page with the enrollment secret, once.
pub async fn create_site(ui: Ui, State(st): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let f = match read_form(&ui, &headers, &body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match api::create_site(ui.caller.clone(), State(st.clone()), Body(f.input())).await {
        Ok((_, e)) => enrolled_page(&ui, &st, &Reached { headers: &headers, uri: &uri }, e.0.id, &e.0).await,
        Err(e) => answer(&ui, Err(e), "create", list_page(&ui, &st, f), |p| &mut p.refusal).await,
    }
}

#[derive(Template)]
#[template(path = "site.html")]
struct SitePage {
    chrome: Chrome,
    site: Site,
    f: SiteForm,
    boxes: Vec<LocationBox>,
    enrolled: Option<Enrolled>,
    refusal: Refusal,
}

async fn site_page(ui: &Ui, st: &AppState, id: i64) -> Result<SitePage, ApiError> {
    ui.caller.require_admin()?;
    let site = api::get_site(ui.caller.clone(), State(st.clone()), Path(id)).await?.0;
    let f = SiteForm {
        csrf: String::new(),
        name: site.name.clone(),
        description: site.description.clone(),
        locations: site.locations.clone(),
    };
    let (sites, locations) = sites_and_locations(ui, st).await?;
    let boxes = boxes(&locations, &sites, Some(id), &site.locations);
    Ok(SitePage { chrome: ui.chrome("sites"), site, f, boxes, enrolled: None, refusal: Refusal::default() })
}

/// A site's page with the secret just made. Not a redirect: the secret is not kept.
async fn enrolled_page(ui: &Ui, st: &AppState, at: &Reached<'_>, id: i64, e: &SiteEnrollment) -> Response {
    match site_page(ui, st, id).await {
        Ok(mut p) => {
            // Pages are `no-store`: the secret stays in no cache.
            p.enrolled = Some(command(st, at, e));
            render(&p, StatusCode::OK)
        }
        Err(e) => fail(e, ui),
    }
}

/// `GET /ui/sites/{id}`.
pub async fn site(ui: Ui, State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    show(&ui, site_page(&ui, &st, id)).await
}

/// `POST /ui/sites/{id}/{action}`: `edit`, `revoke`, `enrollment` or `delete`.
pub async fn site_action(
    ui: Ui,
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    body: Bytes,
) -> Response {
    let f = match read_form(&ui, &headers, &body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let (c, s) = (ui.caller.clone(), State(st.clone()));
    let typed = f.clone();
    let done = match action.as_str() {
        "edit" => api::edit_site(c, s, Path(id), Body(f.input())).await.map(|_| format!("/ui/sites/{id}")),
        "revoke" => api::revoke_site(c, s, Path(id), Body(Empty {})).await.map(|_| format!("/ui/sites/{id}")),
        "enrollment" => {
            return match api::new_enrollment(c, s, Path(id), Body(Empty {})).await {
                Ok(e) => enrolled_page(&ui, &st, &Reached { headers: &headers, uri: &uri }, id, &e.0).await,
                Err(e) => answer(&ui, Err(e), "enrollment", site_page(&ui, &st, id), |p| &mut p.refusal).await,
            };
        }
        "delete" => api::delete_site(c, s, Path(id), Body(Empty {})).await.map(|_| "/ui/sites".to_owned()),
        _ => Err(ApiError::new(ErrorKind::NoHandler, format!("there is no action {action}"))),
    };
    answer(&ui, done, &action, site_page(&ui, &st, id), |p| {
        if action == "edit" {
            // Shown again as typed.
            for b in &mut p.boxes {
                b.ticked = typed.locations.contains(&b.id);
            }
            p.f = typed;
        }
        &mut p.refusal
    })
    .await
}
