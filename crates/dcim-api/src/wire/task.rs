//! Task (operation) shapes: `GET /dci/v3/task`, `server.operation`, and the bodies
//! of the seed's operation calls.

use dcim_core::TaskStatus;
use dcim_store::tasks::TaskRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::extract::id_like;

/// A task as `GET /dci/v3/task/{id}` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    pub id: i64,
    pub server: Option<i64>,
    /// `power_on`, `power_off`, `power_reset`, `suspend`, `resume`, `diag`, `clear_hdd`, `os_install`.
    pub name: String,
    /// `pending`, `running`, `complete`, `fail` or `canceled`.
    #[schema(value_type = String)]
    pub status: TaskStatus,
    /// Percent of steps done.
    pub progress: i64,
    /// One line per step: `name`, `status`, `started`, `finished`, `message`.
    #[schema(value_type = Vec<Object>)]
    pub progress_info: Vec<Value>,
    /// On failure: the `step` and the `message`.
    #[schema(value_type = Object)]
    pub status_info: Value,
    /// RFC 3339 times, UTC.
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
}

pub fn time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `progress_info` with the step times as RFC 3339 too.
pub fn progress_info(text: &str) -> Vec<Value> {
    let mut steps: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
    for s in &mut steps {
        for k in ["started", "finished"] {
            if let Some(t) = s.get(k).and_then(Value::as_i64) {
                s[k] = json!(time(t));
            }
        }
    }
    steps
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Task {
            id: t.id.get(),
            server: t.server_id.map(|s| s.get()),
            name: t.name,
            status: t.status,
            progress: t.progress,
            progress_info: progress_info(&t.progress_info),
            status_info: serde_json::from_str(&t.status_info).unwrap_or_else(|_| json!({})),
            created: time(t.created),
            started: t.started.map(time),
            finished: t.finished.map(time),
        }
    }
}

/// `{"id": <server id>, "task": <task id>}`: what every operation answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskAnswer {
    pub id: i64,
    pub task: i64,
}

/// `POST /server/{id}/operation_diag`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DiagRequest {
    #[serde(default)]
    pub setup_ipmi: bool,
    pub ipmi_pool: Option<i64>,
    /// A diagnostics template; 0 or absent picks the first one.
    #[serde(default, deserialize_with = "opt_id")]
    #[schema(value_type = Option<i64>)]
    pub os_template_id: Option<i64>,
    /// `none`, `simple` or `full`.
    #[serde(default = "none")]
    pub clear_hdd: String,
}

/// `POST /server/{id}/operation_clear_hdd`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClearHddRequest {
    pub clear_hdd: String,
}

/// `POST /server/{id}/operation_os`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OsRequest {
    /// `no_raid`, `raid_0`, `raid_1`, `raid_5` or `raid_10`.
    pub hdd_raid: String,
    #[serde(deserialize_with = "id_like")]
    #[schema(value_type = i64)]
    pub os_template_id: i64,
    pub password: String,
    #[serde(default)]
    pub ssh_pub_keys: Vec<String>,
    /// The installed system's host name (not in DCImanager's body); absent or empty: the
    /// server's `domain`, else its name.
    #[serde(default)]
    pub hostname: Option<String>,
}

/// An agent's report: `kind` is `hardware`, `wiped`, `installed`, `progress`, `done` or `failed`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentReport {
    pub kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

fn none() -> String {
    "none".into()
}

fn opt_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "id_like")] i64);
    Option::<W>::deserialize(d).map(|o| o.map(|w| w.0))
}
