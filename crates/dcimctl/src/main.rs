//! `dcimctl`: the operators' command line for dcim. It talks to a dcim through its
//! public HTTP API only, so it installs on a laptop without the server.
//!
//! Exit codes: 0 done; 1 the API refused (its code and message are printed) or could not
//! be reached; 2 a usage error; 3 a task ended `fail` or `canceled`; 4 `--wait` ran out.

/// `println!` for dcimctl's output, through [`output::write_line`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_line(&mut std::io::stdout().lock(), format_args!($($arg)*))
    };
}

mod client;
mod output;
mod profile;
mod query;
mod resources;
mod servers;
mod sites;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Api;
use crate::output::{Format, View};
use crate::profile::{Config, Profile, Tokens};

/// Why a command did not succeed, and its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The API answered with an error: DCImanager's envelope.
    Api {
        status: u16,
        code: i64,
        msg: String,
        body: Value,
    },
    Connection(String),
    Usage(String),
    /// A followed task ended `fail` or `canceled`.
    TaskFailed(String),
    /// `--wait` ran out.
    Timeout(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Api { .. } | Failure::Connection(_) => 1,
            Failure::Usage(_) => 2,
            Failure::TaskFailed(_) => 3,
            Failure::Timeout(_) => 4,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Api { status: 401, code, msg, .. } => write!(
                f,
                "{msg} (code {code}, HTTP 401): the session is over or was never there; run `dcimctl login` again"
            ),
            Failure::Api { status: 403, code, msg, .. } => {
                write!(f, "{msg} (code {code}, HTTP 403): this account's role may not do that")
            }
            Failure::Api { status, code, msg, .. } => write!(f, "{msg} (code {code}, HTTP {status})"),
            Failure::Connection(m) | Failure::Usage(m) | Failure::TaskFailed(m) | Failure::Timeout(m) => f.write_str(m),
        }
    }
}

const EXAMPLES: &str = "\
Examples:
  dcimctl login --url https://dcim.example.com:8080 --email admin@example.com
  dcimctl server list --free --config i9-9900K-64Gb-2x1024NVMe
  dcimctl server power reset --where \"state EQ 'ok' AND location.id EQ 2\" --yes --wait
  dcimctl task watch 42
  dcimctl api GET /dci/v3/server/1

Exit codes: 0 done; 1 API or connection error; 2 usage; 3 a task ended fail or canceled;
4 --wait timed out.";

#[derive(Parser)]
#[command(name = "dcimctl", version, about = "The operators' command line for dcim, over its HTTP API", after_help = EXAMPLES)]
struct Cli {
    /// The profile to use (else `DCIM_PROFILE`, else the current one).
    #[arg(long, global = true, env = "DCIM_PROFILE")]
    profile: Option<String>,
    /// The dcim to talk to, overriding the profile's.
    #[arg(long, global = true, env = "DCIM_URL")]
    url: Option<String>,
    /// A token to use instead of the profile's.
    #[arg(long, global = true, env = "DCIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A private CA's certificate (PEM) that signs the server's.
    #[arg(long, global = true, env = "DCIM_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Output: table, wide (more columns), json (the API's own objects), yaml (the same
    /// as YAML), value (tab-separated), ids.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Format,
    /// A column to show (repeatable): a header or a field path such as `owner.email`.
    #[arg(short = 'c', long = "column", global = true)]
    columns: Vec<String>,
    /// Tables without their header line.
    #[arg(long, global = true)]
    no_headers: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Log in to a dcim and keep the session in a profile.
    ///
    /// The password is asked for (or read from standard input with --password-stdin).
    /// A certificate no known authority signed (the demo's) is shown by its SHA-256
    /// fingerprint and pinned once you accept it, or when --fingerprint names it.
    ///
    /// Example: dcimctl login --url https://127.0.0.1:8080 --email admin@example.com
    Login {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
        /// The expected SHA-256 fingerprint of a self-signed certificate (`AB:CD:...`).
        #[arg(long)]
        fingerprint: Option<String>,
        /// A two-factor code, when the account has two-factor authentication.
        #[arg(long)]
        code: Option<String>,
    },
    /// End the profile's session and forget its token.
    ///
    /// Example: dcimctl --profile lab logout
    Logout,
    /// Who the profile's session belongs to.
    ///
    /// Example: dcimctl whoami -o json
    Whoami,
    /// Profiles: list, show, use, remove.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Servers.
    #[command(subcommand)]
    Server(servers::ServerCmd),
    /// Free servers per hardware configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Tasks (operations).
    #[command(subcommand)]
    Task(TaskCmd),
    /// Users.
    #[command(subcommand)]
    User(resources::UserCmd),
    /// Locations.
    #[command(subcommand)]
    Location(resources::Plain),
    /// Racks.
    #[command(subcommand)]
    Rack(resources::Plain),
    /// Switches, their ports, and ports up or down.
    #[command(subcommand)]
    Switch(resources::SwitchCmd),
    /// PDUs and their outlets.
    #[command(subcommand)]
    Pdu(resources::PduCmd),
    /// OS templates.
    #[command(subcommand)]
    Template(resources::Plain),
    /// IP networks.
    #[command(subcommand)]
    Net(resources::Plain),
    /// IP pools.
    #[command(subcommand)]
    Pool(resources::Plain),
    /// IP addresses.
    #[command(subcommand)]
    Ip(resources::Plain),
    /// Remote sites: the `dcim site` processes that drive the devices of other data
    /// centers, their links and enrollment.
    #[command(subcommand)]
    Site(sites::SiteCmd),
    /// The built-in fake lab (demos and tests): its state, faults and delays.
    #[command(subcommand)]
    Fake(FakeCmd),
    /// A completion script: `dcimctl completion bash > /etc/bash_completion.d/dcimctl`.
    ///
    /// Example: dcimctl completion zsh > ~/.zfunc/_dcimctl
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Any API call: `dcimctl api POST /dci/v3/location -d '{"name":"DC-2"}'` (or -d @file).
    ///
    /// Example: dcimctl api GET '/dci/v3/server?where=state%20EQ%20%27ok%27'
    Api {
        method: String,
        path: String,
        #[arg(short = 'd', long)]
        data: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProfileCmd {
    /// All profiles; `*` marks the current one.
    ///
    /// Example: dcimctl profile list
    List,
    /// One profile (the current one by default).
    ///
    /// Example: dcimctl profile show lab
    Show { name: Option<String> },
    /// Make a profile the current one.
    ///
    /// Example: dcimctl profile use lab
    Use { name: String },
    /// Forget a profile and its token.
    ///
    /// Example: dcimctl profile remove old-dc
    Remove { name: String },
}

#[derive(Subcommand)]
enum FakeCmd {
    /// The fake devices' state.
    ///
    /// Example: dcimctl fake state
    State,
    /// Make a fake device's calls fail: `dcimctl fake fault bmc-02.demo.invalid power_on --message "BMC on fire"`.
    ///
    /// Example: dcimctl fake fault bmc-02.demo.invalid power_on --times 1 --message "BMC on fire"
    Fault {
        /// A device address, or `*`.
        device: String,
        /// The operation (`power_on`, `power_status`, ...), or `*`.
        op: String,
        /// How many calls fail (until cleared without it).
        #[arg(long)]
        times: Option<u32>,
        /// A failure worth retrying.
        #[arg(long)]
        transient: bool,
        #[arg(long)]
        message: Option<String>,
    },
    /// Clear every fault.
    ///
    /// Example: dcimctl fake clear
    Clear,
    /// Every fake device call takes this long.
    ///
    /// Example: dcimctl fake delay 2000
    Delay { ms: u64 },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Free servers per configuration, as billing asks.
    ///
    /// Example: dcimctl config list -o json
    List,
}

#[derive(Subcommand)]
enum TaskCmd {
    /// Tasks, newest first.
    ///
    /// Example: dcimctl task list --where "status EQ 'fail'" --limit 50
    List {
        #[arg(long)]
        r#where: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// One task with its steps.
    ///
    /// Example: dcimctl task show 42
    Show { id: i64 },
    /// Follow tasks until they end, printing each step as it changes.
    ///
    /// Example: dcimctl task watch 42 43 --timeout 600
    Watch {
        ids: Vec<i64>,
        /// Give up after this many seconds (exit 4).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
}

/// What every command works with.
pub struct Ctx {
    pub api: Api,
    pub view_format: Format,
    pub columns: Vec<String>,
    pub no_headers: bool,
}

impl Ctx {
    pub fn view(&self) -> View<'_> {
        View { format: self.view_format, columns: &self.columns, no_headers: self.no_headers }
    }
}

/// The command line: the derived one with the examples that are built, not written.
fn command() -> clap::Command {
    resources::with_examples(Cli::command())
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcimctl: {e}");
            return ExitCode::from(1);
        }
    };
    let format = cli.output;
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if let (Format::Json | Format::Yaml, Failure::Api { body, .. }) = (format, &f) {
                eprintln!("{}", format.raw(body));
            } else {
                let red = anstyle::AnsiColor::Red.on_default().bold();
                anstream::eprintln!("{red}dcimctl:{red:#} {f}");
            }
            ExitCode::from(f.exit_code())
        }
    }
}

/// The profile's name: the flag (or environment), else the current one, else `default`.
fn profile_name(cli_profile: &Option<String>, cfg: &Config) -> String {
    cli_profile.clone().or_else(|| cfg.current.clone()).unwrap_or_else(|| "default".into())
}

/// The API of the chosen profile, with flags and environment on top.
fn connect(cli: &Cli) -> Result<Api, Failure> {
    let cfg = Config::load()?;
    let name = profile_name(&cli.profile, &cfg);
    let p = cfg.profiles.get(&name).cloned().unwrap_or_default();
    let url = cli.url.clone().unwrap_or(p.url.clone());
    if url.is_empty() {
        return Err(Failure::Usage(format!(
            "no dcim to talk to: profile '{name}' does not exist; run `dcimctl login --url URL --email E` or pass --url"
        )));
    }
    // A pin belongs to its URL: another URL is checked against the authorities.
    let pin = (url == p.url).then_some(p.fingerprint.as_deref()).flatten();
    let ca = cli.ca_cert.as_deref().or(p.ca_cert.as_deref());
    let mut api = Api::new(&url, pin, ca)?;
    api.token = match &cli.token {
        Some(t) => Some(t.clone()),
        None => {
            let token = Tokens::load()?.by_profile.get(&name).cloned();
            // Both are `YYYY-MM-DD HH:MM:SS` in UTC: they compare as text.
            if let Some(end) = p.token_expires.as_deref().filter(|e| token.is_some() && **e <= *time_in_days(0)) {
                return Err(Failure::Usage(format!(
                    "the token of profile '{name}' expired at {end} UTC: log in again with `dcimctl --profile {name} login --email {}`",
                    p.email
                )));
            }
            token
        }
    };
    if api.token.is_none() {
        return Err(Failure::Usage(format!("profile '{name}' is not logged in: run `dcimctl login`")));
    }
    Ok(api)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.cmd {
        Cmd::Login { email, password_stdin, fingerprint, code } => {
            login(&cli, email, *password_stdin, fingerprint.as_deref(), code.as_deref()).await
        }
        Cmd::Profile(p) => profiles(&cli, p),
        Cmd::Completion { shell } => {
            clap_complete::generate(*shell, &mut command(), "dcimctl", &mut std::io::stdout());
            Ok(())
        }
        _ => {
            let ctx = Ctx {
                api: connect(&cli)?,
                view_format: cli.output,
                columns: cli.columns.clone(),
                no_headers: cli.no_headers,
            };
            match &cli.cmd {
                Cmd::Logout => logout(&cli, &ctx).await,
                Cmd::Whoami => {
                    let me = ctx.api.get("/auth/v4/whoami").await?;
                    ctx.view().object(&me, &[("ID", "id"), ("EMAIL", "email"), ("ROLES", "roles")]);
                    Ok(())
                }
                Cmd::Server(s) => servers::run(&ctx, s).await,
                Cmd::Config(ConfigCmd::List) => {
                    let v = ctx.api.get("/dci/v3/server/configuration").await?;
                    ctx.view().list(&v, &[("CONFIGURATION", "configuration"), ("FREE", "free_server_count")]);
                    Ok(())
                }
                Cmd::Task(t) => tasks(&ctx, t).await,
                Cmd::Api { method, path, data } => api_call(&ctx, method, path, data.as_deref()).await,
                Cmd::User(u) => resources::users(&ctx, u).await,
                Cmd::Fake(f) => fake(&ctx, f).await,
                Cmd::Location(c) => resources::plain(&ctx, "location", c).await,
                Cmd::Rack(c) => resources::plain(&ctx, "rack", c).await,
                Cmd::Switch(c) => resources::switches(&ctx, c).await,
                Cmd::Pdu(c) => resources::pdus(&ctx, c).await,
                Cmd::Template(c) => resources::plain(&ctx, "template", c).await,
                Cmd::Net(c) => resources::plain(&ctx, "net", c).await,
                Cmd::Pool(c) => resources::plain(&ctx, "pool", c).await,
                Cmd::Ip(c) => resources::plain(&ctx, "ip", c).await,
                Cmd::Site(c) => sites::run(&ctx, c).await,
                Cmd::Login { .. } | Cmd::Profile(_) | Cmd::Completion { .. } => unreachable!("handled above"),
            }
        }
    }
}

fn read_line(prompt: &str) -> Result<String, Failure> {
    eprint!("{prompt}");
    let mut s = String::new();
    std::io::stdin().read_line(&mut s).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(s.trim().to_owned())
}

async fn login(
    cli: &Cli,
    email: &str,
    password_stdin: bool,
    fingerprint: Option<&str>,
    code: Option<&str>,
) -> Result<(), Failure> {
    let mut cfg = Config::load()?;
    let name = profile_name(&cli.profile, &cfg);
    let old = cfg.profiles.get(&name).cloned().unwrap_or_default();
    let url = cli.url.clone().unwrap_or(old.url.clone());
    if url.is_empty() {
        return Err(Failure::Usage("login needs --url (or a profile that has one)".into()));
    }
    let ca = cli.ca_cert.clone().or(old.ca_cert.clone());
    // The certificate first: the authorities', or a pin.
    let mut pin =
        fingerprint.map(|f| client::parse_fingerprint(f).map(|d| client::fingerprint_text(&d))).transpose()?;
    let probe = Api::new(&url, pin.as_deref(), ca.as_deref())?;
    // Any answer of HTTP means the certificate was accepted.
    if let Err(f @ (Failure::Connection(_) | Failure::Usage(_))) = probe.get("/auth/v4/time").await {
        let seen = probe.seen_fingerprint();
        match (&f, seen) {
            (f, Some(seen)) if client::unknown_issuer(f) && pin.is_none() => {
                eprintln!("The certificate of {url} is not signed by an authority this machine knows.");
                eprintln!("Its SHA-256 fingerprint is {seen}");
                if !std::io::stdin().is_terminal() || password_stdin {
                    return Err(Failure::Usage(format!(
                        "check it with the server's operator, then log in again with --fingerprint {seen}"
                    )));
                }
                let answer = read_line("Trust it and pin it in this profile? [y/N] ")?;
                if !matches!(answer.as_str(), "y" | "Y" | "yes") {
                    return Err(Failure::Usage("not trusted; nothing saved".into()));
                }
                pin = Some(seen);
            }
            (Failure::Connection(m), Some(seen)) if pin.is_some() && m.contains("changed") => {
                return Err(Failure::Connection(format!(
                    "{url} shows a certificate with fingerprint {seen}, not the one given"
                )));
            }
            _ => return Err(f),
        }
    }
    let mut api = Api::new(&url, pin.as_deref(), ca.as_deref())?;
    let password = if password_stdin {
        read_line("")?
    } else {
        rpassword::prompt_password(format!("Password for {email}: ")).map_err(|e| Failure::Usage(e.to_string()))?
    };
    let v = api.post("/auth/v4/public/token", &json!({"email": email, "password": password})).await?;
    let session =
        v["token"].as_str().ok_or_else(|| Failure::Connection(format!("no token in the answer: {v}")))?.to_owned();
    if v["confirmed"] == false {
        let code = match code {
            Some(c) => c.to_owned(),
            None => read_line("Two-factor code: ")?,
        };
        api.post("/auth/v4/public/token/confirm", &json!({"token": session, "code": code})).await?;
    }
    // A long-lived token for the profile, described so the web UI's list names it; the
    // login session ends.
    api.token = Some(session.clone());
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".into());
    let expires = time_in_days(90);
    let t = api
        .post("/auth/v4/token", &json!({"expires_at": expires, "description": format!("dcimctl on {host}")}))
        .await?;
    let token =
        t["token"].as_str().ok_or_else(|| Failure::Connection(format!("no token in the answer: {t}")))?.to_owned();
    api.call(Method::DELETE, &format!("/auth/v4/token/{session}"), None).await?;
    cfg.profiles.insert(
        name.clone(),
        Profile {
            url: api.base.clone(),
            email: email.to_owned(),
            fingerprint: pin,
            ca_cert: ca,
            token_expires: Some(expires.clone()),
        },
    );
    // The first profile becomes the current one; others are chosen with `profile use`.
    cfg.current.get_or_insert_with(|| name.clone());
    cfg.save()?;
    let mut tokens = Tokens::load()?;
    tokens.by_profile.insert(name.clone(), token);
    tokens.save()?;
    eprintln!("Logged in to {} as {email} (profile '{name}', token valid until {expires}).", api.base);
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) `days` from now, as Auth v4 takes it.
fn time_in_days(days: u64) -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
    humantime::format_rfc3339_seconds(t).to_string().replace('T', " ").trim_end_matches('Z').to_owned()
}

async fn logout(cli: &Cli, ctx: &Ctx) -> Result<(), Failure> {
    let cfg = Config::load()?;
    let name = profile_name(&cli.profile, &cfg);
    if let Some(t) = &ctx.api.token {
        match ctx.api.call(Method::DELETE, &format!("/auth/v4/token/{t}"), None).await {
            Ok(_) | Err(Failure::Api { status: 401 | 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut tokens = Tokens::load()?;
    tokens.by_profile.remove(&name);
    tokens.save()?;
    eprintln!("Logged out (profile '{name}').");
    Ok(())
}

fn profiles(cli: &Cli, p: &ProfileCmd) -> Result<(), Failure> {
    let mut cfg = Config::load()?;
    let tokens = Tokens::load()?;
    let view = View { format: cli.output, columns: &cli.columns, no_headers: cli.no_headers };
    let shown = |name: &str, p: &Profile| {
        json!({
            "name": name, "current": cfg.current.as_deref() == Some(name), "url": p.url, "email": p.email,
            "fingerprint": p.fingerprint, "ca_cert": p.ca_cert, "logged_in": tokens.by_profile.contains_key(name),
        })
    };
    let cols = [("", "mark"), ("NAME", "name"), ("URL", "url"), ("EMAIL", "email"), ("LOGGED IN", "logged_in")];
    match p {
        ProfileCmd::List => {
            let list: Vec<Value> = cfg
                .profiles
                .iter()
                .map(|(n, p)| {
                    let mut v = shown(n, p);
                    v["mark"] = json!(if v["current"] == true { "*" } else { "" });
                    v
                })
                .collect();
            view.list(&Value::Array(list), &cols);
        }
        ProfileCmd::Show { name } => {
            let name = name.clone().unwrap_or_else(|| profile_name(&cli.profile, &cfg));
            let p = cfg.profiles.get(&name).ok_or_else(|| Failure::Usage(format!("no profile '{name}'")))?;
            view.object(
                &shown(&name, p),
                &[
                    ("NAME", "name"),
                    ("URL", "url"),
                    ("EMAIL", "email"),
                    ("FINGERPRINT", "fingerprint"),
                    ("CA", "ca_cert"),
                    ("LOGGED IN", "logged_in"),
                ],
            );
        }
        ProfileCmd::Use { name } => {
            if !cfg.profiles.contains_key(name) {
                return Err(Failure::Usage(format!("no profile '{name}'")));
            }
            cfg.current = Some(name.clone());
            cfg.save()?;
        }
        ProfileCmd::Remove { name } => {
            if cfg.profiles.remove(name).is_none() {
                return Err(Failure::Usage(format!("no profile '{name}'")));
            }
            if cfg.current.as_deref() == Some(name) {
                cfg.current = None;
            }
            cfg.save()?;
            let mut tokens = Tokens::load()?;
            tokens.by_profile.remove(name);
            tokens.save()?;
        }
    }
    Ok(())
}

async fn fake(ctx: &Ctx, f: &FakeCmd) -> Result<(), Failure> {
    let v = match f {
        FakeCmd::State => ctx.api.get("/dci/v3/fake").await?,
        FakeCmd::Fault { device, op, times, transient, message } => {
            let mut b = json!({"device": device, "op": op, "transient": transient});
            if let Some(t) = times {
                b["times"] = json!(t);
            }
            if let Some(m) = message {
                b["message"] = json!(m);
            }
            ctx.api.post("/dci/v3/fake/fault", &b).await?
        }
        FakeCmd::Clear => ctx.api.call(Method::DELETE, "/dci/v3/fake/fault", None).await?,
        FakeCmd::Delay { ms } => ctx.api.post("/dci/v3/fake/delay", &json!({"ms": ms})).await?,
    };
    out!("{}", ctx.view_format.raw(&v));
    Ok(())
}

const TASK_COLUMNS: &[output::Column] = &[
    ("ID", "id"),
    ("SERVER", "server"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("PROGRESS", "progress"),
    ("CREATED", "created"),
    output::WIDE,
    ("STARTED", "started"),
    ("FINISHED", "finished"),
    ("INFO", "status_info.message"),
];

async fn tasks(ctx: &Ctx, t: &TaskCmd) -> Result<(), Failure> {
    match t {
        TaskCmd::List { r#where, limit } => {
            let mut q = vec![("orderby", "id desc".to_owned()), ("limit", limit.to_string())];
            if let Some(w) = r#where {
                q.push(("where", w.clone()));
            }
            let v = ctx.api.get(&query::with_query("/dci/v3/task", &q)).await?;
            ctx.view().list(&v, TASK_COLUMNS);
            Ok(())
        }
        TaskCmd::Show { id } => {
            let v = ctx.api.get(&format!("/dci/v3/task/{id}")).await?;
            ctx.view().object(&v, TASK_COLUMNS);
            if matches!(ctx.view_format, Format::Table | Format::Wide) {
                for s in v["progress_info"].as_array().into_iter().flatten() {
                    out!("  step {:<24} {}", s["name"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or(""));
                }
            }
            Ok(())
        }
        TaskCmd::Watch { ids, timeout } => servers::watch(ctx, ids, std::time::Duration::from_secs(*timeout)).await,
    }
}

/// A JSON body given as text or `@file`.
pub fn json_arg(d: &str) -> Result<Value, Failure> {
    let text = match d.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).map_err(|e| Failure::Usage(format!("{file}: {e}")))?,
        None => d.to_owned(),
    };
    serde_json::from_str::<Value>(&text).map_err(|e| Failure::Usage(format!("not JSON: {e}")))
}

async fn api_call(ctx: &Ctx, method: &str, path: &str, data: Option<&str>) -> Result<(), Failure> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Failure::Usage(format!("'{method}' is not an HTTP method")))?;
    if !path.starts_with('/') {
        return Err(Failure::Usage(format!("'{path}' must start with /")));
    }
    let body = data.map(json_arg).transpose()?;
    let v = ctx.api.call(method, path, body.as_ref()).await?;
    out!("{}", ctx.view_format.raw(&v));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        // 2030-01-01 is 21915 days after 1970-01-01.
        let days_to_2030 =
            21_915 - (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400);
        let t = super::time_in_days(days_to_2030);
        assert!(t.starts_with("2030-01-01 "), "{t}");
    }
}

#[cfg(test)]
mod help {
    /// Every command a person runs shows an example in its `--help`.
    #[test]
    fn every_command_has_an_example() {
        fn walk(c: &clap::Command, path: String, missing: &mut Vec<String>) {
            let leaves = c.get_subcommands().filter(|s| s.get_name() != "help").collect::<Vec<_>>();
            if leaves.is_empty() {
                let text = c.get_long_about().or(c.get_about()).map(|s| s.to_string()).unwrap_or_default()
                    + &c.get_after_help().map(|s| s.to_string()).unwrap_or_default();
                if !text.contains("Example: ") && !text.contains("Examples:") {
                    missing.push(path.clone());
                }
            }
            for s in leaves {
                walk(s, format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = vec![];
        walk(&super::command(), "dcimctl".into(), &mut missing);
        assert!(missing.is_empty(), "no example in the help of:\n{}", missing.join("\n"));
    }
}
