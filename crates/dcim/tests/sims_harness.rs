//! The BMC simulators of `common::sims` checked with independent clients (ipmitool,
//! plain HTTP): what a driver test relies on them to do.

mod common;

use std::time::{Duration, Instant};

use common::sims::{BmcState, FakeBmc, IpmiSim, Sushy, SushyOptions};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn ok(r: (bool, String)) -> String {
    assert!(r.0, "ipmitool failed: {}", r.1);
    r.1
}

#[test]
fn ipmi_sim_power_boot_and_logins() {
    let bmc = IpmiSim::start("admin", "bmc-secret-1");
    assert!(bmc.address().ends_with(&format!(":{}", bmc.port())));
    assert!(!bmc.power());
    assert!(ok(bmc.ipmitool(&["chassis", "power", "status"])).contains("Chassis Power is off"));

    ok(bmc.ipmitool(&["chassis", "power", "on"]));
    assert!(bmc.power());
    assert!(ok(bmc.ipmitool(&["chassis", "power", "status"])).contains("Chassis Power is on"));
    ok(bmc.ipmitool(&["chassis", "power", "reset"]));
    assert_eq!(bmc.resets(), 1);
    assert!(bmc.log().contains("set reset 1"), "{}", bmc.log());
    ok(bmc.ipmitool(&["chassis", "power", "soft"]));
    assert!(!bmc.power(), "soft off");
    assert!(bmc.log().contains("set shutdown 1"), "{}", bmc.log());

    // A cycle: off at once, on again a second later.
    ok(bmc.ipmitool(&["chassis", "power", "on"]));
    ok(bmc.ipmitool(&["chassis", "power", "cycle"]));
    assert!(!bmc.power(), "cycle starts with off");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bmc.power() {
        assert!(Instant::now() < deadline, "the cycle never powered on: {}", bmc.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    // Power changed behind the BMC's back shows in its status.
    bmc.set_power(false);
    assert!(ok(bmc.ipmitool(&["chassis", "power", "status"])).contains("is off"));

    assert_eq!(bmc.boot(), "none");
    ok(bmc.ipmitool(&["chassis", "bootdev", "pxe"]));
    assert_eq!(bmc.boot(), "pxe");
    assert!(ok(bmc.ipmitool(&["chassis", "bootparam", "get", "5"])).contains("Force PXE"));
    ok(bmc.ipmitool(&["chassis", "bootdev", "disk"]));
    assert_eq!(bmc.boot(), "default", "ipmi_sim's word for 'force boot from hard disk'");
    // ipmi_sim passes the device only: the persistent and EFI flags are lost.
    ok(bmc.ipmitool(&["chassis", "bootdev", "pxe", "options=persistent,efiboot"]));
    assert_eq!(bmc.boot(), "pxe");
    assert!(bmc.log().lines().last().unwrap().ends_with("set boot pxe"), "{}", bmc.log());
    assert!(ok(bmc.ipmitool(&["chassis", "bootparam", "get", "5"])).contains("Options apply to only next boot"));

    let info = ok(bmc.ipmitool(&["mc", "info"]));
    assert!(info.contains("Manufacturer ID           : 4753") && info.contains("IPMI Version              : 2.0"));

    // IPMI 1.5 with MD5, and wrong credentials on both.
    ok(bmc.ipmitool_v15(&["chassis", "power", "on"]));
    assert!(bmc.power());
    let port = bmc.port().to_string();
    for iface in [&["-I", "lanplus", "-C", "3"][..], &["-I", "lan", "-A", "MD5"], &["-I", "lan", "-A", "NONE"]] {
        let out = std::process::Command::new("ipmitool")
            .args(iface)
            .args(["-N", "1", "-R", "1", "-H", "127.0.0.1", "-p", &port, "-U", "admin", "-P", "wrong"])
            .args(["chassis", "power", "off"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{iface:?} with a wrong password must fail");
    }
    assert!(bmc.power(), "no failed login changed the power");
}

#[test]
fn ipmi_sim_many() {
    let started = Instant::now();
    let bmcs = IpmiSim::start_many(20, "admin", "secret");
    eprintln!("20 ipmi_sim started in {:?}", started.elapsed());
    let mut ports: Vec<u16> = bmcs.iter().map(|b| b.port()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 20);
    for b in [&bmcs[0], &bmcs[7], &bmcs[19]] {
        ok(b.ipmitool(&["chassis", "power", "on"]));
        assert!(b.power());
    }
    assert!(!bmcs[1].power(), "each BMC has its own server");
    let pid = bmcs[3].pid();
    drop(bmcs);
    assert!(!std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists(), "killed on drop");
}

#[test]
fn fakebmc_power_boot_flags() {
    let bmc = FakeBmc::start("admin", "secret", None, None);
    assert!(!bmc.power());
    ok(bmc.ipmitool(&["chassis", "power", "on"]));
    assert!(bmc.power());
    assert!(ok(bmc.ipmitool(&["chassis", "power", "status"])).contains("is on"));
    ok(bmc.ipmitool(&["chassis", "power", "reset"]));
    assert_eq!(bmc.resets(), 1);
    ok(bmc.ipmitool(&["chassis", "power", "off"]));
    assert!(!bmc.power());
    ok(bmc.ipmitool(&["chassis", "bootdev", "pxe", "options=persistent,efiboot"]));
    assert_eq!(bmc.boot(), "pxe");
    assert_eq!(bmc.boot_flags(), ["valid", "persistent", "efi"]);
    let p5 = ok(bmc.ipmitool(&["chassis", "bootparam", "get", "5"]));
    assert!(p5.contains("Options apply to all future boots") && p5.contains("BIOS EFI boot"), "{p5}");
    ok(bmc.ipmitool(&["chassis", "bootdev", "disk"]));
    assert_eq!(bmc.boot(), "default");
    assert_eq!(bmc.boot_flags(), ["valid"]);
    assert!(ok(bmc.ipmitool(&["mc", "info"])).contains("4753"));
    let port = bmc.port().to_string();
    let out = std::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H", "127.0.0.1", "-p", &port])
        .args(["-U", "admin", "-P", "wrong", "chassis", "power", "on"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong password fails");
    assert!(!bmc.power());
}

#[test]
fn fakebmc_slow_and_lossy() {
    let slow = FakeBmc::start("admin", "secret", Some(Duration::from_millis(400)), None);
    let lossy = FakeBmc::start("admin", "secret", None, Some(4));

    let t = Instant::now();
    ok(slow.ipmitool(&["chassis", "power", "on"]));
    assert!(t.elapsed() >= Duration::from_millis(400), "{:?}", t.elapsed());
    assert!(slow.power());

    ok(lossy.ipmitool(&["chassis", "power", "on"]));
    assert!(lossy.power());
    assert!(lossy.log().contains("drop datagram 4"), "{}", lossy.log());
}

#[test]
fn sushy_http() {
    let node = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
    let other = "38947555-7742-4c0a-bbbb-111111111112";
    let emu = Sushy::start("admin", "password", &[(node, "node-1", false), (other, "node-2", true)]);
    assert!(emu.address().starts_with("http://127.0.0.1:"));

    let (st, v) = emu.get("/redfish/v1/Systems");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["Members@odata.count"], 2);
    let sys = emu.system(node);
    assert_eq!(sys["Name"], "node-1");
    assert_eq!(sys["PowerState"], "Off");
    assert!(emu.power(other));

    // Without or with wrong credentials: 401 (the service root is open).
    let anon = common::sims::block_on(async {
        let c = reqwest::Client::new();
        let a = c.get(format!("{}/redfish/v1/Systems", emu.address())).send().await.unwrap().status();
        let b = c
            .get(format!("{}/redfish/v1/Systems", emu.address()))
            .basic_auth("admin", Some("nope"))
            .send()
            .await
            .unwrap()
            .status();
        let root = c.get(format!("{}/redfish/v1/", emu.address())).send().await.unwrap().status();
        (a, b, root)
    });
    assert_eq!(anon, (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::OK));

    let reset = format!("{}/Actions/ComputerSystem.Reset", emu.system_path(node));
    let (st, v) = emu.send(Method::POST, &reset, json!({"ResetType": "On"}));
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    assert!(emu.wait_power(node, true, Duration::from_secs(5)), "power on landed");
    let (st, _) = emu.send(Method::POST, &reset, json!({"ResetType": "Bogus"}));
    assert!(st.is_client_error() || st.is_server_error(), "{st}");

    let (st, v) = emu.send(
        Method::PATCH,
        &emu.system_path(node),
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}),
    );
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(emu.system(node)["Boot"]["BootSourceOverrideTarget"], "Pxe");
    assert!(emu.log().contains("PATCH /redfish/v1/Systems/"), "{}", emu.log());
}

#[test]
fn sushy_https_self_signed() {
    let node = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
    let emu = Sushy::start_with(
        "admin",
        "password",
        &[(node, "node-1", true)],
        SushyOptions { https: true, power_delay: Some(0) },
    );
    assert!(emu.address().starts_with("https://127.0.0.1:"));
    assert!(emu.cert_pem().unwrap().contains("BEGIN CERTIFICATE"));
    // A client trusting exactly this certificate gets in.
    assert!(emu.power(node));
    let reset = format!("{}/Actions/ComputerSystem.Reset", emu.system_path(node));
    assert_eq!(emu.send(Method::POST, &reset, json!({"ResetType": "ForceOff"})).0, StatusCode::NO_CONTENT);
    assert!(!emu.power(node), "power delay 0: lands at once");

    let url = format!("{}/redfish/v1/", emu.address());
    // One that verifies certificates does not; one that accepts any does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let strict = common::sims::block_on(async { reqwest::Client::new().get(&url).send().await.map(|r| r.status()) });
    assert!(strict.is_err(), "a verifying client must refuse the self-signed certificate: {strict:?}");
    let lax = common::sims::block_on(async { common::client().get(&url).send().await.map(|r| r.status()) });
    assert_eq!(lax.unwrap(), StatusCode::OK);
}
