//! Webhooks (issue 17, item 5): a receiver on 127.0.0.1 gets signed events for a whole
//! billing flow, in order per server; a receiver that is down gets everything once it
//! is back; a dcim killed with SIGKILL in the middle of deliveries loses none after
//! restart; two dcim processes on one PostgreSQL deliver each event once.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use common::{Db, Served, TestServer, add_networks, fake_server, wait_task};
use dcim::config::Config;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec-test-secret-0001";

/// One request the receiver got: its headers and raw body.
#[derive(Clone)]
struct Got {
    headers: HeaderMap,
    body: String,
}

#[derive(Clone, Default)]
struct Inbox {
    got: Arc<Mutex<Vec<Got>>>,
    /// Milliseconds each answer waits.
    delay_ms: Arc<AtomicU64>,
}

/// A webhook receiver on 127.0.0.1 that records what it gets and answers 200.
struct Receiver {
    addr: SocketAddr,
    inbox: Inbox,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(inbox): State<Inbox>, headers: HeaderMap, body: String) -> AxumStatus {
    let delay = inbox.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    inbox.got.lock().unwrap().push(Got { headers, body });
    AxumStatus::OK
}

impl Receiver {
    async fn start(port: u16, inbox: Inbox) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(inbox.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, inbox, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Closes the port (the receiver is down).
    fn stop(self) -> (u16, Inbox) {
        self.task.abort();
        (self.addr.port(), self.inbox)
    }

    /// The events received, checked: each signed with the secret over its raw body,
    /// its headers agreeing with its body.
    fn events(&self) -> Vec<Value> {
        checked_events(&self.inbox)
    }
}

fn checked_events(inbox: &Inbox) -> Vec<Value> {
    let got = inbox.got.lock().unwrap().clone();
    got.iter()
        .map(|g| {
            let sig = g.headers["dcim-signature"].to_str().unwrap();
            let (t, v1) = sig.split_once(',').unwrap();
            let t = t.strip_prefix("t=").unwrap();
            let v1 = hex::decode(v1.strip_prefix("v1=").unwrap()).unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(format!("{t}.{}", g.body).as_bytes());
            mac.verify_slice(&v1).expect("the signature verifies");
            let age = dcim_store::now() - t.parse::<i64>().unwrap();
            assert!((0..300).contains(&age), "signed just now ({age} s)");
            let v: Value = serde_json::from_str(&g.body).unwrap();
            assert_eq!(g.headers["dcim-event"].to_str().unwrap(), v["kind"].as_str().unwrap());
            assert_eq!(g.headers["dcim-event-id"].to_str().unwrap(), v["id"].to_string());
            assert_eq!(g.headers["content-type"], "application/json");
            v
        })
        .collect()
}

fn quick_webhooks(c: &mut Config) {
    common::fast_tasks(c);
    c.webhook_poll_ms = 50;
    c.webhook_backoff_ms = 100;
    c.webhook_backoff_max_secs = 1;
    c.webhook_timeout_ms = 2000;
}

async fn register(s: &TestServer, url: &str, kinds: &[&str]) -> i64 {
    let v = s.post("/dci/v3/webhook", json!({"url": url, "secret": SECRET, "events": kinds})).await;
    assert!(v.get("secret").is_none(), "a given secret is not echoed: {v}");
    v["id"].as_i64().unwrap()
}

/// Waits until `done(events)` or 30 s.
async fn until(inbox: &Inbox, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ev = checked_events(inbox);
        if done(&ev) {
            return ev;
        }
        assert!(Instant::now() < deadline, "webhook events did not arrive: {ev:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events of a server in arrival order have rising ids (in order per server).
fn assert_in_order(events: &[Value]) {
    let mut last: HashMap<String, i64> = HashMap::new();
    for e in events {
        let server = e["server"].to_string();
        let id = e["id"].as_i64().unwrap();
        if let Some(prev) = last.insert(server.clone(), id) {
            assert!(id > prev, "event {id} of server {server} after {prev}: {events:?}");
        }
    }
}

async fn a_billing_flow_arrives_signed_and_in_order(db: Db) {
    let s = TestServer::start_with(db, quick_webhooks).await;
    let r = Receiver::start(0, Inbox::default()).await;
    let all = [
        "task.finished",
        "server.state",
        "server.power",
        "server.owner",
        "ip.assigned",
        "ip.released",
        "user.created",
        "user.blocked",
    ];
    let hook = register(&s, &r.url(), &all).await;
    // Link-local (metadata) addresses and dcim itself are refused.
    let own = s.url("/hook");
    for url in ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", own.as_str(), "ftp://127.0.0.1/x"] {
        let (st, v) =
            s.call(Method::POST, "/dci/v3/webhook", Some(json!({"url": url, "events": ["user.created"]}))).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {v}");
        assert_eq!(v["error"]["value"]["field"], "url");
    }
    let (st, v) = s.call(Method::POST, "/dci/v3/webhook", Some(json!({"url": r.url(), "events": ["nope"]}))).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(s.get("/dci/v3/webhook").await["size"], 1, "nothing half-made");
    let (srv, _, _) = fake_server(&s).await;
    let (_, pool, _) = add_networks(&s).await;
    let customer = s.add_user("billing@example.com", "customer-pw-1", "@user").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": customer})).await;
    let mut tasks = vec![];
    for (op, body) in [
        ("ip", json!({"ip_pool": pool})),
        ("operation_os", json!({"os_template_id": 1, "password": "Root-pw-123", "hdd_raid": "raid_1"})),
        ("suspend", json!({})),
        ("resume", json!({})),
    ] {
        let v = s.post(&format!("/dci/v3/server/{srv}/{op}"), body).await;
        let t = wait_task(&s, v["task"].as_i64().unwrap()).await;
        assert_eq!(t["status"], "complete", "{op}: {t}");
        tasks.push(t["id"].as_i64().unwrap());
    }
    s.post(&format!("/dci/v3/user/{customer}/block"), json!({})).await;

    let events = until(&r.inbox, |ev| {
        ev.iter().any(|e| e["kind"] == "user.blocked")
            && tasks.iter().all(|t| ev.iter().any(|e| e["kind"] == "task.finished" && e["data"]["task"] == *t))
    })
    .await;
    assert_in_order(&events);
    let ids: HashSet<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "each event once here: {events:?}");
    let kinds_of_server: Vec<&str> =
        events.iter().filter(|e| e["server"] == srv).map(|e| e["kind"].as_str().unwrap()).collect();
    let pos =
        |k: &str| kinds_of_server.iter().position(|x| *x == k).unwrap_or_else(|| panic!("{k} in {kinds_of_server:?}"));
    assert!(pos("server.owner") < pos("ip.assigned"), "{kinds_of_server:?}");
    let created = events.iter().find(|e| e["kind"] == "user.created" && e["data"]["user"] == customer).unwrap();
    assert_eq!(created["data"]["email"], "billing@example.com");
    assert!(created["server"].is_null());
    let owner = events.iter().find(|e| e["kind"] == "server.owner").unwrap();
    assert_eq!(owner["data"], json!({"server": srv, "owner": customer, "previous": null}));
    let ip = events.iter().find(|e| e["kind"] == "ip.assigned").unwrap();
    assert_eq!(ip["data"]["address"], "192.0.2.10");
    let finished: Vec<&Value> = events.iter().filter(|e| e["kind"] == "task.finished").collect();
    let ops: Vec<&str> = finished.iter().map(|e| e["data"]["operation"].as_str().unwrap()).collect();
    let at = |op: &str| ops.iter().position(|o| *o == op).unwrap_or_else(|| panic!("{op} in {ops:?}"));
    assert!(at("suspend") < at("resume"), "{ops:?}");
    assert!(finished.iter().all(|e| e["data"]["outcome"] == "complete"));
    assert!(events.iter().any(|e| e["kind"] == "server.state" && e["data"]["state"] == "suspended"), "{events:?}");

    // The deliveries, as dcim recorded them.
    let d = s.get(&format!("/dci/v3/webhook/{hook}/delivery?limit=1000")).await;
    let list = d["list"].as_array().unwrap();
    assert!(list.len() >= events.len());
    for x in list.iter().filter(|x| x["status"] == "delivered") {
        assert_eq!(x["last_status"], 200, "{x}");
        assert_eq!(x["attempt_log"][0]["status"], 200, "{x}");
    }
    // The secret is never shown; a customer may not look.
    let w = s.get(&format!("/dci/v3/webhook/{hook}")).await;
    assert!(!w.to_string().contains(SECRET) && w["events"].as_array().unwrap().len() == all.len(), "{w}");
    s.add_user("other@example.com", "customer-pw-2", "@user").await;
    let t = s.login("other@example.com", "customer-pw-2").await;
    let (st, _) = s.call_as(&t, Method::GET, "/dci/v3/webhook", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    s.stop().await;
}

/// Events wait while the receiver is down (each attempt recorded) and arrive, in
/// order, when it is back.
async fn a_receiver_that_was_down_gets_everything(db: Db) {
    let s = TestServer::start_with(db, quick_webhooks).await;
    let r = Receiver::start(0, Inbox::default()).await;
    let hook = register(&s, &r.url(), &["user.created"]).await;
    let (port, inbox) = r.stop();
    for i in 0..5 {
        s.add_user(&format!("down-{i}@example.com"), "customer-pw-1", "@user").await;
    }
    // Attempts fail and are recorded while it is down.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = s.get(&format!("/dci/v3/webhook/{hook}/delivery?orderby=id")).await;
        let first = &d["list"][0];
        if first["attempts"].as_i64().unwrap_or(0) >= 2 {
            assert_eq!(first["status"], "pending", "{first}");
            assert!(
                first["last_status"].is_null() && first["last_error"].as_str().unwrap().contains("connect"),
                "{first}"
            );
            assert_eq!(d["list"][1]["attempts"], 0, "the next waits for the first: {d}");
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = Receiver::start(port, inbox).await;
    let events = until(&r.inbox, |ev| ev.len() >= 5).await;
    let emails: Vec<&str> = events.iter().map(|e| e["data"]["email"].as_str().unwrap()).collect();
    assert_eq!(emails, (0..5).map(|i| format!("down-{i}@example.com")).collect::<Vec<_>>(), "in order");
    let d = s.get(&format!("/dci/v3/webhook/{hook}/delivery")).await;
    assert!(d["list"].as_array().unwrap().iter().all(|x| x["status"] == "delivered"), "{d}");
    s.stop().await;
}

/// Two processes on one PostgreSQL: each event is delivered once.
async fn two_processes_deliver_each_event_once(_: Db) {
    let s = TestServer::start_with(Db::Postgres, quick_webhooks).await;
    let (second, _dir) = s.another_process(|_| {}).await;
    let r = Receiver::start(0, Inbox::default()).await;
    register(&s, &r.url(), &["user.created"]).await;
    for i in 0..40 {
        s.add_user(&format!("twice-{i}@example.com"), "customer-pw-1", "@user").await;
    }
    let events = until(&r.inbox, |ev| ev.len() >= 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_after = r.events();
    assert_eq!(events_after.len(), 40, "no event twice: {events:?}");
    let ids: HashSet<i64> = events_after.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 40);
    assert_in_order(&events_after);
    second.stop(Duration::from_secs(5)).await.unwrap();
    s.stop().await;
}

/// A dcim killed with SIGKILL while it delivers loses nothing: after a restart on the
/// same database every event arrives (some perhaps twice: at least once).
async fn a_killed_process_loses_no_event(db: Db) {
    // The test's own server looks for deliveries only at its start: the spawned
    // processes deliver.
    let s = TestServer::start_with(db, |c| c.webhook_poll_ms = 3_600_000).await;
    let r = Receiver::start(0, Inbox::default()).await;
    r.inbox.delay_ms.store(150, Ordering::Relaxed);
    register(&s, &r.url(), &["user.created"]).await;
    let url = s.cfg.database_url();
    let dir = common::tempdir::Dir::new();
    let spawn = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dcim"));
        c.args(["serve", "--fake-drivers", "--no-tls", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir.0)
            .env("RUST_LOG", "warn")
            .env("DCIM_DATABASE_URL", &url)
            .env("DCIM_SECRET_KEY_FILE", s.cfg.secret_key_path())
            .env("DCIM_WEBHOOK_POLL_MS", "50")
            .env("DCIM_WEBHOOK_TIMEOUT_MS", "1000")
            .env("DCIM_WEBHOOK_CONCURRENCY", "2")
            .env("DCIM_POWER_POLL_SECS", "0")
            .env("DCIM_PORT_POLL_SECS", "0")
            .env_remove("DCIM_ADMIN_EMAIL")
            .env_remove("DCIM_ADMIN_PASSWORD");
        Served::start(c)
    };
    let first = spawn();
    for i in 0..20 {
        s.add_user(&format!("kill-{i}@example.com"), "customer-pw-1", "@user").await;
    }
    until(&r.inbox, |ev| ev.len() >= 4).await;
    first.crash();
    let before = r.events().len();
    assert!(before < 20, "killed in the middle ({before} delivered)");
    let second = spawn();
    let events = until(&r.inbox, |ev| {
        let ids: HashSet<i64> = ev.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        ids.len() >= 20
    })
    .await;
    let ids: HashSet<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 20, "every event arrived");
    assert!(events.len() <= 20 + 2, "at most the ones in flight came twice: {}", events.len());
    second.stop();
    s.stop().await;
}

on_both_backends!(
    a_billing_flow_arrives_signed_and_in_order,
    a_receiver_that_was_down_gets_everything,
    a_killed_process_loses_no_event
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_deliver_each_event_once() {
    two_processes_deliver_each_event_once(Db::Postgres).await
}
