//! PDUs over SNMP. Vendors keep outlets in their own MIBs, so the PDU's `model`
//! names a MIB family, and each family is an [`OutletMib`] in a file of its own
//! (`apc.rs`, ...): which table column holds outlet names, which their state, which
//! takes on, off and reboot commands, with the numbers each uses. Adding a vendor is
//! adding such a file and listing it in [`FAMILIES`]; the driver below is shared.

pub mod apc;

use async_trait::async_trait;
use dcim_core::{DeviceProtocol, OutletStatus};

use super::{Client, SnmpSettings, Target, Val, at};
use crate::{DeviceAccess, DriverError, OutletInfo, PduDriver};

/// Where one PDU MIB family keeps its outlets and how it switches them. Every
/// column is indexed by outlet number.
#[derive(Debug)]
pub struct OutletMib {
    /// The `model` values that select this family (the first is the usual one).
    pub models: &'static [&'static str],
    /// What it is, for messages.
    pub family: &'static str,
    /// Outlet names.
    pub name: &'static [u64],
    /// Outlet state, and the values it reads when the outlet is on and off.
    pub state: &'static [u64],
    pub state_on: i64,
    pub state_off: i64,
    /// Where commands are written, and the commands.
    pub control: &'static [u64],
    pub cmd_on: i64,
    pub cmd_off: i64,
    pub cmd_reboot: i64,
}

/// Every family this dcim knows.
pub const FAMILIES: &[&OutletMib] = &[&apc::RPDU, &apc::MASTERSWITCH];

/// The family a PDU's `model` names (case-insensitive).
pub fn family(model: &str) -> Option<&'static OutletMib> {
    let m = model.trim().to_ascii_lowercase();
    FAMILIES.iter().copied().find(|f| f.models.contains(&m.as_str()))
}

/// Every `model` value a PDU may have.
pub fn models() -> Vec<&'static str> {
    FAMILIES.iter().flat_map(|f| f.models.iter().copied()).collect()
}

/// A PDU driver for `model` over SNMP v2c or v3.
pub fn driver(
    protocol: DeviceProtocol,
    model: &str,
    access: &DeviceAccess,
    settings: &SnmpSettings,
) -> Result<SnmpPdu, DriverError> {
    let mib = family(model).ok_or_else(|| {
        DriverError::Unsupported(format!("PDU model '{model}': no MIB family of that name; known: {:?}", models()))
    })?;
    Ok(SnmpPdu { client: Client::new(protocol, access, settings)?, mib })
}

/// A PDU reached over SNMP, speaking one MIB family.
pub struct SnmpPdu {
    client: Client,
    mib: &'static OutletMib,
}

impl SnmpPdu {
    fn status(&self, v: Option<&Val>) -> OutletStatus {
        match v.and_then(Val::int) {
            Some(s) if s == self.mib.state_on => OutletStatus::Up,
            Some(s) if s == self.mib.state_off => OutletStatus::Down,
            _ => OutletStatus::Unknown,
        }
    }

    async fn command(&self, index: i64, cmd: i64) -> Result<(), DriverError> {
        let name = format!("the {} outlet command of outlet {index}", self.mib.family);
        let missing = format!("has no outlet {index} in its {} tables; sync the PDU to re-read them", self.mib.family);
        self.client.set_int(&at(self.mib.control, index), cmd, &Target { name: &name, missing: &missing }).await
    }
}

#[async_trait]
impl PduDriver for SnmpPdu {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError> {
        let rows = self.client.walk(&[self.mib.name, self.mib.state]).await?;
        let outlets: Vec<OutletInfo> = rows
            .iter()
            .filter_map(|(key, c)| {
                let index = match key.as_slice() {
                    [i] => i64::try_from(*i).ok()?,
                    _ => return None,
                };
                let name = c[0].as_ref().and_then(Val::text).filter(|n| !n.is_empty());
                Some(OutletInfo {
                    index,
                    name: name.unwrap_or_else(|| index.to_string()),
                    status: self.status(c[1].as_ref()),
                })
            })
            .collect();
        if outlets.is_empty() {
            return Err(DriverError::Protocol(format!(
                "{} has no {} outlet table in its view; is the PDU's model right?",
                self.client.target(),
                self.mib.family
            )));
        }
        Ok(outlets)
    }

    async fn outlet_status(&self, index: i64) -> Result<OutletStatus, DriverError> {
        let got = self.client.get(&[at(self.mib.state, index)]).await?;
        match got.first() {
            Some(v) if !v.is_missing() => Ok(self.status(Some(v))),
            _ => Err(DriverError::Refused(format!(
                "{} has no outlet {index} in its {} tables",
                self.client.target(),
                self.mib.family
            ))),
        }
    }

    async fn set_outlet(&self, index: i64, on: bool) -> Result<(), DriverError> {
        self.command(index, if on { self.mib.cmd_on } else { self.mib.cmd_off }).await
    }

    async fn reboot_outlet(&self, index: i64) -> Result<(), DriverError> {
        self.command(index, self.mib.cmd_reboot).await
    }
}
