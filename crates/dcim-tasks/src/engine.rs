//! Claims tasks, runs their steps, records progress, finishes them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dcim_core::installer::{self, InstallVars, InstallerKind};
use dcim_core::{BmcType, DeviceProtocol};
use dcim_drivers::{
    BootDevice, BootMode, BootRequest, DeviceAccess, DriverError, Drivers, PduPower, PowerDriver, PowerState,
};
use dcim_store::inventory::DeviceKind;
use dcim_store::servers::ServerDetail;
use dcim_store::tasks::{Checkpoint, IpEffect, NewTask, ServerEffects, TaskRow, now_ms};
use dcim_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::Instrument;

use crate::ops::{Operation, StepKind};

mod bmc_setup;

/// Most tasks claimed in one statement.
const CLAIM_BATCH: usize = 64;

/// Longest run of quick steps left unrecorded.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Tunables of the engine.

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Tasks one process runs at once (waiting tasks do not count).
    pub workers: usize,
    /// How long a claim lasts without renewal; a dead worker's task is resumed after it.
    pub lease: Duration,
    /// How often an idle process looks for work.
    pub poll: Duration,
    /// Longest a single driver call may take.
    pub call_timeout: Duration,
    /// Tries of a step that fails transiently (device unreachable, timeout).
    pub max_attempts: i64,
    /// First retry delay; it doubles with each attempt.
    pub backoff: Duration,
    /// How long to wait for the power state to follow a command.
    pub power_timeout: Duration,
    /// How long to wait for the in-band agent's report.
    pub agent_timeout: Duration,
    /// Times a task may lose its worker (process died) before it fails.
    pub max_recoveries: i64,
    /// Where agents post reports: `{agent_callback}/{task_id}/report`.
    pub agent_callback: String,
    /// Run every step twice in a row (tests: steps must be idempotent).
    pub repeat_steps: bool,
    /// The BMC user `setup_ipmi` creates (or takes over) for dcim.
    pub bmc_user: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 256,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(200),
            call_timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            power_timeout: Duration::from_secs(120),
            agent_timeout: Duration::from_secs(3600),
            max_recoveries: 3,
            agent_callback: "http://127.0.0.1:8080/agent/v1/task".into(),
            repeat_steps: false,
            bmc_user: "dcim".into(),
        }
    }
}

/// One step's line in `progress_info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepInfo {
    pub name: String,
    /// `pending`, `running`, `complete`, `skipped`, `fail` or `canceled`.
    pub status: String,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    #[serde(default)]
    pub message: String,
}

/// How a step ended this time.
enum Outcome {
    Done,
    Skipped(String),
    /// Not yet: look again after this long.
    Wait(Duration),
}

/// Why a step failed: whether it is worth another try later, what to tell, and, for a
/// device's failure, its kind (`DriverError::kind`), kept to the task's answer.
struct StepError {
    transient: bool,
    msg: String,
    kind: Option<&'static str>,
}

impl StepError {
    fn transient(msg: String) -> Self {
        StepError { transient: true, msg, kind: None }
    }

    fn fatal(msg: String) -> Self {
        StepError { transient: false, msg, kind: None }
    }

    /// The same failure, its message put in context by `f`.
    fn named(self, f: impl Fn(String) -> String) -> Self {
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

type StepResult = Result<Outcome, StepError>;

/// The task engine of one process.
pub struct Engine {
    pub store: Store,
    pub drivers: Drivers,
    /// The process's background workers (pollers, purges, deliveries) and their rounds.
    pub workers: crate::workers::Workers,
    pub cfg: EngineConfig,
    owner: String,
    wake: Notify,
    stopping: AtomicBool,
    /// True while [`Engine::run`] dispatches.
    dispatching: AtomicBool,
}

fn unix() -> i64 {
    now_ms() / 1000
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Engine {
    pub fn new(store: Store, drivers: Drivers, cfg: EngineConfig) -> Arc<Engine> {
        let owner = format!("{}-{}-{:08x}", hostname(), std::process::id(), rand::random::<u32>());
        Arc::new(Engine {
            store,
            drivers,
            workers: crate::workers::Workers::default(),
            cfg,
            owner,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            dispatching: AtomicBool::new(false),
        })
    }

    /// Whether the dispatcher runs (for readiness).
    pub fn dispatching(&self) -> bool {
        self.dispatching.load(Ordering::SeqCst)
    }

    /// Records an operation as a task (or a conflict naming the running one) and
    /// wakes a worker. The server's starting state is set in the same transaction.
    pub async fn submit(&self, server_id: i64, op: &Operation) -> Result<i64, StoreError> {
        let steps: Vec<StepInfo> = op
            .steps()
            .iter()
            .map(|s| StepInfo {
                name: s.name().into(),
                status: "pending".into(),
                started: None,
                finished: None,
                message: String::new(),
            })
            .collect();
        let names: Vec<&str> = op.steps().iter().map(|s| s.name()).collect();
        let id = self
            .store
            .create_task(&NewTask {
                server_id,
                name: op.name().into(),
                params: serde_json::to_string(op).expect("serializable"),
                steps: serde_json::to_string(&names).expect("serializable"),
                progress_info: serde_json::to_string(&steps).expect("serializable"),
                secret_hash: None,
                server_state: op.starting_state().map(|(s, i)| (s.to_owned(), i.to_owned())),
                exclusive: op.exclusive(),
                request_id: crate::REQUEST_ID.try_with(Clone::clone).ok(),
            })
            .await?;
        self.drivers.metrics().task_started(op.name());
        self.wake.notify_one();
        Ok(id)
    }

    /// Asks the server's running operation to stop; its worker unwinds it.
    pub async fn abort(&self, server_id: i64) -> Result<Option<i64>, StoreError> {
        let id = self.store.request_cancel(server_id).await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Something happened that a parked task may wait for (an agent report).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Runs the dispatcher until `stop` turns true, then lets running steps end and
    /// hands their tasks back (so another process, or the next start, goes on).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        self.dispatching.store(true, Ordering::SeqCst);
        let permits = Arc::new(Semaphore::new(self.cfg.workers));
        let lease_ms = self.cfg.lease.as_millis() as i64;
        loop {
            if *stop.borrow() {
                break;
            }
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore open"),
                _ = stop.changed() => break,
            };
            // Claim as many as there are free workers (up to a batch) in one statement.
            let mut batch = vec![first];
            while batch.len() < CLAIM_BATCH {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            match self.store.claim_tasks(&self.owner, lease_ms, batch.len() as i64).await {
                Ok(tasks) if !tasks.is_empty() => {
                    for (task, permit) in tasks.into_iter().zip(batch.drain(..)) {
                        let me = self.clone();
                        let span = tracing::info_span!(
                            "task",
                            task_id = task.id,
                            operation = %task.name,
                            server_id = task.server_id,
                            request_id = task.request_id.as_deref().unwrap_or(""),
                        );
                        tokio::spawn(
                            async move {
                                me.drive(task).await;
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                }
                Ok(_) => {
                    drop(batch);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.cfg.poll) => {}
                        _ = stop.changed() => break,
                    }
                }
                Err(e) => {
                    drop(batch);
                    tracing::warn!(error = %e, "claiming a task failed");
                    tokio::time::sleep(self.cfg.poll).await;
                }
            }
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.dispatching.store(false, Ordering::SeqCst);
        let all = u32::try_from(self.cfg.workers).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.cfg.call_timeout, permits.acquire_many(all)).await;
    }

    /// Runs a claimed task while renewing its lease.
    async fn drive(self: &Arc<Self>, task: TaskRow) {
        let lost = Arc::new(AtomicBool::new(false));
        let (done_tx, mut done_rx) = watch::channel(false);
        let heartbeat = {
            let (me, lost, id) = (self.clone(), lost.clone(), task.id);
            tokio::spawn(async move {
                let lease_ms = me.cfg.lease.as_millis() as i64;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(me.cfg.lease / 3) => {}
                        _ = done_rx.changed() => return,
                    }
                    match me.store.renew_lease(id, &me.owner, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(task = id, error = %e, "renewing a lease failed"),
                    }
                }
            })
        };
        let id = task.id;
        if let Err(e) = self.drive_steps(task, &lost).await {
            // Only storage errors get here; the lease runs out and the task resumes.
            tracing::warn!(task = id, error = %e, "task interrupted; it resumes when its lease ends");
        }
        let _ = done_tx.send(true);
        let _ = heartbeat.await;
    }

    async fn drive_steps(&self, task: TaskRow, lost: &AtomicBool) -> Result<(), StoreError> {
        let mut progress: Vec<StepInfo> = serde_json::from_str(&task.progress_info).unwrap_or_default();
        let mut memo: Map<String, Value> = serde_json::from_str(&task.memo).unwrap_or_default();
        let op: Operation = match serde_json::from_str(&task.params) {
            Ok(op) => op,
            Err(e) => {
                return self.fail(&task, &mut progress, 0, &format!("unreadable parameters: {e}"), None).await;
            }
        };
        let steps = op.steps();
        let mut step = task.step.max(0) as usize;
        let mut attempt = task.attempt;
        if task.recoveries > self.cfg.max_recoveries {
            let msg = format!(
                "the process running this task stopped {} times; giving up (the server may need a look)",
                task.recoveries
            );
            return self.fail(&task, &mut progress, step, &msg, Some(&op)).await;
        }
        let Some(server_id) = task.server_id else {
            return self.fail(&task, &mut progress, step, "the server was deleted", None).await;
        };
        let server = match self.store.get_server(server_id, &[]).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => {
                return self.fail(&task, &mut progress, step, "the server was deleted", None).await;
            }
            Err(e) => return Err(e),
        };
        // The boot service of the process that prepared a network boot may be gone
        // with it: a task resumed elsewhere prepares the boot again (it is idempotent).
        if let Some(prep) = steps.iter().position(|k| *k == StepKind::PrepareBoot) {
            let elsewhere = memo.get("boot_owner").and_then(Value::as_str).is_some_and(|o| o != self.owner);
            if elsewhere && step > prep && step < steps.len() {
                for p in progress.iter_mut().skip(prep) {
                    *p = StepInfo {
                        name: p.name.clone(),
                        status: "pending".into(),
                        started: None,
                        finished: None,
                        message: "again: the process that prepared the network boot stopped".into(),
                    };
                }
                step = prep;
                attempt = 0;
            }
        }
        let mut cancel = task.cancel != 0;
        let mut last_write = std::time::Instant::now();
        loop {
            if lost.load(Ordering::SeqCst) {
                return Ok(());
            }
            if cancel {
                return self.cancel(&task, &op, &server, &mut progress, step, &memo).await;
            }
            if step >= steps.len() {
                return self.complete(&task, &op, &server, &mut progress, &memo).await;
            }
            let kind = steps[step];
            let started = *progress[step].started.get_or_insert_with(unix);
            progress[step].status = "running".into();
            let mut result = self.run_step(&task, &op, &server, kind, &mut memo).await;
            if self.cfg.repeat_steps && matches!(result, Ok(Outcome::Done | Outcome::Skipped(_))) {
                result = self.run_step(&task, &op, &server, kind, &mut memo).await;
            }
            let mut release_at = None;
            match result {
                Ok(Outcome::Done) => {
                    progress[step].status = "complete".into();
                    progress[step].finished = Some(unix());
                    progress[step].message.clear();
                    step += 1;
                    attempt = 0;
                }
                Ok(Outcome::Skipped(why)) => {
                    progress[step].status = "skipped".into();
                    progress[step].finished = Some(unix());
                    progress[step].message = why;
                    step += 1;
                    attempt = 0;
                }
                Ok(Outcome::Wait(after)) => {
                    let limit = self.wait_limit(kind);
                    if unix() - started > limit.as_secs() as i64 {
                        let msg = match kind {
                            StepKind::ConfirmOn | StepKind::ConfirmOff => {
                                format!("the power state did not follow the command within {} s", limit.as_secs())
                            }
                            _ => format!("no report from the in-band agent within {} s", limit.as_secs()),
                        };
                        return self.fail(&task, &mut progress, step, &msg, Some(&op)).await;
                    }
                    release_at = Some(now_ms() + after.as_millis() as i64);
                }
                Err(StepError { transient: true, msg, kind }) => {
                    attempt += 1;
                    if attempt >= self.cfg.max_attempts {
                        let msg = format!("{msg} (gave up after {attempt} attempts)");
                        return self.fail_with(&task, &mut progress, step, &msg, kind, Some(&op)).await;
                    }
                    progress[step].message = format!("attempt {attempt} failed: {msg}; retrying");
                    let backoff = self.cfg.backoff.saturating_mul(1 << (attempt - 1).min(10) as u32);
                    release_at = Some(now_ms() + backoff.as_millis() as i64);
                }
                Err(StepError { transient: false, msg, kind }) => {
                    return self.fail_with(&task, &mut progress, step, &msg, kind, Some(&op)).await;
                }
            }
            if step >= steps.len() && release_at.is_none() {
                continue; // finishing writes everything at once
            }
            let stopping = self.stopping.load(Ordering::SeqCst);
            // Quick steps in a row are recorded together: a resumed task repeats
            // at most those (steps are idempotent), and the database is spared.
            if release_at.is_none() && !stopping && last_write.elapsed() < CHECKPOINT_EVERY {
                continue;
            }
            last_write = std::time::Instant::now();
            let cp = Checkpoint {
                step: step as i64,
                attempt,
                progress: percent(&progress),
                progress_info: serde_json::to_string(&progress).expect("serializable"),
                memo: Value::Object(memo.clone()).to_string(),
                not_before: release_at.unwrap_or(0),
                release: release_at.is_some() || stopping,
            };
            match self.store.checkpoint(task.id, &self.owner, &cp).await? {
                None => return Ok(()), // the lease was lost: someone else has it now
                Some(c) => cancel = c,
            }
            if cp.release {
                return Ok(());
            }
        }
    }

    fn wait_limit(&self, kind: StepKind) -> Duration {
        match kind {
            StepKind::ConfirmOn | StepKind::ConfirmOff => self.cfg.power_timeout,
            _ => self.cfg.agent_timeout,
        }
    }

    /// Runs one step. Steps are idempotent: running one twice is harmless.
    async fn run_step(
        &self,
        task: &TaskRow,
        op: &Operation,
        server: &ServerDetail,
        kind: StepKind,
        memo: &mut Map<String, Value>,
    ) -> StepResult {
        let s = &server.server;
        match kind {
            StepKind::PowerOn => {
                let note = self.outlets_on_first(server).await?;
                self.call(self.power(server).await?.on()).await?;
                if let Some(n) = note {
                    memo.insert("note".into(), n.into());
                }
                Ok(Outcome::Done)
            }
            StepKind::PowerOff => self.power_off(server, memo).await,
            StepKind::Reset => {
                self.outlets_on_first(server).await?;
                self.call(self.power(server).await?.reset()).await?;
                Ok(Outcome::Done)
            }
            StepKind::ConfirmOn | StepKind::ConfirmOff => {
                let want = if kind == StepKind::ConfirmOn { PowerState::On } else { PowerState::Off };
                let driver: Box<dyn PowerDriver> = if memo.get("power_via").and_then(Value::as_str) == Some("pdu") {
                    Box::new(self.pdu_power(server).await?)
                } else {
                    self.power(server).await?
                };
                let got = self.call(driver.status()).await?;
                if got != want {
                    // Shown while waiting; on success the task's end records it.
                    self.store.set_power_status(s.id, got.as_str()).await?;
                }
                if s.ipmi_address.is_none() || memo.contains_key("power_via") {
                    // Powered at the PDU: its outlets' state is what changed.
                    let pdu = self.pdu_power(server).await?;
                    for ((d, index), c) in pdu.outlets.iter().zip(&server.pdu_connections) {
                        let st = self.call(d.outlet_status(*index)).await?;
                        self.store.set_outlet_status(c.port_id, st.as_str()).await?;
                    }
                }
                if got == want { Ok(Outcome::Done) } else { Ok(Outcome::Wait(Duration::from_secs(1))) }
            }
            StepKind::ShutPorts | StepKind::OpenPorts => {
                let up = kind == StepKind::OpenPorts;
                let mut touched = 0;
                for c in server.switch_connections.iter().filter(|c| c.is_ipmi_connection == 0) {
                    let sw = self.store.get_device(DeviceKind::Switch, c.switch_id).await?;
                    let named =
                        |e: String| format!("switch {} port {} (ifIndex {}): {e}", sw.name, c.port_name, c.port_index);
                    let protocol: DeviceProtocol =
                        sw.protocol.parse().map_err(|_| StepError::fatal(named("unknown protocol".into())))?;
                    let access = DeviceAccess {
                        address: sw.ip.clone(),
                        secret: self.store.device_secret(DeviceKind::Switch, sw.id).await?,
                    };
                    let driver =
                        self.drivers.switch(protocol, &access).map_err(|e| StepError::fatal(named(e.to_string())))?;
                    self.call(driver.set_admin(c.port_index, up)).await.map_err(|e| e.named(named))?;
                    self.store.set_port_admin_status(c.port_id, if up { "up" } else { "down" }).await?;
                    touched += 1;
                }
                if touched == 0 {
                    return Ok(Outcome::Skipped("the server has no switch port besides its BMC's".into()));
                }
                Ok(Outcome::Done)
            }
            StepKind::PrepareBoot => {
                let mac = s.mac.clone().ok_or_else(|| {
                    StepError::fatal("the server has no MAC address to boot from; set it first".into())
                })?;
                let boot = self.drivers.boot(self.bmc_kind(server)).map_err(|e| StepError::fatal(e.to_string()))?;
                let location = Some(s.location_id);
                let callback = boot.agent_callback(location).unwrap_or_else(|| self.cfg.agent_callback.clone());
                // A fresh secret per preparation: an agent of an earlier boot can no longer report.
                let secret = hex::encode(rand::random::<[u8; 32]>());
                if !self.store.set_task_secret(task.id, &self.owner, &hash(&secret)).await? {
                    return Err(StepError::transient("lost the task's lease".into()));
                }
                let (mode, answer) = match op {
                    Operation::Diag { clear_hdd, template, setup_ipmi } => {
                        let mut answer = json!({"template": template});
                        if let Some(setup) = setup_ipmi {
                            // A new password per boot; kept in the memo until the BMC answers with it.
                            let password = bmc_setup::bmc_password();
                            let ip = setup
                                .ip
                                .as_ref()
                                .map(|i| json!({"address": i.address, "netmask": i.netmask, "gateway": i.gateway}));
                            answer["bmc"] = json!({"user": self.cfg.bmc_user, "password": password, "ip": ip});
                            memo.insert("bmc_password".into(), password.into());
                        }
                        (BootMode::Diag { clear_hdd: clear_hdd.clone() }, answer)
                    }
                    Operation::ClearHdd { clear_hdd } => (BootMode::Wipe { clear_hdd: clear_hdd.clone() }, json!({})),
                    Operation::InstallOs {
                        template,
                        raid,
                        hostname,
                        password_hash,
                        ssh_keys,
                        disks,
                        image_url,
                        image_sha256,
                        installer,
                        ..
                    } => {
                        let mut answer = json!({"hostname": hostname, "password_hash": password_hash,
                               "ssh_keys": ssh_keys, "raid": raid, "disks": disks, "template": template,
                               "image_url": served_url(image_url, &callback), "image_sha256": image_sha256});
                        if let Some(i) = installer {
                            let kind: InstallerKind = i.kind.parse().map_err(StepError::fatal)?;
                            let vars = InstallVars {
                                hostname: hostname.clone(),
                                password_hash: password_hash.clone(),
                                ssh_keys: ssh_keys.clone(),
                                raid: raid.clone(),
                                disks: disks.clone(),
                                callback: callback.clone(),
                                task: task.id,
                                secret: secret.clone(),
                            };
                            answer["installer"] = json!({"kind": kind.as_str(), "kernel": i.kernel,
                                "initrd": i.initrd, "answer_file": installer::render(kind, i.template.as_deref(), &vars)});
                        }
                        (BootMode::Install { template: template.clone() }, answer)
                    }
                    _ => return Err(StepError::fatal("this operation does not boot from the network".into())),
                };
                let req = BootRequest { task_id: task.id, secret, callback, mac, mode, answer, location_id: location };
                self.call(boot.prepare(&req)).await?;
                memo.insert("boot_owner".into(), self.owner.clone().into());

                Ok(Outcome::Done)
            }
            StepKind::NetBoot => {
                let power = self.power(server).await?;
                self.call(power.set_boot_device(BootDevice::Pxe, s.efi != 0, false)).await?;
                self.call(power.reset()).await?;
                Ok(Outcome::Done)
            }
            StepKind::AwaitHardware => self.await_report(task, "hardware", memo).await,
            StepKind::SetupBmc => self.setup_bmc(task, op, server, memo).await,
            StepKind::AwaitWipe => {
                if op.clear_hdd() == "none" {
                    return Ok(Outcome::Skipped("clear_hdd is none".into()));
                }
                self.await_report(task, "wiped", memo).await
            }
            StepKind::AwaitInstall => self.await_report(task, "installed", memo).await,
            StepKind::AssignIp | StepKind::ReleaseIp => {
                let ip_id = match op {
                    Operation::IpAssign { ip_id, .. } | Operation::IpRelease { ip_id } => *ip_id,
                    _ => return Err(StepError::fatal("not an IP operation".into())),
                };
                // The address is recorded by the task's end, in the same transaction
                // as its status; here it must still be this server's.
                match self.store.get_ip(ip_id).await {
                    Ok(ip) if ip.server_id == Some(s.id) => Ok(Outcome::Done),
                    Ok(_) => Err(StepError::fatal(format!("address {ip_id} belongs to another server now"))),
                    Err(StoreError::NotFound { .. }) => Err(StepError::fatal(format!("address {ip_id} is gone"))),
                    Err(e) => Err(e.into()),
                }
            }
            StepKind::SetBootDevice => {
                let Operation::BootDevice { pxe, efi, persistent } = op else {
                    return Err(StepError::fatal("not a boot device operation".into()));
                };
                let device = if *pxe { BootDevice::Pxe } else { BootDevice::Disk };
                let power = self.power(server).await?;
                self.call(power.set_boot_device(device, efi.unwrap_or(s.efi != 0), *persistent)).await?;
                Ok(Outcome::Done)
            }
            StepKind::DiskBoot => {
                let power = self.power(server).await?;
                self.call(power.set_boot_device(BootDevice::Disk, s.efi != 0, true)).await?;
                self.call(power.reset()).await?;
                Ok(Outcome::Done)
            }
            StepKind::CleanupBoot => {
                let boot = self.drivers.boot(self.bmc_kind(server)).map_err(|e| StepError::fatal(e.to_string()))?;
                if let Some(mac) = &s.mac {
                    self.call(boot.cleanup(task.id, mac)).await?;
                }
                Ok(Outcome::Done)
            }
        }
    }

    /// Waits for the agent's `kind` report; a `failed` report fails the step.
    async fn await_report(&self, task: &TaskRow, kind: &str, memo: &mut Map<String, Value>) -> StepResult {
        for (k, data) in self.store.task_reports(task.id).await? {
            if k == "failed" {
                let d: Value = serde_json::from_str(&data).unwrap_or_default();
                let msg = d["message"].as_str().unwrap_or("the agent reported a failure");
                return Err(StepError::fatal(format!("the in-band agent failed: {msg}")));
            }
            if k == kind {
                memo.insert(kind.into(), serde_json::from_str(&data).unwrap_or_default());
                return Ok(Outcome::Done);
            }
        }
        Ok(Outcome::Wait(Duration::from_secs(2)))
    }

    /// Power off at the BMC; if the BMC fails and the server has PDU outlets, at the PDU.
    async fn power_off(&self, server: &ServerDetail, memo: &mut Map<String, Value>) -> StepResult {
        let bmc = self.bmc(server).await?;
        if let Some(bmc) = bmc {
            let driver = self.drivers.power(&bmc).map_err(|e| StepError::fatal(e.to_string()));
            let tried = match driver {
                Ok(d) => self.call(d.off()).await,
                Err(e) => Err(e),
            };
            match tried {
                Ok(()) => return Ok(Outcome::Done),
                Err(e) if server.pdu_connections.is_empty() => return Err(e),
                Err(e) => {
                    memo.insert("power_via".into(), "pdu".into());
                    memo.insert("note".into(), format!("the BMC failed ({}); powered off at the PDU", e.msg).into());
                }
            }
        }
        self.call(self.pdu_power(server).await?.off()).await?;
        Ok(Outcome::Done)
    }

    /// A server with both a BMC and PDU outlets gets its outlets switched on before
    /// the BMC is asked to power on (a BMC without power cannot).
    async fn outlets_on_first(&self, server: &ServerDetail) -> Result<Option<String>, StepError> {
        if server.pdu_connections.is_empty() || server.server.ipmi_address.is_none() {
            return Ok(None);
        }
        let off: Vec<_> = server.pdu_connections.iter().filter(|c| c.power_status != "up").collect();
        if off.is_empty() {
            return Ok(None);
        }
        self.call(self.pdu_power(server).await?.on()).await?;
        for c in &server.pdu_connections {
            self.store.set_outlet_status(c.port_id, "up").await?;
        }
        Ok(Some(format!("switched on {} PDU outlet(s) first", off.len())))
    }

    fn bmc_kind(&self, server: &ServerDetail) -> Option<BmcType> {
        server.server.ipmi_type.as_deref().and_then(|t| t.parse().ok())
    }

    async fn bmc(&self, server: &ServerDetail) -> Result<Option<dcim_drivers::BmcAccess>, StepError> {
        let Some(b) = self.store.bmc_credentials(server.server.id).await? else { return Ok(None) };
        let kind: BmcType = b.kind.parse().map_err(|_| StepError::fatal(format!("unknown BMC type '{}'", b.kind)))?;
        Ok(Some(dcim_drivers::BmcAccess {
            kind,
            address: b.address,
            user: b.user,
            password: b.password,
            mac: server.server.mac.clone(),
            tls_fingerprint: b.tls_fingerprint.as_deref().and_then(dcim_tls::parse_fingerprint),
        }))
    }

    /// The server's power driver: its BMC, or its PDU outlets when it has none.
    async fn power(&self, server: &ServerDetail) -> Result<Box<dyn PowerDriver>, StepError> {
        match self.bmc(server).await? {
            Some(bmc) => self.drivers.power(&bmc).map_err(|e| StepError::fatal(e.to_string())),
            None => Ok(Box::new(self.pdu_power(server).await?)),
        }
    }

    async fn pdu_power(&self, server: &ServerDetail) -> Result<PduPower, StepError> {
        if server.pdu_connections.is_empty() {
            return Err(StepError::fatal(format!(
                "server {} has neither a BMC nor a PDU outlet to power it",
                server.server.name
            )));
        }
        let mut outlets = vec![];
        for c in &server.pdu_connections {
            let pdu = self.store.get_device(DeviceKind::Pdu, c.pdu_id).await?;
            let protocol: DeviceProtocol =
                pdu.protocol.parse().map_err(|_| StepError::fatal(format!("PDU {}: unknown protocol", pdu.name)))?;
            let access = DeviceAccess {
                address: pdu.ip.clone(),
                secret: self.store.device_secret(DeviceKind::Pdu, pdu.id).await?,
            };
            let driver = self
                .drivers
                .pdu(protocol, &pdu.model, &access)
                .map_err(|e| StepError::fatal(format!("PDU {}: {e}", pdu.name)))?;
            outlets.push((driver, c.port_index));
        }
        Ok(PduPower { outlets, cycle_pause: Duration::from_millis(500) })
    }

    /// A driver call under the call timeout.
    async fn call<T>(&self, fut: impl std::future::Future<Output = Result<T, DriverError>>) -> Result<T, StepError> {
        match tokio::time::timeout(self.cfg.call_timeout, fut).await {
            Ok(r) => r.map_err(StepError::from),
            Err(_) => Err(StepError::transient(format!(
                "the device did not answer within {} ms",
                self.cfg.call_timeout.as_millis()
            ))),
        }
    }

    async fn complete(
        &self,
        task: &TaskRow,
        op: &Operation,
        server: &ServerDetail,
        progress: &mut [StepInfo],
        memo: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let mut fx = ServerEffects::default();
        match op {
            Operation::PowerOn | Operation::PowerReset => fx.power_status = Some("on".into()),
            Operation::PowerOff => fx.power_status = Some("off".into()),
            Operation::Suspend => fx.state = Some(("suspended".into(), String::new())),
            Operation::Resume => fx.state = Some(("ok".into(), String::new())),
            Operation::Diag { .. } => {
                let hw = memo.get("hardware").cloned().unwrap_or_else(|| json!({}));
                let parsed: dcim_core::configuration::HardwareInfo =
                    serde_json::from_value(hw.clone()).unwrap_or_default();
                fx.hardware = Some((hw.to_string(), dcim_core::configuration::generate(&parsed)));
                fx.is_new = Some(false);
                let before: Value = serde_json::from_str(&server.server.hardware_info).unwrap_or_default();
                let findings = crate::ops::diag_findings(&before, &hw);
                fx.diag_error = Some((!findings.is_empty()).then(|| Value::Array(findings).to_string()));
                fx.power_status = Some("off".into());
            }
            Operation::ClearHdd { .. } => fx.power_status = Some("off".into()),
            Operation::InstallOs { template_id, .. } => {
                fx.os_template_id = Some(*template_id);
                fx.power_status = Some("on".into());
            }
            Operation::IpAssign { ip_id, family, main } => {
                fx.ip = Some(IpEffect::Assigned { ip_id: *ip_id, family: *family, main: *main })
            }
            Operation::IpRelease { ip_id } => fx.ip = Some(IpEffect::Released { ip_id: *ip_id }),
            Operation::BootDevice { .. } => {}
        }
        let mut info = json!({"message": format!("{} complete", op.name())});
        if let Some(n) = memo.get("note") {
            info["note"] = n.clone();
        }
        if let Some(w) = memo.get("wiped") {
            info["wiped"] = w.clone();
        }
        if let Some(b) = memo.get("bmc_done") {
            info["ipmi"] = b.clone();
        }
        let _ = server;
        let written = self
            .store
            .finish_task(task.id, &self.owner, "complete", &info.to_string(), 100, &to_json(progress), &fx)
            .await?;
        self.count_end(task, "complete", written);
        tracing::info!(task = task.id, op = op.name(), "task complete");
        Ok(())
    }

    /// Fails the task at `step` with `msg`, leaving the server in a clear state.
    async fn fail(
        &self,
        task: &TaskRow,
        progress: &mut [StepInfo],
        step: usize,
        msg: &str,
        op: Option<&Operation>,
    ) -> Result<(), StoreError> {
        self.fail_with(task, progress, step, msg, None, op).await
    }

    /// [`Self::fail`] with the kind of the device's failure (`timeout`, `refused`, `auth`,
    /// `unreachable`, `protocol`, `unsupported`), kept in the task's `status_info.kind`.
    async fn fail_with(
        &self,
        task: &TaskRow,
        progress: &mut [StepInfo],
        step: usize,
        msg: &str,
        kind: Option<&'static str>,
        op: Option<&Operation>,
    ) -> Result<(), StoreError> {
        let name = progress.get(step).map(|s| s.name.clone()).unwrap_or_default();
        if let Some(p) = progress.get_mut(step) {
            p.status = "fail".into();
            p.finished = Some(unix());
            p.message = msg.to_owned();
        }
        let mut fx = ServerEffects::default();
        let why = format!("{name}: {msg}");
        match op {
            Some(Operation::Suspend) => fx.state = Some(("suspend_error".into(), why.clone())),
            Some(Operation::Resume) => fx.state = Some(("resume_error".into(), why.clone())),
            Some(Operation::Diag { .. }) => {
                fx.diag_error = Some(Some(json!([{"type": name, "info": msg}]).to_string()));
            }
            Some(Operation::PowerOn | Operation::PowerOff | Operation::PowerReset) => {
                fx.power_status = Some("unknown".into());
            }
            Some(Operation::IpAssign { ip_id, .. }) => {
                let info = json!({"step": name, "message": msg}).to_string();
                fx.ip = Some(IpEffect::Failed { ip_id: *ip_id, status: "allocation_fail".into(), info });
            }
            Some(Operation::IpRelease { ip_id }) => {
                let info = json!({"step": name, "message": msg}).to_string();
                fx.ip = Some(IpEffect::Failed { ip_id: *ip_id, status: "fail".into(), info });
            }
            _ => {}
        }
        if !self.still_mine(task).await? {
            return Ok(());
        }
        self.bmc_ip_back(task, op, &mut fx).await;
        if let Some(op) = op {
            self.unwind(task, op).await;
        }
        let mut info = json!({"step": name, "message": msg});
        if let Some(k) = kind {
            info["kind"] = k.into();
        }
        let written = self
            .store
            .finish_task(task.id, &self.owner, "fail", &info.to_string(), percent(progress), &to_json(progress), &fx)
            .await?;
        self.count_end(task, "fail", written);
        tracing::warn!(task = task.id, step = %name, error = %msg, "task failed");
        Ok(())
    }

    async fn cancel(
        &self,
        task: &TaskRow,
        op: &Operation,
        server: &ServerDetail,
        progress: &mut [StepInfo],
        step: usize,
        _memo: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let name = progress.get(step).map(|s| s.name.clone()).unwrap_or_default();
        for p in progress.iter_mut().skip(step) {
            p.status = "canceled".into();
        }
        if !self.still_mine(task).await? {
            return Ok(());
        }
        self.unwind(task, op).await;
        let mut fx = ServerEffects::default();
        match op {
            Operation::Suspend => {
                fx.state = Some(("suspend_error".into(), "aborted while suspending: some ports may be shut".into()))
            }
            Operation::Resume => {
                fx.state = Some(("resume_error".into(), "aborted while resuming: some ports may be shut".into()))
            }
            _ => {}
        }
        self.bmc_ip_back(task, Some(op), &mut fx).await;
        let _ = server;
        let info = json!({"step": name, "message": "aborted by request"});
        let written = self
            .store
            .finish_task(
                task.id,
                &self.owner,
                "canceled",
                &info.to_string(),
                percent(progress),
                &to_json(progress),
                &fx,
            )
            .await?;
        self.count_end(task, "canceled", written);
        Ok(())
    }

    /// Whether this worker still holds `task`'s lease, renewed for a whole lease period so
    /// that the undo about to run (the boot forgotten, the disk made the boot device
    /// again) and the fenced end run under it. A worker that lost the lease stops: the
    /// task and its hardware are its new owner's, who finishes it.
    async fn still_mine(&self, task: &TaskRow) -> Result<bool, StoreError> {
        let lease_ms = self.cfg.lease.as_millis() as i64;
        let mine = self.store.renew_lease(task.id, &self.owner, lease_ms).await?;
        if !mine {
            tracing::info!(task = task.id, "the task's lease was lost before its end; its new owner finishes it");
        }
        Ok(mine)
    }

    /// Counts a task's end in the metrics, once: only the worker whose fenced write
    /// landed counts it.
    fn count_end(&self, task: &TaskRow, outcome: &str, written: bool) {
        if written {
            let secs = (now_ms() as f64 / 1000.0 - task.created as f64).max(0.0);
            self.drivers.metrics().task_finished(&task.name, outcome, secs);
        }
    }

    /// Best-effort undo of a network-boot operation: forget the boot and make the
    /// disk the boot device again, so the server does not keep booting the agent.
    async fn unwind(&self, task: &TaskRow, op: &Operation) {
        if !op.uses_netboot() {
            return;
        }
        let Some(server_id) = task.server_id else { return };
        let Ok(server) = self.store.get_server(server_id, &[]).await else { return };
        if let (Ok(boot), Some(mac)) = (self.drivers.boot(self.bmc_kind(&server)), server.server.mac.as_deref()) {
            let _ = self.call(boot.cleanup(task.id, mac)).await;
        }
        if let Ok(power) = self.power(&server).await {
            let _ = self.call(power.set_boot_device(BootDevice::Disk, server.server.efi != 0, true)).await;
        }
    }
}

fn percent(progress: &[StepInfo]) -> i64 {
    if progress.is_empty() {
        return 100;
    }
    let done = progress.iter().filter(|p| p.status == "complete" || p.status == "skipped").count();
    (done * 100 / progress.len()) as i64
}

fn to_json(progress: &[StepInfo]) -> String {
    serde_json::to_string(progress).expect("serializable")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "dcim".into())
}

/// An image URL that a template gives as a path (`/images/NAME`: served by dcim
/// itself) is made absolute against the listener the agent reports to: its
/// provisioning segment's, or this server's own.
fn served_url(url: &str, callback: &str) -> String {
    if !url.starts_with('/') {
        return url.to_owned();
    }
    let base = callback.strip_suffix("/agent/v1/task").unwrap_or(callback).trim_end_matches('/');
    format!("{base}{url}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn images_dcim_serves_are_fetched_from_the_agents_listener() {
        let cb = "http://10.0.0.1:8080/agent/v1/task";
        assert_eq!(super::served_url("/images/a.img", cb), "http://10.0.0.1:8080/images/a.img");
        assert_eq!(super::served_url("https://m.example/a.img", cb), "https://m.example/a.img");
    }
}
