//! The audit trail: who changed what, when, from where, and how it ended.
//!
//! The API opens an [`AuditScope`] for every state-changing request and runs the
//! handler inside it ([`in_scope`]). Every write of the store goes through a [`Tx`]
//! ([`Store::write`]); committing one inside a scope first writes the request's record,
//! or brings it up to date when the request commits twice, in that same transaction:
//! a change and its record land together or not at all. A request that committed
//! nothing (it failed, or there was nothing to change) gets its record when it is
//! answered ([`AuditScope::finish`]), as does an answer other than 200 after a commit.
//!
//! Outside a scope (the task engine, the pollers) a [`Tx`] is a plain transaction; a
//! finished task writes its own record ([`record_task`]).
//!
//! Edits record each field before and after ([`change`]); fields that hold secrets
//! keep only the fact that they changed ([`is_secret`]). Reading the trail is
//! [`crate::trail`]'s.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use sqlx::{Any, AnyConnection, AssertSqlSafe};

use crate::ids::UserId;
use crate::{Backend, Result, Store, now};

tokio::task_local! {
    static SCOPE: Arc<AuditScope>;
}

/// Who made a request: nobody yet for a login, an agent's report or the fake lab's
/// public routes.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub email: String,
    pub role: String,
    /// The session or long-lived token the request came with.
    pub token_id: Option<i64>,
}

/// The request a record is for, known before its handler runs.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The operation id (`power_on`), `ui.ACTION` for the web UI, or `METHOD route`.
    pub action: String,
    pub method: String,
    /// The route template, never the raw path.
    pub route: String,
    pub address: String,
    pub request_id: String,
    pub target_kind: String,
    pub target_id: String,
    pub server_id: Option<i64>,
}

/// How a request was answered.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: u16,
    pub error_code: Option<i64>,
    pub error_msg: String,
}

/// The audit state of one request.
pub struct AuditScope {
    state: Mutex<State>,
}

#[derive(Default, Clone)]
struct State {
    req: RequestInfo,
    actor: Actor,
    changes: Map<String, Value>,
    task_id: Option<i64>,
    /// The record written by a commit of this request.
    record: Option<i64>,
}

/// The status a record written inside the change's transaction is given; the answer
/// corrects it when it differs.
const ASSUMED_STATUS: u16 = 200;

impl AuditScope {
    pub fn new(req: RequestInfo) -> Arc<AuditScope> {
        Arc::new(AuditScope { state: Mutex::new(State { req, ..State::default() }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes or updates the record in `conn` as it stands; its id.
    async fn write(&self, conn: &mut AnyConnection, outcome: Option<&Outcome>) -> Result<i64> {
        let s = self.lock().clone();
        let o = outcome.cloned().unwrap_or(Outcome { status: ASSUMED_STATUS, ..Outcome::default() });
        let result = if o.status < 400 { "ok" } else { "error" };
        let changes = Value::Object(s.changes).to_string();
        if let Some(id) = s.record {
            sqlx::query(
                "UPDATE audit SET user_id = $1, email = $2, role = $3, token_id = $4, target_kind = $5, \
                 target_id = $6, server_id = $7, task_id = $8, result = $9, status = $10, error_code = $11, \
                 error_msg = $12, changes = $13 WHERE id = $14",
            )
            .bind(s.actor.user_id)
            .bind(s.actor.email)
            .bind(s.actor.role)
            .bind(s.actor.token_id)
            .bind(s.req.target_kind)
            .bind(s.req.target_id)
            .bind(s.req.server_id)
            .bind(s.task_id)
            .bind(result)
            .bind(i64::from(o.status))
            .bind(o.error_code)
            .bind(o.error_msg)
            .bind(changes)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            return Ok(id);
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO audit (at, user_id, email, role, address, token_id, request_id, action, method, route, \
             target_kind, target_id, server_id, task_id, result, status, error_code, error_msg, changes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING id",
        )
        .bind(now())
        .bind(s.actor.user_id)
        .bind(s.actor.email)
        .bind(s.actor.role)
        .bind(s.req.address)
        .bind(s.actor.token_id)
        .bind(s.req.request_id)
        .bind(s.req.action)
        .bind(s.req.method)
        .bind(s.req.route)
        .bind(s.req.target_kind)
        .bind(s.req.target_id)
        .bind(s.req.server_id)
        .bind(s.task_id)
        .bind(result)
        .bind(i64::from(o.status))
        .bind(o.error_code)
        .bind(o.error_msg)
        .bind(changes)
        .fetch_one(&mut *conn)
        .await?;
        Ok(id)
    }

    /// Records how the request was answered: the whole record when no commit wrote it,
    /// else only a status other than the one assumed.
    pub async fn finish(&self, store: &Store, outcome: &Outcome) -> Result<()> {
        let written = self.lock().record.is_some();
        if written && outcome.status == ASSUMED_STATUS {
            return Ok(());
        }
        let mut conn = store.pool().acquire().await?;
        let id = self.write(&mut conn, Some(outcome)).await?;
        self.lock().record = Some(id);
        Ok(())
    }
}

/// Runs `f` (a request's handler) with `scope` as its audit scope.
pub async fn in_scope<F: Future>(scope: Arc<AuditScope>, f: F) -> F::Output {
    SCOPE.scope(scope, f).await
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    SCOPE.try_with(|s| f(&mut s.lock())).ok()
}

/// Whether the current task serves an audited request.
pub fn active() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Names the caller of the current request (once authenticated); `actor` is called
/// only inside an audited request, so reads pay nothing for it.
pub fn set_actor(actor: impl FnOnce() -> Actor) {
    with(|s| s.actor = actor());
}

/// Names what the current request acts on, where its path does not (a creation).
pub fn set_target(kind: &str, id: impl ToString) {
    with(|s| {
        s.req.target_kind = kind.to_owned();
        s.req.target_id = id.to_string();
    });
}

/// Files the current request in a server's history.
pub fn set_server(id: crate::ids::ServerId) {
    with(|s| s.req.server_id = Some(id.get()));
}

/// The task the current request started.
pub fn set_task(id: crate::ids::TaskId) {
    with(|s| s.task_id = Some(id.get()));
}

/// Whether a field holds a secret: its values never enter the trail.
pub fn is_secret(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    ["password", "secret", "token", "community", "hash", "totp", "key_hash", "snmp"].iter().any(|s| f.contains(s))
}

/// Records that `field` went from `before` to `after` in the current request (a
/// secret as `"***"`). A field changed twice keeps its first `before`.
pub fn change(field: &str, before: Value, after: Value) {
    let (before, after) = if is_secret(field) {
        let mask = |v: Value| if v.is_null() { v } else { Value::from("***") };
        (mask(before), mask(after))
    } else {
        (before, after)
    };
    with(|s| {
        let before = s.changes.get(field).and_then(|c| c.get("before")).cloned().unwrap_or(before);
        let mut c = Map::new();
        c.insert("before".into(), before);
        c.insert("after".into(), after);
        s.changes.insert(field.to_owned(), Value::Object(c));
    });
}

/// A write transaction. Committing it inside an [`AuditScope`] writes the request's
/// record in it first. On SQLite it starts with `BEGIN IMMEDIATE`: it holds the write
/// lock from its first statement, so reading before writing never fails with a busy
/// snapshot when another process wrote in between.
pub struct Tx<'c> {
    tx: sqlx::Transaction<'c, Any>,
    /// The event kinds enabled webhooks want (`,a,b,,c,`), read at the first event.
    wanted: Option<String>,
}

impl Deref for Tx<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Tx<'_> {
    /// Whether an enabled webhook wants events of `kind`; the endpoints are read once
    /// per transaction, so a change that nobody listens to costs one small query.
    pub(crate) async fn wants(&mut self, kind: &str) -> Result<bool> {
        if self.wanted.is_none() {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT events FROM webhooks WHERE enabled = 1").fetch_all(&mut *self.tx).await?;
            self.wanted = Some(rows.into_iter().map(|r| r.0).collect());
        }
        Ok(self.wanted.as_deref().is_some_and(|w| w.contains(&format!(",{kind},"))))
    }

    pub async fn commit(mut self) -> Result<()> {
        let scope = SCOPE.try_with(Arc::clone).ok();
        let written = match &scope {
            Some(s) => Some(s.write(&mut self.tx, None).await?),
            None => None,
        };
        self.tx.commit().await?;
        if let (Some(s), Some(id)) = (scope, written) {
            s.lock().record = Some(id);
        }
        Ok(())
    }
}

/// That row `id` of `table` exists (else a 404 naming `what`), read on the
/// transaction's own connection. A write transaction must not ask the pool for a second
/// connection: with every connection held by writers waiting for the write lock, it
/// would wait for one of them while they wait for it, until SQLite's busy timeout.
pub(crate) async fn require_row(conn: &mut AnyConnection, table: &str, what: &'static str, id: i64) -> Result<()> {
    let found: Option<(i64,)> = sqlx::query_as(AssertSqlSafe(format!("SELECT id FROM {table} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    found.map(drop).ok_or_else(|| crate::StoreError::not_found(what, id))
}

impl Store {
    /// Begins a write transaction (see [`Tx`]).
    pub async fn write(&self) -> Result<Tx<'static>> {
        let tx = match self.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool().begin().await?,
        };
        Ok(Tx { tx, wanted: None })
    }
}

/// Writes the record of a finished task in the transaction that finishes it.
pub(crate) async fn record_task(
    conn: &mut AnyConnection,
    task_id: crate::ids::TaskId,
    server_id: Option<crate::ids::ServerId>,
    name: &str,
    status: dcim_core::TaskStatus,
    request_id: Option<&str>,
    error: &str,
) -> Result<()> {
    let result = if status == dcim_core::TaskStatus::Complete { "ok" } else { "error" };
    sqlx::query(
        "INSERT INTO audit (at, role, request_id, action, target_kind, target_id, server_id, task_id, result, \
         error_msg, changes) VALUES ($1, 'system', $2, $3, 'task', $4, $5, $6, $7, $8, $9)",
    )
    .bind(now())
    .bind(request_id.unwrap_or_default().to_owned())
    .bind(format!("task.{name}"))
    .bind(task_id.to_string())
    .bind(server_id)
    .bind(task_id)
    .bind(result)
    .bind(error.to_owned())
    .bind(serde_json::json!({ "status": { "before": Value::Null, "after": status } }).to_string())
    .execute(conn)
    .await?;
    Ok(())
}
