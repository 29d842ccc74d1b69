//! PDU outlets as a server's power driver, for servers without a BMC (or as the
//! fallback of one whose BMC fails). A server with two power supplies has two
//! outlets: they are switched together. There is no boot device to choose at a PDU.

use async_trait::async_trait;
use dcim_core::OutletStatus;

use crate::{BootDevice, DriverError, PduDriver, PowerDriver, PowerState};

/// Outlets, each on its PDU.
pub struct PduPower {
    pub outlets: Vec<(Box<dyn PduDriver>, i64)>,
    /// Pause between off and on in a reset, so the power supplies really drop.
    pub cycle_pause: std::time::Duration,
}

#[async_trait]
impl PowerDriver for PduPower {
    async fn status(&self) -> Result<PowerState, DriverError> {
        for (pdu, index) in &self.outlets {
            if pdu.outlet_status(*index).await? == OutletStatus::Up {
                return Ok(PowerState::On);
            }
        }
        Ok(PowerState::Off)
    }

    async fn on(&self) -> Result<(), DriverError> {
        for (pdu, index) in &self.outlets {
            pdu.set_outlet(*index, true).await?;
        }
        Ok(())
    }

    async fn off(&self) -> Result<(), DriverError> {
        for (pdu, index) in &self.outlets {
            pdu.set_outlet(*index, false).await?;
        }
        Ok(())
    }

    async fn reset(&self) -> Result<(), DriverError> {
        self.off().await?;
        tokio::time::sleep(self.cycle_pause).await;
        self.on().await
    }

    async fn set_boot_device(&self, _: BootDevice, _: bool, _: bool) -> Result<(), DriverError> {
        Err(DriverError::Unsupported("a PDU cannot choose the boot device; the server needs a BMC".into()))
    }
}
