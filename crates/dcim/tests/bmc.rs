//! Real BMC drivers through the HTTP API: IPMI v2.0 (lanplus) and v1.5 against
//! OpenIPMI's `ipmi_sim`, checked independently with `ipmitool`; Redfish against
//! `sushy-emulator`; a slow and a lossy BMC on pyghmi; wrong credentials and closed
//! ports. Every simulator listens on 127.0.0.1 only.

mod common;

use std::time::{Duration, Instant};

use common::sims::{BmcState, FakeBmc, IpmiSim, Sushy};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A server in a fresh location whose BMC is `kind` at `address`.
async fn bmc_server(s: &TestServer, kind: &str, address: &str, user: &str, password: &str) -> i64 {
    let loc = s.post("/dci/v3/location", json!({"name": format!("DC-{}", rand::random::<u32>())})).await;
    let v = s
        .post(
            "/dci/v3/server",
            json!({
                "name": format!("bmc-{}", rand::random::<u32>()), "location_id": loc["id"],
                "ipmi": {"address": address, "type": kind, "user": user, "password": password}
            }),
        )
        .await;
    v["id"].as_i64().unwrap_or_else(|| panic!("server not created: {v}"))
}

async fn run(s: &TestServer, srv: i64, op: &str, body: Value) -> Value {
    let (st, v) = s.call(reqwest::Method::POST, &format!("/dci/v3/server/{srv}/{op}"), Some(body)).await;
    assert_eq!(st, StatusCode::OK, "{op}: {v}");
    wait_task(s, v["task"].as_i64().unwrap()).await
}

fn message(t: &Value) -> String {
    t["status_info"]["message"].as_str().unwrap_or_default().to_owned()
}

async fn power_status(s: &TestServer, srv: i64) -> String {
    s.get(&format!("/dci/v3/server/{srv}")).await["power_status"].as_str().unwrap().to_owned()
}

async fn ipmi_power_and_boot(db: Db, kind: &str) {
    let bmc = IpmiSim::start("admin", "bmc-secret-1");
    let s = TestServer::start_with(db, fast_tasks).await;
    let srv = bmc_server(&s, kind, &bmc.address(), "admin", "bmc-secret-1").await;

    let t = run(&s, srv, "power_on", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(bmc.power());
    let (ok, out) = bmc.ipmitool(&["chassis", "power", "status"]);
    assert!(ok && out.contains("Chassis Power is on"), "ipmitool sees: {out}");
    assert_eq!(power_status(&s, srv).await, "on");

    let t = run(&s, srv, "power_reset", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(bmc.log().contains("set reset 1"), "a hard reset reached the BMC: {}", bmc.log());

    let t = run(&s, srv, "power_off", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    let (_, out) = bmc.ipmitool(&["chassis", "power", "status"]);
    assert!(out.contains("Chassis Power is off"), "ipmitool sees: {out}");
    assert_eq!(power_status(&s, srv).await, "off");

    // A reset of a server that is off powers it on.
    let t = run(&s, srv, "power_reset", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(bmc.power());

    let t = run(&s, srv, "boot_device", json!({"device": "pxe"})).await;
    assert_eq!(t["status"], "complete", "{t}");
    let (_, out) = bmc.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(out.contains("Force PXE"), "ipmitool sees: {out}");
    assert_eq!(bmc.boot(), "pxe");
    // ipmi_sim keeps the device only (not the persistence or EFI flags): see sims/ipmi/chassis.sh.
    let t = run(&s, srv, "boot_device", json!({"device": "disk", "persistent": true})).await;
    assert_eq!(t["status"], "complete", "{t}");
    let (_, out) = bmc.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(out.contains("Hard-Drive"), "ipmitool sees: {out}");
    assert_eq!(bmc.boot(), "default", "ipmi_sim's name for 'force boot from hard disk'");
    s.stop().await;
}

async fn lanplus(db: Db) {
    ipmi_power_and_boot(db, "IPMI v2(lanplus)").await
}

async fn ipmi15(db: Db) {
    ipmi_power_and_boot(db, "IPMI v1.5/v2").await
}

on_both_backends!(lanplus, ipmi15);

/// Wrong password, unknown user, closed port: each fails its own task with a message
/// that says what to fix, and nothing waits past the configured timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmi_errors_name_the_cause() {
    let bmc = IpmiSim::start("admin", "bmc-secret-1");
    let s = TestServer::start_with(Db::Sqlite, |c| {
        fast_tasks(c);
        c.ipmi_retry_ms = 200;
        c.ipmi_attempts = 2;
        c.task_max_attempts = 2;
    })
    .await;
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let cases = [
        ("IPMI v2(lanplus)", bmc.address(), "admin", "wrong-password", "wrong password for the user 'admin'"),
        ("IPMI v2(lanplus)", bmc.address(), "nobody", "bmc-secret-1", "does not know the user 'nobody'"),
        ("IPMI v1.5/v2", bmc.address(), "admin", "wrong-password", "did not accept the login of 'admin'"),
        ("IPMI v2(lanplus)", closed_addr.clone(), "admin", "x", "nothing listens on that UDP port"),
    ];
    for (kind, address, user, password, expected) in cases {
        let srv = bmc_server(&s, kind, &address, user, password).await;
        let started = Instant::now();
        let t = run(&s, srv, "power_on", json!({})).await;
        assert_eq!(t["status"], "fail", "{kind} {user}: {t}");
        assert!(message(&t).contains(expected), "{kind} {user}: {}", message(&t));
        assert!(started.elapsed() < Duration::from_secs(10), "{kind} {user}: took {:?}", started.elapsed());
        assert_eq!(power_status(&s, srv).await, "unknown");
    }
    assert!(!bmc.power(), "no failed login changed the power");
    s.stop().await;
}

/// A BMC that drops every other datagram still gets its commands (each lost one is
/// sent again); a BMC slower than the device timeout fails with a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_and_slow_bmcs() {
    let lossy = FakeBmc::start("admin", "secret", None, Some(2));
    let slow = FakeBmc::start("admin", "secret", Some(Duration::from_secs(3)), None);
    let s = TestServer::start_with(Db::Sqlite, |c| {
        fast_tasks(c);
        c.ipmi_retry_ms = 100;
        c.ipmi_attempts = 4;
        c.task_max_attempts = 1;
    })
    .await;
    let a = bmc_server(&s, "IPMI v2(lanplus)", &lossy.address(), "admin", "secret").await;
    let t = run(&s, a, "power_on", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(lossy.power(), "the lossy BMC is on");
    assert!(lossy.log().contains("drop datagram"), "datagrams were lost: {}", lossy.log());
    s.stop().await;

    // Datagrams wait longer than the whole call may take: the engine's timeout ends it.
    let s = TestServer::start_with(Db::Sqlite, |c| {
        fast_tasks(c);
        c.ipmi_retry_ms = 1000;
        c.ipmi_attempts = 4;
        c.device_timeout_ms = 1500;
        c.task_max_attempts = 2;
    })
    .await;
    let b = bmc_server(&s, "IPMI v2(lanplus)", &slow.address(), "admin", "secret").await;
    let started = Instant::now();
    let t = run(&s, b, "power_on", json!({})).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(message(&t).contains("did not answer within 1500 ms"), "{}", message(&t));
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    s.stop().await;
}

/// The poller finds a power change made behind dcim's back, and marks a BMC that
/// stopped answering `unknown` with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_follows_real_bmcs() {
    let up = IpmiSim::start("admin", "secret");
    let gone = IpmiSim::start("admin", "secret");
    let s = TestServer::start_with(Db::Sqlite, |c| {
        fast_tasks(c);
        c.power_poll_secs = 1;
        c.ipmi_retry_ms = 200;
        c.ipmi_attempts = 2;
    })
    .await;
    let a = bmc_server(&s, "IPMI v2(lanplus)", &up.address(), "admin", "secret").await;
    let b = bmc_server(&s, "IPMI v2(lanplus)", &gone.address(), "admin", "secret").await;
    let (ok, out) = up.ipmitool(&["chassis", "power", "on"]);
    assert!(ok, "{out}");
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let sa = s.get(&format!("/dci/v3/server/{a}")).await;
        let sb = s.get(&format!("/dci/v3/server/{b}")).await;
        let reason = sb["ipmi"]["status_info"]["message"].as_str().unwrap_or_default().to_owned();
        if sa["power_status"] == "on" && sb["power_status"] == "unknown" && !reason.is_empty() {
            assert!(reason.contains("nothing listens") || reason.contains("did not answer"), "{reason}");
            break;
        }
        assert!(Instant::now() < deadline, "poller did not catch up: {sa} {sb}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

async fn redfish(db: Db) {
    let node = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
    let other = "38947555-7742-4c0a-bbbb-111111111112";
    let emu = Sushy::start("admin", "password", &[(node, "node-1", false), (other, "node-2", true)]);
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        // sushy's fake driver applies a power change 1 to 11 s after it is asked.
        c.power_timeout_secs = 40;
    })
    .await;
    let address = format!("{}{}", emu.address(), emu.system_path(node));
    let srv = bmc_server(&s, "redfish", &address, "admin", "password").await;

    let t = run(&s, srv, "power_on", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(emu.system(node)["PowerState"], "On");
    assert_eq!(emu.system(other)["PowerState"], "On", "the other system is untouched");

    let t = run(&s, srv, "boot_device", json!({"device": "pxe"})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(emu.system(node)["Boot"]["BootSourceOverrideTarget"], "Pxe");
    let t = run(&s, srv, "boot_device", json!({"device": "disk", "persistent": true})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(emu.system(node)["Boot"]["BootSourceOverrideTarget"], "Hdd");

    let t = run(&s, srv, "power_off", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(emu.system(node)["PowerState"], "Off");
    assert_eq!(power_status(&s, srv).await, "off");

    // Without the system's path a BMC with two systems is ambiguous; a wrong password is named.
    let vague = bmc_server(&s, "redfish", &emu.address(), "admin", "password").await;
    let t = run(&s, vague, "power_on", json!({})).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(message(&t).contains("manages 2 systems"), "{}", message(&t));
    let wrong = bmc_server(&s, "redfish", &address, "admin", "nope").await;
    let t = run(&s, wrong, "power_on", json!({})).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(message(&t).contains("refused the user 'admin' or its password"), "{}", message(&t));
    s.stop().await;
}

on_both_backends!(redfish);

/// A bad Redfish address is refused when the server is written, not when it is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_addresses_are_checked() {
    let s = TestServer::start(Db::Sqlite).await;
    let loc = s.post("/dci/v3/location", json!({"name": "DC-1"})).await;
    for bad in ["ftp://bmc", "https://bmc/other/path"] {
        let (st, v) = s
            .call(
                reqwest::Method::POST,
                "/dci/v3/server",
                Some(json!({"name": "x", "location_id": loc["id"], "ipmi": {"address": bad, "type": "redfish"}})),
            )
            .await;
        let msg = assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg.contains("ipmi.address"), "{bad}: {v}");
    }
    s.stop().await;
}

/// What the API does not reach: Get Device ID (proves address and credentials), soft
/// shutdown and power cycle, on both session kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmi_client_commands() {
    use dcim_drivers::PowerDriver;
    use dcim_drivers::ipmi::{Ipmi, Timing};
    let bmc = IpmiSim::start("admin", "secret");
    let ipmi = std::sync::Arc::new(Ipmi::new(Timing { attempt: Duration::from_millis(300), attempts: 3 }));
    for v15 in [false, true] {
        let d = ipmi.bmc(&bmc.address(), "admin", "secret", v15).unwrap();
        let id = d.device_id().await.unwrap();
        assert_eq!((id.manufacturer, id.product, id.ipmi_version.as_str()), (4753, 0x0f02, "2.0"), "{id:?}");
        assert_eq!(id.firmware, "9.08");
        d.on().await.unwrap();
        d.soft_off().await.unwrap();
        assert!(!bmc.power(), "soft shutdown reached the hook: {}", bmc.log());
        d.on().await.unwrap();
        d.cycle().await.unwrap();
        assert!(bmc.log().contains("set shutdown 1"), "{}", bmc.log());
        let wrong = ipmi.bmc(&bmc.address(), "admin", "wrong", v15).unwrap();
        let e = wrong.device_id().await.unwrap_err();
        assert!(matches!(e, dcim_drivers::DriverError::Auth(_)), "{e}");
    }
    let (_, out) = bmc.ipmitool(&["chassis", "power", "status"]);
    assert!(out.contains("Chassis Power is"), "{out}");
}

/// A BMC with a self-signed certificate: refused by default with a message that names
/// its fingerprint; trusted once that fingerprint is pinned in `ipmi.tls_fingerprint`
/// (and refused under a wrong pin); accepted without a pin only when `bmc_tls_verify`
/// is turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_certificate_policy() {
    use common::sims::SushyOptions;
    let node = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
    let opts = SushyOptions { https: true, ..SushyOptions::default() };
    let emu = Sushy::start_with("admin", "password", &[(node, "node-1", false)], opts);
    assert!(emu.address().starts_with("https://"), "{}", emu.address());
    // The fingerprint as the operator reads it off the certificate.
    let mut openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    openssl.stdin.take().unwrap().write_all(emu.cert_pem().unwrap().as_bytes()).unwrap();
    let out = String::from_utf8(openssl.wait_with_output().unwrap().stdout).unwrap();
    let pinned = out.trim().rsplit('=').next().unwrap().to_owned();
    assert_eq!(pinned.len(), 95, "{out}");

    // Verification on, the default.
    let s = TestServer::start_with(Db::Sqlite, |c| {
        fast_tasks(c);
        c.power_timeout_secs = 40;
    })
    .await;
    let srv = bmc_server(&s, "redfish", &emu.address(), "admin", "password").await;
    let t = run(&s, srv, "boot_device", json!({"device": "pxe"})).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(message(&t).contains("certificate is refused"), "{}", message(&t));
    assert!(message(&t).contains(&pinned.to_lowercase()), "the message names the fingerprint: {}", message(&t));
    // Pinned: trusted, and shown on the server.
    let (st, v) = s
        .call(
            reqwest::Method::POST,
            &format!("/dci/v3/server/{srv}"),
            Some(json!({"ipmi": {"address": emu.address(), "type": "redfish", "user": "admin",
                "password": "password", "tls_fingerprint": pinned}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["ipmi"]["tls_fingerprint"], pinned.to_lowercase());
    let t = run(&s, srv, "boot_device", json!({"device": "pxe"})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(emu.system(node)["Boot"]["BootSourceOverrideTarget"], "Pxe");
    // Another certificate's pin: refused, whoever signed it.
    let other = "00".repeat(32);
    let (st, v) = s
        .call(
            reqwest::Method::POST,
            &format!("/dci/v3/server/{srv}"),
            Some(json!({"ipmi": {"address": emu.address(), "type": "redfish", "user": "admin",
                "password": "password", "tls_fingerprint": other}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let t = run(&s, srv, "boot_device", json!({"device": "disk"})).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(message(&t).contains("is not the pinned one"), "{}", message(&t));
    // A pin that is not a SHA-256 is a 422, and nothing changes.
    let (st, v) = s
        .call(
            reqwest::Method::POST,
            &format!("/dci/v3/server/{srv}"),
            Some(json!({"ipmi": {"address": emu.address(), "type": "redfish", "tls_fingerprint": "ab:cd"}})),
        )
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["value"]["field"], "ipmi.tls_fingerprint");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["ipmi"]["tls_fingerprint"], ["00"; 32].join(":"));
    s.stop().await;

    // Verification off: any certificate of a BMC without a pin.
    let s = TestServer::start_with(Db::Sqlite, |c| {
        fast_tasks(c);
        c.power_timeout_secs = 40;
        c.bmc_tls_verify = false;
    })
    .await;
    let srv = bmc_server(&s, "redfish", &emu.address(), "admin", "password").await;
    let t = run(&s, srv, "boot_device", json!({"device": "pxe"})).await;
    assert_eq!(t["status"], "complete", "{t}");
    s.stop().await;
}

/// The boot flags reach the BMC: once or persistent, BIOS or EFI (ipmi_sim drops them,
/// the pyghmi BMC keeps them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_flags_reach_the_bmc() {
    let bmc = FakeBmc::start("admin", "secret", None, None);
    let s = TestServer::start_with(Db::Sqlite, fast_tasks).await;
    let srv = bmc_server(&s, "IPMI v2(lanplus)", &bmc.address(), "admin", "secret").await;
    let t = run(&s, srv, "boot_device", json!({"device": "pxe", "efi": true})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!((bmc.boot(), bmc.boot_flags()), ("pxe".to_owned(), vec!["valid".to_owned(), "efi".to_owned()]));
    let t = run(&s, srv, "boot_device", json!({"device": "disk", "persistent": true, "efi": false})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(
        (bmc.boot(), bmc.boot_flags()),
        ("default".to_owned(), vec!["valid".to_owned(), "persistent".to_owned()])
    );
    s.stop().await;
}
