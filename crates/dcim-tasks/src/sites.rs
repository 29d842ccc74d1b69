//! The central's side of remote sites: which locations a site serves (the routes the
//! drivers consult), and the link that carries a driver call to a site and its answer
//! back.
//!
//! A call goes through the database, not through the connection of one process: the
//! caller queues it ([`Store::queue_site_call`]), the process the site polls hands it
//! over, the site posts its answer to whichever process it reaches, and the caller
//! reads it back. So a call made by any process of a central tier reaches a site
//! connected to any other, and no call is lost with the process that held the link.
//! Within one process a call, its hand-over and its answer wake each other at once
//! (`Notify`). Across processes a poll looks for calls every [`CROSS_PROCESS_LOOK`],
//! and one watcher per process looks, as often, for the answers of all the calls its
//! callers wait for, in one statement (a thousand callers cost one query, not a
//! thousand).
//!
//! A site that has not polled for `stale` is not connected: calls for its locations
//! fail at once with "site X not connected since T", an unreachable device's error, so
//! steps back off and pollers record it as they would for a silent BMC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dcim_drivers::DriverError;
use dcim_drivers::remote::{Call, Keyed, Outcome, SiteLink, SiteRouter};
use dcim_store::Store;
use dcim_store::sites::SiteRoute;
use tokio::sync::Notify;

/// How often a caller or a site's poll looks at the database for what another process
/// did (an answer it received, a call it queued).
pub const CROSS_PROCESS_LOOK: Duration = Duration::from_millis(100);

/// How often the routes are read again (a site's locations changed by another
/// process, its link's last poll): a location given to a site, or taken from it, is
/// routed so by every process within this. A call made in between by a process that
/// has not seen the change goes the old way: to the device directly (which a site's
/// device does not answer, so the step retries, through the site), or to the site,
/// which is refused the call when it polls (the site's locations are checked in the
/// statement that hands calls over).
pub const ROUTES_REFRESH: Duration = Duration::from_millis(500);

/// The sites of a central, shared by the drivers (routes and links) and the API (the
/// link's hand-over and answers). Cheap to clone.
#[derive(Clone)]
pub struct SiteHub(Arc<Shared>);

struct Shared {
    store: Store,
    /// A site that has not polled for this long is not connected.
    stale: Duration,
    /// Longest a call waits for its answer.
    call_timeout: Duration,
    routes: RwLock<HashMap<i64, Arc<SiteRoute>>>,
    /// When the routes were last read.
    read_at: Mutex<Option<tokio::time::Instant>>,
    /// Per site: calls were queued here.
    queued: Mutex<HashMap<i64, Arc<Notify>>>,
    /// Per call made here: its answer arrived here.
    answered: Mutex<HashMap<i64, Arc<Notify>>>,
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A unix time as people read it (`2026-12-06T10:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl SiteHub {
    pub fn new(store: Store, stale: Duration, call_timeout: Duration) -> SiteHub {
        SiteHub(Arc::new(Shared {
            store,
            stale,
            call_timeout,
            routes: RwLock::new(HashMap::new()),
            read_at: Mutex::new(None),
            queued: Mutex::new(HashMap::new()),
            answered: Mutex::new(HashMap::new()),
        }))
    }

    /// How long a site may stay silent and still count as connected.
    pub fn stale(&self) -> Duration {
        self.0.stale
    }

    /// Reads the routes again: after a site's locations change here, and every
    /// [`ROUTES_REFRESH`] for the changes of other processes.
    pub async fn refresh(&self) -> Result<(), dcim_store::StoreError> {
        let routes = self.0.store.site_routes().await?;
        let map = routes.into_iter().map(|r| (r.location_id, Arc::new(r))).collect();
        *self.0.routes.write().unwrap_or_else(|p| p.into_inner()) = map;
        *self.0.read_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
        Ok(())
    }

    /// Looks for the answers other processes received for the calls waiting here,
    /// every [`CROSS_PROCESS_LOOK`] while any wait, and wakes their callers; until `stop`.
    pub async fn watch_answers(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(CROSS_PROCESS_LOOK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let waiting: Vec<i64> = self.0.answered.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
            if waiting.is_empty() {
                continue;
            }
            match self.0.store.answered_site_calls(&waiting).await {
                Ok(ids) => ids.into_iter().for_each(|id| self.answered(id)),
                Err(e) => tracing::warn!(error = %e, "looking for site answers failed"),
            }
        }
    }

    /// Reads the routes every [`ROUTES_REFRESH`] and forgets calls long past their
    /// deadline (callers that died), until `stop`.
    pub async fn keep_routes(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(ROUTES_REFRESH);
        let mut rounds = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "reading the sites' routes failed");
            }
            rounds += 1;
            if rounds.is_multiple_of(120)
                && let Err(e) = self.0.store.purge_site_calls(60_000).await
            {
                tracing::warn!(error = %e, "purging expired site calls failed");
            }
        }
    }

    /// Whether a site last seen at `last_seen` is connected now.
    pub fn connected(&self, last_seen: Option<i64>) -> bool {
        last_seen.is_some_and(|t| unix_now() - t < self.0.stale.as_secs() as i64)
    }

    /// Wakes the polls of `site` in this process: calls were queued.
    fn queued(&self, site: i64) -> Arc<Notify> {
        self.0.queued.lock().unwrap_or_else(|p| p.into_inner()).entry(site).or_default().clone()
    }

    /// Waits until calls may be waiting for `site`: a call queued in this process, or
    /// [`CROSS_PROCESS_LOOK`] (another process may have queued one).
    pub async fn wait_for_calls(&self, site: i64) {
        let notify = self.queued(site);
        let _ = tokio::time::timeout(CROSS_PROCESS_LOOK, notify.notified()).await;
    }

    /// A site answered call `id`: wakes its caller if it waits in this process.
    pub fn answered(&self, id: i64) {
        if let Some(n) = self.0.answered.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            n.notify_one();
        }
    }

    /// The name of the site that held a network boot (`holder`, as its link gave it:
    /// `site:ID@PROCESS`) when the site's process is another now: it restarted, and the
    /// boot is gone with the process that held it. None while it is the same process,
    /// or the site serves no location now (its calls are refused, and the task's
    /// steps say why).
    pub fn restarted_since(&self, holder: &str) -> Option<String> {
        let (id, instance) = holder.strip_prefix("site:")?.split_once('@')?;
        let id: i64 = id.parse().ok()?;
        let routes = self.0.routes.read().unwrap_or_else(|p| p.into_inner());
        let now = routes.values().find(|r| r.site_id == id)?;
        let another = !instance.is_empty() && !now.instance.is_empty() && now.instance != instance;
        another.then(|| now.name.clone())
    }

    fn why_not_connected(route: &SiteRoute) -> String {
        match route.last_seen {
            Some(t) => format!("site {} not connected since {}", route.name, rfc3339(t)),
            None => format!("site {} has never connected", route.name),
        }
    }
}

impl SiteRouter for SiteHub {
    fn route(&self, location: i64) -> Option<Arc<dyn SiteLink>> {
        let route = self.0.routes.read().unwrap_or_else(|p| p.into_inner()).get(&location).cloned()?;
        Some(Arc::new(Link { hub: self.clone(), route }))
    }
}

/// The link to the site serving one location, as the drivers use it.
struct Link {
    hub: SiteHub,
    route: Arc<SiteRoute>,
}

/// Forgets a call whose caller stopped waiting (its own timeout, a step's, a dropped
/// request): a call nobody waits for is not handed to the site.
struct Pending {
    hub: SiteHub,
    id: i64,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.hub.0.answered.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
        if !self.done {
            let (store, id) = (self.hub.0.store.clone(), self.id);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.drop_site_call(id).await {
                        tracing::warn!(call = id, error = %e, "forgetting a site call failed");
                    }
                });
            }
        }
    }
}

#[async_trait]
impl SiteLink for Link {
    fn holder(&self) -> String {
        format!("site:{}@{}", self.route.site_id, self.route.instance)
    }

    async fn call(&self, call: Call, location: i64) -> Outcome {
        let hub = &self.hub;
        let mut route = self.route.clone();
        if !hub.connected(route.last_seen) {
            // The routes may be a moment old: look again before failing, unless they
            // were read just now (a poller's round meets a silent site once per BMC).
            let read_at = *hub.0.read_at.lock().unwrap_or_else(|p| p.into_inner());
            if read_at.is_none_or(|t| t.elapsed() > CROSS_PROCESS_LOOK) {
                let _ = hub.refresh().await;
            }
            let fresh = hub.0.routes.read().unwrap_or_else(|p| p.into_inner()).get(&location).cloned();
            match fresh {
                Some(r) if r.site_id == route.site_id && hub.connected(r.last_seen) => route = r,
                Some(r) => return Err(DriverError::SiteDown(SiteHub::why_not_connected(&r))),
                None => return Err(DriverError::SiteDown(SiteHub::why_not_connected(&route))),
            }
        }
        let route = &route;
        let op = call.op();
        let keyed = Keyed::new(call);
        let body = serde_json::to_string(&keyed).map_err(|e| DriverError::Protocol(e.to_string()))?;
        let timeout = hub.0.call_timeout;
        let deadline = dcim_store::webhooks::now_ms() + timeout.as_millis() as i64;
        let store = &hub.0.store;
        let unavailable = |e: dcim_store::StoreError| DriverError::Unreachable(format!("the call queue: {e}"));
        let key = keyed.key.as_deref();
        let id =
            (store.queue_site_call(route.site_id, location, op, &body, deadline, key).await).map_err(unavailable)?;
        let notify = Arc::new(Notify::new());
        hub.0.answered.lock().unwrap_or_else(|p| p.into_inner()).insert(id, notify.clone());
        let mut pending = Pending { hub: hub.clone(), id, done: false };
        hub.queued(route.site_id).notify_one();
        let started = tokio::time::Instant::now();
        loop {
            if let Some(answer) = store.take_site_answer(id).await.map_err(unavailable)? {
                pending.done = true;
                return serde_json::from_str::<Outcome>(&answer).map_err(|e| {
                    DriverError::Protocol(format!("site {}: an answer that does not parse: {e}", route.name))
                })?;
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(DriverError::Timeout(timeout.as_millis() as u64));
            }
            // The watcher or the answer's own process wakes this; a look every second
            // besides, should a wake-up be missed.
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), notify.notified()).await;
        }
    }
}
