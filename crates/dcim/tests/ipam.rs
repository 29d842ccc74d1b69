//! IP address management through HTTP: networks and pools, allocation that never
//! hands out an address twice, IPv6, bad input that changes nothing, roles.

mod common;

use std::collections::HashSet;

use common::{Db, TestServer, add_networks, assert_error, fake_server, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn allocate(s: &TestServer, srv: i64, body: Value) -> Value {
    let v = s.post(&format!("/dci/v3/server/{srv}/ip"), body).await;
    assert_eq!(v["id"], srv);
    let t = wait_task(s, v["task"].as_i64().unwrap()).await;
    assert_eq!(t["status"], "complete", "{t}");
    t
}

async fn networks_pools_and_counts(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (v4, pool, v6) = add_networks(&s).await;
    let nets = s.get("/ip/v3/ipnet").await;
    assert_eq!(
        nets["list"][0],
        json!({"id": v4, "name": "192.0.2.0/24", "family": 2, "mask": 24, "gateway": "192.0.2.1", "userspace": 1,
               "vlan": "10", "note": "doc", "size": "256", "using_ip": "0", "total_ip": "253",
               "first": "192.0.2.0", "last": "192.0.2.255", "need_reserve": true, "ippools": [pool],
               "kind": "active", "parent": null})
    );
    assert_eq!(
        (nets["list"][1]["family"].clone(), nets["list"][1]["size"].clone(), nets["list"][1]["total_ip"].clone()),
        (json!(10), json!("18446744073709551616"), json!("18446744073709551614"))
    );
    let p = s.get(&format!("/ip/v3/ippool/{pool}")).await;
    assert_eq!(p["is_public"], "true");
    assert_eq!(
        (p["total_ip"].clone(), p["total_ipv4"].clone(), p["using_ip"].clone()),
        (json!("11"), json!("11"), json!("0"))
    );

    for (body, status, field) in [
        (json!({"name": "192.0.2.0/33"}), 422, "name"),
        (json!({"name": "192.0.2.5/24"}), 422, "host bits"),
        (json!({"name": "198.51.100.0/24", "gateway": "203.0.113.1"}), 422, "gateway"),
        (json!({"name": "192.0.2.128/25"}), 409, "in use is not divided"),
        (json!({"name": "192.0.2.0/24", "note": "again"}), 409, "exists"),
    ] {
        let (st, v) = s.call(Method::POST, "/ip/v3/ipnet", Some(body.clone())).await;
        let msg = assert_error(st, &v, StatusCode::from_u16(status).unwrap());
        assert!(msg.contains(field), "{body}: {msg}");
    }
    let (st, v) = s
        .call(
            Method::POST,
            "/ip/v3/ippool",
            Some(json!({"name": "x", "ranges": [{"ipnet": v4, "start": "192.0.2.10", "end": "198.51.100.1"}]})),
        )
        .await;
    assert!(assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY).contains("outside"));
    assert_eq!(s.get("/ip/v3/ipnet").await["size"], 2, "nothing was written");

    // In use: neither the network nor the pool can go.
    let (srv, _, _) = fake_server(&s).await;
    allocate(&s, srv, json!({"ip_pool": pool})).await;
    for p in [format!("/ip/v3/ipnet/{v4}"), format!("/ip/v3/ippool/{pool}")] {
        let (st, v) = s.call(Method::DELETE, &p, None).await;
        assert_error(st, &v, StatusCode::CONFLICT);
    }
    assert_eq!(s.call(Method::DELETE, &format!("/ip/v3/ipnet/{v6}"), None).await.0, StatusCode::OK);
    // A server with addresses cannot be deleted before they are released.
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}"), None).await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("IP addresses"), "{v}");
    s.stop().await;
}

async fn allocation_and_release(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (v4, pool, v6) = add_networks(&s).await;
    let (srv, _, _) = fake_server(&s).await;
    allocate(
        &s,
        srv,
        json!({"domain": "op-1.example.com", "family": "ipv4", "ip_pool": pool, "set_as_main_ipv4": true}),
    )
    .await;
    allocate(&s, srv, json!({"family": "ipv6", "ip_net": v6})).await;
    allocate(&s, srv, json!({"ip_name": "192.0.2.77", "ip_net": v4})).await;
    let ips = s.get(&format!("/dci/v3/server/{srv}/ip")).await;
    let names: Vec<&str> = ips["list"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["192.0.2.10", "192.0.2.77", "2001:db8::2"], "network, gateway and taken addresses skipped");
    let server = s.get(&format!("/dci/v3/server/{srv}")).await;
    let main = ips["list"][0]["id"].clone();
    assert_eq!((server["main_ipv4"].clone(), server["main_ipv6"].clone()), (main.clone(), json!(null)));
    assert_eq!(server["ip"].as_array().unwrap().len(), 3);
    assert_eq!(server["ip"][0]["status"], "ok");
    assert_eq!(server["ip"][0]["domain"], "op-1.example.com");
    assert_eq!(s.get(&format!("/ip/v3/ippool/{pool}")).await["using_ip"], "1");

    // Releasing gives the address back; the pool offers it again first.
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/ip/{main}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(wait_task(&s, v["task"].as_i64().unwrap()).await["status"], "complete");
    let server = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!((server["main_ipv4"].clone(), server["ip"].as_array().unwrap().len()), (json!(null), 2));
    allocate(&s, srv, json!({"ip_pool": pool})).await;
    let again = s.get(&format!("/dci/v3/server/{srv}/ip?where=name%20EQ%20%27192.0.2.10%27")).await;
    assert_eq!(again["size"], 1, "the released address is handed out again");
    // The seed's POST form of the release works too.
    let id = again["list"][0]["id"].clone();
    let v = s.post(&format!("/dci/v3/server/{srv}/ip/{id}"), json!({})).await;
    assert_eq!(wait_task(&s, v["task"].as_i64().unwrap()).await["status"], "complete");
    s.stop().await;
}

/// A hundred clients at once: a hundred different addresses, on both backends.
async fn concurrent_allocations_are_distinct(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (v4, _, _) = add_networks(&s).await;
    let pool = s
        .post(
            "/ip/v3/ippool",
            json!({"name": "big", "ranges": [{"ipnet": v4, "start": "192.0.2.100", "end": "192.0.2.254"}]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    // A pool's name is one line of 1 to 128 characters, on an edit as when it was made.
    let range = json!([{"ipnet": v4, "start": "192.0.2.10", "end": "192.0.2.20"}]);
    for (method, path, body) in [
        (Method::POST, "/ip/v3/ippool".to_owned(), json!({"name": "a\nb", "ranges": range})),
        (Method::POST, format!("/ip/v3/ippool/{pool}"), json!({"name": " "})),
        (Method::POST, format!("/ip/v3/ippool/{pool}"), json!({"name": "x".repeat(129)})),
    ] {
        let (st, v) = s.call(method, &path, Some(body)).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["value"]["field"], "name");
    }
    assert_eq!(s.get(&format!("/ip/v3/ippool/{pool}")).await["name"], "big");
    let (srv, _, _) = fake_server(&s).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (client, url, token) =
            (s.client.clone(), s.url(&format!("/dci/v3/server/{srv}/ip")), s.admin_token.clone());
        set.spawn(async move {
            let r = client.post(url).bearer_auth(token).json(&json!({"ip_pool": pool})).send().await.unwrap();
            common::json_of(r).await
        });
    }
    let answers = set.join_all().await;
    for (st, v) in &answers {
        assert_eq!(*st, StatusCode::OK, "{v}");
        wait_task(&s, v["task"].as_i64().unwrap()).await;
    }
    let ips = s.get(&format!("/dci/v3/ip?where=pool%20EQ%20{pool}")).await;
    let names: HashSet<&str> = ips["list"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!((ips["size"].clone(), names.len()), (json!(100), 100));
    assert!(ips["list"].as_array().unwrap().iter().all(|i| i["status"] == "ok"));
    assert!(!names.contains("192.0.2.255"), "broadcast never handed out");
    s.stop().await;
}

async fn bad_requests_change_nothing(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (v4, pool, v6) = add_networks(&s).await;
    let (srv, _, _) = fake_server(&s).await;
    allocate(&s, srv, json!({"ip_name": "192.0.2.50", "ip_net": v4})).await;
    let before = (s.get("/dci/v3/ip").await, s.get("/dci/v3/task").await["size"].clone());
    for (body, status, msg) in [
        (json!({"ip_name": "192.0.2.50"}), 409, "already taken"),
        (json!({"ip_name": "192.0.2.30", "ip_pool": pool}), 422, "outside pool"),
        (json!({"ip_name": "198.51.100.7"}), 422, "no known network"),
        (json!({"ip_name": "192.0.2.300"}), 422, "not an IP address"),
        (json!({"ip_name": "192.0.2.255", "ip_net": v4}), 422, "broadcast"),
        (json!({"ip_name": "192.0.2.1"}), 422, "gateway"),
        (json!({"ip_name": "2001:db8::5", "family": "ipv4"}), 422, "not ipv4"),
        (json!({"family": "ipv6", "ip_net": v4}), 422, "is not ipv6"),
        (json!({"family": "ipx", "ip_pool": pool}), 422, "family"),
        (json!({"ip_pool": 99}), 404, "ippool 99"),
        (json!({"ip_net": 99}), 404, "ipnet 99"),
        (json!({}), 422, "ip_name, ip_pool or ip_net"),
        (json!({"ip_pool": "one"}), 400, "ip_pool"),
    ] {
        let (st, v) = s.call(Method::POST, &format!("/dci/v3/server/{srv}/ip"), Some(body.clone())).await;
        let got = assert_error(st, &v, StatusCode::from_u16(status).unwrap());
        assert!(got.contains(msg), "{body}: {got}");
    }
    // An exhausted pool: a clear 409 and no row left behind.
    let tiny = s
        .post(
            "/ip/v3/ippool",
            json!({"name": "tiny", "ranges": [{"ipnet": v6, "start": "2001:db8::a", "end": "2001:db8::b"}]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    allocate(&s, srv, json!({"family": "ipv6", "ip_pool": tiny})).await;
    allocate(&s, srv, json!({"family": "ipv6", "ip_pool": tiny})).await;
    let (st, v) = s
        .call(Method::POST, &format!("/dci/v3/server/{srv}/ip"), Some(json!({"family": "ipv6", "ip_pool": tiny})))
        .await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("no free ipv6 address"));
    assert_eq!(s.get("/dci/v3/ip").await["size"], 3);
    assert_eq!(s.get("/dci/v3/task").await["size"], before.1.as_i64().unwrap() + 2);
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/ip/999"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    s.stop().await;
}

async fn users_see_their_own_addresses(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (_, pool, _) = add_networks(&s).await;
    let (srv, _, _) = fake_server(&s).await;
    let other = s.post("/dci/v3/server", json!({"name": "other", "location_id": 1})).await["id"].as_i64().unwrap();
    allocate(&s, srv, json!({"ip_pool": pool})).await;
    allocate(&s, other, json!({"ip_pool": pool})).await;
    let u = s.add_user("ipuser@example.com", "ipuser-password", "@user").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": u})).await;
    let t = s.login("ipuser@example.com", "ipuser-password").await;
    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/ip", None).await;
    assert_eq!((st, v["size"].clone(), v["list"][0]["server"].clone()), (StatusCode::OK, json!(1), json!("op-1")));
    assert_eq!(s.call_as(&t, Method::GET, &format!("/dci/v3/server/{srv}/ip"), None).await.1["size"], 1);
    let (st, v) = s.call_as(&t, Method::GET, &format!("/dci/v3/server/{other}/ip"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    for (m, p) in [
        (Method::POST, format!("/dci/v3/server/{srv}/ip")),
        (Method::GET, "/ip/v3/ipnet".into()),
        (Method::GET, "/ip/v3/ippool".into()),
    ] {
        let (st, v) = s.call_as(&t, m, &p, Some(json!({"ip_pool": pool}))).await;
        assert_error(st, &v, StatusCode::FORBIDDEN);
    }
    s.stop().await;
}

async fn the_main_address_by_an_edit(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (v4, pool, v6) = add_networks(&s).await;
    let (srv, _, _) = fake_server(&s).await;
    let other = s.post("/dci/v3/server", json!({"name": "other", "location_id": 1})).await["id"].as_i64().unwrap();
    allocate(&s, srv, json!({"ip_pool": pool, "set_as_main_ipv4": true})).await;
    allocate(&s, srv, json!({"ip_net": v4})).await;
    allocate(&s, srv, json!({"family": "ipv6", "ip_net": v6})).await;
    allocate(&s, other, json!({"ip_pool": pool})).await;
    let id_of = |v: &Value, i: usize| v["list"][i]["id"].as_i64().unwrap();
    let mine = s.get(&format!("/dci/v3/server/{srv}/ip?orderby=id")).await;
    let (first, second, six) = (id_of(&mine, 0), id_of(&mine, 1), id_of(&mine, 2));
    let theirs = id_of(&s.get(&format!("/dci/v3/server/{other}/ip")).await, 0);
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["main_ipv4"], first);
    // Another of its addresses becomes the main one; the IPv6 one too.
    s.post(&format!("/dci/v3/server/{srv}"), json!({"main_ipv4": second, "main_ipv6": six})).await;
    let v = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!((v["main_ipv4"].as_i64(), v["main_ipv6"].as_i64()), (Some(second), Some(six)), "{v}");
    let q = common::enc(&format!("action EQ 'edit_server' AND server_id EQ {srv}"));
    let rec = &s.get(&format!("/dci/v3/audit?where={q}&orderby=id%20desc")).await["list"][0];
    assert_eq!(rec["changes"]["main_ipv4"], json!({"before": first, "after": second}), "{rec}");
    // Refused, by the field, and nothing changes: another server's address, one of the
    // other family, one that does not exist.
    for (body, needle) in [
        (json!({"main_ipv4": theirs}), "is not one of server"),
        (json!({"main_ipv4": six}), "is not IPv4"),
        (json!({"main_ipv6": second}), "is not IPv6"),
        (json!({"main_ipv4": 999_999}), "there is no address 999999"),
        (json!({"main_ipv4": first, "main_ipv6": theirs}), "is not one of server"),
    ] {
        let (st, v) = s.call(Method::POST, &format!("/dci/v3/server/{srv}"), Some(body.clone())).await;
        let msg = assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["main_ipv4"], second, "nothing half-written");
    // An address being released is not made main; once released, it is no longer main.
    let released = s.post(&format!("/dci/v3/server/{srv}/ip/{second}"), json!({})).await["task"].as_i64().unwrap();
    wait_task(&s, released).await;
    assert!(s.get(&format!("/dci/v3/server/{srv}")).await["main_ipv4"].is_null());
    // null clears it; a customer may not set it.
    s.post(&format!("/dci/v3/server/{srv}"), json!({"main_ipv4": first})).await;
    s.post(&format!("/dci/v3/server/{srv}"), json!({"main_ipv6": null})).await;
    let v = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!((v["main_ipv4"].as_i64(), v["main_ipv6"].clone()), (Some(first), json!(null)), "{v}");
    let u = s.add_user("mainip@example.com", "mainip-password", "@user").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": u})).await;
    let t = s.login("mainip@example.com", "mainip-password").await;
    let (st, v) = s.call_as(&t, Method::POST, &format!("/dci/v3/server/{srv}"), Some(json!({"main_ipv4": six}))).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    s.stop().await;
}

on_both_backends!(
    the_main_address_by_an_edit,
    networks_pools_and_counts,
    allocation_and_release,
    concurrent_allocations_are_distinct,
    bad_requests_change_nothing,
    users_see_their_own_addresses,
);
