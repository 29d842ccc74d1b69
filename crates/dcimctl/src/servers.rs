//! `dcimctl server ...`: lists with the API's `where` language (and friendly filters
//! that compile to it), one server, and actions on one server or many: each many-server
//! action confirms by listing the servers (or takes `--yes`), prints one row per server
//! (its task, or why it was refused) and can follow the tasks to their end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::output::{Column, Format};
use crate::{Ctx, Failure};

pub const SERVER_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("STATE", "state"),
    ("POWER", "power_status"),
    ("OWNER", "owner_email"),
    ("CONFIGURATION", "configuration"),
    ("LOCATION", "location.name"),
    ("RACK", "rack.name"),
    ("UNIT", "unit"),
];

#[derive(Args, Clone, Default)]
pub struct Filters {
    /// The API's list language, e.g. "state EQ 'ok' AND power_status EQ 'on'".
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// state EQ ...
    #[arg(long)]
    pub state: Option<String>,
    /// power_status EQ ... (on, off, unknown)
    #[arg(long)]
    pub power: Option<String>,
    /// The owner's e-mail.
    #[arg(long)]
    pub owner: Option<String>,
    /// Servers nobody owns.
    #[arg(long)]
    pub free: bool,
    /// A hardware configuration's name.
    #[arg(long)]
    pub config: Option<String>,
    /// A location's id.
    #[arg(long)]
    pub location: Option<i64>,
    /// A rack's id.
    #[arg(long)]
    pub rack: Option<i64>,
}

/// A quoted string of the list language.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Filters {
    /// The `where` expression these filters make (`None`: everything).
    pub fn expression(&self) -> Option<String> {
        let mut parts = vec![];
        if let Some(w) = &self.filter {
            parts.push(format!("({w})"));
        }
        let mut eq = |field: &str, v: String| parts.push(format!("{field} EQ {v}"));
        if let Some(v) = &self.state {
            eq("state", quoted(v));
        }
        if let Some(v) = &self.power {
            eq("power_status", quoted(v));
        }
        if let Some(v) = &self.owner {
            eq("owner_email", quoted(v));
        }
        if let Some(v) = &self.config {
            eq("configuration", quoted(v));
        }
        if let Some(v) = self.location {
            eq("location.id", v.to_string());
        }
        if let Some(v) = self.rack {
            eq("rack.id", v.to_string());
        }
        if self.free {
            parts.push("owner_email IS null".into());
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }
}

#[derive(Subcommand)]
pub enum ServerCmd {
    /// Servers, filtered and sorted by the API.
    ///
    /// Example: dcimctl server list --free --config i9-9900K-64Gb-2x1024NVMe --sort "name asc"
    List {
        #[command(flatten)]
        filters: Filters,
        /// `field [asc|desc]`, e.g. "name desc".
        #[arg(long)]
        sort: Option<String>,
        /// At most this many (the API's default page otherwise).
        #[arg(long)]
        limit: Option<u64>,
        /// Every matching server, page by page.
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
    /// One server, by id or name.
    Show { server: String },
    /// Power on, off or reset one or more servers.
    ///
    /// Example: dcimctl server power reset 4 7 9 --yes --wait
    Power {
        #[arg(value_parser = ["on", "off", "reset"])]
        action: String,
        #[command(flatten)]
        act: Action,
    },
    /// Close the servers' switch ports (a customer's suspension).
    Suspend {
        #[command(flatten)]
        act: Action,
    },
    /// Open them again.
    Resume {
        #[command(flatten)]
        act: Action,
    },
    /// Abort the servers' running operations.
    Abort {
        #[command(flatten)]
        act: Action,
    },
}

/// Which servers an action takes, and how it is followed.
#[derive(Args, Clone)]
pub struct Action {
    /// Server ids or names.
    pub servers: Vec<String>,
    /// Or every server this expression of the list language selects.
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// Act on several servers without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Follow the tasks until they end (at most SECS, 3600 by default).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

/// A path with its query string.
pub fn with_query(path: &str, q: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("http://x").expect("a constant URL");
    url.set_path(path);
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in q {
            pairs.append_pair(k, v);
        }
    }
    match url.query() {
        Some(qs) if !qs.is_empty() => format!("{path}?{qs}"),
        _ => path.to_owned(),
    }
}

/// Every server the filter selects (page by page), or one page.
async fn list(
    ctx: &Ctx,
    expr: Option<String>,
    sort: Option<&str>,
    limit: Option<u64>,
    all: bool,
) -> Result<Value, Failure> {
    let mut q = vec![];
    if let Some(e) = &expr {
        q.push(("where", e.clone()));
    }
    if let Some(s) = sort {
        q.push(("orderby", s.to_owned()));
    }
    if !all {
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        return ctx.api.get(&with_query("/dci/v3/server", &q)).await;
    }
    const PAGE: u64 = 1000;
    let mut items = vec![];
    let mut size = 0;
    loop {
        let mut page_q = q.clone();
        page_q.push(("limit", format!("{},{PAGE}", items.len())));
        let v = ctx.api.get(&with_query("/dci/v3/server", &page_q)).await?;
        size = v["size"].as_i64().unwrap_or(size);
        let got = v["list"].as_array().cloned().unwrap_or_default();
        let n = got.len();
        items.extend(got);
        if n < PAGE as usize || items.len() as i64 >= size {
            break;
        }
    }
    Ok(json!({"list": items, "size": size}))
}

/// The servers an action names (by id or name) or selects.
async fn targets(ctx: &Ctx, act: &Action) -> Result<Vec<(i64, String)>, Failure> {
    if act.servers.is_empty() == act.filter.is_none() {
        return Err(Failure::Usage("name the servers, or select them with --where (not both)".into()));
    }
    if let Some(w) = &act.filter {
        let v = list(ctx, Some(w.clone()), Some("id asc"), None, true).await?;
        return Ok(v["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (s["id"].as_i64().unwrap_or(0), name_of(s)))
            .collect());
    }
    let mut out = vec![];
    for s in &act.servers {
        let v = find(ctx, s).await?;
        out.push((v["id"].as_i64().unwrap_or(0), name_of(&v)));
    }
    Ok(out)
}

fn name_of(s: &Value) -> String {
    s["name"].as_str().unwrap_or_default().to_owned()
}

/// A server by id, or by its exact name.
async fn find(ctx: &Ctx, s: &str) -> Result<Value, Failure> {
    if let Ok(id) = s.parse::<i64>() {
        return ctx.api.get(&format!("/dci/v3/server/{id}")).await;
    }
    let v = ctx.api.get(&with_query("/dci/v3/server", &[("where", format!("name EQ {}", quoted(s)))])).await?;
    match v["list"].as_array().and_then(|l| l.first()) {
        Some(found) => Ok(found.clone()),
        None => Err(Failure::Usage(format!("no server named '{s}'"))),
    }
}

/// Asks before acting on several servers; without a terminal, `--yes` is required.
fn confirm(what: &str, servers: &[(i64, String)], yes: bool) -> Result<(), Failure> {
    if servers.len() <= 1 || yes {
        return Ok(());
    }
    let names: Vec<&str> = servers.iter().map(|(_, n)| n.as_str()).collect();
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "{what} would act on {} servers ({}); add --yes to go ahead without a terminal",
            servers.len(),
            names.join(", ")
        )));
    }
    eprintln!("{what} on {} servers: {}", servers.len(), names.join(", "));
    let answer = crate::read_line("Go ahead? [y/N] ")?;
    if matches!(answer.as_str(), "y" | "Y" | "yes") { Ok(()) } else { Err(Failure::Usage("nothing done".into())) }
}

pub async fn run(ctx: &Ctx, cmd: &ServerCmd) -> Result<(), Failure> {
    match cmd {
        ServerCmd::List { filters, sort, limit, all } => {
            let v = list(ctx, filters.expression(), sort.as_deref(), *limit, *all).await?;
            ctx.view().list(&v, SERVER_COLUMNS);
            Ok(())
        }
        ServerCmd::Show { server } => {
            let v = find(ctx, server).await?;
            let mut cols = SERVER_COLUMNS.to_vec();
            cols.extend([
                ("MAC", "mac"),
                ("BMC", "ipmi.address"),
                ("IPV4", "main_ipv4"),
                ("TEMPLATE", "os_template.name"),
            ]);
            ctx.view().object(&v, &cols);
            Ok(())
        }
        ServerCmd::Power { action, act } => act_on(ctx, &format!("power_{action}"), act).await,
        ServerCmd::Suspend { act } => act_on(ctx, "suspend", act).await,
        ServerCmd::Resume { act } => act_on(ctx, "resume", act).await,
        ServerCmd::Abort { act } => act_on(ctx, "abort", act).await,
    }
}

/// Starts `op` on every target: one row per server, its task or why not; then follows
/// the tasks when asked.
async fn act_on(ctx: &Ctx, op: &str, act: &Action) -> Result<(), Failure> {
    let servers = targets(ctx, act).await?;
    if servers.is_empty() {
        return Err(Failure::Usage("no server matches".into()));
    }
    confirm(op, &servers, act.yes)?;
    let mut rows = vec![];
    let mut started = vec![];
    let mut refused = 0;
    for (id, name) in &servers {
        let r = if op == "abort" {
            ctx.api.call(reqwest::Method::DELETE, &format!("/dci/v3/server/{id}/operation"), None).await
        } else {
            ctx.api.post(&format!("/dci/v3/server/{id}/{op}"), &json!({})).await
        };
        match r {
            Ok(v) => {
                let task = v["task"].as_i64();
                if let Some(t) = task {
                    started.push(t);
                }
                rows.push(json!({"id": id, "name": name, "task": task, "result": "started"}));
            }
            Err(Failure::Api { msg, code, .. }) => {
                refused += 1;
                rows.push(
                    json!({"id": id, "name": name, "task": null, "result": format!("refused: {msg} (code {code})")}),
                );
            }
            Err(e) => return Err(e),
        }
    }
    let cols = [("SERVER", "id"), ("NAME", "name"), ("TASK", "task"), ("RESULT", "result")];
    match ctx.view_format {
        Format::Ids => rows.iter().filter_map(|r| r["task"].as_i64()).for_each(|t| println!("{t}")),
        _ => ctx.view().list(&Value::Array(rows), &cols),
    }
    if let Some(secs) = act.wait {
        watch(ctx, &started, Duration::from_secs(secs)).await?;
    }
    if refused > 0 {
        return Err(Failure::Usage(format!("{refused} of {} servers refused {op}", servers.len())));
    }
    Ok(())
}

/// Follows tasks until all end, printing each step's changes to standard error; exit
/// 3 when one ended `fail` or `canceled`, 4 when `limit` ran out.
pub async fn watch(ctx: &Ctx, ids: &[i64], limit: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    let mut seen: HashMap<(i64, usize), String> = HashMap::new();
    let mut open: Vec<i64> = ids.to_vec();
    let mut failed = vec![];
    while !open.is_empty() {
        let mut still = vec![];
        for id in open {
            let t = ctx.api.get(&format!("/dci/v3/task/{id}")).await?;
            for (i, s) in t["progress_info"].as_array().into_iter().flatten().enumerate() {
                let status = s["status"].as_str().unwrap_or_default().to_owned();
                if seen.get(&(id, i)) != Some(&status) {
                    let msg =
                        s["message"].as_str().filter(|m| !m.is_empty()).map(|m| format!(": {m}")).unwrap_or_default();
                    eprintln!(
                        "task {id} (server {}): {} {status}{msg}",
                        t["server"],
                        s["name"].as_str().unwrap_or_default()
                    );
                    seen.insert((id, i), status);
                }
            }
            match t["status"].as_str().unwrap_or_default() {
                "complete" => eprintln!("task {id}: complete"),
                st @ ("fail" | "canceled") => {
                    let why = t["status_info"]["message"].as_str().unwrap_or_default().to_owned();
                    eprintln!("task {id}: {st}: {why}");
                    failed.push(format!("task {id} {st}: {why}"));
                }
                _ => still.push(id),
            }
        }
        open = still;
        if !open.is_empty() {
            if Instant::now() >= deadline {
                return Err(Failure::Timeout(format!(
                    "tasks {} still running after {} s",
                    open.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(Failure::TaskFailed(failed.join("; "))) }
}
