//! `suspend` and `resume`: the server's switch ports shut or opened (the BMC's own
//! port stays as it is), the server's state following.

use async_trait::async_trait;
use dcim_core::{PortStatus, ServerState};
use dcim_drivers::DeviceAccess;
use dcim_store::inventory::DeviceKind;
use dcim_store::tasks::ServerEffects;
use serde_json::Value;

use super::{Ctx, Family, Outcome, Step, StepError, StepResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    Suspend,
    Resume,
}

impl Ports {
    fn up(self) -> bool {
        self == Ports::Resume
    }

    /// The state of a suspend or resume that did not finish.
    fn error_state(self) -> ServerState {
        match self {
            Ports::Suspend => ServerState::SuspendError,
            Ports::Resume => ServerState::ResumeError,
        }
    }
}

#[async_trait]
impl Family for Ports {
    fn name(&self) -> &'static str {
        match self {
            Ports::Suspend => "suspend",
            Ports::Resume => "resume",
        }
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        vec![Box::new(*self)]
    }

    fn starting_state(&self) -> Option<(ServerState, &'static str)> {
        match self {
            Ports::Suspend => Some((ServerState::Suspending, "")),
            Ports::Resume => Some((ServerState::Resuming, "")),
        }
    }

    async fn completed(&self, _cx: &Ctx<'_>, fx: &mut ServerEffects, _info: &mut Value) {
        let state = if self.up() { ServerState::Ok } else { ServerState::Suspended };
        fx.state = Some((state, String::new()));
    }

    async fn failed(&self, _cx: &Ctx<'_>, step: &str, msg: &str, fx: &mut ServerEffects) {
        fx.state = Some((self.error_state(), format!("{step}: {msg}")));
    }

    async fn canceled(&self, _cx: &Ctx<'_>, fx: &mut ServerEffects) {
        let doing = if self.up() { "resuming" } else { "suspending" };
        fx.state = Some((self.error_state(), format!("aborted while {doing}: some ports may be shut")));
    }
}

#[async_trait]
impl Step for Ports {
    fn name(&self) -> &'static str {
        if self.up() { "open switch ports" } else { "shut switch ports" }
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let up = self.up();
        let mut touched = 0;
        for c in cx.server.switch_connections.iter().filter(|c| !c.is_ipmi_connection) {
            let sw = cx.store().get_device(DeviceKind::Switch, c.switch_id).await?;
            let named = |e: String| format!("switch {} port {} (ifIndex {}): {e}", sw.name, c.port_name, c.port_index);
            let protocol = sw.protocol;
            let access = DeviceAccess {
                address: sw.ip.clone(),
                secret: cx.store().device_secret(DeviceKind::Switch, sw.id).await?,
                location: Some(sw.location_id),
            };
            let driver = cx.drivers().switch(protocol, &access).map_err(|e| StepError::setup(e).named(named))?;
            cx.call(driver.set_admin(c.port_index, up)).await.map_err(|e| e.named(named))?;
            cx.store().set_port_admin_status(c.port_id, if up { PortStatus::Up } else { PortStatus::Down }).await?;
            touched += 1;
        }
        if touched == 0 {
            return Ok(Outcome::Skipped("the server has no switch port besides its BMC's".into()));
        }
        Ok(Outcome::Done)
    }
}
