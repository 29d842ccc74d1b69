//! Device drivers: how dcim talks to switches, PDUs and (later) BMCs and boot
//! services. Each concern is a small object-safe trait; implementations are grouped
//! by protocol (`fake` now; `snmp`, `ipmi`, `redfish` as they land) and picked by
//! [`switch_driver`]/[`pdu_driver`] from the device's `protocol`.
//!
//! Drivers never touch the database or HTTP: they get the device's address and
//! access data and return typed errors.

pub mod fake;

use async_trait::async_trait;
use dcim_core::{DeviceProtocol, OutletStatus, PortStatus};

/// Why a driver call failed, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("device {0} did not answer")]
    Unreachable(String),
    #[error("device refused the credentials: {0}")]
    Auth(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("not supported: {0}")]
    Unsupported(String),
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

/// Where a device is and how to log in to it.
#[derive(Debug, Clone)]
pub struct DeviceAccess {
    /// `host` or `host:port`.
    pub address: String,
    /// Protocol-specific access data as JSON (SNMP community or v3 user and keys).
    pub secret: String,
}

/// Reads (and, with the task engine, sets) a switch's ports.
#[async_trait]
pub trait SwitchDriver: Send + Sync {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError>;
}

/// Reads (and, with the task engine, switches) a PDU's outlets.
#[async_trait]
pub trait PduDriver: Send + Sync {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError>;
}

/// The switch driver for `protocol`.
pub fn switch_driver(protocol: DeviceProtocol, _access: &DeviceAccess) -> Result<Box<dyn SwitchDriver>, DriverError> {
    match protocol {
        DeviceProtocol::Fake => Ok(Box::new(fake::FakeSwitch::default())),
        DeviceProtocol::SnmpV2c | DeviceProtocol::SnmpV3 => Err(snmp_pending()),
    }
}

/// The PDU driver for `protocol` and MIB family `model`.
pub fn pdu_driver(
    protocol: DeviceProtocol,
    _model: &str,
    _access: &DeviceAccess,
) -> Result<Box<dyn PduDriver>, DriverError> {
    match protocol {
        DeviceProtocol::Fake => Ok(Box::new(fake::FakePdu::default())),
        DeviceProtocol::SnmpV2c | DeviceProtocol::SnmpV3 => Err(snmp_pending()),
    }
}

fn snmp_pending() -> DriverError {
    DriverError::Unsupported("this dcim has no SNMP driver yet; the device is stored and its ports can be read once SNMP support is installed".into())
}
