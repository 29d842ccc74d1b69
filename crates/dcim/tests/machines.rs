//! Virtual machines powered through their BMCs by dcim: QEMU (TCG) machines behind
//! `ipmi_sim`, with their NIC in a network namespace this test creates. The first
//! piece of the netboot loop: dcim sets the next boot device and powers the machine,
//! and the machine's own firmware shows which device it boots.

mod common;

use std::time::Duration;

use common::vdc::{BMC_PASSWORD, BMC_USER, Netns, VirtualMachine};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn run(s: &TestServer, srv: i64, op: &str, body: Value) -> Value {
    let (st, v) = s.call(reqwest::Method::POST, &format!("/dci/v3/server/{srv}/{op}"), Some(body)).await;
    assert_eq!(st, StatusCode::OK, "{op}: {v}");
    wait_task(s, v["task"].as_i64().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcim_powers_a_virtual_machine_through_its_bmc() {
    let ns = Netns::create("10.79.0.1");
    let vm = VirtualMachine::start(&ns, "52:54:00:79:00:01");
    let s = TestServer::start_with(Db::Sqlite, fast_tasks).await;
    let loc = s.post("/dci/v3/location", json!({"name": "DC-1"})).await;
    let srv = s
        .post(
            "/dci/v3/server",
            json!({"name": "vm-1", "location_id": loc["id"], "mac": vm.mac,
                   "ipmi": {"address": vm.bmc_address(), "type": "IPMI v2(lanplus)", "user": BMC_USER, "password": BMC_PASSWORD}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();

    // Next boot from the network: the machine's iPXE ROM starts.
    let t = run(&s, srv, "boot_device", json!({"device": "pxe"})).await;
    assert_eq!(t["status"], "complete", "{t}");
    let t = run(&s, srv, "power_on", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(vm.running(), "qemu runs: {}\n{}", vm.file("power.log"), vm.file("qemu.log"));
    assert!(vm.wait_console("iPXE", Duration::from_secs(30)), "iPXE did not start: {}", vm.console());
    assert!(vm.file("power.log").contains("boot=net"), "{}", vm.file("power.log"));

    let t = run(&s, srv, "power_off", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(!vm.running(), "qemu stopped");
    let (_, out) = vm.ipmitool(&["chassis", "power", "status"]);
    assert!(out.contains("Chassis Power is off"), "{out}");

    // The override was for one boot: a reset of the machine that is off boots the disk.
    let t = run(&s, srv, "power_reset", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(vm.running());
    let log = vm.file("power.log");
    assert!(log.lines().rev().find(|l| l.contains("started qemu")).unwrap().contains("boot=disk"), "{log}");
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["power_status"], "on");
    s.stop().await;
}
