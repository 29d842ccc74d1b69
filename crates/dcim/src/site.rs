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
use dcim_drivers::remote::{Call, Outcome, perform, protocol_string};
use dcim_drivers::{DriverError, Drivers, fake::FakeLab};
use tokio::sync::{Semaphore, mpsc};

use crate::Config;

/// How a site reaches its central.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// The central's base URL (`https://central.example:8443`).
    pub central: String,
    /// The SHA-256 of the central's certificate.
    pub fingerprint: String,
    /// Where the credential is kept.
    pub state_dir: PathBuf,
    /// The one-time enrollment secret, used when no credential is kept yet.
    pub enrollment: Option<String>,
    /// Calls performed at once.
    pub concurrency: usize,
    /// How long a poll may be held by the central when no call waits.
    pub wait: Duration,
}

impl SiteOptions {
    pub fn new(central: &str, fingerprint: &str, state_dir: &Path) -> SiteOptions {
        SiteOptions {
            central: central.trim().trim_end_matches('/').to_owned(),
            fingerprint: fingerprint.to_owned(),
            state_dir: state_dir.to_owned(),
            enrollment: None,
            concurrency: 256,
            wait: Duration::from_secs(20),
        }
    }
}

/// The HTTPS client of the central: its certificate must be the pinned one.
fn client(opts: &SiteOptions) -> anyhow::Result<reqwest::Client> {
    anyhow::ensure!(
        opts.central.starts_with("https://"),
        "the central's URL must be https:// (the link carries device credentials): {}",
        opts.central
    );
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

/// The kept credential, or one got now by enrolling.
async fn credential(http: &reqwest::Client, opts: &SiteOptions) -> anyhow::Result<String> {
    let path = credential_path(opts);
    if let Ok(c) = std::fs::read_to_string(&path) {
        return Ok(c.trim().to_owned());
    }
    let secret = opts.enrollment.as_deref().with_context(|| {
        format!("no credential in {} yet: enroll with the secret the central gave (--enroll)", path.display())
    })?;
    let r = http
        .post(format!("{}/dci/v3/site/enroll", opts.central))
        .json(&EnrollInput { secret: secret.to_owned() })
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("enrolling at {}: {}", opts.central, chain(&e)))?;
    if !r.status().is_success() {
        anyhow::bail!("the central refused the enrollment: {}", refusal(r).await);
    }
    let c: SiteCredential = r.json().await.context("the enrollment's answer")?;
    std::fs::create_dir_all(&opts.state_dir).with_context(|| format!("creating {}", opts.state_dir.display()))?;
    write_private(&path, &c.credential)?;
    tracing::info!(site = %c.name, id = c.id, "enrolled at the central");
    Ok(c.credential)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A request to the central with the site's headers.
fn link(http: &reqwest::Client, opts: &SiteOptions, credential: &str, path: &str) -> reqwest::RequestBuilder {
    http.post(format!("{}{path}", opts.central))
        .bearer_auth(credential)
        .header(PROTOCOL_HEADER, protocol_string())
        .header(VERSION_HEADER, env!("CARGO_PKG_VERSION"))
}

/// Runs the site until `stop` resolves, or the central refuses it for good.
pub async fn run(cfg: &Config, opts: SiteOptions, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let http = client(&opts)?;
    let credential = credential(&http, &opts).await?;
    let lab = cfg.fake_enabled().then(|| FakeLab::new(Duration::from_millis(cfg.fake_delay_ms)));
    let mut drivers = Drivers::with_settings(lab, &cfg.drivers());
    // The netboot segments of the site's configuration; their listeners relay agents'
    // reports to the central.
    let booting = crate::serve::start_netboot(cfg).await?;
    if let Some(set) = booting.driver {
        drivers = drivers.with_netboot(set);
    }
    let mut boot_servers = vec![];
    for (nb, servers, listen) in booting.segments {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding the netboot listener {listen}"))?;
        let app = nb.router().merge(relay_app(http.clone(), opts.central.clone()));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, %listen, "a netboot HTTP listener stopped");
            }
        });
        boot_servers.push(servers);
    }
    let drivers = Arc::new(drivers);
    let (answers_tx, answers_rx) = mpsc::unbounded_channel::<LinkAnswer>();
    tokio::spawn(send_answers(http.clone(), opts.clone(), credential.clone(), answers_rx));
    println!("dcim site polling {}", opts.central);
    let r = tokio::select! {
        r = poll(&http, &opts, &credential, drivers, answers_tx) => r,
        _ = stop => Ok(()),
    };
    drop(boot_servers);
    r
}

/// Polls for calls and performs them, until the central refuses the site for good.
async fn poll(
    http: &reqwest::Client,
    opts: &SiteOptions,
    credential: &str,
    drivers: Arc<Drivers>,
    answers: mpsc::UnboundedSender<LinkAnswer>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(opts.concurrency));
    let mut pause = Duration::from_millis(250);
    let mut error: Option<String> = None;
    let mut connected = false;
    loop {
        // Take no more calls than can start now; wait for one slot at least.
        let first = permits.clone().acquire_owned().await.context("the call slots closed")?;
        let free = permits.available_permits() + 1;
        let body = LinkPoll {
            wait_ms: Some(opts.wait.as_millis() as u64),
            max: Some(free.min(256) as i64),
            error: error.take(),
        };
        let sent = link(http, opts, credential, "/dci/v3/site/link/poll").json(&body).send().await;
        let r = match sent {
            Ok(r) => r,
            Err(e) => {
                let why = chain(&e);
                tracing::warn!(central = %opts.central, error = %why, retry_in_ms = pause.as_millis() as u64, "the central did not answer the poll");
                connected = false;
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
                tracing::warn!(error = %why, retry_in_ms = pause.as_millis() as u64, "the central refused a poll");
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
        if !connected {
            tracing::info!(central = %opts.central, "connected to the central");
            connected = true;
        }
        pause = Duration::from_millis(250);
        let mut first = Some(first);
        for c in calls.calls {
            let permit = match first.take() {
                Some(p) => p,
                None => permits.clone().acquire_owned().await.context("the call slots closed")?,
            };
            let (drivers, answers) = (drivers.clone(), answers.clone());
            tokio::spawn(async move {
                let outcome: Outcome = match serde_json::from_value::<Call>(c.call) {
                    Ok(call) => {
                        let op = call.op();
                        let r = perform(&drivers, call).await;
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
async fn send_answers(
    http: reqwest::Client,
    opts: SiteOptions,
    credential: String,
    mut rx: mpsc::UnboundedReceiver<LinkAnswer>,
) {
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
            match link(&http, &opts, &credential, "/dci/v3/site/link/answer").json(&body).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if r.status().is_client_error() => {
                    let why = refusal(r).await;
                    tracing::warn!(error = %why, "the central refused answers");
                    break;
                }
                Ok(r) => tracing::warn!(status = %r.status(), "posting answers failed"),
                Err(e) => tracing::warn!(error = %chain(&e), "posting answers failed"),
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

/// The agents' route of a netboot listener: `POST /agent/v1/task/{id}/report`, relayed to the central with
/// the agent's own `Authorization` (its task's secret), answered with the central's
/// answer.
fn relay_app(http: reqwest::Client, central: String) -> axum::Router {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    async fn relay(
        State((http, central)): State<(reqwest::Client, String)>,
        UrlPath(id): UrlPath<i64>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let mut req = http
            .post(format!("{central}/agent/v1/task/{id}/report"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = headers.get("authorization") {
            req = req.header("authorization", a.clone());
        }
        match req.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let body = r.bytes().await.unwrap_or_default();
                (status, [("content-type", "application/json")], body).into_response()
            }
            Err(e) => {
                let msg = format!("the central did not answer: {}", chain(&e));
                tracing::warn!(task = id, error = %msg, "relaying an agent's report failed");
                let body = serde_json::json!({"error": {"code": 5003, "msg": msg, "value": {}}});
                (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
            }
        }
    }
    axum::Router::new()
        .route("/agent/v1/task/{id}/report", axum::routing::post(relay))
        .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
        .with_state((http, central))
}
