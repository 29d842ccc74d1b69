//! The demo as a new user meets it: the real `dcim serve --demo` binary, and every
//! curl line of the seed sent as written against the demo's own data (its servers,
//! templates, networks), in the order of a billing system's order flow: a customer,
//! the server made theirs, a main IPv4, the OS installed, a reboot, suspend and
//! resume, diagnostics, the address and the server released, the disks wiped, and
//! the server back in free stock. On SQLite and on PostgreSQL.

mod common;

use std::collections::BTreeSet;

use common::Served;
use common::seedcalls::{SEED_TOKEN, SeedCall, seed_calls};
use common::tempdir::Dir;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";

struct Demo {
    served: Served,
    client: reqwest::Client,
    token: String,
}

impl Demo {
    fn start(dir: &str, database_url: Option<&str>) -> (Demo, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dcim"));
        cmd.args(["serve", "--demo", "--data-dir", dir, "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .env_remove("DCIM_ADMIN_EMAIL")
            .env_remove("DCIM_ADMIN_PASSWORD");
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let served = Served::start(cmd);
        let creds = served.lines.iter().find(|l| l.starts_with("demo admin:")).expect("credentials printed").clone();
        let words: Vec<&str> = creds.split_whitespace().collect();
        (Demo { served, client: common::client(), token: String::new() }, words[5].to_owned())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.served.url)
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.client.get(self.url(path)).header("Cookie", format!("ses6={}", self.token)).send().await.unwrap();
        let (st, v) = common::json_of(r).await;
        assert_eq!(st, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// Sends one seed line as written, its host, token and placeholders replaced.
    async fn send(&self, c: &SeedCall, vars: &[(&str, String)]) -> Value {
        let mut url = c.url.replace("https://domain.com", &self.served.url);
        for (k, v) in vars.iter().filter(|(k, _)| k.starts_with("path:")) {
            url = url.replace(&k[5..], v);
        }
        let mut rb = self.client.request(Method::from_bytes(c.method.as_bytes()).unwrap(), url.clone());
        for (k, v) in &c.headers {
            rb = rb.header(k, v.replace(SEED_TOKEN, &self.token));
        }
        if let Some(body) = &c.body {
            let mut body = body.clone();
            for (k, v) in vars.iter().filter(|(k, _)| !k.starts_with("path:")) {
                body = body.replace(k, v);
            }
            rb = rb.header("Content-Type", "application/x-www-form-urlencoded").body(body);
        }
        let (status, v) = common::json_of(rb.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{} {url}: {v}", c.method);
        if let Some(task) = v.get("task").and_then(Value::as_i64) {
            let t = self.wait(task).await;
            assert_eq!(t["status"], "complete", "{} {url}: {t}", c.method);
        }
        v
    }

    async fn wait(&self, task: i64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let t = self.get(&format!("/dci/v3/task/{task}")).await;
            if matches!(t["status"].as_str(), Some("complete" | "fail" | "canceled")) {
                return t;
            }
            assert!(std::time::Instant::now() < deadline, "task {task} did not end: {t}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The seed line of `method` on `path` (the seed's own spelling, host and `/api` cut).
fn line<'a>(calls: &'a [SeedCall], used: &mut BTreeSet<usize>, method: &str, path: &str) -> &'a SeedCall {
    let i = calls
        .iter()
        .position(|c| c.method == method && c.url == format!("https://domain.com/api{path}"))
        .unwrap_or_else(|| panic!("the seed has {method} {path}"));
    used.insert(i);
    &calls[i]
}

async fn billing_order_flow_on_the_demo(database_url: Option<&str>) {
    let dir = Dir::new();
    let (mut demo, password) = Demo::start(dir.0.to_str().unwrap(), database_url);
    let r = demo
        .client
        .post(demo.url("/auth/v4/public/token"))
        .json(&json!({"email": "admin@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    demo.token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let calls = seed_calls();
    let mut used = BTreeSet::new();
    let no_vars: &[(&str, String)] = &[];

    // Stock: what billing shows, and the free server it sells.
    let conf = demo.send(line(&calls, &mut used, "GET", "/dci/v3/server/configuration"), no_vars).await;
    let free_of = |conf: &Value, name: &str| {
        conf["list"].as_array().unwrap().iter().find(|c| c["configuration"] == name).unwrap()["free_server_count"]
            .as_i64()
            .unwrap()
    };
    let all = demo.send(line(&calls, &mut used, "GET", "/dci/v3/server"), no_vars).await;
    assert_eq!(all["size"], 24);
    let free = demo.get("/dci/v3/server?where=(owner_email%20IS%20null)%20AND%20is_new%20EQ%20false").await;
    let server = &free["list"][0];
    let srv = server["id"].as_i64().unwrap().to_string();
    let configuration = server["configuration"].as_str().unwrap().to_owned();
    let free_before = free_of(&conf, &configuration);
    let sid = [("path:server_id", srv.clone())];
    let got = demo.send(line(&calls, &mut used, "GET", "/dci/v3/server/server_id"), &sid).await;
    assert_eq!(got["owner"], Value::Null);

    // The customer, and the server made theirs.
    demo.send(line(&calls, &mut used, "GET", "/dci/v3/user"), no_vars).await;
    let user_vars = [
        ("admin@example.com", "billing-customer@example.com".to_owned()),
        ("\"pass\"", "\"a-real-password\"".to_owned()),
        ("\"level\"", "\"@user\"".to_owned()),
    ];
    let customer = demo.send(line(&calls, &mut used, "POST", "/dci/v3/user"), &user_vars).await["id"].as_i64().unwrap();
    let owner_vars = [("path:server_id", srv.clone()), ("user_id", customer.to_string())];
    demo.send(line(&calls, &mut used, "POST", "/dci/v3/server/server_id/owner"), &owner_vars).await;
    assert_eq!(demo.get(&format!("/dci/v3/server/{srv}")).await["owner"]["id"], customer);

    // A main IPv4 from the demo's pool.
    demo.send(line(&calls, &mut used, "GET", "/dci/v3/ip"), no_vars).await;
    demo.send(line(&calls, &mut used, "GET", "/dci/v3/server/server_id/ip"), &sid).await;
    let nets = demo.send(line(&calls, &mut used, "GET", "/ip/v3/ipnet"), no_vars).await;
    let pools = demo.send(line(&calls, &mut used, "GET", "/ip/v3/ippool"), no_vars).await;
    let net = nets["list"].as_array().unwrap().iter().find(|n| n["name"] == "192.0.2.0/24").unwrap()["id"].clone();
    let pool = pools["list"].as_array().unwrap().iter().find(|p| p["name"] == "public-ipv4").unwrap()["id"].clone();
    let ip_vars = [
        ("path:server_id", srv.clone()),
        ("\"domain_name\"", "\"customer.example.com\"".to_owned()),
        ("\"version\"", "\"ipv4\"".to_owned()),
        ("\"address\"", "\"192.0.2.77\"".to_owned()),
        (":net", format!(":{net}")),
        (":pool", format!(":{pool}")),
        (":main_ipv4", ":true".to_owned()),
        (":userspace_id", ":1".to_owned()),
    ];
    demo.send(line(&calls, &mut used, "POST", "/dci/v3/server/server_id/ip"), &ip_vars).await;
    let main = demo.get(&format!("/dci/v3/server/{srv}")).await["main_ipv4"].clone();
    let ips = demo.get(&format!("/dci/v3/server/{srv}/ip")).await;
    let ip = ips["list"].as_array().unwrap().iter().find(|i| i["name"] == "192.0.2.77").expect("the address").clone();
    assert_eq!(ip["id"], main, "the main IPv4 is the address given");

    // The OS, from the demo's own "Debian 12" template and the image dcim serves.
    let templates = demo.get("/dci/v3/os_template").await;
    let debian = templates["list"].as_array().unwrap().iter().find(|t| t["name"] == "Debian 12").unwrap().clone();
    let image = demo.client.get(format!("{}{}", demo.served.url, debian["image_url"].as_str().unwrap()));
    let image = image.send().await.unwrap();
    assert_eq!(image.status(), StatusCode::OK, "the template's image is served without a login");
    let bytes = image.bytes().await.unwrap();
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), debian["image_sha256"].as_str().unwrap());
    let os_vars = [
        ("path:server_id", srv.clone()),
        ("\"raid\"", "\"raid_1\"".to_owned()),
        (":template_id", format!(":{}", debian["id"])),
        ("\"ssh_keys\"", format!("\"{KEY}\"")),
        ("\"pass\"", "\"root-password-1\"".to_owned()),
    ];
    demo.send(line(&calls, &mut used, "POST", "/dci/v3/server/server_id/operation_os"), &os_vars).await;
    let installed = demo.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(installed["os_template"]["id"], debian["id"], "{installed}");

    // Reboot, power, suspend and resume, diagnostics.
    for op in ["power_reset", "power_off", "power_on", "suspend", "resume", "operation_diag"] {
        demo.send(line(&calls, &mut used, "POST", &format!("/dci/v3/server/server_id/{op}")), &sid).await;
    }

    // Cancellation: the address and the server released, the disks wiped.
    let rel_vars = [("path:server_id", srv.clone()), ("path:ip_id", ip["id"].to_string())];
    demo.send(line(&calls, &mut used, "POST", "/dci/v3/server/server_id/ip/ip_id"), &rel_vars).await;
    demo.send(line(&calls, &mut used, "DELETE", "/dci/v3/server/server_id/owner"), &sid).await;
    let wipe = [("path:server_id", srv.clone()), ("\"none\"", "\"simple\"".to_owned())];
    demo.send(line(&calls, &mut used, "POST", "/dci/v3/server/server_id/operation_clear_hdd"), &wipe).await;

    // Back in free stock.
    let after = demo.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!((after["owner"].clone(), after["main_ipv4"].clone()), (Value::Null, Value::Null), "{after}");
    let conf = demo.get("/dci/v3/server/configuration").await;
    assert_eq!(free_of(&conf, &configuration), free_before);
    let free = demo.get("/dci/v3/server?where=(owner_email%20IS%20null)%20AND%20is_new%20EQ%20false").await;
    assert!(
        free["list"].as_array().unwrap().iter().any(|s| s["id"].as_i64().map(|i| i.to_string()) == Some(srv.clone()))
    );
    assert_eq!(used.len(), calls.len(), "every seed line was sent");

    // The image is really fetched and checked: a changed file fails the install.
    std::fs::write(dir.0.join("images/demo-debian-12.img"), b"not the image").unwrap();
    let r = demo
        .client
        .post(demo.url(&format!("/dci/v3/server/{srv}/operation_os")))
        .bearer_auth(&demo.token)
        .json(&json!({"hdd_raid": "raid_1", "os_template_id": debian["id"], "password": "root-password-1"}))
        .send()
        .await
        .unwrap();
    let task = r.json::<Value>().await.unwrap()["task"].as_i64().unwrap();
    let t = demo.wait(task).await;
    assert_eq!(t["status"], "fail", "{t}");
    assert!(t.to_string().contains("sha256"), "the task says why: {t}");

    // The demo's switch ports say what is on them, and a sync from the (fake) switch
    // reads the same back.
    let port = demo.get("/dci/v3/switch/1/port?limit=0,1").await["list"][0].clone();
    assert_eq!(
        (port["description"].as_str(), port["alias"].as_str()),
        (Some("ge-0/0/0"), Some("srv-01 eth0 (rack A1 U1)"))
    );
    let r = demo.client.post(demo.url("/dci/v3/switch/1/sync")).bearer_auth(&demo.token).json(&json!({})).send();
    assert_eq!(r.await.unwrap().status(), StatusCode::OK);
    assert_eq!(demo.get("/dci/v3/switch/1/port?limit=0,1").await["list"][0], port);
    let bmc_port = demo.get("/dci/v3/switch/1/port?limit=24,1").await["list"][0]["alias"].clone();
    assert_eq!(bmc_port, "srv-01 BMC");
    let srv1 = demo.get("/dci/v3/server/1").await;
    assert_eq!(
        (srv1["barcode"].as_str(), srv1["platform"]["name"].as_str()),
        (Some("DC100001"), Some("Colocation 1U"))
    );
    demo.served.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_order_flow_on_the_demo_sqlite() {
    billing_order_flow_on_the_demo(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_order_flow_on_the_demo_postgres() {
    let (schema, url) = common::fresh_postgres_schema().await;
    billing_order_flow_on_the_demo(Some(&url)).await;
    common::drop_postgres_schema(&schema).await;
}
