//! The `snmp` mode: dcim against snmpsim switches. Starts one snmpsim per switch
//! (48 ports each, recordings from `sims/snmp`), a `dcim serve` process, and
//! measures from this process over loopback:
//!
//! - the sync of a 48-port switch (`POST /dci/v3/switch/{id}/sync`, v2c and v3), the
//!   same walk by dcim's driver in this process (no HTTP, no database), and the same
//!   eight IF-MIB columns walked by Debian's `snmpwalk` and `snmpbulkwalk`, one
//!   process per column as a script would run them;
//! - suspend, then resume, of N servers spread over the switches (one data port each),
//!   all submitted at once: time until the last task is complete, checked afterwards
//!   with `snmpget` on every port.
//!
//! Needs what `scripts/sims-setup.sh` installs. Prints figures; asserts only that the
//! ports really changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use dcim_core::DeviceProtocol;
use dcim_drivers::{DeviceAccess, Drivers};
use serde_json::{Value, json};

use crate::{ADMIN, Args, PASSWORD, Process, rss_mib, summary};

const SWITCHES: usize = 4;
const PORTS: usize = 48;
const ROUNDS: usize = 20;
/// The columns a sync reads: ifIndex, ifDescr, ifSpeed, ifAdminStatus, ifOperStatus,
/// ifName, ifHighSpeed, ifAlias.
const COLUMNS: &[&str] = &[
    "1.3.6.1.2.1.2.2.1.1",
    "1.3.6.1.2.1.2.2.1.2",
    "1.3.6.1.2.1.2.2.1.5",
    "1.3.6.1.2.1.2.2.1.7",
    "1.3.6.1.2.1.2.2.1.8",
    "1.3.6.1.2.1.31.1.1.1.1",
    "1.3.6.1.2.1.31.1.1.1.15",
    "1.3.6.1.2.1.31.1.1.1.18",
];
const SETUP: &str = "run scripts/sims-setup.sh (as root) first";

fn venv() -> PathBuf {
    PathBuf::from(std::env::var("DCIM_SIMS").unwrap_or_else(|_| "/opt/dcim-sims".into())).join("venv")
}

fn sims_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sims/snmp")
}

/// One snmpsim serving the community (and v3 context) `name`.
struct Sim {
    addr: String,
    _process: Process,
}

impl Sim {
    fn start(dir: &Path, name: &str) -> anyhow::Result<Sim> {
        use std::os::unix::fs::PermissionsExt;
        let responder = venv().join("bin/snmpsim-command-responder");
        anyhow::ensure!(responder.exists(), "{} is missing: {SETUP}", responder.display());
        for d in ["data", "cache", "run"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        for d in ["", "cache", "run"] {
            std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(0o777))?;
        }
        let ok = Command::new(venv().join("bin/python"))
            .arg(sims_dir().join("gen-snmprec.py"))
            .arg(dir.join("data"))
            .arg(format!("{name}:switch:{PORTS}"))
            .status()?;
        anyhow::ensure!(ok.success(), "gen-snmprec.py failed");
        let builtin = std::fs::read_dir(venv().join("lib"))?
            .find_map(|e| Some(e.ok()?.path().join("site-packages/snmpsim/variation")))
            .context("snmpsim's variation modules")?;
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = Command::new(&responder);
        cmd.arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--cache-dir={}", dir.join("cache").display()))
            .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
            .arg(format!("--variation-modules-dir={}", sims_dir().join("variation").display()))
            .arg(format!("--variation-modules-dir={}", builtin.display()))
            .arg(format!("--logging-method=file:{}", dir.join("run/sim.log").display()))
            .args(["--log-level=error", "--v3-user=admin", "--v3-auth-key=authpass123", "--v3-auth-proto=SHA"])
            .args(["--v3-priv-key=privpass123", "--v3-priv-proto=AES"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if root {
            cmd.args(["--process-user=nobody", "--process-group=nogroup"]);
        }
        let process = Process(cmd.spawn().with_context(|| format!("starting {}", responder.display()))?);
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while net_snmp("snmpget", &["-c", name, "-t", "0.3", "-r", "0", &addr, "1.3.6.1.2.1.1.5.0"]).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "snmpsim on {addr} did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Sim { addr, _process: process })
    }
}

/// A net-snmp tool in v2c with numeric OIDs; its output.
fn net_snmp(tool: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(tool)
        .env("MIBS", "")
        .args(["-v2c", "-On", "-Oq"])
        .args(args)
        .output()
        .with_context(|| format!("{tool}: {SETUP}"))?;
    anyhow::ensure!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut rb = self.client.request(method, format!("{}/api{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path}: {status} {v}");
        Ok(v)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Starts `op` on every server at once (16 senders) and waits for the last task.
    async fn all(&self, servers: &[i64], op: &str) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        crate::submit_all(&self.client, std::slice::from_ref(&self.base), &self.token, servers, op, 16).await?;
        crate::wait_tasks_done(&self.client, &self.base, &self.token, Duration::from_secs(300)).await?;
        let took = t0.elapsed();
        let failed = self.get("/dci/v3/task?where=status%20EQ%20fail&limit=0,1").await?;
        anyhow::ensure!(failed["size"] == 0, "{op}: {} tasks failed: {failed}", failed["size"]);
        Ok(took)
    }
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let n = args.servers;
    anyhow::ensure!(n <= SWITCHES * PORTS, "snmp mode: --servers at most {} (one port each)", SWITCHES * PORTS);
    let dir = std::env::temp_dir().join(format!("dcim-bench-snmp-{}", std::process::id()));
    let result = measure(args, n, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(args: &Args, n: usize, dir: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut sims = vec![];
    for i in 0..SWITCHES {
        sims.push(Sim::start(&dir.join(format!("sim{i}")), &format!("sw{i}"))?);
    }
    println!("{SWITCHES} snmpsim switches of {PORTS} ports started in {:.1} s", t.elapsed().as_secs_f64());

    let data = dir.join("dcim");
    std::fs::create_dir_all(&data)?;
    let mut child = Command::new(&args.dcim)
        .args(["serve", "--no-tls", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("DCIM_LOG", "warn")
        .env("DCIM_ADMIN_EMAIL", ADMIN)
        .env("DCIM_ADMIN_PASSWORD", PASSWORD)
        .env("DCIM_TASK_POLL_MS", "20")
        .env("DCIM_POWER_POLL_SECS", "0")
        .env("DCIM_PORT_POLL_SECS", "0")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", args.dcim))?;
    let stdout = child.stdout.take().context("stdout")?;
    let server = Process(child);
    let pid = server.0.id();
    let mut base = String::new();
    {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if let Some(u) = line?.strip_prefix("dcim listening on ") {
                base = u.to_owned();
                break;
            }
        }
    }
    anyhow::ensure!(!base.is_empty(), "dcim did not start");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/auth/v4/public/token"))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let api = Api { client, base, token: login["token"].as_str().context("login")?.to_owned() };

    let loc = api.post("/dci/v3/location", json!({"name": "Bench DC"})).await?["id"].as_i64().context("location")?;
    let mut switches = vec![];
    for (i, sim) in sims.iter().enumerate() {
        let body = json!({"name": format!("sw{i}"), "location_id": loc, "ip": sim.addr, "protocol": "snmp_v2c",
                          "snmp": {"community": format!("sw{i}")}});
        switches.push(api.post("/dci/v3/switch", body).await?["id"].as_i64().context("switch")?);
    }
    let v3 = api
        .post(
            "/dci/v3/switch",
            json!({"name": "sw0-v3", "location_id": loc, "ip": sims[0].addr, "protocol": "snmp_v3",
                   "snmp": {"user": "admin", "auth_protocol": "sha", "auth_password": "authpass123",
                            "priv_protocol": "aes", "priv_password": "privpass123", "context": "sw0"}}),
        )
        .await?["id"]
        .as_i64()
        .context("switch")?;

    // --- sync of one 48-port switch
    let mut http = vec![];
    let mut http_v3 = vec![];
    for _ in 0..ROUNDS {
        for (sw, out) in [(switches[0], &mut http), (v3, &mut http_v3)] {
            let t = Instant::now();
            api.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await?;
            out.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    for &sw in &switches[1..] {
        api.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await?;
    }
    let drivers = Drivers::new(Some(dcim_drivers::fake::FakeLab::new(Duration::ZERO)));
    let access =
        DeviceAccess { address: sims[0].addr.clone(), secret: json!({"community": "sw0"}).to_string(), location: None };
    let mut walk = vec![];
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let ports = drivers.switch(DeviceProtocol::SnmpV2c, &access)?.ports().await?;
        walk.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(ports.len() == PORTS, "{} ports read", ports.len());
    }
    let mut tools: Vec<(&str, Vec<f64>)> = vec![("snmpwalk", vec![]), ("snmpbulkwalk", vec![])];
    for (tool, out) in &mut tools {
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let mut lines = 0;
            for c in COLUMNS {
                let extra: &[&str] = if *tool == "snmpbulkwalk" { &["-Cr24"] } else { &[] };
                let mut a = vec!["-c", "sw0"];
                a.extend(extra);
                a.extend([sims[0].addr.as_str(), c]);
                lines += net_snmp(tool, &a)?.lines().count();
            }
            out.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(lines >= COLUMNS.len() * PORTS, "{tool}: {lines} values");
        }
    }
    println!("sync of a {PORTS}-port switch ({} columns, {} values):", COLUMNS.len(), COLUMNS.len() * PORTS);
    println!("  POST /switch/{{id}}/sync, v2c:          {}", summary(&http));
    println!("  POST /switch/{{id}}/sync, v3 SHA/AES:   {}", summary(&http_v3));
    println!("  dcim driver walk in-process, v2c:     {}", summary(&walk));
    for (tool, out) in &tools {
        println!("  {tool:<13} one process per column: {}", summary(out));
    }

    // --- suspend and resume of N servers
    let mut port_ids = vec![];
    for &sw in &switches {
        let ports = api.get(&format!("/dci/v3/switch/{sw}/port?limit=0,{PORTS}")).await?;
        let ids: Vec<i64> =
            ports["list"].as_array().context("ports")?.iter().filter_map(|p| p["id"].as_i64()).collect();
        port_ids.push(ids);
    }
    let mut servers = vec![];
    for i in 0..n {
        let id = api.post("/dci/v3/server", json!({"name": format!("srv-{i}"), "location_id": loc})).await?["id"]
            .as_i64()
            .context("server")?;
        let port = port_ids[i % SWITCHES][i / SWITCHES];
        api.post(&format!("/dci/v3/server/{id}/switch_connection"), json!({"port": port})).await?;
        servers.push(id);
    }
    let admin_of = |want: &str| -> anyhow::Result<usize> {
        let mut shut = 0;
        for (s, sim) in sims.iter().enumerate() {
            let oids: Vec<String> = (0..n)
                .filter(|i| i % SWITCHES == s)
                .map(|i| format!("1.3.6.1.2.1.2.2.1.7.{}", i / SWITCHES + 1))
                .collect();
            for chunk in oids.chunks(20) {
                let community = format!("sw{s}");
                let mut a = vec!["-c", community.as_str(), "-Ov", sim.addr.as_str()];
                a.extend(chunk.iter().map(String::as_str));
                shut += net_snmp("snmpget", &a)?.lines().filter(|l| l.trim() == want).count();
            }
        }
        Ok(shut)
    };
    let suspend = api.all(&servers, "suspend").await?;
    let down = admin_of("2")?;
    anyhow::ensure!(down == n, "after suspend, {down} of {n} ports read down with snmpget");
    let resume = api.all(&servers, "resume").await?;
    let up = admin_of("1")?;
    anyhow::ensure!(up == n, "after resume, {up} of {n} ports read up with snmpget");
    println!(
        "suspend of {n} servers over {SWITCHES} switches: {:.2} s ({:.0} servers/s); resume: {:.2} s ({:.0} servers/s); \
         every port checked with snmpget",
        suspend.as_secs_f64(),
        n as f64 / suspend.as_secs_f64(),
        resume.as_secs_f64(),
        n as f64 / resume.as_secs_f64()
    );
    println!("dcim RSS now {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
    drop(server);
    Ok(())
}
