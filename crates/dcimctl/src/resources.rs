//! The other objects: users (with their own actions) and the inventory and address
//! lists, each a list (the API's `where`, sort, limit, all), one object, and a delete.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::output::{Column, Format, WIDE};
use crate::query::{id_of, list_of};
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
}

#[derive(Subcommand)]
pub enum SwitchCmd {
    #[command(flatten)]
    Common(Plain),
    /// The switch's ports, with the server on each.
    ///
    /// Example: dcimctl switch ports demo-sw1 -o wide
    Ports { switch: String },
    /// Read the ports from the switch again (SNMP); connections stay.
    ///
    /// Example: dcimctl switch sync demo-sw1
    Sync { switch: String },
    /// Bring a port up or down on the switch (ifAdminStatus).
    ///
    /// The port is its id (the ID column of `switch ports`) or its name.
    ///
    /// Example: dcimctl switch port down demo-sw1 ge-0/0/4
    #[command(subcommand)]
    Port(PortCmd),
}

#[derive(Subcommand)]
pub enum PortCmd {
    /// Bring the port up on the switch (ifAdminStatus up).
    ///
    /// Example: dcimctl switch port up demo-sw1 ge-0/0/4
    Up { switch: String, port: String },
    /// Shut the port on the switch (ifAdminStatus down).
    ///
    /// Example: dcimctl switch port down demo-sw1 ge-0/0/4
    Down { switch: String, port: String },
}

#[derive(Subcommand)]
pub enum PduCmd {
    #[command(flatten)]
    Common(Plain),
    /// The PDU's outlets, with the server on each.
    ///
    /// Example: dcimctl pdu outlets 1
    #[command(visible_alias = "ports")]
    Outlets { pdu: String },
    /// Read the outlets from the PDU again (SNMP); connections stay.
    ///
    /// Example: dcimctl pdu sync 1
    Sync { pdu: String },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Users.
    ///
    /// Example: dcimctl user list --where "blocked EQ true"
    List {
        #[command(flatten)]
        args: ListArgs,
    },
    /// One user, by id or e-mail.
    ///
    /// Example: dcimctl user show customer1@example.com
    Show { user: String },
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
    /// Change a user: only the fields given. `--password-stdin` reads a new password.
    ///
    /// Example: dcimctl user edit c@example.com --full-name "C. Customer" --role @user
    Edit {
        user: String,
        #[arg(long)]
        email: Option<String>,
        /// @user or @admin.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        full_name: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Block a user (its sessions end).
    ///
    /// Example: dcimctl user block customer2@example.com
    Block { user: String },
    /// Let a blocked user in again.
    ///
    /// Example: dcimctl user unblock customer2@example.com
    Unblock { user: String },
    /// Delete a user who owns no server.
    ///
    /// Example: dcimctl user delete 7
    Delete { user: String },
    /// A one-time login link for a user (as billing sends its customers).
    ///
    /// Example: dcimctl user key customer1@example.com
    Key { user: String },
}

/// The id of a user given by id or e-mail.
pub async fn user_id(ctx: &Ctx, user: &str) -> Result<i64, Failure> {
    id_of(ctx, "/dci/v3/user", "email", user, "user").await
}

const USER_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("EMAIL", "email"),
    ("ROLE", "roles"),
    ("BLOCKED", "blocked"),
    ("SERVERS", "server_count"),
    WIDE,
    ("FULL NAME", "full_name"),
    ("PHONE", "phone_number"),
    ("VLANS", "vlans_per_user"),
];

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
        UserCmd::Edit { user, email, role, full_name, phone, password_stdin } => {
            let id = user_id(ctx, user).await?;
            let mut body = serde_json::Map::new();
            for (k, v) in [("email", email), ("role", role), ("full_name", full_name), ("phone_number", phone)] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            if *password_stdin {
                let password = crate::read_line("")?;
                if password.is_empty() {
                    return Err(Failure::Usage("give the password on standard input".into()));
                }
                body.insert("password".into(), json!(password));
            }
            if body.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give --email, --role, --full-name, --phone or --password-stdin".into(),
                ));
            }
            ctx.view()
                .object(&ctx.api.post(&format!("/dci/v3/user/{id}"), &Value::Object(body)).await?, &[("ID", "id")]);
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
            out!("{}/auth/key-v4/{key}", ctx.api.base);
        }
    }
    Ok(())
}

/// Each kind's `list`, `show` and `delete` with an example of its own in `--help` (the
/// three are one derived subcommand shared by all kinds).
pub fn with_examples(mut cmd: clap::Command) -> clap::Command {
    for (kind, _, _, _) in KINDS {
        let list = format!("Example: dcimctl {kind} list --where \"name CP '%A%'\" --sort \"name asc\"");
        let show = format!("Example: dcimctl {kind} show 1 -o json");
        let delete = format!("Example: dcimctl {kind} delete 3");
        cmd = cmd.mut_subcommand(kind, |c| {
            c.mut_subcommand("list", |c| c.after_help(list))
                .mut_subcommand("show", |c| c.after_help(show))
                .mut_subcommand("delete", |c| c.after_help(delete))
        });
    }
    cmd
}

/// The lists dcimctl knows: a command name, its list's path, the path of one (`{path}/{id}`),
/// its columns.
pub const KINDS: &[(&str, &str, &str, &[Column])] = &[
    (
        "location",
        "/dci/v3/location",
        "/dci/v3/location",
        &[("ID", "id"), ("NAME", "name"), ("GEOLOCATION", "geolocation")],
    ),
    (
        "rack",
        "/dci/v3/rack",
        "/dci/v3/rack",
        &[("ID", "id"), ("NAME", "name"), ("LOCATION", "location_id"), ("SIZE", "size"), ("DEVICES", "device_count")],
    ),
    (
        "switch",
        "/dci/v3/switch",
        "/dci/v3/switch",
        &[("ID", "id"), ("NAME", "name"), ("IP", "ip"), ("PROTOCOL", "protocol"), ("PORTS", "port_count")],
    ),
    (
        "pdu",
        "/dci/v3/pdu",
        "/dci/v3/pdu",
        &[("ID", "id"), ("NAME", "name"), ("IP", "ip"), ("PROTOCOL", "protocol"), ("OUTLETS", "port_count")],
    ),
    (
        "template",
        "/dci/v3/os_template",
        "/dci/v3/os_template",
        &[("ID", "id"), ("NAME", "name"), ("TYPE", "type"), ("TAGS", "tags")],
    ),
    (
        "net",
        "/ip/v3/ipnet",
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
        "/ip/v3/ippool",
        &[("ID", "id"), ("NAME", "name"), ("USED", "using_ip"), ("TOTAL", "total_ip"), ("NOTE", "note")],
    ),
    (
        "ip",
        "/dci/v3/ip",
        "/ip/v3/ip",
        &[("ID", "id"), ("ADDRESS", "name"), ("SERVER", "server"), ("STATUS", "status"), ("DOMAIN", "domain")],
    ),
];

pub async fn plain(ctx: &Ctx, kind: &str, cmd: &Plain) -> Result<(), Failure> {
    let (_, path, one, cols) = KINDS.iter().find(|(k, _, _, _)| *k == kind).expect("a known kind");
    match cmd {
        Plain::List { args } => {
            let v = list_of(ctx, path, args.filter.clone(), args.sort.as_deref(), args.limit, args.all).await?;
            ctx.view().list(&v, cols);
        }
        Plain::Show { id } => ctx.view().object(&ctx.api.get(&format!("{one}/{id}")).await?, cols),
        Plain::Delete { id } => {
            let v: Value = ctx.api.call(reqwest::Method::DELETE, &format!("{one}/{id}"), None).await?;
            if matches!(ctx.view_format, Format::Json | Format::Yaml) {
                out!("{}", ctx.view_format.raw(&v));
            }
        }
    }
    Ok(())
}

const SWITCH_PORT_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("INDEX", "index"),
    ("NAME", "name"),
    ("ALIAS", "alias"),
    ("ADMIN", "admin_status"),
    ("OPER", "oper_status"),
    ("SERVER", "server.name"),
    WIDE,
    ("DESCRIPTION", "description"),
    ("SPEED", "speed"),
];

const OUTLET_COLUMNS: &[Column] =
    &[("ID", "id"), ("INDEX", "index"), ("NAME", "name"), ("POWER", "power_status"), ("SERVER", "server.name")];

/// A switch's ports or a PDU's outlets (`path` is the device list's), all of them.
async fn ports(ctx: &Ctx, path: &str, what: &str, device: &str, cols: &[Column]) -> Result<(), Failure> {
    let id = id_of(ctx, path, "name", device, what).await?;
    ctx.view().list(&list_of(ctx, &format!("{path}/{id}/port"), None, None, None, true).await?, cols);
    Ok(())
}

/// Reads a switch's or PDU's ports from the device again.
async fn sync(ctx: &Ctx, path: &str, what: &str, device: &str) -> Result<(), Failure> {
    let id = id_of(ctx, path, "name", device, what).await?;
    ctx.view().object(&ctx.api.post(&format!("{path}/{id}/sync"), &json!({})).await?, &[("ID", "id")]);
    Ok(())
}

pub async fn switches(ctx: &Ctx, cmd: &SwitchCmd) -> Result<(), Failure> {
    let path = "/dci/v3/switch";
    match cmd {
        SwitchCmd::Common(c) => plain(ctx, "switch", c).await,
        SwitchCmd::Ports { switch } => ports(ctx, path, "switch", switch, SWITCH_PORT_COLUMNS).await,
        SwitchCmd::Sync { switch } => sync(ctx, path, "switch", switch).await,
        SwitchCmd::Port(PortCmd::Up { switch, port } | PortCmd::Down { switch, port }) => {
            let id = id_of(ctx, path, "name", switch, "switch").await?;
            let ports = format!("{path}/{id}/port");
            let port_id = id_of(ctx, &ports, "name", port, "port").await?;
            let up = matches!(cmd, SwitchCmd::Port(PortCmd::Up { .. }));
            let body = json!({"admin_status": if up { "up" } else { "down" }});
            ctx.view().object(&ctx.api.post(&format!("{ports}/{port_id}"), &body).await?, SWITCH_PORT_COLUMNS);
            Ok(())
        }
    }
}

pub async fn pdus(ctx: &Ctx, cmd: &PduCmd) -> Result<(), Failure> {
    let path = "/dci/v3/pdu";
    match cmd {
        PduCmd::Common(c) => plain(ctx, "pdu", c).await,
        PduCmd::Outlets { pdu } => ports(ctx, path, "pdu", pdu, OUTLET_COLUMNS).await,
        PduCmd::Sync { pdu } => sync(ctx, path, "pdu", pdu).await,
    }
}
