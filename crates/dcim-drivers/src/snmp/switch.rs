//! A switch over SNMP, by the standard IF-MIB every managed switch has: ports are
//! the ifTable rows (with ifXTable's name, alias and speed where the switch has
//! them), a port is shut or opened by setting ifAdminStatus, and ifOperStatus says
//! whether its link is up. Vendor MIBs are not needed for any of it.

use async_trait::async_trait;
use dcim_core::{DeviceProtocol, PortStatus};

use super::{Client, SnmpSettings, Target, Val, at};
use crate::{DeviceAccess, DriverError, PortInfo, PortState, SwitchDriver};

const IF_INDEX: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 1];
const IF_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
const IF_SPEED: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 5];
const IF_ADMIN_STATUS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 7];
const IF_OPER_STATUS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
const IF_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
const IF_HIGH_SPEED: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15];
const IF_ALIAS: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18];

/// A switch reached over SNMP v2c or v3.
pub struct SnmpSwitch {
    client: Client,
}

impl SnmpSwitch {
    pub fn new(protocol: DeviceProtocol, access: &DeviceAccess, settings: &SnmpSettings) -> Result<Self, DriverError> {
        Ok(SnmpSwitch { client: Client::new(protocol, access, settings)? })
    }

    fn no_port(&self, index: i64) -> String {
        format!("has no interface with ifIndex {index}; sync the switch to re-read its ports")
    }
}

/// ifAdminStatus / ifOperStatus: up(1), down(2), testing(3), unknown(4), dormant(5),
/// notPresent(6), lowerLayerDown(7).
fn status(v: Option<&Val>) -> PortStatus {
    match v.and_then(Val::int) {
        Some(1) => PortStatus::Up,
        Some(2 | 5 | 6 | 7) => PortStatus::Down,
        Some(3) => PortStatus::Testing,
        _ => PortStatus::Unknown,
    }
}

fn index_of(key: &[u64], cols: &[Option<Val>]) -> Option<i64> {
    cols[0].as_ref().and_then(Val::int).or_else(|| match key {
        [i] => i64::try_from(*i).ok(),
        _ => None,
    })
}

#[async_trait]
impl SwitchDriver for SnmpSwitch {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError> {
        let rows = self
            .client
            .walk(&[IF_INDEX, IF_DESCR, IF_ADMIN_STATUS, IF_OPER_STATUS, IF_NAME, IF_ALIAS, IF_HIGH_SPEED, IF_SPEED])
            .await?;
        let text = |v: &Option<Val>| v.as_ref().and_then(Val::text).unwrap_or_default();
        let ports: Vec<PortInfo> = rows
            .iter()
            .filter_map(|(key, c)| {
                let index = index_of(key, c)?;
                let descr = text(&c[1]);
                let name = [text(&c[4]), descr.clone()].into_iter().find(|n| !n.is_empty());
                // ifHighSpeed is in Mbit/s; ifSpeed (bit/s) tops out at 4.29 Gbit/s.
                let high = c[6].as_ref().and_then(Val::int).filter(|s| *s > 0);
                let low = c[7].as_ref().and_then(Val::int).filter(|s| *s > 0 && *s < i64::from(u32::MAX));
                Some(PortInfo {
                    index,
                    name: name.unwrap_or_else(|| format!("ifIndex {index}")),
                    description: descr,
                    alias: text(&c[5]),
                    admin_status: status(c[2].as_ref()),
                    oper_status: status(c[3].as_ref()),
                    speed: high.or(low.map(|s| s / 1_000_000)),
                })
            })
            .collect();
        if ports.is_empty() {
            return Err(DriverError::Protocol(format!(
                "{} has no IF-MIB interfaces in its view; is it a switch, and may this community or user read IF-MIB?",
                self.client.target()
            )));
        }
        Ok(ports)
    }

    async fn port_states(&self) -> Result<Vec<PortState>, DriverError> {
        let rows = self.client.walk(&[IF_ADMIN_STATUS, IF_OPER_STATUS]).await?;
        Ok(rows
            .iter()
            .filter_map(|(key, c)| {
                let index = match key.as_slice() {
                    [i] => i64::try_from(*i).ok()?,
                    _ => return None,
                };
                Some(PortState { index, admin_status: status(c[0].as_ref()), oper_status: status(c[1].as_ref()) })
            })
            .collect())
    }

    async fn set_admin(&self, index: i64, up: bool) -> Result<(), DriverError> {
        let name = format!("ifAdminStatus.{index}");
        let missing = self.no_port(index);
        self.client
            .set_int(&at(IF_ADMIN_STATUS, index), if up { 1 } else { 2 }, &Target { name: &name, missing: &missing })
            .await
    }

    async fn oper_status(&self, index: i64) -> Result<PortStatus, DriverError> {
        let got = self.client.get(&[at(IF_OPER_STATUS, index)]).await?;
        match got.first() {
            Some(v) if !v.is_missing() => Ok(status(Some(v))),
            _ => Err(DriverError::Refused(format!("{} {}", self.client.target(), self.no_port(index)))),
        }
    }
}
