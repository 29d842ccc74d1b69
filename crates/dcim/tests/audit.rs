//! The audit trail (issue 17, item 4), through the real HTTP server on SQLite and
//! PostgreSQL: every write of the OpenAPI document leaves exactly one record naming
//! its caller and target, failures included; edits keep their fields before and after
//! with secrets masked; a customer's server history holds nothing of another
//! customer; old records are removed.

mod common;

use common::{ADMIN_EMAIL, Db, TestServer, fake_server, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

/// The audit records of one request (its own, not those of the tasks it started).
async fn records_of(s: &TestServer, request_id: &str) -> Vec<Value> {
    let q = common::enc(&format!("request_id EQ '{request_id}' AND role NE 'system'"));
    s.get(&format!("/dci/v3/audit?where={q}")).await["list"].as_array().unwrap().clone()
}

async fn send(s: &TestServer, method: Method, path: &str, body: &str, request_id: &str) -> (StatusCode, Value) {
    let t = &s.admin_token;
    let r = common::client_without_pool()
        .request(method, s.url(path))
        .header("Cookie", format!("ses6={t}"))
        .header("x-xsrf-token", t)
        .header("x-request-id", request_id)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    common::json_of(r).await
}

/// Every POST and DELETE route of the OpenAPI document, called as the admin with `{}`
/// (most fail: a missing field, an unknown id, a conflict; some succeed), leaves one
/// record with its operation id, route, caller, target and answer.
async fn every_write_leaves_one_record(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let customer = s.add_user("customer@example.com", "customer-pw-1", "@user").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({ "owner": customer })).await;
    let doc = s.get("/swagger/openapi.json").await;
    let mut checked = 0;
    let mut failures = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["post", "delete"] {
            let Some(op) = item.get(method) else { continue };
            // Ids that exist where deleting them does no harm to the walk (the server
            // is owned, the customer owns it), and unknown ones elsewhere.
            let id = if path.starts_with("/dci/v3/server/") {
                srv
            } else if path.starts_with("/dci/v3/user/") {
                customer
            } else {
                999_999
            };
            let mut concrete = path
                .replace("{id}", &id.to_string())
                .replace("{user}", &customer.to_string())
                .replace("{service}", "billing");
            let mut last_param = None;
            while let (Some(a), Some(b)) = (concrete.find('{'), concrete.find('}')) {
                concrete.replace_range(a..=b, "999999");
                last_param = Some("999999".to_owned());
            }
            let public = path.starts_with("/auth/v4/public/")
                || op.get("security").and_then(Value::as_array).is_some_and(|s| s.iter().all(|r| r == &json!({})));
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let rid = format!("walk-{checked}");
            let (st, v) = send(&s, m.clone(), &concrete, "{}", &rid).await;
            let recs = records_of(&s, &rid).await;
            // A remote site's link (its polls and device answers) is nobody's action:
            // left out of the trail, as docs/API.md says.
            if path.starts_with("/dci/v3/site/link/") {
                assert!(recs.is_empty(), "{method} {path} ({st} {v}) is not recorded: {recs:?}");
                checked += 1;
                continue;
            }
            assert_eq!(recs.len(), 1, "{method} {path} ({st} {v}): one record, got {recs:?}");
            let r = &recs[0];
            let what = format!("{method} {path} ({st} {v}): {r}");
            assert_eq!(r["action"], op["operationId"], "{what}");
            assert_eq!(r["route"], path.as_str(), "{what}");
            assert_eq!(r["method"], m.as_str(), "{what}");
            assert_eq!(r["status"], st.as_u16(), "{what}");
            assert_eq!(r["result"], if st.is_success() { "ok" } else { "error" }, "{what}");
            if !st.is_success() {
                assert_eq!(r["error_code"], v["error"]["code"], "{what}");
                assert_eq!(r["error_msg"], v["error"]["msg"], "{what}");
                failures += 1;
            }
            assert_eq!(r["address"], "127.0.0.1", "{what}");
            if !public {
                assert_eq!(r["email"], ADMIN_EMAIL, "{what}");
                assert_eq!(r["role"], "@admin", "{what}");
                assert!(r["token_id"].is_i64(), "{what}");
            } else {
                assert!(r["email"] == "" || r["email"] == ADMIN_EMAIL, "{what}");
            }
            assert_ne!(r["target_kind"], "", "{what}");
            if let Some(p) = last_param {
                assert_eq!(r["target_id"], p, "{what}");
            } else if path.contains("{id}") && !path.contains("/self/") && (st.is_success() || path.ends_with("{id}")) {
                assert_eq!(r["target_id"], id.to_string(), "{what}");
            }
            if path.starts_with("/dci/v3/server/{id}") {
                assert_eq!(r["server_id"], srv, "{what}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 80, "the document lists the API's writes ({checked})");
    assert!(failures >= 40 && failures < checked, "failures and successes both recorded ({failures} of {checked})");

    // Reads leave nothing; a task's end is recorded as the system's, with the request id.
    let before = s.get("/dci/v3/audit?limit=0").await["size"].as_i64().unwrap();
    s.get("/dci/v3/server").await;
    s.get(&format!("/dci/v3/server/{srv}/history")).await;
    assert_eq!(s.get("/dci/v3/audit?limit=0").await["size"].as_i64().unwrap(), before);
    // The walk left an operation running (it may also have ended already): abort it
    // and wait until it has unwound, as an abort answers before the task ends.
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/operation"), None).await;
    if st == StatusCode::OK {
        wait_task(&s, v["task"].as_i64().unwrap()).await;
    }
    let (st, v) = send(&s, Method::POST, &format!("/dci/v3/server/{srv}/power_on"), "{}", "power-1").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let task = v["task"].as_i64().unwrap();
    wait_task(&s, task).await;
    let q = common::enc("request_id EQ 'power-1'");
    let all = s.get(&format!("/dci/v3/audit?where={q}&orderby=id")).await["list"].clone();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all[0]["action"], "power_on");
    assert_eq!(all[0]["task_id"], task);
    assert_eq!(all[1]["action"], "task.power_on");
    assert_eq!(all[1]["role"], "system");
    assert_eq!(all[1]["task_id"], task);
    assert_eq!(all[1]["server_id"], srv);
    assert_eq!(all[1]["result"], "ok");
    s.stop().await;
}

/// Edits keep each field before and after; a secret shows as `***` and appears nowhere
/// in the trail.
async fn edits_keep_before_and_after_without_secrets(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let secrets = ["Bmc-Secret-Pw-1", "Bmc-Secret-Pw-2", "User-Secret-Pw-3", "User-Secret-Pw-4"];
    let srv = s
        .post(
            "/dci/v3/server",
            json!({"name": "a-1", "location_id": loc, "rack_id": rack, "unit": 3,
                   "ipmi": {"address": "bmc-a-1", "type": "fake", "user": "admin", "password": secrets[0]}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let (_, v) = send(
        &s,
        Method::POST,
        &format!("/dci/v3/server/{srv}"),
        &json!({"note": "moved to row B", "unit": 7,
                "ipmi": {"address": "bmc-a-1b", "type": "fake", "user": "admin", "password": secrets[1]}})
        .to_string(),
        "edit-1",
    )
    .await;
    assert_eq!(v["id"], srv);
    let rec = &records_of(&s, "edit-1").await[0];
    let c = &rec["changes"];
    assert_eq!(c["note"], json!({"before": "", "after": "moved to row B"}), "{rec}");
    assert_eq!(c["unit"], json!({"before": 3, "after": 7}), "{rec}");
    assert_eq!(c["ipmi_address"], json!({"before": "bmc-a-1", "after": "bmc-a-1b"}), "{rec}");
    assert_eq!(c["ipmi_password"], json!({"before": "***", "after": "***"}), "{rec}");
    assert!(c.get("ipmi_user").is_none(), "unchanged fields are not listed: {rec}");
    assert_eq!(
        (rec["target_kind"].as_str(), rec["target_id"].as_str()),
        (Some("server"), Some(srv.to_string().as_str()))
    );

    // Creations name what they made; passwords of users and logins stay out.
    let (_, v) = send(
        &s,
        Method::POST,
        "/dci/v3/user",
        &json!({"email": "c@example.com", "password": secrets[2], "role": "@user"}).to_string(),
        "user-1",
    )
    .await;
    let user = v["id"].as_i64().unwrap();
    let rec = &records_of(&s, "user-1").await[0];
    assert_eq!(
        (rec["target_kind"].as_str(), rec["target_id"].as_str()),
        (Some("user"), Some(user.to_string().as_str()))
    );
    s.post(&format!("/auth/v4/user/{user}/password"), json!({"password": secrets[3]})).await;
    let token = s.login("c@example.com", secrets[3]).await;
    let (st, _) = s
        .call_as(
            &token,
            Method::POST,
            "/auth/v4/public/token",
            Some(json!({"email": "c@example.com", "password": secrets[2]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    let all = s.get("/dci/v3/audit").await;
    let text = all.to_string();
    for secret in secrets.iter().chain([&token.as_str(), &s.admin_token.as_str()]) {
        assert!(!text.contains(secret), "{secret} is in the audit trail");
    }
    let logins = all["list"].as_array().unwrap().iter().filter(|r| r["action"] == "login").count();
    assert!(logins >= 3, "logins are recorded, failed ones too: {all}");

    // Only admins read the trail.
    let (st, _) = s.call_as(&token, Method::GET, "/dci/v3/audit", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    s.stop().await;
}

/// A customer sees its own server's history from when it became the owner: its own
/// actions and the admins' (without who), never the previous customer's.
async fn a_customer_sees_only_its_own_history(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let a = s.add_user("a@example.com", "customer-pw-a", "@user").await;
    let b = s.add_user("b@example.com", "customer-pw-b", "@user").await;
    let ta = s.login("a@example.com", "customer-pw-a").await;
    let tb = s.login("b@example.com", "customer-pw-b").await;

    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({ "owner": a })).await;
    let (st, v) = s
        .call_as(&ta, Method::POST, &format!("/dci/v3/server/{srv}"), Some(json!({"user_note": "A's secret project"})))
        .await;
    assert!(st.is_success(), "{v}");
    let (_, v) = s.call_as(&ta, Method::POST, &format!("/dci/v3/server/{srv}/power_on"), Some(json!({}))).await;
    let a_task = v["task"].as_i64().unwrap();
    wait_task(&s, a_task).await;
    // Ownership is kept to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/owner"), None).await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({ "owner": b })).await;
    let (st, v) =
        s.call_as(&tb, Method::POST, &format!("/dci/v3/server/{srv}"), Some(json!({"user_note": "B's note"}))).await;
    assert!(st.is_success(), "{v}");

    let (st, h) = s.call_as(&tb, Method::GET, &format!("/dci/v3/server/{srv}/history"), None).await;
    assert_eq!(st, StatusCode::OK, "{h}");
    let text = h.to_string();
    assert!(!text.contains("a@example.com") && !text.contains("A's secret project"), "{h}");
    assert!(
        h["list"].as_array().unwrap().iter().all(|e| e["task"]["id"] != a_task),
        "A's task is not B's history: {h}"
    );
    let own = h["list"].as_array().unwrap().iter().find(|e| e["audit"]["user_id"] == b).expect("B's edit");
    assert_eq!(own["audit"]["changes"]["user_note"]["after"], "B's note");
    let assign =
        h["list"].as_array().unwrap().iter().find(|e| e["audit"]["action"] == "set_owner").expect("the assignment");
    assert_eq!(assign["audit"]["email"], "", "who assigned is not shown: {assign}");
    assert_eq!(assign["audit"]["role"], "@admin");

    // The previous owner sees nothing of the server now; the admin sees all of it.
    let (st, _) = s.call_as(&ta, Method::GET, &format!("/dci/v3/server/{srv}/history"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let all = s.get(&format!("/dci/v3/server/{srv}/history?limit=1000")).await;
    let text = all.to_string();
    assert!(text.contains("a@example.com") && text.contains("A's secret project"), "{all}");
    assert!(all["list"].as_array().unwrap().iter().any(|e| e["task"]["id"] == a_task));
    let times: Vec<&str> = all["list"].as_array().unwrap().iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    s.stop().await;
}

/// Records older than `audit_retention_days` are removed by the background job (it runs
/// at start and hourly); newer ones stay.
async fn old_records_are_removed(db: Db) {
    let s = TestServer::start(db).await;
    s.post("/dci/v3/location", json!({"name": "DC-old"})).await;
    s.post("/dci/v3/location", json!({"name": "DC-new"})).await;
    let url = s.cfg.database_url();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let list = s.get("/dci/v3/audit?orderby=id").await;
    let old = list["list"].as_array().unwrap().iter().find(|r| r["route"] == "/dci/v3/location").unwrap()["id"]
        .as_i64()
        .unwrap();
    let total = list["size"].as_i64().unwrap();
    sqlx::query("UPDATE audit SET at = at - $1 WHERE id = $2")
        .bind(400 * 86_400_i64)
        .bind(old)
        .execute(&mut conn)
        .await
        .unwrap();
    // A second process on the same database, keeping 365 days.
    let (second, _dir) = s.another_process(|c| c.audit_retention_days = 365).await;
    let mut left = total;
    for _ in 0..100 {
        left = s.get("/dci/v3/audit?limit=0").await["size"].as_i64().unwrap();
        if left < total {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let list = s.get("/dci/v3/audit").await;
    assert!(list["list"].as_array().unwrap().iter().all(|r| r["id"] != old), "the old record is gone: {list}");
    assert!(list["list"].as_array().unwrap().iter().any(|r| r["route"] == "/dci/v3/location"), "the new one stays");
    assert!(left <= total, "{left} of {total}");
    second.stop(std::time::Duration::from_secs(5)).await.unwrap();
    drop(conn);
    s.stop().await;
}

on_both_backends!(
    every_write_leaves_one_record,
    edits_keep_before_and_after_without_secrets,
    a_customer_sees_only_its_own_history,
    old_records_are_removed
);
