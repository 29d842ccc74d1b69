//! Authorization probes (issue 18, item 2), on SQLite and PostgreSQL: customer B tries
//! every route of the OpenAPI document against customer A's objects by id (A's server,
//! user, task, address, SSH key, token), every list with filters that name A's objects,
//! the admin-only routes, the fake lab's and the agent report route without its secret.
//! Nothing of A's is reachable: no answer to B is a success on A's objects or carries
//! anything of A's, and A's objects are as they were afterwards.

mod common;

use common::{Db, TestServer, add_networks, fake_server, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// What only A's objects carry: if an answer to B holds one, B reached A.
const A_EMAIL: &str = "alice-q7@example.com";
const A_NOTE: &str = "alice-private-note-q7";
const A_KEY_NAME: &str = "alice-laptop-q7";

/// Routes a customer may call for itself: B's own account, its own tokens, the public
/// ones, and the lists (scoped to B's own objects, checked for A's markers).
fn own_or_scoped(method: &str, path: &str) -> bool {
    path.starts_with("/auth/v4/self")
        || path.starts_with("/auth/v4/public/")
        || path == "/auth/v4/whoami"
        || path == "/auth/v4/time"
        || (path == "/auth/v4/token" && method != "delete")
        || (method == "get" && !path.contains('{'))
}

async fn probes(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (sa, _, _) = fake_server(&s).await;
    let (_, pool, _) = add_networks(&s).await;
    let a = s.add_user(A_EMAIL, "customer-pw-a", "@user").await;
    let b = s.add_user("bob-q7@example.com", "customer-pw-b", "@user").await;
    s.post(&format!("/dci/v3/server/{sa}/owner"), json!({ "owner": a })).await;
    let v = s.post(&format!("/dci/v3/server/{sa}/ip"), json!({"ip_pool": pool})).await;
    wait_task(&s, v["task"].as_i64().unwrap()).await;
    let ta = s.login(A_EMAIL, "customer-pw-a").await;
    let tb = s.login("bob-q7@example.com", "customer-pw-b").await;
    let (st, v) =
        s.call_as(&ta, Method::POST, &format!("/dci/v3/server/{sa}"), Some(json!({"user_note": A_NOTE}))).await;
    assert!(st.is_success(), "{v}");
    let (_, v) = s.call_as(&ta, Method::POST, &format!("/dci/v3/server/{sa}/power_on"), Some(json!({}))).await;
    let a_task = v["task"].as_i64().unwrap();
    wait_task(&s, a_task).await;
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let (st, v) = s
        .call_as(&ta, Method::POST, "/auth/v4/self/sshkey", Some(json!({"name": A_KEY_NAME, "ssh_pub_key": key})))
        .await;
    assert!(st.is_success(), "{v}");
    let a_key = v["id"].as_i64().unwrap();
    let a_ip = s.get(&format!("/dci/v3/server/{sa}/ip")).await["list"][0].clone();
    let (a_ip_id, a_ip_addr) = (a_ip["id"].as_i64().unwrap(), a_ip["name"].as_str().unwrap().to_owned());
    let (_, tokens) = s.call_as(&ta, Method::GET, "/auth/v4/token", None).await;
    let a_token = tokens["list"][0]["id"].clone();
    let before = s.get(&format!("/dci/v3/server/{sa}")).await;
    let markers = [A_EMAIL, A_NOTE, A_KEY_NAME, &a_ip_addr, "op-1.example.com"];

    let doc = s.get("/swagger/openapi.json").await;
    let (mut tried, mut refused) = (0, 0);
    let mut reached = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() || path.starts_with("/auth/key-v4/") {
                continue;
            }
            // A's ids wherever the path takes one.
            let concrete = path
                .replace("/server/{id}", &format!("/server/{sa}"))
                .replace("/user/{id}", &format!("/user/{a}"))
                .replace("/user/{user}", &format!("/user/{a}"))
                .replace("/task/{id}", &format!("/task/{a_task}"))
                .replace("/ip/{id}", &format!("/ip/{a_ip_id}"))
                .replace("/ip/{ip_id}", &format!("/ip/{a_ip_id}"))
                .replace("/sshkey/{id}", &format!("/sshkey/{a_key}"))
                .replace("/token/{id}", &format!("/token/{a_token}"))
                .replace("/token/{token}", &format!("/token/{a_token}"))
                .replace("{id}", "1")
                .replace("{service}", "billing");
            let concrete = fill_params(&concrete);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == "post").then(|| json!({}));
            let (st, v) = s.call_as(&tb, m, &concrete, body).await;
            tried += 1;
            let text = v.to_string();
            let leaked: Vec<&&str> = markers.iter().filter(|m| text.contains(**m)).collect();
            let own = own_or_scoped(method, path) && !concrete.contains(&format!("/{sa}"));
            if !leaked.is_empty() || (st.is_success() && !own) {
                reached.push(format!("{method} {concrete}: {st} {v}"));
            } else if !st.is_success() {
                refused += 1;
            }
        }
    }
    // Lists filtered and searched for A's objects: empty to B.
    for q in [
        format!("/dci/v3/server?where=id%20EQ%20{sa}"),
        format!("/dci/v3/server?where=owner_email%20EQ%20%27{A_EMAIL}%27"),
        format!("/dci/v3/task?where=id%20EQ%20{a_task}"),
        format!("/dci/v3/ip?where=id%20EQ%20{a_ip_id}"),
        "/dci/v3/server?where=user_note%20CP%20%27%25alice%25%27".to_owned(),
    ] {
        let (st, v) = s.call_as(&tb, Method::GET, &q, None).await;
        if st.is_success() && v["size"] != 0 {
            reached.push(format!("GET {q}: {v}"));
        }
    }
    // The agent's report route without its secret.
    let (st, _) = s
        .call(Method::POST, &format!("/agent/v1/task/{a_task}/report"), Some(json!({"kind": "hardware", "data": {}})))
        .await;
    assert!(matches!(st, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{st}");

    assert!(reached.is_empty(), "B reached A's objects:\n{}", reached.join("\n"));
    assert!(tried >= 140 && refused >= 100, "the document's routes were tried ({tried}, {refused} refused)");
    // A's objects are as they were; A's session lives.
    let after = s.get(&format!("/dci/v3/server/{sa}")).await;
    assert_eq!((after["owner"]["id"].clone(), after["user_note"].clone()), (json!(a), json!(A_NOTE)));
    assert_eq!(after["ip"], before["ip"]);
    let (st, _) = s.call_as(&ta, Method::GET, &format!("/auth/v4/self/sshkey/{a_key}"), None).await;
    assert_eq!(st, StatusCode::OK, "A's key and session are there");
    let _ = b;
    s.stop().await;
}

/// Any path parameter left (`{name}`) becomes 1.
fn fill_params(p: &str) -> String {
    let mut out = String::new();
    let mut rest = p;
    while let Some(a) = rest.find('{') {
        let Some(b) = rest[a..].find('}') else { break };
        out.push_str(&rest[..a]);
        out.push('1');
        rest = &rest[a + b + 1..];
    }
    out.push_str(rest);
    out
}

on_both_backends!(probes);
