//! Test harness: a real dcim server on 127.0.0.1 port 0, on a fresh SQLite file or
//! a fresh PostgreSQL schema, and a client that talks to it over HTTP.
//!
//! PostgreSQL comes from `DCIM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); a test on it fails, never skips, when
//! the database is not there.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

pub mod lab;
pub mod seedcalls;
pub mod sims;
pub mod snmpsim;
pub mod totp;
pub mod ui;
pub mod vdc;

use std::time::Duration;

use dcim::Config;
use dcim::serve::Running;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

pub const ADMIN_EMAIL: &str = "admin@test.example";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Generates `mod NAME { sqlite(), postgres() }` running `NAME(Db)` on each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::common::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::common::Db::Postgres).await
            }
        }
    )+};
}

pub fn postgres_base_url() -> String {
    std::env::var("DCIM_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty PostgreSQL schema and the URL that selects it.
pub async fn fresh_postgres_schema() -> (String, String) {
    let base = postgres_base_url();
    let schema = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed for this test: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    (schema.clone(), format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

pub async fn drop_postgres_schema(schema: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_base_url()).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut conn).await;
    }
}

/// A running server with an admin account and a client.
pub struct TestServer {
    pub base: String,
    pub db: Db,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub running: Option<Running>,
    pub dir: tempdir::Dir,
    pub schema: Option<String>,
    pub cfg: Config,
}

pub mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!("dcim-test-{}", hex::encode(rand::random::<[u8; 8]>())));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A client that opens a new connection for every request, for requests the server
/// may answer without reading them whole (and then close).
pub fn client_without_pool() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a server; `tune` may change the configuration first.
    pub async fn start_with(db: Db, tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempdir::Dir::new();
        let (schema, database_url) = match db {
            Db::Sqlite => (None, None),
            Db::Postgres => {
                let (s, u) = fresh_postgres_schema().await;
                (Some(s), Some(u))
            }
        };
        let mut cfg = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.0.clone(),
            database_url,
            log: "warn".into(),
            admin_email: Some(ADMIN_EMAIL.into()),
            admin_password: Some(ADMIN_PASSWORD.into()),
            // The tests drive the fake lab (and the simulators, which are real devices).
            fake_drivers: true,
            ..Config::default()
        };
        tune(&mut cfg);
        let running = dcim::serve::start(&cfg).await.expect("server starts");
        let base = running.url();
        let client = client();
        let mut s =
            TestServer { base, db, client, admin_token: String::new(), running: Some(running), dir, schema, cfg };
        s.admin_token = s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        s
    }

    /// A second `dcim` process on this server's database (its own listener and data
    /// directory, the same secret key), configured by `tune`; stopped by the caller.
    pub async fn another_process(&self, tune: impl FnOnce(&mut Config)) -> (Running, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let mut cfg = self.cfg.clone();
        cfg.listen = "127.0.0.1:0".into();
        // Every process of a database has its key.
        cfg.secret_key_file = Some(self.cfg.secret_key_path());
        cfg.data_dir = dir.0.clone();
        cfg.database_url = Some(self.cfg.database_url());
        tune(&mut cfg);
        (dcim::serve::start(&cfg).await.expect("the second process starts"), dir)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop(Duration::from_secs(5)).await.unwrap();
        }
        if let Some(schema) = self.schema.take() {
            drop_postgres_schema(&schema).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Logs in and returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/auth/v4/public/token"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "login of {email}");
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// A request the way the seed's curl lines make it: the token as the `ses6`
    /// cookie, `isp-box-instance: true`, and `x-xsrf-token` on POST and DELETE.
    pub fn seed_request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        let mut rb = self
            .client
            .request(method.clone(), self.url(path))
            .header("Cookie", format!("ses6={token}"))
            .header("isp-box-instance", "true");
        if method != Method::GET {
            rb = rb.header("x-xsrf-token", token);
        }
        rb
    }

    /// Sends a request as the admin (seed style) with an optional JSON body sent as
    /// curl's `-d` sends it (form content type); returns status and JSON.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.admin_token.clone(), method, path, body).await
    }

    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rb = self.seed_request(method, path, token);
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/x-www-form-urlencoded").body(b.to_string());
        }
        json_of(rb.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.call(Method::POST, path, Some(body.clone())).await;
        assert!(s.is_success(), "POST {path} {body}: {s} {v}");
        v
    }

    /// Runs `sql` on the server's database on a connection of its own, beside dcim (a
    /// write dcim does not know of, or a row no build would write).
    pub async fn sql_beside(&self, sql: String) {
        let url = self.cfg.database_url();
        match self.db {
            Db::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await.unwrap();
            }
            Db::Postgres => {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await.unwrap();
            }
        }
    }

    /// Creates a user and returns its id.
    pub async fn add_user(&self, email: &str, password: &str, role: &str) -> i64 {
        let v = self.post("/dci/v3/user", json!({ "email": email, "password": password, "role": role })).await;
        v["id"].as_i64().unwrap()
    }

    /// A location, a rack, a fake switch and PDU; returns (location, rack, switch, pdu).
    pub async fn add_site(&self) -> (i64, i64, i64, i64) {
        let loc = self.post("/dci/v3/location", json!({"name": "DC-1", "geolocation": "1st Street, 25"})).await;
        let loc = loc["id"].as_i64().unwrap();
        let rack = self.post("/dci/v3/rack", json!({"name": "R1", "location_id": loc, "size": 42})).await;
        let sw = self
            .post("/dci/v3/switch", json!({"name": "sw1", "location_id": loc, "ip": "127.0.0.1", "protocol": "fake"}))
            .await;
        let pdu = self
            .post(
                "/dci/v3/pdu",
                json!({"name": "pdu1", "location_id": loc, "ip": "127.0.0.1", "protocol": "fake", "model": "apc_rpdu"}),
            )
            .await;
        (loc, rack["id"].as_i64().unwrap(), sw["id"].as_i64().unwrap(), pdu["id"].as_i64().unwrap())
    }

    /// A server with hardware, `is_new` cleared: a free server. Returns its id.
    pub async fn add_free_server(&self, loc: i64, rack: i64, n: i64, hw: Value) -> i64 {
        let v = self
            .post(
                "/dci/v3/server",
                json!({
                    "name": format!("srv-{n}"), "location_id": loc, "rack_id": rack, "unit": n,
                    "mac": format!("52:54:00:00:01:{n:02x}"), "domain": format!("srv-{n}.example.com"),
                    "ipmi": {"address": format!("127.0.0.1:{}", 6230 + n), "type": "IPMI v2(lanplus)", "user": "admin", "password": "bmc-secret"}
                }),
            )
            .await;
        let id = v["id"].as_i64().unwrap();
        self.post(&format!("/dci/v3/server/{id}/hardware_info"), hw).await;
        self.post(&format!("/dci/v3/server/{id}"), json!({"is_new": false})).await;
        id
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            // Best effort when a test panicked before `stop`.
            let schema = schema.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(drop_postgres_schema(&schema));
            })
            .join()
            .ok();
        }
    }
}

pub async fn json_of(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, v)
}

/// The hardware of DCImanager's first example configuration.
pub fn hw_i9() -> Value {
    json!({
        "cpu": {"model": "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz", "sockets": 1, "cores": 8, "threads": 16},
        "memory": {"total_mib": 65536},
        "disks": [{"name": "nvme0n1", "size_gb": 1024, "type": "NVMe"}, {"name": "nvme1n1", "size_gb": 1024, "type": "NVMe"}],
        "nics": [{"name": "eth0", "mac": "52:54:00:aa:bb:01", "link": true}],
        "motherboard": {"vendor": "Gigabyte", "model": "Z390", "serial": "SN1"}
    })
}

/// The hardware of DCImanager's second example configuration.
pub fn hw_e2146g() -> Value {
    json!({
        "cpu": {"model": "Intel(R) Xeon(R) E-2146G CPU @ 3.50GHz", "sockets": 1},
        "memory": {"total_mib": 65536},
        "disks": [{"size_gb": 3840, "type": "SSD"}, {"size_gb": 1920, "type": "SSD"}]
    })
}

/// Asserts the error envelope with `status` and returns the message.
pub fn assert_error(status: StatusCode, v: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "body: {v}");
    let e = &v["error"];
    assert!(e["code"].is_i64(), "error.code is an integer: {v}");
    assert!(e["msg"].is_string(), "error.msg is a string: {v}");
    assert!(e["value"].is_object(), "error.value is an object: {v}");
    e["msg"].as_str().unwrap().to_owned()
}

/// Percent-encodes a query value (the web UI's own encoder).
pub fn enc(s: &str) -> String {
    dcim_ui::filter::encode(s)
}

/// Waits until a task has ended (complete, fail or canceled) and returns it.
pub async fn wait_task(s: &TestServer, id: i64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let t = s.get(&format!("/dci/v3/task/{id}")).await;
        if matches!(t["status"].as_str(), Some("complete" | "fail" | "canceled")) {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "task {id} did not end: {t}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Quick engine settings for tests.
pub fn fast_tasks(c: &mut Config) {
    c.task_poll_ms = 20;
    c.task_backoff_ms = 10;
    c.power_timeout_secs = 5;
    c.agent_timeout_secs = 20;
    c.device_timeout_ms = 5000;
    c.power_poll_secs = 0;
    c.port_poll_secs = 0;
}

/// A rack-mounted server with a fake BMC, hardware, two switch ports (the second
/// for its BMC) and a PDU outlet; with OS and diagnostics templates. Returns
/// (server id, switch id, pdu id).
pub async fn fake_server(s: &TestServer) -> (i64, i64, i64) {
    let (loc, rack, sw, pdu) = s.add_site().await;
    let srv = s
        .post(
            "/dci/v3/server",
            json!({
                "name": "op-1", "location_id": loc, "rack_id": rack, "unit": 1, "mac": "52:54:00:0f:00:01",
                "domain": "op-1.example.com", "ipmi": {"address": "bmc-op-1", "type": "fake", "user": "admin", "password": "pw"}
            }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    s.post(&format!("/dci/v3/server/{srv}/hardware_info"), hw_i9()).await;
    s.post(&format!("/dci/v3/server/{srv}"), json!({"is_new": false})).await;
    let ports = s.get(&format!("/dci/v3/switch/{sw}/port?limit=0,2")).await;
    s.post(&format!("/dci/v3/server/{srv}/switch_connection"), json!({"port": ports["list"][0]["id"]})).await;
    s.post(
        &format!("/dci/v3/server/{srv}/switch_connection"),
        json!({"port": ports["list"][1]["id"], "is_ipmi_connection": true}),
    )
    .await;
    let outlet = s.get(&format!("/dci/v3/pdu/{pdu}/port?limit=0,1")).await;
    s.post(&format!("/dci/v3/server/{srv}/pdu_connection"), json!({"port": outlet["list"][0]["id"]})).await;
    s.post("/dci/v3/os_template", json!({"name": "Debian 12", "type": "os", "image_url": "http://192.0.2.1/files/debian-12.img", "image_sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "tags": ["linux"]})).await;
    s.post("/dci/v3/os_template", json!({"name": "Diag6", "type": "diag"})).await;
    (srv, sw, pdu)
}

/// A `dcim` process started by a test; killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    pub url: String,
    /// What it printed before "listening".
    pub lines: Vec<String>,
}

impl Served {
    /// Spawns the command and waits for its "dcim listening on URL" line.
    pub fn start(mut cmd: std::process::Command) -> Served {
        use std::io::BufRead;
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        let mut served = Served { child: cmd.spawn().unwrap(), url: String::new(), lines: vec![] };
        let mut reader = std::io::BufReader::new(served.child.stdout.take().unwrap());
        loop {
            let mut l = String::new();
            assert!(reader.read_line(&mut l).unwrap() > 0, "dcim exited early: {:?}", served.lines);
            if let Some(url) = l.trim().strip_prefix("dcim listening on ") {
                served.url = url.to_owned();
                return served;
            }
            served.lines.push(l.trim().to_owned());
        }
    }

    /// SIGTERM, and a graceful exit expected.
    pub fn stop(mut self) {
        std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful exit on SIGTERM: {status}");
    }

    /// SIGKILL: a crash, nothing handed back.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A test that failed midway must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An IPv4 network 192.0.2.0/24 (gateway .1) with a pool .10-.20, and an IPv6
/// network 2001:db8::/64 (gateway ::1). Returns (v4 net, v4 pool, v6 net).
pub async fn add_networks(s: &TestServer) -> (i64, i64, i64) {
    let v4 = s
        .post("/ip/v3/ipnet", json!({"name": "192.0.2.0/24", "gateway": "192.0.2.1", "vlan": "10", "note": "doc"}))
        .await;
    let v4 = v4["id"].as_i64().unwrap();
    let pool = s
        .post(
            "/ip/v3/ippool",
            json!({"name": "public", "note": "", "is_public": true, "ranges": [{"ipnet": v4, "start": "192.0.2.10", "end": "192.0.2.20"}]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let v6 = s.post("/ip/v3/ipnet", json!({"name": "2001:db8::/64", "gateway": "2001:db8::1"})).await["id"]
        .as_i64()
        .unwrap();
    (v4, pool, v6)
}

/// A client of a spawned `dcim` (its API, as an admin by bearer token).
pub struct Remote {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Remote {
    pub async fn login(base: &str, email: &str, password: &str) -> Remote {
        let client = client();
        let v: Value = client
            .post(format!("{base}/auth/v4/public/token"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = v["token"].as_str().unwrap_or_else(|| panic!("login of {email}: {v}")).to_owned();
        Remote { base: base.to_owned(), token, client }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Polls a task until `done(task)` or 60 s.
    pub async fn until(&self, id: i64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let t = self.get(&format!("/dci/v3/task/{id}")).await;
            if done(&t) {
                return t;
            }
            assert!(std::time::Instant::now() < deadline, "task {id} stuck: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A child process killed when dropped (a test that fails half-way leaves none behind).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
