//! The JSON answers pinned as snapshots (`tests/snapshots/`), a task's included, and
//! the whole OpenAPI document: any change of the wire shape shows up in review. Both backends must produce the very same JSON, so
//! both compare against one snapshot.

mod common;

use common::{Db, TestServer, hw_e2146g, hw_i9};
use reqwest::Method;
use serde_json::{Value, json};

fn tokenless(mut v: Value) -> Value {
    if let Some(t) = v.get_mut("token") {
        *t = json!("[token]");
    }
    v
}

async fn wire_shapes(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, sw, pdu) = s.add_site().await;
    let a = s.add_free_server(loc, rack, 1, hw_i9()).await;
    s.add_free_server(loc, rack, 2, hw_e2146g()).await;
    let port = s.get(&format!("/dci/v3/switch/{sw}/port?limit=0,2")).await;
    s.post(&format!("/dci/v3/server/{a}/switch_connection"), json!({"port": port["list"][0]["id"]})).await;
    s.post(
        &format!("/dci/v3/server/{a}/switch_connection"),
        json!({"port": port["list"][1]["id"], "is_ipmi_connection": true}),
    )
    .await;
    let outlet = s.get(&format!("/dci/v3/pdu/{pdu}/port?limit=0,1")).await;
    s.post(&format!("/dci/v3/server/{a}/pdu_connection"), json!({"port": outlet["list"][0]["id"]})).await;
    let t = s.post("/dci/v3/os_template", json!({"name": "Debian 12", "type": "os", "image_url": "http://192.0.2.1/files/debian-12.img", "image_sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "tags": ["linux"]})).await;
    let u = s.add_user("customer@example.com", "customer-password", "@user").await;
    s.post(&format!("/dci/v3/server/{a}/owner"), json!({"owner": u})).await;

    // A server's uuid is random: redacted.
    insta::assert_json_snapshot!("server", s.get(&format!("/dci/v3/server/{a}")).await, {".uuid" => "[uuid]"});
    insta::assert_json_snapshot!(
        "server_list_limit_1",
        s.get("/dci/v3/server?limit=1,1").await,
        {".list[].uuid" => "[uuid]"}
    );
    insta::assert_json_snapshot!("configuration", s.get("/dci/v3/server/configuration").await);
    insta::assert_json_snapshot!("users", s.get("/dci/v3/user").await);
    insta::assert_json_snapshot!("switch_ports", s.get(&format!("/dci/v3/switch/{sw}/port?limit=0,2")).await);
    insta::assert_json_snapshot!("pdu_ports", s.get(&format!("/dci/v3/pdu/{pdu}/port?limit=0,1")).await);
    insta::assert_json_snapshot!("switches", s.get("/dci/v3/switch").await);
    insta::assert_json_snapshot!("pdus", s.get("/dci/v3/pdu").await);
    insta::assert_json_snapshot!("os_template", s.get(&format!("/dci/v3/os_template/{}", t["id"])).await);
    insta::assert_json_snapshot!("racks", s.get("/dci/v3/rack").await);
    let user_token = s.login("customer@example.com", "customer-password").await;
    insta::assert_json_snapshot!("whoami_user", s.call_as(&user_token, Method::GET, "/auth/v4/whoami", None).await.1);
    let key = s.post(&format!("/auth/v4/user/{u}/key"), json!({})).await;
    insta::assert_json_snapshot!("key", json!({"id": key["id"], "key_len": key["key"].as_str().unwrap().len()}));
    let r = s
        .client
        .post(s.url("/auth/v4/public/token"))
        .json(&json!({"email": "customer@example.com", "password": "customer-password"}));
    insta::assert_json_snapshot!("login", tokenless(r.send().await.unwrap().json().await.unwrap()));
    insta::assert_json_snapshot!(
        "error_conflict",
        s.call(Method::POST, &format!("/dci/v3/server/{a}/owner"), Some(json!({"owner": 1}))).await.1
    );
    insta::assert_json_snapshot!(
        "error_where",
        s.call(Method::GET, "/dci/v3/server?where=nope%20EQ%201", None).await.1
    );
    insta::assert_json_snapshot!(
        "error_not_found",
        s.call_as(&user_token, Method::GET, "/dci/v3/server/2", None).await.1
    );
    // A task as the API shows it, when it is complete; its times redacted.
    let fake = s
        .post(
            "/dci/v3/server",
            json!({"name": "task-1", "location_id": loc, "ipmi": {"address": "bmc-task-1", "type": "fake", "user": "admin", "password": "pw"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let task = s.post(&format!("/dci/v3/server/{fake}/power_reset"), json!({})).await["task"].as_i64().unwrap();
    common::wait_task(&s, task).await;
    insta::assert_json_snapshot!("task", s.get(&format!("/dci/v3/task/{task}")).await, {
        ".created" => "[time]", ".started" => "[time]", ".finished" => "[time]",
        ".progress_info[].started" => "[time]", ".progress_info[].finished" => "[time]",
        ".id" => "[id]", ".server" => "[id]"
    });
    s.stop().await;
}

on_both_backends!(wire_shapes);

#[tokio::test]
async fn openapi_document_is_served() {
    let s = TestServer::start(Db::Sqlite).await;
    let doc = s.get("/swagger/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut paths: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| format!("{} {p}", ops.as_object().unwrap().keys().cloned().collect::<Vec<_>>().join(",")))
        .collect();
    paths.sort();
    insta::assert_json_snapshot!("openapi_paths", paths);
    // The whole document: every schema, parameter and rule a client generates code from.
    insta::assert_json_snapshot!("openapi_document", doc);
    assert!(doc["components"]["schemas"]["Server"]["properties"]["switch_connection"].is_object());
    // Every error answer is described: the envelope for each listed error status and
    // for any other (`default`).
    let envelope = serde_json::json!({"$ref": "#/components/schemas/ErrorEnvelope"});
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().unwrap() {
                if status == "default" || status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(r["content"]["application/json"]["schema"], envelope, "{method} {path} {status}");
                }
            }
            assert!(op["responses"].get("default").is_some(), "{method} {path}");
        }
    }
    // Each schema name is one shape (a server's rack is not the inventory's rack).
    assert!(doc["components"]["schemas"]["ServerRack"].is_object());
    assert!(doc["components"]["schemas"]["Rack"]["properties"]["device_count"].is_object());
    let ui = s.client.get(s.url("/swagger/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger-ui"));
    s.stop().await;
}
