//! SNMP switches and PDUs end to end against snmpsim, through HTTP: sync of a
//! 48-port switch and an APC PDU (v2c and v3), suspend and resume shutting and
//! opening real ports (read back with Debian's snmpget), power through a PDU outlet
//! with and without a BMC, the port poller, and each failure an operator must be
//! able to act on (wrong community, read-only community, wrong v3 key, no such
//! ifIndex, an agent that never answers) ending in the right status and message
//! within the configured timeouts. On SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::snmpsim::{SnmpSim, V3_SHA, V3_SHA256};
use common::{Db, TestServer, assert_error, fast_tasks, wait_task};
use dcim::Config;
use dcim_core::{DeviceProtocol, OutletStatus, PortStatus};
use dcim_drivers::{DeviceAccess, DriverError, Drivers};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const IF_ADMIN: &str = "1.3.6.1.2.1.2.2.1.7";
const IF_OPER: &str = "1.3.6.1.2.1.2.2.1.8";
const RPDU_STATE: &str = "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4";
const RPDU_COMMAND: &str = "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4";

/// SNMP waits of 300 ms, one retry; two attempts per step.
fn quick_snmp(c: &mut Config) {
    fast_tasks(c);
    c.snmp_timeout_ms = 300;
    c.snmp_retries = 1;
    c.task_max_attempts = 2;
}

/// The longest a failing step may take: every attempt's tries timing out, plus slack.
fn failure_budget(c: &Config) -> Duration {
    let per_try = Duration::from_millis(c.snmp_timeout_ms);
    per_try * (c.snmp_retries + 1) * (c.task_max_attempts as u32) + Duration::from_secs(3)
}

async fn location(s: &TestServer) -> i64 {
    s.post("/dci/v3/location", json!({"name": "DC-1"})).await["id"].as_i64().unwrap()
}

async fn switch(s: &TestServer, loc: i64, name: &str, addr: &str, snmp: Value) -> i64 {
    let protocol = if snmp.get("user").is_some() { "snmp_v3" } else { "snmp_v2c" };
    let body = json!({"name": name, "location_id": loc, "ip": addr, "protocol": protocol, "snmp": snmp});
    s.post("/dci/v3/switch", body).await["id"].as_i64().unwrap()
}

fn v3(user: (&str, &str, &str, &str), context: &str) -> Value {
    let (u, auth, a, x) = user;
    json!({"user": u, "auth_protocol": auth, "auth_password": a, "priv_protocol": "aes", "priv_password": x, "context": context})
}

async fn pdu(s: &TestServer, loc: i64, name: &str, addr: &str, community: &str) -> i64 {
    let body = json!({"name": name, "location_id": loc, "ip": addr, "protocol": "snmp_v2c", "model": "apc_rpdu",
                      "snmp": {"community": community}});
    s.post("/dci/v3/pdu", body).await["id"].as_i64().unwrap()
}

/// The port row of `index` on a switch (or outlet row on a PDU).
async fn port(s: &TestServer, what: &str, device: i64, index: i64) -> Value {
    s.get(&format!("/dci/v3/{what}/{device}/port?where=index%20EQ%20{index}")).await["list"][0].clone()
}

async fn server(s: &TestServer, loc: i64, name: &str, bmc: Option<&str>) -> i64 {
    let mut body = json!({"name": name, "location_id": loc});
    if let Some(b) = bmc {
        body["ipmi"] = json!({"address": b, "type": "fake", "user": "admin", "password": "pw"});
    }
    s.post("/dci/v3/server", body).await["id"].as_i64().unwrap()
}

async fn connect(s: &TestServer, srv: i64, sw: i64, index: i64, ipmi: bool) {
    let p = port(s, "switch", sw, index).await["id"].as_i64().unwrap();
    s.post(&format!("/dci/v3/server/{srv}/switch_connection"), json!({"port": p, "is_ipmi_connection": ipmi})).await;
}

async fn plug(s: &TestServer, srv: i64, pdu: i64, index: i64) {
    let p = port(s, "pdu", pdu, index).await["id"].as_i64().unwrap();
    s.post(&format!("/dci/v3/server/{srv}/pdu_connection"), json!({"port": p})).await;
}

async fn run(s: &TestServer, srv: i64, op: &str) -> Value {
    let v = s.post(&format!("/dci/v3/server/{srv}/{op}"), json!({})).await;
    wait_task(s, v["task"].as_i64().unwrap()).await
}

async fn switch_sync_suspend_resume(db: Db) {
    let sim = SnmpSim::start();
    let s = TestServer::start_with(db, quick_snmp).await;
    let loc = location(&s).await;
    let sw = switch(&s, loc, "sw1", &sim.addr, json!({"community": "switch48"})).await;
    assert_eq!(s.get(&format!("/dci/v3/switch/{sw}")).await["port_count"], 0, "read only by sync");
    let t = Instant::now();
    assert_eq!(s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await, json!({"id": sw}));
    let sync_time = t.elapsed();
    let ports = s.get(&format!("/dci/v3/switch/{sw}/port?limit=0,100")).await;
    assert_eq!(ports["size"], 48);
    let p1 = &ports["list"][0];
    assert_eq!(
        (p1["index"].clone(), p1["name"].clone(), p1["description"].clone(), p1["alias"].clone()),
        (json!(1), json!("Gi1/0/1"), json!("GigabitEthernet1/0/1"), json!(""))
    );
    assert_eq!(
        (p1["admin_status"].clone(), p1["oper_status"].clone(), p1["speed"].clone()),
        (json!("up"), json!("up"), json!(1000))
    );
    let p47 = &ports["list"][46];
    assert_eq!((p47["alias"].clone(), p47["speed"].clone()), (json!("uplink-core-1"), json!(10000)));
    let p41 = &ports["list"][40];
    assert_eq!((p41["admin_status"].clone(), p41["oper_status"].clone()), (json!("up"), json!("down")), "no cable");

    let pdu = pdu(&s, loc, "pdu1", &sim.addr, "pdu").await;
    s.post(&format!("/dci/v3/pdu/{pdu}/sync"), json!({})).await;
    let outlets = s.get(&format!("/dci/v3/pdu/{pdu}/port?limit=0,100")).await;
    assert_eq!(outlets["size"], 24);
    assert_eq!(
        (outlets["list"][2]["name"].clone(), outlets["list"][2]["power_status"].clone()),
        (json!("Outlet 3"), json!("up"))
    );

    // A server on ports 5 and 6 (6 is its BMC's) and on outlet 3.
    let srv = server(&s, loc, "srv-1", Some("bmc-1")).await;
    connect(&s, srv, sw, 5, false).await;
    connect(&s, srv, sw, 6, true).await;
    plug(&s, srv, pdu, 3).await;
    let before = s.get(&format!("/dci/v3/server/{srv}")).await;

    // Re-reading keeps connections and picks up what changed on the switch.
    sim.snmpset("switch48", "1.3.6.1.2.1.31.1.1.1.18.5", "s", "srv-1 eth0");
    s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await;
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["switch_connection"], before["switch_connection"]);
    let p5 = port(&s, "switch", sw, 5).await;
    assert_eq!((p5["alias"].clone(), p5["server"]["id"].clone()), (json!("srv-1 eth0"), json!(srv)));
    assert_eq!(s.get(&format!("/dci/v3/switch/{sw}/port")).await["size"], 48, "no duplicate rows");

    let t = run(&s, srv, "suspend").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["state"], "suspended");
    assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.5")), "2", "the port is shut on the switch");
    assert_eq!(sim.snmpget("switch48", &format!("{IF_OPER}.5")), "2");
    assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.6")), "1", "the BMC's port stays open");
    assert_eq!(port(&s, "switch", sw, 5).await["admin_status"], "down");

    let t = run(&s, srv, "resume").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["state"], "ok");
    assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.5")), "1");
    assert_eq!(port(&s, "switch", sw, 5).await["admin_status"], "up");
    assert!(sync_time < Duration::from_secs(5), "sync of 48 ports took {sync_time:?}");
    s.stop().await;
}

async fn switch_over_v3(db: Db) {
    let sim = SnmpSim::start();
    let s = TestServer::start_with(db, quick_snmp).await;
    let loc = location(&s).await;
    let sha = switch(&s, loc, "sw-sha", &sim.addr, v3(V3_SHA, "switch48")).await;
    let sha256 = switch(&s, loc, "sw-sha256", &sim.addr, v3(V3_SHA256, "switch48")).await;
    for sw in [sha, sha256] {
        s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await;
        assert_eq!(s.get(&format!("/dci/v3/switch/{sw}/port")).await["size"], 48);
    }
    let srv = server(&s, loc, "srv-1", None).await;
    connect(&s, srv, sha, 9, false).await;
    connect(&s, srv, sha256, 10, false).await;
    assert_eq!(run(&s, srv, "suspend").await["status"], "complete");
    assert_eq!(sim.snmpget_v3(V3_SHA, "switch48", &format!("{IF_ADMIN}.9")), "2");
    assert_eq!(
        sim.snmpget("switch48", &format!("{IF_ADMIN}.10")),
        "2",
        "v3 context and v2c community share the switch"
    );
    assert_eq!(run(&s, srv, "resume").await["status"], "complete");
    assert_eq!(sim.snmpget_v3(V3_SHA256, "switch48", &format!("{IF_ADMIN}.10")), "1");

    // A wrong key: the agent's USM turns the request down, and the message names the user.
    let (u, auth, _, x) = V3_SHA;
    s.post(&format!("/dci/v3/switch/{sha}"), json!({"snmp": v3((u, auth, "wrong-key-123", x), "switch48")})).await;
    let started = Instant::now();
    let (st, v) = s.call(Method::POST, &format!("/dci/v3/switch/{sha}/sync"), Some(json!({}))).await;
    let msg = assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE);
    assert!(msg.contains("SNMPv3 user 'admin'") && msg.contains("credentials"), "{msg}");
    assert!(started.elapsed() < failure_budget(&s.cfg), "{:?}", started.elapsed());
    let t = run(&s, srv, "suspend").await;
    assert_eq!(t["status"], "fail", "{t}");
    let info = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(info["state"], "suspend_error");
    let why = info["state_info"].as_str().unwrap();
    assert!(why.contains("switch sw-sha port Gi1/0/9 (ifIndex 9)") && why.contains("user 'admin'"), "{why}");
    s.stop().await;
}

async fn pdu_power(db: Db) {
    let sim = SnmpSim::start();
    let s = TestServer::start_with(db, quick_snmp).await;
    let loc = location(&s).await;
    let pdu = pdu(&s, loc, "pdu1", &sim.addr, "pdu").await;
    s.post(&format!("/dci/v3/pdu/{pdu}/sync"), json!({})).await;
    let state = |i: i64| sim.snmpget("pdu", &format!("{RPDU_STATE}.{i}"));

    // No BMC: the outlet is the power switch.
    let bare = server(&s, loc, "bare", None).await;
    plug(&s, bare, pdu, 3).await;
    let t = run(&s, bare, "power_off").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(state(3), "2");
    assert_eq!(s.get(&format!("/dci/v3/server/{bare}")).await["power_status"], "off");
    assert_eq!(port(&s, "pdu", pdu, 3).await["power_status"], "down");
    let t = run(&s, bare, "power_on").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(state(3), "1");
    assert_eq!(s.get(&format!("/dci/v3/server/{bare}")).await["power_status"], "on");

    // A BMC and an outlet: the BMC first; when it fails, the outlet.
    let both = server(&s, loc, "both", Some("bmc-both")).await;
    plug(&s, both, pdu, 4).await;
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-both", "op": "power_off", "times": 1})).await;
    let t = run(&s, both, "power_off").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(t["status_info"]["note"].as_str().unwrap().contains("powered off at the PDU"), "{t}");
    assert_eq!(state(4), "2");
    let t = run(&s, both, "power_on").await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(t["status_info"]["note"].as_str().unwrap().contains("PDU outlet"), "outlet on before the BMC: {t}");
    assert_eq!(state(4), "1");
    assert_eq!(s.get("/dci/v3/fake").await["machines"]["bmc-both"]["power"], "on");
    // With a BMC that works, the outlet is left alone.
    let t = run(&s, both, "power_off").await;
    assert_eq!((t["status"].clone(), state(4)), (json!("complete"), "1".to_owned()), "{t}");

    // An operator switches an outlet by hand, recorded with before and after.
    let o5 = port(&s, "pdu", pdu, 5).await["id"].as_i64().unwrap();
    let path = format!("/dci/v3/pdu/{pdu}/port/{o5}");
    let off = s.post(&path, json!({"power_status": "off"})).await;
    assert_eq!((off["id"].as_i64(), off["power_status"].as_str()), (Some(o5), Some("down")), "{off}");
    assert_eq!(state(5), "2");
    assert_eq!(port(&s, "pdu", pdu, 5).await["power_status"], "down");
    let q = common::enc("action EQ 'edit_pdu_port'");
    let rec = &s.get(&format!("/dci/v3/audit?where={q}")).await["list"][0];
    assert_eq!(rec["changes"]["power_status"], json!({"before": "up", "after": "down"}), "{rec}");
    assert_eq!(s.post(&path, json!({"power_status": "on"})).await["power_status"], "up");
    assert_eq!(state(5), "1");
    for body in [json!({"power_status": "sideways"}), json!({}), json!({"power_status": true})] {
        let (st, v) = s.call(Method::POST, &path, Some(body.clone())).await;
        assert_error(st, &v, StatusCode::BAD_REQUEST);
    }
    let (st, v) =
        s.call(Method::POST, &format!("/dci/v3/pdu/{pdu}/port/999999"), Some(json!({"power_status": "off"}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    s.add_user("c@example.com", "customer-pw-1", "@user").await;
    let customer = s.login("c@example.com", "customer-pw-1").await;
    let (st, v) = s.call_as(&customer, Method::POST, &path, Some(json!({"power_status": "off"}))).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    assert_eq!(state(5), "1", "nothing changed on the PDU");
    s.stop().await;
}

async fn failures_name_what_to_fix(db: Db) {
    let sim = SnmpSim::start();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap(); // receives, never answers
    let silent_addr = silent.local_addr().unwrap().to_string();
    let s = TestServer::start_with(db, quick_snmp).await;
    let budget = failure_budget(&s.cfg);
    let loc = location(&s).await;

    // An agent that never answers (or a wrong community: agents stay silent then too).
    for (name, addr, community) in [("sw-silent", silent_addr.as_str(), "switch48"), ("sw-wrong", &sim.addr, "nope")] {
        let sw = switch(&s, loc, name, addr, json!({"community": community})).await;
        let started = Instant::now();
        let (st, v) = s.call(Method::POST, &format!("/dci/v3/switch/{sw}/sync"), Some(json!({}))).await;
        let msg = assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE);
        assert!(msg.contains("did not answer") && msg.contains("community"), "{msg}");
        assert!(started.elapsed() < budget, "{name}: {:?}", started.elapsed());
    }

    // Ports read with the right community, written with the wrong one.
    let good = switch(&s, loc, "sw-good", &sim.addr, json!({"community": "switch48"})).await;
    let other = switch(&s, loc, "sw-other", &sim.addr, json!({"community": "switch48"})).await;
    for sw in [good, other] {
        s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await;
    }
    let srv = server(&s, loc, "srv-1", None).await;
    connect(&s, srv, good, 11, false).await;
    connect(&s, srv, other, 12, false).await;
    let cases = [
        ("nope", "did not answer", "gave up after 2 attempts"),
        ("switch48-ro", "does not let the community write ifAdminStatus.12", "write access"),
        ("switch8", "has no interface with ifIndex 12", "sync the switch"),
    ];
    for (community, what, hint) in cases {
        s.post(&format!("/dci/v3/switch/{other}"), json!({"snmp": {"community": community}})).await;
        let started = Instant::now();
        let t = run(&s, srv, "suspend").await;
        assert!(started.elapsed() < budget, "{community}: {:?}", started.elapsed());
        assert_eq!(t["status"], "fail", "{community}: {t}");
        assert_eq!(t["status_info"]["step"], "shut switch ports");
        let info = s.get(&format!("/dci/v3/server/{srv}")).await;
        assert_eq!(info["state"], "suspend_error", "{community}");
        let why = info["state_info"].as_str().unwrap();
        assert!(why.contains("switch sw-other port Gi1/0/12 (ifIndex 12)"), "names the switch and port: {why}");
        assert!(why.contains(what) && why.contains(hint), "{community}: {why}");
        // The port on the switch that works was shut all the same.
        assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.11")), "2");
        let t = run(&s, srv, "resume").await;
        assert_eq!(t["status"], "fail", "{t}");
        assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["state"], "resume_error");
        assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.11")), "1", "reopened on the switch that works");
    }
    assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.12")), "1", "nothing reached the other switch's port");
    s.stop().await;
}

/// An operator brings a switch port down and up through the API: the switch's
/// ifAdminStatus changes (read back with snmpget), the port row follows, the audit
/// trail keeps before and after; bad input, unknown ports, a customer and a switch
/// that refuses the write change nothing.
async fn operator_sets_a_port(db: Db) {
    let sim = SnmpSim::start();
    let s = TestServer::start_with(db, quick_snmp).await;
    let loc = location(&s).await;
    let sw = switch(&s, loc, "sw1", &sim.addr, json!({"community": "switch48"})).await;
    s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await;
    let p9 = port(&s, "switch", sw, 9).await["id"].as_i64().unwrap();
    let path = format!("/dci/v3/switch/{sw}/port/{p9}");
    let down = s.post(&path, json!({"admin_status": "down"})).await;
    assert_eq!((down["id"].as_i64(), down["admin_status"].as_str()), (Some(p9), Some("down")), "{down}");
    assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.9")), "2");
    assert_eq!(s.get(&path).await, down);
    let q = common::enc("action EQ 'edit_switch_port'");
    let rec = &s.get(&format!("/dci/v3/audit?where={q}")).await["list"][0];
    assert_eq!(rec["changes"]["admin_status"], json!({"before": "up", "after": "down"}), "{rec}");
    assert_eq!(s.post(&path, json!({"admin_status": "up"})).await["admin_status"], "up");
    assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.9")), "1");

    for body in [json!({"admin_status": "sideways"}), json!({}), json!({"admin_status": 1})] {
        let (st, v) = s.call(Method::POST, &path, Some(body.clone())).await;
        assert_error(st, &v, StatusCode::BAD_REQUEST);
    }
    let (st, v) =
        s.call(Method::POST, &format!("/dci/v3/switch/{sw}/port/999999"), Some(json!({"admin_status": "down"}))).await;
    assert!(assert_error(st, &v, StatusCode::NOT_FOUND).contains("port"), "{v}");
    let (st, v) = s.call(Method::GET, &format!("/dci/v3/switch/999999/port/{p9}"), None).await;
    assert!(assert_error(st, &v, StatusCode::NOT_FOUND).contains("switch 999999"), "{v}");
    s.add_user("c@example.com", "customer-pw-1", "@user").await;
    let customer = s.login("c@example.com", "customer-pw-1").await;
    let (st, v) = s.call_as(&customer, Method::POST, &path, Some(json!({"admin_status": "down"}))).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    s.post(&format!("/dci/v3/switch/{sw}"), json!({"snmp": {"community": "switch48-ro"}})).await;
    let (st, v) = s.call(Method::POST, &path, Some(json!({"admin_status": "down"}))).await;
    let msg = assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE);
    assert!(msg.contains("write"), "{msg}");
    assert_eq!(sim.snmpget("switch48", &format!("{IF_ADMIN}.9")), "1", "nothing changed on the switch");
    assert_eq!(s.get(&path).await["admin_status"], "up", "nor in dcim");
    s.stop().await;
}

/// The port poller brings changes made at the switch (or a cable pulled) into the
/// port rows, and outlet changes at the PDU into the outlet rows.
async fn port_poller(db: Db) {
    let sim = SnmpSim::start();
    let s = TestServer::start_with(db, |c| {
        quick_snmp(c);
        c.port_poll_secs = 1;
    })
    .await;
    let loc = location(&s).await;
    let sw = switch(&s, loc, "sw1", &sim.addr, json!({"community": "switch48"})).await;
    let pdu = pdu(&s, loc, "pdu1", &sim.addr, "pdu").await;
    s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await;
    s.post(&format!("/dci/v3/pdu/{pdu}/sync"), json!({})).await;
    sim.snmpset("switch48", &format!("{IF_OPER}.7"), "i", "2"); // cable pulled
    sim.snmpset("switch48", &format!("{IF_ADMIN}.8"), "i", "2"); // shut at the console
    sim.snmpset("pdu", &format!("{RPDU_COMMAND}.2"), "i", "2"); // outlet switched off at the PDU
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (p7, p8, o2) =
            (port(&s, "switch", sw, 7).await, port(&s, "switch", sw, 8).await, port(&s, "pdu", pdu, 2).await);
        let got =
            json!([p7["admin_status"], p7["oper_status"], p8["admin_status"], p8["oper_status"], o2["power_status"]]);
        if got == json!(["up", "down", "down", "down", "down"]) {
            break;
        }
        assert!(Instant::now() < deadline, "the poller did not bring the changes: {got}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

on_both_backends!(
    switch_sync_suspend_resume,
    switch_over_v3,
    pdu_power,
    failures_name_what_to_fix,
    port_poller,
    operator_sets_a_port
);

/// The drivers alone, against the simulator: what the HTTP tests do not reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_directly() {
    let sim = SnmpSim::start();
    let drivers = Drivers::new(Some(dcim_drivers::fake::FakeLab::new(Duration::ZERO)));
    let access = |secret: Value| DeviceAccess { address: sim.addr.clone(), secret: secret.to_string(), location: None };

    let sw = drivers.switch(DeviceProtocol::SnmpV2c, &access(json!({"community": "switch48"}))).unwrap();
    assert_eq!(sw.oper_status(41).await.unwrap(), PortStatus::Down);
    sw.set_admin(3, false).await.unwrap();
    assert_eq!(sw.oper_status(3).await.unwrap(), PortStatus::Down, "oper follows admin");
    let states = sw.port_states().await.unwrap();
    assert_eq!(states.len(), 48);
    assert_eq!((states[2].admin_status, states[2].oper_status), (PortStatus::Down, PortStatus::Down));
    let e = sw.oper_status(99).await.unwrap_err();
    assert!(matches!(&e, DriverError::Refused(m) if m.contains("no interface with ifIndex 99")), "{e}");
    let e = sw.set_admin(99, true).await.unwrap_err();
    assert!(matches!(&e, DriverError::Refused(m) if m.contains("no interface with ifIndex 99")), "{e}");

    // The wrong privacy key, and an unknown user.
    let (u, auth, a, _) = V3_SHA;
    for (user, key) in [(u, "wrong-priv-123"), ("nobody-here", "privpass123")] {
        let d = drivers.switch(DeviceProtocol::SnmpV3, &access(v3((user, auth, a, key), "switch48"))).unwrap();
        let e = d.ports().await.err().unwrap();
        assert!(matches!(&e, DriverError::Auth(m) if m.contains(&format!("user '{user}'"))), "{e}");
    }

    // Both APC families on the same PDU, reboot included.
    let rpdu = drivers.pdu(DeviceProtocol::SnmpV2c, "apc_rpdu", &access(json!({"community": "pdu"}))).unwrap();
    let spdu = drivers.pdu(DeviceProtocol::SnmpV2c, "apc_masterswitch", &access(json!({"community": "pdu"}))).unwrap();
    rpdu.set_outlet(5, false).await.unwrap();
    assert_eq!(spdu.outlet_status(5).await.unwrap(), OutletStatus::Down);
    spdu.reboot_outlet(5).await.unwrap();
    assert_eq!(rpdu.outlet_status(5).await.unwrap(), OutletStatus::Up, "a reboot ends on");
    assert_eq!(sim.snmpget("pdu", &format!("{RPDU_STATE}.5")), "1");
    let outlets = spdu.outlets().await.unwrap();
    assert_eq!((outlets.len(), outlets[4].name.as_str()), (24, "Outlet 5"));
    let e = rpdu.set_outlet(30, true).await.unwrap_err();
    assert!(matches!(&e, DriverError::Refused(m) if m.contains("no outlet 30")), "{e}");
    let e = drivers.pdu(DeviceProtocol::SnmpV2c, "acme", &access(json!({"community": "pdu"}))).err().unwrap();
    assert!(matches!(&e, DriverError::Unsupported(m) if m.contains("apc_rpdu")), "{e}");

    // Nothing listens: said at once, not after the timeout.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let d = drivers
        .switch(
            DeviceProtocol::SnmpV2c,
            &DeviceAccess { address: closed, secret: json!({"community": "x"}).to_string(), location: None },
        )
        .unwrap();
    let started = Instant::now();
    let e = d.ports().await.unwrap_err();
    assert!(matches!(&e, DriverError::Unreachable(m) if m.contains("nothing listens")), "{e}");
    assert!(e.is_transient());
    assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());
}
