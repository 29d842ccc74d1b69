//! `ip_assign` and `ip_release`: an address given to a server or taken back. The
//! handler reserved the row (`allocating`, or `deleting`); the step checks it is still
//! the server's, and the task's end records the change in the same transaction as the
//! task's status. These run beside the server's other operations.

use async_trait::async_trait;
use dcim_core::IpStatus;
use dcim_store::StoreError;
use dcim_store::ids::IpId;
use dcim_store::tasks::{IpEffect, ServerEffects};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Ctx, Family, Outcome, Step, StepError, StepResult};

/// Give the server an address already reserved for it (row `allocating`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAssign {
    pub ip_id: IpId,
    /// 4 or 6.
    pub family: i64,
    /// Make it the server's main address of its family.
    pub main: bool,
}

/// Take an address back from the server (row `deleting`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRelease {
    pub ip_id: IpId,
}

#[async_trait]
impl Family for IpAssign {
    fn name(&self) -> &'static str {
        "ip_assign"
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        vec![Box::new(StillTheServers { ip_id: self.ip_id, name: "assign address" })]
    }

    fn exclusive(&self) -> bool {
        false
    }

    async fn completed(&self, _cx: &Ctx<'_>, fx: &mut ServerEffects, _info: &mut Value) {
        fx.ip = Some(IpEffect::Assigned { ip_id: self.ip_id, family: self.family, main: self.main });
    }

    async fn failed(&self, _cx: &Ctx<'_>, step: &str, msg: &str, fx: &mut ServerEffects) {
        let info = json!({"step": step, "message": msg}).to_string();
        fx.ip = Some(IpEffect::Failed { ip_id: self.ip_id, status: IpStatus::AllocationFail, info });
    }
}

#[async_trait]
impl Family for IpRelease {
    fn name(&self) -> &'static str {
        "ip_release"
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        vec![Box::new(StillTheServers { ip_id: self.ip_id, name: "release address" })]
    }

    fn exclusive(&self) -> bool {
        false
    }

    async fn completed(&self, _cx: &Ctx<'_>, fx: &mut ServerEffects, _info: &mut Value) {
        fx.ip = Some(IpEffect::Released { ip_id: self.ip_id });
    }

    async fn failed(&self, _cx: &Ctx<'_>, step: &str, msg: &str, fx: &mut ServerEffects) {
        let info = json!({"step": step, "message": msg}).to_string();
        fx.ip = Some(IpEffect::Failed { ip_id: self.ip_id, status: IpStatus::Fail, info });
    }
}

/// The address must still be the server's; the task's end records the change.
struct StillTheServers {
    ip_id: IpId,
    name: &'static str,
}

#[async_trait]
impl Step for StillTheServers {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let ip_id = self.ip_id;
        match cx.store().get_ip(ip_id.get()).await {
            Ok(ip) if ip.server_id == Some(cx.server.server.id) => Ok(Outcome::Done),
            Ok(_) => Err(StepError::fatal(format!("address {ip_id} belongs to another server now"))),
            Err(StoreError::NotFound { .. }) => Err(StepError::fatal(format!("address {ip_id} is gone"))),
            Err(e) => Err(e.into()),
        }
    }
}
