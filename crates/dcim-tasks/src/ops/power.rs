//! `power_on`, `power_off`, `power_reset` and `boot_device`: a command to the server's
//! BMC (or to its PDU outlets when it has no BMC, or when the BMC fails to power off),
//! then a wait until the power state follows it.

use std::time::Duration;

use async_trait::async_trait;
use dcim_core::{OutletStatus, PowerStatus};
use dcim_drivers::{BootDevice, PowerDriver, PowerState};
use dcim_store::tasks::ServerEffects;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, Family, Outcome, PowerVia, Step, StepError, StepResult, WaitFor};

/// The three power operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
    Reset,
}

#[async_trait]
impl Family for Power {
    fn name(&self) -> &'static str {
        match self {
            Power::On => "power_on",
            Power::Off => "power_off",
            Power::Reset => "power_reset",
        }
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        match self {
            Power::On => vec![Box::new(PowerOn), Box::new(Confirm(PowerState::On))],
            Power::Off => vec![Box::new(PowerOff), Box::new(Confirm(PowerState::Off))],
            Power::Reset => vec![Box::new(Reset), Box::new(Confirm(PowerState::On))],
        }
    }

    async fn completed(&self, _cx: &Ctx<'_>, fx: &mut ServerEffects, _info: &mut Value) {
        let on = matches!(self, Power::On | Power::Reset);
        fx.power_status = Some(if on { PowerStatus::On } else { PowerStatus::Off });
    }

    async fn failed(&self, _cx: &Ctx<'_>, _step: &str, _msg: &str, fx: &mut ServerEffects) {
        fx.power_status = Some(PowerStatus::Unknown);
    }
}

/// Power on; a server with both a BMC and PDU outlets gets its outlets on first.
pub struct PowerOn;

#[async_trait]
impl Step for PowerOn {
    fn name(&self) -> &'static str {
        "power on"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let note = outlets_on_first(cx).await?;
        cx.call(cx.power().await?.on()).await?;
        if let Some(n) = note {
            cx.memo.note = Some(n);
        }
        Ok(Outcome::Done)
    }
}

/// Power off at the BMC; if the BMC fails and the server has PDU outlets, at the PDU.
pub struct PowerOff;

#[async_trait]
impl Step for PowerOff {
    fn name(&self) -> &'static str {
        "power off"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        if let Some(bmc) = cx.bmc().await? {
            let tried = match cx.bmc_power(&bmc) {
                Ok(d) => cx.call(d.off()).await,
                Err(e) => Err(e),
            };
            match tried {
                Ok(()) => return Ok(Outcome::Done),
                Err(e) if cx.server.pdu_connections.is_empty() => return Err(e),
                Err(e) => {
                    cx.memo.power_via = Some(PowerVia::Pdu);
                    cx.memo.note = Some(format!("the BMC failed ({}); powered off at the PDU", e.msg));
                }
            }
        }
        cx.call(cx.pdu_power().await?.off()).await?;
        Ok(Outcome::Done)
    }
}

/// Reset (outlets on first, as for power on).
pub struct Reset;

#[async_trait]
impl Step for Reset {
    fn name(&self) -> &'static str {
        "reset"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        outlets_on_first(cx).await?;
        cx.call(cx.power().await?.reset()).await?;
        Ok(Outcome::Done)
    }
}

/// Waits until the power state is the one wanted, showing the state it reads meanwhile;
/// where the PDU powered the server, its outlets' states are recorded too.
pub struct Confirm(pub PowerState);

#[async_trait]
impl Step for Confirm {
    fn name(&self) -> &'static str {
        if self.0 == PowerState::On { "confirm power on" } else { "confirm power off" }
    }

    fn waits_for(&self) -> WaitFor {
        WaitFor::Power
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let via_pdu = cx.memo.power_via == Some(PowerVia::Pdu);
        let driver: Box<dyn PowerDriver> = if via_pdu { Box::new(cx.pdu_power().await?) } else { cx.power().await? };
        let got = cx.call(driver.status()).await?;
        if got != self.0 {
            // Shown while waiting; on success the task's end records it.
            cx.store().set_power_status(cx.server.server.id, got.into()).await?;
        }
        if cx.server.server.ipmi_address.is_none() || via_pdu {
            // Powered at the PDU: its outlets' state is what changed.
            let pdu = cx.pdu_power().await?;
            for ((d, index), c) in pdu.outlets.iter().zip(&cx.server.pdu_connections) {
                let st = cx.call(d.outlet_status(*index)).await?;
                cx.store().set_outlet_status(c.port_id, st).await?;
            }
        }
        if got == self.0 { Ok(Outcome::Done) } else { Ok(Outcome::Wait(Duration::from_secs(1))) }
    }
}

/// A server with both a BMC and PDU outlets gets its outlets switched on before the BMC
/// is asked to power on (a BMC without power cannot).
async fn outlets_on_first(cx: &Ctx<'_>) -> Result<Option<String>, StepError> {
    let server = cx.server;
    if server.pdu_connections.is_empty() || server.server.ipmi_address.is_none() {
        return Ok(None);
    }
    let off = server.pdu_connections.iter().filter(|c| c.power_status != OutletStatus::Up).count();
    if off == 0 {
        return Ok(None);
    }
    cx.call(cx.pdu_power().await?.on()).await?;
    for c in &server.pdu_connections {
        cx.store().set_outlet_status(c.port_id, OutletStatus::Up).await?;
    }
    Ok(Some(format!("switched on {off} PDU outlet(s) first")))
}

/// `boot_device`: the next boot device at the BMC; `efi` unset means the server's own mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootDeviceChoice {
    pub pxe: bool,
    pub efi: Option<bool>,
    pub persistent: bool,
}

#[async_trait]
impl Family for BootDeviceChoice {
    fn name(&self) -> &'static str {
        "boot_device"
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        vec![Box::new(self.clone())]
    }

    async fn completed(&self, _cx: &Ctx<'_>, _fx: &mut ServerEffects, _info: &mut Value) {}
}

#[async_trait]
impl Step for BootDeviceChoice {
    fn name(&self) -> &'static str {
        "set boot device"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let device = if self.pxe { BootDevice::Pxe } else { BootDevice::Disk };
        let efi = self.efi.unwrap_or(cx.server.server.efi);
        cx.call(cx.power().await?.set_boot_device(device, efi, self.persistent)).await?;
        Ok(Outcome::Done)
    }
}
