//! Operations end to end on the fake hardware, through HTTP: every operation's
//! happy path (also with every step run twice), a failure injected at every step,
//! retries, abort, roles and bad bodies, on SQLite and PostgreSQL.

mod common;

use common::{Db, TestServer, assert_error, fake_server, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";

/// Starts an operation as the seed's curl line does and returns the task id.
async fn start(s: &TestServer, srv: i64, op: &str, body: Value) -> i64 {
    let v = s.post(&format!("/dci/v3/server/{srv}/{op}"), body).await;
    assert_eq!(v["id"], srv, "{v}");
    v["task"].as_i64().unwrap()
}

fn ops() -> Vec<(&'static str, Value)> {
    vec![
        ("power_on", json!({})),
        ("power_off", json!({})),
        ("power_reset", json!({})),
        ("suspend", json!({})),
        ("resume", json!({})),
        ("operation_diag", json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "simple"})),
        ("operation_clear_hdd", json!({"clear_hdd": "full"})),
        ("operation_os", json!({"hdd_raid": "raid_1", "os_template_id": 1, "password": "pass", "ssh_pub_keys": [KEY]})),
    ]
}

/// What the server looks like after each operation, less what changes anyway.
async fn outcome(s: &TestServer, srv: i64, sw: i64) -> Value {
    let g = s.get(&format!("/dci/v3/server/{srv}")).await;
    let ports = s.get(&format!("/dci/v3/switch/{sw}/port?limit=0,2")).await;
    let fake = s.get("/dci/v3/fake").await;
    json!({
        "state": g["state"], "power_status": g["power_status"], "is_new": g["is_new"],
        "configuration": g["configuration"], "os_template": g["os_template"], "diag_error": g["diag_error"],
        "ports": ports["list"].as_array().unwrap().iter().map(|p| p["admin_status"].clone()).collect::<Vec<_>>(),
        "machine_power": fake["machines"]["bmc-op-1"]["power"], "next_boot": fake["machines"]["bmc-op-1"]["next_boot"],
        "boots_left": fake["boots"],
    })
}

async fn every_operation_completes(db: Db, twice: bool) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.task_repeat_steps = twice;
    })
    .await;
    let (srv, sw, _) = fake_server(&s).await;
    let mut seen = vec![];
    for (op, body) in ops() {
        let id = start(&s, srv, op, body).await;
        let t = wait_task(&s, id).await;
        assert_eq!(t["status"], "complete", "{op}: {t}");
        assert_eq!(t["progress"], 100);
        assert_eq!(t["server"], srv);
        let steps = t["progress_info"].as_array().unwrap();
        assert!(steps.iter().all(|p| p["status"] == "complete" || p["status"] == "skipped"), "{t}");
        assert!(t["created"].as_str().unwrap().ends_with('Z') && t["finished"].is_string());
        let server = s.get(&format!("/dci/v3/server/{srv}")).await;
        assert_eq!(server["operation"]["id"], id);
        assert_eq!(server["operation"]["status"], "complete");
        seen.push((op, outcome(&s, srv, sw).await));
    }
    let expect = |op: &str| seen.iter().find(|(o, _)| *o == op).unwrap().1.clone();
    assert_eq!(expect("power_on")["power_status"], "on");
    assert_eq!(expect("power_on")["machine_power"], "on");
    assert_eq!(expect("power_off")["power_status"], "off");
    assert_eq!(expect("power_off")["machine_power"], "off");
    assert_eq!(expect("power_reset")["power_status"], "on");
    assert_eq!(expect("suspend")["state"], "suspended");
    assert_eq!(expect("suspend")["ports"], json!(["down", "up"]), "the BMC's port stays up");
    assert_eq!(expect("resume")["state"], "ok");
    assert_eq!(expect("resume")["ports"], json!(["up", "up"]));
    let diag = expect("operation_diag");
    assert_eq!((diag["is_new"].clone(), diag["diag_error"].clone()), (json!(false), json!([])));
    assert_eq!(diag["configuration"], "i9-9900K-64Gb-2x1024NVMe");
    assert_eq!(diag["power_status"], "off");
    assert_eq!(diag["boots_left"], json!({}), "the network boot is cleaned up");
    let os = expect("operation_os");
    assert_eq!(os["os_template"]["name"], "Debian 12");
    assert_eq!((os["power_status"].clone(), os["next_boot"].clone()), (json!("on"), json!("disk")));
    s.stop().await;
    if twice {
        // Compared with a run where every step ran once.
        let s = TestServer::start_with(db, fast_tasks).await;
        let (srv, sw, _) = fake_server(&s).await;
        for ((op, body), (_, twice_outcome)) in ops().into_iter().zip(&seen) {
            let id = start(&s, srv, op, body).await;
            assert_eq!(wait_task(&s, id).await["status"], "complete");
            assert_eq!(&outcome(&s, srv, sw).await, twice_outcome, "{op} run once vs every step twice");
        }
        s.stop().await;
    }
}

async fn operations_complete(db: Db) {
    every_operation_completes(db, false).await;
}

async fn steps_run_twice_give_the_same_result(db: Db) {
    every_operation_completes(db, true).await;
}

/// (operation, body, step, fault device, fault op, fault skip)
fn breakpoints() -> Vec<(&'static str, Value, &'static str, &'static str, &'static str, u32)> {
    let diag = json!({"clear_hdd": "simple"});
    let os = json!({"hdd_raid": "no_raid", "os_template_id": 1, "password": "pass"});
    let agent = "agent:52:54:00:0f:00:01";
    vec![
        ("power_on", json!({}), "power on", "bmc-op-1", "power_on", 0),
        ("power_on", json!({}), "confirm power on", "bmc-op-1", "power_status", 0),
        ("power_off", json!({}), "confirm power off", "bmc-op-1", "power_status", 0),
        ("power_reset", json!({}), "reset", "bmc-op-1", "power_reset", 0),
        ("suspend", json!({}), "shut switch ports", "127.0.0.1", "set_admin", 0),
        ("resume", json!({}), "open switch ports", "127.0.0.1", "set_admin", 0),
        ("operation_diag", diag.clone(), "prepare network boot", "boot", "boot_prepare", 0),
        ("operation_diag", diag.clone(), "boot from network", "bmc-op-1", "set_boot_device", 0),
        // The PXE boot is set and the reset fails: the undo makes the disk the boot device.
        ("operation_diag", diag.clone(), "boot from network", "bmc-op-1", "power_reset", 0),
        ("operation_diag", diag.clone(), "collect hardware", agent, "agent_hardware", 0),
        ("operation_diag", diag.clone(), "clear disks", agent, "agent_wipe", 0),
        ("operation_diag", diag.clone(), "clean up network boot", "boot", "boot_cleanup", 0),
        ("operation_clear_hdd", json!({"clear_hdd": "simple"}), "clear disks", agent, "agent_wipe", 0),
        ("operation_os", os.clone(), "install OS", agent, "agent_install", 0),
        ("operation_os", os.clone(), "boot from disk", "bmc-op-1", "set_boot_device", 1),
    ]
}

async fn a_failure_at_every_step_is_reported(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    for (op, body, step, device, fault, skip) in breakpoints() {
        s.post(
            "/dci/v3/fake/fault",
            json!({"device": device, "op": fault, "times": 1, "skip": skip, "message": "broken on purpose"}),
        )
        .await;
        let id = start(&s, srv, op, body).await;
        let t = wait_task(&s, id).await;
        assert_eq!(t["status"], "fail", "{op} at {step}: {t}");
        assert_eq!(t["status_info"]["step"], step, "{op}: {t}");
        assert!(t["status_info"]["message"].as_str().unwrap().contains("broken on purpose"), "{t}");
        let failed: Vec<&Value> =
            t["progress_info"].as_array().unwrap().iter().filter(|p| p["status"] == "fail").collect();
        assert_eq!((failed.len(), failed[0]["name"].as_str()), (1, Some(step)));
        let server = s.get(&format!("/dci/v3/server/{srv}")).await;
        match op {
            "suspend" => {
                assert_eq!(server["state"], "suspend_error");
                let info = server["state_info"].as_str().unwrap();
                assert!(info.contains("switch sw1 port ge-0/0/0"), "names the port and switch: {info}");
            }
            "resume" => assert_eq!(server["state"], "resume_error"),
            "operation_diag" => assert_eq!(server["diag_error"][0]["type"], step),
            _ => {}
        }
        // What the operation's steps did outside dcim is undone: no network boot is left
        // prepared, and the server boots its disk.
        if op.starts_with("operation_") {
            let fake = s.get("/dci/v3/fake").await;
            assert_eq!(fake["boots"], json!({}), "{op} at {step}: the network boot is forgotten");
            assert_eq!(fake["machines"]["bmc-op-1"]["next_boot"], "disk", "{op} at {step}: {fake}");
        }
        // Not left busy: the next operation starts at once (it also puts state back to ok).
        s.call(Method::DELETE, "/dci/v3/fake/fault", None).await;
        let id = start(&s, srv, "resume", json!({})).await;
        assert_eq!(wait_task(&s, id).await["status"], "complete");
    }
    assert_eq!(s.get("/dci/v3/fake").await["boots"], json!({}), "failed network boots are cleaned up");
    s.stop().await;
}

async fn transient_failures_are_retried(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-op-1", "op": "power_on", "times": 2, "transient": true})).await;
    let id = start(&s, srv, "power_on", json!({})).await;
    assert_eq!(wait_task(&s, id).await["status"], "complete");
    // Past the attempts allowed (5), it fails and says so.
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-op-1", "op": "power_off", "transient": true})).await;
    let (st, _) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/pdu_connection/1"), None).await;
    assert_eq!(st, StatusCode::OK, "without a PDU there is no fallback");
    let id = start(&s, srv, "power_off", json!({})).await;
    let t = wait_task(&s, id).await;
    assert_eq!(t["status"], "fail");
    assert!(t["status_info"]["message"].as_str().unwrap().contains("gave up after 5 attempts"), "{t}");
    assert_eq!(t["status_info"]["kind"], "unreachable", "the device failure's kind is kept: {t}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["power_status"], "unknown");
    // A refusal fails at once, with its kind.
    s.call(Method::DELETE, "/dci/v3/fake/fault", None).await;
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-op-1", "op": "power_on", "message": "no"})).await;
    let t = wait_task(&s, start(&s, srv, "power_on", json!({})).await).await;
    assert_eq!((t["status"].as_str(), t["status_info"]["kind"].as_str()), (Some("fail"), Some("refused")), "{t}");
    s.stop().await;
}

async fn pdu_power_and_fallback(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, pdu) = fake_server(&s).await;
    // A BMC that refuses: power off falls back to the PDU outlet.
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-op-1", "op": "power_off", "times": 1})).await;
    let id = start(&s, srv, "power_off", json!({})).await;
    let t = wait_task(&s, id).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(t["status_info"]["note"].as_str().unwrap().contains("powered off at the PDU"), "{t}");
    assert_eq!(s.get(&format!("/dci/v3/pdu/{pdu}/port?limit=0,1")).await["list"][0]["power_status"], "down");
    // Power on again switches the outlet on before asking the BMC.
    let id = start(&s, srv, "power_on", json!({})).await;
    let t = wait_task(&s, id).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(t["status_info"]["note"].as_str().unwrap().contains("PDU outlet"), "{t}");
    // A server without a BMC is powered through its outlet alone.
    s.post(&format!("/dci/v3/server/{srv}"), json!({"ipmi": null})).await;
    let id = start(&s, srv, "power_off", json!({})).await;
    assert_eq!(wait_task(&s, id).await["status"], "complete");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["power_status"], "off");
    assert_eq!(s.get(&format!("/dci/v3/pdu/{pdu}/port?limit=0,1")).await["list"][0]["power_status"], "down");
    let id = start(&s, srv, "power_on", json!({})).await;
    assert_eq!(wait_task(&s, id).await["status"], "complete");
    assert_eq!(s.get(&format!("/dci/v3/pdu/{pdu}/port?limit=0,1")).await["list"][0]["power_status"], "up");
    // No BMC and no outlet: a clear failure.
    s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/pdu_connection/1"), None).await;
    let id = start(&s, srv, "power_reset", json!({})).await;
    let t = wait_task(&s, id).await;
    assert!(t["status_info"]["message"].as_str().unwrap().contains("neither a BMC nor a PDU outlet"), "{t}");
    s.stop().await;
}

async fn one_operation_at_a_time_and_abort(db: Db) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.fake_delay_ms = 300;
    })
    .await;
    let (srv, _, _) = fake_server(&s).await;
    let id = start(&s, srv, "operation_diag", json!({"clear_hdd": "none"})).await;
    let (st, v) = s.call(Method::POST, &format!("/dci/v3/server/{srv}/power_on"), Some(json!({}))).await;
    let msg = assert_error(st, &v, StatusCode::CONFLICT);
    assert!(msg.contains(&format!("task {id} (diag)")), "{msg}");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/operation"), None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"id": srv, "task": id})));
    let t = wait_task(&s, id).await;
    assert_eq!(t["status"], "canceled", "{t}");
    assert_eq!(t["status_info"]["message"], "aborted by request");
    assert_eq!(s.get("/dci/v3/fake").await["boots"], json!({}), "the boot is undone");
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/operation"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    // A busy server cannot be deleted either.
    let id = start(&s, srv, "power_on", json!({})).await;
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}"), None).await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("busy"));
    wait_task(&s, id).await;
    s.stop().await;
}

async fn roles_and_bad_bodies(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let u = s.add_user("tenant@example.com", "tenant-password", "@user").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": u})).await;
    let t = s.login("tenant@example.com", "tenant-password").await;
    for (op, body) in [
        ("power_on", json!({})),
        ("operation_clear_hdd", json!({"clear_hdd": "simple"})),
        ("operation_os", json!({"hdd_raid": "raid_0", "os_template_id": 1, "password": "pass"})),
    ] {
        let (st, v) = s.call_as(&t, Method::POST, &format!("/dci/v3/server/{srv}/{op}"), Some(body)).await;
        assert_eq!(st, StatusCode::OK, "{op}: {v}");
        assert_eq!(wait_task(&s, v["task"].as_i64().unwrap()).await["status"], "complete");
    }
    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/task", None).await;
    assert_eq!((st, v["size"].clone()), (StatusCode::OK, json!(3)));
    for op in ["suspend", "resume", "operation_diag"] {
        let (st, v) = s.call_as(&t, Method::POST, &format!("/dci/v3/server/{srv}/{op}"), Some(json!({}))).await;
        assert_error(st, &v, StatusCode::FORBIDDEN);
    }
    // Another user's server does not exist for this one.
    s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/owner"), None).await;
    let (st, v) = s.call_as(&t, Method::POST, &format!("/dci/v3/server/{srv}/power_on"), Some(json!({}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/task/1", None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);

    let bare = s.post("/dci/v3/os_template", json!({"name": "No image", "type": "os"})).await["id"].clone();
    let before = s.get("/dci/v3/task").await["size"].clone();
    for (op, body, status, field) in [
        ("operation_os", json!({"hdd_raid": "raid_1", "os_template_id": bare, "password": "p"}), 422, "has no image"),
        ("operation_os", json!({"hdd_raid": "raid_6", "os_template_id": 1, "password": "p"}), 422, "hdd_raid"),
        (
            "operation_os",
            json!({"hdd_raid": "raid_1", "os_template_id": 1, "password": "p", "ssh_pub_keys": ["ssh-rsa AAAAnotbase64!"]}),
            422,
            "ssh_pub_keys[0]",
        ),
        ("operation_os", json!({"hdd_raid": "raid_1", "os_template_id": 99, "password": "p"}), 422, "os_template_id"),
        ("operation_os", json!({"hdd_raid": "raid_1", "os_template_id": 2, "password": "p"}), 422, "os_template_id"),
        ("operation_os", json!({"hdd_raid": "raid_5", "os_template_id": 1, "password": "p"}), 409, "identical disks"),
        ("operation_os", json!({"hdd_raid": "raid_1", "os_template_id": 1, "password": ""}), 422, "password"),
        (
            "operation_os",
            json!({"hdd_raid": "raid_1", "os_template_id": 1, "password": "p", "hostname": "bad_name!"}),
            422,
            "hostname",
        ),
        ("operation_os", json!({"hdd_raid": "raid_1", "os_template_id": "x", "password": "p"}), 400, "os_template_id"),
        ("operation_clear_hdd", json!({"clear_hdd": "shred"}), 422, "clear_hdd"),
        ("operation_diag", json!({"clear_hdd": "none", "os_template_id": 1}), 422, "os_template_id"),
        ("operation_diag", json!({"setup_ipmi": true, "ipmi_pool": 3}), 422, "there is no IP pool 3"),
        ("operation_diag", json!({"setup_ipmi": false, "ipmi_pool": 3}), 422, "ipmi_pool"),
    ] {
        let (st, v) = s.call(Method::POST, &format!("/dci/v3/server/{srv}/{op}"), Some(body.clone())).await;
        let msg = assert_error(st, &v, StatusCode::from_u16(status).unwrap());
        assert!(msg.contains(field), "{body}: {msg}");
    }
    assert_eq!(s.get("/dci/v3/task").await["size"], before, "no task was created");
    s.stop().await;
}

async fn agent_reports_need_the_task_secret(db: Db) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.fake_delay_ms = 200;
    })
    .await;
    let (srv, _, _) = fake_server(&s).await;
    let id = start(&s, srv, "operation_clear_hdd", json!({"clear_hdd": "simple"})).await;
    for auth in [None, Some("Bearer wrong-secret"), Some(&format!("Bearer {}", s.admin_token)[..])] {
        let mut rb =
            s.client.post(s.url(&format!("/agent/v1/task/{id}/report"))).json(&json!({"kind": "wiped", "data": {}}));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        let (st, v) = common::json_of(rb.send().await.unwrap()).await;
        assert!(st == StatusCode::UNAUTHORIZED || st == StatusCode::NOT_FOUND, "{auth:?}: {st} {v}");
    }
    assert_eq!(wait_task(&s, id).await["status"], "complete", "the real agent's report went through");
    s.stop().await;
}

async fn agent_silence_times_out(db: Db) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.agent_timeout_secs = 1;
    })
    .await;
    let (srv, _, _) = fake_server(&s).await;
    // The machine never network-boots, so no agent ever reports.
    s.post("/dci/v3/fake/fault", json!({"device": "agent:52:54:00:0f:00:01", "op": "agent_boot"})).await;
    let id = start(&s, srv, "operation_clear_hdd", json!({"clear_hdd": "simple"})).await;
    let t = wait_task(&s, id).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert_eq!(t["status_info"]["step"], "clear disks");
    assert!(
        t["status_info"]["message"].as_str().unwrap().contains("no report from the in-band agent within 1 s"),
        "{t}"
    );
    s.stop().await;
}

/// An installer template (kickstart here) is installed like an image one: the fake
/// machine reports `installed` as the installer's `%post` would. Its validation.
async fn an_installer_template_installs(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let kernel = "http://mirror.example/alma/9/BaseOS/x86_64/os/images/pxeboot/vmlinuz";
    let initrd = "http://mirror.example/alma/9/BaseOS/x86_64/os/images/pxeboot/initrd.img";
    let ks = s
        .post(
            "/dci/v3/os_template",
            json!({"name": "AlmaLinux 9 kickstart", "type": "os", "installer": "kickstart",
                   "installer_kernel": kernel, "installer_initrd": initrd}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let t = s.get(&format!("/dci/v3/os_template/{ks}")).await;
    assert_eq!((t["installer"].clone(), t["installer_kernel"].clone()), (json!("kickstart"), json!(kernel)));
    assert_eq!((t["installer_template"].clone(), t["image_url"].clone()), (Value::Null, Value::Null));
    let id = start(
        &s,
        srv,
        "operation_os",
        json!({"hdd_raid": "no_raid", "os_template_id": ks, "password": "pass",
        "ssh_pub_keys": [KEY]}),
    )
    .await;
    let t = wait_task(&s, id).await;
    assert_eq!(t["status"], "complete", "{t}");
    let server = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(server["os_template"]["name"], "AlmaLinux 9 kickstart");

    // A custom answer file, then back to the default.
    let edit = format!("/dci/v3/os_template/{ks}");
    s.post(&edit, json!({"installer_template": "rootpw --iscrypted {{password_hash}}\n"})).await;
    assert_eq!(s.get(&edit).await["installer_template"], "rootpw --iscrypted {{password_hash}}\n");
    s.post(&edit, json!({"installer_template": null})).await;
    assert_eq!(s.get(&edit).await["installer_template"], Value::Null);

    let sha = "ab".repeat(32);
    for (path, body, field) in [
        (
            "/dci/v3/os_template",
            json!({"name": "a", "type": "os", "installer": "kickstart", "installer_initrd": initrd}),
            "installer_kernel",
        ),
        (
            "/dci/v3/os_template",
            json!({"name": "b", "type": "os", "installer": "preseed", "installer_kernel": kernel}),
            "installer_initrd",
        ),
        (
            "/dci/v3/os_template",
            json!({"name": "c", "type": "os", "installer": "anaconda", "installer_kernel": kernel,
            "installer_initrd": initrd}),
            "installer",
        ),
        (
            "/dci/v3/os_template",
            json!({"name": "d", "type": "os", "installer": "autoinstall",
            "installer_kernel": "ftp://x/vmlinuz", "installer_initrd": initrd}),
            "installer_kernel",
        ),
        (
            "/dci/v3/os_template",
            json!({"name": "e", "type": "os", "installer": "kickstart", "installer_kernel": kernel,
            "installer_initrd": initrd, "image_url": "http://x/a.img", "image_sha256": sha}),
            "not both",
        ),
        ("/dci/v3/os_template", json!({"name": "f", "type": "os", "installer_kernel": kernel}), "installer_kernel"),
        (
            "/dci/v3/os_template",
            json!({"name": "g", "type": "diag", "installer": "kickstart", "installer_kernel": kernel,
            "installer_initrd": initrd}),
            "installer",
        ),
        (edit.as_str(), json!({"image_url": "http://x/a.img", "image_sha256": sha}), "not both"),
        (edit.as_str(), json!({"installer_kernel": null}), "installer_kernel"),
        (
            "/dci/v3/os_template/1",
            json!({"installer": "kickstart", "installer_kernel": kernel,
            "installer_initrd": initrd}),
            "not both",
        ),
    ] {
        let (st, v) = s.call(Method::POST, path, Some(body.clone())).await;
        let msg = assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg.contains(field), "{body}: {msg}");
    }
    // Dropping the installer and setting an image in one edit turns it into an image template.
    s.post(
        &edit,
        json!({"installer": null, "installer_kernel": null, "installer_initrd": null,
        "image_url": "http://x/a.img", "image_sha256": sha}),
    )
    .await;
    let t = s.get(&edit).await;
    assert_eq!((t["installer"].clone(), t["image_url"].clone()), (Value::Null, json!("http://x/a.img")));
    s.stop().await;
}

/// A worker that lost a task's lease between its last step and its end writes nothing
/// and does not undo what the task did on the hardware: the task is its new owner's.
/// The lease is taken away while the network boot's power reset is slow, and that reset
/// then fails for good.
async fn a_worker_that_lost_the_lease_leaves_the_end_alone(db: Db) {
    use sqlx::Connection;
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    s.post("/dci/v3/fake/delay", json!({"ms": 1500, "device": "bmc-op-1"})).await;
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-op-1", "op": "power_reset", "message": "no reset today"})).await;
    let task = start(&s, srv, "operation_clear_hdd", json!({"clear_hdd": "simple"})).await;
    // The boot is prepared and the machine set to boot from the network: the step
    // that resets it is under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let lab = s.get("/dci/v3/fake").await;
        if lab["machines"]["bmc-op-1"]["next_boot"] == "pxe" && lab["boots"]["52:54:00:0f:00:01"] == task {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the network boot never started: {lab}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.cfg.database_url()).await.unwrap();
    let far =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64) + 600_000;
    sqlx::query("UPDATE tasks SET lease_owner = 'another worker', lease_until = $1 WHERE id = $2")
        .bind(far)
        .bind(task)
        .execute(&mut conn)
        .await
        .unwrap();
    // The reset fails (after its 1.5 s) with the lease gone: nothing is written and
    // nothing undone.
    tokio::time::sleep(std::time::Duration::from_millis(5000)).await;
    let t = s.get(&format!("/dci/v3/task/{task}")).await;
    assert_eq!(t["status"], "running", "the old worker wrote no end: {t}");
    let lab = s.get("/dci/v3/fake").await;
    assert_eq!(lab["boots"]["52:54:00:0f:00:01"], task, "the boot was not cleaned up: {lab}");
    assert_eq!(lab["machines"]["bmc-op-1"]["next_boot"], "pxe", "the boot device was not put back: {lab}");
    let (owner,): (String,) =
        sqlx::query_as("SELECT lease_owner FROM tasks WHERE id = $1").bind(task).fetch_one(&mut conn).await.unwrap();
    assert_eq!(owner, "another worker");
    // The lease given back, the task resumes and ends under a worker that holds it.
    s.call(Method::DELETE, "/dci/v3/fake/fault", None).await;
    s.post("/dci/v3/fake/delay", json!({"ms": 0, "device": "bmc-op-1"})).await;
    sqlx::query("UPDATE tasks SET lease_until = 0 WHERE id = $1").bind(task).execute(&mut conn).await.unwrap();
    let t = wait_task(&s, task).await;
    assert!(t["status"] == "fail" || t["status"] == "complete", "{t}");
    s.stop().await;
}

/// A server without the fake drivers (a production one): the fake lab's routes do not
/// exist, and a device of type `fake` cannot be driven; its task says why.
async fn the_fake_drivers_are_off_in_production(db: Db) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.fake_drivers = false;
    })
    .await;
    for (method, path) in [(Method::GET, "/dci/v3/fake"), (Method::POST, "/dci/v3/fake/delay")] {
        let (st, body) = s.call(method, path, Some(json!({"ms": 1}))).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let loc = s.post("/dci/v3/location", json!({"name": "DC-1"})).await["id"].as_i64().unwrap();
    let srv = s
        .post(
            "/dci/v3/server",
            json!({"name": "f-1", "location_id": loc,
                   "ipmi": {"address": "bmc-f-1", "type": "fake", "user": "admin", "password": "pw"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let t = wait_task(&s, start(&s, srv, "power_on", json!({})).await).await;
    assert_eq!((t["status"].as_str(), t["status_info"]["kind"].as_str()), (Some("fail"), Some("unsupported")), "{t}");
    assert!(t["status_info"]["message"].as_str().unwrap().contains("the fake drivers are off"), "{t}");
    s.stop().await;
}

on_both_backends!(
    the_fake_drivers_are_off_in_production,
    a_worker_that_lost_the_lease_leaves_the_end_alone,
    operations_complete,
    an_installer_template_installs,
    steps_run_twice_give_the_same_result,
    a_failure_at_every_step_is_reported,
    transient_failures_are_retried,
    pdu_power_and_fallback,
    one_operation_at_a_time_and_abort,
    roles_and_bad_bodies,
    agent_reports_need_the_task_secret,
    agent_silence_times_out,
);

/// The power poller keeps `power_status` true; a slow or broken BMC marks only its
/// own server `unknown`, with the reason.
async fn power_poller(db: Db) {
    let s = TestServer::start_with(db, |c| {
        fast_tasks(c);
        c.power_poll_secs = 1;
        c.device_timeout_ms = 300;
    })
    .await;
    let (srv, _, _) = fake_server(&s).await;
    let mut others = vec![];
    for name in ["bmc-slow", "bmc-broken"] {
        let v = s
            .post("/dci/v3/server", json!({"name": name, "location_id": 1, "ipmi": {"address": name, "type": "fake"}}))
            .await;
        others.push(v["id"].as_i64().unwrap());
    }
    s.post("/dci/v3/fake/delay", json!({"ms": 5000, "device": "bmc-slow"})).await;
    s.post("/dci/v3/fake/fault", json!({"device": "bmc-broken", "op": "power_status", "message": "BMC on fire"})).await;
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(15);
    loop {
        let a = s.get(&format!("/dci/v3/server/{srv}")).await;
        let slow = s.get(&format!("/dci/v3/server/{}", others[0])).await;
        let broken = s.get(&format!("/dci/v3/server/{}", others[1])).await;
        let done = a["power_status"] == "off"
            && slow["ipmi"]["status_info"]["message"].as_str().is_some_and(|m| m.contains("within 300 ms"))
            && broken["ipmi"]["status_info"]["message"].as_str().is_some_and(|m| m.contains("BMC on fire"));
        if done {
            assert_eq!((a["ipmi"]["status"].clone(), a["ipmi"]["status_info"].clone()), (json!("off"), json!({})));
            assert_eq!(
                (slow["power_status"].clone(), broken["power_status"].clone()),
                (json!("unknown"), json!("unknown"))
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "poller did not settle: {a} {slow} {broken}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // An operation's result shows in the BMC's state at once.
    let id = start(&s, srv, "power_on", json!({})).await;
    wait_task(&s, id).await;
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["ipmi"]["status"], "on");
    s.stop().await;
}

on_both_backends!(power_poller);

/// Diagnostics that find a failed SMART check and a disk gone since the last report
/// complete, and say so in `diag_error`; the hardware is what was found.
async fn diagnostics_report_failed_and_missing_disks(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let mut before = common::hw_i9();
    before["disks"][0]["serial"] = json!("S-OK");
    before["disks"][1]["serial"] = json!("S-GONE");
    s.post(&format!("/dci/v3/server/{srv}/hardware_info"), before.clone()).await;
    let mut found = before.clone();
    found["disks"] =
        json!([{"name": "nvme0n1", "size_gb": 1024, "type": "NVMe", "serial": "S-OK", "smart": {"passed": false}}]);
    s.post("/dci/v3/fake/hardware", json!({"mac": "52:54:00:0f:00:01", "hardware": found})).await;
    let body = json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "none"});
    let id = start(&s, srv, "operation_diag", body).await;
    let t = wait_task(&s, id).await;
    assert_eq!(t["status"], "complete", "{t}");
    let server = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(
        server["diag_error"],
        json!([
            {"type": "smart", "info": "disk nvme0n1 (serial S-OK): the SMART health check failed"},
            {"type": "disk_missing", "info": "disk nvme1n1 (serial S-GONE) was found before and is missing now"}
        ]),
        "{server}"
    );
    assert_eq!(server["hardware_info"]["disks"].as_array().unwrap().len(), 1);
    // The next diagnostics that find everything well clear it.
    found["disks"][0]["smart"] = json!({"passed": true});
    s.post("/dci/v3/fake/hardware", json!({"mac": "52:54:00:0f:00:01", "hardware": found})).await;
    let body = json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "none"});
    let t = wait_task(&s, start(&s, srv, "operation_diag", body).await).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["diag_error"], json!([]));
    s.stop().await;
}

on_both_backends!(diagnostics_report_failed_and_missing_disks);

/// `setup_ipmi` with the fake agent: the BMC gets the pool's address and dcim's user,
/// and dcim manages the server through them; an address the BMC never got goes back to
/// the pool; a pool with no free address refuses the request and writes nothing.
async fn setup_ipmi_moves_the_server_to_its_new_bmc(db: Db) {
    async fn one_address_pool(s: &TestServer, name: &str, net: &Value, addr: &str) -> i64 {
        let range = json!([{"ipnet": net, "start": addr, "end": addr}]);
        s.post("/ip/v3/ippool", json!({"name": name, "ranges": range})).await["id"].as_i64().unwrap()
    }
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let net = s.post("/ip/v3/ipnet", json!({"name": "198.51.100.0/24", "gateway": "198.51.100.1"})).await["id"].clone();
    let pool = one_address_pool(&s, "ipmi", &net, "198.51.100.5").await;
    let body = json!({"setup_ipmi": true, "ipmi_pool": pool, "os_template_id": 0, "clear_hdd": "none"});
    let t = wait_task(&s, start(&s, srv, "operation_diag", body.clone()).await).await;
    assert_eq!(t["status"], "complete", "{t}");
    let steps: Vec<&str> = t["progress_info"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(steps.contains(&"set up IPMI"), "{steps:?}");
    assert_eq!(t["status_info"]["ipmi"], json!({"address": "198.51.100.5", "user": "dcim"}), "{t}");
    let server = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(
        (&server["ipmi"]["address"], &server["ipmi"]["type"]),
        (&json!("198.51.100.5"), &json!("fake")),
        "{server}"
    );
    assert_eq!(server["ip"], json!([]), "the BMC's address is not one of the server's: {server}");
    let ips = s.get(&format!("/dci/v3/ip?where=pool%20EQ%20{pool}")).await;
    assert_eq!((&ips["list"][0]["purpose"], &ips["list"][0]["status"]), (&json!("ipmi"), &json!("ok")), "{ips}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}/ip")).await["size"], 0, "not one of the server's own");
    // The powered-off state at the end was asked of the new BMC.
    let fake = s.get("/dci/v3/fake").await;
    assert_eq!(fake["machines"]["198.51.100.5"]["power"], "off", "{fake}");

    // The pool is used up: refused before anything is written.
    let tasks = s.get("/dci/v3/task").await["size"].clone();
    let (st, v) = s.call(Method::POST, &format!("/dci/v3/server/{srv}/operation_diag"), Some(body.clone())).await;
    let msg = assert_error(st, &v, StatusCode::CONFLICT);
    assert!(msg.contains("no free ipv4 address"), "{msg}");
    assert_eq!(s.get("/dci/v3/task").await["size"], tasks);

    // The agent fails to set the BMC up: the task fails, the address goes back.
    let pool2 = one_address_pool(&s, "ipmi2", &net, "198.51.100.6").await;
    s.post(
        "/dci/v3/fake/fault",
        json!({"device": "agent:52:54:00:0f:00:01", "op": "agent_bmc", "times": 1, "message": "no KCS"}),
    )
    .await;
    let body2 = json!({"setup_ipmi": true, "ipmi_pool": pool2, "os_template_id": 0, "clear_hdd": "none"});
    let t = wait_task(&s, start(&s, srv, "operation_diag", body2).await).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(t["status_info"]["message"].as_str().unwrap().contains("no KCS"), "{t}");
    let ips = s.get(&format!("/dci/v3/ip?where=pool%20EQ%20{pool2}")).await;
    assert_eq!(ips["size"], 0, "the address went back to its pool: {ips}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["ipmi"]["address"], "198.51.100.5");

    // The agent gives the BMC the address but dcim cannot log in there: the task fails
    // and the address stays taken (the BMC answers on it), marked `fail` with the reason.
    let pool3 = one_address_pool(&s, "ipmi3", &net, "198.51.100.7").await;
    s.post("/dci/v3/fake/fault", json!({"device": "198.51.100.7", "op": "power_status", "message": "wrong password"}))
        .await;
    let body3 = json!({"setup_ipmi": true, "ipmi_pool": pool3, "os_template_id": 0, "clear_hdd": "none"});
    let t = wait_task(&s, start(&s, srv, "operation_diag", body3).await).await;
    assert_eq!(t["status"], "fail", "{t}");
    let msg = t["status_info"]["message"].as_str().unwrap();
    assert!(msg.contains("the BMC at 198.51.100.7 as dcim") && msg.contains("wrong password"), "{msg}");
    let ips = s.get(&format!("/dci/v3/ip?where=pool%20EQ%20{pool3}")).await;
    assert_eq!((&ips["size"], &ips["list"][0]["status"]), (&json!(1), &json!("fail")), "{ips}");
    assert!(ips["list"][0]["status_info"]["message"].as_str().unwrap().contains("could not log in"), "{ips}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["ipmi"]["address"], "198.51.100.5", "the old BMC stays");
    s.call(Method::DELETE, "/dci/v3/fake/fault", None).await;

    // A busy server: the task cannot start, and the address is not taken either (one
    // transaction takes it and starts the task); the next diagnostics get it.
    let pool4 = one_address_pool(&s, "ipmi4", &net, "198.51.100.8").await;
    s.post("/dci/v3/fake/delay", json!({"ms": 400})).await;
    let slow = start(&s, srv, "power_reset", json!({})).await;
    let body4 = json!({"setup_ipmi": true, "ipmi_pool": pool4, "os_template_id": 0, "clear_hdd": "none"});
    let (st, v) = s.call(Method::POST, &format!("/dci/v3/server/{srv}/operation_diag"), Some(body4.clone())).await;
    let msg = assert_error(st, &v, StatusCode::CONFLICT);
    assert!(msg.contains(&format!("busy with task {slow}")), "{msg}");
    assert_eq!(s.get(&format!("/dci/v3/ip?where=pool%20EQ%20{pool4}")).await["size"], 0, "no address was taken");
    assert_eq!(wait_task(&s, slow).await["status"], "complete");
    s.post("/dci/v3/fake/delay", json!({"ms": 0})).await;
    let t = wait_task(&s, start(&s, srv, "operation_diag", body4).await).await;
    assert_eq!(t["status_info"]["ipmi"]["address"], "198.51.100.8", "{t}");

    // Without a pool the BMC keeps an address of its own, which the agent reports.
    let body = json!({"setup_ipmi": true, "os_template_id": 0, "clear_hdd": "none"});
    let t = wait_task(&s, start(&s, srv, "operation_diag", body).await).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["ipmi"]["address"], "198.18.0.1");
    s.stop().await;
}

on_both_backends!(setup_ipmi_moves_the_server_to_its_new_bmc);
