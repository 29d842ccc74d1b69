//! The steps the operations that boot the in-band agent share (`diag`, `clear_hdd`,
//! `os_install`): prepare the network boot, boot the server from the network, wait for
//! the agent's reports, boot the disk again, clean up. A task that fails or is aborted
//! after the boot was prepared has it forgotten and the disk made the boot device again
//! (the undo of [`PrepareBoot`] and [`NetBoot`]), so the server does not keep booting
//! the agent.

use async_trait::async_trait;
use dcim_core::{ClearMode, ReportKind};
use dcim_drivers::{BootDevice, BootMode, BootRequest};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Ctx, Outcome, Step, StepError, StepResult};

/// What an operation boots: the agent's mode and the answer it is given (the secret is
/// the one the agent reports with, the callback where it reports to).
pub trait BootPlan: Send + Sync {
    fn boot(&self, cx: &mut Ctx<'_>, callback: &str, secret: &str) -> Result<(BootMode, Value), StepError>;
}

/// Prepares the server's network boot at the boot service, with a fresh report secret.
pub struct PrepareBoot<'a>(pub &'a dyn BootPlan);

#[async_trait]
impl Step for PrepareBoot<'_> {
    fn name(&self) -> &'static str {
        "prepare network boot"
    }

    /// The boot service of the process that prepared the boot may be gone with it.
    fn per_process(&self) -> bool {
        true
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let s = &cx.server.server;
        let mac = s
            .mac
            .clone()
            .ok_or_else(|| StepError::fatal("the server has no MAC address to boot from; set it first".into()))?;
        let boot = cx.boot()?;
        let location = Some(s.location_id);
        let callback = boot.agent_callback(location).unwrap_or_else(|| cx.cfg().agent_callback.clone());
        // A fresh secret per preparation: an agent of an earlier boot can no longer report.
        // A boot a site holds outlives this process: one that resumes the task prepares
        // it with the same key (`dcim_drivers::remote`) and must give the same secret,
        // so it is derived from the scope of the step's calls.
        let holder = cx.drivers().boot_holder(location);
        let derived = match (&holder, dcim_drivers::remote::scope_prefix()) {
            (Some(_), Some(scope)) => cx.store().derive_secret(&format!("boot {scope}")),
            _ => None,
        };
        let secret = derived.unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>()));
        let hash = hex::encode(Sha256::digest(secret.as_bytes()));
        if !cx.store().set_task_secret(cx.task.id, cx.owner(), &hash).await? {
            return Err(StepError::transient("lost the task's lease".into()));
        }
        let (mode, answer) = self.0.boot(cx, &callback, &secret)?;
        let req = BootRequest { task_id: cx.task.id.get(), secret, callback, mac, mode, answer, location_id: location };
        cx.call(boot.prepare(&req)).await?;
        cx.memo.boot_owner = Some(holder.unwrap_or_else(|| cx.owner().to_owned()));
        Ok(Outcome::Done)
    }

    async fn undo(&self, cx: &mut Ctx<'_>) {
        if let (Ok(boot), Some(mac)) = (cx.boot(), cx.server.server.mac.as_deref()) {
            let _ = cx.call(boot.cleanup(cx.task.id.get(), mac)).await;
        }
    }
}

/// Network boot next, once, and a reset.
pub struct NetBoot;

#[async_trait]
impl Step for NetBoot {
    fn name(&self) -> &'static str {
        "boot from network"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let power = cx.power().await?;
        cx.call(power.set_boot_device(BootDevice::Pxe, cx.server.server.efi, false)).await?;
        cx.call(power.reset()).await?;
        Ok(Outcome::Done)
    }

    async fn undo(&self, cx: &mut Ctx<'_>) {
        if let Ok(power) = cx.power().await {
            let _ = cx.call(power.set_boot_device(BootDevice::Disk, cx.server.server.efi, true)).await;
        }
    }
}

/// Waits for one of the agent's reports.
pub struct AwaitReport {
    pub report: ReportKind,
    pub name: &'static str,
}

#[async_trait]
impl Step for AwaitReport {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        cx.await_report(self.report).await
    }
}

/// Waits for the agent's wipe, unless the operation's `clear_hdd` is `none`.
pub struct AwaitWipe(pub ClearMode);

#[async_trait]
impl Step for AwaitWipe {
    fn name(&self) -> &'static str {
        "clear disks"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        if self.0 == ClearMode::None {
            return Ok(Outcome::Skipped("clear_hdd is none".into()));
        }
        cx.await_report(ReportKind::Wiped).await
    }
}

/// The agent's wipe report, in the finished task's `status_info.wiped`.
pub fn wipe_info(cx: &Ctx<'_>, info: &mut Value) {
    if let Some(w) = &cx.memo.wiped {
        info["wiped"] = w.clone();
    }
}

/// The disk as the boot device for good, and a reset into it.
pub struct DiskBoot;

#[async_trait]
impl Step for DiskBoot {
    fn name(&self) -> &'static str {
        "boot from disk"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let power = cx.power().await?;
        cx.call(power.set_boot_device(BootDevice::Disk, cx.server.server.efi, true)).await?;
        cx.call(power.reset()).await?;
        Ok(Outcome::Done)
    }
}

/// The network boot forgotten at the boot service.
pub struct CleanupBoot;

#[async_trait]
impl Step for CleanupBoot {
    fn name(&self) -> &'static str {
        "clean up network boot"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        let boot = cx.boot()?;
        if let Some(mac) = &cx.server.server.mac {
            cx.call(boot.cleanup(cx.task.id.get(), mac)).await?;
        }
        Ok(Outcome::Done)
    }
}
