//! The real `dcim` binary: `migrate`, `user add`, and `serve --demo` over HTTPS with
//! its self-signed certificate, stopped by SIGTERM and started again.

mod common;

use std::process::Command;

use common::Served;
use common::tempdir::Dir;
use serde_json::{Value, json};

fn dcim(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcim"));
    c.args(args).env("RUST_LOG", "warn").env_remove("DCIM_ADMIN_EMAIL").env_remove("DCIM_ADMIN_PASSWORD");
    c
}

fn run(args: &[&str]) -> (bool, String) {
    let out = dcim(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn migrate_and_user_add() {
    let dir = Dir::new();
    let d = dir.0.to_str().unwrap();
    for _ in 0..2 {
        let (ok, out) = run(&["migrate", "--data-dir", d]);
        assert!(ok && out.contains("database is up to date"), "{out}");
    }
    let (ok, out) = run(&[
        "user",
        "add",
        "--data-dir",
        d,
        "--email",
        "ops@example.com",
        "--password",
        "ops-password",
        "--role",
        "@admin",
    ]);
    assert!(ok && out.contains("user 1 created"), "{out}");
    let (ok, out) = run(&["user", "add", "--data-dir", d, "--email", "ops@example.com", "--password", "ops-password"]);
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = run(&[
        "user",
        "add",
        "--data-dir",
        d,
        "--email",
        "x@example.com",
        "--password",
        "ops-password",
        "--role",
        "root",
    ]);
    assert!(!ok && out.contains("@admin"), "{out}");
    let (ok, out) = run(&["migrate", "--database-url", "mysql://nope"]);
    assert!(!ok && out.contains("unsupported database URL"), "{out}");
}

#[tokio::test]
async fn migrate_on_postgres() {
    let (schema, url) = common::fresh_postgres_schema().await;
    // Its own data directory: the secret key file is made there.
    let dir = common::tempdir::Dir::new();
    let (ok, out) = run(&["migrate", "--database-url", &url, "--data-dir", dir.0.to_str().unwrap()]);
    common::drop_postgres_schema(&schema).await;
    assert!(ok, "{out}");
}

fn serve_demo(dir: &str, envs: &[(&str, &str)]) -> Served {
    let mut cmd = dcim(&["serve", "--demo", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    cmd.envs(envs.iter().copied());
    Served::start(cmd)
}

fn stop(s: Served) {
    s.stop();
}

async fn login(client: &reqwest::Client, url: &str, email: &str, password: &str) -> String {
    let r = client.post(format!("{url}/api/auth/v4/public/token")).json(&json!({"email": email, "password": password}));
    let v: Value = r.send().await.unwrap().json().await.unwrap();
    v["token"].as_str().unwrap_or_else(|| panic!("login failed: {v}")).to_owned()
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = client.get(url).header("Cookie", format!("ses6={token}")).header("isp-box-instance", "true");
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn demo_serves_https_with_a_ready_data_center() {
    let dir = Dir::new();
    let d = dir.0.to_str().unwrap().to_owned();
    let s = serve_demo(&d, &[]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let creds = s.lines.iter().find(|l| l.starts_with("demo admin:")).expect("credentials printed").clone();
    let words: Vec<&str> = creds.split_whitespace().collect();
    let (email, password) = (words[3], words[5]);
    let client = common::client();
    let token = login(&client, &s.url, email, password).await;

    let servers = get(&client, &format!("{}/api/dci/v3/server", s.url), &token).await;
    assert_eq!(servers["size"], 24);
    let conf = get(&client, &format!("{}/api/dci/v3/server/configuration", s.url), &token).await;
    let confs: Vec<&str> =
        conf["list"].as_array().unwrap().iter().map(|c| c["configuration"].as_str().unwrap()).collect();
    assert_eq!(confs.len(), 4);
    assert!(
        confs.contains(&"i9-9900K-64Gb-2x1024NVMe") && confs.contains(&"E-2146G-64Gb-1920SSD-3840SSD"),
        "{confs:?}"
    );
    let free: i64 = conf["list"].as_array().unwrap().iter().map(|c| c["free_server_count"].as_i64().unwrap()).sum();
    assert_eq!(free, 24 - 8 - 4, "eight rented, four new");
    let new = get(&client, &format!("{}/api/dci/v3/server?where=is_new%20EQ%20true", s.url), &token).await;
    assert_eq!(new["size"], 4);
    let users = get(&client, &format!("{}/api/dci/v3/user", s.url), &token).await;
    assert_eq!(users["size"], 3);
    let ports =
        get(&client, &format!("{}/api/dci/v3/switch/1/port?where=server%20IS%20NOT%20null", s.url), &token).await;
    assert_eq!(ports["size"], 48);
    let templates = get(&client, &format!("{}/api/dci/v3/os_template", s.url), &token).await;
    assert!(templates["list"].as_array().unwrap().iter().any(|t| t["type"] == "diag"));

    // The README's diagnostics of server 9: its fake machine reports the demo's hardware,
    // so nothing is found missing and the configuration stays.
    let before = get(&client, &format!("{}/api/dci/v3/server/9", s.url), &token).await;
    let body = json!({"setup_ipmi": false, "ipmi_pool": 0, "os_template_id": 0, "clear_hdd": "simple"});
    let r = client
        .post(format!("{}/api/dci/v3/server/9/operation_diag", s.url))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let task = r.json::<Value>().await.unwrap()["task"].as_i64().expect("a task");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let t = get(&client, &format!("{}/api/dci/v3/task/{task}", s.url), &token).await;
        if t["status"] == "complete" {
            break;
        }
        assert!(t["status"] != "fail" && std::time::Instant::now() < deadline, "{t}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = get(&client, &format!("{}/api/dci/v3/server/9", s.url), &token).await;
    assert_eq!(after["diag_error"], json!([]), "{after}");
    assert_eq!(after["configuration"], before["configuration"]);
    stop(s);

    // A second start keeps the data and the credentials, and seeds nothing twice.
    let s = serve_demo(&d, &[]);
    assert!(s.lines.iter().any(|l| l.contains(password)));
    let token = login(&client, &s.url, email, password).await;
    assert_eq!(get(&client, &format!("{}/api/dci/v3/server", s.url), &token).await["size"], 24);
    stop(s);
}

#[tokio::test]
async fn configured_admin_replaces_the_generated_one() {
    let dir = Dir::new();
    let d = dir.0.to_str().unwrap().to_owned();
    let s = serve_demo(&d, &[("DCIM_ADMIN_EMAIL", "boss@example.com"), ("DCIM_ADMIN_PASSWORD", "boss-password")]);
    assert!(!s.lines.iter().any(|l| l.starts_with("demo admin:")), "{:?}", s.lines);
    assert!(!dir.0.join("demo-admin.txt").exists());
    let client = common::client();
    let token = login(&client, &s.url, "boss@example.com", "boss-password").await;
    let me = get(&client, &format!("{}/auth/v4/whoami", s.url), &token).await;
    assert_eq!(me["roles"], json!(["@admin"]));
    stop(s);
}
