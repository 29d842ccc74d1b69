//! Device drivers: how dcim talks to BMCs, switches, PDUs and boot services. Each
//! concern is a small object-safe trait ([`PowerDriver`], [`SwitchDriver`],
//! [`PduDriver`], [`BootDriver`]); implementations are grouped by protocol (`fake`;
//! [`ipmi`] and [`redfish`] for BMCs; [`snmp`] for switches and PDUs; the netboot
//! service when it lands) and picked by [`Drivers`] from a device's inventory
//! (`ipmi.type`, a switch's or PDU's `protocol` and a PDU's `model`). [`PduPower`] lets PDU outlets stand in
//! as a server's power driver.
//!
//! Drivers never touch the database or HTTP handlers: they get the device's
//! address and access data and return typed errors; the task engine adds timeouts,
//! retries and progress.

pub mod fake;
pub mod instrumented;
pub mod ipmi;
mod pdu_power;
pub mod redfish;
pub mod remote;
pub mod snmp;

use std::sync::Arc;

use async_trait::async_trait;
use dcim_core::{BmcType, ClearMode, DeviceProtocol, OutletStatus, PortStatus};
use serde::{Deserialize, Serialize};

pub use pdu_power::PduPower;

/// Why a driver call failed, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum DriverError {
    #[error("{0} did not answer")]
    Unreachable(String),
    /// The remote site that reaches the device is not connected (the message says
    /// which, and since when); counted as unreachable.
    #[error("{0}")]
    SiteDown(String),
    #[error("the device refused the credentials: {0}")]
    Auth(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("the device refused the command: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl DriverError {
    /// Worth retrying: the device may answer next time.
    pub fn is_transient(&self) -> bool {
        matches!(self, DriverError::Unreachable(_) | DriverError::SiteDown(_) | DriverError::Timeout(_))
    }

    /// The failure's kind as metrics and task answers name it: `unreachable`, `auth`,
    /// `timeout`, `refused`, `protocol` or `unsupported`.
    pub fn kind(&self) -> &'static str {
        match self {
            DriverError::Unreachable(_) | DriverError::SiteDown(_) => "unreachable",
            DriverError::Auth(_) => "auth",
            DriverError::Timeout(_) => "timeout",
            DriverError::Refused(_) => "refused",
            DriverError::Protocol(_) => "protocol",
            DriverError::Unsupported(_) => "unsupported",
        }
    }
}

/// A server's power as its driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        }
    }
}

impl From<PowerState> for dcim_core::PowerStatus {
    fn from(p: PowerState) -> Self {
        match p {
            PowerState::On => dcim_core::PowerStatus::On,
            PowerState::Off => dcim_core::PowerStatus::Off,
        }
    }
}

/// Where a server boots from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    Pxe,
    Disk,
}

/// Powers a server and chooses its next boot device (a BMC, or PDU outlets).
#[async_trait]
pub trait PowerDriver: Send + Sync {
    async fn status(&self) -> Result<PowerState, DriverError>;
    async fn on(&self) -> Result<(), DriverError>;
    async fn off(&self) -> Result<(), DriverError>;
    /// Reboots a running server, or powers on one that is off.
    async fn reset(&self) -> Result<(), DriverError>;
    /// The next boot device; `persistent` keeps it for every boot after.
    async fn set_boot_device(&self, device: BootDevice, efi: bool, persistent: bool) -> Result<(), DriverError>;
}

/// A switch port as the switch reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// The port's index on the device (SNMP ifIndex).
    pub index: i64,
    pub name: String,
    pub description: String,
    /// The description configured on the port (SNMP ifAlias).
    pub alias: String,
    pub admin_status: PortStatus,
    pub oper_status: PortStatus,
    /// Mbit/s, when known.
    pub speed: Option<i64>,
}

/// A PDU outlet as the PDU reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutletInfo {
    pub index: i64,
    pub name: String,
    pub status: OutletStatus,
}

/// A port's statuses, as the port poller reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortState {
    pub index: i64,
    pub admin_status: PortStatus,
    pub oper_status: PortStatus,
}

/// Reads a switch's ports and opens or shuts them.
#[async_trait]
pub trait SwitchDriver: Send + Sync {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError>;
    async fn set_admin(&self, index: i64, up: bool) -> Result<(), DriverError>;
    async fn oper_status(&self, index: i64) -> Result<PortStatus, DriverError>;
    /// Every port's statuses; drivers that can read them alone (cheaper than
    /// [`ports`](Self::ports)) do.
    async fn port_states(&self) -> Result<Vec<PortState>, DriverError> {
        Ok(self
            .ports()
            .await?
            .into_iter()
            .map(|p| PortState { index: p.index, admin_status: p.admin_status, oper_status: p.oper_status })
            .collect())
    }
}

/// Reads a PDU's outlets and switches them.
#[async_trait]
pub trait PduDriver: Send + Sync {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError>;
    async fn outlet_status(&self, index: i64) -> Result<OutletStatus, DriverError>;
    async fn set_outlet(&self, index: i64, on: bool) -> Result<(), DriverError>;
    /// Switches an outlet off and on again; PDUs with a reboot command use it.
    async fn reboot_outlet(&self, index: i64) -> Result<(), DriverError> {
        self.set_outlet(index, false).await?;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        self.set_outlet(index, true).await
    }
}

/// What the in-band agent is booted to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum BootMode {
    /// Report hardware, then wipe disks unless `clear_hdd` is `none`.
    Diag { clear_hdd: ClearMode },
    /// Wipe disks (`simple` or `full`).
    Wipe { clear_hdd: ClearMode },
    /// Write an OS: the answer data carries hostname, password hash, keys and RAID.
    Install { template: String },
}

/// A network boot prepared for one server and one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootRequest {
    pub task_id: i64,
    /// The per-task secret the agent authenticates its reports with.
    pub secret: String,
    /// Where the agent posts reports: `{callback}/{task_id}/report`.
    pub callback: String,
    /// The MAC the server boots from.
    pub mac: String,
    pub mode: BootMode,
    /// Answer data for the agent (install parameters, wipe mode...).
    pub answer: serde_json::Value,
    /// The server's location: a boot service of several provisioning segments serves
    /// each location from its own.
    pub location_id: Option<i64>,
}

/// Prepares and removes network boots (the netboot service; the fake lab's agent).
#[async_trait]
pub trait BootDriver: Send + Sync {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError>;
    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError>;

    /// Where agents booted for a server of `location` report (`.../agent/v1/task`), when
    /// this service decides it (its segment's HTTP listener); `None`: the engine's own.
    fn agent_callback(&self, _location: Option<i64>) -> Option<String> {
        None
    }
}

/// Where a device is and how to log in to it.
#[derive(Debug, Clone)]
pub struct DeviceAccess {
    /// `host` or `host:port`.
    pub address: String,
    /// Protocol-specific access data as JSON (SNMP community or v3 user and keys).
    pub secret: String,
    /// The device's location: a location a site serves is driven through that site.
    pub location: Option<i64>,
}

/// A server's BMC as the inventory has it.
#[derive(Debug, Clone)]
pub struct BmcAccess {
    pub kind: BmcType,
    pub address: String,
    pub user: String,
    pub password: String,
    /// The server's boot MAC (the fake lab ties its machine to its boot).
    pub mac: Option<String>,
    /// A Redfish BMC's pinned certificate (SHA-256 of its DER).
    pub tls_fingerprint: Option<dcim_tls::Digest>,
    /// The server's location: a location a site serves is driven through that site.
    pub location: Option<i64>,
}

/// How drivers talk to real devices.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// IPMI: how long one datagram waits for its answer, and how often it is sent.
    pub ipmi: ipmi::Timing,
    /// Redfish: longest HTTP request.
    pub redfish_timeout: std::time::Duration,
    /// Redfish: check BMC certificates against the trusted CAs.
    pub bmc_tls_verify: bool,
    /// SNMP (switches, PDUs): per-request timeout and retries.
    pub snmp: snmp::SnmpSettings,
}

impl Default for DriverSettings {
    fn default() -> Self {
        DriverSettings {
            ipmi: ipmi::Timing::default(),
            redfish_timeout: std::time::Duration::from_secs(20),
            bmc_tls_verify: true,
            snmp: snmp::SnmpSettings::default(),
        }
    }
}

/// Picks driver implementations from inventory data.
#[derive(Clone)]
pub struct Drivers {
    /// The fake lab, when its drivers are enabled (the demo, tests, benchmarks); without
    /// it a device of type `fake` cannot be driven.
    pub fake: Option<Arc<fake::FakeLab>>,
    ipmi: Arc<ipmi::Ipmi>,
    redfish: Arc<redfish::Redfish>,
    snmp: snmp::SnmpSettings,
    /// The network boot service of real machines (the netboot service), when one runs.
    netboot: Option<Arc<dyn BootDriver>>,
    /// The sites that serve locations, at the central; devices of those locations are
    /// driven through their site.
    sites: Option<Arc<dyn remote::SiteRouter>>,
    /// Every driver handed out counts its calls here.
    metrics: Arc<dcim_metrics::Metrics>,
}

impl Drivers {
    pub fn new(fake: Option<Arc<fake::FakeLab>>) -> Self {
        Self::with_settings(fake, &DriverSettings::default())
    }

    pub fn with_settings(fake: Option<Arc<fake::FakeLab>>, s: &DriverSettings) -> Self {
        Drivers {
            fake,
            ipmi: Arc::new(ipmi::Ipmi::new(s.ipmi)),
            redfish: Arc::new(redfish::Redfish::new(s.redfish_timeout, s.bmc_tls_verify)),
            snmp: s.snmp.clone(),
            netboot: None,
            sites: None,
            metrics: Arc::new(dcim_metrics::Metrics::new(
                env!("CARGO_PKG_VERSION"),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
            )),
        }
    }

    /// The process's metrics (drivers, tasks and HTTP count into them).
    pub fn metrics(&self) -> &Arc<dcim_metrics::Metrics> {
        &self.metrics
    }

    fn wrap<D: ?Sized>(&self, inner: Box<D>, protocol: &'static str) -> Box<instrumented::Instrumented<D>> {
        Box::new(instrumented::Instrumented { inner, protocol, metrics: self.metrics.clone() })
    }

    /// The fake lab, or why a fake device cannot be driven.
    fn lab(&self) -> Result<&Arc<fake::FakeLab>, DriverError> {
        self.fake.as_ref().ok_or_else(|| {
            DriverError::Unsupported(
                "the fake drivers are off in this server (they are for the demo and tests: --demo or \
                 fake_drivers = true)"
                    .into(),
            )
        })
    }

    /// Devices of the locations `sites` routes are driven through their site.
    pub fn with_sites(mut self, sites: Arc<dyn remote::SiteRouter>) -> Self {
        self.sites = Some(sites);
        self
    }

    /// The site that serves `location`, if any.
    fn site(&self, location: Option<i64>) -> Option<(Arc<dyn remote::SiteLink>, i64)> {
        let location = location?;
        Some((self.sites.as_ref()?.route(location)?, location))
    }

    /// Who holds a network boot prepared for a server of `location` when a site
    /// serves it (`site:ID@PROCESS`, see [`remote::SiteLink::holder`]); none: the process that prepares it.
    pub fn boot_holder(&self, location: Option<i64>) -> Option<String> {
        self.site(location).map(|(link, _)| link.holder())
    }

    /// The BMC driver for `ipmi.type`.
    pub fn power(&self, bmc: &BmcAccess) -> Result<Box<dyn PowerDriver>, DriverError> {
        if let Some((link, location)) = self.site(bmc.location) {
            let inner: Box<dyn PowerDriver> = Box::new(remote::RemotePower { link, location, bmc: bmc.into() });
            return Ok(self.wrap(inner, "site"));
        }
        let (inner, protocol): (Box<dyn PowerDriver>, _) = match bmc.kind {
            BmcType::Fake => (Box::new(self.lab()?.machine(&bmc.address, bmc.mac.as_deref())), "fake"),
            BmcType::IpmiLanplus => (Box::new(self.ipmi.bmc(&bmc.address, &bmc.user, &bmc.password, false)?), "ipmi"),
            BmcType::Ipmi15 => (Box::new(self.ipmi.bmc(&bmc.address, &bmc.user, &bmc.password, true)?), "ipmi"),
            BmcType::Redfish => {
                (Box::new(self.redfish.bmc(&bmc.address, &bmc.user, &bmc.password, bmc.tls_fingerprint)?), "redfish")
            }
        };
        Ok(self.wrap(inner, protocol))
    }

    /// The switch driver for `protocol`.
    pub fn switch(
        &self,
        protocol: DeviceProtocol,
        access: &DeviceAccess,
    ) -> Result<Box<dyn SwitchDriver>, DriverError> {
        if let Some((link, location)) = self.site(access.location) {
            let switch = remote_device(protocol, "", access);
            let inner: Box<dyn SwitchDriver> = Box::new(remote::RemoteSwitch { link, location, switch });
            return Ok(self.wrap(inner, "site"));
        }
        let (inner, name): (Box<dyn SwitchDriver>, _) = match protocol {
            DeviceProtocol::Fake => (Box::new(self.lab()?.switch(&access.address)), "fake"),
            DeviceProtocol::SnmpV2c | DeviceProtocol::SnmpV3 => {
                (Box::new(snmp::SnmpSwitch::new(protocol, access, &self.snmp)?), "snmp")
            }
        };
        Ok(self.wrap(inner, name))
    }

    /// The PDU driver for `protocol` and MIB family `model`.
    pub fn pdu(
        &self,
        protocol: DeviceProtocol,
        model: &str,
        access: &DeviceAccess,
    ) -> Result<Box<dyn PduDriver>, DriverError> {
        if let Some((link, location)) = self.site(access.location) {
            let pdu = remote_device(protocol, model, access);
            let inner: Box<dyn PduDriver> = Box::new(remote::RemotePdu { link, location, pdu });
            return Ok(self.wrap(inner, "site"));
        }
        let (inner, name): (Box<dyn PduDriver>, _) = match protocol {
            DeviceProtocol::Fake => (Box::new(self.lab()?.pdu(&access.address)), "fake"),
            DeviceProtocol::SnmpV2c | DeviceProtocol::SnmpV3 => {
                (Box::new(snmp::pdu::driver(protocol, model, access, &self.snmp)?), "snmp")
            }
        };
        Ok(self.wrap(inner, name))
    }

    /// Real machines boot through `service` (the netboot service lives in its own crate,
    /// which depends on this one).
    pub fn with_netboot(mut self, service: Arc<dyn BootDriver>) -> Self {
        self.netboot = Some(service);
        self
    }

    /// The boot service for a server whose BMC is of `kind` in `location`: its site's
    /// when a site serves the location, else the fake lab's for fake machines and the
    /// netboot service for real ones.
    pub fn boot(&self, kind: Option<BmcType>, location: Option<i64>) -> Result<Box<dyn BootDriver>, DriverError> {
        if let Some((link, location)) = self.site(location) {
            let inner: Box<dyn BootDriver> = Box::new(remote::RemoteBoot { link, location, bmc_kind: kind });
            return Ok(self.wrap(inner, "site"));
        }
        let (inner, name): (Box<dyn BootDriver>, _) = match (kind, &self.netboot) {
            (Some(BmcType::Fake), _) => (Box::new(self.lab()?.boot()), "fake"),
            (_, Some(service)) => (Box::new(Shared(service.clone())), "netboot"),
            (_, None) => {
                return Err(DriverError::Unsupported(
                    "network boot of real machines needs the netboot service; configure [netboot]".into(),
                ));
            }
        };
        Ok(self.wrap(inner, name))
    }
}

fn remote_device(protocol: DeviceProtocol, model: &str, access: &DeviceAccess) -> remote::RemoteDevice {
    remote::RemoteDevice {
        protocol,
        model: model.to_owned(),
        address: access.address.clone(),
        secret: access.secret.clone(),
    }
}

/// A boot service shared by every task.
struct Shared(Arc<dyn BootDriver>);

#[async_trait]
impl BootDriver for Shared {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError> {
        self.0.prepare(req).await
    }

    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError> {
        self.0.cleanup(task_id, mac).await
    }

    fn agent_callback(&self, location: Option<i64>) -> Option<String> {
        self.0.agent_callback(location)
    }
}
