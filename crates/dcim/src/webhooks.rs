//! The webhook delivery worker: claims due deliveries (with a lease, so one process
//! of several sends each), POSTs each event as JSON signed with HMAC-SHA256, and
//! records every attempt. A failed attempt is retried with exponential backoff until
//! `webhook_retry_secs` after the event, then given up. Deliveries of one endpoint for
//! one server go one at a time, in order; a process killed mid-delivery leaves the
//! lease to run out, and the delivery is sent again: delivery is at least once, and
//! receivers deduplicate by the event id.
//!
//! The signature (`Dcim-Signature: t=<unix seconds>,v1=<hex>`) is the HMAC-SHA256, keyed
//! with the endpoint's secret, of `<t>.<body>`, as Stripe signs its events: a receiver
//! recomputes it over the raw body, compares in constant time, and refuses a `t` older
//! than its replay window (five minutes is usual).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcim_api::webhook_guard::{UrlGuard, forbidden_ip};
use dcim_store::Store;
use dcim_store::webhooks::{Attempt, DueDelivery, Next, now_ms};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::watch;

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often to look for due deliveries when there were none.
    pub poll: Duration,
    /// One attempt's limit (connect, send, answer).
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles, up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Give up this long after the event.
    pub retry_for: Duration,
    /// Deliveries sent at once.
    pub concurrency: i64,
}

/// The header names of a delivery.
pub const SIGNATURE_HEADER: &str = "Dcim-Signature";
pub const EVENT_HEADER: &str = "Dcim-Event";
pub const EVENT_ID_HEADER: &str = "Dcim-Event-Id";
pub const DELIVERY_HEADER: &str = "Dcim-Delivery";

/// `t=<t>,v1=<hex of HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body of a delivery.
pub fn body(d: &DueDelivery) -> String {
    let data: Value = serde_json::from_str(&d.data).unwrap_or_else(|_| json!({}));
    let t = std::time::UNIX_EPOCH + Duration::from_secs(d.at.max(0) as u64);
    json!({
        "id": d.event_id,
        "kind": d.kind,
        "time": humantime::format_rfc3339_seconds(t).to_string(),
        "server": d.server_id,
        "data": data,
    })
    .to_string()
}

/// Resolves names for the delivery client, leaving out addresses no webhook may reach
/// (so a name that resolves to a metadata address when it is used, not only when it was
/// checked, still cannot reach it).
struct SafeResolver;

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| !forbidden_ip(a.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address a webhook may reach").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    store: Store,
    guard: UrlGuard,
    cfg: WorkerConfig,
    worker: Arc<dcim_tasks::workers::Worker>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .user_agent(concat!("dcim/", env!("CARGO_PKG_VERSION")));
    if !guard.allow_unsafe {
        builder = builder.dns_resolver(Arc::new(SafeResolver));
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the webhook client could not be built; no webhooks are delivered");
            return;
        }
    };
    let owner = format!("webhooks-{}", uuid::Uuid::new_v4());
    // The lease outlives an attempt, so no other process takes a delivery being sent.
    let lease_ms = (cfg.timeout + Duration::from_secs(10)).as_millis() as i64;
    let guard = Arc::new(guard);
    loop {
        if *stop.borrow() {
            return;
        }
        worker.started();
        let due = match store.claim_deliveries(&owner, lease_ms, cfg.concurrency).await {
            Ok(d) => d,
            Err(e) => {
                worker.finished(&Err(format!("claiming webhook deliveries failed: {e}")));
                tokio::select! {
                    _ = tokio::time::sleep(cfg.poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if due.is_empty() {
            worker.finished(&Ok("nothing due".to_owned()));
            tokio::select! {
                _ = tokio::time::sleep(cfg.poll) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut sends = tokio::task::JoinSet::new();
        let claimed = due.len();
        for d in due {
            let (client, guard, store, owner, cfg) =
                (client.clone(), guard.clone(), store.clone(), owner.clone(), cfg.clone());
            sends.spawn(async move {
                let attempt = attempt(&client, &guard, &cfg, &d).await;
                match store.record_attempt(d.id, &owner, &attempt).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(delivery = d.id, "a webhook delivery's lease ran out while it was sent")
                    }
                    Err(e) => tracing::warn!(error = ?e, delivery = d.id, "recording a webhook attempt failed"),
                }
                attempt.next == dcim_store::webhooks::Next::Delivered
            });
        }
        let sent = sends.join_all().await;
        let ok = sent.iter().filter(|ok| **ok).count();
        worker.finished(&Ok(format!("{claimed} deliveries attempted, {ok} accepted by their receivers")));
    }
}

/// Sends one delivery once.
async fn attempt(client: &reqwest::Client, guard: &UrlGuard, cfg: &WorkerConfig, d: &DueDelivery) -> Attempt {
    let started = Instant::now();
    let body = body(d);
    let t = dcim_store::now();
    let result = match guard.check(&d.url).await {
        Err(why) => Err(format!("refused: {why}")),
        Ok(()) => client
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&d.secret, t, &body))
            .header(EVENT_HEADER, d.kind.as_str())
            .header(EVENT_ID_HEADER, d.event_id.to_string())
            .header(DELIVERY_HEADER, d.id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e)),
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    let (status, error) = match result {
        Ok(r) if r.status().is_success() => {
            return Attempt {
                status: Some(i64::from(r.status().as_u16())),
                latency_ms,
                error: String::new(),
                next: Next::Delivered,
            };
        }
        Ok(r) => (Some(i64::from(r.status().as_u16())), format!("the receiver answered {}", r.status())),
        Err(e) => (None, e),
    };
    let now = now_ms();
    let delay = cfg.backoff.saturating_mul(1 << d.attempts.clamp(0, 20) as u32).min(cfg.backoff_max);
    let next_at = now + delay.as_millis() as i64;
    let give_up = next_at > d.created + cfg.retry_for.as_millis() as i64;
    Attempt { status, latency_ms, error, next: if give_up { Next::GiveUp } else { Next::Retry(next_at) } }
}

/// A failed send in a few words (never the URL's query, which may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (not followed)"
    } else {
        "failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_follow_the_documented_scheme() {
        // HMAC-SHA256("secret", "1700000000.{}") computed with Python's hmac module.
        assert_eq!(
            super::signature("secret", 1_700_000_000, "{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
