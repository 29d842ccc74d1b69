//! Logs as JSON lines from the real binary (`DCIM_LOG_FORMAT=json`): each request's line
//! carries its request id (the client's `X-Request-Id`, or one dcim made and returned),
//! route template, status, latency and caller; a task's lines carry the id of the
//! request that started it; and no password, token or one-time key appears anywhere.

mod common;

use std::time::{Duration, Instant};

use common::tempdir::Dir;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::{Value, json};

const USER_PASSWORD: &str = "user-secret-pw-1";
const BMC_PASSWORD: &str = "bmc-secret-pw-9";
const WEBHOOK_SECRET: &str = "webhook-secret-key-42";

struct Logged {
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
}

impl Logged {
    fn start(dir: &Dir) -> Logged {
        let log = dir.0.join("dcim.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_dcim"))
            .args(["serve", "--fake-drivers", "--data-dir", dir.0.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .env("DCIM_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("DCIM_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("DCIM_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("DCIM_POWER_POLL_SECS", "0")
            .env("DCIM_PORT_POLL_SECS", "0")
            .env("DCIM_TASK_POLL_MS", "20")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        // Held at once, so a failed start still kills it (Drop).
        let mut me = Logged { child, url: String::new(), log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&me.log).unwrap_or_default();
            if let Some(url) = text.lines().find_map(|l| l.strip_prefix("dcim listening on ")) {
                me.url = url.trim().to_owned();
                return me;
            }
            assert!(Instant::now() < deadline, "dcim did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let dir = Dir::new();
    let mut d = Logged::start(&dir);
    let c = common::client();
    let url = |p: &str| format!("{}{p}", d.url);
    let login = c.post(url("/auth/v4/public/token")).json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}));
    let token = login.send().await.unwrap().json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let post = |p: &str, body: Value| c.post(url(p)).bearer_auth(&token).json(&body).send();

    // The client's request id comes back; a missing or unusable one is made.
    let r = c.get(url("/dci/v3/server")).bearer_auth(&token).header("X-Request-Id", "test-req-42").send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "test-req-42");
    let r = c.get(url("/dci/v3/server")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 36, "a UUID");
    let r = c.get(url("/health")).header("X-Request-Id", "not a plain token").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 36, "replaced");

    // Secrets pass through: a user's password, a BMC's, a one-time key, a token.
    let user = post("/dci/v3/user", json!({"email": "u@example.com", "password": USER_PASSWORD})).await.unwrap();
    let uid = user.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let loc =
        post("/dci/v3/location", json!({"name": "DC"})).await.unwrap().json::<Value>().await.unwrap()["id"].clone();
    let srv = post(
        "/dci/v3/server",
        json!({"name": "s1", "location_id": loc, "ipmi": {"address": "bmc-s1", "type": "fake", "user": "admin",
               "password": BMC_PASSWORD}}),
    )
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap()["id"]
        .as_i64()
        .unwrap();
    // A webhook's secret, given and made (its endpoint, a closed port, fails and retries).
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["user.created"], "secret": WEBHOOK_SECRET});
    assert!(post("/dci/v3/webhook", hook).await.unwrap().status().is_success());
    let made = post("/dci/v3/webhook", json!({"url": "http://127.0.0.1:9/other", "events": ["user.created"]}))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    post("/dci/v3/user", json!({"email": "w@example.com", "password": USER_PASSWORD})).await.unwrap();
    let key = post(&format!("/auth/v4/user/{uid}/key"), json!({})).await.unwrap().json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c.get(url(&format!("/auth/key-v4/{key}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let user_token = c
        .post(url("/auth/v4/public/token"))
        .json(&json!({"email": "u@example.com", "password": USER_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c.delete(url(&format!("/auth/v4/token/{user_token}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A task started by a request carries its id.
    let r = c
        .post(url(&format!("/dci/v3/server/{srv}/power_on")))
        .bearer_auth(&token)
        .header("X-Request-Id", "power-req-7")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let task = r.json::<Value>().await.unwrap()["task"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = c.get(url(&format!("/dci/v3/task/{task}"))).bearer_auth(&token).send().await.unwrap();
        if t.json::<Value>().await.unwrap()["status"] == "complete" {
            break;
        }
        assert!(Instant::now() < deadline, "the power task ends");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An internal error: a stored switch protocol no build knows. The answer is the
    // envelope saying only that the log has the details; the log has the cause, once,
    // with the request id.
    let sw = post("/dci/v3/switch", json!({"name": "sw", "location_id": loc, "ip": "127.0.0.1", "protocol": "fake"}))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.0.join("dcim.db").display())).await.unwrap();
    sqlx::query("UPDATE switches SET protocol = 'carrier-pigeon' WHERE id = $1").bind(sw).execute(&db).await.unwrap();
    db.close().await;
    let r = c
        .post(url(&format!("/dci/v3/switch/{sw}/sync")))
        .bearer_auth(&token)
        .header("X-Request-Id", "broken-req-9")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let answer = r.text().await.unwrap();
    assert!(answer.contains("the server log has the details") && !answer.contains("carrier-pigeon"), "{answer}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    std::process::Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status().unwrap();
    let _ = d.child.wait();

    let text = std::fs::read_to_string(&d.log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.starts_with("dcim listening on "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "{text}");
    let answered = |id: &str| {
        lines
            .iter()
            .find(|l| l["span"]["request_id"] == id && l["fields"]["message"] == "answered")
            .unwrap_or_else(|| panic!("the line of request {id} in {text}"))
            .clone()
    };
    let l = answered("test-req-42");
    assert_eq!(l["span"]["route"], "/dci/v3/server");
    assert_eq!(l["span"]["method"], "GET");
    assert_eq!(l["span"]["user_id"], 1);
    assert_eq!(l["fields"]["status"], 200);
    assert!(l["fields"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(answered("power-req-7")["span"]["route"], "/dci/v3/server/{id}/power_on");
    let task_line = lines
        .iter()
        .find(|l| l["span"]["name"] == "task" && l["span"]["request_id"] == "power-req-7")
        .unwrap_or_else(|| panic!("a line of task {task} with its request id in {text}"));
    assert_eq!(task_line["span"]["task_id"], task);
    let internal: Vec<&Value> =
        lines.iter().filter(|l| l["span"]["request_id"] == "broken-req-9" && l["level"] == "ERROR").collect();
    assert_eq!(internal.len(), 1, "the cause, logged once: {internal:?}");
    // The stored value is refused where the row is decoded, with its column and value.
    assert_eq!(internal[0]["fields"]["message"], "storage failure");
    let cause = internal[0]["fields"]["error"].as_str().unwrap();
    assert!(cause.contains("protocol") && cause.contains("DeviceProtocol"), "{cause}");
    assert!(cause.contains("carrier-pigeon"), "{cause}");
    for secret in [
        ADMIN_PASSWORD,
        USER_PASSWORD,
        BMC_PASSWORD,
        WEBHOOK_SECRET,
        made.as_str(),
        key.as_str(),
        token.as_str(),
        user_token.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret is in the log: {secret}");
    }
    // Paths appear as route templates only.
    assert!(text.contains(r#""route":"/auth/key-v4/{key}""#), "{text}");
    assert_eq!(text.matches("/auth/key-v4/").count(), text.matches("/auth/key-v4/{key}").count());
    assert_eq!(text.matches("/auth/v4/token/").count(), text.matches("/auth/v4/token/{token}").count());
}
