//! Remote sites. Admins create a site with the locations it serves and get a one-time
//! enrollment secret; the site's `dcim site` exchanges it for a long-lived credential
//! (`/dci/v3/site/enroll`) and then polls for the calls to devices of its locations
//! (`/dci/v3/site/link/poll`) and posts their results (`/dci/v3/site/link/answer`),
//! always connecting out, so it needs no inbound port. The link's routes take the
//! site's credential as `Authorization: Bearer`, never a user session, and are left
//! out of the audit trail (a poll every few seconds is not an action); the admin
//! routes and the enrollment are audited.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dcim_drivers::remote::{Outcome, check_protocol};
use dcim_store::sites::{NewSite, SiteAuth, SitePatch, SiteSeen};

use crate::AppState;
use crate::auth::{Caller, hash_secret, new_secret};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{Body, ClientIp, ListParams, ListQueryDoc, Path};
use crate::wire::site::{
    EnrollInput, LinkAccepted, LinkAnswers, LinkCall, LinkCalls, LinkPoll, PROTOCOL_HEADER, Site, SiteCredential,
    SiteEnrollment, SiteInput, VERSION_HEADER,
};
use crate::wire::task::time;
use crate::wire::{Empty, Id, List};

/// How long an enrollment secret works.
pub const ENROLLMENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest a poll is held when no call waits.
const MAX_WAIT: Duration = Duration::from_secs(20);

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

async fn site_answer(st: &AppState, id: i64) -> ApiResult<Site> {
    let row = st.store.get_site(id).await?;
    let locations = st.store.site_locations(&[id]).await?.into_iter().map(|(_, l)| l).collect();
    let connected = st.engine.sites.connected(row.last_seen);
    Ok(Site::new(row, locations, connected))
}

/// Checks the locations exist; duplicates dropped.
async fn locations(st: &AppState, raw: &[i64]) -> ApiResult<Vec<i64>> {
    let mut out: Vec<i64> = vec![];
    for l in raw {
        if st.store.get_location(*l).await.is_err() {
            return Err(ApiError::invalid("locations", format!("location {l} does not exist")));
        }
        if !out.contains(l) {
            out.push(*l);
        }
    }
    Ok(out)
}

fn enrollment() -> (String, String, i64) {
    let secret = new_secret();
    let hash = hash_secret(&secret);
    (secret, hash, unix_now() + ENROLLMENT_TTL.as_secs() as i64)
}

#[utoipa::path(get, path = "/dci/v3/site", params(ListQueryDoc), tag = "sites", responses((status = 200, body = List<Site>)))]
pub async fn list_sites(
    caller: Caller,
    State(st): State<AppState>,
    ListParams(q): ListParams,
) -> ApiResult<Json<List<Site>>> {
    caller.require_admin()?;
    let page = st.store.list_sites(&q).await?;
    let ids: Vec<i64> = page.items.iter().map(|s| s.id).collect();
    let mut served = st.store.site_locations(&ids).await?;
    let list = page
        .items
        .into_iter()
        .map(|r| {
            let mine = served.extract_if(.., |(s, _)| *s == r.id).map(|(_, l)| l).collect();
            let connected = st.engine.sites.connected(r.last_seen);
            Site::new(r, mine, connected)
        })
        .collect();
    Ok(Json(List { list, size: page.size }))
}

#[utoipa::path(get, path = "/dci/v3/site/{id}", tag = "sites", responses((status = 200, body = Site), (status = 404)))]
pub async fn get_site(caller: Caller, State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Site>> {
    caller.require_admin()?;
    Ok(Json(site_answer(&st, id).await?))
}

/// Creates a site serving `locations` and answers its enrollment secret, once.
#[utoipa::path(post, path = "/dci/v3/site", tag = "sites", request_body = SiteInput,
    responses((status = 201, body = SiteEnrollment), (status = 409), (status = 422)))]
pub async fn create_site(
    caller: Caller,
    State(st): State<AppState>,
    Body(b): Body<SiteInput>,
) -> ApiResult<(StatusCode, Json<SiteEnrollment>)> {
    caller.require_admin()?;
    let name = dcim_core::validate::required_line("name", b.name.as_deref().unwrap_or(""), 128)?;
    let description = dcim_core::validate::line("description", b.description.as_deref().unwrap_or(""), 256)?;
    let locations = locations(&st, b.locations.as_deref().unwrap_or_default()).await?;
    let (secret, hash, expires) = enrollment();
    let site = NewSite { name, description, locations, enrollment_hash: hash, enrollment_expires: expires };
    let id = st.store.create_site(&site).await?;
    refresh_routes(&st).await;
    Ok((StatusCode::CREATED, Json(SiteEnrollment { id, enrollment_secret: secret, enrollment_expires: time(expires) })))
}

/// Renames a site or changes the locations it serves; calls already queued for a
/// location it gives up are refused when it polls, never handed to it.
#[utoipa::path(post, path = "/dci/v3/site/{id}", tag = "sites", request_body = SiteInput,
    responses((status = 200, body = Id), (status = 404), (status = 409), (status = 422)))]
pub async fn edit_site(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Body(b): Body<SiteInput>,
) -> ApiResult<Json<Id>> {
    caller.require_admin()?;
    let p = SitePatch {
        name: b.name.as_deref().map(|n| dcim_core::validate::required_line("name", n, 128)).transpose()?,
        description: b.description.as_deref().map(|d| dcim_core::validate::line("description", d, 256)).transpose()?,
        locations: match b.locations.as_deref() {
            Some(l) => Some(locations(&st, l).await?),
            None => None,
        },
    };
    st.store.update_site(id, &p).await?;
    refresh_routes(&st).await;
    Ok(Json(Id { id }))
}

/// Deletes a site: its credential stops working and its locations are reached
/// directly again.
#[utoipa::path(delete, path = "/dci/v3/site/{id}", tag = "sites", responses((status = 200, body = Empty), (status = 404)))]
pub async fn delete_site(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    st.store.delete_site(id).await?;
    refresh_routes(&st).await;
    Ok(Json(Empty {}))
}

/// Revokes the site's credential (its next poll is refused, and no call is handed to
/// it from now on) and any enrollment secret not yet used.
#[utoipa::path(post, path = "/dci/v3/site/{id}/revoke", tag = "sites", request_body = Empty,
    responses((status = 200, body = Empty), (status = 404)))]
pub async fn revoke_site(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<Empty>> {
    caller.require_admin()?;
    st.store.reset_site_credential(id, None).await?;
    Ok(Json(Empty {}))
}

/// A new enrollment secret for the site (a reinstalled site, a lost credential); the
/// credential it held is revoked.
#[utoipa::path(post, path = "/dci/v3/site/{id}/enrollment", tag = "sites", request_body = Empty,
    responses((status = 200, body = SiteEnrollment), (status = 404)))]
pub async fn new_enrollment(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    _body: Body<Empty>,
) -> ApiResult<Json<SiteEnrollment>> {
    caller.require_admin()?;
    let (secret, hash, expires) = enrollment();
    st.store.reset_site_credential(id, Some((&hash, expires))).await?;
    Ok(Json(SiteEnrollment { id, enrollment_secret: secret, enrollment_expires: time(expires) }))
}

/// Exchanges a site's one-time enrollment secret for its long-lived credential.
#[utoipa::path(post, path = "/dci/v3/site/enroll", tag = "sites", request_body = EnrollInput, security(()),
    responses((status = 200, body = SiteCredential), (status = 401)))]
pub async fn enroll_site(State(st): State<AppState>, Body(b): Body<EnrollInput>) -> ApiResult<Json<SiteCredential>> {
    let credential = new_secret();
    let Some((id, name)) = st.store.enroll_site(&hash_secret(b.secret.trim()), &hash_secret(&credential)).await? else {
        return Err(ApiError::unauthorized("unknown, used or expired enrollment secret"));
    };
    Ok(Json(SiteCredential { id, name, credential }))
}

/// A link request's site: who, with which credential, speaking which protocol.
struct LinkCaller {
    site: SiteAuth,
    /// The SHA-256 of its credential: calls are handed over only while it stands.
    credential_hash: String,
    protocol: String,
    version: String,
}

fn revoked() -> ApiError {
    ApiError::unauthorized("unknown or revoked site credential")
}

/// How often a held poll checks that the site's credential still stands: a site
/// revoked while its poll waits is told within this, not at its next poll.
const CREDENTIAL_LOOK: Duration = Duration::from_secs(1);

/// The site a link request comes from, and the protocol it speaks; a refusal names why.
async fn link_site(st: &AppState, headers: &HeaderMap) -> ApiResult<LinkCaller> {
    let credential = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("a site's link needs its credential as a Bearer token"))?;
    let credential_hash = hash_secret(credential.trim());
    let site = st.store.site_by_credential(&credential_hash).await?.ok_or_else(revoked)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_owned();
    let (protocol, version) = (header(PROTOCOL_HEADER), header(VERSION_HEADER));
    if let Err(msg) = check_protocol(&protocol, &format!("site {}", site.name)) {
        st.store.site_error(site.id, &msg).await?;
        return Err(ApiError::new(ErrorKind::Conflict, msg));
    }
    Ok(LinkCaller { site, credential_hash, protocol, version })
}

/// A site asks for calls: they come at once when some wait, else when one is queued,
/// or an empty list after `wait_ms`.
#[utoipa::path(post, path = "/dci/v3/site/link/poll", tag = "sites", request_body = LinkPoll, security(("bearer" = [])),
    responses((status = 200, body = LinkCalls), (status = 401), (status = 409)))]
pub async fn link_poll(
    State(st): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Body(b): Body<LinkPoll>,
) -> ApiResult<Json<LinkCalls>> {
    let address = ip.map(|ip| ip.to_string()).unwrap_or_default();
    let LinkCaller { site, credential_hash, protocol, version } = link_site(&st, &headers).await?;
    let hub = &st.engine.sites;
    let max = b.max.unwrap_or(64);
    if !(1..=256).contains(&max) {
        return Err(ApiError::invalid("max", "must be 1 to 256"));
    }
    let error = b.error.as_deref().map(|e| e.chars().take(512).collect::<String>());
    let instance = b.instance.as_deref().map(|i| dcim_core::validate::line("instance", i, 64)).transpose()?;
    let instance = instance.as_deref();
    let restarted = instance.is_some_and(|i| i != site.instance);
    // A busy site polls many times a second: its last poll is written every 2 s at
    // most (connected means polled within `site_stale_secs`, 30 by default).
    if error.is_some() || restarted || site.last_seen.is_none_or(|t| unix_now() - t >= 2) {
        let stale = hub.stale().as_secs() as i64;
        let seen =
            SiteSeen { version: &version, protocol: &protocol, address: &address, instance, error: error.as_deref() };
        st.store.site_seen(site.id, stale, &seen).await?;
    }
    if restarted {
        // The tasks waiting on a boot the site held see the new process at once.
        refresh_routes(&st).await;
        if !site.instance.is_empty() {
            tracing::info!(site = %site.name, "the site restarted: the network boots it held are prepared again");
        }
    }
    let wait = Duration::from_millis(b.wait_ms.unwrap_or(0)).min(MAX_WAIT).min(hub.stale() / 2);
    let until = tokio::time::Instant::now() + wait;
    // A call for a location the site gave up goes back to its caller as a device that
    // did not answer: the step tries again, the way the location is served now.
    let refusal = serde_json::to_string(&Outcome::Err(dcim_drivers::DriverError::SiteDown(format!(
        "site {} no longer serves the device's location",
        site.name
    ))))
    .unwrap_or_default();
    let mut looked = tokio::time::Instant::now();
    loop {
        let calls = st.store.take_site_calls(site.id, &credential_hash, max, &refusal).await?;
        if calls.is_empty() && looked.elapsed() >= CREDENTIAL_LOOK {
            looked = tokio::time::Instant::now();
            if st.store.site_by_credential(&credential_hash).await?.is_none() {
                return Err(revoked());
            }
        }
        if !calls.is_empty() || tokio::time::Instant::now() >= until {
            let calls = calls
                .into_iter()
                .map(|c| LinkCall { id: c.id, call: serde_json::from_str(&c.body).unwrap_or_default() })
                .collect();
            return Ok(Json(LinkCalls { calls }));
        }
        hub.wait_for_calls(site.id).await;
    }
}

/// A site's results of the calls it took.
#[utoipa::path(post, path = "/dci/v3/site/link/answer", tag = "sites", request_body = LinkAnswers,
    security(("bearer" = [])), responses((status = 200, body = LinkAccepted), (status = 401), (status = 409), (status = 422)))]
pub async fn link_answer(
    State(st): State<AppState>,
    headers: HeaderMap,
    Body(b): Body<LinkAnswers>,
) -> ApiResult<Json<LinkAccepted>> {
    let site = link_site(&st, &headers).await?.site;
    let mut answers = Vec::with_capacity(b.answers.len());
    for a in &b.answers {
        let outcome: Outcome = serde_json::from_value(a.outcome.clone())
            .map_err(|e| ApiError::invalid("answers", format!("call {}: not a call's result: {e}", a.id)))?;
        let text = serde_json::to_string(&outcome).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
        answers.push((a.id, text));
    }
    let taken = st.store.answer_site_calls(site.id, &answers).await?;
    for id in &taken {
        st.engine.sites.answered(*id);
    }
    Ok(Json(LinkAccepted { accepted: taken.len() }))
}

async fn refresh_routes(st: &AppState) {
    if let Err(e) = st.engine.sites.refresh().await {
        tracing::warn!(error = %e, "reading the sites' routes failed");
    }
}
