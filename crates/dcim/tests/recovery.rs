//! Crashes: a `dcim` process killed in the middle of a task. On PostgreSQL a second
//! process finishes the task once the dead one's lease ends, and every task runs
//! exactly once; on SQLite the restarted process does.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Remote, Served};
use serde_json::{Value, json};

fn ended(t: &Value) -> bool {
    matches!(t["status"].as_str(), Some("complete" | "fail" | "canceled"))
}

/// The secret key every process of these tests is given.
const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn dcim(data_dir: &str, database_url: Option<&str>, fake_delay_ms: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcim"));
    c.args(["serve", "--no-tls", "--listen", "127.0.0.1:0", "--data-dir", data_dir]);
    if let Some(u) = database_url {
        c.args(["--database-url", u]);
    }
    // Processes of one database share the secret key (here from the environment).
    c.env("DCIM_SECRET_KEY", SECRET_KEY)
        .env("DCIM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("DCIM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("DCIM_TASK_LEASE_SECS", "2")
        .env("DCIM_TASK_POLL_MS", "50")
        .env("DCIM_FAKE_DELAY_MS", fake_delay_ms.to_string())
        .env("DCIM_LOG", "warn");
    c
}

/// A location with a fake switch and PDU and `n` servers with fake BMCs.
async fn site(r: &Remote, n: usize) -> Vec<i64> {
    let loc = r.post("/dci/v3/location", json!({"name": "DC"})).await["id"].clone();
    let mut ids = vec![];
    for i in 0..n {
        let v = r
            .post(
                "/dci/v3/server",
                json!({"name": format!("s{i}"), "location_id": loc, "mac": format!("52:54:00:aa:00:{i:02x}"),
                       "ipmi": {"address": format!("bmc-{i}"), "type": "fake"}}),
            )
            .await;
        ids.push(v["id"].as_i64().unwrap());
    }
    ids
}

/// Kills the process running a task; the other process finishes it after the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_process_takes_over() {
    let (schema, url) = common::fresh_postgres_schema().await;
    let dir_a = common::tempdir::Dir::new();
    let dir_b = common::tempdir::Dir::new();
    let a = Served::start(dcim(dir_a.0.to_str().unwrap(), Some(&url), 1500));
    let ra = Remote::login(&a.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let servers = site(&ra, 1).await;
    let task = ra.post(&format!("/dci/v3/server/{}/power_on", servers[0]), json!({})).await["task"].as_i64().unwrap();
    ra.until(task, |t| t["status"] == "running").await;
    // Only now does the second process start, so the first one holds the task.
    let b = Served::start(dcim(dir_b.0.to_str().unwrap(), Some(&url), 0));
    let rb = Remote::login(&b.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    a.crash();
    let killed = Instant::now();
    let t = rb.until(task, ended).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(killed.elapsed() >= Duration::from_millis(500), "taken over only after the lease ran out");
    assert_eq!(rb.get("/dci/v3/fake").await["machines"]["bmc-0"]["power"], "on", "the survivor powered it on");
    b.stop();
    common::drop_postgres_schema(&schema).await;
}

/// Two processes share the queue: every task runs once, in one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_each_task_runs_exactly_once() {
    let (schema, url) = common::fresh_postgres_schema().await;
    let (dir_a, dir_b) = (common::tempdir::Dir::new(), common::tempdir::Dir::new());
    let a = Served::start(dcim(dir_a.0.to_str().unwrap(), Some(&url), 20));
    let b = Served::start(dcim(dir_b.0.to_str().unwrap(), Some(&url), 20));
    let (ra, rb) = (
        Remote::login(&a.url, ADMIN_EMAIL, ADMIN_PASSWORD).await,
        Remote::login(&b.url, ADMIN_EMAIL, ADMIN_PASSWORD).await,
    );
    let servers = site(&ra, 30).await;
    let mut tasks = vec![];
    for (i, s) in servers.iter().enumerate() {
        let r = if i % 2 == 0 { &ra } else { &rb };
        tasks.push(r.post(&format!("/dci/v3/server/{s}/power_reset"), json!({})).await["task"].as_i64().unwrap());
    }
    for t in &tasks {
        assert_eq!(ra.until(*t, ended).await["status"], "complete");
    }
    let count = |v: Value| -> u64 {
        v["machines"].as_object().map(|m| m.values().map(|x| x["commands"].as_u64().unwrap()).sum()).unwrap_or(0)
    };
    let (ca, cb) = (count(ra.get("/dci/v3/fake").await), count(rb.get("/dci/v3/fake").await));
    assert_eq!(ca + cb, 30, "each reset ran once: {ca} in one process, {cb} in the other");
    a.stop();
    b.stop();
    common::drop_postgres_schema(&schema).await;
}

/// SQLite: the same process, restarted after a crash, resumes the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_resumes() {
    let dir = common::tempdir::Dir::new();
    let d = dir.0.to_str().unwrap();
    let a = Served::start(dcim(d, None, 1500));
    let ra = Remote::login(&a.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let servers = site(&ra, 1).await;
    let task = ra
        .post(&format!("/dci/v3/server/{}/operation_clear_hdd", servers[0]), json!({"clear_hdd": "simple"}))
        .await["task"]
        .as_i64()
        .unwrap();
    // Crash while the agent wipes: the boot it was prepared with dies with the process.
    ra.until(task, |t| t["progress_info"][2]["status"] == "running").await;
    a.crash();
    let b = Served::start(dcim(d, None, 0));

    let rb = Remote::login(&b.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let t = rb.until(task, ended).await;
    assert_eq!(t["status"], "complete", "{t}");
    b.stop();
}
