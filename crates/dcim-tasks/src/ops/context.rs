//! What a step is given: the task, its server, its memo, and the server's devices
//! (its BMC, its PDU outlets, the boot service) behind the engine's call timeout.

use std::time::Duration;

use dcim_core::{BmcType, ReportKind};
use dcim_drivers::{BootDriver, DeviceAccess, DriverError, Drivers, PduPower, PowerDriver};
use dcim_store::inventory::DeviceKind;
use dcim_store::servers::ServerDetail;
use dcim_store::tasks::TaskRow;
use dcim_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{Engine, EngineConfig};

/// How a step ended this time.
#[derive(Debug)]
pub enum Outcome {
    Done,
    Skipped(String),
    /// Not yet: look again after this long.
    Wait(Duration),
}

/// Why a step failed: whether it is worth another try later, what to tell, and, for a
/// device's failure, its kind (`DriverError::kind`), kept to the task's answer.
#[derive(Debug)]
pub struct StepError {
    pub transient: bool,
    pub msg: String,
    pub kind: Option<&'static str>,
}

impl StepError {
    pub fn transient(msg: String) -> Self {
        StepError { transient: true, msg, kind: None }
    }

    pub fn fatal(msg: String) -> Self {
        StepError { transient: false, msg, kind: None }
    }

    /// A driver that could not be made (an unknown address form, a protocol not
    /// enabled): no retry helps; the driver error's kind is kept.
    pub fn setup(e: DriverError) -> Self {
        StepError { transient: false, ..e.into() }
    }

    /// The same failure, its message put in context by `f`.
    pub fn named(self, f: impl Fn(String) -> String) -> Self {
        StepError { msg: f(self.msg), ..self }
    }
}

impl From<DriverError> for StepError {
    fn from(e: DriverError) -> Self {
        StepError { transient: e.is_transient(), kind: Some(e.kind()), msg: e.to_string() }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::transient(format!("database: {e}"))
    }
}

pub type StepResult = Result<Outcome, StepError>;

/// Where the power went when the BMC failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerVia {
    /// The server's PDU outlets.
    Pdu,
}

/// What a task's steps learned for the steps after them and for its end, stored with
/// the task after each step (so a task resumed elsewhere knows it too). The JSON keys
/// are those of the string-keyed memo it replaces, so tasks running across an upgrade
/// keep theirs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memo {
    /// The process whose boot service holds this task's network boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_owner: Option<String>,
    /// Power went through the PDU after the BMC failed; the confirmation looks there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_via: Option<PowerVia>,
    /// A remark for the task's `status_info.note`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The agent's reports, as it sent them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wiped: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc: Option<Value>,
    /// `setup_ipmi`: the password this boot gives the BMC, until dcim has logged in with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc_password: Option<String>,
    /// `setup_ipmi`: the BMC dcim reached (`{"address","user"}`), for `status_info.ipmi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc_done: Option<Value>,
    /// How many times the current step has waited: with the step and its attempt, the
    /// scope of its device calls' keys (`dcim_drivers::remote`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waits: u32,
    /// How many times the network boot was prepared again (the process or the site
    /// that held it restarted): part of the scope too, so the steps that run again
    /// make new calls rather than join the first ones.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub boots: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where a report the engine waits for is kept in the memo; `None` for the kinds that
/// are not kept (`progress`, `done`, `failed`).
fn slot(kind: ReportKind, memo: &mut Memo) -> Option<&mut Option<Value>> {
    match kind {
        ReportKind::Hardware => Some(&mut memo.hardware),
        ReportKind::Wiped => Some(&mut memo.wiped),
        ReportKind::Installed => Some(&mut memo.installed),
        ReportKind::Bmc => Some(&mut memo.bmc),
        ReportKind::Progress | ReportKind::Done | ReportKind::Failed => None,
    }
}

/// A step's view of its task.
pub struct Ctx<'a> {
    pub(crate) engine: &'a Engine,
    pub task: &'a TaskRow,
    pub server: &'a ServerDetail,
    pub memo: Memo,
}

impl Ctx<'_> {
    pub fn store(&self) -> &Store {
        &self.engine.store
    }

    pub fn drivers(&self) -> &Drivers {
        &self.engine.drivers
    }

    pub fn cfg(&self) -> &EngineConfig {
        &self.engine.cfg
    }

    /// The worker's name, as it holds the task's lease.
    pub fn owner(&self) -> &str {
        &self.engine.owner
    }

    /// A driver call under the call timeout.
    pub async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<T, StepError> {
        let limit = self.engine.cfg.call_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r.map_err(StepError::from),
            Err(_) => Err(StepError::transient(format!("the device did not answer within {} ms", limit.as_millis()))),
        }
    }

    /// The kind of the server's BMC, as inventory says.
    pub fn bmc_kind(&self) -> Option<BmcType> {
        self.server.server.ipmi_type
    }

    /// The boot service for the server.
    pub fn boot(&self) -> Result<Box<dyn BootDriver>, StepError> {
        self.engine.drivers.boot(self.bmc_kind(), Some(self.server.server.location_id)).map_err(StepError::setup)
    }

    /// The server's BMC with its credentials, read afresh (a step may have replaced it).
    pub async fn bmc(&self) -> Result<Option<dcim_drivers::BmcAccess>, StepError> {
        let Some(b) = self.store().bmc_credentials(self.server.server.id).await? else { return Ok(None) };
        Ok(Some(dcim_drivers::BmcAccess {
            kind: b.kind,
            address: b.address,
            user: b.user,
            password: b.password,
            mac: self.server.server.mac.clone(),
            tls_fingerprint: b.tls_fingerprint.as_deref().and_then(dcim_tls::parse_fingerprint),
            location: Some(self.server.server.location_id),
        }))
    }

    /// The power driver of a BMC.
    pub fn bmc_power(&self, bmc: &dcim_drivers::BmcAccess) -> Result<Box<dyn PowerDriver>, StepError> {
        self.engine.drivers.power(bmc).map_err(StepError::setup)
    }

    /// The server's power driver: its BMC, or its PDU outlets when it has none.
    pub async fn power(&self) -> Result<Box<dyn PowerDriver>, StepError> {
        match self.bmc().await? {
            Some(bmc) => self.bmc_power(&bmc),
            None => Ok(Box::new(self.pdu_power().await?)),
        }
    }

    /// The server's PDU outlets as one power driver.
    pub async fn pdu_power(&self) -> Result<PduPower, StepError> {
        let server = self.server;
        if server.pdu_connections.is_empty() {
            return Err(StepError::fatal(format!(
                "server {} has neither a BMC nor a PDU outlet to power it",
                server.server.name
            )));
        }
        let mut outlets = vec![];
        for c in &server.pdu_connections {
            let pdu = self.store().get_device(DeviceKind::Pdu, c.pdu_id).await?;
            let protocol = pdu.protocol;
            let access = DeviceAccess {
                address: pdu.ip.clone(),
                secret: self.store().device_secret(DeviceKind::Pdu, pdu.id).await?,
                location: Some(pdu.location_id),
            };
            let driver = self
                .engine
                .drivers
                .pdu(protocol, &pdu.model, &access)
                .map_err(|e| StepError::setup(e).named(|m| format!("PDU {}: {m}", pdu.name)))?;
            outlets.push((driver, c.port_index));
        }
        Ok(PduPower { outlets, cycle_pause: Duration::from_millis(500) })
    }

    /// Waits for the agent's `report`, keeping it in the memo; a `failed` report fails
    /// the step.
    pub async fn await_report(&mut self, report: ReportKind) -> StepResult {
        for (k, data) in self.store().task_reports(self.task.id).await? {
            if k == ReportKind::Failed {
                let d: Value = serde_json::from_str(&data).unwrap_or_default();
                let msg = d["message"].as_str().unwrap_or("the agent reported a failure");
                return Err(StepError::fatal(format!("the in-band agent failed: {msg}")));
            }
            if k == report {
                if let Some(kept) = slot(report, &mut self.memo) {
                    *kept = Some(serde_json::from_str(&data).unwrap_or_default());
                }
                return Ok(Outcome::Done);
            }
        }
        Ok(Outcome::Wait(Duration::from_secs(2)))
    }
}
