//! Typed, layered configuration: defaults < TOML file (`--config` or
//! `DCIM_CONFIG`) < `DCIM_*` environment < command-line flags. Secrets may come
//! from files (`DCIM_ADMIN_PASSWORD_FILE`) and are never logged: [`Config`]'s
//! `Debug` hides them.

use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// Where the SQLite database, the demo certificate and demo credentials live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; SQLite under `data_dir` when unset.
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP even in demo mode.
    pub no_tls: bool,
    /// Start with the demo data center on the fake drivers.
    pub demo: bool,
    /// `tracing` filter, e.g. `info` or `dcim=debug,tower_http=debug`.
    pub log: String,
    /// `text` (for people) or `json` (one JSON object per line, for log collectors).
    pub log_format: String,
    pub session_idle_secs: i64,
    /// Seconds a checked session is trusted before the database is asked again. By
    /// default 5 on SQLite, where one process serves the database and a logout, block or
    /// password change in it drops its cached sessions at once; 0 on PostgreSQL, where
    /// another process may end a session, so every request asks the database and no
    /// process honours an ended session.
    pub session_cache_secs: Option<u64>,
    /// MiB of rendered servers kept for `GET /dci/v3/server/{id}` (each is served
    /// while no commit has become visible since it was read); 0 turns the cache off.
    pub server_cache_mib: usize,
    pub min_password_len: usize,
    /// Largest request body, in bytes (64 KiB), but for an agent's report, a server's
    /// hardware and an OS template, which may take `large_body_limit` (4 MiB).
    pub body_limit: usize,
    pub large_body_limit: usize,
    /// Tasks this process runs at once (tasks waiting on a device or an agent do not count).
    pub task_workers: usize,
    /// Seconds a worker's claim on a task lasts unrenewed; a dead process's tasks resume after it.
    pub task_lease_secs: u64,
    /// How often an idle process looks for tasks, in milliseconds.
    pub task_poll_ms: u64,
    /// Tries of a step that fails transiently (device unreachable or slow).
    pub task_max_attempts: i64,
    /// First retry delay in milliseconds; doubles each attempt.
    pub task_backoff_ms: u64,
    /// Longest a single device call may take, in milliseconds.
    pub device_timeout_ms: u64,
    /// How long the power state may take to follow a command.
    pub power_timeout_secs: u64,
    /// How long to wait for an in-band agent's report.
    pub agent_timeout_secs: u64,
    /// Base URL agents report to (`.../agent/v1/task`); this server's own by default.
    pub agent_callback_url: Option<String>,
    /// Seconds between two polls of every BMC's power state; 0 turns polling off.
    pub power_poll_secs: u64,
    /// BMCs polled at once (64: 100,000 BMCs answering in 20 ms each took 35 s of the
    /// default 60 s interval in the bench; 32 took 68 s and fell behind).
    pub power_poll_concurrency: usize,
    /// Seconds between two reads of every SNMP switch's port and PDU's outlet states; 0 turns it off.
    pub port_poll_secs: u64,
    /// SNMP: milliseconds one request waits for its answer.
    pub snmp_timeout_ms: u64,
    /// SNMP: times a request is sent again after a timeout.
    pub snmp_retries: u32,
    /// IPMI: milliseconds one datagram waits for its answer before it is sent again.
    pub ipmi_retry_ms: u64,
    /// IPMI: tries of each datagram (a lost one is sent again).
    pub ipmi_attempts: u32,
    /// Redfish: longest HTTP request to a BMC, in milliseconds.
    pub redfish_timeout_ms: u64,
    /// Check the HTTPS certificate of a BMC without a pinned `tls_fingerprint` against
    /// the trusted CAs (on by default; BMCs nearly always carry self-signed
    /// certificates, which are pinned one by one).
    pub bmc_tls_verify: bool,
    /// The BMC user diagnostics with `setup_ipmi` create (or take over) for dcim, with a
    /// new random password each time; at most 16 bytes.
    pub bmc_user: String,
    /// The netboot service of the provisioning segment (DHCP, TFTP, router
    /// advertisement, iPXE scripts and boot files): `[netboot]` in the configuration
    /// file, see `dcim_netboot::NetbootConfig`. Real machines cannot boot the agent without it.
    pub netboot: Option<dcim_netboot::NetbootConfig>,
    /// With `netboot`: the plain-HTTP listener on the provisioning segment, `host:port`,
    /// that serves the boot files and takes the agents' reports; `netboot.http_base`
    /// must name it.
    pub netboot_listen: Option<String>,
    /// More provisioning segments, each with its own listener and the locations it
    /// serves (`[[netboot_segments]]`, see [`NetbootSegment`]); `netboot` above, if set, is
    /// the segment of every location these do not name.
    pub netboot_segments: Vec<NetbootSegment>,
    /// The fake lab's drivers (BMC type and device protocol `fake`) and its
    /// `/dci/v3/fake*` routes, for tests and benchmarks; the demo has them on. Off in a
    /// production server: no fake device can be driven and the routes do not exist.
    pub fake_drivers: bool,
    /// Delay of every fake device call, in milliseconds (demos, tests, benchmarks).
    pub fake_delay_ms: u64,
    /// Every call of the fake lab that reaches a device is appended to this file
    /// (`OP DEVICE` lines): what tests of several processes count.
    pub fake_call_log: Option<PathBuf>,
    /// A remote site that has not polled for this many seconds is not connected: calls
    /// for its locations fail at once, saying since when.
    pub site_stale_secs: u64,
    /// Run every task step twice (a test of step idempotency).
    pub task_repeat_steps: bool,
    /// With `admin_password`: an admin created at start if no user has this e-mail.
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub admin_password_file: Option<PathBuf>,
    /// A bearer token that may read `/metrics` (what Prometheus is given); an admin's
    /// session may always. Never logged.
    pub metrics_token: Option<String>,
    /// A second, plain-HTTP listener for Prometheus (`host:port`): `/metrics` (open
    /// there unless `metrics_token` is set), `/ready` and `/health`, nothing else.
    pub metrics_listen: Option<String>,
    /// Audit records older than this many days are removed (hourly); 0 keeps them.
    pub audit_retention_days: u32,
    /// Webhook deliveries: how often to look for due ones, one attempt's limit, the first
    /// retry's delay (doubling up to `webhook_backoff_max_secs`), when to give up, and
    /// how many are sent at once.
    pub webhook_poll_ms: u64,
    pub webhook_timeout_ms: u64,
    pub webhook_backoff_ms: u64,
    pub webhook_backoff_max_secs: u64,
    pub webhook_retry_secs: u64,
    pub webhook_concurrency: u32,
    /// Let webhooks post to link-local addresses and to dcim itself (refused by default).
    pub webhook_allow_unsafe_targets: bool,
    /// The key that seals BMC passwords, SNMP access data, webhook and TOTP secrets in
    /// the database (64 hexadecimal digits, `DCIM_SECRET_KEY`). Never logged. Without
    /// it, `secret_key_file`.
    pub secret_key: Option<String>,
    /// The file of that key; `DATA_DIR/secret.key` by default, made (mode 0600) at the
    /// first start. Every dcim of one database needs the same key.
    pub secret_key_file: Option<PathBuf>,
    /// Requests per second one token may make on average (0: no limit), and in a burst;
    /// past them a 429 with `Retry-After`. Counted in each process.
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// Connections served at once; one more is closed when it is accepted.
    pub max_connections: usize,
    /// Seconds a client has to send a request's head (each request's on a kept-alive
    /// connection too) before the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Reverse proxies (addresses or networks, `10.0.0.0/8`) whose `X-Forwarded-For`
    /// names the client for throttling and the audit trail; none by default.
    pub trusted_proxies: Vec<String>,
}

/// One provisioning segment of `netboot_segments`: the netboot service's settings
/// (`interface`, `server_ip`, `mode`, `http_base`...), the plain-HTTP listener
/// `http_base` names, and the ids of the locations whose servers boot there (none: every
/// location no other segment names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetbootSegment {
    pub listen: String,
    #[serde(default)]
    pub locations: Vec<i64>,
    #[serde(flatten)]
    pub netboot: dcim_netboot::NetbootConfig,
}

impl Default for Config {
    fn default() -> Self {
        let api = dcim_api::ApiConfig::default();
        let engine = dcim_tasks::EngineConfig::default();
        let drivers = dcim_drivers::DriverSettings::default();
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("dcim-data"),
            database_url: None,
            tls_cert: None,
            tls_key: None,
            no_tls: false,
            demo: false,
            log: "info".into(),
            log_format: "text".into(),
            session_idle_secs: api.session_idle_secs,
            session_cache_secs: None,
            server_cache_mib: 64,
            min_password_len: api.min_password_len,
            body_limit: api.body_limit,
            large_body_limit: api.large_body_limit,
            task_workers: engine.workers,
            task_lease_secs: engine.lease.as_secs(),
            task_poll_ms: engine.poll.as_millis() as u64,
            task_max_attempts: engine.max_attempts,
            task_backoff_ms: engine.backoff.as_millis() as u64,
            device_timeout_ms: engine.call_timeout.as_millis() as u64,
            power_timeout_secs: engine.power_timeout.as_secs(),
            agent_timeout_secs: engine.agent_timeout.as_secs(),
            agent_callback_url: None,
            site_stale_secs: engine.site_stale.as_secs(),
            fake_call_log: None,
            power_poll_secs: 60,
            power_poll_concurrency: 64,
            port_poll_secs: 60,
            snmp_timeout_ms: drivers.snmp.timeout.as_millis() as u64,
            snmp_retries: drivers.snmp.retries,
            ipmi_retry_ms: drivers.ipmi.attempt.as_millis() as u64,
            ipmi_attempts: drivers.ipmi.attempts,
            redfish_timeout_ms: drivers.redfish_timeout.as_millis() as u64,
            bmc_tls_verify: drivers.bmc_tls_verify,
            bmc_user: engine.bmc_user.clone(),
            netboot: None,
            netboot_listen: None,
            netboot_segments: vec![],
            fake_drivers: false,
            fake_delay_ms: 0,
            task_repeat_steps: false,
            admin_email: None,
            admin_password: None,
            admin_password_file: None,
            metrics_token: None,
            metrics_listen: None,
            audit_retention_days: 365,
            webhook_poll_ms: 1000,
            webhook_timeout_ms: 10_000,
            webhook_backoff_ms: 1000,
            webhook_backoff_max_secs: 600,
            webhook_retry_secs: 86_400,
            webhook_concurrency: 16,
            webhook_allow_unsafe_targets: false,
            secret_key: None,
            secret_key_file: None,
            trusted_proxies: vec![],
            max_connections: 4096,
            rate_limit_per_sec: api.rate_limit_per_sec,
            rate_limit_burst: api.rate_limit_burst,
            header_read_timeout_secs: 30,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(dcim_store::redact_url))
            .field("tls_cert", &self.tls_cert)
            .field("demo", &self.demo)
            .field("fake_drivers", &self.fake_drivers)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &self.admin_password.as_ref().map(|_| "***"))
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("secret_key_file", &self.secret_key_file)
            .finish_non_exhaustive()
    }
}

/// Flags given on the command line; only those set override the layers below.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fake_drivers: Option<bool>,
}

/// A trusted proxy: a network, or one address.
fn proxy_net(p: &str) -> anyhow::Result<ipnet::IpNet> {
    p.parse::<ipnet::IpNet>()
        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| anyhow::anyhow!("configuration: trusted_proxies: '{p}' is not an address or a network"))
}

/// The configuration file's sections per concern, and the flat key each of their keys
/// stands for: `[engine] workers = 8` is `task_workers = 8`. The flat names (and the
/// `DCIM_*` variables, which are flat) are still accepted; one setting given both ways
/// is refused. `[netboot]` and `[[netboot_segments]]` are the netboot service's own.
const SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "engine",
        &[
            ("workers", "task_workers"),
            ("lease_secs", "task_lease_secs"),
            ("poll_ms", "task_poll_ms"),
            ("max_attempts", "task_max_attempts"),
            ("backoff_ms", "task_backoff_ms"),
            ("power_timeout_secs", "power_timeout_secs"),
            ("agent_timeout_secs", "agent_timeout_secs"),
            ("agent_callback_url", "agent_callback_url"),
            ("repeat_steps", "task_repeat_steps"),
            ("site_stale_secs", "site_stale_secs"),
        ],
    ),
    (
        "devices",
        &[
            ("timeout_ms", "device_timeout_ms"),
            ("snmp_timeout_ms", "snmp_timeout_ms"),
            ("snmp_retries", "snmp_retries"),
            ("ipmi_retry_ms", "ipmi_retry_ms"),
            ("ipmi_attempts", "ipmi_attempts"),
            ("redfish_timeout_ms", "redfish_timeout_ms"),
            ("bmc_tls_verify", "bmc_tls_verify"),
            ("bmc_user", "bmc_user"),
            ("fake", "fake_drivers"),
            ("fake_delay_ms", "fake_delay_ms"),
            ("fake_call_log", "fake_call_log"),
        ],
    ),
    (
        "pollers",
        &[
            ("power_secs", "power_poll_secs"),
            ("power_concurrency", "power_poll_concurrency"),
            ("port_secs", "port_poll_secs"),
        ],
    ),
    (
        "http",
        &[
            ("listen", "listen"),
            ("tls_cert", "tls_cert"),
            ("tls_key", "tls_key"),
            ("no_tls", "no_tls"),
            ("body_limit", "body_limit"),
            ("large_body_limit", "large_body_limit"),
            ("max_connections", "max_connections"),
            ("header_read_timeout_secs", "header_read_timeout_secs"),
            ("trusted_proxies", "trusted_proxies"),
            ("rate_limit_per_sec", "rate_limit_per_sec"),
            ("rate_limit_burst", "rate_limit_burst"),
            ("server_cache_mib", "server_cache_mib"),
        ],
    ),
    (
        "auth",
        &[
            ("session_idle_secs", "session_idle_secs"),
            ("session_cache_secs", "session_cache_secs"),
            ("min_password_len", "min_password_len"),
            ("admin_email", "admin_email"),
            ("admin_password", "admin_password"),
            ("admin_password_file", "admin_password_file"),
        ],
    ),
    (
        "webhooks",
        &[
            ("poll_ms", "webhook_poll_ms"),
            ("timeout_ms", "webhook_timeout_ms"),
            ("backoff_ms", "webhook_backoff_ms"),
            ("backoff_max_secs", "webhook_backoff_max_secs"),
            ("retry_secs", "webhook_retry_secs"),
            ("concurrency", "webhook_concurrency"),
            ("allow_unsafe_targets", "webhook_allow_unsafe_targets"),
        ],
    ),
    ("audit", &[("retention_days", "audit_retention_days")]),
    ("metrics", &[("token", "metrics_token"), ("listen", "metrics_listen")]),
    ("log", &[("filter", "log"), ("format", "log_format")]),
];

/// The file's table with its sections per concern turned into the flat keys.
fn flatten_sections(mut table: figment::value::Dict) -> anyhow::Result<figment::value::Dict> {
    for (section, keys) in SECTIONS {
        // `log` is also a flat key (the filter): only its table form is a section.
        let Some(figment::value::Value::Dict(_, _)) = table.get(*section) else { continue };
        let Some(figment::value::Value::Dict(_, inner)) = table.remove(*section) else { continue };
        for (key, value) in inner {
            let Some((_, flat)) = keys.iter().find(|(k, _)| *k == key) else {
                let known: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                anyhow::bail!("configuration: [{section}] has no setting '{key}' (it has {})", known.join(", "));
            };
            anyhow::ensure!(
                !table.contains_key(*flat),
                "configuration: {flat} is set twice, as [{section}] {key} and as {flat}; keep one"
            );
            table.insert((*flat).to_owned(), value);
        }
    }
    Ok(table)
}

impl Config {
    /// Reads the layers. `file` is the `--config` flag.
    pub fn load(file: Option<PathBuf>, flags: &Overrides) -> anyhow::Result<Config> {
        let file = file.or_else(|| std::env::var_os("DCIM_CONFIG").map(PathBuf::from));
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            anyhow::ensure!(path.exists(), "configuration file {} does not exist", path.display());
            let table: figment::value::Dict = Figment::from(Toml::file(path))
                .extract()
                .map_err(|e| anyhow::anyhow!("configuration file {}: {e}", path.display()))?;
            fig = fig.merge(Serialized::defaults(flatten_sections(table)?));
        }
        let mut cfg: Config = fig
            .merge(Env::prefixed("DCIM_").ignore(&["config"]))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        if let Some(path) = &cfg.admin_password_file {
            let pw = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading admin_password_file {}: {e}", path.display()))?;
            cfg.admin_password = Some(pw.trim_end_matches(['\r', '\n']).to_owned());
        }
        anyhow::ensure!(
            !cfg.bmc_user.is_empty() && cfg.bmc_user.len() <= 16 && cfg.bmc_user.bytes().all(|b| b.is_ascii_graphic()),
            "configuration: bmc_user must be 1 to 16 printable ASCII characters without spaces"
        );
        for p in &cfg.trusted_proxies {
            proxy_net(p)?;
        }
        anyhow::ensure!(
            matches!(cfg.log_format.as_str(), "text" | "json"),
            "configuration: log_format must be text or json, not '{}'",
            cfg.log_format
        );
        Ok(cfg)
    }

    /// Where the secret key is kept when it is not given in `secret_key`.
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file.clone().unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("dcim.db").display()),
        }
    }

    pub fn webhooks(&self) -> crate::webhooks::WorkerConfig {
        crate::webhooks::WorkerConfig {
            poll: Duration::from_millis(self.webhook_poll_ms.max(10)),
            timeout: Duration::from_millis(self.webhook_timeout_ms.max(100)),
            backoff: Duration::from_millis(self.webhook_backoff_ms.max(10)),
            backoff_max: Duration::from_secs(self.webhook_backoff_max_secs.max(1)),
            retry_for: Duration::from_secs(self.webhook_retry_secs),
            concurrency: i64::from(self.webhook_concurrency.max(1)),
        }
    }

    pub fn api(&self) -> dcim_api::ApiConfig {
        dcim_api::ApiConfig {
            session_idle_secs: self.session_idle_secs,
            session_cache: std::time::Duration::from_secs(
                self.session_cache_secs.unwrap_or(if self.database_url().starts_with("sqlite:") { 5 } else { 0 }),
            ),
            server_cache_bytes: self.server_cache_mib.saturating_mul(1 << 20),
            min_password_len: self.min_password_len,
            body_limit: self.body_limit,
            large_body_limit: self.large_body_limit,
            secure_cookies: self.tls_enabled(),
            images_dir: Some(self.data_dir.join("images")),
            metrics_token: self.metrics_token.clone().filter(|t| !t.is_empty()),
            trusted_proxies: self.trusted_proxies.iter().filter_map(|p| proxy_net(p).ok()).collect(),
            hsts: self.tls_enabled(),
            rate_limit_per_sec: self.rate_limit_per_sec,
            rate_limit_burst: self.rate_limit_burst,
            ..dcim_api::ApiConfig::default()
        }
    }

    /// The task engine's settings; `base_url` is this server's own address.
    pub fn engine(&self, base_url: &str) -> dcim_tasks::EngineConfig {
        use std::time::Duration;
        dcim_tasks::EngineConfig {
            workers: self.task_workers.max(1),
            lease: Duration::from_secs(self.task_lease_secs.max(1)),
            poll: Duration::from_millis(self.task_poll_ms.max(10)),
            call_timeout: Duration::from_millis(self.device_timeout_ms.max(1)),
            max_attempts: self.task_max_attempts.max(1),
            backoff: Duration::from_millis(self.task_backoff_ms),
            power_timeout: Duration::from_secs(self.power_timeout_secs),
            agent_timeout: Duration::from_secs(self.agent_timeout_secs),
            max_recoveries: dcim_tasks::EngineConfig::default().max_recoveries,
            agent_callback: self.agent_callback_url.clone().unwrap_or_else(|| format!("{base_url}/agent/v1/task")),
            repeat_steps: self.task_repeat_steps,
            bmc_user: self.bmc_user.clone(),
            site_stale: Duration::from_secs(self.site_stale_secs.max(2)),
        }
    }

    /// How drivers talk to real devices.
    pub fn drivers(&self) -> dcim_drivers::DriverSettings {
        use std::time::Duration;
        dcim_drivers::DriverSettings {
            ipmi: dcim_drivers::ipmi::Timing {
                attempt: Duration::from_millis(self.ipmi_retry_ms.max(1)),
                attempts: self.ipmi_attempts.max(1),
            },
            redfish_timeout: Duration::from_millis(self.redfish_timeout_ms.max(1)),
            bmc_tls_verify: self.bmc_tls_verify,
            snmp: dcim_drivers::snmp::SnmpSettings {
                timeout: Duration::from_millis(self.snmp_timeout_ms.max(1)),
                retries: self.snmp_retries,
                ..Default::default()
            },
        }
    }

    /// Whether the fake lab's drivers and routes are on: asked for, or the demo.
    /// The fake lab, where it is asked for, logging its calls when `fake_call_log` says.
    pub fn fake_lab(&self) -> anyhow::Result<Option<std::sync::Arc<dcim_drivers::fake::FakeLab>>> {
        if !self.fake_enabled() {
            return Ok(None);
        }
        let lab = dcim_drivers::fake::FakeLab::new(std::time::Duration::from_millis(self.fake_delay_ms));
        if let Some(path) = &self.fake_call_log {
            lab.log_calls_to(path).map_err(|e| anyhow::anyhow!("fake_call_log {}: {e}", path.display()))?;
        }
        Ok(Some(lab))
    }

    pub fn fake_enabled(&self) -> bool {
        self.fake_drivers || self.demo
    }

    /// HTTPS when a certificate is given, or in demo mode unless `no_tls`.
    pub fn tls_enabled(&self) -> bool {
        !self.no_tls && (self.tls_cert.is_some() || self.demo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail's closure returns figment's own error type")]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("dcim.toml", "listen = \"127.0.0.1:1\"\nlog = \"debug\"\nsession_idle_secs = 10")?;
            jail.set_env("DCIM_LISTEN", "127.0.0.1:2");
            jail.set_env("DCIM_SESSION_IDLE_SECS", "20");
            jail.create_file("pw", "s3cret-pass\n")?;
            jail.set_env("DCIM_ADMIN_PASSWORD_FILE", "pw");
            let flags = Overrides { listen: Some("127.0.0.1:3".into()), ..Overrides::default() };
            let cfg = Config::load(Some("dcim.toml".into()), &flags).expect("loads");
            assert_eq!(cfg.listen, "127.0.0.1:3", "flag beats env");
            assert_eq!(cfg.session_idle_secs, 20, "env beats file");
            assert_eq!(cfg.log, "debug", "file beats default");
            assert_eq!(cfg.admin_password.as_deref(), Some("s3cret-pass"));
            assert!(!format!("{cfg:?}").contains("s3cret"), "Debug hides secrets");
            assert_eq!(cfg.database_url(), "sqlite://dcim-data/dcim.db");
            Ok(())
        });
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail's closure returns figment's own error type")]
    fn sections_per_concern_and_flat_names() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dcim.toml",
                r#"
data_dir = "/var/lib/dcim"
task_poll_ms = 40

[engine]
workers = 12
lease_secs = 45

[devices]
timeout_ms = 9000
snmp_retries = 4

[pollers]
power_secs = 30

[http]
listen = "0.0.0.0:8443"
trusted_proxies = ["10.0.0.0/8"]

[webhooks]
concurrency = 3

[audit]
retention_days = 90

[log]
filter = "dcim=debug"
format = "json"
"#,
            )?;
            jail.set_env("DCIM_TASK_LEASE_SECS", "50");
            let cfg = Config::load(Some("dcim.toml".into()), &Overrides::default()).expect("loads");
            assert_eq!((cfg.task_workers, cfg.task_poll_ms), (12, 40), "a section and a flat key side by side");
            assert_eq!(cfg.task_lease_secs, 50, "the flat DCIM_ variable beats the file's section");
            assert_eq!((cfg.device_timeout_ms, cfg.snmp_retries, cfg.power_poll_secs), (9000, 4, 30));
            assert_eq!((cfg.listen.as_str(), cfg.trusted_proxies.len()), ("0.0.0.0:8443", 1));
            assert_eq!((cfg.webhook_concurrency, cfg.audit_retention_days), (3, 90));
            assert_eq!((cfg.log.as_str(), cfg.log_format.as_str()), ("dcim=debug", "json"));
            assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/dcim"));
            // A flat `log` is still the filter.
            jail.create_file("flat.toml", "log = \"warn\"\ntask_workers = 3")?;
            let cfg = Config::load(Some("flat.toml".into()), &Overrides::default()).expect("loads");
            assert_eq!((cfg.log.as_str(), cfg.task_workers), ("warn", 3));
            // A key a section does not have, and one setting given twice, are refused.
            jail.create_file("typo.toml", "[engine]\nworkerz = 3")?;
            let e = Config::load(Some("typo.toml".into()), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("[engine] has no setting 'workerz'") && e.contains("workers"), "{e}");
            jail.create_file("twice.toml", "task_workers = 3\n[engine]\nworkers = 4")?;
            let e = Config::load(Some("twice.toml".into()), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("task_workers is set twice"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail's closure returns figment's own error type")]
    fn netboot_segments_read_from_toml() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dcim.toml",
                r#"
[[netboot_segments]]
listen = "10.1.0.1:8081"
locations = [1, 2]
interface = "prov-a"
server_ip = "10.1.0.1"
mode = "full"
first = "10.1.0.100"
last = "10.1.0.199"
prefix_len = 24
http_base = "http://10.1.0.1:8081"
boot_files_dir = "/srv/dcim/boot"

[[netboot_segments]]
listen = "10.2.0.1:8081"
interface = "prov-b"
server_ip = "10.2.0.1"
mode = "proxy"
http_base = "http://10.2.0.1:8081"
boot_files_dir = "/srv/dcim/boot"
"#,
            )?;
            let cfg = Config::load(Some("dcim.toml".into()), &Overrides::default()).expect("loads");
            assert_eq!(cfg.netboot_segments.len(), 2);
            assert_eq!(cfg.netboot_segments[0].locations, [1, 2]);
            assert_eq!(cfg.netboot_segments[0].netboot.interface, "prov-a");
            assert!(matches!(cfg.netboot_segments[0].netboot.dhcp, dcim_netboot::DhcpMode::Full { .. }));
            assert!(cfg.netboot_segments[1].locations.is_empty());
            assert!(matches!(cfg.netboot_segments[1].netboot.dhcp, dcim_netboot::DhcpMode::Proxy));
            Ok(())
        });
    }
}
