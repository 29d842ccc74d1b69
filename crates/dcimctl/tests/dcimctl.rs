//! The real `dcimctl` binary against a `dcim serve --demo` started here over HTTPS with
//! its self-signed certificate, on SQLite and PostgreSQL: login and fingerprint pinning
//! (and refusal of a changed certificate), the token file's mode, `-o json` equal to the
//! API's answer, `--where` and friendly filters, a bulk reset of exactly the selected
//! servers, `--wait`'s exit codes for a failed task (3) and a timeout (4), a `@user`'s
//! 403, logout; tables pinned by snapshots, `-o wide` and `-o yaml`, tables that fit
//! the terminal's width, colour only when asked or on a terminal; switch ports up and
//! down, user edits.
//!
//! The `dcim` binary is the one `cargo test --workspace` builds beside `dcimctl`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use sqlx::Connection;

struct Demo {
    child: Child,
    url: String,
    dir: PathBuf,
    password: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dcim_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_dcimctl")).with_file_name("dcim");
    assert!(p.exists(), "{} is missing: run the tests with `cargo test --workspace`, which builds it", p.display());
    p
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcimctl-{tag}-{}", hex::encode(rand::random::<[u8; 6]>())));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A demo on `port` (0: any), on SQLite or on this PostgreSQL URL.
fn demo(port: u16, database_url: Option<&str>) -> Demo {
    demo_with(port, database_url, &[])
}

/// The same with more arguments of `serve`.
fn demo_with(port: u16, database_url: Option<&str>, extra: &[&str]) -> Demo {
    let dir = temp_dir("demo");
    let mut cmd = Command::new(dcim_bin());
    cmd.args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--data-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .env("DCIM_TASK_POLL_MS", "20")
        .env("DCIM_POWER_POLL_SECS", "0")
        .env("DCIM_PORT_POLL_SECS", "0")
        .env_remove("DCIM_ADMIN_EMAIL")
        .env_remove("DCIM_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(u) = database_url {
        cmd.env("DCIM_DATABASE_URL", u);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut url = String::new();
    for l in BufReader::new(out).lines() {
        if let Some(u) = l.unwrap().strip_prefix("dcim listening on ") {
            url = u.to_owned();
            break;
        }
    }
    assert!(url.starts_with("https://"), "the demo serves HTTPS: {url}");
    let creds = std::fs::read_to_string(dir.join("demo-admin.txt")).unwrap();
    let password = creds.split_whitespace().nth(1).unwrap().to_owned();
    Demo { child, url, dir, password }
}

/// Runs dcimctl with its configuration in `home`; (exit code, stdout, stderr).
fn ctl(home: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    ctl_env(home, args, stdin, &[])
}

/// The same with more environment (terminal width, colour).
fn ctl_env(home: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcimctl"));
    for v in ["DCIM_URL", "DCIM_TOKEN", "DCIM_PROFILE", "COLUMNS", "NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR"] {
        c.env_remove(v);
    }
    let mut c = c
        .args(args)
        .envs(env.iter().copied())
        .env("XDG_CONFIG_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(home: &Path, args: &[&str]) -> String {
    let (code, out, err) = ctl(home, args, "");
    assert_eq!(code, 0, "dcimctl {args:?}: {err}");
    out
}

fn json_of(home: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(home, args)).unwrap()
}

/// The API itself, with the token dcimctl keeps (the demo's certificate is trusted by
/// its fingerprint here too).
struct Direct {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Direct {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.client.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
}

fn tokens(home: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(home.join("dcim/tokens.toml")).unwrap()).unwrap()
}

async fn fresh_postgres() -> (String, String) {
    let base =
        std::env::var("DCIM_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("PostgreSQL on 127.0.0.1:5432");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await.unwrap();
    (schema.clone(), format!("{base}?options=-c%20search_path%3D{schema}"))
}

async fn the_command_line(postgres: bool) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pg = if postgres { Some(fresh_postgres().await) } else { None };
    let d = demo(0, pg.as_ref().map(|p| p.1.as_str()));
    let home = temp_dir("home");
    let h = home.as_path();

    // A self-signed certificate is shown and not trusted silently.
    let login = ["login", "--url", &d.url, "--email", "admin@example.com", "--password-stdin"];
    let (code, out, err) = ctl(h, &login, &format!("{}\n", d.password));
    assert_eq!(code, 2, "{err}");
    let fp = err.split("fingerprint is ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    assert!(out.is_empty() && !h.join("dcim/tokens.toml").exists());
    // A wrong fingerprint is refused; the right one is pinned.
    let wrong = "00:".repeat(31) + "00";
    let (code, _, err) = ctl(h, &[&login[..], &["--fingerprint", &wrong]].concat(), &format!("{}\n", d.password));
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = ctl(h, &[&login[..], &["--fingerprint", &fp]].concat(), &format!("{}\n", d.password));
    assert_eq!(code, 0, "{err}");
    let t = tokens(h);
    let token = t["default"].as_str().unwrap().to_owned();
    assert!(!out.contains(&token) && !err.contains(&token), "the token is never printed");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(h.join("dcim/tokens.toml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is its owner's only");
    let profile = json_of(h, &["profile", "show", "-o", "json"]);
    assert_eq!(profile["fingerprint"], fp.as_str());
    assert_eq!(json_of(h, &["whoami", "-o", "json"])["email"], "admin@example.com");

    let direct = Direct {
        client: reqwest::Client::builder().tls_danger_accept_invalid_certs(true).build().unwrap(),
        url: d.url.clone(),
        token: token.clone(),
    };
    // -o json is the API's answer; filters are the API's where.
    let get = reqwest::Method::GET;
    assert_eq!(json_of(h, &["server", "list", "-o", "json"]), direct.call(get.clone(), "/dci/v3/server", None).await);
    let config = "i9-9900K-64Gb-2x1024NVMe";
    let mine = json_of(h, &["server", "list", "--free", "--config", config, "-o", "json"]);
    let q = format!("/dci/v3/server?where=owner_email%20IS%20null%20AND%20configuration%20EQ%20%27{config}%27");
    assert_eq!(mine, direct.call(get.clone(), &q, None).await);
    assert!(mine["size"].as_i64().unwrap() > 0);
    let where_ = json_of(h, &["server", "list", "--where", "state EQ 'ok' AND power_status NE 'on'", "-o", "json"]);
    let q = "/dci/v3/server?where=state%20EQ%20%27ok%27%20AND%20power_status%20NE%20%27on%27";
    assert_eq!(where_, direct.call(get.clone(), q, None).await);
    assert_eq!(
        json_of(h, &["server", "show", "srv-01", "-o", "json"]),
        direct.call(get.clone(), "/dci/v3/server/1", None).await
    );
    let all = json_of(h, &["server", "list", "--all", "-o", "json"]);
    assert_eq!(all["list"].as_array().unwrap().len() as i64, all["size"].as_i64().unwrap());
    // A table, and ids for scripts.
    let table = ok(h, &["server", "list", "-c", "id", "-c", "name", "-c", "location.name", "--limit", "3"]);
    assert_eq!(
        table, "ID  NAME    LOCATION\n1   srv-01  Demo DC\n2   srv-02  Demo DC\n3   srv-03  Demo DC\n",
        "{table}"
    );
    // Tables as an operator reads them, pinned (the demo is the same on every start);
    // -o wide adds columns; YAML is the API's answer too.
    insta::assert_snapshot!("server_list_wide", ok(h, &["server", "list", "-o", "wide"]));
    insta::assert_snapshot!("config_list", ok(h, &["config", "list"]));
    insta::assert_snapshot!("switch_ports", ok(h, &["switch", "ports", "1"]));
    insta::assert_snapshot!("template_list", ok(h, &["template", "list"]));
    insta::assert_snapshot!("user_list_wide", ok(h, &["user", "list", "-o", "wide"]));
    let yaml: Value = yaml_serde::from_str(&ok(h, &["server", "list", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, direct.call(get.clone(), "/dci/v3/server", None).await);
    // On a terminal's width (COLUMNS) every row stays one line and fits; colour only
    // when asked for or on a terminal, never in a pipe.
    for width in [60usize, 100] {
        let (_, out, _) = ctl_env(h, &["server", "list", "-o", "wide"], "", &[("COLUMNS", &width.to_string())]);
        assert_eq!(out.lines().count(), 25, "{out}");
        assert!(out.lines().all(|l| l.chars().count() <= width), "{width}:\n{out}");
        assert!(out.contains('…'), "{out}");
    }
    assert!(!ok(h, &["server", "list"]).contains('\x1b'), "no colour in a pipe");
    let (_, out, _) = ctl_env(h, &["server", "list", "--limit", "1"], "", &[("CLICOLOR_FORCE", "1")]);
    assert!(out.starts_with("\x1b[1mID  NAME"), "a bold header: {out:?}");

    let ids = ok(h, &["server", "list", "--free", "-o", "ids"]);
    assert_eq!(
        ids.lines().count() as i64,
        direct.call(get.clone(), "/dci/v3/server?where=owner_email%20IS%20null", None).await["size"].as_i64().unwrap()
    );

    // A bulk reset acts on exactly the selected servers, and --yes is needed without a terminal.
    let sel = format!("owner_email IS null AND configuration EQ '{config}'");
    let (code, _, err) = ctl(h, &["server", "power", "reset", "--where", &sel], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    let out = json_of(h, &["server", "power", "reset", "--where", &sel, "--yes", "--wait=60", "-o", "json"]);
    let acted: Vec<i64> = out.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let wanted: Vec<i64> = mine["list"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(acted, wanted);
    for r in out.as_array().unwrap() {
        let t = direct.call(get.clone(), &format!("/dci/v3/task/{}", r["task"]), None).await;
        assert_eq!((t["name"].as_str(), t["status"].as_str()), (Some("power_reset"), Some("complete")), "{t}");
    }

    // --wait: a failed step exits 3 with its message; a task longer than the wait exits 4.
    let bmc = direct.call(get.clone(), "/dci/v3/server/2", None).await["ipmi"]["address"].as_str().unwrap().to_owned();
    let fault = json!({"device": bmc, "op": "power_on", "message": "BMC on fire"});
    direct.call(reqwest::Method::POST, "/dci/v3/fake/fault", Some(fault)).await;
    let (code, _, err) = ctl(h, &["server", "power", "on", "2", "--wait=60"], "");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("BMC on fire"), "{err}");
    direct.call(reqwest::Method::DELETE, "/dci/v3/fake/fault", None).await;
    direct.call(reqwest::Method::POST, "/dci/v3/fake/delay", Some(json!({"ms": 3000}))).await;
    let (code, _, err) = ctl(h, &["server", "power", "reset", "2", "--wait=1"], "");
    assert_eq!(code, 4, "{err}");
    direct.call(reqwest::Method::POST, "/dci/v3/fake/delay", Some(json!({"ms": 0}))).await;
    let (code, _, err) = ctl(h, &["api", "POST", "/dci/v3/server/999/power_on", "-d", "{}"], "");
    assert_eq!(code, 1);
    assert!(err.contains("server 999 not found") && err.contains("code 3000"), "{err}");

    // Lists of the other objects are the API's; a user, its login link, ownership, an
    // address, an OS install.
    for (cmd, path) in [
        ("location", "/dci/v3/location"),
        ("template", "/dci/v3/os_template"),
        ("net", "/ip/v3/ipnet"),
        ("pool", "/ip/v3/ippool"),
        ("user", "/dci/v3/user"),
    ] {
        assert_eq!(json_of(h, &[cmd, "list", "-o", "json"]), direct.call(get.clone(), path, None).await, "{cmd}");
    }
    let (code, out, err) =
        ctl(h, &["user", "create", "--email", "new-customer@example.com", "-o", "ids"], "customer-pw-9\n");
    assert_eq!(code, 0, "{err}");
    let customer: i64 = out.trim().parse().unwrap();
    ok(h, &["user", "edit", "new-customer@example.com", "--full-name", "New Customer", "--phone", "+1 555 0100"]);
    let u = direct.call(get.clone(), &format!("/dci/v3/user/{customer}"), None).await;
    assert_eq!((u["full_name"].as_str(), u["phone_number"].as_str()), (Some("New Customer"), Some("+1 555 0100")));
    let (code, _, err) = ctl(h, &["user", "edit", "new-customer@example.com"], "");
    assert_eq!(code, 2, "nothing to change: {err}");
    let link = ok(h, &["user", "key", "new-customer@example.com"]);
    assert!(link.trim().starts_with(&format!("{}/auth/key-v4/", d.url)), "{link}");
    let once = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = once.get(link.trim()).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "the link logs the customer in");
    ok(h, &["server", "owner", "set", "srv-05", "new-customer@example.com"]);
    assert_eq!(direct.call(get.clone(), "/dci/v3/server/5", None).await["owner"]["id"], customer);
    let pool = direct.call(get.clone(), "/ip/v3/ippool", None).await["list"][0]["id"].as_i64().unwrap();
    ok(h, &["server", "ip", "add", "srv-05", "--pool", &pool.to_string(), "--wait=60"]);
    let ips = json_of(h, &["server", "ip", "list", "5", "-o", "json"]);
    assert_eq!(ips, direct.call(get.clone(), "/dci/v3/server/5/ip", None).await);
    assert_eq!(ips["size"], 1, "{ips}");
    let key_file = home.join("id.pub");
    std::fs::write(
        &key_file,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example.com\n",
    )
    .unwrap();
    let (code, _, err) = ctl(
        h,
        &[
            "server",
            "install",
            "5",
            "--template",
            "1",
            "--raid",
            "no_raid",
            "--ssh-key",
            key_file.to_str().unwrap(),
            "--wait=120",
        ],
        "Root-pw-123\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(direct.call(get.clone(), "/dci/v3/server/5", None).await["os_template"]["id"], 1);
    ok(h, &["server", "owner", "clear", "5"]);
    assert!(direct.call(get.clone(), "/dci/v3/server/5", None).await["owner"].is_null());
    assert!(ok(h, &["completion", "bash"]).contains("dcimctl"));

    // Switches and PDUs with their ports; a server made, connected, given hardware,
    // edited and deleted; the fake lab.
    assert_eq!(
        json_of(h, &["switch", "ports", "1", "-o", "json"]),
        direct.call(get.clone(), "/dci/v3/switch/1/port", None).await
    );
    assert_eq!(
        json_of(h, &["pdu", "ports", "1", "-o", "json"]),
        direct.call(get.clone(), "/dci/v3/pdu/1/port", None).await
    );
    ok(h, &["switch", "sync", "1"]);
    // A port down and up again, by the switch's name and the port's name.
    let sw_name = direct.call(get.clone(), "/dci/v3/switch/1", None).await["name"].as_str().unwrap().to_owned();
    let p3 = direct.call(get.clone(), "/dci/v3/switch/1/port?where=index%20EQ%203", None).await["list"][0].clone();
    let port_name = p3["name"].as_str().unwrap();
    let down = json_of(h, &["switch", "port", "down", &sw_name, port_name, "-o", "json"]);
    assert_eq!(down["admin_status"], "down");
    assert_eq!(down, direct.call(get.clone(), &format!("/dci/v3/switch/1/port/{}", p3["id"]), None).await);
    ok(h, &["switch", "port", "up", "1", &p3["id"].to_string()]);
    let p3 = direct.call(get.clone(), &format!("/dci/v3/switch/1/port/{}", p3["id"]), None).await;
    assert_eq!(p3["admin_status"], "up");
    let (code, _, err) = ctl(h, &["switch", "port", "down", "1", "no-such-port"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no port 'no-such-port'"), "{err}");
    // A reader that goes away (`| head`) ends dcimctl quietly, not with a panic.
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcimctl"))
        .args(["server", "list", "--all", "-o", "json"])
        .env("XDG_CONFIG_HOME", h)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(c.stdout.take());
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "{:?} {err}", o.status);
    assert_eq!(
        json_of(h, &["pdu", "outlets", "1", "-o", "json"]),
        direct.call(get.clone(), "/dci/v3/pdu/1/port", None).await
    );
    // The demo's switch ports are all taken: connecting to one is refused (409), and the
    // server goes to a port freed for it.
    let taken = 1;
    let body = json!({"name": "ctl-1", "location_id": 1, "rack_id": 1, "unit": 40, "mac": "52:54:00:aa:bb:01"});
    let (code, out, err) = ctl(h, &["server", "create", "-d", &body.to_string(), "-o", "ids"], "");
    assert_eq!(code, 0, "{err}");
    let made: i64 = out.trim().parse().unwrap();
    let (code, _, err) = ctl(h, &["server", "connect", "ctl-1", "--switch-port", &taken.to_string()], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("HTTP 409"), "{err}");
    let srv24 = direct.call(get.clone(), "/dci/v3/server/24", None).await;
    let conn = srv24["switch_connection"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["is_ipmi_connection"] == false)
        .unwrap()
        .clone();
    direct
        .call(reqwest::Method::DELETE, &format!("/dci/v3/server/24/switch_connection/{}", conn["connection_id"]), None)
        .await;
    let free_port = conn["id"].as_i64().unwrap();
    ok(h, &["server", "connect", "ctl-1", "--switch-port", &free_port.to_string()]);
    let hw = direct.call(get.clone(), "/dci/v3/server/1", None).await["hardware_info"].clone();
    let hw_file = home.join("hw.json");
    std::fs::write(&hw_file, hw.to_string()).unwrap();
    ok(h, &["server", "hardware", "ctl-1", "--set", &format!("@{}", hw_file.display())]);
    let shown: Value = serde_json::from_str(&ok(h, &["server", "hardware", "ctl-1"])).unwrap();
    assert_eq!(shown, direct.call(get.clone(), &format!("/dci/v3/server/{made}"), None).await["hardware_info"]);
    ok(h, &["server", "edit", "ctl-1", "-d", r#"{"note":"from dcimctl"}"#]);
    let srv = direct.call(get.clone(), &format!("/dci/v3/server/{made}"), None).await;
    assert_eq!(srv["note"], "from dcimctl");
    assert_eq!(srv["switch_connection"][0]["id"], free_port, "{srv}");
    ok(h, &["server", "delete", "ctl-1"]);
    let (code, _, err) = ctl(h, &["server", "show", &made.to_string()], "");
    assert_eq!(code, 1, "{err}");
    assert!(json_of(h, &["fake", "state"]).is_object());
    ok(h, &["fake", "delay", "0"]);
    let (code, _, err) = ctl(h, &["location", "ports", "1"], "");
    assert_eq!(code, 2, "{err}");

    // The other actions on servers, each checked through the API.
    ok(h, &["server", "suspend", "srv-06", "--wait=60"]);
    assert_eq!(direct.call(get.clone(), "/dci/v3/server/6", None).await["state"], "suspended");
    ok(h, &["server", "resume", "srv-06", "--wait=60"]);
    assert_eq!(direct.call(get.clone(), "/dci/v3/server/6", None).await["state"], "ok");
    let boot = json_of(h, &["server", "boot-device", "pxe", "srv-06", "--efi", "--wait=60", "-o", "json"]);
    let t = direct.call(get.clone(), &format!("/dci/v3/task/{}", boot[0]["task"]), None).await;
    assert_eq!((t["name"].as_str(), t["status"].as_str()), (Some("boot_device"), Some("complete")), "{t}");
    for (cmd, name) in [
        (&["server", "diag", "srv-07", "--wait=120"][..], "diag"),
        (&["server", "wipe", "srv-08", "--wait=120"][..], "clear_hdd"),
    ] {
        let (code, _, err) = ctl(h, &[cmd, &["-o", "json"]].concat(), "");
        assert_eq!(code, 0, "{cmd:?}: {err}");
        let last = &direct.call(get.clone(), "/dci/v3/task?orderby=id%20desc&limit=1", None).await["list"][0];
        assert_eq!((last["name"].as_str(), last["status"].as_str()), (Some(name), Some("complete")), "{last}");
    }
    direct.call(reqwest::Method::POST, "/dci/v3/fake/delay", Some(json!({"ms": 5000}))).await;
    let started = json_of(h, &["server", "power", "reset", "srv-06", "-o", "json"]);
    let task = started[0]["task"].as_i64().unwrap();
    ok(h, &["server", "abort", "srv-06"]);
    let (code, _, err) = ctl(h, &["task", "watch", &task.to_string(), "--timeout", "30"], "");
    assert_eq!(code, 3, "a canceled task: {err}");
    assert!(err.contains("canceled"), "{err}");
    direct.call(reqwest::Method::POST, "/dci/v3/fake/delay", Some(json!({"ms": 0}))).await;
    assert_eq!(
        json_of(h, &["task", "show", &task.to_string(), "-o", "json"]),
        direct.call(get.clone(), &format!("/dci/v3/task/{task}"), None).await
    );
    assert_eq!(
        json_of(h, &["task", "list", "-o", "json"]),
        direct.call(get.clone(), "/dci/v3/task?orderby=id%20desc&limit=20", None).await
    );
    ok(h, &["server", "ip", "add", "srv-06", "--pool", &pool.to_string(), "--wait=60"]);
    let ip = direct.call(get.clone(), "/dci/v3/server/6/ip", None).await["list"][0]["id"].as_i64().unwrap();
    ok(h, &["server", "ip", "rm", "srv-06", &ip.to_string(), "--wait=60"]);
    assert_eq!(direct.call(get.clone(), "/dci/v3/server/6/ip", None).await["size"], 0);

    // Users: show, block, unblock, delete.
    assert_eq!(
        json_of(h, &["user", "show", "new-customer@example.com", "-o", "json"]),
        direct.call(get.clone(), &format!("/dci/v3/user/{customer}"), None).await
    );
    ok(h, &["user", "block", "new-customer@example.com"]);
    assert_eq!(direct.call(get.clone(), &format!("/dci/v3/user/{customer}"), None).await["blocked"], true);
    ok(h, &["user", "unblock", &customer.to_string()]);
    assert_eq!(direct.call(get.clone(), &format!("/dci/v3/user/{customer}"), None).await["blocked"], false);
    ok(h, &["user", "delete", "new-customer@example.com"]);
    let (code, _, _) = ctl(h, &["user", "show", &customer.to_string()], "");
    assert_eq!(code, 1, "deleted");

    // The other lists, one of each, and a delete; the fake lab's faults; a PDU's sync.
    for (cmd, path, one) in [
        ("rack", "/dci/v3/rack", "/dci/v3/rack"),
        ("switch", "/dci/v3/switch", "/dci/v3/switch"),
        ("pdu", "/dci/v3/pdu", "/dci/v3/pdu"),
        ("ip", "/dci/v3/ip", "/ip/v3/ip"),
    ] {
        let list = json_of(h, &[cmd, "list", "-o", "json"]);
        assert_eq!(list, direct.call(get.clone(), path, None).await, "{cmd}");
        let id = list["list"][0]["id"].to_string();
        assert_eq!(
            json_of(h, &[cmd, "show", &id, "-o", "json"]),
            direct.call(get.clone(), &format!("{one}/{id}"), None).await,
            "{cmd}"
        );
    }
    let loc = json_of(h, &["api", "POST", "/dci/v3/location", "-d", r#"{"name":"To go"}"#])["id"].as_i64().unwrap();
    ok(h, &["location", "delete", &loc.to_string()]);
    let (code, _, _) = ctl(h, &["location", "show", &loc.to_string()], "");
    assert_eq!(code, 1, "deleted");
    ok(h, &["fake", "fault", "bmc-09.demo.invalid", "power_on", "--message", "smoke"]);
    let (code, _, err) = ctl(h, &["server", "power", "on", "srv-09", "--wait=30"], "");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("smoke"), "{err}");
    ok(h, &["fake", "clear"]);
    ok(h, &["server", "power", "on", "srv-09", "--wait=30"]);
    ok(h, &["pdu", "sync", "1"]);

    // A @user's profile: admin commands are refused with a clear 403.
    let user = json!({"email": "ops-user@example.com", "password": "user-password-1", "role": "@user"});
    ok(h, &["api", "POST", "/dci/v3/user", "-d", &user.to_string()]);
    let ulogin = [
        "--profile",
        "user",
        "login",
        "--url",
        &d.url,
        "--email",
        "ops-user@example.com",
        "--password-stdin",
        "--fingerprint",
        &fp,
    ];
    let (code, _, err) = ctl(h, &ulogin, "user-password-1\n");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        ctl(h, &["--profile", "user", "api", "POST", "/dci/v3/location", "-d", "{\"name\":\"X\"}"], "");
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 403") && err.contains("role"), "{err}");
    assert_eq!(json_of(h, &["--profile", "user", "server", "list", "-o", "json"])["size"], 0, "its own servers only");
    let profiles = ok(h, &["profile", "list"]);
    assert!(profiles.contains("* ") || profiles.lines().any(|l| l.trim_start().starts_with('*')), "{profiles}");
    // Another current profile, and back.
    ok(h, &["profile", "use", "user"]);
    assert_eq!(json_of(h, &["whoami", "-o", "json"])["email"], "ops-user@example.com");
    ok(h, &["profile", "use", "default"]);
    assert_eq!(json_of(h, &["whoami", "-o", "json"])["email"], "admin@example.com");

    // A token past its end says so, and how to log in again.
    let cfg_path = h.join("dcim/config.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let mut t: toml::Table = toml::from_str(&cfg).unwrap();
    let user_profile = t["profiles"]["user"].as_table().unwrap().clone();
    assert!(user_profile["token_expires"].as_str().unwrap() > "2026-", "{user_profile:?}");
    t["profiles"]["user"]["token_expires"] = "2020-01-01 00:00:00".into();
    std::fs::write(&cfg_path, toml::to_string(&t).unwrap()).unwrap();
    let (code, _, err) = ctl(h, &["--profile", "user", "whoami"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expired at 2020-01-01 00:00:00 UTC") && err.contains("login"), "{err}");
    std::fs::write(&cfg_path, cfg).unwrap();

    // Logout ends the token at the server too.
    ok(h, &["--profile", "user", "logout"]);
    let (code, _, err) = ctl(h, &["--profile", "user", "whoami"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not logged in"), "{err}");

    ok(h, &["profile", "remove", "user"]);
    assert!(!ok(h, &["profile", "list"]).contains("ops-user"), "removed");
    assert!(tokens(h).get("user").is_none(), "its token too");

    // The same address with another certificate is refused.
    if !postgres {
        let port: u16 = d.url.rsplit(':').next().unwrap().parse().unwrap();
        drop(d);
        let _other = demo(port, None);
        let (code, _, err) = ctl(h, &["whoami"], "");
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("certificate changed"), "{err}");
    } else {
        drop(d);
    }
    if let Some((schema, _)) = pg {
        let base = std::env::var("DCIM_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
            let _ =
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut conn).await;
        }
    }
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_on_sqlite() {
    the_command_line(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_on_postgres() {
    the_command_line(true).await
}

/// A server certificate a private CA signed: `--ca-cert` (or `DCIM_CA_CERT`) trusts it
/// with no fingerprint asked; without it the certificate is unknown and nothing is
/// saved. Flags beat the environment, which beats the profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_and_precedence() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let pki = temp_dir("pki");
    let mut ca_params = CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let (ca_pem, cert, key) = (pki.join("ca.pem"), pki.join("cert.pem"), pki.join("key.pem"));
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let d = demo_with(0, None, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let home = temp_dir("home");
    let h = home.as_path();
    let pw = format!("{}\n", d.password);
    let login = ["login", "--url", &d.url, "--email", "admin@example.com", "--password-stdin"];
    let (code, _, err) = ctl(h, &login, &pw);
    assert_eq!(code, 2, "unknown without the CA: {err}");
    assert!(err.contains("fingerprint is "), "{err}");
    let (code, _, err) = ctl(h, &[&login[..], &["--ca-cert", ca_pem.to_str().unwrap()]].concat(), &pw);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("fingerprint"), "nothing to pin: {err}");
    let profile = json_of(h, &["profile", "show", "-o", "json"]);
    assert!(profile.get("fingerprint").is_none_or(Value::is_null), "{profile}");
    assert_eq!(json_of(h, &["whoami", "-o", "json"])["email"], "admin@example.com");
    // The environment's CA, the environment's URL, and a flag over both.
    let (code, _, err) = ctl_env(
        h,
        &["--profile", "none", "whoami"],
        "",
        &[("DCIM_URL", &d.url), ("DCIM_CA_CERT", ca_pem.to_str().unwrap())],
    );
    assert_eq!(code, 2, "a URL and CA but no token: {err}");
    assert!(err.contains("not logged in"), "{err}");
    let token = tokens(h)["default"].as_str().unwrap().to_owned();
    let env = [("DCIM_URL", d.url.as_str()), ("DCIM_CA_CERT", ca_pem.to_str().unwrap()), ("DCIM_TOKEN", &token)];
    let (code, out, err) = ctl_env(h, &["--profile", "none", "whoami", "-o", "json"], "", &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["email"], "admin@example.com");
    let (code, _, err) = ctl_env(h, &["--url", "https://127.0.0.1:1", "whoami"], "", &env);
    assert_eq!(code, 1, "the flag's URL is the one tried: {err}");
    drop(d);
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&pki);
}

/// Sites from the command line: `site create` shows the enrollment secret once with
/// the command that starts the site; that command, run as printed (the real `dcim
/// site`, on the fake lab), connects; `site list` shows the link; `site edit` moves
/// locations; `site revoke` stops the site within seconds; `site delete` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_from_the_command_line() {
    let d = demo(0, None);
    let home = temp_dir("home");
    let h = home.as_path();
    let login = ["login", "--url", &d.url, "--email", "admin@example.com", "--password-stdin"];
    let (_, _, err) = ctl(h, &login, &format!("{}\n", d.password));
    let fp = err.split("fingerprint is ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let (code, _, err) = ctl(h, &[&login[..], &["--fingerprint", &fp]].concat(), &format!("{}\n", d.password));
    assert_eq!(code, 0, "{err}");
    ok(h, &["api", "POST", "/dci/v3/location", "-d", r#"{"name":"DC 2"}"#]);
    ok(h, &["api", "POST", "/dci/v3/location", "-d", r#"{"name":"DC 3"}"#]);

    let out = ok(h, &["site", "create", "dc-2", "--location", "DC 2", "--description", "Frankfurt"]);
    assert!(out.contains("works once, until 20") && out.contains("not shown again"), "{out}");
    let line = out.lines().find(|l| l.contains("dcim site")).unwrap_or_else(|| panic!("{out}")).trim();
    let (env, command) = line.split_once(' ').unwrap();
    let secret = env.strip_prefix("DCIM_SITE_ENROLLMENT=").unwrap_or_else(|| panic!("{line}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&args[..4], ["dcim", "site", "--central", d.url.as_str()], "{line}");
    assert_eq!(args[4..], ["--central-fingerprint", fp.as_str()], "{line}");
    let listed = json_of(h, &["site", "list", "-o", "json"]);
    assert_eq!(listed["list"][0]["enrolled"], false, "{listed}");
    assert!(!listed.to_string().contains(secret), "the secret is never shown again");

    // The command as printed starts the site: it enrolls and connects.
    let state = temp_dir("site");
    let mut site = KillOnDrop(
        Command::new(dcim_bin())
            .arg("--data-dir")
            .arg(&state)
            .args(&args[1..])
            .arg("--fake-drivers")
            .env("DCIM_SITE_ENROLLMENT", secret)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let v = json_of(h, &["site", "show", "dc-2", "-o", "json"]);
        if v["connected"] == true {
            assert_eq!(v["enrolled"], true, "{v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the site did not connect: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let table = ok(h, &["site", "list"]);
    let row = table.lines().find(|l| l.contains("dc-2")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("true") && row.contains(env!("CARGO_PKG_VERSION")), "{table}");
    let shown = ok(h, &["site", "show", "dc-2", "-o", "wide"]);
    assert!(shown.contains("Frankfurt") && shown.contains("127.0.0.1"), "{shown}");

    // Locations by name; none at all.
    let dc3 = json_of(h, &["location", "list", "--where", "name EQ 'DC 3'", "-o", "json"])["list"][0]["id"].clone();
    let edited = json_of(h, &["site", "edit", "dc-2", "--location", "DC 2", "--location", "DC 3", "-o", "json"]);
    assert_eq!(edited["locations"].as_array().unwrap().len(), 2, "{edited}");
    assert!(edited["locations"].as_array().unwrap().contains(&dc3), "{edited}");
    let (code, _, err) = ctl(h, &["site", "edit", "dc-2", "--location", "Nowhere"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no location 'Nowhere'"), "{err}");
    assert_eq!(json_of(h, &["site", "edit", "dc-2", "--no-locations", "-o", "json"])["locations"], json!([]));
    let (code, _, err) = ctl(h, &["site", "edit", "dc-2"], "");
    assert_eq!(code, 2, "{err}");

    // Revoked: the site is refused at its next poll and stops, saying why.
    let revoked = json_of(h, &["site", "revoke", "dc-2", "-o", "json"]);
    assert_eq!(revoked["enrolled"], false, "{revoked}");
    // Told while its poll is held (the demo holds one for up to 15 s), not at the next.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        if let Some(s) = site.0.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the revoked site still runs");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut site.0.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!status.success() && log.contains("refused the site's credential"), "{status}: {log}");

    // A new enrollment secret, as JSON for scripts.
    let again = json_of(h, &["site", "enrollment", "dc-2", "-o", "json"]);
    assert!(again["enrollment_secret"].as_str().unwrap().len() >= 32, "{again}");
    ok(h, &["site", "delete", "dc-2"]);
    let (code, _, err) = ctl(h, &["site", "show", "dc-2"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no site 'dc-2'"), "{err}");
    drop(d);
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&state);
}

/// A child process killed when dropped (a test that fails half-way leaves none behind).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
