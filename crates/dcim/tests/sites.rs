//! Remote sites: a `dcim site` process (the real binary) beside devices the central
//! cannot reach, connected out to the central over HTTPS with a pinned certificate.
//!
//! `site_drives_what_the_central_cannot_reach` puts an `ipmi_sim` BMC and an snmpsim
//! switch on the loopback of a network namespace the test creates, runs the site in
//! that namespace with a link only to the central's address, and drives power, suspend
//! and resume through the central's API; then a QEMU machine whose BMC is on that
//! loopback and whose NIC is on the namespace's provisioning bridge is diagnosed
//! through the site's netboot service, its agent's reports relayed by the site (root
//! and the agent's boot image, like the machine tests). The others run
//! the site on loopback with the fake lab: a site not connected, its restart, a wrong
//! certificate, a revoked credential, another protocol version.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Db, TestServer, assert_error, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A central with HTTPS on `host`, calls failing fast, and sites counted as gone after
/// 4 s of silence.
async fn central(db: Db, host: &str) -> TestServer {
    central_with(db, host, |_| {}).await
}

async fn central_with(db: Db, host: &str, tune: impl FnOnce(&mut dcim::Config)) -> TestServer {
    let host = host.to_owned();
    TestServer::start_with(db, move |c| {
        fast_tasks(c);
        tune(c);
        c.listen = format!("{host}:0");
        let (cert, key) = dcim::tls::demo_certificate(&c.data_dir).unwrap();
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.site_stale_secs = 4;
    })
    .await
}

/// The SHA-256 of the central's certificate, as an operator reads it with openssl.
fn fingerprint(s: &TestServer) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let cert = CertificateDer::from_pem_file(s.cfg.tls_cert.as_ref().unwrap()).unwrap();
    dcim_tls::fingerprint(&sha2::Sha256::digest(cert.as_ref()).into())
}

/// A `dcim site` process; killed when dropped. Its log is `log()`.
struct Site {
    child: common::KillOnDrop,
    dir: common::tempdir::Dir,
}

impl Site {
    /// Starts a site (in `netns` when given) with the state directory `dir`.
    fn start(netns: Option<&str>, s: &TestServer, fp: &str, dir: common::tempdir::Dir, enroll: Option<&str>) -> Site {
        Self::start_with(netns, &s.base, fp, dir, enroll, None, &[])
    }

    /// With a configuration file (the site's netboot segments).
    fn start_with(
        netns: Option<&str>,
        central: &str,
        fp: &str,
        dir: common::tempdir::Dir,
        enroll: Option<&str>,
        config: Option<&str>,
        more: &[&str],
    ) -> Site {
        let exe = env!("CARGO_BIN_EXE_dcim");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, exe]);
                c
            }
            None => Command::new(exe),
        };
        if let Some(toml) = config {
            std::fs::write(dir.0.join("site.toml"), toml).unwrap();
            cmd.arg("--config").arg(dir.0.join("site.toml"));
        }
        cmd.arg("--data-dir").arg(&dir.0).args(["site", "--central", central, "--central-fingerprint", fp]);
        cmd.args(more);
        if let Some(secret) = enroll {
            cmd.args(["--enroll", secret]);
        }
        if netns.is_none() {
            cmd.arg("--fake-drivers");
        }
        let log = std::fs::File::create(dir.0.join("site.log")).unwrap();
        cmd.env("RUST_LOG", "info").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        Site { child: common::KillOnDrop(cmd.spawn().expect("dcim site starts")), dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("site.log")).unwrap_or_default()
    }

    /// Waits for the process to exit by itself; its status and log.
    fn exited(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return (status, self.log());
            }
            assert!(Instant::now() < deadline, "the site did not exit: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL; the state directory is handed back for a restart.
    fn kill(mut self) -> common::tempdir::Dir {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        std::mem::replace(&mut self.dir, common::tempdir::Dir(std::path::PathBuf::new()))
    }
}

/// Waits until the central says whether site `id` is connected.
async fn until_connected(s: &TestServer, id: i64, connected: bool, site: Option<&Site>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = s.get(&format!("/dci/v3/site/{id}")).await;
        if v["connected"] == connected {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "site {id} connected = {connected}? {v}\n{}",
            site.map(Site::log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(s: &TestServer, srv: i64, op: &str) -> Value {
    let v = s.post(&format!("/dci/v3/server/{srv}/{op}"), json!({})).await;
    let task = v["task"].as_i64().unwrap_or_else(|| panic!("{op}: {v}"));
    wait_task(s, task).await
}

/// A fake server in `loc` with its BMC at `bmc`.
async fn fake_server(s: &TestServer, loc: i64, name: &str, bmc: &str) -> i64 {
    let v = s
        .post(
            "/dci/v3/server",
            json!({"name": name, "location_id": loc, "ipmi": {"address": bmc, "type": "fake", "user": "u", "password": "p"}}),
        )
        .await;
    v["id"].as_i64().unwrap_or_else(|| panic!("{v}"))
}

async fn metrics(s: &TestServer) -> String {
    s.client.get(s.url("/metrics")).bearer_auth(&s.admin_token).send().await.unwrap().text().await.unwrap()
}

/// The central's count of driver calls that went to a site.
async fn site_calls(s: &TestServer) -> f64 {
    metrics(s)
        .await
        .lines()
        .filter(|l| l.starts_with("dcim_driver_calls_total{") && l.contains("protocol=\"site\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_drives_what_the_central_cannot_reach() {
    // The central listens only on the root end of a veth; the namespace has the other
    // end, its own loopback with the devices, and no other route.
    let third = 100 + rand::random::<u8>() % 100;
    let mut ns = common::vdc::Netns::create(&format!("10.214.{third}.1"));
    let sh = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "{args:?}");
    sh(&["-n", &ns.name, "addr", "add", &format!("10.214.{third}.2/24"), "dev", "br0"]);
    // The site's provisioning segment: a bridge of its own, which the central's link
    // does not touch; the machine's NIC goes on it.
    let prov = format!("10.215.{third}.1");
    sh(&["-n", &ns.name, "link", "add", "prov0", "type", "bridge", "forward_delay", "0"]);
    sh(&["-n", &ns.name, "addr", "add", &format!("{prov}/24"), "dev", "prov0"]);
    sh(&["-n", &ns.name, "link", "set", "prov0", "up"]);
    ns.bridge = "prov0";
    let bmc = common::sims::IpmiSim::start_in_netns(&ns.name, 6230, "admin", "bmc-secret");
    let snmp = common::snmpsim::SnmpSim::start_in_netns(&ns.name);
    let vm = common::vdc::VirtualMachine::start_in_netns(&ns, "52:54:00:21:50:01");
    let s = central_with(Db::Sqlite, &format!("10.214.{third}.1"), |c| {
        c.power_timeout_secs = 60;
        c.agent_timeout_secs = 120;
    })
    .await;
    let image = common::lab::boot_image();
    let site_config = format!(
        "netboot_listen = \"{prov}:8080\"\n\n[netboot]\ninterface = \"prov0\"\nserver_ip = \"{prov}\"\n\
         mode = \"full\"\nfirst = \"10.215.{third}.100\"\nlast = \"10.215.{third}.150\"\nprefix_len = 24\n\
         http_base = \"http://{prov}:8080\"\nboot_files_dir = \"{}\"\n\
         kernel_args = \"console=ttyS0 quiet panic=-1 dcim.settle=2\"\n",
        image.display()
    );

    let loc = s.post("/dci/v3/location", json!({"name": "Remote DC"})).await["id"].as_i64().unwrap();
    let site = s.post("/dci/v3/site", json!({"name": "remote-1", "locations": [loc]})).await;
    let (site_id, secret) = (site["id"].as_i64().unwrap(), site["enrollment_secret"].as_str().unwrap().to_owned());
    let sw = s
        .post(
            "/dci/v3/switch",
            json!({"name": "rsw", "location_id": loc, "ip": snmp.addr, "protocol": "snmp_v2c", "snmp": {"community": "switch48"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let srv = s
        .post(
            "/dci/v3/server",
            json!({"name": "r-1", "location_id": loc, "mac": "52:54:00:21:40:01",
                   "ipmi": {"address": bmc.address(), "type": "IPMI v2(lanplus)", "user": "admin", "password": "bmc-secret"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();

    // Before the site connects, the switch cannot be read: the call has nowhere to go.
    let (st, v) = s.call(Method::POST, &format!("/dci/v3/switch/{sw}/sync"), Some(json!({}))).await;
    assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["error"]["msg"].as_str().unwrap().contains("site remote-1 has never connected"), "{v}");

    let dir = common::tempdir::Dir::new();
    let fp = fingerprint(&s);
    let mut site = Site::start_with(Some(&ns.name), &s.base, &fp, dir, Some(&secret), Some(&site_config), &[]);
    let status = until_connected(&s, site_id, true, Some(&site)).await;
    assert_eq!((status["enrolled"].as_bool(), status["protocol"].as_str()), (Some(true), Some("1.0")), "{status}");
    assert_eq!(status["address"], format!("10.214.{third}.2"), "it polls from inside the namespace: {status}");

    // The switch's 48 ports, read over SNMP by the site.
    let v = s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await;
    assert_eq!(v["id"], sw, "{v}");
    let ports = s.get(&format!("/dci/v3/switch/{sw}/port?limit=0,50")).await;
    assert_eq!(ports["size"], 48, "{ports}");
    let port = ports["list"][4].clone();
    let idx = port["index"].as_i64().unwrap();
    s.post(&format!("/dci/v3/server/{srv}/switch_connection"), json!({"port": port["id"]})).await;

    // Power through the BMC in the namespace: ipmitool there sees what dcim did.
    let t = run(&s, srv, "power_on").await;
    assert_eq!(t["status"], "complete", "{t}\n{}", site.log());
    let (_, out) = bmc.ipmitool_in(&ns.name, &["chassis", "power", "status"]);
    assert!(out.contains("is on"), "{out}");
    let t = run(&s, srv, "power_off").await;
    assert_eq!(t["status"], "complete", "{t}");
    let (_, out) = bmc.ipmitool_in(&ns.name, &["chassis", "power", "status"]);
    assert!(out.contains("is off"), "{out}");

    // Suspend and resume at the switch port: snmpget in the namespace reads ifAdminStatus.
    let admin = |snmp: &common::snmpsim::SnmpSim| snmp.snmpget("switch48", &format!("1.3.6.1.2.1.2.2.1.7.{idx}"));
    let t = run(&s, srv, "suspend").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(admin(&snmp), "2", "the port is down");
    let t = run(&s, srv, "resume").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(admin(&snmp), "1", "the port is up again");
    assert!(site_calls(&s).await >= 6.0, "the calls went through the site");
    assert_eq!(s.get(&format!("/dci/v3/site/{site_id}")).await["calls_in_flight"], 0);

    // Diagnostics of a machine at the site: its BMC on the namespace's loopback, its
    // network boot from the site's netboot service, its agent's reports relayed by the
    // site to the central.
    s.post("/dci/v3/os_template", json!({"name": "Diag", "type": "diag"})).await;
    let machine = s
        .post(
            "/dci/v3/server",
            json!({"name": "r-vm", "location_id": loc, "mac": vm.mac,
                   "ipmi": {"address": vm.bmc_address(), "type": "IPMI v2(lanplus)",
                            "user": common::vdc::BMC_USER, "password": common::vdc::BMC_PASSWORD}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let body = json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "none"});
    let task = s.post(&format!("/dci/v3/server/{machine}/operation_diag"), body).await["task"].as_i64().unwrap();
    let t = common::lab::wait_long(&s, task, 180).await;
    assert_eq!(t["status"], "complete", "{t}\nconsole:\n{}\nsite:\n{}", vm.console(), site.log());
    let server = s.get(&format!("/dci/v3/server/{machine}")).await;
    let disks = server["hardware_info"]["disks"].as_array().map_or(0, Vec::len);
    assert_eq!(disks, 2, "the machine's hardware reached the central: {server}");
    assert!(site.log().contains("netboot prepared"), "the site's netboot service booted it: {}", site.log());

    // A revoked credential is refused at once: the site stops, saying why.
    s.post(&format!("/dci/v3/site/{site_id}/revoke"), json!({})).await;
    let (status, log) = site.exited(Duration::from_secs(20));
    assert!(!status.success() && log.contains("refused the site's credential"), "{status}: {log}");
    s.stop().await;
}

/// A site not connected fails its locations' calls with a clear message while a
/// direct location works; it reconnects with its kept credential and the next task
/// completes. Its status follows.
async fn a_site_that_goes_away_and_comes_back(db: Db) {
    let s = central(db, "127.0.0.1").await;
    let fp = fingerprint(&s);
    let near = s.post("/dci/v3/location", json!({"name": "Here"})).await["id"].as_i64().unwrap();
    let far = s.post("/dci/v3/location", json!({"name": "There"})).await["id"].as_i64().unwrap();
    let direct = fake_server(&s, near, "here-1", "bmc-here-1").await;
    let remote = fake_server(&s, far, "there-1", "bmc-there-1").await;
    let created = s.post("/dci/v3/site", json!({"name": "there", "description": "DC 2", "locations": [far]})).await;
    let (id, secret) = (created["id"].as_i64().unwrap(), created["enrollment_secret"].as_str().unwrap().to_owned());
    let listed = s.get("/dci/v3/site").await;
    assert_eq!(listed["list"][0]["locations"], json!([far]), "{listed}");
    assert_eq!(listed["list"][0]["enrolled"], false);
    assert!(listed["list"][0]["enrollment_expires"].is_string(), "{listed}");
    // A location is served by one site at most.
    let (st, v) = s.call(Method::POST, "/dci/v3/site", Some(json!({"name": "other", "locations": [far]}))).await;
    assert_error(st, &v, StatusCode::CONFLICT);
    let (st, v) = s.call(Method::POST, "/dci/v3/site", Some(json!({"name": "other", "locations": [9999]}))).await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);

    // Never connected: the remote task fails at once, saying so; the direct one completes.
    let t = run(&s, remote, "power_on").await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(t["status_info"]["message"].as_str().unwrap().contains("site there has never connected"), "{t}");
    assert_eq!(t["status_info"]["kind"], "unreachable", "{t}");
    assert_eq!(run(&s, direct, "power_on").await["status"], "complete");

    // A wrong fingerprint: the site refuses the central before it sends anything.
    let mut wrong = Site::start(None, &s, &"ab".repeat(32), common::tempdir::Dir::new(), Some(&secret));
    let (status, log) = wrong.exited(Duration::from_secs(20));
    assert!(!status.success() && log.contains(dcim_tls::NOT_PINNED), "{status}: {log}");
    assert_eq!(s.get(&format!("/dci/v3/site/{id}")).await["enrolled"], false, "the secret was not sent");

    let site = Site::start(None, &s, &fp, common::tempdir::Dir::new(), Some(&secret));
    let status = until_connected(&s, id, true, Some(&site)).await;
    assert!(status["connected_since"].is_string() && status["version"].is_string(), "{status}");
    assert!(metrics(&s).await.contains("dcim_site_connected{site=\"there\"} 1"));
    // The secret worked once.
    let (st, v) = s.call(Method::POST, "/dci/v3/site/enroll", Some(json!({"secret": secret}))).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    let before = site_calls(&s).await;
    let t = run(&s, remote, "power_on").await;
    assert_eq!(t["status"], "complete", "{t}\n{}", site.log());
    assert!(site_calls(&s).await > before, "the calls went through the site");
    assert_eq!(s.get(&format!("/dci/v3/server/{remote}")).await["power_status"], "on");

    // The site dies: after the central's 4 s its calls fail, naming since when.
    let state = site.kill();
    let status = until_connected(&s, id, false, None).await;
    assert!(status["connected_since"].is_null() && status["last_seen"].is_string(), "{status}");
    assert!(metrics(&s).await.contains("dcim_site_connected{site=\"there\"} 0"));
    let t = run(&s, remote, "power_off").await;
    assert_eq!(t["status"], "fail", "{t}");
    let msg = t["status_info"]["message"].as_str().unwrap();
    assert!(msg.contains("site there not connected since 20"), "{msg}");
    assert_eq!(run(&s, direct, "power_off").await["status"], "complete", "other locations are unaffected");

    // It comes back with its kept credential and the next task completes.
    let site = Site::start(None, &s, &fp, state, None);
    until_connected(&s, id, true, Some(&site)).await;
    let t = run(&s, remote, "power_off").await;
    assert_eq!(t["status"], "complete", "{t}\n{}", site.log());

    // Another protocol version is refused, naming both.
    let credential = std::fs::read_to_string(site.dir.0.join("site-credential")).unwrap();
    let r = s
        .client
        .post(s.url("/dci/v3/site/link/poll"))
        .bearer_auth(credential.trim())
        .header("x-dcim-site-protocol", "2.0")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::CONFLICT);
    let msg = v["error"]["msg"].as_str().unwrap();
    assert!(msg.contains("\"2.0\"") && msg.contains("1.0"), "{msg}");
    // A user's session is not a site's credential.
    let r = s
        .client
        .post(s.url("/dci/v3/site/link/poll"))
        .bearer_auth(&s.admin_token)
        .header("x-dcim-site-protocol", "1.0")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);

    // The location leaves the site: its devices are reached directly again.
    s.post(&format!("/dci/v3/site/{id}"), json!({"locations": []})).await;
    let before = site_calls(&s).await;
    assert_eq!(run(&s, remote, "power_on").await["status"], "complete");
    assert_eq!(site_calls(&s).await, before, "nothing went to the site");
    drop(site);
    s.stop().await;
}

on_both_backends!(a_site_that_goes_away_and_comes_back);

/// Location "Far", site "far" serving it (its id and enrollment secret), and a
/// diagnostics template.
async fn far_site(s: &TestServer) -> (i64, i64, String) {
    let loc = s.post("/dci/v3/location", json!({"name": "Far"})).await["id"].as_i64().unwrap();
    let created = s.post("/dci/v3/site", json!({"name": "far", "locations": [loc]})).await;
    s.post("/dci/v3/os_template", json!({"name": "Diag", "type": "diag"})).await;
    (loc, created["id"].as_i64().unwrap(), created["enrollment_secret"].as_str().unwrap().to_owned())
}

/// A site killed and started again while a diagnostics task waits for its agent: the
/// boot the site held, and the fake machine the agent ran on, are gone with the
/// process. The central sees the new process at its first poll; the task prepares the
/// boot again, boots the server again, and completes, saying why in its steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_restart_prepares_its_boots_again() {
    let s = central_with(Db::Sqlite, "127.0.0.1", |c| c.agent_timeout_secs = 60).await;
    let fp = fingerprint(&s);
    let (loc, site_id, secret) = far_site(&s).await;
    let srv = s
        .post(
            "/dci/v3/server",
            json!({"name": "far-1", "location_id": loc, "mac": "52:54:02:00:00:01",
                   "ipmi": {"address": "bmc-far-1", "type": "fake", "user": "u", "password": "p"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    // Every fake call, the agent's report included, takes a second: the site is killed
    // while the agent is still to report.
    let dir = common::tempdir::Dir::new();
    let calls = dir.0.join("calls.log");
    let config = format!("fake_delay_ms = 1000\nfake_call_log = {:?}\n", calls.display().to_string());
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let more = ["--agent-listen", relay.as_str()];
    let site = Site::start_with(None, &s.base, &fp, dir, Some(&secret), Some(&config), &more);
    until_connected(&s, site_id, true, Some(&site)).await;

    let body = json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "none"});
    let task = s.post(&format!("/dci/v3/server/{srv}/operation_diag"), body).await["task"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = s.get(&format!("/dci/v3/task/{task}")).await;
        if t["progress_info"][2]["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline && t["status"] != "fail", "{t}\n{}", site.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let boots = |log: &str| log.lines().filter(|l| *l == "boot_prepare boot:52:54:02:00:00:01").count();
    assert_eq!(boots(&std::fs::read_to_string(&calls).unwrap()), 1);
    let state = site.kill();
    let site = Site::start_with(None, &s.base, &fp, state, None, Some(&config), &more);

    // The steps that run again say why while they run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = s.get(&format!("/dci/v3/task/{task}")).await;
        let steps = t["progress_info"].as_array().unwrap();
        if steps.iter().any(|p| p["message"] == "again: site far restarted after it prepared the network boot") {
            break;
        }
        let ended = t["status"] == "complete" || t["status"] == "fail";
        assert!(Instant::now() < deadline && !ended, "the steps did not say why they ran again: {t}\n{}", site.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = wait_task(&s, task).await;
    assert_eq!(t["status"], "complete", "{t}\n{}", site.log());
    let log = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(boots(&log), 2, "the new process prepared the boot again: {log}");
    drop(site);
    s.stop().await;
}

/// A `dcim serve` process of the central tier on `s`'s database (its key, its
/// certificate), started from the binary so it can be killed.
fn tier_process(s: &TestServer, dir: &Path) -> common::Served {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ndatabase_url = {:?}\nsecret_key_file = {:?}\n\
         tls_cert = {:?}\ntls_key = {:?}\nlog = \"warn\"\ntask_lease_secs = 3\ntask_poll_ms = 20\n\
         task_backoff_ms = 10\ndevice_timeout_ms = 5000\npower_timeout_secs = 30\nagent_timeout_secs = 60\n\
         power_poll_secs = 0\nport_poll_secs = 0\nrate_limit_per_sec = 0\n",
        dir.display().to_string(),
        s.cfg.database_url(),
        s.cfg.secret_key_path().display().to_string(),
        s.cfg.tls_cert.as_ref().unwrap().display().to_string(),
        s.cfg.tls_key.as_ref().unwrap().display().to_string(),
    );
    std::fs::write(dir.join("dcim.toml"), toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcim"));
    cmd.arg("--config").arg(dir.join("dcim.toml")).arg("serve");
    common::Served::start(cmd)
}

/// The action calls each device got, from the site's fake lab's call log: reads
/// (status, ports, outlets) left out, and the boot's cleanup, which a task that ends
/// twice over a crash may repeat (it removes what is already gone).
fn actions(log: &str) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for l in log.lines() {
        let Some((op, device)) = l.split_once(' ') else { continue };
        if matches!(
            op,
            "power_status" | "switch_ports" | "oper_status" | "pdu_outlets" | "outlet_status" | "boot_cleanup"
        ) {
            continue;
        }
        out.entry(device.to_owned()).or_default().push(op.to_owned());
    }
    for ops in out.values_mut() {
        ops.sort();
    }
    out
}

/// Three processes on one PostgreSQL, the devices behind a site (the fake lab with a
/// delay, so the device calls of every process meet one set of devices and are
/// counted in one place). 1,000 tasks (power on, power reset, suspend, diagnostics)
/// are started across the three; the process the site polls is killed with SIGKILL
/// while they run. The site moves to another process; the dead process's tasks are
/// resumed by the others. None is lost or stuck, every one completes once, and every
/// device got exactly the action calls one clean run of its task makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_process_killed_under_load_loses_nothing() {
    const SERVERS: usize = 1000;
    let s = central_with(Db::Postgres, "127.0.0.1", |c| {
        c.task_lease_secs = 3;
        // One admin's token drives the whole test.
        c.rate_limit_per_sec = 0;
        c.power_timeout_secs = 30;
        c.agent_timeout_secs = 60;
    })
    .await;
    let (b_dir, c_dir) = (common::tempdir::Dir::new(), common::tempdir::Dir::new());
    let b = tier_process(&s, &b_dir.0);
    let c = tier_process(&s, &c_dir.0);
    let fp = fingerprint(&s);
    let (loc, site_id, secret) = far_site(&s).await;
    // The other processes read the new routes within half a second.
    tokio::time::sleep(dcim_tasks::sites::ROUTES_REFRESH * 2).await;
    let site_dir = common::tempdir::Dir::new();
    let calls = site_dir.0.join("calls.log");
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let config = format!("fake_delay_ms = 20\nfake_call_log = {:?}\n", calls.display().to_string());
    // The site polls B first, then C, then A.
    let centrals = format!("{},{},{}", b.url, c.url, s.base);
    let more = ["--agent-listen", relay.as_str()];
    let site = Site::start_with(None, &centrals, &fp, site_dir, Some(&secret), Some(&config), &more);
    until_connected(&s, site_id, true, Some(&site)).await;

    // Servers: a fake BMC each, a fake switch of its own for the suspended ones.
    let kinds = ["power_on", "power_reset", "suspend", "operation_diag"];
    let make = |i: usize| {
        let (client, base, token) = (s.client.clone(), s.base.clone(), s.admin_token.clone());
        async move {
            let post = |path: String, body: Value| {
                let (client, base, token) = (client.clone(), base.clone(), token.clone());
                async move {
                    let r = client.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send().await.unwrap();
                    let (st, v) = common::json_of(r).await;
                    assert!(st.is_success(), "{path}: {st} {v}");
                    v
                }
            };
            let mac = format!("52:54:01:00:{:02x}:{:02x}", i / 256, i % 256);
            let srv = post(
                "/dci/v3/server".into(),
                json!({"name": format!("k-{i}"), "location_id": loc, "mac": mac,
                       "ipmi": {"address": format!("bmc-{i}"), "type": "fake", "user": "u", "password": "p"}}),
            )
            .await["id"]
                .as_i64()
                .unwrap();
            if kinds[i % 4] == "suspend" {
                let sw = post(
                    "/dci/v3/switch".into(),
                    json!({"name": format!("sw-{i}"), "location_id": loc, "ip": format!("sw-{i}"), "protocol": "fake"}),
                )
                .await["id"]
                    .as_i64()
                    .unwrap();
                let r = client
                    .get(format!("{base}/dci/v3/switch/{sw}/port?limit=0,1"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let ports: Value = r.json().await.unwrap();
                post(format!("/dci/v3/server/{srv}/switch_connection"), json!({"port": ports["list"][0]["id"]})).await;
            }
            (i, srv, mac)
        }
    };
    let body = |kind: &str| match kind {
        "operation_diag" => json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "none"}),
        _ => json!({}),
    };
    // One clean run of each kind first: the calls each makes.
    let mut expected = std::collections::HashMap::new();
    for (i, kind) in kinds.iter().enumerate() {
        // Server SERVERS + i is of kind i (i % 4).
        let (n, srv, mac) = make(SERVERS + i).await;
        let t = run_with(&s, srv, kind, body(kind)).await;
        assert_eq!(t["status"], "complete", "{t}\n{}", site.log());
        let log = actions(&std::fs::read_to_string(&calls).unwrap());
        let mine = |d: &str| log.get(d).cloned().unwrap_or_default();
        expected.insert(*kind, (mine(&format!("bmc-{n}")), mine(&format!("sw-{n}")), mine(&format!("boot:{mac}"))));
    }

    let mut made = tokio::task::JoinSet::new();
    let mut servers = vec![];
    for i in 0..SERVERS {
        made.spawn(make(i));
        if made.len() >= 8 {
            servers.push(made.join_next().await.unwrap().unwrap());
        }
    }
    servers.extend(made.join_all().await);
    servers.sort();

    // Every task started, round robin over the three processes.
    let bases = [b.url.clone(), c.url.clone(), s.base.clone()];
    let mut started = tokio::task::JoinSet::new();
    let mut tasks = std::collections::HashMap::new();
    for (i, srv, _) in servers.clone() {
        let (client, base, token, kind) = (s.client.clone(), bases[i % 3].clone(), s.admin_token.clone(), kinds[i % 4]);
        let body = body(kind);
        started.spawn(async move {
            let r = client.post(format!("{base}/dci/v3/server/{srv}/{kind}")).bearer_auth(&token).json(&body).send();
            let (st, v) = common::json_of(r.await.unwrap()).await;
            assert!(st.is_success(), "{kind} on {srv}: {st} {v}");
            (i, v["task"].as_i64().unwrap())
        });
        if started.len() >= 16 {
            let (i, t) = started.join_next().await.unwrap().unwrap();
            tasks.insert(i, t);
        }
    }
    tasks.extend(started.join_all().await);

    // B dies once a fifth have completed.
    let count = |status: &'static str| {
        let s = &s;
        async move {
            let q = format!("/dci/v3/task?where={}&limit=0,1", common::enc(&format!("status EQ '{status}'")));
            s.get(&q).await["size"].as_i64().unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while count("complete").await < (SERVERS / 5 + 4) as i64 {
        if Instant::now() > deadline {
            let running = s.get(&format!("/dci/v3/task?where={}&limit=0,3", common::enc("status NE 'complete'"))).await;
            let (done, pending) = (count("complete").await, count("pending").await);
            panic!("{done} complete, {pending} pending after 120 s; others: {running}\n{}", site.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_at = Instant::now();
    b.crash();

    // Every task ends, complete, within the bound.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done = count("complete").await + count("fail").await + count("canceled").await;
        if done >= (SERVERS + 4) as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} tasks ended; the others are stuck\n{}",
            done,
            SERVERS + 4,
            site.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = killed_at.elapsed().as_secs_f64();
    println!("{SERVERS} tasks over three processes: the last ended {after:.1} s after one was killed");
    let failed = s.get(&format!("/dci/v3/task?where={}&limit=0,5", common::enc("status NE 'complete'"))).await;
    assert_eq!(failed["size"], 0, "every task completed: {failed}");
    let recovered = s.get(&format!("/dci/v3/task?where={}&limit=0,1", common::enc("status EQ 'complete'"))).await;
    assert_eq!(recovered["size"], (SERVERS + 4) as i64);

    // Exactly the calls of one clean run, device by device.
    let log = actions(&std::fs::read_to_string(&calls).unwrap());
    let mut twice = vec![];
    for (i, _, mac) in &servers {
        let (bmc, sw, boot) = &expected[kinds[i % 4]];
        let got = |d: &str| log.get(d).cloned().unwrap_or_default();
        for (device, want) in [(format!("bmc-{i}"), bmc), (format!("sw-{i}"), sw), (format!("boot:{mac}"), boot)] {
            let have = got(&device);
            if &have != want {
                let t = s.get(&format!("/dci/v3/task/{}", tasks[i])).await;
                twice.push(format!("{device} ({}): {have:?}, one run makes {want:?}; {t}", kinds[i % 4]));
            }
        }
    }
    assert!(
        twice.is_empty(),
        "{} devices got other calls than one run's: {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
    let status = s.get(&format!("/dci/v3/site/{site_id}")).await;
    assert_eq!(status["connected"], true, "the site moved to another process: {status}");
    c.stop();
    drop(site);
    s.stop().await;
}

async fn run_with(s: &TestServer, srv: i64, op: &str, body: Value) -> Value {
    let v = s.post(&format!("/dci/v3/server/{srv}/{op}"), body).await;
    let task = v["task"].as_i64().unwrap_or_else(|| panic!("{op}: {v}"));
    wait_task(s, task).await
}
