//! The fake device set, as Ironic's fake-hardware: real code that keeps no wire
//! protocol, for demos, tests and benchmarks. A fake switch reports 48 ports named
//! like a Juniper's (`ge-0/0/0` to `ge-0/0/47`, ifIndex 1 to 48, 1 Gbit/s, up); a fake
//! PDU reports 24 outlets (`1` to `24`, on).

use async_trait::async_trait;
use dcim_core::{OutletStatus, PortStatus};

use crate::{DriverError, OutletInfo, PduDriver, PortInfo, SwitchDriver};

/// A switch with a fixed set of ports.
#[derive(Debug, Clone)]
pub struct FakeSwitch {
    pub port_count: i64,
}

impl Default for FakeSwitch {
    fn default() -> Self {
        FakeSwitch { port_count: 48 }
    }
}

#[async_trait]
impl SwitchDriver for FakeSwitch {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError> {
        Ok((0..self.port_count)
            .map(|i| PortInfo {
                index: i + 1,
                name: format!("ge-0/0/{i}"),
                description: String::new(),
                admin_status: PortStatus::Up,
                oper_status: PortStatus::Up,
                speed: Some(1000),
            })
            .collect())
    }
}

/// A PDU with a fixed set of outlets.
#[derive(Debug, Clone)]
pub struct FakePdu {
    pub outlet_count: i64,
}

impl Default for FakePdu {
    fn default() -> Self {
        FakePdu { outlet_count: 24 }
    }
}

#[async_trait]
impl PduDriver for FakePdu {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError> {
        Ok((1..=self.outlet_count)
            .map(|i| OutletInfo { index: i, name: i.to_string(), status: OutletStatus::Up })
            .collect())
    }
}
