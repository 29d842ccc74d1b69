//! Device drivers: how dcim talks to BMCs, switches, PDUs and boot services. Each
//! concern is a small object-safe trait ([`PowerDriver`], [`SwitchDriver`],
//! [`PduDriver`], [`BootDriver`]); implementations are grouped by protocol (`fake`
//! now; `ipmi`, `redfish`, `snmp` and the netboot service as they land) and picked by
//! [`Drivers`] from a device's inventory (`ipmi.type`, a switch's or PDU's
//! `protocol`). [`PduPower`] lets PDU outlets stand in as a server's power driver.
//!
//! Drivers never touch the database or HTTP handlers: they get the device's
//! address and access data and return typed errors; the task engine adds timeouts,
//! retries and progress.

pub mod fake;
mod pdu_power;

use std::sync::Arc;

use async_trait::async_trait;
use dcim_core::{BmcType, DeviceProtocol, OutletStatus, PortStatus};
use serde::{Deserialize, Serialize};

pub use pdu_power::PduPower;

/// Why a driver call failed, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("{0} did not answer")]
    Unreachable(String),
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
        matches!(self, DriverError::Unreachable(_) | DriverError::Timeout(_))
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// The port's index on the device (SNMP ifIndex).
    pub index: i64,
    pub name: String,
    pub description: String,
    pub admin_status: PortStatus,
    pub oper_status: PortStatus,
    /// Mbit/s, when known.
    pub speed: Option<i64>,
}

/// A PDU outlet as the PDU reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutletInfo {
    pub index: i64,
    pub name: String,
    pub status: OutletStatus,
}

/// Reads a switch's ports and opens or shuts them.
#[async_trait]
pub trait SwitchDriver: Send + Sync {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError>;
    async fn set_admin(&self, index: i64, up: bool) -> Result<(), DriverError>;
    async fn oper_status(&self, index: i64) -> Result<PortStatus, DriverError>;
}

/// Reads a PDU's outlets and switches them.
#[async_trait]
pub trait PduDriver: Send + Sync {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError>;
    async fn outlet_status(&self, index: i64) -> Result<OutletStatus, DriverError>;
    async fn set_outlet(&self, index: i64, on: bool) -> Result<(), DriverError>;
}

/// What the in-band agent is booted to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum BootMode {
    /// Report hardware, then wipe disks unless `clear_hdd` is `none`.
    Diag { clear_hdd: String },
    /// Wipe disks (`simple` or `full`).
    Wipe { clear_hdd: String },
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
}

/// Prepares and removes network boots (the netboot service; the fake lab's agent).
#[async_trait]
pub trait BootDriver: Send + Sync {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError>;
    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError>;
}

/// Where a device is and how to log in to it.
#[derive(Debug, Clone)]
pub struct DeviceAccess {
    /// `host` or `host:port`.
    pub address: String,
    /// Protocol-specific access data as JSON (SNMP community or v3 user and keys).
    pub secret: String,
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
}

/// Picks driver implementations from inventory data.
#[derive(Clone)]
pub struct Drivers {
    pub fake: Arc<fake::FakeLab>,
}

impl Drivers {
    pub fn new(fake: Arc<fake::FakeLab>) -> Self {
        Drivers { fake }
    }

    /// The BMC driver for `ipmi.type`.
    pub fn power(&self, bmc: &BmcAccess) -> Result<Box<dyn PowerDriver>, DriverError> {
        match bmc.kind {
            BmcType::Fake => Ok(Box::new(self.fake.machine(&bmc.address, bmc.mac.as_deref()))),
            BmcType::Ipmi15 | BmcType::IpmiLanplus | BmcType::Redfish => Err(DriverError::Unsupported(format!(
                "this dcim has no {} driver yet; give the server a fake BMC or a PDU outlet",
                bmc.kind
            ))),
        }
    }

    /// The switch driver for `protocol`.
    pub fn switch(
        &self,
        protocol: DeviceProtocol,
        access: &DeviceAccess,
    ) -> Result<Box<dyn SwitchDriver>, DriverError> {
        match protocol {
            DeviceProtocol::Fake => Ok(Box::new(self.fake.switch(&access.address))),
            DeviceProtocol::SnmpV2c | DeviceProtocol::SnmpV3 => Err(snmp_pending()),
        }
    }

    /// The PDU driver for `protocol` and MIB family `model`.
    pub fn pdu(
        &self,
        protocol: DeviceProtocol,
        _model: &str,
        access: &DeviceAccess,
    ) -> Result<Box<dyn PduDriver>, DriverError> {
        match protocol {
            DeviceProtocol::Fake => Ok(Box::new(self.fake.pdu(&access.address))),
            DeviceProtocol::SnmpV2c | DeviceProtocol::SnmpV3 => Err(snmp_pending()),
        }
    }

    /// The boot service for a server whose BMC is of `kind`: the fake lab's for fake
    /// machines; real machines wait for the netboot service.
    pub fn boot(&self, kind: Option<BmcType>) -> Result<Box<dyn BootDriver>, DriverError> {
        match kind {
            Some(BmcType::Fake) => Ok(Box::new(self.fake.boot())),
            _ => Err(DriverError::Unsupported(
                "network boot of real machines needs the netboot service, which this dcim does not have yet".into(),
            )),
        }
    }
}

fn snmp_pending() -> DriverError {
    DriverError::Unsupported(
        "this dcim has no SNMP driver yet; the device is stored and is read once SNMP support is installed".into(),
    )
}
