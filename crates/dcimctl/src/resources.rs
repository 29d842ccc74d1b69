//! The other objects: users (with their own actions) and the inventory and address
//! lists, each a list (the API's `where`, sort, limit, all), one object, and a delete.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::output::Column;
use crate::query::{list_of, quoted, with_query};
use crate::{Ctx, Failure};

#[derive(Args, Clone)]
pub struct ListArgs {
    /// The API's list language.
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// `field [asc|desc]`.
    #[arg(long)]
    pub sort: Option<String>,
    #[arg(long)]
    pub limit: Option<u64>,
    /// Every row, page by page.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
}

#[derive(Subcommand)]
pub enum Plain {
    /// The list.
    List {
        #[command(flatten)]
        args: ListArgs,
    },
    /// One, by id.
    Show { id: i64 },
    /// Delete one.
    Delete { id: i64 },
    /// A switch's ports or a PDU's outlets, with what is connected.
    Ports { id: i64 },
    /// Read a switch's or PDU's ports from the device again (SNMP).
    Sync { id: i64 },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Users.
    List {
        #[command(flatten)]
        args: ListArgs,
    },
    /// One user, by id or e-mail.
    Show {
        user: String,
    },
    /// A new user; its password is read from standard input.
    ///
    /// Example: echo "$PW" | dcimctl user create --email c@example.com --role @user
    Create {
        #[arg(long)]
        email: String,
        /// @user or @admin.
        #[arg(long, default_value = "@user")]
        role: String,
        #[arg(long)]
        full_name: Option<String>,
    },
    /// Block a user (its sessions end).
    Block {
        user: String,
    },
    Unblock {
        user: String,
    },
    Delete {
        user: String,
    },
    /// A one-time login link for a user (as billing sends its customers).
    Key {
        user: String,
    },
}

/// The id of a user given by id or e-mail.
pub async fn user_id(ctx: &Ctx, user: &str) -> Result<i64, Failure> {
    if let Ok(id) = user.parse::<i64>() {
        return Ok(id);
    }
    let v = ctx.api.get(&with_query("/dci/v3/user", &[("where", format!("email EQ {}", quoted(user)))])).await?;
    v["list"][0]["id"].as_i64().ok_or_else(|| Failure::Usage(format!("no user '{user}'")))
}

const USER_COLUMNS: &[Column] =
    &[("ID", "id"), ("EMAIL", "email"), ("ROLE", "roles"), ("BLOCKED", "blocked"), ("SERVERS", "server_count")];

pub async fn users(ctx: &Ctx, cmd: &UserCmd) -> Result<(), Failure> {
    match cmd {
        UserCmd::List { args } => {
            let v =
                list_of(ctx, "/dci/v3/user", args.filter.clone(), args.sort.as_deref(), args.limit, args.all).await?;
            ctx.view().list(&v, USER_COLUMNS);
        }
        UserCmd::Show { user } => {
            let id = user_id(ctx, user).await?;
            ctx.view().object(&ctx.api.get(&format!("/dci/v3/user/{id}")).await?, USER_COLUMNS);
        }
        UserCmd::Create { email, role, full_name } => {
            let password = crate::read_line("")?;
            if password.is_empty() {
                return Err(Failure::Usage("give the password on standard input".into()));
            }
            let mut body = json!({"email": email, "password": password, "role": role});
            if let Some(n) = full_name {
                body["full_name"] = json!(n);
            }
            ctx.view().object(&ctx.api.post("/dci/v3/user", &body).await?, &[("ID", "id")]);
        }
        UserCmd::Block { user } | UserCmd::Unblock { user } => {
            let id = user_id(ctx, user).await?;
            let op = if matches!(cmd, UserCmd::Block { .. }) { "block" } else { "unblock" };
            ctx.view().object(&ctx.api.post(&format!("/dci/v3/user/{id}/{op}"), &json!({})).await?, &[("ID", "id")]);
        }
        UserCmd::Delete { user } => {
            let id = user_id(ctx, user).await?;
            ctx.api.call(reqwest::Method::DELETE, &format!("/dci/v3/user/{id}"), None).await?;
        }
        UserCmd::Key { user } => {
            let id = user_id(ctx, user).await?;
            let v = ctx.api.post(&format!("/auth/v4/user/{id}/key"), &json!({})).await?;
            let key = v["key"].as_str().ok_or_else(|| Failure::Connection(format!("no key in the answer: {v}")))?;
            println!("{}/auth/key-v4/{key}", ctx.api.base);
        }
    }
    Ok(())
}

/// The lists dcimctl knows: a command name, its path, its columns.
pub const KINDS: &[(&str, &str, &[Column])] = &[
    ("location", "/dci/v3/location", &[("ID", "id"), ("NAME", "name"), ("GEOLOCATION", "geolocation")]),
    (
        "rack",
        "/dci/v3/rack",
        &[("ID", "id"), ("NAME", "name"), ("LOCATION", "location_id"), ("SIZE", "size"), ("DEVICES", "device_count")],
    ),
    (
        "switch",
        "/dci/v3/switch",
        &[("ID", "id"), ("NAME", "name"), ("IP", "ip"), ("PROTOCOL", "protocol"), ("PORTS", "port_count")],
    ),
    (
        "pdu",
        "/dci/v3/pdu",
        &[("ID", "id"), ("NAME", "name"), ("IP", "ip"), ("PROTOCOL", "protocol"), ("OUTLETS", "port_count")],
    ),
    ("template", "/dci/v3/os_template", &[("ID", "id"), ("NAME", "name"), ("TYPE", "type"), ("TAGS", "tags")]),
    (
        "net",
        "/ip/v3/ipnet",
        &[
            ("ID", "id"),
            ("NAME", "name"),
            ("GATEWAY", "gateway"),
            ("VLAN", "vlan"),
            ("USED", "using_ip"),
            ("TOTAL", "total_ip"),
        ],
    ),
    (
        "pool",
        "/ip/v3/ippool",
        &[("ID", "id"), ("NAME", "name"), ("USED", "using_ip"), ("TOTAL", "total_ip"), ("NOTE", "note")],
    ),
    (
        "ip",
        "/dci/v3/ip",
        &[("ID", "id"), ("ADDRESS", "name"), ("SERVER", "server"), ("STATUS", "status"), ("DOMAIN", "domain")],
    ),
];

pub async fn plain(ctx: &Ctx, kind: &str, cmd: &Plain) -> Result<(), Failure> {
    let (_, path, cols) = KINDS.iter().find(|(k, _, _)| *k == kind).expect("a known kind");
    match cmd {
        Plain::List { args } => {
            let v = list_of(ctx, path, args.filter.clone(), args.sort.as_deref(), args.limit, args.all).await?;
            ctx.view().list(&v, cols);
        }
        Plain::Show { id } => ctx.view().object(&ctx.api.get(&format!("{path}/{id}")).await?, cols),
        Plain::Ports { id } | Plain::Sync { id } if !matches!(kind, "switch" | "pdu") => {
            let _ = id;
            return Err(Failure::Usage(format!("{kind}s have no ports")));
        }
        Plain::Ports { id } => {
            let v = ctx.api.get(&format!("{path}/{id}/port")).await?;
            let cols: &[Column] = if kind == "switch" {
                &[
                    ("ID", "id"),
                    ("INDEX", "index"),
                    ("NAME", "name"),
                    ("ALIAS", "alias"),
                    ("ADMIN", "admin_status"),
                    ("OPER", "oper_status"),
                    ("SERVER", "server.name"),
                ]
            } else {
                &[
                    ("ID", "id"),
                    ("INDEX", "index"),
                    ("NAME", "name"),
                    ("POWER", "power_status"),
                    ("SERVER", "server.name"),
                ]
            };
            ctx.view().list(&v, cols);
        }
        Plain::Sync { id } => {
            let v = ctx.api.post(&format!("{path}/{id}/sync"), &json!({})).await?;
            ctx.view().object(&v, &[("ID", "id")]);
        }
        Plain::Delete { id } => {
            let v: Value = ctx.api.call(reqwest::Method::DELETE, &format!("{path}/{id}"), None).await?;
            if ctx.view_format == crate::output::Format::Json {
                println!("{}", crate::output::pretty(&v));
            }
        }
    }
    Ok(())
}
