//! The seed's own curl lines, read from the fixture copy of DCImanager's "Examples
//! of API use" page and sent as written (host, token and placeholder values
//! replaced) to a running server; each answer must have the shape and JSON types of
//! the page's example. Also pins the full answers as snapshots.

mod common;

use std::collections::BTreeSet;

use common::seedcalls::{SEED, SEED_TOKEN, SeedCall, seed_calls};
use common::{Db, TestServer, hw_e2146g, hw_i9};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Fields that are `null` when nothing backs them (contract-notes: "an absent
/// relation is null").
const NULLABLE: &[&str] = &[
    "operation",
    "os_template",
    "pdu_connection",
    "ipmi",
    "intel_amt",
    "platform",
    "rack",
    "chassis",
    "owner",
    "owner_email",
    "main_ipv4",
    "main_ipv6",
    "slot",
    "unit",
    "mac",
    "configuration",
    "web_url",
    "userspace",
];

/// Checks that `actual` has every key of `example` with the same JSON type.
fn assert_shape(example: &Value, actual: &Value, path: &str, checked: &mut BTreeSet<String>) {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    if actual.is_null() && NULLABLE.contains(&leaf) {
        return;
    }
    checked.insert(path.to_owned());
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                let av = a.get(k).unwrap_or_else(|| panic!("{p} is missing from {actual}"));
                if k == "roles" {
                    // The seed prints the roles array as the text "[@user]" (contract-notes).
                    assert!(av.as_array().is_some_and(|r| r.iter().all(Value::is_string)), "{p}: {av}");
                    continue;
                }
                assert_shape(ev, av, &p, checked);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(e0) = e.first().filter(|e0| !e0.as_object().is_some_and(|o| o.is_empty())) {
                for (i, av) in a.iter().enumerate() {
                    assert_shape(e0, av, &format!("{path}[{i}]"), checked);
                }
            }
        }
        (Value::String(_), Value::String(_)) | (Value::Bool(_), Value::Bool(_)) => {}
        (Value::Number(e), Value::Number(a)) => {
            assert_eq!(e.is_i64(), a.is_i64(), "{path}: integer expected like the example, got {actual}");
        }
        _ => panic!("{path}: expected the type of {example}, got {actual}"),
    }
}

/// Every curl line of the seed is answered.
fn in_scope(_: &SeedCall) -> bool {
    true
}

#[test]
fn the_fixture_yields_every_curl_line_of_the_seed() {
    let calls = seed_calls();
    assert_eq!(calls.len(), SEED.lines().filter(|l| l.starts_with("curl ")).count());
    assert_eq!(calls.len(), 21);
    assert_eq!(calls.iter().filter(|c| in_scope(c)).count(), 21);
    for c in &calls {
        assert!(c.url.starts_with("https://domain.com/api/"), "{c:?}");
        assert!(c.example.is_some(), "every seed call documents its answer: {c:?}");
        assert!(c.headers.iter().any(|(k, v)| k == "Cookie" && v == "ses6=E6900A56BE7DF0FB28ED7BE7"));
    }
}

async fn seed_calls_answer_in_the_seeds_shape(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, sw, pdu) = s.add_site().await;
    let a = s.add_free_server(loc, rack, 1, hw_i9()).await;
    let b = s.add_free_server(loc, rack, 2, hw_e2146g()).await;
    let ports = s.get(&format!("/dci/v3/switch/{sw}/port")).await;
    let outlets = s.get(&format!("/dci/v3/pdu/{pdu}/port")).await;
    s.post(&format!("/dci/v3/server/{a}/switch_connection"), json!({"port": ports["list"][0]["id"]})).await;
    s.post(
        &format!("/dci/v3/server/{a}/switch_connection"),
        json!({"port": ports["list"][1]["id"], "is_ipmi_connection": true}),
    )
    .await;
    s.post(&format!("/dci/v3/server/{a}/pdu_connection"), json!({"port": outlets["list"][0]["id"]})).await;
    let customer = s.add_user("customer@example.com", "customer-pass", "@user").await;
    s.post(&format!("/dci/v3/server/{b}/owner"), json!({"owner": customer})).await;
    // The operations run on the fake hardware.
    s.post(&format!("/dci/v3/server/{a}"), json!({"ipmi": {"address": "bmc-seed", "type": "fake"}})).await;
    let os = s.post("/dci/v3/os_template", json!({"name": "Debian 12", "type": "os", "image_url": "http://192.0.2.1/files/debian-12.img", "image_sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})).await["id"].clone();
    s.post("/dci/v3/os_template", json!({"name": "Diag6", "type": "diag"})).await;
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";
    // Addresses: one already on the server, so the lists have something to show.
    let (net, pool, _) = common::add_networks(&s).await;
    let first = s.post(&format!("/dci/v3/server/{a}/ip"), json!({"ip_pool": pool})).await;
    common::wait_task(&s, first["task"].as_i64().unwrap()).await;
    let ip_id = s.get(&format!("/dci/v3/server/{a}/ip")).await["list"][0]["id"].as_i64().unwrap();

    let mut checked = BTreeSet::new();
    let mut new_user_no = 0;
    for c in seed_calls().into_iter().filter(in_scope) {
        let url = c
            .url
            .replace("https://domain.com", &s.base)
            .replace("server_id", &a.to_string())
            .replace("ip_id", &ip_id.to_string());
        let mut rb = s.client.request(Method::from_bytes(c.method.as_bytes()).unwrap(), url.clone());
        for (k, v) in &c.headers {
            rb = rb.header(k, v.replace(SEED_TOKEN, &s.admin_token));
        }
        if let Some(body) = &c.body {
            new_user_no += 1;
            // Placeholders of the seed, read rather than copied (contract-notes).
            let body = body
                .replace("admin@example.com", &format!("billing-{new_user_no}@example.com"))
                .replace("\"pass\"", "\"a-real-password\"")
                .replace("\"level\"", "\"@user\"")
                .replace("user_id", &customer.to_string())
                .replace("\"raid\"", "\"raid_1\"")
                .replace(":template_id", &format!(":{os}"))
                .replace("\"ssh_keys\"", &format!("\"{KEY}\""))
                .replace("\"domain_name\"", "\"a.example.com\"")
                .replace("\"version\"", "\"ipv4\"")
                .replace("\"address\"", "\"192.0.2.15\"")
                .replace(":net", &format!(":{net}"))
                .replace(":pool", &format!(":{pool}"))
                .replace(":main_ipv4", ":true")
                .replace(":userspace_id", ":1");
            // curl -d sends a form content type; the server reads JSON regardless.
            rb = rb.header("Content-Type", "application/x-www-form-urlencoded").body(body);
        }
        let (status, v) = common::json_of(rb.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{} {url}: {v}", c.method);
        let example = c.example.as_ref().unwrap();
        assert_shape(example, &v, &format!("{} {}", c.method, c.url), &mut checked);
        if let Some(list) = v.get("list") {
            assert!(!list.as_array().unwrap().is_empty(), "{url} lists something to check");
        }
        if let Some(task) = v.get("task").and_then(Value::as_i64) {
            let t = common::wait_task(&s, task).await;
            assert_eq!(t["status"], "complete", "{url}: {t}");
        }
    }
    // The nested objects were really filled and checked, not skipped as null.
    for must in [".ipmi", ".rack", ".location", ".switch_connection[1]", ".pdu_connection", ".owner"] {
        assert!(checked.iter().any(|p| p.ends_with(must) || p.contains(&format!("{must}."))), "{must} was checked");
    }
    s.stop().await;
}

on_both_backends!(seed_calls_answer_in_the_seeds_shape);
