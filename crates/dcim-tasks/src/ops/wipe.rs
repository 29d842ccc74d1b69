//! `clear_hdd`: the agent boots and wipes the disks; then the server is powered off and
//! the boot cleaned up.

use async_trait::async_trait;
use dcim_core::{ClearMode, PowerStatus};
use dcim_drivers::BootMode;
use dcim_store::tasks::ServerEffects;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::netboot::{AwaitWipe, BootPlan, CleanupBoot, NetBoot, PrepareBoot, wipe_info};
use super::power::PowerOff;
use super::{Ctx, Family, Step, StepError};

/// The wipe's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearHdd {
    pub clear_hdd: ClearMode,
}

#[async_trait]
impl Family for ClearHdd {
    fn name(&self) -> &'static str {
        "clear_hdd"
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        vec![
            Box::new(PrepareBoot(self)),
            Box::new(NetBoot),
            Box::new(AwaitWipe(self.clear_hdd)),
            Box::new(PowerOff),
            Box::new(CleanupBoot),
        ]
    }

    async fn completed(&self, cx: &Ctx<'_>, fx: &mut ServerEffects, info: &mut Value) {
        fx.power_status = Some(PowerStatus::Off);
        wipe_info(cx, info);
    }
}

impl BootPlan for ClearHdd {
    fn boot(&self, _cx: &mut Ctx<'_>, _callback: &str, _secret: &str) -> Result<(BootMode, Value), StepError> {
        Ok((BootMode::Wipe { clear_hdd: self.clear_hdd }, json!({})))
    }
}
