//! `dcimctl server ...`: lists with the API's `where` language (and friendly filters
//! that compile to it), one server, and actions on one server or many: each many-server
//! action confirms by listing the servers (or takes `--yes`), prints one row per server
//! (its task, or why it was refused) and can follow the tasks to their end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::output::{Column, Format, WIDE};
use crate::query::{id_of, list_of, quoted, with_query};
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
    WIDE,
    ("IPV4", "main_ipv4"),
    ("MAC", "mac"),
    ("BMC", "ipmi.address"),
    ("OS", "os_template.name"),
    ("MODEL", "model"),
    ("SERIAL", "serial_number"),
    ("TASK", "operation.id"),
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
    ///
    /// Example: dcimctl server show srv-01 -o json
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
    ///
    /// Example: dcimctl server suspend --where "owner_email EQ 'late@example.com'" --yes --wait
    Suspend {
        #[command(flatten)]
        act: Action,
    },
    /// Open them again.
    ///
    /// Example: dcimctl server resume srv-04 srv-05 --yes --wait
    Resume {
        #[command(flatten)]
        act: Action,
    },
    /// Abort the servers' running operations.
    ///
    /// Example: dcimctl server abort 12
    Abort {
        #[command(flatten)]
        act: Action,
    },
    /// Hardware diagnostics (the agent boots and reports what it finds).
    ///
    /// Example: dcimctl server diag srv-07 --wipe simple --wait
    Diag {
        /// Also wipe the disks: none, simple or full.
        #[arg(long, default_value = "none", value_parser = ["none", "simple", "full"])]
        wipe: String,
        #[command(flatten)]
        act: Action,
    },
    /// Wipe the servers' disks.
    ///
    /// Example: dcimctl server wipe --where "owner_email IS null AND is_new EQ true" --mode full --yes
    Wipe {
        #[arg(long, default_value = "simple", value_parser = ["simple", "full"])]
        mode: String,
        #[command(flatten)]
        act: Action,
    },
    /// Install an OS template; the root password is read from standard input.
    ///
    /// Example: echo "$ROOT_PW" | dcimctl server install 12 --template 1 --raid raid_1 --ssh-key ~/.ssh/id_ed25519.pub --wait
    Install {
        /// The OS template's id.
        #[arg(long)]
        template: i64,
        /// no_raid, raid_0, raid_1, raid_5 or raid_10.
        #[arg(long, default_value = "no_raid")]
        raid: String,
        /// A public key file to install for root (repeatable).
        #[arg(long = "ssh-key")]
        ssh_keys: Vec<std::path::PathBuf>,
        #[command(flatten)]
        act: Action,
    },
    /// Set the next boot device at the BMC.
    ///
    /// Example: dcimctl server boot-device pxe srv-03 --efi
    BootDevice {
        /// pxe (the network) or disk.
        #[arg(value_parser = ["pxe", "disk"])]
        device: String,
        /// For every boot, not only the next.
        #[arg(long)]
        persistent: bool,
        /// Boot in UEFI mode (`--efi=false`: legacy BIOS); the server's setting otherwise.
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        efi: Option<bool>,
        #[command(flatten)]
        act: Action,
    },
    /// A new server from a JSON body (the API's `POST /dci/v3/server`), text or @file.
    ///
    /// Example: dcimctl server create -d '{"name":"srv-9","location_id":1,"rack_id":1,"unit":20}'
    Create {
        #[arg(short = 'd', long)]
        data: String,
    },
    /// Change a server's fields from a JSON body (`POST /dci/v3/server/{id}`).
    ///
    /// Example: dcimctl server edit srv-03 -d '{"note":"fan noisy","unit":12}'
    Edit {
        server: String,
        #[arg(short = 'd', long)]
        data: String,
    },
    /// Delete a server nobody owns.
    ///
    /// Example: dcimctl server delete srv-09
    Delete { server: String },
    /// The server's hardware as recorded, or set it from a JSON file (`--set @hw.json`).
    ///
    /// Example: dcimctl server hardware srv-09 --set @hw.json
    Hardware {
        server: String,
        #[arg(long)]
        set: Option<String>,
    },
    /// Connect the server to a switch port (`--switch-port`, `--bmc` for its BMC's) or a
    /// PDU outlet (`--pdu-port`); port ids as `switch ports` and `pdu ports` show them.
    ///
    /// Example: dcimctl server connect srv-09 --switch-port 17
    Connect {
        server: String,
        #[arg(long, conflicts_with = "pdu_port")]
        switch_port: Option<i64>,
        #[arg(long)]
        pdu_port: Option<i64>,
        #[arg(long, requires = "switch_port")]
        bmc: bool,
    },
    /// Who owns the server.
    #[command(subcommand)]
    Owner(OwnerCmd),
    /// The server's IP addresses.
    #[command(subcommand)]
    Ip(IpCmd),
}

#[derive(Subcommand)]
pub enum OwnerCmd {
    /// Make a user (id or e-mail) the owner.
    ///
    /// Example: dcimctl server owner set srv-05 customer1@example.com
    Set { server: String, user: String },
    /// Release the server.
    ///
    /// Example: dcimctl server owner clear srv-05
    Clear { server: String },
}

#[derive(Subcommand)]
pub enum IpCmd {
    /// The server's addresses.
    ///
    /// Example: dcimctl server ip list srv-05
    List { server: String },
    /// Give the server the next free address of a pool (or a given one of a network).
    ///
    /// Example: dcimctl server ip add srv-05 --pool 1 --wait
    Add {
        server: String,
        #[arg(long, conflicts_with = "net")]
        pool: Option<i64>,
        #[arg(long)]
        net: Option<i64>,
        /// The address wanted, in --net.
        #[arg(long, requires = "net")]
        address: Option<String>,
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "3600")]
        wait: Option<u64>,
    },
    /// Take an address back.
    ///
    /// Example: dcimctl server ip rm srv-05 31 --wait
    Rm {
        server: String,
        ip: i64,
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "3600")]
        wait: Option<u64>,
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

/// Every server the filter selects (page by page), or one page.
async fn list(
    ctx: &Ctx,
    expr: Option<String>,
    sort: Option<&str>,
    limit: Option<u64>,
    all: bool,
) -> Result<Value, Failure> {
    list_of(ctx, "/dci/v3/server", expr, sort, limit, all).await
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

/// The id of a server given by id or name.
async fn server_id(ctx: &Ctx, s: &str) -> Result<i64, Failure> {
    id_of(ctx, "/dci/v3/server", "name", s, "server").await
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
        ServerCmd::Power { action, act } => act_on(ctx, &format!("power_{action}"), json!({}), act).await,
        ServerCmd::Suspend { act } => act_on(ctx, "suspend", json!({}), act).await,
        ServerCmd::Resume { act } => act_on(ctx, "resume", json!({}), act).await,
        ServerCmd::Abort { act } => act_on(ctx, "abort", json!({}), act).await,
        ServerCmd::Diag { wipe, act } => act_on(ctx, "operation_diag", json!({"clear_hdd": wipe}), act).await,
        ServerCmd::Wipe { mode, act } => act_on(ctx, "operation_clear_hdd", json!({"clear_hdd": mode}), act).await,
        ServerCmd::Install { template, raid, ssh_keys, act } => {
            let password = crate::read_line("")?;
            if password.is_empty() {
                return Err(Failure::Usage("give the root password on standard input".into()));
            }
            let mut keys = vec![];
            for k in ssh_keys {
                let text = std::fs::read_to_string(k).map_err(|e| Failure::Usage(format!("{}: {e}", k.display())))?;
                keys.push(text.trim().to_owned());
            }
            let body =
                json!({"os_template_id": template, "hdd_raid": raid, "password": password, "ssh_pub_keys": keys});
            act_on(ctx, "operation_os", body, act).await
        }
        ServerCmd::BootDevice { device, persistent, efi, act } => {
            let mut body = json!({"device": device, "persistent": persistent});
            if let Some(e) = efi {
                body["efi"] = json!(e);
            }
            act_on(ctx, "boot_device", body, act).await
        }
        ServerCmd::Create { data } => {
            let v = ctx.api.post("/dci/v3/server", &crate::json_arg(data)?).await?;
            ctx.view().object(&v, &[("ID", "id")]);
            Ok(())
        }
        ServerCmd::Edit { server, data } => {
            let id = server_id(ctx, server).await?;
            let v = ctx.api.post(&format!("/dci/v3/server/{id}"), &crate::json_arg(data)?).await?;
            ctx.view().object(&v, &[("ID", "id")]);
            Ok(())
        }
        ServerCmd::Delete { server } => {
            let id = server_id(ctx, server).await?;
            ctx.api.call(reqwest::Method::DELETE, &format!("/dci/v3/server/{id}"), None).await?;
            Ok(())
        }
        ServerCmd::Hardware { server, set } => {
            let s = find(ctx, server).await?;
            match set {
                Some(d) => {
                    let v = ctx
                        .api
                        .post(&format!("/dci/v3/server/{}/hardware_info", s["id"]), &crate::json_arg(d)?)
                        .await?;
                    ctx.view().object(&v, &[("ID", "id")]);
                }
                None => out!("{}", ctx.view_format.raw(&s["hardware_info"])),
            }
            Ok(())
        }
        ServerCmd::Connect { server, switch_port, pdu_port, bmc } => {
            let id = server_id(ctx, server).await?;
            let v = match (switch_port, pdu_port) {
                (Some(p), _) => {
                    let b = json!({"port": p, "is_ipmi_connection": bmc});
                    ctx.api.post(&format!("/dci/v3/server/{id}/switch_connection"), &b).await?
                }
                (None, Some(p)) => {
                    ctx.api.post(&format!("/dci/v3/server/{id}/pdu_connection"), &json!({"port": p})).await?
                }
                (None, None) => return Err(Failure::Usage("name a --switch-port or a --pdu-port".into())),
            };
            ctx.view().object(&v, &[("ID", "id")]);
            Ok(())
        }
        ServerCmd::Owner(OwnerCmd::Set { server, user }) => {
            let id = server_id(ctx, server).await?;
            let owner = crate::resources::user_id(ctx, user).await?;
            let v = ctx.api.post(&format!("/dci/v3/server/{id}/owner"), &json!({"owner": owner})).await?;
            ctx.view().object(&v, &[("ID", "id")]);
            Ok(())
        }
        ServerCmd::Owner(OwnerCmd::Clear { server }) => {
            let id = server_id(ctx, server).await?;
            let v = ctx.api.call(reqwest::Method::DELETE, &format!("/dci/v3/server/{id}/owner"), None).await?;
            ctx.view().object(&v, &[("ID", "id")]);
            Ok(())
        }
        ServerCmd::Ip(IpCmd::List { server }) => {
            let id = server_id(ctx, server).await?;
            let v = ctx.api.get(&format!("/dci/v3/server/{id}/ip")).await?;
            ctx.view().list(&v, IP_COLUMNS);
            Ok(())
        }
        ServerCmd::Ip(IpCmd::Add { server, pool, net, address, wait }) => {
            let id = server_id(ctx, server).await?;
            let body = match (pool, net) {
                (Some(p), _) => json!({"ip_pool": p}),
                (None, Some(n)) => match address {
                    Some(a) => json!({"ip_net": n, "ip_name": a}),
                    None => json!({"ip_net": n}),
                },
                (None, None) => return Err(Failure::Usage("name a --pool or a --net".into())),
            };
            let v = ctx.api.post(&format!("/dci/v3/server/{id}/ip"), &body).await?;
            follow(ctx, &v, *wait).await
        }
        ServerCmd::Ip(IpCmd::Rm { server, ip, wait }) => {
            let id = server_id(ctx, server).await?;
            let v = ctx.api.call(reqwest::Method::DELETE, &format!("/dci/v3/server/{id}/ip/{ip}"), None).await?;
            follow(ctx, &v, *wait).await
        }
    }
}

pub const IP_COLUMNS: &[Column] =
    &[("ID", "id"), ("ADDRESS", "name"), ("FAMILY", "family"), ("STATUS", "status"), ("DOMAIN", "domain")];

/// Prints an operation's answer (`{"id", "task"}`) and follows its task when asked.
async fn follow(ctx: &Ctx, v: &Value, wait: Option<u64>) -> Result<(), Failure> {
    ctx.view().object(v, &[("SERVER", "id"), ("TASK", "task")]);
    match (wait, v["task"].as_i64()) {
        (Some(secs), Some(t)) => watch(ctx, &[t], Duration::from_secs(secs)).await,
        _ => Ok(()),
    }
}

/// Starts `op` on every target: one row per server, its task or why not; then follows
/// the tasks when asked.
async fn act_on(ctx: &Ctx, op: &str, body: Value, act: &Action) -> Result<(), Failure> {
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
            ctx.api.post(&format!("/dci/v3/server/{id}/{op}"), &body).await
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
        Format::Ids => rows.iter().filter_map(|r| r["task"].as_i64()).for_each(|t| out!("{t}")),
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

/// The tasks `ids`: one by one for a few, else by ranges of ids through the task list
/// (one request for a run of up to 1,000 ids instead of one per task).
async fn fetch_tasks(ctx: &Ctx, ids: &[i64]) -> Result<Vec<Value>, Failure> {
    const SPAN: i64 = 1000;
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::with_capacity(sorted.len());
    let mut rest = &sorted[..];
    while let Some(&first) = rest.first() {
        let n = rest.iter().take_while(|&&id| id - first < SPAN).count();
        let (run, tail) = rest.split_at(n);
        rest = tail;
        if run.len() < 3 {
            for id in run {
                out.push(ctx.api.get(&format!("/dci/v3/task/{id}")).await?);
            }
            continue;
        }
        let last = run[run.len() - 1];
        let q = [
            ("where", format!("id GE {first} AND id LE {last}")),
            ("orderby", "id asc".to_owned()),
            ("limit", format!("0,{}", last - first + 1)),
        ];
        let page = ctx.api.get(&with_query("/dci/v3/task", &q)).await?;
        let mut found: HashMap<i64, Value> = page["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_i64().map(|id| (id, t.clone())))
            .collect();
        for id in run {
            match found.remove(id) {
                Some(t) => out.push(t),
                // Not in the list (another role's view): ask for it alone, which says why.
                None => out.push(ctx.api.get(&format!("/dci/v3/task/{id}")).await?),
            }
        }
    }
    Ok(out)
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
        for t in fetch_tasks(ctx, &open).await? {
            let id = t["id"].as_i64().unwrap_or_default();
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
