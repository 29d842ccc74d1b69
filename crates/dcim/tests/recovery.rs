//! Crashes: a `dcim` process killed in the middle of a task. On PostgreSQL a second
//! process finishes the task once the dead one's lease ends, and every task runs
//! exactly once; on SQLite the restarted process does. With 500 tasks in flight, on
//! SQLite and on PostgreSQL with three processes: every task ends, none halfway.

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
    c.args(["serve", "--fake-drivers", "--no-tls", "--listen", "127.0.0.1:0", "--data-dir", data_dir]);
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
        // A reset the killed process had sent went to its own fake BMCs, which died with
        // it: the next process's never powers on, and the task fails with that reason
        // after the power timeout (120 s by default, the length of the wait below).
        .env("DCIM_POWER_TIMEOUT_SECS", "20")
        .env("DCIM_LOG", "warn")
        // One admin token drives hundreds of calls here: no per-token rate limit.
        .env("DCIM_RATE_LIMIT_PER_SEC", "0");
    c
}

/// Sends `op` to every server, one call after another; the task ids.
async fn start_all(r: &Remote, servers: &[i64], op: &str) -> Vec<i64> {
    let mut tasks = vec![];
    for s in servers {
        tasks.push(r.post(&format!("/dci/v3/server/{s}/{op}"), json!({})).await["task"].as_i64().unwrap());
    }
    tasks
}

/// How many tasks are in each status.
async fn statuses(r: &Remote) -> std::collections::BTreeMap<String, i64> {
    let mut m = std::collections::BTreeMap::new();
    for st in ["pending", "running", "complete", "fail", "canceled"] {
        let v = r.get(&format!("/dci/v3/task?where=status%20EQ%20%27{st}%27&limit=0")).await;
        m.insert(st.to_owned(), v["size"].as_i64().unwrap());
    }
    m
}

/// Waits until some task runs; the statuses then.
async fn until_some_run(r: &Remote) -> std::collections::BTreeMap<String, i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = statuses(r).await;
        if m["running"] > 0 {
            return m;
        }
        assert!(Instant::now() < deadline, "nothing ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no task is pending or running; the statuses then.
async fn all_ended(r: &Remote, limit: Duration) -> std::collections::BTreeMap<String, i64> {
    let deadline = Instant::now() + limit;
    loop {
        let m = statuses(r).await;
        if m["pending"] + m["running"] == 0 {
            return m;
        }
        if Instant::now() >= deadline {
            let open = r
                .get("/dci/v3/task?where=status%20EQ%20%27running%27%20OR%20status%20EQ%20%27pending%27&limit=0,3")
                .await;
            panic!("tasks still open: {m:?}; some of them: {open}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every task ended complete, or failed or canceled with a reason; no server is left
/// suspending or resuming.
async fn nothing_left_halfway(r: &Remote, tasks: &[i64]) {
    for t in tasks {
        let v = r.get(&format!("/dci/v3/task/{t}")).await;
        match v["status"].as_str() {
            Some("complete") => {}
            Some("fail" | "canceled") => {
                let why = v["status_info"]["message"].as_str().unwrap_or("");
                assert!(!why.is_empty(), "a reason: {v}");
                eprintln!("task {t} {}: {why}", v["status"]);
            }
            _ => panic!("task {t} did not end: {v}"),
        }
    }
    let q = "state%20EQ%20%27suspending%27%20OR%20state%20EQ%20%27resuming%27";
    assert_eq!(r.get(&format!("/dci/v3/server?where={q}&limit=0")).await["size"], 0);
}

/// 500 tasks in flight on SQLite, the process killed (SIGKILL) and started again:
/// every task ends, none is lost or left running, no server halfway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_500_tasks_survive_a_kill() {
    let dir = common::tempdir::Dir::new();
    let d = dir.0.to_str().unwrap();
    let a = Served::start(dcim(d, None, 1500));
    let ra = Remote::login(&a.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let servers = site(&ra, 500).await;
    let tasks = start_all(&ra, &servers, "power_reset").await;
    // Killed while some run (each device call takes 1.5 s) and the rest wait.
    let before = until_some_run(&ra).await;
    a.crash();
    let b = Served::start(dcim(d, None, 0));
    let rb = Remote::login(&b.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let after = all_ended(&rb, Duration::from_secs(120)).await;
    eprintln!("killed with {before:?}; after the restart {after:?}");
    assert_eq!(after.values().sum::<i64>(), 500, "{after:?}");
    nothing_left_halfway(&rb, &tasks).await;
    b.stop();
}

/// The same on PostgreSQL with three processes sharing the queue, one of them killed:
/// the other two take its tasks over once its leases run out, and each ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_500_tasks_three_processes_one_killed() {
    let (schema, url) = common::fresh_postgres_schema().await;
    let dirs = [common::tempdir::Dir::new(), common::tempdir::Dir::new(), common::tempdir::Dir::new()];
    // Each process's fake lab is its own: a reset the killed process sent is unknown to
    // the survivors' fake BMCs, so a task taken over after its reset step waits for a
    // power state that never comes, and fails with that reason after this timeout.
    let quick = |dir: &common::tempdir::Dir, delay| {
        let mut c = dcim(dir.0.to_str().unwrap(), Some(&url), delay);
        c.env("DCIM_POWER_TIMEOUT_SECS", "5");
        c
    };
    let a = Served::start(quick(&dirs[0], 1500));
    let ra = Remote::login(&a.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let t0 = Instant::now();
    let servers = site(&ra, 500).await;
    eprintln!("500 servers made in {:?}", t0.elapsed());
    let b = Served::start(quick(&dirs[1], 200));
    let c = Served::start(quick(&dirs[2], 200));
    let rb = Remote::login(&b.url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let t0 = Instant::now();
    let tasks = start_all(&rb, &servers, "power_reset").await;
    eprintln!("500 tasks started in {:?}", t0.elapsed());
    let before = until_some_run(&ra).await;
    a.crash();
    let t0 = Instant::now();
    let after = all_ended(&rb, Duration::from_secs(180)).await;
    eprintln!("all ended {:?} after the kill", t0.elapsed());
    eprintln!("killed one of three with {before:?}; then {after:?}");
    assert_eq!(after.values().sum::<i64>(), 500, "{after:?}");
    nothing_left_halfway(&rb, &tasks).await;
    b.stop();
    c.stop();
    common::drop_postgres_schema(&schema).await;
}

/// A location with a fake switch and PDU and `n` servers with fake BMCs.
async fn site(r: &Remote, n: usize) -> Vec<i64> {
    let loc = r.post("/dci/v3/location", json!({"name": "DC"})).await["id"].clone();
    let mut ids = vec![];
    for i in 0..n {
        let v = r
            .post(
                "/dci/v3/server",
                json!({"name": format!("s{i}"), "location_id": loc, "mac": format!("52:54:00:aa:{:02x}:{:02x}", i >> 8, i & 255),
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
