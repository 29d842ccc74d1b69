//! A provisioning segment for virtual machines: a network namespace, a dcim with its
//! netboot service on it, and the helpers the machine tests and the `vdc` benchmark share
//! (waiting for a task while noting when each step completed).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::vdc::{BMC_PASSWORD, BMC_USER, Netns, VirtualMachine};
use super::{Db, TestServer, fast_tasks};

/// The agent's boot image, built by `scripts/build-bootimage.sh target/bootimage`
/// (`scripts/test.sh` builds it).
pub fn boot_image() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bootimage");
    assert!(
        dir.join("vmlinuz").is_file() && dir.join("initrd.gz").is_file(),
        "the agent's boot image is missing: run scripts/build-bootimage.sh target/bootimage (scripts/test.sh does)"
    );
    dir.canonicalize().unwrap()
}

/// Waits for a task's end, up to `secs`.
pub async fn wait_long(s: &TestServer, id: i64, secs: u64) -> Value {
    wait_timed(s, id, secs).await.0
}

/// Seconds since the Unix epoch, as `power.log` writes them.
pub fn epoch() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Waits for a task's end, noting when each step was first seen complete (polled every
/// 50 ms): Unix time in seconds, by step name, and "task end".
pub async fn wait_timed(s: &TestServer, id: i64, secs: u64) -> (Value, std::collections::BTreeMap<String, f64>) {
    wait_all_timed(s, &[id], secs).await.pop().expect("one task")
}

/// [`wait_timed`] for several tasks at once, each polled every 50 ms until it ends.
pub async fn wait_all_timed(
    s: &TestServer,
    ids: &[i64],
    secs: u64,
) -> Vec<(Value, std::collections::BTreeMap<String, f64>)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut out: Vec<_> = ids.iter().map(|_| (Value::Null, std::collections::BTreeMap::new())).collect();
    loop {
        for (id, (t, seen)) in ids.iter().zip(out.iter_mut()) {
            if seen.contains_key("task end") {
                continue;
            }
            *t = s.get(&format!("/dci/v3/task/{id}")).await;
            for step in t["progress_info"].as_array().into_iter().flatten() {
                if step["status"] == "complete" {
                    seen.entry(step["name"].as_str().unwrap_or_default().to_owned()).or_insert_with(epoch);
                }
            }
            if matches!(t["status"].as_str(), Some("complete" | "fail" | "canceled")) {
                seen.insert("task end".into(), epoch());
            }
        }
        if out.iter().all(|(_, seen)| seen.contains_key("task end")) {
            return out;
        }
        let open: Vec<&Value> = out.iter().filter(|(_, seen)| !seen.contains_key("task end")).map(|(t, _)| t).collect();
        assert!(std::time::Instant::now() < deadline, "tasks {ids:?} did not end in {secs} s: {open:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// When the BMC last started the machine for a network boot: the Unix time of the
/// chassis hook's last `started qemu ... boot=net` line in its `power.log`.
pub fn net_power_on(vm: &VirtualMachine) -> Option<f64> {
    vm.file("power.log")
        .lines()
        .rev()
        .find(|l| l.contains("started qemu") && l.ends_with("boot=net"))
        .and_then(|l| l.split(' ').next()?.parse().ok())
}

/// "power on to hardware report X s, to complete Y s" from [`wait_timed`]'s notes.
pub fn timeline(seen: &std::collections::BTreeMap<String, f64>) -> String {
    let on = seen.get("boot from network").copied().unwrap_or(f64::NAN);
    let at = |k: &str| seen.get(k).map(|t| format!("{:.1} s", t - on)).unwrap_or_else(|| "-".into());
    format!(
        "BMC power on to hardware report {}, to disks wiped {}, to task complete {}",
        at("collect hardware"),
        at("clear disks"),
        at("task end")
    )
}

/// A provisioning segment (namespace `10.79.N.0/24`) served by a dcim with its netboot
/// service, and a diagnostics template.
pub struct Lab {
    pub ns: Netns,
    pub s: TestServer,
    pub loc: Value,
}

impl Lab {
    pub async fn start(segment: u8, tune: impl FnOnce(&mut dcim::Config)) -> Lab {
        let image = boot_image();
        let host = format!("10.79.{segment}.1");
        let ns = Netns::create(&host);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let netboot: dcim_netboot::NetbootConfig = serde_json::from_value(json!({
            "interface": ns.host_if, "server_ip": host,
            "mode": "full", "first": format!("10.79.{segment}.100"), "last": format!("10.79.{segment}.150"),
            "prefix_len": 24, "http_base": format!("http://{host}:{port}"), "boot_files_dir": image,
            "kernel_args": "console=ttyS0 quiet panic=-1 dcim.settle=2"
        }))
        .unwrap();
        let s = TestServer::start_with(Db::Sqlite, |c| {
            fast_tasks(c);
            c.power_timeout_secs = 60;
            c.agent_timeout_secs = 120;
            c.netboot = Some(netboot);
            c.netboot_listen = Some(format!("{host}:{port}"));
            tune(c);
        })
        .await;
        let loc = s.post("/dci/v3/location", json!({"name": "DC-1"})).await;
        s.post("/dci/v3/os_template", json!({"name": "Diag", "type": "diag"})).await;
        Lab { ns, s, loc }
    }

    /// A server for a machine whose boot MAC is `mac` and whose BMC is `vm`'s.
    pub async fn server(&self, name: &str, mac: &str, vm: &VirtualMachine) -> i64 {
        self.s
            .post(
                "/dci/v3/server",
                json!({"name": name, "location_id": self.loc["id"], "mac": mac,
                       "ipmi": {"address": vm.bmc_address(), "type": "IPMI v2(lanplus)", "user": BMC_USER, "password": BMC_PASSWORD}}),
            )
            .await["id"]
            .as_i64()
            .unwrap()
    }

    pub async fn start_op(&self, srv: i64, op: &str, body: Value) -> i64 {
        let (st, v) = self.s.call(reqwest::Method::POST, &format!("/dci/v3/server/{srv}/{op}"), Some(body)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["task"].as_i64().unwrap()
    }
}

pub fn diag(clear_hdd: &str) -> Value {
    json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": clear_hdd})
}
