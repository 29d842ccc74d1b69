//! The tasks mode's `--webhook` run: a receiver on 127.0.0.1 in this process, an
//! endpoint for `task.finished` and `server.power` registered with dcim, the same
//! `power_reset` of every server again (the outbox's cost on the tasks, beside the run
//! without it), and the time until every `task.finished` has arrived (deliveries/s).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

pub async fn run(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    n: usize,
    connections: usize,
    delay_ms: u64,
) -> anyhow::Result<()> {
    let finished = Arc::new(AtomicU64::new(0));
    let all = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let (finished, all) = (finished.clone(), all.clone());
            move |headers: axum::http::HeaderMap| async move {
                all.fetch_add(1, Ordering::Relaxed);
                if headers.get("dcim-event").is_some_and(|k| k == "task.finished") {
                    finished.fetch_add(1, Ordering::Relaxed);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    let r: serde_json::Value = client
        .post(format!("{base}/api/dci/v3/webhook"))
        .bearer_auth(token)
        .json(&serde_json::json!({"url": format!("http://{addr}/hook"), "events": ["task.finished", "server.power"]}))
        .send()
        .await?
        .json()
        .await?;
    r["id"].as_i64().with_context(|| format!("registering the webhook: {r}"))?;
    println!("with a webhook for task.finished and server.power (outbox written with every task's end):");
    let t0 = Instant::now();
    super::tasks(client, &[base.to_owned()], token, n, connections, delay_ms).await?;
    let tasks_done = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(900);
    while finished.load(Ordering::Relaxed) < n as u64 {
        anyhow::ensure!(Instant::now() < deadline, "deliveries still missing after 900 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = t0.elapsed();
    let got = all.load(Ordering::Relaxed);
    println!(
        "webhook deliveries: all {n} task.finished (and {} others) received {:.2} s after the first task was sent, \
         {:.2} s after the last task ended; {:.0} deliveries/s over the whole run",
        got - n as u64,
        total.as_secs_f64(),
        (total - tasks_done).as_secs_f64(),
        got as f64 / total.as_secs_f64()
    );
    receiver.abort();
    Ok(())
}
