//! IPmanager 6 as published, through HTTP on both backends: userspaces, networks and
//! pools made inside one, pool ranges, addresses IPmanager gives out by itself, their
//! history, the same under `/dci/v3/ipmgr`, server allocation beside reserved
//! addresses, roles, and bad input that writes nothing.

mod common;

use common::{Db, TestServer, assert_error, fake_server, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn err(s: &TestServer, method: Method, path: &str, body: Option<Value>, status: u16) -> String {
    let (st, v) = s.call(method, path, body).await;
    assert_error(st, &v, StatusCode::from_u16(status).unwrap())
}

async fn id_of(s: &TestServer, path: &str, body: Value) -> i64 {
    let v = s.post(path, body).await;
    v["id"].as_i64().unwrap_or_else(|| panic!("{path}: {v}"))
}

async fn userspaces_ranges_and_addresses(db: Db) {
    let s = TestServer::start(db).await;
    let spaces = s.get("/ip/v3/userspace").await;
    assert_eq!(spaces["list"][0], json!({"id": 1, "is_public": true, "note": "public"}));
    let us = id_of(&s, "/ip/v3/userspace", json!({"note": "customer A"})).await;
    assert_eq!(
        s.get(&format!("/ip/v3/userspace/{us}")).await,
        json!({"id": us, "is_public": false, "note": "customer A"})
    );

    // A network per userspace; the same CIDR may be in two userspaces.
    let net = id_of(
        &s,
        &format!("/ip/v3/userspace/{us}/ipnet"),
        json!({"name": "198.51.100.0/24", "gateway": "198.51.100.1", "vlan": "200", "need_reserve": false}),
    )
    .await;
    id_of(&s, "/ip/v3/userspace/1/ipnet", json!({"name": "198.51.100.0/24", "gateway": null})).await;
    let again = Some(json!({"name": "198.51.100.0/24"}));
    assert!(err(&s, Method::POST, &format!("/ip/v3/userspace/{us}/ipnet"), again, 409).await.contains("exists"));
    err(&s, Method::POST, "/ip/v3/userspace/99/ipnet", Some(json!({"name": "203.0.113.0/24"})), 404).await;
    let n = s.get(&format!("/ip/v3/ipnet/{net}")).await;
    assert_eq!((n["userspace"].as_i64(), n["need_reserve"].as_bool()), (Some(us), Some(false)));
    assert_eq!((n["first"].as_str(), n["last"].as_str()), (Some("198.51.100.0"), Some("198.51.100.255")));

    // A pool in the userspace, and its ranges.
    let pool = id_of(&s, &format!("/ip/v3/userspace/{us}/ippool"), json!({"name": "a-pool"})).await;
    let r1 = id_of(&s, &format!("/ip/v3/ippool/{pool}/range"), json!({"name": "198.51.100.10-198.51.100.19"})).await;
    let before = s.get("/ip/v3/range").await["size"].clone();
    for (name, status, says) in [
        ("203.0.113.1-203.0.113.5", 422, "no network of userspace"),
        ("198.51.100.15-198.51.100.30", 409, "overlaps"),
        ("198.51.100.20-198.51.100.11", 422, "ends before"),
        ("198.51.100.20-2001:db8::1", 422, "one family"),
        ("not-an-address", 422, "name"),
    ] {
        let msg =
            err(&s, Method::POST, &format!("/ip/v3/ippool/{pool}/range"), Some(json!({ "name": name })), status).await;
        assert!(msg.contains(says), "{name}: {msg}");
    }
    assert_eq!(s.get("/ip/v3/range").await["size"], before, "nothing was written");
    let r2 = id_of(&s, &format!("/ip/v3/ippool/{pool}/range"), json!({"name": "198.51.100.32/28"})).await;
    let range = s.get(&format!("/ip/v3/range/{r2}")).await;
    assert_eq!(
        range,
        json!({"id": r2, "family": 2, "ippool": pool, "ipnet": net, "name": "198.51.100.32-198.51.100.47",
               "using_ip": "0", "total_ip": "16", "first": "198.51.100.32", "last": "198.51.100.47", "locked": false})
    );
    assert_eq!(s.get(&format!("/ip/v3/range?where=ippool%20EQ%20{pool}")).await["size"], 2);
    assert_eq!(s.get(&format!("/ip/v3/ipnet/{net}")).await["ippools"], json!([pool]));
    let p = s.get(&format!("/ip/v3/ippool/{pool}")).await;
    assert_eq!((p["userspace"].as_i64(), p["total_ip"].as_str()), (Some(us), Some("26")));

    // Addresses: the pool's next free, a given one in a network, one found by userspace.
    let a1 = s.post(&format!("/ip/v3/ippool/{pool}/ip"), json!({"domain": "a1.example.com"})).await;
    assert_eq!(a1["ids"], json!([a1["id"]]));
    let a1 = a1["id"].as_i64().unwrap();
    let a2 = id_of(
        &s,
        &format!("/ip/v3/ipnet/{net}/ip"),
        json!({"name": "198.51.100.200", "status": "special", "note": "router"}),
    )
    .await;
    let a3 = id_of(&s, &format!("/ip/v3/userspace/{us}/ip"), json!({"name": "198.51.100.201"})).await;
    let count = || async { s.get("/ip/v3/ip").await["size"].clone() };
    let before = count().await;
    for (path, body, status) in [
        (format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "198.51.100.1"}), 422),
        (format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "198.51.100.255"}), 422),
        (format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "198.51.100.200"}), 409),
        (format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "203.0.113.9"}), 422),
        (format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "198.51.100.90", "status": "weird"}), 422),
        (format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "198.51.100.90", "ippool": pool}), 422),
        (format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "198.51.100.91", "domain": "bad domain"}), 422),
        (format!("/ip/v3/userspace/{us}/ip"), json!({"name": "10.9.9.9"}), 422),
        (format!("/ip/v3/userspace/{us}/ip"), json!({}), 422),
        (format!("/ip/v3/ippool/{pool}/ip"), json!({"ip_prefix": 29}), 422),
        (format!("/ip/v3/ippool/{pool}/ip"), json!({"family": "ipv6"}), 409),
        (format!("/ip/v3/ippool/{pool}/ip"), json!({"prefered_net": 999}), 422),
        ("/ip/v3/ippool/999/ip".into(), json!({}), 404),
    ] {
        err(&s, Method::POST, &path, Some(body.clone()), status).await;
    }
    assert_eq!(count().await, before, "no address was written");
    let list = s.get(&format!("/ip/v3/ip?where=userspace%20EQ%20{us}&orderby=name")).await;
    let names: Vec<&str> = list["list"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["198.51.100.10", "198.51.100.200", "198.51.100.201"]);
    let two = s.get(&format!("/ip/v3/ip/{a2}")).await;
    assert_eq!(
        two,
        json!({"id": a2, "name": "198.51.100.200", "ip_addr": "198.51.100.200", "domain": "", "ipnet": net,
               "ipnet_name": "198.51.100.0/24", "size": 1, "status": "special", "note": "router",
               "userspace": us, "locked": false, "first": "198.51.100.200", "purpose": "ipmgr"})
    );
    assert_eq!(s.get(&format!("/ip/v3/ip/{a1}")).await["ippool"], pool);
    assert_eq!(s.get(&format!("/dci/v3/ipmgr/ip/{a2}")).await, two, "DCImanager's prefix shows the same");
    assert_eq!(s.get("/dci/v3/ipmgr/ip").await, s.get("/ip/v3/ip").await);
    assert_eq!(s.get(&format!("/ip/v3/range/{r1}/ip")).await["list"][0]["id"], a1);

    // Edit, lock, delete.
    let edit = json!({"locked": true, "note": "core router", "domain": "gw.example.com"});
    assert_eq!(s.post(&format!("/ip/v3/ip/{a2}"), edit).await, json!({"id": a2}));
    err(&s, Method::POST, &format!("/ip/v3/ip/{a2}"), Some(json!({"status": "check"})), 422).await;
    err(&s, Method::POST, &format!("/ip/v3/ip/{a2}"), Some(json!({"note": "a\u{0}b"})), 422).await;
    let two = s.get(&format!("/ip/v3/ip/{a2}")).await;
    assert_eq!(
        (two["locked"].as_bool(), two["note"].as_str(), two["status"].as_str()),
        (Some(true), Some("core router"), Some("special"))
    );
    assert!(err(&s, Method::DELETE, &format!("/ip/v3/ip/{a2}"), None, 409).await.contains("locked"));
    s.post(&format!("/ip/v3/ip/{a2}"), json!({"locked": false})).await;

    // Ranges move only around what is in use.
    let msg =
        err(&s, Method::POST, &format!("/ip/v3/range/{r1}"), Some(json!({"name": "198.51.100.12-198.51.100.19"})), 409)
            .await;
    assert!(msg.contains("198.51.100.10"), "{msg}");
    s.post(&format!("/ip/v3/range/{r1}"), json!({"name": "198.51.100.10-198.51.100.25"})).await;
    assert_eq!(s.get(&format!("/ip/v3/range/{r1}")).await["last"], "198.51.100.25");
    err(&s, Method::DELETE, &format!("/ip/v3/range/{r1}"), None, 409).await;
    s.call(Method::DELETE, &format!("/ip/v3/range/{r2}"), None).await;
    err(&s, Method::GET, &format!("/ip/v3/range/{r2}"), None, 404).await;

    // The userspace holds things: it stays; so does the public one.
    err(&s, Method::DELETE, &format!("/ip/v3/userspace/{us}"), None, 409).await;
    err(&s, Method::DELETE, "/ip/v3/userspace/1", None, 409).await;

    for id in [a1, a2, a3] {
        let (st, v) = s.call(Method::DELETE, &format!("/ip/v3/ip/{id}"), None).await;
        assert_eq!((st, v), (StatusCode::OK, json!({"id": id})));
    }
    err(&s, Method::GET, &format!("/ip/v3/ip/{a1}"), None, 404).await;
    // A deleted address is given again first.
    let again = s.post(&format!("/ip/v3/ippool/{pool}/ip"), json!({})).await["id"].as_i64().unwrap();
    assert_eq!(s.get(&format!("/ip/v3/ip/{again}")).await["name"], "198.51.100.10");

    // History: created, edited (twice), deleted; then created again.
    let h = s.get(&format!("/ip/v3/userspace/{us}/history/198.51.100.200")).await;
    let data: Vec<&Value> = h["list"].as_array().unwrap().iter().map(|e| &e["data"]).collect();
    assert_eq!(data.len(), 4, "{h}");
    assert!(data[0]["old"].is_null() && data[0]["new"]["status"] == "special");
    assert_eq!((data[1]["old"]["locked"].as_bool(), data[1]["new"]["locked"].as_bool()), (Some(false), Some(true)));
    assert_eq!(data[1]["new"]["domain"], "gw.example.com");
    assert!(data[3]["new"].is_null() && data[3]["old"]["name"] == "198.51.100.200");
    assert_eq!(h["list"][0]["reference"], a2);
    assert_eq!(h["list"][0]["date_time"].as_str().unwrap().len(), 19);
    let h10 = s.get(&format!("/ip/v3/userspace/{us}/history/198.51.100.10")).await;
    assert_eq!(h10["size"], 3);
    assert_eq!(s.get("/ip/v3/userspace/1/history/198.51.100.200").await["size"], 0, "another userspace's");
    err(&s, Method::GET, &format!("/ip/v3/userspace/{us}/history/nonsense"), None, 422).await;

    // Emptied, the userspace goes.
    s.call(Method::DELETE, &format!("/ip/v3/ip/{again}"), None).await;
    s.call(Method::DELETE, &format!("/ip/v3/range/{r1}"), None).await;
    s.call(Method::DELETE, &format!("/ip/v3/ippool/{pool}"), None).await;
    s.call(Method::DELETE, &format!("/ip/v3/ipnet/{net}"), None).await;
    let (st, v) = s.call(Method::DELETE, &format!("/ip/v3/userspace/{us}"), None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"id": us})));
    s.stop().await;
}

async fn servers_beside_reserved_addresses_and_roles(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let uid = s.add_user("c@example.com", "c-password", "@user").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": uid})).await;
    let net = id_of(&s, "/ip/v3/ipnet", json!({"name": "192.0.2.0/24", "gateway": "192.0.2.1"})).await;
    // IPmanager reserves .2 for a service; the server's next free address skips it.
    let reserved =
        id_of(&s, &format!("/ip/v3/ipnet/{net}/ip"), json!({"name": "192.0.2.2", "status": "service"})).await;
    let v = s.post(&format!("/dci/v3/server/{srv}/ip"), json!({"ip_net": net, "domain": "op-1.example.com"})).await;
    let t = wait_task(&s, v["task"].as_i64().unwrap()).await;
    assert_eq!(t["status"], "complete", "{t}");
    let own = s.get(&format!("/dci/v3/server/{srv}/ip")).await["list"][0].clone();
    assert_eq!(own["name"], "192.0.2.3");
    let own_id = own["id"].as_i64().unwrap();
    let ip = s.get(&format!("/ip/v3/ip/{own_id}")).await;
    assert_eq!(
        (ip["server"].as_i64(), ip["purpose"].as_str(), ip["status"].as_str()),
        (Some(srv), Some("server"), Some("busy"))
    );
    let msg = err(&s, Method::DELETE, &format!("/ip/v3/ip/{own_id}"), None, 409).await;
    assert!(msg.contains(&format!("server {srv}")), "{msg}");
    assert_eq!(s.get("/ip/v3/userspace/1/history/192.0.2.3").await["size"], 1);

    // A customer sees the addresses of its servers, under both prefixes, and no more.
    let c = s.login("c@example.com", "c-password").await;
    for prefix in ["/ip/v3", "/dci/v3/ipmgr"] {
        let (st, v) = s.call_as(&c, Method::GET, &format!("{prefix}/ip"), None).await;
        assert_eq!(st, StatusCode::OK);
        let ids: Vec<i64> = v["list"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [own_id], "{prefix}");
        let (st, _) = s.call_as(&c, Method::GET, &format!("{prefix}/ip/{own_id}"), None).await;
        assert_eq!(st, StatusCode::OK);
        let (st, v) = s.call_as(&c, Method::GET, &format!("{prefix}/ip/{reserved}"), None).await;
        assert_error(st, &v, StatusCode::NOT_FOUND);
        for (m, path, body) in [
            (Method::POST, format!("{prefix}/ip/{own_id}"), Some(json!({"note": "mine"}))),
            (Method::DELETE, format!("{prefix}/ip/{reserved}"), None),
            (Method::GET, format!("{prefix}/userspace"), None),
            (Method::POST, format!("{prefix}/userspace"), Some(json!({"note": "x"}))),
            (Method::GET, format!("{prefix}/range"), None),
            (Method::GET, format!("{prefix}/ipnet"), None),
            (Method::POST, format!("{prefix}/ipnet/{net}/ip"), Some(json!({"name": "192.0.2.50"}))),
            (Method::GET, format!("{prefix}/userspace/1/history/192.0.2.3"), None),
        ] {
            let (st, v) = s.call_as(&c, m.clone(), &path, body).await;
            assert_error(st, &v, StatusCode::FORBIDDEN);
        }
    }
    assert_eq!(s.get(&format!("/ip/v3/ip/{own_id}")).await["note"], "", "nothing was written");
    s.stop().await;
}

/// Networks nest: a container holds networks and gives out no address itself.
async fn container_networks(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let big = id_of(&s, "/ip/v3/ipnet", json!({"name": "10.20.0.0/16"})).await;
    let a = id_of(&s, "/ip/v3/ipnet", json!({"name": "10.20.1.0/24", "gateway": "10.20.1.1"})).await;
    let b = id_of(&s, "/ip/v3/userspace/1/ipnet", json!({"name": "10.20.2.0/24", "gateway": "10.20.2.1"})).await;
    let g = s.get(&format!("/ip/v3/ipnet/{big}")).await;
    assert_eq!((g["kind"].as_str(), g["parent"].clone()), (Some("container"), Value::Null));
    let g = s.get(&format!("/ip/v3/ipnet/{a}")).await;
    assert_eq!((g["kind"].as_str(), g["parent"].clone()), (Some("active"), json!(big)));
    // A network around existing ones is a container too.
    let top = id_of(&s, "/ip/v3/ipnet", json!({"name": "10.0.0.0/8"})).await;
    assert_eq!(s.get(&format!("/ip/v3/ipnet/{big}")).await["parent"], top);

    let before = s.get("/ip/v3/ip").await["size"].clone();
    for (path, body, field) in [
        (format!("/ip/v3/ipnet/{big}/ip"), json!({"name": "10.20.1.5"}), "ipnet"),
        (format!("/ip/v3/ipnet/{big}/ip"), json!({}), "ipnet"),
        ("/ip/v3/userspace/1/ip".to_owned(), json!({"name": "10.20.9.9"}), "name"),
        (format!("/dci/v3/server/{srv}/ip"), json!({"ip_net": big}), "ip_net"),
        (format!("/dci/v3/server/{srv}/ip"), json!({"ip_name": "10.20.9.9"}), "ip_name"),
        (
            "/ip/v3/ippool".to_owned(),
            json!({"name": "p", "ranges": [{"ipnet": big, "start": "10.20.3.1", "end": "10.20.3.9"}]}),
            "ranges[0].ipnet",
        ),
    ] {
        let (st, v) = s.call(Method::POST, &path, Some(body.clone())).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["value"]["field"], field, "{path} {body}: {v}");
    }
    assert_eq!(s.get("/ip/v3/ip").await["size"], before, "nothing was written");
    // An address lands in the most specific network, by userspace or by name alone.
    let ip = id_of(&s, "/ip/v3/userspace/1/ip", json!({"name": "10.20.2.7"})).await;
    assert_eq!(s.get(&format!("/ip/v3/ip/{ip}")).await["ipnet"], b);
    let v = s.post(&format!("/dci/v3/server/{srv}/ip"), json!({"ip_name": "10.20.1.9"})).await;
    assert_eq!(wait_task(&s, v["task"].as_i64().unwrap()).await["status"], "complete");
    let own = s.get(&format!("/dci/v3/server/{srv}/ip")).await["list"][0].clone();
    assert_eq!(own["network"], "10.20.1.0/24");
    // A network in use is not divided; a container goes after its networks.
    let msg = err(&s, Method::POST, "/ip/v3/ipnet", Some(json!({"name": "10.20.1.128/25"})), 409).await;
    assert!(msg.contains("not divided"), "{msg}");
    assert!(err(&s, Method::DELETE, &format!("/ip/v3/ipnet/{big}"), None, 409).await.contains("container"));
    s.call(Method::DELETE, &format!("/ip/v3/ip/{ip}"), None).await;
    s.call(Method::DELETE, &format!("/ip/v3/ipnet/{b}"), None).await;
    let r = s.call(Method::DELETE, &format!("/ip/v3/ipnet/{top}"), None).await;
    assert_error(r.0, &r.1, StatusCode::CONFLICT);
    s.stop().await;
}

on_both_backends!(userspaces_ranges_and_addresses, servers_beside_reserved_addresses_and_roles, container_networks);
