//! dcim's Prometheus metrics: one [`Metrics`] per process (per running server in
//! tests), shared by the drivers, the task engine and the HTTP layer, and encoded in the
//! Prometheus text format by `prometheus-client` at `GET /metrics`.
//!
//! Labels are bounded: route templates (never raw paths), operation and protocol names,
//! outcome kinds, states. Counts that live in the database (servers by state, addresses
//! per pool, tasks running and waiting) are read when scraped and set with
//! [`Metrics::set_snapshot`].
//!
//! This crate holds no I/O and knows nothing of HTTP or SQL.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: &'static str,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub operation: String,
    /// `complete`, `fail` or `canceled`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriverLabels {
    /// `ipmi`, `redfish`, `snmp`, `fake`, `netboot`.
    pub protocol: String,
    pub operation: String,
    /// `ok`, `timeout`, `refused`, `auth`, `unreachable`, `protocol`, `unsupported`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriverOpLabels {
    pub protocol: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    /// A background worker's name (`power_poller`, ...).
    pub worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollerLabels {
    /// `power` or `port`.
    pub poller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PowerLabels {
    pub power_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskStateLabels {
    /// `running` or `waiting`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    /// A remote site's name.
    pub site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

/// The database's counts at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub servers_by_state: Vec<(String, i64)>,
    pub servers_by_power: Vec<(String, i64)>,
    /// (pool name, used, total) of each pool.
    pub pools: Vec<(String, i64, i64)>,
    pub tasks_running: i64,
    pub tasks_waiting: i64,
    pub db_connections_in_use: i64,
    pub db_connections_idle: i64,
    /// (worker name, seconds behind its schedule) of each background worker.
    pub workers_behind: Vec<(String, f64)>,
    /// Each remote site: its name, whether it is connected, the unix time it last
    /// polled (0: never), and its calls not yet answered.
    pub sites: Vec<SiteStatus>,
    /// Rendered servers the server cache keeps, and their bytes.
    pub server_cache_entries: i64,
    pub server_cache_bytes: i64,
}

/// A remote site's link, as scraped.
#[derive(Debug, Default, Clone)]
pub struct SiteStatus {
    pub name: String,
    pub connected: bool,
    pub last_seen: i64,
    pub calls_in_flight: i64,
}

/// Every metric of a process.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: Family<RouteLabels, Histogram>,
    pub tasks_started: Family<OperationLabels, Counter>,
    pub tasks_finished: Family<OutcomeLabels, Counter>,
    pub task_duration: Family<OperationLabels, Histogram>,
    pub driver_calls: Family<DriverLabels, Counter>,
    pub driver_latency: Family<DriverOpLabels, Histogram>,
    pub poller_rounds: Family<PollerLabels, Counter>,
    pub poller_failures: Family<PollerLabels, Counter>,
    servers_by_state: Family<StateLabels, Gauge>,
    servers_by_power: Family<PowerLabels, Gauge>,
    pool_used: Family<PoolLabels, Gauge>,
    pool_total: Family<PoolLabels, Gauge>,
    tasks_now: Family<TaskStateLabels, Gauge>,
    db_in_use: Gauge,
    db_idle: Gauge,
    workers_behind: Family<WorkerLabels, Gauge<f64, AtomicU64>>,
    site_connected: Family<SiteLabels, Gauge>,
    site_last_seen: Family<SiteLabels, Gauge>,
    site_calls: Family<SiteLabels, Gauge>,
    /// `GET /dci/v3/server/{id}` answered from the server cache, and read from the
    /// database (a miss: not kept, or kept before a commit).
    pub server_cache_hits: Counter,
    pub server_cache_misses: Counter,
    server_cache_entries: Gauge,
    server_cache_bytes: Gauge,
    /// Scrapes encode one at a time (snapshot and encoding together).
    scrape: Mutex<()>,
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    // 0.5 ms to about 8 min.
    exponential_buckets(0.0005, 4.0, 11)
}

impl Metrics {
    /// A fresh set of metrics; `version` is the build's version, `start_time` the
    /// process's start in unix seconds.
    pub fn new(version: &str, start_time: i64) -> Metrics {
        let mut r = Registry::with_prefix("dcim");
        let http_requests = Family::<HttpLabels, Counter>::default();
        r.register("http_requests", "HTTP requests by route template, method and status class", http_requests.clone());
        let http_latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(seconds_buckets()));
        r.register_with_unit(
            "http_request_duration",
            "HTTP request latency by route template",
            Unit::Seconds,
            http_latency.clone(),
        );
        let tasks_started = Family::<OperationLabels, Counter>::default();
        r.register("tasks_started", "Tasks submitted, by operation", tasks_started.clone());
        let tasks_finished = Family::<OutcomeLabels, Counter>::default();
        r.register("tasks_finished", "Tasks ended, by operation and outcome", tasks_finished.clone());
        let task_duration =
            Family::<OperationLabels, Histogram>::new_with_constructor(|| Histogram::new(seconds_buckets()));
        r.register_with_unit(
            "task_duration",
            "Time from a task's submission to its end, by operation",
            Unit::Seconds,
            task_duration.clone(),
        );
        let driver_calls = Family::<DriverLabels, Counter>::default();
        r.register("driver_calls", "Device driver calls by protocol, operation and outcome", driver_calls.clone());
        let driver_latency =
            Family::<DriverOpLabels, Histogram>::new_with_constructor(|| Histogram::new(seconds_buckets()));
        r.register_with_unit(
            "driver_call_duration",
            "Device driver call latency by protocol and operation",
            Unit::Seconds,
            driver_latency.clone(),
        );
        let poller_rounds = Family::<PollerLabels, Counter>::default();
        r.register("poller_rounds", "Rounds of the power and port pollers", poller_rounds.clone());
        let poller_failures = Family::<PollerLabels, Counter>::default();
        r.register("poller_failures", "Devices a poller could not read in a round", poller_failures.clone());
        let servers_by_state = Family::<StateLabels, Gauge>::default();
        r.register("servers", "Servers by state", servers_by_state.clone());
        let servers_by_power = Family::<PowerLabels, Gauge>::default();
        r.register("servers_power", "Servers by power status", servers_by_power.clone());
        let pool_used = Family::<PoolLabels, Gauge>::default();
        r.register("ip_pool_used", "Addresses in use per IP pool", pool_used.clone());
        let pool_total = Family::<PoolLabels, Gauge>::default();
        r.register("ip_pool_total", "Addresses a pool can give out (capped at 2^63)", pool_total.clone());
        let tasks_now = Family::<TaskStateLabels, Gauge>::default();
        r.register("tasks_now", "Tasks running and waiting now", tasks_now.clone());
        let db_in_use = Gauge::default();
        r.register("db_connections_in_use", "Database pool connections in use", db_in_use.clone());
        let db_idle = Gauge::default();
        r.register("db_connections_idle", "Database pool connections idle", db_idle.clone());
        let workers_behind = Family::<WorkerLabels, Gauge<f64, AtomicU64>>::default();
        r.register_with_unit(
            "worker_behind",
            "How much longer than its interval a background worker's last round took (0: on schedule)",
            Unit::Seconds,
            workers_behind.clone(),
        );
        let site_connected = Family::<SiteLabels, Gauge>::default();
        r.register("site_connected", "1 while a remote site polls its link, else 0", site_connected.clone());
        let site_last_seen = Family::<SiteLabels, Gauge>::default();
        r.register_with_unit(
            "site_last_seen",
            "When a remote site last polled, unix (0: never)",
            Unit::Seconds,
            site_last_seen.clone(),
        );
        let site_calls = Family::<SiteLabels, Gauge>::default();
        r.register("site_calls_in_flight", "Calls waiting for a remote site or taken by it", site_calls.clone());
        let server_cache_hits = Counter::default();
        r.register(
            "server_cache_hits",
            "Reads of one server answered from the server cache",
            server_cache_hits.clone(),
        );
        let server_cache_misses = Counter::default();
        r.register(
            "server_cache_misses",
            "Reads of one server the server cache could not answer (read from the database)",
            server_cache_misses.clone(),
        );
        let server_cache_entries = Gauge::default();
        r.register("server_cache_entries", "Rendered servers the server cache keeps", server_cache_entries.clone());
        let server_cache_bytes = Gauge::default();
        r.register_with_unit(
            "server_cache_size",
            "Bytes the server cache keeps: its compressed answers and the dictionary they share",
            Unit::Bytes,
            server_cache_bytes.clone(),
        );
        let start = Gauge::<i64>::default();
        start.set(start_time);
        r.register_with_unit("process_start_time", "Start time of the process, unix", Unit::Seconds, start);
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: version.to_owned() }).set(1);
        r.register("build_info", "The build's version", build);
        Metrics {
            registry: r,
            http_requests,
            http_latency,
            tasks_started,
            tasks_finished,
            task_duration,
            driver_calls,
            driver_latency,
            poller_rounds,
            poller_failures,
            servers_by_state,
            servers_by_power,
            pool_used,
            pool_total,
            tasks_now,
            db_in_use,
            db_idle,
            workers_behind,
            site_connected,
            site_last_seen,
            site_calls,
            server_cache_hits,
            server_cache_misses,
            server_cache_entries,
            server_cache_bytes,
            scrape: Mutex::new(()),
        }
    }

    /// Counts one HTTP answer (`route` a route template, `method` a method's name or
    /// `other`). The route's one copy serves both label sets: this runs at every
    /// request.
    pub fn http(&self, route: String, method: &'static str, status: u16, seconds: f64) {
        let status = match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        let labels = HttpLabels { route, method, status };
        self.http_requests.get_or_create(&labels).inc();
        self.http_latency.get_or_create(&RouteLabels { route: labels.route }).observe(seconds);
    }

    pub fn task_started(&self, operation: &str) {
        self.tasks_started.get_or_create(&OperationLabels { operation: operation.to_owned() }).inc();
    }

    pub fn task_finished(&self, operation: &str, outcome: &str, seconds: f64) {
        self.tasks_finished
            .get_or_create(&OutcomeLabels { operation: operation.to_owned(), outcome: outcome.to_owned() })
            .inc();
        self.task_duration.get_or_create(&OperationLabels { operation: operation.to_owned() }).observe(seconds);
    }

    pub fn driver_call(&self, protocol: &str, operation: &str, outcome: &str, seconds: f64) {
        self.driver_calls
            .get_or_create(&DriverLabels {
                protocol: protocol.to_owned(),
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.driver_latency
            .get_or_create(&DriverOpLabels { protocol: protocol.to_owned(), operation: operation.to_owned() })
            .observe(seconds);
    }

    /// One poller round and the devices it could not read.
    pub fn poller_round(&self, poller: &str, failures: u64) {
        let l = PollerLabels { poller: poller.to_owned() };
        self.poller_rounds.get_or_create(&l).inc();
        self.poller_failures.get_or_create(&l).inc_by(failures);
    }

    /// Sets the database's counts and encodes every metric in the Prometheus text
    /// format.
    pub fn encode_with(&self, snap: &Snapshot) -> Result<String, std::fmt::Error> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.servers_by_state.clear();
        for (state, n) in &snap.servers_by_state {
            self.servers_by_state.get_or_create(&StateLabels { state: state.clone() }).set(*n);
        }
        self.servers_by_power.clear();
        for (p, n) in &snap.servers_by_power {
            self.servers_by_power.get_or_create(&PowerLabels { power_status: p.clone() }).set(*n);
        }
        self.pool_used.clear();
        self.pool_total.clear();
        for (pool, used, total) in &snap.pools {
            self.pool_used.get_or_create(&PoolLabels { pool: pool.clone() }).set(*used);
            self.pool_total.get_or_create(&PoolLabels { pool: pool.clone() }).set(*total);
        }
        self.tasks_now.get_or_create(&TaskStateLabels { state: "running".into() }).set(snap.tasks_running);
        self.tasks_now.get_or_create(&TaskStateLabels { state: "waiting".into() }).set(snap.tasks_waiting);
        self.db_in_use.set(snap.db_connections_in_use);
        self.db_idle.set(snap.db_connections_idle);
        self.workers_behind.clear();
        for (worker, behind) in &snap.workers_behind {
            self.workers_behind.get_or_create(&WorkerLabels { worker: worker.clone() }).set(*behind);
        }
        self.site_connected.clear();
        self.site_last_seen.clear();
        self.site_calls.clear();
        for s in &snap.sites {
            let l = SiteLabels { site: s.name.clone() };
            self.site_connected.get_or_create(&l).set(i64::from(s.connected));
            self.site_last_seen.get_or_create(&l).set(s.last_seen);
            self.site_calls.get_or_create(&l).set(s.calls_in_flight);
        }
        self.server_cache_entries.set(snap.server_cache_entries);
        self.server_cache_bytes.set(snap.server_cache_bytes);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_encodes() {
        let m = Metrics::new("0.1.0", 1_700_000_000);
        m.http("/dci/v3/server/{id}".into(), "GET", 200, 0.001);
        m.task_started("power_on");
        m.task_finished("power_on", "complete", 0.2);
        m.driver_call("fake", "on", "ok", 0.01);
        m.poller_round("power", 2);
        let snap = Snapshot {
            servers_by_state: vec![("ok".into(), 3)],
            pools: vec![("public".into(), 1, 10)],
            workers_behind: vec![("power_poller".into(), 1.5)],
            ..Snapshot::default()
        };
        let text = m.encode_with(&snap).unwrap();
        for line in [
            r#"dcim_http_requests_total{route="/dci/v3/server/{id}",method="GET",status="2xx"} 1"#,
            r#"dcim_tasks_finished_total{operation="power_on",outcome="complete"} 1"#,
            r#"dcim_driver_calls_total{protocol="fake",operation="on",outcome="ok"} 1"#,
            r#"dcim_poller_failures_total{poller="power"} 2"#,
            r#"dcim_servers{state="ok"} 3"#,
            r#"dcim_ip_pool_total{pool="public"} 10"#,
            r#"dcim_build_info{version="0.1.0"} 1"#,
            r#"dcim_worker_behind_seconds{worker="power_poller"} 1.5"#,
            "dcim_process_start_time_seconds 1700000000",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
