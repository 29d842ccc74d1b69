//! Virtual machines powered through their BMCs by dcim: QEMU (TCG) machines behind
//! `ipmi_sim`, with their NIC in a network namespace this test creates. The first
//! piece of the netboot loop: dcim sets the next boot device and powers the machine,
//! and the machine's own firmware shows which device it boots.

mod common;

use std::time::Duration;

use common::lab::{Lab, boot_image, diag, timeline, wait_all_timed, wait_long, wait_timed};
use common::vdc::{
    BMC_PASSWORD, BMC_USER, Firmware, Netns, SiteDhcp, VirtualMachine, boot_sector_image, with_seed_partition,
};
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
    let _one = MACHINES.lock().await;
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

/// One test at a time drives virtual machines: TCG on 2 cores has no room for more.
static MACHINES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The two disks' serials, the boot NIC and a configuration were reported.
async fn assert_diagnosed(s: &TestServer, srv: i64, vm: &VirtualMachine) {
    let server = s.get(&format!("/dci/v3/server/{srv}")).await;
    let hw = &server["hardware_info"];
    let disks = hw["disks"].as_array().unwrap_or_else(|| panic!("no disks reported: {server}"));
    let mut serials: Vec<&str> = disks.iter().filter_map(|d| d["serial"].as_str()).collect();
    serials.sort();
    let name = format!("vm{}", &vm.mac.replace(':', "")[6..]);
    assert_eq!(serials, [format!("{name}-d0"), format!("{name}-d1")], "{hw}");
    assert!(hw["nics"].to_string().contains(&vm.mac), "the boot NIC is reported: {hw}");
    assert!(!server["configuration"].as_str().unwrap_or_default().is_empty(), "{server}");
    assert_eq!(server["is_new"], false);
}

/// Diagnostics for real: dcim sets PXE and powers the machine through its BMC, its own
/// netboot service answers the machine's DHCP and serves iPXE, the kernel and the
/// agent, which reports the machine's hardware, wipes its disks and powers it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_boot_the_agent_on_a_virtual_machine() {
    let _one = MACHINES.lock().await;
    let lab = Lab::start(1, |_| {}).await;
    let vm = VirtualMachine::start(&lab.ns, "52:54:00:79:01:01");
    let srv = lab.server("vm-1", &vm.mac, &vm).await;
    let started = std::time::Instant::now();
    let task = lab.start_op(srv, "operation_diag", diag("simple")).await;
    let (t, seen) = wait_timed(&lab.s, task, 150).await;
    assert_eq!(t["status"], "complete", "{t}\nconsole:\n{}\npower: {}", vm.console(), vm.file("power.log"));
    println!(
        "diagnostics, one BIOS machine: {:.1} s from the request to complete; {}",
        started.elapsed().as_secs_f64(),
        timeline(&seen)
    );
    assert_diagnosed(&lab.s, srv, &vm).await;
    assert!(!vm.running(), "the machine is off at the end");
    if std::env::var_os("DCIM_SHOW_CONSOLE").is_some() {
        println!("{}", vm.console());
    }
    // clear_hdd simple: the first and last MiB of both disks are zero, the middle is kept.
    for n in 0..2 {
        let [head, middle, tail] = vm.disk_samples(n);
        assert!(head.iter().all(|b| *b == 0), "disk{n}: first MiB wiped");
        assert!(tail.iter().all(|b| *b == 0), "disk{n}: last MiB wiped");
        assert!(middle.iter().all(|b| *b == 0x5a), "disk{n}: the middle is untouched");
    }
    lab.s.stop().await;
}

/// A UEFI machine (OVMF's own network boot loads iPXE over TFTP) has its disks wiped
/// in full: every byte is zero afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uefi_machine_full_wipe() {
    let _one = MACHINES.lock().await;
    let lab = Lab::start(2, |_| {}).await;
    let vm = VirtualMachine::start_with(&lab.ns, "52:54:00:79:02:01", Firmware::Uefi);
    let srv = lab.server("vm-2", &vm.mac, &vm).await;
    let started = std::time::Instant::now();
    let task = lab.start_op(srv, "operation_clear_hdd", json!({"clear_hdd": "full"})).await;
    let (t, seen) = wait_timed(&lab.s, task, 240).await;
    assert_eq!(t["status"], "complete", "{t}\nconsole:\n{}\npower: {}", vm.console(), vm.file("power.log"));
    println!(
        "full wipe of 576 MiB, one UEFI machine: {:.1} s from the request to complete; {}",
        started.elapsed().as_secs_f64(),
        timeline(&seen)
    );
    for n in 0..2 {
        for (i, part) in vm.disk_samples(n).iter().enumerate() {
            assert!(part.iter().all(|b| *b == 0), "disk{n}: sample {i} is zero after a full wipe");
        }
    }
    lab.s.stop().await;
}

/// Three machines diagnosed at once on one segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_machines_at_once() {
    let _one = MACHINES.lock().await;
    let lab = Lab::start(3, |_| {}).await;
    let vms: Vec<VirtualMachine> =
        (1..=3).map(|i| VirtualMachine::start(&lab.ns, &format!("52:54:00:79:03:0{i}"))).collect();
    let mut servers = vec![];
    for (i, vm) in vms.iter().enumerate() {
        servers.push(lab.server(&format!("vm-3{i}"), &vm.mac, vm).await);
    }
    let started = std::time::Instant::now();
    let mut tasks = vec![];
    for srv in &servers {
        tasks.push(lab.start_op(*srv, "operation_diag", diag("none")).await);
    }
    for (i, (t, seen)) in wait_all_timed(&lab.s, &tasks, 240).await.iter().enumerate() {
        assert_eq!(t["status"], "complete", "machine {i}: {t}\nconsole:\n{}", vms[i].console());
        println!("machine {i}: {}", timeline(seen));
    }
    println!(
        "diagnostics, three BIOS machines at once: {:.1} s until the last completed",
        started.elapsed().as_secs_f64()
    );
    for (srv, vm) in servers.iter().zip(&vms) {
        assert_diagnosed(&lab.s, *srv, vm).await;
    }
    lab.s.stop().await;
}

/// A machine that never calls back (its boot MAC in dcim is not the one it boots
/// from, so the netboot service never answers it) fails its task at the agent timeout
/// with a message saying so, and is powered off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_never_calls_back_fails_at_the_timeout() {
    let _one = MACHINES.lock().await;
    let lab = Lab::start(4, |c| c.agent_timeout_secs = 15).await;
    let vm = VirtualMachine::start(&lab.ns, "52:54:00:79:04:01");
    let srv = lab.server("vm-4", "52:54:00:79:04:99", &vm).await;
    let started = std::time::Instant::now();
    let task = lab.start_op(srv, "operation_diag", diag("none")).await;
    let t = wait_long(&lab.s, task, 90).await;
    assert_eq!(t["status"], "fail", "{t}");
    let msg = t["status_info"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("no report from the in-band agent within 15 s"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    assert!(vm.running() || vm.file("power.log").contains("set power 1"), "the machine was powered on");
    lab.s.stop().await;
}

/// The line the test OS image prints when the machine boots it from disk.
const IMAGE_LINE: &str = "DCIM-TEST-IMAGE booted from disk";

/// The agent's boot files with an OS image beside them, served by the netboot
/// service under `/files/`: the image (12 MiB: [`boot_sector_image`] with a cloud-init
/// seed partition, see [`with_seed_partition`]) and its SHA-256.
fn boot_files_with_image(dir: &std::path::Path) -> (Vec<u8>, String) {
    let boot = boot_image();
    for f in ["vmlinuz", "initrd.gz"] {
        std::fs::copy(boot.join(f), dir.join(f)).unwrap();
    }
    // The seed partition: an 8 MiB FAT32 labelled CIDATA, made by the boot image's own busybox.
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            "cd \"$1\" && gzip -dc \"$2\" | cpio -id --quiet bin/busybox && truncate -s 8M fat.img && \
              bin/busybox mkdosfs -n CIDATA fat.img >/dev/null",
        )
        .args(["sh", dir.to_str().unwrap(), boot.join("initrd.gz").to_str().unwrap()])
        .status();
    assert!(st.is_ok_and(|s| s.success()), "making the FAT seed partition");
    let fat = std::fs::read(dir.join("fat.img")).unwrap();
    let img = with_seed_partition(boot_sector_image(IMAGE_LINE, 4), &fat);
    std::fs::write(dir.join("os.img"), &img).unwrap();
    let out = std::process::Command::new("sha256sum").arg(dir.join("os.img")).output().unwrap();
    let sha = String::from_utf8_lossy(&out.stdout).split(' ').next().unwrap_or_default().to_owned();
    assert_eq!(sha.len(), 64, "sha256sum: {out:?}");
    (img, sha)
}

/// The OS install path of issue 7 for real: diagnostics first (so dcim knows the two
/// disks), then `operation_os` with raid_1: the agent builds the mirror, writes the
/// template's image onto it and checks its SHA-256, dcim sets the disk as boot device
/// and resets, and the machine boots what was written; the image's cloud-init seed
/// partition holds the hostname, root's password hash and the SSH key. The image's URL
/// names its host (DNS from the segment's DHCP). Then a template whose SHA-256 is wrong:
/// the task fails naming the checksum. Then raid_0, and no_raid from the image as qcow2,
/// each booted from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_os_writes_each_raid_level_and_boots_it() {
    let _one = MACHINES.lock().await;
    let files = common::tempdir::Dir::new();
    let (img, sha) = boot_files_with_image(&files.0);
    let mut base = String::new();
    let lab = Lab::start(5, |c| {
        let nb = c.netboot.as_mut().unwrap();
        nb.boot_files_dir = files.0.clone();
        base = nb.http_base.clone();
        if let dcim_netboot::DhcpMode::Full { dns_servers, .. } = &mut nb.dhcp {
            dns_servers.push("10.79.5.2".parse().unwrap());
        }
    })
    .await;
    // The image's URL names its host, which the segment's DNS server (offered by dcim's
    // DHCP) resolves to dcim's listener.
    let dns = SiteDhcp::dns(&lab.ns, "10.79.5.2", "images.dcim.test", "10.79.5.1");
    let vm = VirtualMachine::start(&lab.ns, "52:54:00:79:05:01");
    let srv = lab.server("vm-5", &vm.mac, &vm).await;
    let url = format!("{}/files/os.img", base.replace("10.79.5.1", "images.dcim.test"));
    let good = lab
        .s
        .post("/dci/v3/os_template", json!({"name": "Test image", "type": "os", "image_url": url, "image_sha256": sha}))
        .await["id"]
        .clone();
    let bad = lab
        .s
        .post(
            "/dci/v3/os_template",
            json!({"name": "Corrupt", "type": "os", "image_url": url, "image_sha256": "0".repeat(64)}),
        )
        .await["id"]
        .clone();

    let task = lab.start_op(srv, "operation_diag", diag("none")).await;
    let (t, seen) = wait_timed(&lab.s, task, 150).await;
    assert_eq!(t["status"], "complete", "{t}\nconsole:\n{}", vm.console());
    println!("diagnostics: {}", timeline(&seen));

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";
    let os = |tpl: &Value| json!({"hdd_raid": "raid_1", "os_template_id": tpl, "password": "s3cret-pass", "ssh_pub_keys": [KEY]});
    let started = std::time::Instant::now();
    let task = lab.start_op(srv, "operation_os", os(&good)).await;
    let (t, seen) = wait_timed(&lab.s, task, 200).await;
    assert_eq!(t["status"], "complete", "{t}\nconsole:\n{}\npower: {}", vm.console(), vm.file("power.log"));
    let on = seen.get("boot from network").copied().unwrap_or(f64::NAN);
    let at = |k: &str| seen.get(k).map(|t| format!("{:.1} s", t - on)).unwrap_or_else(|| "-".into());
    println!(
        "operation_os raid_1, 12 MiB image: {:.1} s from the request to complete; BMC power on to installed {}, \
         to disk boot {}, to task complete {}",
        started.elapsed().as_secs_f64(),
        at("install OS"),
        at("boot from disk"),
        at("task end")
    );
    let steps = t["progress_info"].to_string();
    assert!(seen.contains_key("install OS") && seen.contains_key("boot from disk"), "{steps}");
    assert!(
        vm.wait_console(IMAGE_LINE, Duration::from_secs(30)),
        "the machine did not boot the written image: {}\npower: {}",
        vm.console(),
        vm.file("power.log")
    );
    let log = vm.file("power.log");
    assert!(log.lines().rev().find(|l| l.contains("started qemu")).unwrap().contains("boot=disk"), "{log}");
    let server = lab.s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(server["os_template"]["name"], "Test image", "{server}");
    // The mirror: both disks begin with the image (metadata 1.0 keeps the start the image's).
    // The seed in partition 2 (FAT keeps a small file's bytes together): hostname, root's hash, the key.
    assert!(vm.ipmitool(&["chassis", "power", "off"]).0, "power off through the BMC");
    let has = |disk: &[u8], s: &str| disk.windows(s.len()).any(|w| w == s.as_bytes());
    for n in 0..2 {
        let disk = vm.disk_raw(n);
        assert!(disk[..4 << 20] == img[..4 << 20], "disk{n} does not begin with the image");
        let seed = &disk[4 << 20..12 << 20];
        assert!(has(seed, "local-hostname: \"vm-5\""), "disk{n}: no meta-data in the seed partition");
        assert!(
            has(seed, "#cloud-config") && has(seed, KEY) && has(seed, "hashed_passwd: \"$6$"),
            "disk{n}: user-data"
        );
        assert!(!has(seed, "s3cret-pass"), "disk{n}: the password itself is never written");
    }
    assert!(dns.log().contains("query[A] images.dcim.test"), "the agent resolved the image's host:\n{}", dns.log());

    // A template whose checksum is not the image's.
    let task = lab.start_op(srv, "operation_os", os(&bad)).await;
    let (t, _) = wait_timed(&lab.s, task, 200).await;
    assert_eq!(t["status"], "fail", "{t}\nconsole:\n{}", vm.console());
    let msg = t["status_info"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("checksum mismatch") && msg.contains(&sha), "{msg}");
    // What was written cannot boot: its first MiB is zeroed on both disks.
    vm.ipmitool(&["chassis", "power", "off"]);
    for n in 0..2 {
        assert!(vm.disk_samples(n)[0].iter().all(|b| *b == 0), "disk{n}: the unverified image's start is zeroed");
    }

    // The other levels two disks allow: raid_0 stripes the image in 512 KiB chunks (the
    // first, with the boot sector, on disk 0); no_raid writes it onto the first disk
    // alone, here from the same image as qcow2 (the agent writes the disk it describes).
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .args([files.0.join("os.img"), files.0.join("os.qcow2")])
        .status();
    assert!(st.is_ok_and(|s| s.success()), "qemu-img convert");
    let out = std::process::Command::new("sha256sum").arg(files.0.join("os.qcow2")).output().unwrap();
    let qsha = String::from_utf8_lossy(&out.stdout).split(' ').next().unwrap_or_default().to_owned();
    let qcow = lab
        .s
        .post(
            "/dci/v3/os_template",
            json!({"name": "Test image (qcow2)", "type": "os", "image_url": url.replace("os.img", "os.qcow2"),
                   "image_sha256": qsha}),
        )
        .await["id"]
        .clone();
    const CHUNK: usize = 512 << 10;
    for (raid, tpl) in [("raid_0", &good), ("no_raid", &qcow)] {
        let body = json!({"hdd_raid": raid, "os_template_id": tpl, "password": "s3cret-pass"});
        let task = lab.start_op(srv, "operation_os", body).await;
        let (t, _) = wait_timed(&lab.s, task, 200).await;
        assert_eq!(t["status"], "complete", "{raid}: {t}\nconsole:\n{}", vm.console());
        assert!(vm.wait_console(IMAGE_LINE, Duration::from_secs(30)), "{raid}: no disk boot: {}", vm.console());
        assert!(vm.ipmitool(&["chassis", "power", "off"]).0);
        let (d0, d1) = (vm.disk_raw(0), vm.disk_raw(1));
        if raid == "raid_0" {
            assert!(d0[..CHUNK] == img[..CHUNK] && d1[..CHUNK] == img[CHUNK..2 * CHUNK], "raid_0: the stripes");
        } else {
            assert!(d0[..4 << 20] == img[..4 << 20], "no_raid from qcow2: disk 0 reads as the image");
            assert!(has(&d0[4 << 20..12 << 20], "local-hostname: \"vm-5\""), "no_raid: the seed on disk 0");
        }
    }
    lab.s.stop().await;
}

/// `setup_ipmi` with an `ipmi_pool`: diagnostics take the pool's next address, the agent
/// gives the machine's BMC (in-band, through the machine's KCS interface) dcim's user,
/// a new password and that address, and dcim, once it has logged in there over the
/// LAN, manages the server through that BMC user and address. `ipmi_sim` cannot move
/// to a new address by itself, so the test starts it answering on the pool's one
/// address as well, as a real BMC would once given it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_ipmi_gives_the_bmc_a_user_and_an_address_in_band() {
    let _one = MACHINES.lock().await;
    let lab = Lab::start(9, |_| {}).await;
    let bmc_ip = "127.79.9.20";
    let vm = VirtualMachine::start_full(&lab.ns, "52:54:00:79:09:01", Firmware::Bios, &[bmc_ip]);
    let srv = lab.server("vm-9", &vm.mac, &vm).await;
    let net = lab.s.post("/ip/v3/ipnet", json!({"name": "127.79.9.0/24", "gateway": "127.79.9.1"})).await;
    let pool = lab
        .s
        .post(
            "/ip/v3/ippool",
            json!({"name": "ipmi", "ranges": [{"ipnet": net["id"], "start": bmc_ip, "end": bmc_ip}]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let started = std::time::Instant::now();
    let body = json!({"setup_ipmi": true, "ipmi_pool": pool, "os_template_id": 0, "clear_hdd": "none"});
    let task = lab.start_op(srv, "operation_diag", body).await;
    let (t, seen) = wait_timed(&lab.s, task, 150).await;
    assert_eq!(t["status"], "complete", "{t}\nconsole:\n{}\npower: {}", vm.console(), vm.file("power.log"));
    println!(
        "diagnostics with setup_ipmi, one BIOS machine: {:.1} s from the request to complete; {}; BMC set up {:.1} s",
        started.elapsed().as_secs_f64(),
        timeline(&seen),
        seen.get("set up IPMI").copied().unwrap_or(f64::NAN) - seen.get("boot from network").copied().unwrap_or(0.0)
    );
    assert_diagnosed(&lab.s, srv, &vm).await;
    assert!(!vm.running(), "the machine is off at the end");

    // The server's BMC is now dcim's user at the pool's address (same port).
    let server = lab.s.get(&format!("/dci/v3/server/{srv}")).await;
    let port = vm.bmc_address().rsplit_once(':').unwrap().1.to_owned();
    assert_eq!(server["ipmi"]["address"], format!("{bmc_ip}:{port}"), "{server}");
    assert_eq!(t["status_info"]["ipmi"]["user"], "dcim", "{t}");
    assert_eq!(server["ipmi"]["type"], "IPMI v2(lanplus)", "{server}");
    // The BMC, asked over the LAN as its own administrator: the address and the user.
    let (ok, lan) = vm.ipmitool(&["lan", "print", "1"]);
    assert!(ok, "{lan}");
    assert!(lan.contains(&format!("IP Address              : {bmc_ip}")), "{lan}");
    assert!(lan.contains("Static Address") && lan.contains("255.255.255.0") && lan.contains("127.79.9.1"), "{lan}");
    let (ok, users) = vm.ipmitool(&["user", "list", "1"]);
    assert!(ok, "{users}");
    let dcim = users.lines().find(|l| l.split_whitespace().nth(1) == Some("dcim")).unwrap_or_default();
    assert!(dcim.starts_with("3 ") && dcim.contains("ADMINISTRATOR"), "{users}");

    // The address is the BMC's in IPAM, not one of the server's own.
    let ips = lab.s.get(&format!("/dci/v3/ip?where=pool%20EQ%20{pool}")).await;
    assert_eq!(ips["size"], 1, "{ips}");
    let ip = &ips["list"][0];
    assert_eq!(
        (&ip["name"], &ip["purpose"], &ip["status"], &ip["server"]),
        (&json!(bmc_ip), &json!("ipmi"), &json!("ok"), &json!("vm-9"))
    );
    assert_eq!(lab.s.get(&format!("/dci/v3/server/{srv}/ip")).await["size"], 0);

    // dcim powers the server through its own user: the factory admin's password can
    // change under it.
    let (ok, out) = vm.ipmitool(&["user", "set", "password", "2", "changed-by-owner"]);
    assert!(ok, "{out}");
    let t = run(&lab.s, srv, "power_on", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(vm.running(), "powered on through the dcim user");
    let t = run(&lab.s, srv, "power_off", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");

    // Again without a pool: the BMC keeps the address it has, dcim's user keeps its slot
    // and gets a new password, with which dcim powers the server.
    let task = lab.start_op(srv, "operation_diag", json!({"setup_ipmi": true, "clear_hdd": "none"})).await;
    let (t, _) = wait_timed(&lab.s, task, 150).await;
    assert_eq!(t["status"], "complete", "{t}\nconsole:\n{}", vm.console());
    assert_eq!(t["status_info"]["ipmi"], json!({"address": format!("{bmc_ip}:{port}"), "user": "dcim"}), "{t}");
    let p: u16 = port.parse().unwrap();
    let (ok, users) = common::sims::run_ipmitool(
        p,
        "admin",
        "changed-by-owner",
        &["-I", "lanplus", "-C", "3"],
        &["user", "list", "1"],
    );
    assert!(ok, "{users}");
    assert_eq!(users.lines().filter(|l| l.split_whitespace().nth(1) == Some("dcim")).count(), 1, "{users}");
    let t = run(&lab.s, srv, "power_on", json!({})).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(vm.running(), "powered on with the new password");
    lab.s.stop().await;
}

/// Two provisioning segments, one per location (`netboot_segments`): each machine is
/// answered on its own segment (its lease comes from that segment's range) and its
/// agent reports through that segment's listener; a server of a location no segment
/// serves fails at once, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_location_boots_on_its_own_segment() {
    let _one = MACHINES.lock().await;
    let image = boot_image();
    let mut nss = vec![];
    let mut segments = vec![];
    for (location, seg) in [(1, 6u8), (2, 7)] {
        let host = format!("10.79.{seg}.1");
        let ns = Netns::create(&host);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        segments.push(json!({
            "listen": format!("{host}:{port}"), "locations": [location],
            "interface": ns.host_if, "server_ip": host,
            "mode": "full", "first": format!("10.79.{seg}.100"), "last": format!("10.79.{seg}.150"),
            "prefix_len": 24, "http_base": format!("http://{host}:{port}"), "boot_files_dir": image,
            "kernel_args": "console=ttyS0 quiet panic=-1 dcim.settle=2"
        }));
        nss.push(ns);
    }
    let s = TestServer::start_with(Db::Sqlite, |c| {
        fast_tasks(c);
        c.power_timeout_secs = 60;
        c.agent_timeout_secs = 120;
        c.netboot_segments = serde_json::from_value(json!(segments)).unwrap();
    })
    .await;
    for (i, name) in ["DC-1", "DC-2", "DC-3"].iter().enumerate() {
        assert_eq!(s.post("/dci/v3/location", json!({"name": name})).await["id"], i + 1);
    }
    s.post("/dci/v3/os_template", json!({"name": "Diag", "type": "diag"})).await;
    let vms =
        [VirtualMachine::start(&nss[0], "52:54:00:79:06:01"), VirtualMachine::start(&nss[1], "52:54:00:79:07:01")];
    let mut tasks = vec![];
    for (i, vm) in vms.iter().enumerate() {
        let srv = s
            .post(
                "/dci/v3/server",
                json!({"name": format!("seg-{i}"), "location_id": i + 1, "mac": vm.mac,
                       "ipmi": {"address": vm.bmc_address(), "type": "IPMI v2(lanplus)", "user": BMC_USER, "password": BMC_PASSWORD}}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        let (st, v) =
            s.call(reqwest::Method::POST, &format!("/dci/v3/server/{srv}/operation_diag"), Some(diag("none"))).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        tasks.push(v["task"].as_i64().unwrap());
    }
    let (a, b) = tokio::join!(wait_long(&s, tasks[0], 240), wait_long(&s, tasks[1], 240));
    for (i, (t, seg)) in [(a, 6), (b, 7)].iter().enumerate() {
        let console = vms[i].console();
        assert_eq!(t["status"], "complete", "machine {i}: {t}\nconsole:\n{console}");
        assert!(
            console.contains(&format!("network: eth0 10.79.{seg}.1")),
            "machine {i} leased on its segment:\n{console}"
        );
    }
    // DC-3 has no segment: refused at the first step, before the machine is touched.
    let srv =
        s.post("/dci/v3/server", json!({"name": "seg-x", "location_id": 3, "mac": "52:54:00:79:08:01"})).await["id"]
            .as_i64()
            .unwrap();
    let t = run(&s, srv, "operation_diag", diag("none")).await;
    assert_eq!(t["status"], "fail", "{t}");
    let msg = t["status_info"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("no netboot segment serves location 3"), "{msg}");
    s.stop().await;
}

/// proxyDHCP beside the site's own DHCP server (dnsmasq in the namespace, handing out
/// addresses and nothing about booting): the machines' firmware takes its address from
/// dnsmasq and its boot from dcim's proxy offer, and the agent, whose DHCP client is no
/// PXE client, is answered by dnsmasq alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_dhcp_beside_the_site_dhcp_server() {
    let _one = MACHINES.lock().await;
    let lab = Lab::start(8, |c| {
        c.netboot.as_mut().unwrap().dhcp = dcim_netboot::DhcpMode::Proxy;
    })
    .await;
    let site = SiteDhcp::start(&lab.ns, "10.79.8.2", "10.79.8.50", "10.79.8.90");
    // A BIOS machine (iPXE in the NIC's ROM asks for everything at once) and a UEFI one
    // (OVMF's own PXE client takes the site's address, then the proxy's boot file on
    // port 4011 or in its offer, and loads iPXE over TFTP).
    let vms = [
        VirtualMachine::start(&lab.ns, "52:54:00:79:08:01"),
        VirtualMachine::start_with(&lab.ns, "52:54:00:79:08:02", Firmware::Uefi),
    ];
    let mut servers = vec![];
    let mut tasks = vec![];
    for (i, vm) in vms.iter().enumerate() {
        let srv = lab.server(&format!("vm-8{i}"), &vm.mac, vm).await;
        tasks.push(lab.start_op(srv, "operation_diag", diag("none")).await);
        servers.push(srv);
    }
    for (i, (t, seen)) in wait_all_timed(&lab.s, &tasks, 240).await.iter().enumerate() {
        let console = vms[i].console();
        assert_eq!(t["status"], "complete", "machine {i}: {t}\nconsole:\n{console}\ndnsmasq:\n{}", site.log());
        println!("proxyDHCP beside the site's DHCP server, machine {i}: {}", timeline(seen));
        assert_diagnosed(&lab.s, servers[i], &vms[i]).await;
        let lease = console.lines().find(|l| l.contains("network: eth0")).unwrap_or_default();
        let last: u8 = lease.rsplit('.').next().and_then(|x| x.split('/').next()?.parse().ok()).unwrap_or(0);
        assert!(lease.contains("10.79.8.") && (50..=90).contains(&last), "the agent's lease is dnsmasq's: {lease}");
    }
    let log = site.log();
    assert!(log.matches("DHCPACK(").count() >= 4, "dnsmasq gave the firmware and the agents their leases:\n{log}");
    lab.s.stop().await;
}
