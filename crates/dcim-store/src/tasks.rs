//! Tasks: durable operations with steps, claimed by workers under a lease.
//!
//! The rules the database itself holds: at most one pending or running task per
//! server (a partial unique index), a claim succeeds for one worker only (the lease
//! is re-checked in the claiming `UPDATE`), and a worker that lost its lease can no
//! longer write (every update is fenced by `lease_owner`).

use dcim_core::query::ListQuery;
use dcim_core::{BmcType, IpStatus, OutletStatus, PortStatus, PowerStatus, ReportKind, ServerState, TaskStatus};
use sqlx::{AssertSqlSafe, FromRow};

use crate::ids::{Flag, IpId, ServerId, TaskId};
use crate::ipam::{NewIp, Take, Taken};
use crate::list::{Bind, Field, FieldType, ListSpec, Page, Scope, bind_query_as};
use crate::{Result, Store, StoreError, now};

/// Unix milliseconds, the clock of leases and schedules.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[derive(Debug, Clone, FromRow)]
pub struct TaskRow {
    pub id: TaskId,
    pub server_id: Option<ServerId>,
    pub name: String,
    pub status: TaskStatus,
    pub params: String,
    pub steps: String,
    pub step: i64,
    pub attempt: i64,
    pub recoveries: i64,
    pub progress: i64,
    pub progress_info: String,
    pub status_info: String,
    pub memo: String,
    #[sqlx(try_from = "Flag")]
    pub cancel: bool,
    pub lease_owner: Option<String>,
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    /// The HTTP request that started it.
    pub request_id: Option<String>,
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub server_id: ServerId,
    pub name: String,
    pub params: String,
    /// The step names, as JSON array.
    pub steps: String,
    pub progress_info: String,
    pub secret_hash: Option<String>,
    /// The server's `state` and `state_info` to set with the task, atomically.
    pub server_state: Option<(ServerState, String)>,
    /// Holds the server (one at a time); IP changes run beside other operations.
    pub exclusive: bool,
    /// The HTTP request that starts it, for the logs.
    pub request_id: Option<String>,
}

/// What a finished task changes on its server, in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct ServerEffects {
    pub state: Option<(ServerState, String)>,
    pub power_status: Option<PowerStatus>,
    /// hardware_info JSON and the configuration generated from it.
    pub hardware: Option<(String, Option<String>)>,
    pub is_new: Option<bool>,
    /// `Some(None)` clears the diagnostics error.
    pub diag_error: Option<Option<String>>,
    pub os_template_id: Option<i64>,
    pub ip: Option<IpEffect>,
}

/// What an IP task's end does to its address.
#[derive(Debug, Clone)]
pub enum IpEffect {
    /// The address is the server's now (`ok`), and its main one of its family if asked.
    Assigned { ip_id: IpId, family: i64, main: bool },
    /// The address is given back.
    Released { ip_id: IpId },
    /// The change failed: the address gets `status` with the reason.
    Failed { ip_id: IpId, status: IpStatus, info: String },
}

/// Where a worker's step leaves the task.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub step: i64,
    pub attempt: i64,
    pub progress: i64,
    pub progress_info: String,
    pub memo: String,
    /// Unix ms before which no worker picks the task up again; set with `release`.
    pub not_before: i64,
    /// Give the lease back (the task waits for something and frees its worker).
    pub release: bool,
}

const TASK_COLUMNS: &str = "t.id, t.server_id, t.name, t.status, t.params, t.steps, t.step, t.attempt, \
     t.recoveries, t.progress, t.progress_info, t.status_info, t.memo, t.cancel, t.lease_owner, t.created, \
     t.started, t.finished, t.request_id";

pub const TASK_LIST: ListSpec = ListSpec {
    select: "SELECT t.id, t.server_id, t.name, t.status, t.params, t.steps, t.step, t.attempt, t.recoveries, \
             t.progress, t.progress_info, t.status_info, t.memo, t.cancel, t.lease_owner, t.created, t.started, \
             t.finished, t.request_id FROM tasks t LEFT JOIN servers s ON s.id = t.server_id",
    from: "tasks t LEFT JOIN servers s ON s.id = t.server_id",
    count_all_from: None,
    facets: None,
    fields: &[
        Field::new("id", "t.id", FieldType::Int),
        Field::new("server", "t.server_id", FieldType::Int),
        Field::new("name", "t.name", FieldType::Text),
        Field::new("status", "t.status", FieldType::Text),
        Field::new("progress", "t.progress", FieldType::Int),
        Field::new("created", "t.created", FieldType::Int),
        Field::new("started", "t.started", FieldType::Int),
        Field::new("finished", "t.finished", FieldType::Int),
    ],
    tiebreak: "t.id ASC",
};

impl Store {
    /// Creates a task unless the server already runs one: then a conflict naming it.
    pub async fn create_task(&self, t: &NewTask) -> Result<TaskId> {
        let mut tx = self.write().await?;
        let Some(id) = insert_task(&mut tx, t).await? else {
            drop(tx);
            return Err(self.busy(t.server_id).await);
        };
        tx.commit().await?;
        Ok(id)
    }

    /// Takes an address for a server and starts the task that gives it, in one
    /// transaction: a task that cannot start (its server busy with another, or gone)
    /// leaves no address taken, and an address that cannot be had starts no task.
    /// `task` makes the task from the address taken (or refuses it: then nothing is
    /// written), with anything else the caller wants back once it has committed (the
    /// engine: the operation, to count it).
    pub async fn take_ip_and_start<T>(
        &self,
        ip: &NewIp,
        take: &Take<'_>,
        reserved: impl Fn(&str) -> bool,
        task: impl FnOnce(&Taken) -> Result<(NewTask, T)>,
    ) -> Result<(Taken, TaskId, T)> {
        let mut tx = self.write().await?;
        let taken = Self::take_ip(&mut tx, ip, take, reserved).await?;
        let (new, made) = task(&taken)?;
        let Some(task_id) = insert_task(&mut tx, &new).await? else {
            drop(tx);
            return Err(self.busy(new.server_id).await);
        };
        tx.commit().await?;
        Ok((taken, task_id, made))
    }

    /// Marks an address `status` (`deleting`) and starts the task that carries it out,
    /// in one transaction. An address already waiting for a task (`allocating`,
    /// `deleting`, `in_progress`) is a conflict naming it, and nothing is written.
    pub async fn mark_ip_and_start(&self, ip_id: IpId, status: IpStatus, task: &NewTask) -> Result<TaskId> {
        let mut tx = self.write().await?;
        let marked = sqlx::query(
            "UPDATE ips SET status = $1, status_info = '{}' WHERE id = $2 \
             AND status NOT IN ('allocating', 'deleting', 'in_progress')",
        )
        .bind(status.as_str().to_owned())
        .bind(ip_id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            drop(tx);
            let row: Option<(String, String)> = sqlx::query_as("SELECT name, status FROM ips WHERE id = $1")
                .bind(ip_id)
                .fetch_optional(self.pool())
                .await?;
            let (name, now) = row.ok_or_else(|| StoreError::not_found("ip", ip_id.get()))?;
            return Err(StoreError::Conflict(format!("address {name} is {now}; wait for its task")));
        }
        let Some(id) = insert_task(&mut tx, task).await? else {
            drop(tx);
            return Err(self.busy(task.server_id).await);
        };
        tx.commit().await?;
        Ok(id)
    }

    /// Why a task could not start on a busy server: a conflict naming its task.
    pub(crate) async fn busy(&self, server_id: ServerId) -> StoreError {
        match self.active_task(server_id).await {
            Ok(Some((tid, name))) => StoreError::Conflict(format!(
                "server {server_id} is busy with task {tid} ({name}); wait for it or abort it"
            )),
            Ok(None) => StoreError::Conflict(format!("server {server_id} is busy; retry")),
            Err(e) => e,
        }
    }

    /// The pending or running task of a server, if any: (id, name).
    pub async fn active_task(&self, server_id: ServerId) -> Result<Option<(TaskId, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, name FROM tasks WHERE server_id = $1 AND exclusive = 1 AND status IN ('pending', 'running')",
        )
        .bind(server_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Claims up to `limit` of the oldest runnable tasks whose lease is free or
    /// expired. A task found with an expired lease was running under a worker that
    /// died: `recoveries` counts it. Under concurrency a claim may return fewer.
    pub async fn claim_tasks(&self, owner: &str, lease_ms: i64, limit: i64) -> Result<Vec<TaskRow>> {
        let t = now_ms();
        let sql = format!(
            "UPDATE tasks SET lease_owner = $1, lease_until = $2, status = 'running', \
             started = COALESCE(started, $3), \
             recoveries = recoveries + CASE WHEN lease_owner IS NOT NULL THEN 1 ELSE 0 END \
             WHERE id IN (SELECT id FROM tasks WHERE status IN ('pending', 'running') AND not_before <= $4 \
                         AND (lease_until IS NULL OR lease_until < $4) ORDER BY not_before, id LIMIT $5) \
               AND status IN ('pending', 'running') AND (lease_until IS NULL OR lease_until < $4) \
             RETURNING {}",
            TASK_COLUMNS.replace("t.", "")
        );
        let rows: Vec<TaskRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner.to_owned())
            .bind(t + lease_ms)
            .bind(t / 1000)
            .bind(t)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows)
    }

    /// Extends a lease; false when the worker lost it.
    pub async fn renew_lease(&self, id: TaskId, owner: &str, lease_ms: i64) -> Result<bool> {
        let r =
            sqlx::query("UPDATE tasks SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'")
                .bind(now_ms() + lease_ms)
                .bind(id)
                .bind(owner.to_owned())
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records progress. `None` when the worker lost its lease; otherwise whether an
    /// abort was requested meanwhile.
    pub async fn checkpoint(&self, id: TaskId, owner: &str, c: &Checkpoint) -> Result<Option<bool>> {
        let sql = if c.release {
            "UPDATE tasks SET step = $1, attempt = $2, progress = $3, progress_info = $4, memo = $5, \
             not_before = CASE WHEN cancel = 1 THEN 0 ELSE $6 END, lease_owner = NULL, lease_until = NULL \
             WHERE id = $7 AND lease_owner = $8 RETURNING cancel"
        } else {
            "UPDATE tasks SET step = $1, attempt = $2, progress = $3, progress_info = $4, memo = $5, \
             not_before = $6 WHERE id = $7 AND lease_owner = $8 RETURNING cancel"
        };
        let row: Option<(i64,)> = sqlx::query_as(sql)
            .bind(c.step)
            .bind(c.attempt)
            .bind(c.progress)
            .bind(c.progress_info.clone())
            .bind(c.memo.clone())
            .bind(c.not_before)
            .bind(id)
            .bind(owner.to_owned())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(c,)| c != 0))
    }

    /// Sets the hash of the secret the task's agent reports with.
    pub async fn set_task_secret(&self, id: TaskId, owner: &str, secret_hash: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE tasks SET secret_hash = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(secret_hash.to_owned())
            .bind(id)
            .bind(owner.to_owned())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a task (`complete`, `fail` or `canceled`) and applies its effects on the
    /// server in one transaction; false (and nothing written) if `owner` lost the lease.
    #[expect(clippy::too_many_arguments, reason = "one row's worth of columns, written together")]
    pub async fn finish_task(
        &self,
        id: TaskId,
        owner: &str,
        status: TaskStatus,
        status_info: &str,
        progress: i64,
        progress_info: &str,
        effects: &ServerEffects,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let row: Option<(Option<ServerId>, String, Option<String>)> = sqlx::query_as(
            "UPDATE tasks SET status = $1, status_info = $2, progress = $3, progress_info = $4, finished = $5, \
             lease_owner = NULL, lease_until = NULL WHERE id = $7 AND status IN ('pending', 'running') \
             AND lease_owner = $6 RETURNING server_id, name, request_id",
        )
        .bind(status.as_str().to_owned())
        .bind(status_info.to_owned())
        .bind(progress)
        .bind(progress_info.to_owned())
        .bind(now())
        .bind(owner.to_owned())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((server_id, name, request_id)) = row else { return Ok(false) };
        if let Some(server_id) = server_id {
            apply_effects(&mut tx, server_id, effects).await?;
        }
        let error = if status == TaskStatus::Complete { "" } else { status_info };
        crate::audit::record_task(&mut tx, id, server_id, &name, status, request_id.as_deref(), error).await?;
        let status = status.as_str();
        let e = serde_json::json!({"task": id, "operation": name, "outcome": status, "server": server_id});
        crate::webhooks::emit(&mut tx, "task.finished", server_id, e).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Asks the server's active task to stop; returns its id.
    pub async fn request_cancel(&self, server_id: ServerId) -> Result<Option<TaskId>> {
        let mut tx = self.write().await?;
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE tasks SET cancel = 1, not_before = 0 WHERE server_id = $1 AND exclusive = 1 \
             AND status IN ('pending', 'running') RETURNING id",
        )
        .bind(server_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.map(|r| TaskId(r.0)))
    }

    /// Stores an agent's report if `secret_hash` is the task's and the task is live.
    pub async fn add_task_report(
        &self,
        task_id: TaskId,
        secret_hash: &str,
        kind: ReportKind,
        data: &str,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "INSERT INTO task_reports (task_id, kind, data, created) SELECT id, $1, $2, $3 FROM tasks \
             WHERE id = $4 AND secret_hash = $5 AND status IN ('pending', 'running')",
        )
        .bind(kind.as_str())
        .bind(data.to_owned())
        .bind(now())
        .bind(task_id)
        .bind(secret_hash.to_owned())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            // Wake the task at once rather than at its next poll.
            sqlx::query("UPDATE tasks SET not_before = 0 WHERE id = $1").bind(task_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// The reports received for a task, oldest first: (kind, data).
    pub async fn task_reports(&self, task_id: TaskId) -> Result<Vec<(ReportKind, String)>> {
        Ok(sqlx::query_as("SELECT kind, data FROM task_reports WHERE task_id = $1 ORDER BY id")
            .bind(task_id)
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn get_task(&self, id: TaskId, scopes: &[Scope]) -> Result<TaskRow> {
        let mut sql = crate::list::SqlBuf { text: TASK_LIST.select.to_owned(), binds: vec![] };
        sql.push(" WHERE t.id = ");
        sql.bind(Bind::Int(id.get()));
        sql.and_scopes(scopes);
        bind_query_as(&sql.text, &sql.binds)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("task", id))
    }

    pub async fn list_tasks(&self, q: &ListQuery, scopes: &[Scope]) -> Result<Page<TaskRow>> {
        self.fetch_page(&TASK_LIST, q, scopes).await
    }

    /// Records what the power driver reported.
    pub async fn set_power_status(&self, server_id: ServerId, status: PowerStatus) -> Result<()> {
        let mut tx = self.write().await?;
        let before = if tx.wants("server.power").await? { power_of(&mut tx, server_id).await? } else { None };
        sqlx::query("UPDATE servers SET power_status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        power_event(&mut tx, server_id, before, status).await?;
        tx.commit().await
    }

    /// Sets a switch port's admin status as the device now has it.
    pub async fn set_port_admin_status(&self, port_id: i64, status: PortStatus) -> Result<()> {
        sqlx::query("UPDATE switch_ports SET admin_status = $1 WHERE id = $2")
            .bind(status.as_str().to_owned())
            .bind(port_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Sets a PDU outlet's power status as the device now has it.
    pub async fn set_outlet_status(&self, port_id: i64, status: OutletStatus) -> Result<()> {
        sqlx::query("UPDATE pdu_ports SET power_status = $1 WHERE id = $2")
            .bind(status.as_str().to_owned())
            .bind(port_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// Inserts a task, and sets its server's starting state, in `tx`; `None` when the server
/// already runs an exclusive one (nothing is written then, and `tx` stays usable).
pub(crate) async fn insert_task(tx: &mut crate::audit::Tx<'_>, t: &NewTask) -> Result<Option<TaskId>> {
    // The partial unique index allows one pending or running exclusive task per server.
    let inserted: Option<(TaskId,)> = sqlx::query_as(
        "INSERT INTO tasks (server_id, name, params, steps, progress_info, secret_hash, created, exclusive, \
         request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(t.server_id)
    .bind(t.name.clone())
    .bind(t.params.clone())
    .bind(t.steps.clone())
    .bind(t.progress_info.clone())
    .bind(t.secret_hash.clone())
    .bind(now())
    .bind(i64::from(t.exclusive))
    .bind(t.request_id.clone())
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| StoreError::conflict_on_constraint(e, || format!("server {} not found", t.server_id)))?;
    let Some((id,)) = inserted else { return Ok(None) };
    crate::audit::set_task(id);
    crate::audit::set_server(t.server_id);
    if !t.exclusive {
        return Ok(Some(id));
    }
    let r = match &t.server_state {
        Some((state, info)) => {
            let before: Option<(ServerState,)> = if tx.wants("server.state").await? {
                sqlx::query_as("SELECT state FROM servers WHERE id = $1")
                    .bind(t.server_id)
                    .fetch_optional(&mut **tx)
                    .await?
            } else {
                None
            };
            if let Some((before,)) = before.filter(|b| b.0 != *state) {
                let ev = serde_json::json!({"server": t.server_id, "state": state, "previous": before, "info": info});
                crate::webhooks::emit(tx, "server.state", Some(t.server_id), ev).await?;
            }
            sqlx::query("UPDATE servers SET last_task_id = $1, state = $2, state_info = $3 WHERE id = $4")
                .bind(id)
                .bind(state.as_str().to_owned())
                .bind(info.clone())
                .bind(t.server_id)
                .execute(&mut **tx)
                .await?
        }
        None => {
            sqlx::query("UPDATE servers SET last_task_id = $1 WHERE id = $2")
                .bind(id)
                .bind(t.server_id)
                .execute(&mut **tx)
                .await?
        }
    };
    if r.rows_affected() == 0 {
        return Err(StoreError::not_found("server", t.server_id));
    }
    Ok(Some(id))
}

async fn apply_effects(tx: &mut crate::audit::Tx<'_>, server_id: ServerId, e: &ServerEffects) -> Result<()> {
    let before = if (e.state.is_some() && tx.wants("server.state").await?)
        || (e.power_status.is_some() && tx.wants("server.power").await?)
    {
        sqlx::query_as::<_, (ServerState, PowerStatus)>("SELECT state, power_status FROM servers WHERE id = $1")
            .bind(server_id)
            .fetch_optional(&mut **tx)
            .await?
    } else {
        None
    };
    let mut p = crate::list::SqlBuf { text: "UPDATE servers SET id = id".into(), binds: vec![] };
    let mut set = |col: &str, b: Bind| {
        p.push(", ");
        p.push(col);
        p.push(" = ");
        p.bind(b);
    };
    if let Some((state, info)) = &e.state {
        set("state", state.as_str().into());
        set("state_info", info.as_str().into());
    }
    if let Some(ps) = &e.power_status {
        set("power_status", ps.as_str().into());
        // The BMC's state is the power it reports.
        set("ipmi_status", ps.as_str().into());
    }
    if let Some((hw, conf)) = &e.hardware {
        set("hardware_info", hw.as_str().into());
        set("generated_configuration", conf.clone().into());
    }
    if let Some(n) = e.is_new {
        set("is_new", n.into());
    }
    if let Some(d) = &e.diag_error {
        set("diag_error", d.clone().into());
    }
    if let Some(t) = e.os_template_id {
        set("os_template_id", t.into());
    }
    if let Some((_, conf)) = &e.hardware {
        // The new generated value, not the column's old one: SET sees old values.
        p.push(", configuration = COALESCE(custom_configuration, ");
        p.bind(conf.clone().into());
        p.push(")");
    }
    p.push(" WHERE id = ");
    p.bind(Bind::Int(server_id.get()));
    crate::list::bind_query(&p.text, &p.binds).execute(&mut **tx).await?;
    if let Some((state, power)) = before {
        if let Some((new, info)) = e.state.as_ref().filter(|(s, _)| *s != state) {
            let ev = serde_json::json!({"server": server_id, "state": new, "previous": state, "info": info});
            crate::webhooks::emit(tx, "server.state", Some(server_id), ev).await?;
        }
        if let Some(new) = e.power_status.filter(|p| *p != power) {
            let ev = serde_json::json!({"server": server_id, "power_status": new, "previous": power});
            crate::webhooks::emit(tx, "server.power", Some(server_id), ev).await?;
        }
    }
    match &e.ip {
        None => {}
        Some(IpEffect::Assigned { ip_id, family, main }) => {
            sqlx::query("UPDATE ips SET status = 'ok', status_info = '{}' WHERE id = $1")
                .bind(*ip_id)
                .execute(&mut **tx)
                .await?;
            if *main {
                let col = if *family == 2 { "main_ipv4" } else { "main_ipv6" };
                let sql = format!("UPDATE servers SET {col} = $1 WHERE id = $2");
                sqlx::query(AssertSqlSafe(sql)).bind(*ip_id).bind(server_id).execute(&mut **tx).await?;
            }
            ip_event(tx, "ip.assigned", server_id, ip_id.get()).await?;
        }
        Some(IpEffect::Released { ip_id }) => {
            ip_event(tx, "ip.released", server_id, ip_id.get()).await?;
            crate::ipam::release_ip(tx, ip_id.get()).await?
        }
        Some(IpEffect::Failed { ip_id, status, info }) => {
            sqlx::query("UPDATE ips SET status = $1, status_info = $2 WHERE id = $3")
                .bind(status.as_str().to_owned())
                .bind(info.clone())
                .bind(*ip_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// A server's power status (`None`: no such server).
async fn power_of(tx: &mut crate::audit::Tx<'_>, server_id: ServerId) -> Result<Option<PowerStatus>> {
    let row: Option<(PowerStatus,)> = sqlx::query_as("SELECT power_status FROM servers WHERE id = $1")
        .bind(server_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Tells the webhooks of a server's new power status, if it is new.
async fn power_event(
    tx: &mut crate::audit::Tx<'_>,
    server_id: ServerId,
    before: Option<PowerStatus>,
    now: PowerStatus,
) -> Result<()> {
    match before {
        Some(b) if b != now => {
            let ev = serde_json::json!({"server": server_id, "power_status": now, "previous": b});
            crate::webhooks::emit(tx, "server.power", Some(server_id), ev).await
        }
        _ => Ok(()),
    }
}

/// Tells the webhooks that a server's address was given or taken back.
async fn ip_event(tx: &mut crate::audit::Tx<'_>, kind: &str, server_id: ServerId, ip_id: i64) -> Result<()> {
    if !tx.wants(kind).await? {
        return Ok(());
    }
    let name: Option<(String,)> =
        sqlx::query_as("SELECT name FROM ips WHERE id = $1").bind(ip_id).fetch_optional(&mut **tx).await?;
    let ev = serde_json::json!({"server": server_id, "ip": ip_id, "address": name.map(|n| n.0)});
    crate::webhooks::emit(tx, kind, Some(server_id), ev).await
}

/// A server's BMC as the power poller needs it.
#[derive(Debug, Clone, FromRow)]
pub struct PollTarget {
    pub server_id: ServerId,
    pub mac: Option<String>,
    pub ipmi_address: String,
    pub ipmi_type: BmcType,
    pub ipmi_user: String,
    pub ipmi_password: String,
    pub ipmi_tls_fingerprint: Option<String>,
    pub power_status: PowerStatus,
    pub ipmi_status_info: String,
    pub location_id: i64,
}

impl Store {
    /// Servers with a BMC and no operation running (the operation owns the power).
    pub async fn poll_targets(&self) -> Result<Vec<PollTarget>> {
        let rows: Vec<PollTarget> = sqlx::query_as(
            "SELECT s.id AS server_id, s.mac, s.ipmi_address, s.ipmi_type, COALESCE(s.ipmi_user, '') AS ipmi_user, \
             COALESCE(s.ipmi_password, '') AS ipmi_password, s.ipmi_tls_fingerprint, s.power_status, \
             s.ipmi_status_info, s.location_id FROM servers s \
             WHERE s.ipmi_address IS NOT NULL AND s.ipmi_type IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM tasks t WHERE t.server_id = s.id AND t.exclusive = 1 AND t.status IN ('pending', 'running')) \
             ORDER BY s.id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|mut t| {
                t.ipmi_password = self.open(crate::seal::BMC_PASSWORD, &t.ipmi_password)?;
                Ok(t)
            })
            .collect()
    }

    /// Records what a BMC said: `on`/`off`, or `unknown` with the reason.
    pub async fn set_bmc_state(&self, server_id: ServerId, power: PowerStatus, info: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let before = if tx.wants("server.power").await? { power_of(&mut tx, server_id).await? } else { None };
        sqlx::query("UPDATE servers SET power_status = $1, ipmi_status = $1, ipmi_status_info = $2 WHERE id = $3")
            .bind(power.as_str())
            .bind(info.to_owned())
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        power_event(&mut tx, server_id, before, power).await?;
        tx.commit().await
    }
}
