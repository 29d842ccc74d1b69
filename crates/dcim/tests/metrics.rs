//! Metrics and readiness through HTTP on both backends: `/metrics` parsed with a
//! Prometheus text parser, its counters moving as tasks run on the fake lab (and fail
//! with a BMC fault, counted by kind), who may read it; `/ready` with its checks, failing
//! while a migration is missing and, on PostgreSQL, while the database is unreachable.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Db, TestServer, add_networks, assert_error, fake_server, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

/// The Prometheus project's own parser (its Python client, in the simulators'
/// virtualenv), reading dcim's OpenMetrics text: every sample as one JSON line.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value}))
"#;

/// Every sample of a scrape as `name{label="value",...}` (labels sorted) -> value.
async fn scrape(s: &TestServer, bearer: &str) -> HashMap<String, f64> {
    let r = s.client.get(s.url("/metrics")).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    let mut child = std::process::Command::new(common::sims::venv().join("bin/python"))
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the simulators' virtualenv (scripts/sims-setup.sh) has prometheus_client");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused the scrape: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!samples.is_empty());
    samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            labels.sort();
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            (format!("{}{{{}}}", s["name"].as_str().unwrap(), l.join(",")), s["value"].as_f64().unwrap())
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

async fn counters_follow_what_happens(db: Db) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.metrics_token = Some("scrape-secret-1".into());
    })
    .await;
    let (srv, _, _) = fake_server(&s).await;
    add_networks(&s).await;
    s.add_user("c@example.com", "c-password", "@user").await;
    let customer = s.login("c@example.com", "c-password").await;

    // Who may read: the metrics token, an admin; not a customer, not nobody.
    let r = s.client.get(s.url("/metrics")).send().await.unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    let r = s.client.get(s.url("/metrics")).bearer_auth(&customer).send().await.unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    let r = s.client.get(s.url("/metrics")).bearer_auth("wrong-token").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let admin = scrape(&s, &s.admin_token).await;
    assert!(admin.keys().any(|k| k.starts_with("dcim_build_info{")), "{admin:?}");

    let before = scrape(&s, "scrape-secret-1").await;
    let started = r#"dcim_tasks_started_total{operation="power_on"}"#;
    let complete = r#"dcim_tasks_finished_total{operation="power_on",outcome="complete"}"#;
    let failed = r#"dcim_tasks_finished_total{operation="power_on",outcome="fail"}"#;
    let on_ok = r#"dcim_driver_calls_total{operation="on",outcome="ok",protocol="fake"}"#;
    let on_refused = r#"dcim_driver_calls_total{operation="on",outcome="refused",protocol="fake"}"#;
    let task = s.post(&format!("/dci/v3/server/{srv}/power_on"), json!({})).await["task"].as_i64().unwrap();
    assert_eq!(wait_task(&s, task).await["status"], "complete");
    let after = scrape(&s, "scrape-secret-1").await;
    assert_eq!(get(&after, started) - get(&before, started), 1.0);
    assert_eq!(get(&after, complete) - get(&before, complete), 1.0);
    assert!(get(&after, on_ok) > get(&before, on_ok), "the BMC's power-on call is counted");
    assert!(get(&after, r#"dcim_task_duration_seconds_count{operation="power_on"}"#) >= 1.0);

    // A refusing BMC: the failure is counted with its kind.
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-op-1", "op": "power_on", "times": 1, "message": "no"})).await;
    let task = s.post(&format!("/dci/v3/server/{srv}/power_on"), json!({})).await["task"].as_i64().unwrap();
    assert_eq!(wait_task(&s, task).await["status"], "fail");
    let third = scrape(&s, "scrape-secret-1").await;
    assert_eq!(get(&third, on_refused) - get(&after, on_refused), 1.0);
    assert_eq!(get(&third, failed) - get(&after, failed), 1.0);

    // HTTP by route template, never by raw path.
    for _ in 0..3 {
        s.get(&format!("/dci/v3/server/{srv}")).await;
    }
    let http = scrape(&s, "scrape-secret-1").await;
    let one = r#"dcim_http_requests_total{method="GET",route="/dci/v3/server/{id}",status="2xx"}"#;
    assert!(get(&http, one) >= 3.0, "{http:?}");
    let raw = format!("/dci/v3/server/{srv}\"");
    assert!(!http.keys().any(|k| k.contains(&raw)), "no raw path is a label");
    assert!(get(&http, r#"dcim_http_requests_total{method="GET",route="/metrics",status="4xx"}"#) >= 3.0);

    // What the database holds, at scrape time.
    assert_eq!(get(&http, r#"dcim_servers{state="ok"}"#), 1.0);
    assert_eq!(get(&http, r#"dcim_ip_pool_total{pool="public"}"#), 11.0);
    assert_eq!(get(&http, r#"dcim_ip_pool_used{pool="public"}"#), 0.0);
    assert!(get(&http, "dcim_process_start_time_seconds{}") > 1.7e9);
    assert!(http.contains_key(r#"dcim_tasks_now{state="running"}"#));
    s.stop().await;
}

async fn ready_says_what_fails(db: Db) {
    let s = TestServer::start(db).await;
    let r = s.client.get(s.url("/ready")).send().await.unwrap();
    let (st, v) = common::json_of(r).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["checks"]["dispatcher"]["ok"], true);
    // A migration this build has that the database lacks: not ready, and it says which.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.cfg.database_url()).await.unwrap();
    let mark = "UPDATE _sqlx_migrations SET success = $1 WHERE version = 10";
    sqlx::query(mark).bind(false).execute(&mut conn).await.unwrap();
    let r = s.client.get(s.url("/api/ready")).send().await.unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"]["value"]["checks"]["migrations"]["pending"], json!([10]), "{v}");
    assert_eq!(v["error"]["value"]["checks"]["database"]["ok"], true);
    sqlx::query(mark).bind(true).execute(&mut conn).await.unwrap();
    let r = s.client.get(s.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(conn);
    // Liveness stays what it was.
    let (st, _) = s.call(Method::GET, "/health", None).await;
    assert_eq!(st, StatusCode::OK);
    s.stop().await;
}

/// A TCP relay to PostgreSQL that the test can take down and bring back on one port.
struct Relay {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                conns.spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Relay { port, task: Some(task) }
    }

    /// Closes the port and every connection through it.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_fails_while_postgres_is_unreachable() {
    let mut relay = Relay::start(0).await;
    let (schema, url) = common::fresh_postgres_schema().await;
    let through = url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port));
    assert_ne!(through, url, "the test URL names 127.0.0.1:5432");
    let s = TestServer::start_with(Db::Postgres, |c| c.database_url = Some(through.clone())).await;
    assert_eq!(s.client.get(s.url("/ready")).send().await.unwrap().status(), StatusCode::OK);
    relay.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.client.get(s.url("/ready")).send().await.unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"]["value"]["checks"]["database"]["ok"], false, "{v}");
    let port = relay.port;
    let _relay = Relay::start(port).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if s.client.get(s.url("/ready")).send().await.unwrap().status() == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ready again once the database is back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// `metrics_listen`: Prometheus' own plain-HTTP listener serves `/metrics` (open
/// without a `metrics_token`, the token's with one), `/ready` and `/health`, and no
/// other route of the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener() {
    for token in [None, Some("scrape-token-1")] {
        let s = TestServer::start_with(Db::Sqlite, |c| {
            c.metrics_listen = Some("127.0.0.1:0".into());
            c.metrics_token = token.map(str::to_owned);
        })
        .await;
        let addr = s.running.as_ref().unwrap().metrics_addr.expect("the metrics listener is bound");
        let get = |path: &str, bearer: Option<&str>| {
            let mut rb = s.client.get(format!("http://{addr}{path}"));
            if let Some(b) = bearer {
                rb = rb.bearer_auth(b);
            }
            rb.send()
        };
        let r = get("/metrics", token).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{token:?}");
        assert!(r.text().await.unwrap().contains("dcim_build_info"));
        if token.is_some() {
            let r = get("/metrics", None).await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            let r = get("/metrics", Some("wrong")).await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(get("/ready", None).await.unwrap().status(), StatusCode::OK);
        assert_eq!(get("/health", None).await.unwrap().status(), StatusCode::OK);
        for path in ["/dci/v3/server", "/api/dci/v3/server", "/ui/", "/swagger/openapi.json"] {
            let r = get(path, Some(&s.admin_token)).await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} is not served there");
        }
        // The API's own /metrics keeps its rule: an admin, or the token.
        let (st, _) = s.call_as("", reqwest::Method::GET, "/metrics", None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        s.stop().await;
    }
}

/// `GET /dci/v3/worker` lists the process's background workers with their rounds: the
/// pollers' say how many devices answered; a customer may not read it.
async fn background_workers_are_listed(db: Db) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.power_poll_secs = 1;
        c.port_poll_secs = 1;
    })
    .await;
    fake_server(&s).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let workers = loop {
        let v = s.get("/dci/v3/worker").await;
        let power = v["list"].as_array().unwrap().iter().find(|w| w["name"] == "power_poller").cloned();
        // A round after the server was added has seen its BMC.
        if power.as_ref().is_some_and(|p| p["last_result"] == "1 of 1 BMCs answered") {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "the power poller never polled the BMC: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: Vec<&str> = workers["list"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    for want in ["power_poller", "port_poller", "webhook_delivery", "session_purge", "audit_retention"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert_eq!(workers["size"], names.len());
    let power = workers["list"].as_array().unwrap().iter().find(|w| w["name"] == "power_poller").unwrap();
    assert_eq!((power["interval_ms"].as_i64(), power["failures"].as_i64()), (Some(1000), Some(0)), "{power}");
    assert!(power["runs"].as_i64().unwrap() >= 1 && power["last_finished"].is_string(), "{power}");
    assert!(power["last_duration_ms"].is_i64() && power["last_error"].is_null(), "{power}");
    // How far behind its schedule each worker is, here and in /metrics (the schedule
    // itself is the workers' unit test: on a loaded CI machine a round may overrun).
    assert!(power["behind_ms"].as_i64().is_some_and(|b| b >= 0), "{power}");
    let m = scrape(&s, &s.admin_token).await;
    for w in ["power_poller", "port_poller", "session_purge"] {
        let behind = m.get(&format!(r#"dcim_worker_behind_seconds{{worker="{w}"}}"#));
        assert!(behind.is_some_and(|b| *b >= 0.0), "{w}: {m:?}");
    }
    let ports = workers["list"].as_array().unwrap().iter().find(|w| w["name"] == "port_poller").unwrap();
    assert!(ports["last_result"].as_str().unwrap().ends_with("switches and PDUs answered"), "{ports}");
    s.add_user("w@example.com", "worker-password-1", "@user").await;
    let t = s.login("w@example.com", "worker-password-1").await;
    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/worker", None).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    s.stop().await;
}

on_both_backends!(counters_follow_what_happens, ready_says_what_fails, background_workers_are_listed);
