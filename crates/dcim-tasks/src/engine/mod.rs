//! The executor: claims tasks under leases, runs their operation's steps with timeouts,
//! retries and waits, records progress, recovers tasks whose worker died, and ends them
//! (with their effects on the server, and the undo of their steps when they fail or are
//! aborted) only while it still holds the lease. What the steps do is [`crate::ops`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dcim_core::{IpStatus, StepStatus, TaskStatus};
use dcim_drivers::Drivers;
use dcim_drivers::remote::in_scope;
use dcim_store::ids::{IpId, ServerId, TaskId};
use dcim_store::ipam::{NewIp, Take, Taken};
use dcim_store::tasks::{Checkpoint, NewTask, ServerEffects, TaskRow, now_ms};
use dcim_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::Instrument;

use crate::ops::{Ctx, Family, Memo, Operation, Outcome, Step, StepError, WaitFor};

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
    /// A remote site that has not polled for this long is not connected.
    pub site_stale: Duration,
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
            site_stale: Duration::from_secs(30),
        }
    }
}

/// One step's line in `progress_info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepInfo {
    pub name: String,
    pub status: StepStatus,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    #[serde(default)]
    pub message: String,
}

/// The task engine of one process.
pub struct Engine {
    pub store: Store,
    pub drivers: Drivers,
    /// The remote sites: the drivers route calls for their locations through them.
    pub sites: crate::sites::SiteHub,
    /// The process's background workers (pollers, purges, deliveries) and their rounds.
    pub workers: crate::workers::Workers,
    pub cfg: EngineConfig,
    /// This worker's name in the leases it holds.
    pub(crate) owner: String,
    wake: Notify,
    stopping: AtomicBool,
    /// True while [`Engine::run`] dispatches.
    dispatching: AtomicBool,
}

fn unix() -> i64 {
    now_ms() / 1000
}

impl Engine {
    pub fn new(store: Store, drivers: Drivers, cfg: EngineConfig) -> Arc<Engine> {
        let owner = format!("{}-{}-{:08x}", hostname(), std::process::id(), rand::random::<u32>());
        let sites = crate::sites::SiteHub::new(store.clone(), cfg.site_stale, cfg.call_timeout);
        let drivers = drivers.with_sites(Arc::new(sites.clone()));
        Arc::new(Engine {
            store,
            drivers,
            sites,
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
    pub async fn submit(&self, server_id: ServerId, op: &Operation) -> Result<TaskId, StoreError> {
        let id = self.store.create_task(&new_task(server_id, op)).await?;
        self.started(op);
        Ok(id)
    }

    /// Takes an address for the server and records the operation `op` makes of it, in
    /// one transaction: no address stays taken without its task, and no task starts
    /// without its address (`ip_assign`, and `diag` with `setup_ipmi` from `ipmi_pool`).
    pub async fn submit_taking_ip(
        &self,
        server_id: ServerId,
        ip: &NewIp,
        take: &Take<'_>,
        reserved: impl Fn(&str) -> bool,
        op: impl FnOnce(&Taken) -> Result<Operation, StoreError>,
    ) -> Result<(TaskId, Taken), StoreError> {
        let (taken, id, made) = self
            .store
            .take_ip_and_start(ip, take, reserved, |t| {
                let o = op(t)?;
                Ok((new_task(server_id, &o), o))
            })
            .await?;
        self.started(&made);
        Ok((id, taken))
    }

    /// Marks an address `status` and records the operation that carries it out
    /// (`ip_release`: `deleting`), in one transaction.
    pub async fn submit_marking_ip(
        &self,
        server_id: ServerId,
        ip_id: IpId,
        status: IpStatus,
        op: &Operation,
    ) -> Result<TaskId, StoreError> {
        let id = self.store.mark_ip_and_start(ip_id, status, &new_task(server_id, op)).await?;
        self.started(op);
        Ok(id)
    }

    fn started(&self, op: &Operation) {
        self.drivers.metrics().task_started(op.name());
        self.wake.notify_one();
    }

    /// Asks the server's running operation to stop; its worker unwinds it.
    pub async fn abort(&self, server_id: ServerId) -> Result<Option<TaskId>, StoreError> {
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
        tokio::spawn(self.sites.clone().keep_routes(stop.clone()));
        tokio::spawn(self.sites.clone().watch_answers(stop.clone()));
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
                            task_id = task.id.get(),
                            operation = %task.name,
                            server_id = task.server_id.map(ServerId::get),
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
                        Err(e) => tracing::warn!(task = %id, error = %e, "renewing a lease failed"),
                    }
                }
            })
        };
        let id = task.id;
        if let Err(e) = self.drive_steps(task, &lost).await {
            // Only storage errors get here; the lease runs out and the task resumes.
            tracing::warn!(task = %id, error = %e, "task interrupted; it resumes when its lease ends");
        }
        let _ = done_tx.send(true);
        let _ = heartbeat.await;
    }

    /// Runs the task's steps from where it stands until it ends, waits, or is lost.
    async fn drive_steps(&self, task: TaskRow, lost: &AtomicBool) -> Result<(), StoreError> {
        let mut progress: Vec<StepInfo> = serde_json::from_str(&task.progress_info).unwrap_or_default();
        let step = task.step.max(0) as usize;
        let op: Operation = match serde_json::from_str(&task.params) {
            Ok(op) => op,
            Err(e) => return self.end_early(&task, &mut progress, step, &format!("unreadable parameters: {e}")).await,
        };
        let Some(server_id) = task.server_id else {
            return self.end_early(&task, &mut progress, step, "the server was deleted").await;
        };
        let server = match self.store.get_server(server_id, &[]).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => {
                return self.end_early(&task, &mut progress, step, "the server was deleted").await;
            }
            Err(e) => return Err(e),
        };
        let family = op.family();
        let memo: Memo = serde_json::from_str(&task.memo).unwrap_or_default();
        let mut run = Run {
            cx: Ctx { engine: self, task: &task, server: &server, memo },
            family,
            steps: family.steps(),
            progress,
            reached: step,
        };
        self.run_steps(&mut run, step, lost).await
    }

    async fn run_steps(&self, run: &mut Run<'_>, mut step: usize, lost: &AtomicBool) -> Result<(), StoreError> {
        let task = run.cx.task;
        if task.recoveries > self.cfg.max_recoveries {
            let msg = format!(
                "the process running this task stopped {} times; giving up (the server may need a look)",
                task.recoveries
            );
            return self.fail(run, step, &msg, None).await;
        }
        let mut attempt = task.attempt;
        // What a step did in the process that ran it (the network boot it prepared) may
        // be gone with that process: a task resumed elsewhere runs that step again, and
        // the ones after it (they are idempotent).
        if let Some(first) = run.steps.iter().position(|s| s.per_process()) {
            // A boot a site prepared is the site's, whichever process asked for it: it
            // is gone only when the site's process is another now (it restarted).
            let again = match run.cx.memo.boot_owner.as_deref() {
                Some(o) if o.starts_with("site:") => self
                    .sites
                    .restarted_since(o)
                    .map(|site| format!("again: site {site} restarted after it prepared the network boot")),
                Some(o) if o != self.owner => Some("again: the process that prepared the network boot stopped".into()),
                _ => None,
            };
            if let Some(message) = again
                && step > first
                && step < run.steps.len()
            {
                tracing::info!(task = %task.id, why = %message, "preparing the network boot again");
                for p in run.progress.iter_mut().skip(first) {
                    *p = StepInfo {
                        name: p.name.clone(),
                        status: StepStatus::Pending,
                        started: None,
                        finished: None,
                        message: message.clone(),
                    };
                }
                step = first;
                attempt = 0;
                run.cx.memo.waits = 0;
                run.cx.memo.boots += 1;
            }
        }
        let mut cancel = task.cancel;
        let mut last_write = std::time::Instant::now();
        loop {
            if lost.load(Ordering::SeqCst) {
                return Ok(());
            }
            if cancel {
                return self.cancel(run, step).await;
            }
            if step >= run.steps.len() {
                return self.complete(run).await;
            }
            let current = &*run.steps[step];
            let started = *run.progress[step].started.get_or_insert_with(unix);
            run.progress[step].status = StepStatus::Running;
            // The scope of the step's device calls: a process resuming the task after
            // this one died, or an attempt after one that timed out, runs the step with
            // the same scope (`dcim_drivers::remote`).
            let mut scope = format!("t{}/s{step}/w{}", task.id.get(), run.cx.memo.waits);
            if run.cx.memo.boots > 0 {
                // The steps of a boot prepared again make new calls, not the first ones.
                scope.push_str(&format!("/b{}", run.cx.memo.boots));
            }
            let mut result = in_scope(scope.clone(), current.run(&mut run.cx)).await;
            if self.cfg.repeat_steps && matches!(result, Ok(Outcome::Done | Outcome::Skipped(_))) {
                result = in_scope(format!("{scope}/again"), current.run(&mut run.cx)).await;
            }
            let mut release_at = None;
            let progress = &mut run.progress;
            match result {
                Ok(Outcome::Done) => {
                    progress[step].status = StepStatus::Complete;
                    progress[step].finished = Some(unix());
                    progress[step].message.clear();
                    step += 1;
                    attempt = 0;
                    run.cx.memo.waits = 0;
                }
                Ok(Outcome::Skipped(why)) => {
                    progress[step].status = StepStatus::Skipped;
                    progress[step].finished = Some(unix());
                    progress[step].message = why;
                    step += 1;
                    attempt = 0;
                    run.cx.memo.waits = 0;
                }
                Ok(Outcome::Wait(after)) => {
                    let (limit, what) = match current.waits_for() {
                        WaitFor::Power => (self.cfg.power_timeout, "the power state did not follow the command"),
                        WaitFor::Agent => (self.cfg.agent_timeout, "no report from the in-band agent"),
                    };
                    if unix() - started > limit.as_secs() as i64 {
                        let msg = format!("{what} within {} s", limit.as_secs());
                        return self.fail(run, step, &msg, None).await;
                    }
                    release_at = Some(now_ms() + after.as_millis() as i64);
                    run.cx.memo.waits += 1;
                }
                Err(StepError { transient: true, msg, kind }) => {
                    attempt += 1;
                    if attempt >= self.cfg.max_attempts {
                        let msg = format!("{msg} (gave up after {attempt} attempts)");
                        return self.fail(run, step, &msg, kind).await;
                    }
                    progress[step].message = format!("attempt {attempt} failed: {msg}; retrying");
                    let backoff = self.cfg.backoff.saturating_mul(1 << (attempt - 1).min(10) as u32);
                    release_at = Some(now_ms() + backoff.as_millis() as i64);
                }
                Err(StepError { transient: false, msg, kind }) => {
                    return self.fail(run, step, &msg, kind).await;
                }
            }
            if step >= run.steps.len() && release_at.is_none() {
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
                progress: percent(&run.progress),
                progress_info: to_json(&run.progress),
                memo: serde_json::to_string(&run.cx.memo).expect("serializable"),
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

    /// Every step done: the operation's effects on the server, with the task's end.
    async fn complete(&self, run: &mut Run<'_>) -> Result<(), StoreError> {
        let cx = &run.cx;
        let mut fx = ServerEffects::default();
        let mut info = json!({"message": format!("{} complete", run.family.name())});
        if let Some(n) = &cx.memo.note {
            info["note"] = n.as_str().into();
        }
        run.family.completed(cx, &mut fx, &mut info).await;
        let written = self
            .store
            .finish_task(
                cx.task.id,
                &self.owner,
                TaskStatus::Complete,
                &info.to_string(),
                100,
                &to_json(&run.progress),
                &fx,
            )
            .await?;
        self.count_end(cx.task, TaskStatus::Complete, written);
        tracing::info!(task = %cx.task.id, op = run.family.name(), "task complete");
        Ok(())
    }

    /// Fails the task at `step` with `msg` (and the kind of the device's failure:
    /// `timeout`, `refused`, `auth`, `unreachable`, `protocol`, `unsupported`, kept in
    /// `status_info.kind`): the steps that started are undone and the server is left in
    /// a clear state, while this worker still holds the lease.
    async fn fail(
        &self,
        run: &mut Run<'_>,
        step: usize,
        msg: &str,
        kind: Option<&'static str>,
    ) -> Result<(), StoreError> {
        let name = mark_failed(&mut run.progress, step, msg);
        if !self.still_mine(run.cx.task).await? {
            return Ok(());
        }
        let mut fx = ServerEffects::default();
        run.family.failed(&run.cx, &name, msg, &mut fx).await;
        self.undo(run).await;
        let mut info = json!({"step": name, "message": msg});
        if let Some(k) = kind {
            info["kind"] = k.into();
        }
        self.finish(run.cx.task, TaskStatus::Fail, &info, &run.progress, &fx).await?;
        tracing::warn!(task = %run.cx.task.id, step = %name, error = %msg, "task failed");
        Ok(())
    }

    /// Fails a task that cannot run at all (its parameters unreadable, its server gone).
    async fn end_early(
        &self,
        task: &TaskRow,
        progress: &mut [StepInfo],
        step: usize,
        msg: &str,
    ) -> Result<(), StoreError> {
        let name = mark_failed(progress, step, msg);
        if !self.still_mine(task).await? {
            return Ok(());
        }
        let info = json!({"step": name, "message": msg});
        self.finish(task, TaskStatus::Fail, &info, progress, &ServerEffects::default()).await?;
        tracing::warn!(task = %task.id, error = %msg, "task failed");
        Ok(())
    }

    /// Aborted by request: the steps that started are undone.
    async fn cancel(&self, run: &mut Run<'_>, step: usize) -> Result<(), StoreError> {
        let name = run.progress.get(step).map(|s| s.name.clone()).unwrap_or_default();
        for p in run.progress.iter_mut().skip(step) {
            p.status = StepStatus::Canceled;
        }
        if !self.still_mine(run.cx.task).await? {
            return Ok(());
        }
        self.undo(run).await;
        let mut fx = ServerEffects::default();
        run.family.canceled(&run.cx, &mut fx).await;
        let info = json!({"step": name, "message": "aborted by request"});
        self.finish(run.cx.task, TaskStatus::Canceled, &info, &run.progress, &fx).await
    }

    /// The undo of every step that started, in this run or an earlier one, the last first.
    async fn undo(&self, run: &mut Run<'_>) {
        for (i, (s, p)) in run.steps.iter().zip(&run.progress).enumerate().rev() {
            if p.started.is_some() || i < run.reached {
                s.undo(&mut run.cx).await;
            }
        }
    }

    /// The fenced end of a task that did not complete.
    async fn finish(
        &self,
        task: &TaskRow,
        status: TaskStatus,
        info: &Value,
        progress: &[StepInfo],
        fx: &ServerEffects,
    ) -> Result<(), StoreError> {
        let written = self
            .store
            .finish_task(task.id, &self.owner, status, &info.to_string(), percent(progress), &to_json(progress), fx)
            .await?;
        self.count_end(task, status, written);
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
            tracing::info!(task = %task.id, "the task's lease was lost before its end; its new owner finishes it");
        }
        Ok(mine)
    }

    /// Counts a task's end in the metrics, once: only the worker whose fenced write
    /// landed counts it.
    fn count_end(&self, task: &TaskRow, outcome: TaskStatus, written: bool) {
        if written {
            let secs = (now_ms() as f64 / 1000.0 - task.created as f64).max(0.0);
            self.drivers.metrics().task_finished(&task.name, outcome.as_str(), secs);
        }
    }
}

/// A task being run: its steps' context, its operation, its steps and their progress.
struct Run<'a> {
    cx: Ctx<'a>,
    family: &'a dyn Family,
    steps: Vec<Box<dyn Step + 'a>>,
    progress: Vec<StepInfo>,
    /// The step the task had reached when this worker took it: the ones before it ran
    /// in an earlier run, even when a resumed task runs them again from the start.
    reached: usize,
}

/// Marks `step` failed with `msg`; its name.
fn mark_failed(progress: &mut [StepInfo], step: usize, msg: &str) -> String {
    let Some(p) = progress.get_mut(step) else { return String::new() };
    p.status = StepStatus::Fail;
    p.finished = Some(unix());
    p.message = msg.to_owned();
    p.name.clone()
}

/// The task row of `op` on a server: its parameters and its steps, all pending.
fn new_task(server_id: ServerId, op: &Operation) -> NewTask {
    let names = op.step_names();
    let steps: Vec<StepInfo> = names
        .iter()
        .map(|name| StepInfo {
            name: (*name).into(),
            status: StepStatus::Pending,
            started: None,
            finished: None,
            message: String::new(),
        })
        .collect();
    NewTask {
        server_id,
        name: op.name().into(),
        params: serde_json::to_string(op).expect("serializable"),
        steps: serde_json::to_string(&names).expect("serializable"),
        progress_info: serde_json::to_string(&steps).expect("serializable"),
        secret_hash: None,
        server_state: op.starting_state().map(|(s, i)| (s, i.to_owned())),
        exclusive: op.exclusive(),
        request_id: crate::REQUEST_ID.try_with(Clone::clone).ok(),
    }
}

fn percent(progress: &[StepInfo]) -> i64 {
    if progress.is_empty() {
        return 100;
    }
    let done = progress.iter().filter(|p| matches!(p.status, StepStatus::Complete | StepStatus::Skipped)).count();
    (done * 100 / progress.len()) as i64
}

fn to_json(progress: &[StepInfo]) -> String {
    serde_json::to_string(progress).expect("serializable")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "dcim".into())
}
