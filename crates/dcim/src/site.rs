//! `dcim site`: the process that runs in a remote data center, beside its devices.
//!
//! It connects out to its central over HTTPS (no inbound port at the site), checking
//! the central's certificate against the pinned SHA-256, and authenticates with the
//! site credential it got by exchanging a one-time enrollment secret (kept in its
//! state directory, mode 0600: the only secret it keeps). It then polls for driver
//! calls, performs each with its own drivers (IPMI, Redfish, SNMP, the fake lab when
//! enabled) and posts the results back. The credentials a call needs travel with the
//! call; the site has no database. It serves the netboot segments of its
//! configuration (`[netboot]`, `[[netboot_segments]]`, as a central would), and agents
//! booted there report to the segment's listener, which relays each report to the
//! central unchanged.
//!
//! A site keeps nothing across a restart, so the network boots it held for waiting
//! tasks are gone with its process. Every poll names the process (a random name picked
//! at its start); a central that sees a new name has the tasks whose boot that site
//! held prepare it again and boot the server again (`dcim_tasks`' engine).
//!
//! The central refuses a site of another major protocol version, naming both; a
//! revoked credential is refused at the next poll. Either stops the site with that
//! message. Anything else (the central unreachable, restarting, a certificate that
//! is not the pinned one) is retried with a growing pause, and said in the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dcim_api::wire::site::{
    EnrollInput, LinkAnswer, LinkAnswers, LinkCalls, LinkPoll, PROTOCOL_HEADER, SiteCredential, VERSION_HEADER,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dcim_drivers::remote::{Keyed, Outcome, perform, protocol_string};
use dcim_drivers::{DriverError, Drivers};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::Config;

/// How a site reaches its central.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// The central's base URLs (`https://central.example:8443`): the processes of its
    /// tier, tried in turn when the one in use stops answering.
    pub centrals: Vec<String>,
    /// The SHA-256 of the central's certificate (every process of the tier shows it).
    pub fingerprint: String,
    /// Where the credential is kept.
    pub state_dir: PathBuf,
    /// The one-time enrollment secret, used when no credential is kept yet.
    pub enrollment: Option<String>,
    /// Where agents report that boot from no netboot segment of this site (the fake
    /// lab's): `host:port`, plain HTTP, relayed to the central.
    pub agent_listen: Option<String>,
    /// Calls performed at once.
    pub concurrency: usize,
    /// How long a poll may be held by the central when no call waits.
    pub wait: Duration,
}

impl SiteOptions {
    pub fn new(centrals: &[String], fingerprint: &str, state_dir: &Path) -> SiteOptions {
        SiteOptions {
            centrals: centrals.iter().map(|c| c.trim().trim_end_matches('/').to_owned()).collect(),
            fingerprint: fingerprint.to_owned(),
            state_dir: state_dir.to_owned(),
            enrollment: None,
            agent_listen: None,
            concurrency: 256,
            wait: Duration::from_secs(20),
        }
    }
}

/// The central's processes and the one in use.
struct Centrals {
    urls: Vec<String>,
    current: AtomicUsize,
}

impl Centrals {
    fn base(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// The next process, after the one in use stopped answering.
    fn rotate(&self, from: &str) {
        if self.base() == from {
            self.current.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The HTTPS client of the central: its certificate must be the pinned one.
fn client(opts: &SiteOptions) -> anyhow::Result<reqwest::Client> {
    anyhow::ensure!(!opts.centrals.is_empty(), "name the central (--central)");
    for c in &opts.centrals {
        anyhow::ensure!(
            c.starts_with("https://"),
            "the central's URL must be https:// (the link carries device credentials): {c}"
        );
    }
    let pin = dcim_tls::parse_fingerprint(&opts.fingerprint)
        .context("--central-fingerprint must be a SHA-256: 64 hexadecimal digits, with or without colons")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = dcim_tls::PinOrTrust::new(provider, Some(pin), None).client_config();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(opts.wait + Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("dcim-site/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("the HTTPS client")
}

fn credential_path(opts: &SiteOptions) -> PathBuf {
    opts.state_dir.join("site-credential")
}

/// An error and its causes on one line (a TLS refusal says why only in its source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The error message of a refusal answer (DCImanager's envelope), else its body.
async fn refusal(r: reqwest::Response) -> String {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["msg"].as_str().map(str::to_owned))
        .unwrap_or(text);
    format!("{status}: {msg}")
}

/// The kept credential, or one got now by enrolling at the first process that answers.
async fn credential(http: &reqwest::Client, opts: &SiteOptions) -> anyhow::Result<String> {
    let path = credential_path(opts);
    if let Ok(c) = std::fs::read_to_string(&path) {
        return Ok(c.trim().to_owned());
    }
    let secret = opts.enrollment.as_deref().with_context(|| {
        format!("no credential in {} yet: enroll with the secret the central gave (--enroll)", path.display())
    })?;
    let mut failures = vec![];
    for central in &opts.centrals {
        let r = match http
            .post(format!("{central}/dci/v3/site/enroll"))
            .json(&EnrollInput { secret: secret.to_owned() })
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{central}: {}", chain(&e)));
                continue;
            }
        };
        if !r.status().is_success() {
            anyhow::bail!("the central refused the enrollment: {}", refusal(r).await);
        }
        let c: SiteCredential = r.json().await.context("the enrollment's answer")?;
        std::fs::create_dir_all(&opts.state_dir).with_context(|| format!("creating {}", opts.state_dir.display()))?;
        crate::tls::write_private(&path, c.credential.as_bytes())?;
        tracing::info!(site = %c.name, id = c.id, "enrolled at the central");
        return Ok(c.credential);
    }
    anyhow::bail!("enrolling: no central answered: {}", failures.join("; "))
}

/// What a site shares between its poll, its answers and its relays.
struct Link {
    http: reqwest::Client,
    centrals: Centrals,
    credential: String,
    /// This process's name, picked at its start and said at every poll: the central
    /// learns the site restarted (the network boots it held are gone) from a new one.
    instance: String,
}

impl Link {
    /// A request to the central in use, with the site's headers.
    fn post(&self, base: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{base}{path}"))
            .bearer_auth(&self.credential)
            .header(PROTOCOL_HEADER, protocol_string())
            .header(VERSION_HEADER, env!("CARGO_PKG_VERSION"))
    }
}

/// The successes of keyed calls (`dcim_drivers::remote`), so a key is performed once:
/// a call under a key in progress waits for it, one already performed gets its
/// outcome. A failure is forgotten: the next call under its key performs it again.
#[derive(Default)]
struct Performed {
    slots: Mutex<HashMap<String, Slot>>,
}

enum Slot {
    Running(watch::Receiver<Option<Outcome>>),
    Done(Instant, Outcome),
}

/// How long an outcome is kept for a key: longer than a central takes to notice a
/// dead process and resume its tasks.
const KEEP_OUTCOMES: Duration = Duration::from_secs(30 * 60);

impl Performed {
    async fn once(&self, key: Option<String>, perform: impl std::future::Future<Output = Outcome>) -> Outcome {
        let Some(key) = key else { return perform.await };
        let tx = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(&key) {
                Some(Slot::Done(_, o)) => return o.clone(),
                Some(Slot::Running(rx)) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    slots.insert(key.clone(), Slot::Running(rx));
                    Ok(tx)
                }
            }
        };
        match tx {
            Err(mut rx) => match rx.wait_for(Option::is_some).await {
                Ok(o) => o.clone().expect("some"),
                Err(_) => Err(DriverError::Protocol("the call under this key was dropped".into())),
            },
            Ok(tx) => {
                let outcome = perform.await;
                let _ = tx.send(Some(outcome.clone()));
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                if outcome.is_ok() {
                    slots.insert(key, Slot::Done(Instant::now(), outcome.clone()));
                } else {
                    slots.remove(&key);
                }
                if slots.len() > 1024 {
                    slots.retain(|_, s| !matches!(s, Slot::Done(at, _) if at.elapsed() > KEEP_OUTCOMES));
                }
                outcome
            }
        }
    }
}

/// Runs the site until `stop` resolves, or the central refuses it for good.
pub async fn run(cfg: &Config, opts: SiteOptions, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let http = client(&opts)?;
    let credential = credential(&http, &opts).await?;
    let link = Arc::new(Link {
        http,
        centrals: Centrals { urls: opts.centrals.clone(), current: AtomicUsize::new(0) },
        credential,
        instance: hex::encode(rand::random::<[u8; 8]>()),
    });
    let mut drivers = Drivers::with_settings(cfg.fake_lab()?, &cfg.drivers());
    // The netboot segments of the site's configuration; their listeners relay agents'
    // reports to the central.
    let booting = crate::serve::start_netboot(cfg).await?;
    if let Some(set) = booting.driver {
        drivers = drivers.with_netboot(set);
    }
    let (mut listeners, mut boot_servers) = (vec![], vec![]);
    for (nb, servers, listen) in booting.segments {
        listeners.push(serve_relay(&listen, nb.router().merge(relay_app(link.clone()))).await?);
        boot_servers.push(servers);
    }
    let mut relay = None;
    if let Some(listen) = &opts.agent_listen {
        listeners.push(serve_relay(listen, relay_app(link.clone())).await?);
        relay = Some(format!("http://{listen}/agent/v1/task"));
    }
    let drivers = Arc::new(drivers);
    let (answers_tx, answers_rx) = mpsc::unbounded_channel::<LinkAnswer>();
    tokio::spawn(send_answers(link.clone(), answers_rx));
    println!("dcim site polling {}", opts.centrals.join(", "));
    let r = tokio::select! {
        r = poll(&link, &opts, drivers, relay, answers_tx) => r,
        _ = stop => Ok(()),
    };
    for l in listeners {
        l.abort();
    }
    drop(boot_servers);
    r
}

async fn serve_relay(listen: &str, app: axum::Router) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding the agent listener {listen}"))?;
    let listen = listen.to_owned();
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, %listen, "an agent listener stopped");
        }
    }))
}

/// Polls for calls and performs them, until the central refuses the site for good.
async fn poll(
    link: &Arc<Link>,
    opts: &SiteOptions,
    drivers: Arc<Drivers>,
    relay: Option<String>,
    answers: mpsc::UnboundedSender<LinkAnswer>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(opts.concurrency));
    let performed = Arc::new(Performed::default());
    let relay: Option<Arc<str>> = relay.map(Into::into);
    let mut pause = Duration::from_millis(250);
    let mut error: Option<String> = None;
    let mut connected: Option<String> = None;
    loop {
        // Take no more calls than can start now; wait for one slot at least.
        let first = permits.clone().acquire_owned().await.context("the call slots closed")?;
        let free = permits.available_permits() + 1;
        let body = LinkPoll {
            wait_ms: Some(opts.wait.as_millis() as u64),
            max: Some(free.min(256) as i64),
            error: error.take(),
            instance: Some(link.instance.clone()),
        };
        let base = link.centrals.base().to_owned();
        let r = match link.post(&base, "/dci/v3/site/link/poll").json(&body).send().await {
            Ok(r) => r,
            Err(e) => {
                let why = chain(&e);
                tracing::warn!(central = %base, error = %why, retry_in_ms = pause.as_millis() as u64, "the central did not answer the poll");
                link.centrals.rotate(&base);
                connected = None;
                drop(first);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        match r.status() {
            s if s.is_success() => {}
            reqwest::StatusCode::UNAUTHORIZED => {
                anyhow::bail!(
                    "the central refused the site's credential ({}); enroll again with a new secret",
                    refusal(r).await
                )
            }
            reqwest::StatusCode::CONFLICT => anyhow::bail!("the central refused the link: {}", refusal(r).await),
            _ => {
                let why = refusal(r).await;
                tracing::warn!(central = %base, error = %why, retry_in_ms = pause.as_millis() as u64, "the central refused a poll");
                link.centrals.rotate(&base);
                drop(first);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
                continue;
            }
        }
        let calls: LinkCalls = match r.json().await {
            Ok(c) => c,
            Err(e) => {
                error = Some(format!("a poll's answer did not parse: {e}"));
                continue;
            }
        };
        if connected.as_deref() != Some(base.as_str()) {
            tracing::info!(central = %base, "connected to the central");
            connected = Some(base);
        }
        pause = Duration::from_millis(250);
        let mut first = Some(first);
        for c in calls.calls {
            let permit = match first.take() {
                Some(p) => p,
                None => permits.clone().acquire_owned().await.context("the call slots closed")?,
            };
            let (drivers, answers, performed, relay) =
                (drivers.clone(), answers.clone(), performed.clone(), relay.clone());
            tokio::spawn(async move {
                let outcome: Outcome = match serde_json::from_value::<Keyed>(c.call) {
                    Ok(Keyed { key, call }) => {
                        let op = call.op();
                        let r = performed.once(key, perform(&drivers, call, relay.as_deref())).await;
                        if let Err(e) = &r {
                            tracing::info!(call = c.id, op, error = %e, "a call failed at the device");
                        }
                        r
                    }
                    Err(e) => Err(DriverError::Unsupported(format!("this site does not know the call: {e}"))),
                };
                let outcome = serde_json::to_value(&outcome).unwrap_or_default();
                let _ = answers.send(LinkAnswer { id: c.id, outcome });
                drop(permit);
            });
        }
    }
}

/// Posts results as they come, several at once when they pile up; a result that
/// cannot be delivered within a minute is dropped (its caller gave up long before).
async fn send_answers(link: Arc<Link>, mut rx: mpsc::UnboundedReceiver<LinkAnswer>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let body = LinkAnswers { answers: batch };
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let base = link.centrals.base().to_owned();
            match link.post(&base, "/dci/v3/site/link/answer").json(&body).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if r.status().is_client_error() => {
                    let why = refusal(r).await;
                    tracing::warn!(error = %why, "the central refused answers");
                    break;
                }
                Ok(r) => tracing::warn!(central = %base, status = %r.status(), "posting answers failed"),
                Err(e) => {
                    tracing::warn!(central = %base, error = %chain(&e), "posting answers failed");
                    link.centrals.rotate(&base);
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                tracing::warn!(
                    answers = body.answers.len(),
                    "answers dropped: the central was unreachable for a minute"
                );
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// The agents' route of an agent listener: `POST /agent/v1/task/{id}/report`, relayed
/// to the central in use with the agent's own `Authorization` (its task's secret),
/// answered with the central's answer. A process that does not answer is passed over
/// for the next, so a report is not lost with a central process.
fn relay_app(link: Arc<Link>) -> axum::Router {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    async fn relay(
        State(link): State<Arc<Link>>,
        UrlPath(id): UrlPath<i64>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let mut failures = vec![];
        for _ in 0..link.centrals.urls.len() {
            let base = link.centrals.base().to_owned();
            let mut req = link
                .http
                .post(format!("{base}/agent/v1/task/{id}/report"))
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(a) = headers.get("authorization") {
                req = req.header("authorization", a.clone());
            }
            match req.send().await {
                Ok(r) => {
                    let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                    let body = r.bytes().await.unwrap_or_default();
                    return (status, [("content-type", "application/json")], body).into_response();
                }
                Err(e) => {
                    link.centrals.rotate(&base);
                    failures.push(format!("{base}: {}", chain(&e)));
                }
            }
        }
        let msg = format!("no central answered: {}", failures.join("; "));
        tracing::warn!(task = id, error = %msg, "relaying an agent's report failed");
        let body = serde_json::json!({"error": {"code": 5003, "msg": msg, "value": {}}});
        (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
    }
    axum::Router::new()
        .route("/agent/v1/task/{id}/report", axum::routing::post(relay))
        .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
        .with_state(link)
}
