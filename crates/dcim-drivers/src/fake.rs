//! The fake device set, as Ironic's fake-hardware: real code without a wire
//! protocol, for demos, tests and benchmarks. One [`FakeLab`] per process keeps the
//! state of every fake BMC (power, next boot device), switch port (admin status)
//! and PDU outlet, keyed by device address. Every call waits the configured delay
//! (global or per device) and then fails if a [`Fault`] matches it, so a test can
//! break any step of any operation.
//!
//! A fake machine that powers on with PXE as next boot and a boot prepared for its
//! MAC runs the fake in-band agent: it posts the reports a real agent would (hardware
//! found, disks wiped, OS installed) to the task's callback with the task's secret.
//!
//! A fake switch reports 48 ports (`ge-0/0/0` to `ge-0/0/47`, ifIndex 1 to 48, up,
//! 1 Gbit/s), a fake PDU 24 outlets (`1` to `24`, on). Ports and outlets whose state
//! was never set read as up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dcim_core::{ClearMode, OutletStatus, PortStatus, ReportKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    BootDevice, BootDriver, BootMode, BootRequest, DriverError, OutletInfo, PduDriver, PortInfo, PowerDriver,
    PowerState, SwitchDriver,
};

/// An injected failure: the next `times` calls of `op` (or every call, `*`) on
/// `device` (an address, or `*`) fail; `transient` ones look like an unreachable
/// device (the engine retries them), others like a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub device: String,
    pub op: String,
    /// `None`: until cleared.
    pub times: Option<u32>,
    #[serde(default)]
    pub transient: bool,
    pub message: Option<String>,
    /// Let this many matching calls through before failing.
    #[serde(default)]
    pub skip: u32,
}

/// The operations a fault can name.
pub const OPS: &[&str] = &[
    "power_status",
    "power_on",
    "power_off",
    "power_reset",
    "set_boot_device",
    "switch_ports",
    "set_admin",
    "oper_status",
    "pdu_outlets",
    "outlet_status",
    "set_outlet",
    "boot_prepare",
    "boot_cleanup",
    "agent_hardware",
    "agent_bmc",
    "agent_wipe",
    "agent_install",
    "agent_boot",
];

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub power: PowerState,
    pub next_boot: BootDevice,
    pub boot_persistent: bool,
    /// Network boots so far.
    pub net_boots: u64,
    /// Power commands (on, off, reset) received so far.
    pub commands: u64,
    #[serde(skip)]
    pub mac: Option<String>,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            power: PowerState::Off,
            next_boot: BootDevice::Disk,
            boot_persistent: false,
            net_boots: 0,
            commands: 0,
            mac: None,
        }
    }
}

#[derive(Default)]
struct LabState {
    machines: HashMap<String, Machine>,
    ports: HashMap<(String, i64), bool>,
    /// What each switch port's ifAlias says (the description an operator set).
    port_aliases: HashMap<(String, i64), String>,
    outlets: HashMap<(String, i64), bool>,
    boots: HashMap<String, BootRequest>,
    hardware: HashMap<String, Value>,
    faults: Vec<Fault>,
    delay: Duration,
    device_delay: HashMap<String, Duration>,
}

/// What `GET /dci/v3/fake` shows.
#[derive(Debug, Clone, Serialize)]
pub struct LabView {
    pub machines: HashMap<String, Machine>,
    /// `"address/ifIndex"` -> `up` or `down`, for ports set at least once.
    pub ports: HashMap<String, String>,
    pub outlets: HashMap<String, String>,
    pub faults: Vec<Fault>,
    pub delay_ms: u64,
    /// MAC -> task id of each prepared network boot.
    pub boots: HashMap<String, i64>,
}

/// The state of every fake device of this process.
pub struct FakeLab {
    state: Mutex<LabState>,
    client: reqwest::Client,
    /// Every call that reached a device, one line each (`OP DEVICE`), when asked for:
    /// what a test counts across processes.
    call_log: Mutex<Option<std::fs::File>>,
}

impl FakeLab {
    pub fn new(delay: Duration) -> Arc<FakeLab> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            // The fake agent only ever calls this process back on loopback, whose
            // demo certificate is self-signed.
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Arc::new(FakeLab {
            state: Mutex::new(LabState { delay, ..LabState::default() }),
            client,
            call_log: Mutex::new(None),
        })
    }

    /// Appends every call that reaches a device to `path` (`OP DEVICE` lines).
    pub fn log_calls_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        *self.call_log.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_fault(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The delay of every call, or of one device's calls.
    pub fn set_delay(&self, device: Option<&str>, delay: Duration) {
        let mut s = self.lock();
        match device {
            Some(d) => {
                s.device_delay.insert(d.to_owned(), delay);
            }
            None => s.delay = delay,
        }
    }

    /// The description (ifAlias) a fake switch reports for port `index`.
    pub fn set_port_alias(&self, address: &str, index: i64, alias: &str) {
        self.lock().port_aliases.insert((address.to_owned(), index), alias.to_owned());
    }

    /// The hardware the fake agent reports for the machine booting from `mac`.
    pub fn set_hardware(&self, mac: &str, hw: Value) {
        self.lock().hardware.insert(mac.to_ascii_lowercase(), hw);
    }

    pub fn view(&self) -> LabView {
        let s = self.lock();
        let fmt = |m: &HashMap<(String, i64), bool>| {
            m.iter().map(|((a, i), up)| (format!("{a}/{i}"), if *up { "up" } else { "down" }.to_owned())).collect()
        };
        LabView {
            machines: s.machines.clone(),
            ports: fmt(&s.ports),
            outlets: fmt(&s.outlets),
            faults: s.faults.clone(),
            delay_ms: s.delay.as_millis() as u64,
            boots: s.boots.iter().map(|(m, b)| (m.clone(), b.task_id)).collect(),
        }
    }

    /// Waits the delay, then fails if a fault matches.
    async fn enter(&self, device: &str, op: &str) -> Result<(), DriverError> {
        self.enter_logged(device, op, device).await
    }

    /// [`enter`](Self::enter), logging the call as made to `logged` (a boot names its
    /// machine, where faults name the boot service).
    async fn enter_logged(&self, device: &str, op: &str, logged: &str) -> Result<(), DriverError> {
        let delay = {
            let s = self.lock();
            s.device_delay.get(device).copied().unwrap_or(s.delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.fault(device, op)?;
        if let Some(f) = self.call_log.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            use std::io::Write;
            let _ = writeln!(f, "{op} {logged}");
        }
        Ok(())
    }

    fn fault(&self, device: &str, op: &str) -> Result<(), DriverError> {
        let mut s = self.lock();
        let Some(i) =
            s.faults.iter().position(|f| (f.device == device || f.device == "*") && (f.op == op || f.op == "*"))
        else {
            return Ok(());
        };
        if s.faults[i].skip > 0 {
            s.faults[i].skip -= 1;
            return Ok(());
        }
        let f = s.faults[i].clone();
        match f.times {
            Some(n) if n <= 1 => {
                s.faults.remove(i);
            }
            Some(n) => s.faults[i].times = Some(n - 1),
            None => {}
        }
        let msg = f.message.unwrap_or_else(|| format!("injected failure of {op} on {device}"));
        Err(if f.transient { DriverError::Unreachable(format!("{device} ({msg})")) } else { DriverError::Refused(msg) })
    }

    pub fn machine(self: &Arc<Self>, address: &str, mac: Option<&str>) -> FakePower {
        FakePower { lab: self.clone(), address: address.to_owned(), mac: mac.map(str::to_ascii_lowercase) }
    }

    pub fn switch(self: &Arc<Self>, address: &str) -> FakeSwitch {
        FakeSwitch { lab: self.clone(), address: address.to_owned(), port_count: 48 }
    }

    pub fn pdu(self: &Arc<Self>, address: &str) -> FakePdu {
        FakePdu { lab: self.clone(), address: address.to_owned(), outlet_count: 24 }
    }

    pub fn boot(self: &Arc<Self>) -> FakeBoot {
        FakeBoot { lab: self.clone() }
    }

    /// The machine came up from the network: run the agent for its prepared boot.
    fn net_boot(self: &Arc<Self>, mac: Option<&str>) {
        let Some(mac) = mac else { return };
        if self.fault(&format!("agent:{mac}"), "agent_boot").is_err() {
            return; // the machine did not come up from the network
        }
        let req = self.lock().boots.get(mac).cloned();
        if let Some(req) = req {
            let lab = self.clone();
            tokio::spawn(async move { lab.run_agent(req).await });
        }
    }

    fn hardware_for(&self, mac: &str) -> Value {
        self.lock().hardware.get(mac).cloned().unwrap_or_else(|| {
            json!({
                "cpu": {"model": "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz", "sockets": 1, "cores": 8, "threads": 16},
                "memory": {"total_mib": 65536},
                "disks": [
                    {"name": "nvme0n1", "size_gb": 1024, "type": "NVMe", "serial": format!("FAKE-{mac}-0"), "model": "Fake NVMe"},
                    {"name": "nvme1n1", "size_gb": 1024, "type": "NVMe", "serial": format!("FAKE-{mac}-1"), "model": "Fake NVMe"}
                ],
                "nics": [{"name": "eth0", "mac": mac, "link": true}],
                "motherboard": {"vendor": "dcim", "model": "Fake Board", "serial": format!("FAKE-{mac}")}
            })
        })
    }

    /// Plays the in-band agent: reports through the same callback a real one uses.
    async fn run_agent(self: Arc<Self>, req: BootRequest) {
        let device = format!("agent:{}", req.mac);
        let delay = self.lock().delay;
        tokio::time::sleep(delay).await;
        let hw = self.hardware_for(&req.mac);
        let disks: Vec<Value> = hw["disks"].as_array().cloned().unwrap_or_default();
        let wipe = |mode: ClearMode| {
            let what = if mode == ClearMode::Full { "every byte" } else { "signatures, first and last MiB" };
            json!({"mode": mode, "disks": disks.iter().map(|d| json!({"name": d["name"], "wiped": what})).collect::<Vec<_>>()})
        };
        let mut reports: Vec<(&str, ReportKind, Value)> = vec![];
        match &req.mode {
            BootMode::Diag { clear_hdd } => {
                reports.push(("agent_hardware", ReportKind::Hardware, hw.clone()));
                if let Some(b) = req.answer.get("bmc").filter(|b| b.is_object()) {
                    // setup_ipmi: the given address, else one of the BMC's own (198.18.0.0/15,
                    // from the MAC: the fake BMC's machine is then a new one, powered off).
                    let own = || {
                        let m: Vec<u8> = req.mac.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
                        format!("198.18.{}.{}", m.get(4).copied().unwrap_or(0), m.get(5).copied().unwrap_or(1))
                    };
                    let address = b["ip"]["address"].as_str().map_or_else(own, str::to_owned);
                    let data = json!({"user": b["user"], "user_id": 3, "channel": 1, "address": address,
                                      "netmask": b["ip"]["netmask"], "ip_source": "static"});
                    reports.push(("agent_bmc", ReportKind::Bmc, data));
                }
                if *clear_hdd != ClearMode::None {
                    reports.push(("agent_wipe", ReportKind::Wiped, wipe(*clear_hdd)));
                }
                reports.push(("", ReportKind::Done, json!({})));
            }
            BootMode::Wipe { clear_hdd } => {
                reports.push(("agent_wipe", ReportKind::Wiped, wipe(*clear_hdd)));
                reports.push(("", ReportKind::Done, json!({})));
            }
            BootMode::Install { template } => {
                let url = req.answer["image_url"].as_str().unwrap_or_default().to_owned();
                reports.push(("", ReportKind::Progress, json!({"percent": 10, "message": format!("writing {url}")})));
                let mut installed =
                    json!({"template": template, "hostname": req.answer["hostname"], "raid": req.answer["raid"]});
                // An image dcim serves itself is fetched and checked as a real agent
                // would; any other is taken as written (the fake lab sends nothing to
                // other hosts).
                if same_origin(&url, &req.callback) {
                    let expected = req.answer["image_sha256"].as_str().unwrap_or_default();
                    match self.fetch_sha256(&url).await {
                        Ok((bytes, sha256)) if sha256 == expected => {
                            installed["bytes"] = bytes.into();
                            installed["sha256"] = sha256.into();
                        }
                        Ok((_, sha256)) => {
                            let message = format!("{url}: sha256 {sha256}, the template says {expected}");
                            reports.push(("", ReportKind::Failed, json!({"step": "agent_image", "message": message})));
                        }
                        Err(e) => {
                            let message = format!("{url}: {e}");
                            reports.push(("", ReportKind::Failed, json!({"step": "agent_image", "message": message})));
                        }
                    }
                }
                reports.push(("agent_install", ReportKind::Installed, installed));
            }
        }
        // A failure ends the reports where it stands.
        if let Some(at) = reports.iter().position(|(_, kind, _)| *kind == ReportKind::Failed) {
            reports.truncate(at + 1);
        }
        for (op, kind, data) in reports {
            let (kind, data) = match (!op.is_empty()).then(|| self.fault(&device, op)).transpose() {
                Err(e) => (ReportKind::Failed, json!({"step": op, "message": e.to_string()})),
                Ok(_) => (kind, data),
            };
            let failed = kind == ReportKind::Failed;
            let url = format!("{}/{}/report", req.callback, req.task_id);
            let sent =
                self.client.post(&url).bearer_auth(&req.secret).json(&json!({"kind": kind, "data": data})).send().await;
            if let Err(e) = sent {
                tracing::warn!(%url, error = %e, "fake agent could not report");
                return;
            }
            if failed {
                return;
            }
        }
    }
}

impl FakeLab {
    /// Downloads `url` and returns its size and SHA-256 (hex).
    async fn fetch_sha256(&self, url: &str) -> Result<(u64, String), reqwest::Error> {
        use sha2::Digest;
        let mut r = self.client.get(url).send().await?.error_for_status()?;
        let mut hash = sha2::Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = r.chunk().await? {
            bytes += chunk.len() as u64;
            hash.update(&chunk);
        }
        Ok((bytes, hex::encode(hash.finalize())))
    }
}

/// Whether `url` is served by the same scheme, host and port as `base`.
fn same_origin(url: &str, base: &str) -> bool {
    let origin = |u: &str| {
        let (scheme, rest) = u.split_once("://")?;
        Some((scheme.to_owned(), rest.split('/').next()?.to_owned()))
    };
    origin(url).is_some_and(|o| Some(o) == origin(base))
}

/// A fake BMC.
pub struct FakePower {
    lab: Arc<FakeLab>,
    address: String,
    mac: Option<String>,
}

impl FakePower {
    fn with<T>(&self, f: impl FnOnce(&mut Machine) -> T) -> T {
        let mut s = self.lab.lock();
        let m = s.machines.entry(self.address.clone()).or_default();
        if m.mac.is_none() {
            m.mac = self.mac.clone();
        }
        f(m)
    }

    /// Powers on; a PXE boot wakes the agent.
    fn boot(&self) {
        let net = self.with(|m| {
            m.power = PowerState::On;
            m.commands += 1;
            let net = m.next_boot == BootDevice::Pxe;
            if net {
                m.net_boots += 1;
                if !m.boot_persistent {
                    m.next_boot = BootDevice::Disk;
                }
            }
            net
        });
        if net {
            self.lab.net_boot(self.mac.as_deref());
        }
    }
}

#[async_trait]
impl PowerDriver for FakePower {
    async fn status(&self) -> Result<PowerState, DriverError> {
        self.lab.enter(&self.address, "power_status").await?;
        Ok(self.with(|m| m.power))
    }

    async fn on(&self) -> Result<(), DriverError> {
        self.lab.enter(&self.address, "power_on").await?;
        if self.with(|m| m.power) == PowerState::Off {
            self.boot();
        } else {
            self.with(|m| m.commands += 1);
        }
        Ok(())
    }

    async fn off(&self) -> Result<(), DriverError> {
        self.lab.enter(&self.address, "power_off").await?;
        self.with(|m| {
            m.power = PowerState::Off;
            m.commands += 1;
        });
        Ok(())
    }

    async fn reset(&self) -> Result<(), DriverError> {
        self.lab.enter(&self.address, "power_reset").await?;
        self.boot();
        Ok(())
    }

    async fn set_boot_device(&self, device: BootDevice, _efi: bool, persistent: bool) -> Result<(), DriverError> {
        self.lab.enter(&self.address, "set_boot_device").await?;
        self.with(|m| {
            m.next_boot = device;
            m.boot_persistent = persistent;
        });
        Ok(())
    }
}

/// A fake switch.
pub struct FakeSwitch {
    lab: Arc<FakeLab>,
    address: String,
    pub port_count: i64,
}

#[async_trait]
impl SwitchDriver for FakeSwitch {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError> {
        self.lab.enter(&self.address, "switch_ports").await?;
        let s = self.lab.lock();
        Ok((1..=self.port_count)
            .map(|i| {
                let up = s.ports.get(&(self.address.clone(), i)).copied().unwrap_or(true);
                let status = if up { PortStatus::Up } else { PortStatus::Down };
                // As a Juniper switch answers: ifDescr is the interface's name.
                PortInfo {
                    index: i,
                    name: format!("ge-0/0/{}", i - 1),
                    description: format!("ge-0/0/{}", i - 1),
                    alias: s.port_aliases.get(&(self.address.clone(), i)).cloned().unwrap_or_default(),
                    admin_status: status,
                    oper_status: status,
                    speed: Some(1000),
                }
            })
            .collect())
    }

    async fn set_admin(&self, index: i64, up: bool) -> Result<(), DriverError> {
        self.lab.enter(&self.address, "set_admin").await?;
        if !(1..=self.port_count).contains(&index) {
            return Err(DriverError::Refused(format!("no such ifIndex {index}")));
        }
        self.lab.lock().ports.insert((self.address.clone(), index), up);
        Ok(())
    }

    async fn oper_status(&self, index: i64) -> Result<PortStatus, DriverError> {
        self.lab.enter(&self.address, "oper_status").await?;
        let up = self.lab.lock().ports.get(&(self.address.clone(), index)).copied().unwrap_or(true);
        Ok(if up { PortStatus::Up } else { PortStatus::Down })
    }
}

/// A fake PDU.
pub struct FakePdu {
    lab: Arc<FakeLab>,
    address: String,
    pub outlet_count: i64,
}

#[async_trait]
impl PduDriver for FakePdu {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError> {
        self.lab.enter(&self.address, "pdu_outlets").await?;
        let s = self.lab.lock();
        Ok((1..=self.outlet_count)
            .map(|i| {
                let on = s.outlets.get(&(self.address.clone(), i)).copied().unwrap_or(true);
                OutletInfo {
                    index: i,
                    name: i.to_string(),
                    status: if on { OutletStatus::Up } else { OutletStatus::Down },
                }
            })
            .collect())
    }

    async fn outlet_status(&self, index: i64) -> Result<OutletStatus, DriverError> {
        self.lab.enter(&self.address, "outlet_status").await?;
        let on = self.lab.lock().outlets.get(&(self.address.clone(), index)).copied().unwrap_or(true);
        Ok(if on { OutletStatus::Up } else { OutletStatus::Down })
    }

    async fn set_outlet(&self, index: i64, on: bool) -> Result<(), DriverError> {
        self.lab.enter(&self.address, "set_outlet").await?;
        if !(1..=self.outlet_count).contains(&index) {
            return Err(DriverError::Refused(format!("no such outlet {index}")));
        }
        self.lab.lock().outlets.insert((self.address.clone(), index), on);
        Ok(())
    }

    /// Off and on again at once: a fake outlet needs no pause between them (the lab's
    /// delay still applies to each call).
    async fn reboot_outlet(&self, index: i64) -> Result<(), DriverError> {
        self.set_outlet(index, false).await?;
        self.set_outlet(index, true).await
    }
}

/// The fake boot service: remembers prepared boots for the fake machines.
pub struct FakeBoot {
    lab: Arc<FakeLab>,
}

#[async_trait]
impl BootDriver for FakeBoot {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError> {
        self.lab.enter_logged("boot", "boot_prepare", &format!("boot:{}", req.mac.to_ascii_lowercase())).await?;
        self.lab.lock().boots.insert(req.mac.to_ascii_lowercase(), req.clone());
        Ok(())
    }

    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError> {
        self.lab.enter_logged("boot", "boot_cleanup", &format!("boot:{}", mac.to_ascii_lowercase())).await?;
        let mut s = self.lab.lock();
        let mac = mac.to_ascii_lowercase();
        if s.boots.get(&mac).is_some_and(|b| b.task_id == task_id) {
            s.boots.remove(&mac);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn faults_fire_the_given_number_of_times() {
        let lab = FakeLab::new(Duration::ZERO);
        let m = lab.machine("bmc1", Some("52:54:00:00:00:01"));
        lab.add_fault(Fault {
            device: "bmc1".into(),
            op: "power_on".into(),
            times: Some(2),
            transient: true,
            message: None,
            skip: 0,
        });
        assert!(m.on().await.unwrap_err().is_transient());
        assert!(m.on().await.is_err());
        m.on().await.unwrap();
        assert_eq!(m.status().await.unwrap(), PowerState::On);
        lab.add_fault(Fault {
            device: "*".into(),
            op: "power_off".into(),
            times: None,
            transient: false,
            message: Some("nope".into()),
            skip: 1,
        });
        m.off().await.unwrap();
        assert_eq!(m.off().await.unwrap_err(), DriverError::Refused("nope".into()));
        assert!(m.off().await.is_err(), "until cleared");
        lab.clear_faults();
        m.off().await.unwrap();
        assert_eq!(m.status().await.unwrap(), PowerState::Off);
    }

    #[tokio::test]
    async fn ports_and_outlets_keep_state() {
        let lab = FakeLab::new(Duration::ZERO);
        let sw = lab.switch("sw");
        sw.set_admin(3, false).await.unwrap();
        assert_eq!(sw.oper_status(3).await.unwrap(), PortStatus::Down);
        assert_eq!(sw.ports().await.unwrap()[2].admin_status, PortStatus::Down);
        assert!(sw.set_admin(99, false).await.is_err());
        let pdu = lab.pdu("pdu");
        pdu.set_outlet(2, false).await.unwrap();
        assert_eq!(pdu.outlet_status(2).await.unwrap(), OutletStatus::Down);
        assert_eq!(pdu.outlet_status(1).await.unwrap(), OutletStatus::Up);
    }

    #[tokio::test]
    async fn pxe_boot_is_once_unless_persistent() {
        let lab = FakeLab::new(Duration::ZERO);
        let m = lab.machine("bmc", None);
        m.set_boot_device(BootDevice::Pxe, true, false).await.unwrap();
        m.reset().await.unwrap();
        let v = lab.view();
        assert_eq!((v.machines["bmc"].net_boots, v.machines["bmc"].next_boot), (1, BootDevice::Disk));
    }
}
