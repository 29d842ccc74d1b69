//! The operations, one module per family. Each declares its steps in order (a step
//! runs, and undoes what it changed outside dcim when the task fails or is aborted
//! after it started) and what its end does to the server. The executor that runs them
//! (claims, leases, waits, retries, recovery, the fenced end) is [`crate::engine`].
//!
//! | module | operations | steps |
//! |---|---|---|
//! | [`power`] | `power_on`, `power_off`, `power_reset`, `boot_device` | the BMC's or the PDU's power, confirmed |
//! | [`ports`] | `suspend`, `resume` | the server's switch ports |
//! | [`netboot`] | (shared) | prepare a network boot, boot it, wait for the agent, boot the disk, clean up |
//! | [`diag`] | `diag` (and `setup_ipmi`, [`bmc_setup`]) | netboot, hardware report, BMC takeover, wipe |
//! | [`wipe`] | `clear_hdd` | netboot, wipe |
//! | [`install`] | `os_install` | netboot, install, disk boot |
//! | [`ip`] | `ip_assign`, `ip_release` | the address, recorded at the end |
//!
//! # Adding an operation
//!
//! Say a `bmc_reset` that cold-resets the BMC and waits until it answers again.
//!
//! 1. A module `ops/bmc_reset.rs` with the parameters (a struct, or nothing), its steps
//!    as types implementing [`Step`] (`name`, `run`, and `undo` if `run` changed the
//!    outside world in a way a failed task must put back), and an `impl Family` that
//!    lists the steps and sets the server's effects in `completed` (and `failed`,
//!    `canceled` where the server must show what happened). A step reaches devices
//!    through the [`Ctx`] it is given (`cx.power()`, `cx.call(..)`); what it learns
//!    for later steps goes in [`Memo`]; it returns [`Outcome::Wait`] to be looked at
//!    again later, without holding a worker.
//! 2. A variant of [`Operation`] (its name on the wire is the task's name) and its
//!    line in [`Operation::family`]: that match is the registry.
//! 3. A handler in `dcim-api` that validates the request and calls `Engine::submit`.
//!
//! Steps must be idempotent: the engine may run one again after a crash, and the
//! tests run every step twice in a row and compare the outcome (`operations.rs`).
//! [`power`] is the shortest real example; [`install`] shows parameters and the
//! shared network-boot steps.

use async_trait::async_trait;
use dcim_core::ServerState;
use dcim_store::tasks::ServerEffects;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod bmc_setup;
mod context;
pub mod diag;
pub mod install;
pub mod ip;
pub mod netboot;
pub mod ports;
pub mod power;
pub mod wipe;

pub use bmc_setup::{BmcIp, BmcSetup};
pub use context::{Ctx, Memo, Outcome, PowerVia, StepError, StepResult};
pub use diag::{Diag, diag_findings};
pub use install::{InstallOs, InstallerSpec, raid_disks};
pub use ip::{IpAssign, IpRelease};
pub use power::BootDeviceChoice;
pub use wipe::ClearHdd;

/// An operation with its validated parameters, stored as the task's `params`
/// (`{"op": name, ...parameters}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    PowerOn,
    PowerOff,
    PowerReset,
    BootDevice(BootDeviceChoice),
    Suspend,
    Resume,
    Diag(Diag),
    ClearHdd(ClearHdd),
    InstallOs(InstallOs),
    IpAssign(IpAssign),
    IpRelease(IpRelease),
}

impl Operation {
    /// The registry: the family that runs each operation.
    pub fn family(&self) -> &dyn Family {
        match self {
            Operation::PowerOn => &power::Power::On,
            Operation::PowerOff => &power::Power::Off,
            Operation::PowerReset => &power::Power::Reset,
            Operation::BootDevice(b) => b,
            Operation::Suspend => &ports::Ports::Suspend,
            Operation::Resume => &ports::Ports::Resume,
            Operation::Diag(d) => d,
            Operation::ClearHdd(w) => w,
            Operation::InstallOs(i) => i,
            Operation::IpAssign(a) => a,
            Operation::IpRelease(r) => r,
        }
    }

    /// The task name, as `GET /task` shows it.
    pub fn name(&self) -> &'static str {
        self.family().name()
    }

    /// Whether it holds the server (one such operation at a time); IP changes
    /// run beside the others.
    pub fn exclusive(&self) -> bool {
        self.family().exclusive()
    }

    /// The names of its steps, in order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.family().steps().iter().map(|s| s.name()).collect()
    }

    /// The server `state` the operation puts the server in when it is accepted.
    pub fn starting_state(&self) -> Option<(ServerState, &'static str)> {
        self.family().starting_state()
    }
}

/// What a step's wait may last before the task fails, by what it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The power state to follow a command (`power_timeout`).
    Power,
    /// The in-band agent's report (`agent_timeout`).
    Agent,
}

/// A step of an operation.
#[async_trait]
pub trait Step: Send + Sync {
    /// Its name in `progress_info` (and in `status_info.step` when it fails).
    fn name(&self) -> &'static str;

    /// Does the step, or looks whether what it waits for happened. Running it again
    /// after it was done is harmless.
    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult;

    /// Puts back what `run` changed outside dcim, when the task fails or is aborted
    /// once this step has started (best effort: a device that does not answer is
    /// left as it is). Steps run in reverse order of their start.
    async fn undo(&self, _cx: &mut Ctx<'_>) {}

    /// What its [`Outcome::Wait`] waits for.
    fn waits_for(&self) -> WaitFor {
        WaitFor::Agent
    }

    /// Whether what it did lives in the process that ran it (the network boot it
    /// prepared): a task resumed in another process runs it again, and the steps after.
    fn per_process(&self) -> bool {
        false
    }
}

/// An operation family: its steps, and what its end does to the server.
#[async_trait]
pub trait Family: Send + Sync {
    /// The task's name.
    fn name(&self) -> &'static str;

    /// The steps, in order.
    fn steps(&self) -> Vec<Box<dyn Step + '_>>;

    /// Whether it holds the server (one such operation at a time).
    fn exclusive(&self) -> bool {
        true
    }

    /// The server's `state` and `state_info` while it runs, set with the task.
    fn starting_state(&self) -> Option<(ServerState, &'static str)> {
        None
    }

    /// The server's changes when every step is done, and what `status_info` adds.
    async fn completed(&self, cx: &Ctx<'_>, fx: &mut ServerEffects, info: &mut Value);

    /// The server's changes when `step` failed with `msg`.
    async fn failed(&self, _cx: &Ctx<'_>, _step: &str, _msg: &str, _fx: &mut ServerEffects) {}

    /// The server's changes when the task is aborted.
    async fn canceled(&self, _cx: &Ctx<'_>, _fx: &mut ServerEffects) {}
}

#[cfg(test)]
mod tests {
    use dcim_core::ClearMode;
    use dcim_store::ids::IpId;

    use super::*;

    #[test]
    fn params_round_trip_and_steps_are_named() {
        let op = Operation::Diag(Diag { template: "Diag6".into(), clear_hdd: ClearMode::Simple, setup_ipmi: None });
        let s = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<Operation>(&s).unwrap(), op);
        assert_eq!(op.step_names().len(), 6);
        // a task stored before setup_ipmi existed reads the same
        let old = r#"{"op":"diag","template":"Diag6","clear_hdd":"simple"}"#;
        assert_eq!(serde_json::from_str::<Operation>(old).unwrap(), op);
        let ip =
            BmcIp { ip_id: IpId(4), address: "10.0.0.9".into(), netmask: "255.255.255.0".into(), gateway: "".into() };
        let op = Operation::Diag(Diag {
            template: "Diag6".into(),
            clear_hdd: ClearMode::None,
            setup_ipmi: Some(BmcSetup { ip: Some(ip.clone()) }),
        });
        assert_eq!(serde_json::from_str::<Operation>(&serde_json::to_string(&op).unwrap()).unwrap(), op);
        assert_eq!(op.step_names()[3], "set up IPMI");
        let Operation::Diag(d) = &op else { unreachable!() };
        assert_eq!(d.bmc_ip(), Some(&ip));
        assert_eq!(Operation::Suspend.starting_state(), Some((ServerState::Suspending, "")));
        // the stored shapes of the unit and struct operations are as before
        assert_eq!(serde_json::to_string(&Operation::PowerOn).unwrap(), r#"{"op":"power_on"}"#);
        let ip = Operation::IpAssign(IpAssign { ip_id: IpId(3), family: 4, main: true });
        assert_eq!(serde_json::to_string(&ip).unwrap(), r#"{"op":"ip_assign","ip_id":3,"family":4,"main":true}"#);
        assert_eq!(ip.name(), "ip_assign");
        assert!(!ip.exclusive() && Operation::PowerOff.exclusive());
    }
}
