//! Load benchmark of the server on SQLite: seeds N servers, starts `dcim serve` as a
//! separate process, and drives it over loopback from this process (and from `wrk`
//! when installed). Prints figures; asserts nothing. See bench/README.md.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use dcim_core::configuration::{Cpu, Disk, DiskType, HardwareInfo, Memory, Motherboard, Nic, generate};
use dcim_core::{Email, Role};
use dcim_store::Store;
use dcim_store::ids::ServerId;
use dcim_store::inventory::{DeviceKind, NewDevice, PortReport};
use dcim_store::servers::{BmcAccess, NewServer, ServerPatch};
use dcim_store::users::NewUser;

mod cli;
mod site;
mod snmp;
mod ui;
mod ui_admin;
mod webhook;

#[derive(Parser)]
struct Args {
    /// Number of servers to seed.
    #[arg(long, default_value_t = 10_000)]
    servers: usize,
    /// Seconds of load for the by-id throughput run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections of the load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The dcim binary to run (build it with --release first).
    #[arg(long, default_value = "target/release/dcim")]
    dcim: String,
    /// Reuse (or keep) the seeded data in this directory instead of a fresh one.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// `api` (reads), `tasks` (operations end to end on the fake drivers), `ipam`, `snmp`
    /// (switch sync and suspend/resume against snmpsim), `ui` (web UI pages), `ui-admin`
    /// (racks, IPAM over 120,000 addresses, a bulk action on 1,000 servers), `cli`
    /// (dcimctl as whole processes over HTTPS) or `site` (power tasks through a
    /// `dcim site` process against the direct path).
    #[arg(long, default_value = "api")]
    mode: String,
    /// tasks mode: the fake devices' delay per call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    fake_delay_ms: u64,
    /// tasks mode: run the tasks again with a webhook for `task.finished` and
    /// `server.power` to a receiver in this process, and time the deliveries.
    #[arg(long)]
    webhook: bool,
    /// cli mode: the dcimctl binary (build it with --release first).
    #[arg(long, default_value = "target/release/dcimctl")]
    dcimctl: String,
    /// A PostgreSQL database (`postgres://...`, which must exist) to seed and serve
    /// from, where the default is SQLite in the data directory. A database that
    /// already holds servers is used as it is (seeded by an earlier run of the mode).
    #[arg(long)]
    database_url: Option<String>,
    /// api and tasks modes: how many `dcim serve` processes to run on the one
    /// database; this process's load goes round-robin over them (wrk's, with one only).
    #[arg(long, default_value_t = 1)]
    processes: usize,
}

pub(crate) const ADMIN: &str = "bench@example.com";
pub(crate) const PASSWORD: &str = "bench-password";

/// A process the bench started, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `dcim serve` process of the bench and where it listens.
struct Server {
    process: Process,
    base: String,
}

/// Starts the `i`th `dcim serve` on the database at `url`, with the fake drivers, and
/// waits for its listening line. The first keeps its data (the secret key) in `dir`;
/// the others have a directory of their own under it and read the first one's key, as
/// processes of one database must.
fn start_dcim(args: &Args, dir: &std::path::Path, url: &str, i: usize, tls: bool) -> anyhow::Result<Server> {
    let mut serve = vec!["serve".to_owned(), "--fake-drivers".into(), "--listen".into(), "127.0.0.1:0".into()];
    if tls {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
        let (cert, key) = (dir.join("bench-cert.pem"), dir.join("bench-key.pem"));
        std::fs::write(&cert, ck.cert.pem())?;
        std::fs::write(&key, ck.signing_key.serialize_pem())?;
        serve.extend(["--tls-cert".into(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()]);
    } else {
        serve.push("--no-tls".into());
    }
    let own = if i == 0 { dir.to_owned() } else { dir.join(format!("process-{i}")) };
    std::fs::create_dir_all(&own)?;
    let mut cmd = Command::new(&args.dcim);
    cmd.args(&serve)
        .arg("--data-dir")
        .arg(&own)
        .arg("--database-url")
        .arg(url)
        .env("DCIM_LOG", "warn")
        .env("DCIM_FAKE_DELAY_MS", args.fake_delay_ms.to_string())
        .env("DCIM_TASK_WORKERS", (args.servers + 16).to_string())
        .env("DCIM_TASK_POLL_MS", "20")
        // One token drives the whole load: no per-token rate limit.
        .env("DCIM_RATE_LIMIT_PER_SEC", "0")
        .stdout(Stdio::piped());
    if matches!(args.mode.as_str(), "api" | "tasks" | "site") {
        // The figures are the reads' and the tasks' own: no poller round beside them
        // (the first round after a seed writes every server's power state). The
        // power poller has its own figures (README, "The power poller at 100,000
        // BMCs").
        cmd.env("DCIM_POWER_POLL_SECS", "0").env("DCIM_PORT_POLL_SECS", "0");
    }
    if i > 0 {
        cmd.env("DCIM_SECRET_KEY_FILE", dir.join("secret.key"));
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {}", args.dcim))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut server = Server { process: Process(child), base: String::new() };
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if let Some(u) = line?.strip_prefix("dcim listening on ") {
            server.base = u.to_owned();
            break;
        }
    }
    anyhow::ensure!(!server.base.is_empty(), "dcim did not start");
    // Keep reading what it prints, so a later line never meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(server)
}

/// Whether the database at `url` was seeded by an earlier run (it holds servers).
async fn seeded(url: &str, dir: &std::path::Path) -> anyhow::Result<bool> {
    if url.starts_with("sqlite:") {
        return Ok(dir.join("dcim.db").exists());
    }
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let q = dcim_core::query::ListQuery::parse(None, None, Some("0,1")).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let size = store.list_servers(&q, &[]).await?.size;
    store.close().await;
    Ok(size > 0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mode == "snmp" {
        return snmp::run(&args).await;
    }
    let keep = args.data_dir.is_some();
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("dcim-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir)?;
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", dir.join("dcim.db").display()),
    };
    if !seeded(&url, &dir).await? {
        let t = Instant::now();
        if args.mode == "ipam" {
            seed_ipam(&url, args.servers).await?;
            println!("seeded {} used addresses per family in {:.1} s", args.servers, t.elapsed().as_secs_f64());
        } else if args.mode == "ui-admin" {
            seed(&url, args.servers).await?;
            let store = Store::connect(&url).await?;
            // The addresses belong to the last server, which no rack holds and no bulk
            // action touches.
            fill_addresses(&store, ServerId(args.servers as i64), 60_000).await?;
            store.close().await;
            println!("seeded {} servers and 120,000 addresses in {:.1} s", args.servers, t.elapsed().as_secs_f64());
        } else {
            seed(&url, args.servers).await?;
            println!("seeded {} servers in {:.1} s", args.servers, t.elapsed().as_secs_f64());
        }
        if !url.starts_with("sqlite:") {
            // What autovacuum does a while after a bulk load, at once: the planner's
            // statistics, and the visibility map that lets a count read an index alone.
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql("VACUUM ANALYZE").execute(&mut c).await?;
        }
    }

    // HTTPS (a self-signed certificate for 127.0.0.1) only for the command line, as an
    // operator reaches a dcim; plain HTTP for the server's figures.
    let tls = matches!(args.mode.as_str(), "cli" | "site");
    let processes = if matches!(args.mode.as_str(), "api" | "tasks") { args.processes.max(1) } else { 1 };
    let mut servers = vec![];
    for i in 0..processes {
        servers.push(start_dcim(&args, &dir, &url, i, tls)?);
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let base = bases[0].clone();
    let pid = servers[0].process.0.id();
    for s in &servers {
        println!(
            "dcim pid {} on {}, RSS after start {} MiB",
            s.process.0.id(),
            s.base,
            rss_mib(s.process.0.id(), "VmRSS")
        );
    }
    let server = servers;

    let _ = rustls::crypto::ring::default_provider().install_default();
    // The bench's own client does not check the certificate; dcimctl and curl do.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tls_danger_accept_invalid_certs(tls)
        .build()?;
    let login: serde_json::Value = client
        .post(format!("{base}/api/auth/v4/public/token"))
        .json(&serde_json::json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().context("login")?.to_owned();
    if args.mode == "ipam" {
        ipam(&client, &base, &token).await?;
        drop(server);
        if !keep {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }
    if args.mode == "cli" {
        cli::run(&args.dcimctl, &base, &dir, &token, args.servers).await?;
        println!("dcim RSS now {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
        drop(server);
        if !keep {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }
    if args.mode == "ui-admin" {
        ui_admin::run(&client, &base, &token, args.servers).await?;
        println!("dcim RSS now {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
        drop(server);
        if !keep {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }
    if args.mode == "ui" {
        ui::run(&client, &base, &token, args.servers).await?;
        println!("dcim RSS now {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
        drop(server);
        if !keep {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }
    if args.mode == "site" {
        site::run(&args, &client, &base, &token, &dir).await?;
        println!("dcim RSS now {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
        drop(server);
        if !keep {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }
    if args.mode == "tasks" {
        tasks(&client, &bases, &token, args.servers, args.connections, args.fake_delay_ms).await?;
        if args.webhook {
            webhook::run(&client, &base, &token, args.servers, args.connections, args.fake_delay_ms).await?;
        }
        for s in &server {
            let pid = s.process.0.id();
            println!("dcim pid {pid} RSS now {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
        }
        drop(server);
        if !keep {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }

    let anon_peak = anon_peak(pid);
    // By-id throughput, from this process and from wrk; then the same load on a bare
    // axum handler in this process that returns the same server's JSON, the ceiling an
    // HTTP server on this machine reaches.
    // Every server read once on each process first, as a billing system's poll does:
    // the loads below measure the steady state, not the first reads of the cache.
    let t = Instant::now();
    let first = read_every_server(&client, &bases, &token, args.servers, args.connections).await?;
    println!(
        "first read of every server on each process (the server cache filling): {first} reads in {:.1} s, {:.0} requests/s",
        t.elapsed().as_secs_f64(),
        first as f64 / t.elapsed().as_secs_f64()
    );
    let own = by_id_load(&client, &bases, &token, args.servers, args.connections, args.seconds).await;
    println!(
        "GET /dci/v3/server/{{id}} from this process, {} connections over {} dcim process(es): {own:.0} requests/s",
        args.connections,
        bases.len()
    );
    let with_wrk = if bases.len() == 1 {
        wrk_by_id(&dir, &base, &token, args.servers, args.connections, args.seconds)?
    } else {
        None
    };
    let sample: serde_json::Value =
        get_as(&client, format!("{base}/api/dci/v3/server/1"), &token).send().await?.json().await?;
    let bare_base = bare_handler(sample).await?;
    let bare_own =
        by_id_load(&client, std::slice::from_ref(&bare_base), &token, args.servers, args.connections, args.seconds)
            .await;
    println!("bare handler from this process: {bare_own:.0} requests/s (dcim {:.0}%)", 100.0 * own / bare_own);
    let bare_wrk = if bases.len() == 1 {
        wrk_by_id(&dir, &bare_base, &token, args.servers, args.connections, args.seconds)?
    } else {
        None
    };
    if let (Some(d), Some(b)) = (with_wrk, bare_wrk) {
        println!("wrk: dcim {d:.0} requests/s, bare handler {b:.0} requests/s: dcim at {:.0}%", 100.0 * d / b);
    }
    for b in &bases {
        println!("{}", server_cache_line(&client, b, &token).await?);
    }
    println!("dcim RSS after the by-id load {} MiB (peak so far {} MiB)", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
    println!("{}", memory_split(pid, &anon_peak));

    // Full list and configuration: sequential latency, as a billing poll sees it.
    let list_url = format!("{base}/api/dci/v3/server");
    let (list, bytes) = latencies(&client, &list_url, &token, 15).await?;
    println!("GET /dci/v3/server ({} servers, {:.1} MB): {}", args.servers, bytes as f64 / 1e6, summary(&list));
    let conf_url = format!("{base}/api/dci/v3/server/configuration");
    let (conf, _) = latencies(&client, &conf_url, &token, 200).await?;
    println!("GET /dci/v3/server/configuration: {}", summary(&conf));
    let page_url =
        format!("{base}/api/dci/v3/server?where=state%20EQ%20%27ok%27%20AND%20owner_email%20IS%20null&limit=0,50");
    let (page, _) = latencies(&client, &page_url, &token, 200).await?;
    println!("GET /dci/v3/server?where=state EQ 'ok' AND owner_email IS null&limit=0,50: {}", summary(&page));

    println!("dcim RSS after the full lists {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
    println!("{}", memory_split(pid, &anon_peak));
    drop(server);
    if !keep {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Requests per second of `GET {base}/api/dci/v3/server/{random id}` over `connections`
/// keep-alive connections of this process's client, each request to the next of
/// `bases` in turn.
async fn by_id_load(
    client: &reqwest::Client,
    bases: &[String],
    token: &str,
    servers: usize,
    connections: usize,
    seconds: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = vec![];
    for c in 0..connections {
        let (client, bases, token, done) = (client.clone(), bases.to_vec(), token.to_owned(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut turn = c;
            while Instant::now() < stop_at {
                let base = &bases[turn % bases.len()];
                turn += 1;
                let id = rand::random_range(1..=servers);
                let r = get_as(&client, format!("{base}/api/dci/v3/server/{id}"), &token).send().await;
                if let Ok(r) = r
                    && r.status().is_success()
                    && r.bytes().await.is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

/// `GET /dci/v3/server/{id}` of every server once on each of `bases`, over
/// `connections` clients; the reads made. A failed read stops the bench.
async fn read_every_server(
    client: &reqwest::Client,
    bases: &[String],
    token: &str,
    servers: usize,
    connections: usize,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let total = (servers * bases.len()) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, bases, token, next) = (client.clone(), bases.to_vec(), token.to_owned(), next.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(());
                }
                let (base, id) = (&bases[n as usize / servers], n as usize % servers + 1);
                get_as(&client, format!("{base}/api/dci/v3/server/{id}"), &token)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(total)
}

/// The same load from `wrk -t1` when it is installed: prints its lines, returns its
/// requests per second.
fn wrk_by_id(
    dir: &std::path::Path,
    base: &str,
    token: &str,
    servers: usize,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<Option<f64>> {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("(wrk not installed: apt-get install wrk for the second load generator)");
        return Ok(None);
    }
    let script = dir.join("by-id.lua");
    std::fs::write(
        &script,
        format!(
            "request = function()\n  return wrk.format(\"GET\", \"/api/dci/v3/server/\" .. math.random(1, {servers}))\nend\n"
        ),
    )?;
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["-H", &format!("Cookie: ses6={token}"), "-s"])
        .arg(&script)
        .arg(base)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rate = None;
    for l in text.lines().filter(|l| l.contains("Requests/sec") || l.contains("Latency") || l.contains("Non-2xx")) {
        println!("wrk {base}/api/dci/v3/server/{{id}}: {}", l.trim());
        if let Some(v) = l.trim().strip_prefix("Requests/sec:") {
            rate = v.trim().parse().ok();
        }
    }
    Ok(rate)
}

/// A bare axum server on 127.0.0.1 answering `GET /api/dci/v3/server/{id}` with the
/// bytes of `sample`, rendered once: no authentication, no database, no serializing;
/// the ceiling of an HTTP server on this machine for the same answer. Returns its base
/// URL.
async fn bare_handler(sample: serde_json::Value) -> anyhow::Result<String> {
    let body = axum::body::Bytes::from(serde_json::to_vec(&sample)?);
    let app = axum::Router::new().route(
        "/api/dci/v3/server/{id}",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

/// Next-free allocation latency in a full /16 and /64, and paging through the addresses.
async fn ipam(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    for (label, body) in [
        ("IPv4 /16", serde_json::json!({"ip_net": 1})),
        ("IPv6 /64", serde_json::json!({"family": "ipv6", "ip_net": 2})),
    ] {
        let (mut busy, mut quiet) = (vec![], vec![]);
        for i in 0..100 {
            let t = Instant::now();
            let r = client.post(format!("{base}/api/dci/v3/server/1/ip")).bearer_auth(token).json(&body).send().await?;
            anyhow::ensure!(r.status().is_success(), "allocate: {}", r.text().await?);
            let v: serde_json::Value = r.json().await?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if i % 2 == 0 {
                busy.push(ms);
                continue;
            }
            quiet.push(ms);
            // Let the address's task finish before the next call: the quiet figure
            // is the allocation alone, without the previous task's writes beside it.
            let task = v["task"].as_i64().unwrap_or(0);
            loop {
                let t: serde_json::Value = client
                    .get(format!("{base}/api/dci/v3/task/{task}"))
                    .bearer_auth(token)
                    .send()
                    .await?
                    .json()
                    .await?;
                if t["status"] != "pending" && t["status"] != "running" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        println!("POST /dci/v3/server/1/ip next free in the {label}, quiet: {}", summary(&quiet));
        println!("POST /dci/v3/server/1/ip next free in the {label}, right after another: {}", summary(&busy));
    }
    let v: serde_json::Value =
        client.get(format!("{base}/api/dci/v3/ip?limit=0,1")).bearer_auth(token).send().await?.json().await?;
    let total = v["size"].as_u64().unwrap_or(0);
    let mut ms = vec![];
    let mut offset = 0;
    while offset < total {
        let url = format!("{base}/api/dci/v3/ip?limit={offset},1000");
        let t = Instant::now();
        let r = client.get(&url).bearer_auth(token).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        offset += 1000;
    }
    println!("GET /dci/v3/ip, {total} addresses in pages of 1000: {}", summary(&ms));
    Ok(())
}

/// A server and two networks (198.18.0.0/16, the benchmarking range, and
/// 2001:db8:1::/64) with `n` addresses in use in each.
async fn seed_ipam(url: &str, n: usize) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let hash = dcim_api::auth::hash_password(PASSWORD.into()).await.map_err(|e| anyhow::anyhow!(e.msg))?;
    store
        .create_user(&NewUser {
            email: Email::parse("email", ADMIN).expect("valid"),
            password_hash: hash,
            role: Role::Admin,
            full_name: String::new(),
            phone_number: String::new(),
            vlans_per_user: 0,
        })
        .await?;
    let loc = store.create_location("Bench DC", "", None).await?;
    let srv = store
        .create_server(&NewServer {
            name: "holder".into(),
            location_id: loc,
            rack_id: None,
            unit: None,
            mac: None,
            domain: String::new(),
            details: Default::default(),
            bmc: None,
        })
        .await?;
    fill_addresses(&store, srv, n).await?;
    store.close().await;
    Ok(())
}

/// Two networks (198.18.0.0/16, the benchmarking range, and 2001:db8:1::/64) with `n`
/// addresses of server `srv` in each.
pub(crate) async fn fill_addresses(store: &Store, srv: ServerId, n: usize) -> anyhow::Result<()> {
    use dcim_store::ipam::{NewIp, NewIpnet, Source};
    for (cidr, gw) in [("198.18.0.0/16", "198.18.0.1"), ("2001:db8:1::/64", "2001:db8:1::1")] {
        let net: ipnet::IpNet = cidr.parse()?;
        let fam = dcim_core::ip::family(&net.addr());
        let id = store
            .create_ipnet(&NewIpnet {
                name: net.to_string(),
                family: fam,
                prefix: i64::from(net.prefix_len()),
                first_key: dcim_core::ip::key(&net.network()),
                last_key: dcim_core::ip::key(&net.broadcast()),
                gateway: gw.into(),
                vlan: String::new(),
                note: String::new(),
                userspace: 1,
                need_reserve: true,
            })
            .await?;
        let gw: std::net::IpAddr = gw.parse()?;
        let reserved =
            |k: &str| dcim_core::ip::from_key(fam, k).is_none_or(|a| dcim_core::ip::is_reserved(&net, Some(&gw), &a));
        let ip = NewIp::for_server(srv, fam, String::new(), dcim_core::IpPurpose::Server);
        for _ in 0..n {
            store.allocate_next(&ip, Source::Network(id), &reserved).await?;
        }
    }
    Ok(())
}

/// Posts `op` (body `{}`) for every server of `ids`, from `senders` concurrent clients,
/// round-robin over the processes at `bases`.
pub(crate) async fn submit_all(
    client: &reqwest::Client,
    bases: &[String],
    token: &str,
    ids: &[i64],
    op: &str,
    senders: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let ids: Arc<[i64]> = ids.into();
    let bases: Arc<[String]> = bases.into();
    let mut tasks = vec![];
    for _ in 0..senders.clamp(1, ids.len().max(1)) {
        let (client, bases, token, next, ids, op) =
            (client.clone(), bases.clone(), token.to_owned(), next.clone(), ids.clone(), op.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let at = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(id) = ids.get(at) else { break };
                let base = &bases[at % bases.len()];
                let r = client
                    .post(format!("{base}/api/dci/v3/server/{id}/{op}"))
                    .bearer_auth(&token)
                    .body("{}")
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "{op} of server {id}: {}", r.status());
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Waits until no task is pending or running; fails after `limit`.
pub(crate) async fn wait_tasks_done(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let open = format!("{base}/api/dci/v3/task?where=status%20EQ%20pending%20OR%20status%20EQ%20running&limit=0,1");
    loop {
        let v: serde_json::Value = client.get(&open).bearer_auth(token).send().await?.json().await?;
        if v["size"].as_i64() == Some(0) {
            return Ok(());
        }
        anyhow::ensure!(t0.elapsed() < limit, "tasks still open after {} s: {v}", limit.as_secs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts `power_reset` on every server at once (from `connections` concurrent
/// clients, round-robin over the processes at `bases`) and times until the last task
/// is complete.
pub(crate) async fn tasks(
    client: &reqwest::Client,
    bases: &[String],
    token: &str,
    n: usize,
    connections: usize,
    delay_ms: u64,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let ids: Vec<i64> = (1..=n as i64).collect();
    submit_all(client, bases, token, &ids, "power_reset", connections).await?;
    let accepted = t0.elapsed();
    let base = &bases[0];
    let failed = format!("{base}/api/dci/v3/task?where=status%20NE%20complete&limit=0,1");
    wait_tasks_done(client, base, token, Duration::from_secs(900)).await?;
    let total = t0.elapsed();
    let bad: serde_json::Value = client.get(&failed).bearer_auth(token).send().await?.json().await?;
    println!(
        "{n} power_reset tasks on {} process(es), fake delay {delay_ms} ms per device call (2 calls per task): \
         all accepted in {:.2} s, all complete in {:.2} s = {:.0} tasks/s end to end; not complete: {}",
        bases.len(),
        accepted.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        bad["size"]
    );
    Ok(())
}

async fn latencies(client: &reqwest::Client, url: &str, token: &str, n: usize) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut out = vec![];
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = get_as(client, url, token).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
        bytes = r.bytes().await?.len();
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((out, bytes))
}

pub(crate) fn summary(ms: &[f64]) -> String {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    format!("min {:.2} ms, median {:.2} ms, max {:.2} ms ({} runs)", v[0], v[v.len() / 2], v[v.len() - 1], v.len())
}

/// The peak of `pid`'s anonymous resident memory (heap and stacks: what it allocated,
/// without the files it maps), sampled every 10 ms until the process ends.
fn anon_peak(pid: u32) -> Arc<AtomicU64> {
    let peak = Arc::new(AtomicU64::new(0));
    let p = peak.clone();
    std::thread::spawn(move || {
        while let Some(kib) = status_kib(pid, "RssAnon") {
            p.fetch_max(kib, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    peak
}

/// A GET with the bench's session cookie.
fn get_as(client: &reqwest::Client, url: impl reqwest::IntoUrl, token: &str) -> reqwest::RequestBuilder {
    client.get(url).header("Cookie", format!("ses6={token}"))
}

/// What the server cache of the process at `base` holds, and its hits and misses
/// so far, from its `/metrics`.
async fn server_cache_line(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let text = get_as(client, format!("{base}/metrics"), token).send().await?.error_for_status()?.text().await?;
    let metric = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let (hits, misses) = (metric("dcim_server_cache_hits_total"), metric("dcim_server_cache_misses_total"));
    Ok(format!(
        "server cache of {base}: {} servers in {:.1} MiB; {hits} hits, {misses} misses ({:.1}% hits)",
        metric("dcim_server_cache_entries"),
        metric("dcim_server_cache_size_bytes") / 1048576.0,
        100.0 * hits / (hits + misses)
    ))
}

/// The resident set split: the process's own memory (`RssAnon`, with its sampled peak)
/// and the file pages it maps (`RssFile`: the binary and, on SQLite, the database's
/// pages, which are the kernel's page cache and counted once per mapping).
fn memory_split(pid: u32, anon_peak: &AtomicU64) -> String {
    format!(
        "dcim own memory (RssAnon) {} MiB, peak {} MiB; mapped files (RssFile) {} MiB",
        rss_mib(pid, "RssAnon"),
        anon_peak.load(Ordering::Relaxed) / 1024,
        rss_mib(pid, "RssFile")
    )
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
    })
}

fn rss_mib(pid: u32, field: &str) -> u64 {
    status_kib(pid, field).map(|kb| kb / 1024).unwrap_or(0)
}

/// Seeds the database at `url` through the store.
async fn seed(url: &str, n: usize) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let hash = dcim_api::auth::hash_password(PASSWORD.into()).await.map_err(|e| anyhow::anyhow!(e.msg))?;
    let user = |email: &str, role| NewUser {
        email: Email::parse("email", email).expect("valid"),
        password_hash: hash.clone(),
        role,
        full_name: String::new(),
        phone_number: String::new(),
        vlans_per_user: 0,
    };
    store.create_user(&user(ADMIN, Role::Admin)).await?;
    let mut customers = vec![];
    for i in 0..100 {
        customers.push(store.create_user(&user(&format!("customer{i}@example.com"), Role::User)).await?);
    }
    let loc = store.create_location("Bench DC", "", None).await?;
    let ports: Vec<PortReport> = (1..=48)
        .map(|i| PortReport {
            idx: i,
            name: format!("ge-0/0/{}", i - 1),
            description: String::new(),
            alias: String::new(),
            admin_status: "up".into(),
            oper_status: "up".into(),
            speed: Some(1000),
        })
        .collect();
    let mut switch_ports = vec![];
    let mut outlets = vec![];
    for s in 0..n.div_ceil(48) {
        let dev = |name: String, model: &str| NewDevice {
            name,
            location_id: loc,
            ip: "127.0.0.1".into(),
            protocol: dcim_core::DeviceProtocol::Fake,
            model: model.into(),
            secret: "{}".into(),
        };
        let sw = store.create_device(DeviceKind::Switch, &dev(format!("sw{s}"), ""), &ports).await?;
        let pdu = store.create_device(DeviceKind::Pdu, &dev(format!("pdu{s}"), "apc_rpdu"), &ports).await?;
        switch_ports.extend(store.list_ports(DeviceKind::Switch, sw, &Default::default()).await?.items);
        outlets.extend(store.list_ports(DeviceKind::Pdu, pdu, &Default::default()).await?.items);
    }
    // SQLite takes one writer at a time; PostgreSQL is seeded from several connections.
    let writers = if url.starts_with("sqlite:") { 1 } else { 8 };
    let ports: Arc<[(i64, i64)]> = switch_ports.iter().zip(&outlets).map(|(p, o)| (p.id, o.id)).collect();
    let customers: Arc<[dcim_store::ids::UserId]> = customers.into();
    let mut seeders = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (store, ports, customers) = (store.clone(), ports.clone(), customers.clone());
        seeders.spawn(async move {
            for i in (w..n).step_by(writers) {
                let owner = i.is_multiple_of(5).then(|| customers[i % customers.len()]);
                seed_server(&store, loc, i, ports[i], owner).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = seeders.join_next().await {
        r??;
    }
    store.close().await;
    Ok(())
}

/// Server `i` of the seed: a fake BMC, hardware, its switch port and outlet (`ports`),
/// every tenth one new, and `owner` if any.
async fn seed_server(
    store: &Store,
    loc: i64,
    i: usize,
    ports: (i64, i64),
    owner: Option<dcim_store::ids::UserId>,
) -> anyhow::Result<()> {
    let cpus = [
        "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz",
        "Intel(R) Xeon(R) E-2146G CPU @ 3.50GHz",
        "AMD EPYC 7502P 32-Core Processor",
    ];
    let mac = format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let id = store
        .create_server(&NewServer {
            name: format!("srv-{i:05}"),
            location_id: loc,
            rack_id: None,
            unit: None,
            mac: Some(mac.clone()),
            domain: format!("srv-{i:05}.example.com"),
            details: Default::default(),
            bmc: Some(BmcAccess {
                address: format!("bmc-{i}.bench.invalid"),
                kind: dcim_core::BmcType::Fake,
                user: "admin".into(),
                password: "secret".into(),
                web_url: None,
                tls_fingerprint: None,
            }),
        })
        .await?;
    let hw = HardwareInfo {
        cpu: Some(Cpu {
            model: Some(cpus[i % 3].into()),
            sockets: Some(1 + (i % 2) as u32),
            cores: Some(8),
            threads: Some(16),
        }),
        memory: Some(Memory { total_mib: Some(32768 << (i % 3)) }),
        disks: (0..2)
            .map(|d| Disk {
                name: Some(format!("nvme{d}n1")),
                size_gb: Some(960 << (i % 2)),
                kind: Some(if i.is_multiple_of(4) { DiskType::Ssd } else { DiskType::Nvme }),
                serial: Some(format!("S{i}D{d}")),
                model: None,
            })
            .collect(),
        nics: vec![Nic { name: Some("eth0".into()), mac: Some(mac), link: Some(true) }],
        motherboard: Some(Motherboard {
            vendor: Some("Supermicro".into()),
            model: Some("X11".into()),
            serial: Some(format!("B{i}")),
        }),
    };
    store.set_hardware_info(id, &serde_json::to_string(&hw)?, generate(&hw).as_deref()).await?;
    store.update_server(id, &ServerPatch { is_new: Some(i % 10 == 9), ..ServerPatch::default() }).await?;
    store.connect_switch_port(id, ports.0, false).await?;
    store.connect_pdu_port(id, ports.1).await?;
    if let Some(owner) = owner {
        store.assign_owner(id, owner).await?;
    }
    Ok(())
}
