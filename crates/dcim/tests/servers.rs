//! Servers, owners, configurations and roles through HTTP, on both backends.

mod common;

use common::{Db, TestServer, add_networks, assert_error, fake_server, fast_tasks, hw_e2146g, hw_i9, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn owner_assign_and_release(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let srv = s.add_free_server(loc, rack, 1, hw_i9()).await;
    let u1 = s.add_user("u1@example.com", "password-1", "@user").await;
    let u2 = s.add_user("u2@example.com", "password-2", "@user").await;
    let path = format!("/dci/v3/server/{srv}/owner");

    assert_eq!(s.post(&path, json!({"owner": u1})).await, json!({"id": srv}));
    assert_eq!(s.post(&path, json!({"owner": u1})).await, json!({"id": srv}), "the owner may repeat it");
    let (st, v) = s.call(Method::POST, &path, Some(json!({"owner": u2}))).await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("u1@example.com"));
    let got = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(
        (got["owner"].clone(), got["owner_email"].clone()),
        (json!({"id": u1, "email": "u1@example.com"}), json!("u1@example.com"))
    );
    assert_eq!(s.get(&format!("/dci/v3/user?where=id%20EQ%20{u1}")).await["list"][0]["server_count"], 1);

    // A user that owns servers cannot be deleted.
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/user/{u1}"), None).await;
    assert_error(st, &v, StatusCode::CONFLICT);
    let (st, v) = s.call(Method::DELETE, &path, None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"id": srv})));
    let (st, _) = s.call(Method::DELETE, &path, None).await;
    assert_eq!(st, StatusCode::OK, "releasing a free server is not an error");
    let got = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!((got["owner"].clone(), got["owner_email"].clone()), (json!(null), json!(null)));
    assert_eq!(s.call(Method::DELETE, &format!("/dci/v3/user/{u1}"), None).await.0, StatusCode::OK);

    for (p, body) in [("/dci/v3/server/999/owner", json!({"owner": u2})), (path.as_str(), json!({"owner": 999}))] {
        let (st, v) = s.call(Method::POST, p, Some(body)).await;
        assert_error(st, &v, StatusCode::NOT_FOUND);
    }
    assert_eq!(s.call(Method::DELETE, "/dci/v3/server/999/owner", None).await.0, StatusCode::NOT_FOUND);
    s.stop().await;
}

/// Fifty clients race for one free server: exactly one wins.
async fn fifty_racing_owners_one_winner(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let srv = s.add_free_server(loc, rack, 1, hw_i9()).await;
    let mut users = vec![];
    for i in 0..50 {
        users.push(s.add_user(&format!("racer{i}@example.com"), "racer-password", "@user").await);
    }
    let path = format!("/dci/v3/server/{srv}/owner");
    let mut set = tokio::task::JoinSet::new();
    for u in users.clone() {
        let (client, url, token) = (s.client.clone(), s.url(&path), s.admin_token.clone());
        set.spawn(async move {
            let r = client
                .post(url)
                .header("Cookie", format!("ses6={token}"))
                .header("x-xsrf-token", token)
                .body(json!({"owner": u}).to_string())
                .send()
                .await
                .unwrap();
            (u, common::json_of(r).await)
        });
    }
    let results = set.join_all().await;
    let winners: Vec<i64> = results.iter().filter(|(_, (st, _))| *st == StatusCode::OK).map(|(u, _)| *u).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, (st, v)) in results.iter().filter(|(_, (st, _))| *st != StatusCode::OK) {
        assert_error(*st, v, StatusCode::CONFLICT);
    }
    let got = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(got["owner"]["id"], winners[0]);
    s.stop().await;
}

async fn free_servers_per_configuration(db: Db) {
    let s = TestServer::start(db).await;
    assert_eq!(s.get("/dci/v3/server/configuration").await, json!({"list": [], "size": 0}));
    let (loc, rack, _, _) = s.add_site().await;
    let a = s.add_free_server(loc, rack, 1, hw_i9()).await;
    s.add_free_server(loc, rack, 2, hw_i9()).await;
    let c = s.add_free_server(loc, rack, 3, hw_e2146g()).await;
    let conf = s.get("/dci/v3/server/configuration").await;
    assert_eq!(
        conf,
        json!({"list": [
            {"configuration": "E-2146G-64Gb-1920SSD-3840SSD", "free_server_count": 1},
            {"configuration": "i9-9900K-64Gb-2x1024NVMe", "free_server_count": 2}
        ], "size": 2})
    );
    // Owned, new, or with a custom configuration: the counts follow.
    let u = s.add_user("buyer@example.com", "buyer-password", "@user").await;
    s.post(&format!("/dci/v3/server/{a}/owner"), json!({"owner": u})).await;
    s.post(&format!("/dci/v3/server/{c}"), json!({"is_new": true})).await;
    let conf = s.get("/dci/v3/server/configuration?where=free_server_count%20GT%200").await;
    assert_eq!(conf["list"], json!([{"configuration": "i9-9900K-64Gb-2x1024NVMe", "free_server_count": 1}]));
    s.post(&format!("/dci/v3/server/{c}"), json!({"is_new": false, "configuration": "custom-box"})).await;
    let conf = s.get("/dci/v3/server/configuration?orderby=configuration%20asc").await;
    assert_eq!(conf["list"][0], json!({"configuration": "custom-box", "free_server_count": 1}));
    s.post(&format!("/dci/v3/server/{c}"), json!({"configuration": null})).await;
    assert_eq!(s.get(&format!("/dci/v3/server/{c}")).await["configuration"], "E-2146G-64Gb-1920SSD-3840SSD");
    s.stop().await;
}

async fn users_see_only_their_own(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let mine = s.add_free_server(loc, rack, 1, hw_i9()).await;
    let other = s.add_free_server(loc, rack, 2, hw_i9()).await;
    let me = s.add_user("me@example.com", "me-password", "@user").await;
    let them = s.add_user("them@example.com", "them-password", "@user").await;
    s.post(&format!("/dci/v3/server/{mine}/owner"), json!({"owner": me})).await;
    s.post(&format!("/dci/v3/server/{other}/owner"), json!({"owner": them})).await;
    let t = s.login("me@example.com", "me-password").await;

    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/server", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["size"], 1);
    assert_eq!(v["list"][0]["id"], mine);
    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/server?where=id%20EQ%20", None).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST);
    let (st, v) = s.call_as(&t, Method::GET, &format!("/dci/v3/server?where=id%20EQ%20{other}"), None).await;
    assert_eq!((st, v["size"].clone()), (StatusCode::OK, json!(0)), "the filter cannot widen the view");
    assert_eq!(s.call_as(&t, Method::GET, &format!("/dci/v3/server/{mine}"), None).await.0, StatusCode::OK);
    let (st, v) = s.call_as(&t, Method::GET, &format!("/dci/v3/server/{other}"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);

    let admin_only: &[(Method, String, Option<serde_json::Value>)] = &[
        (Method::GET, "/dci/v3/user".into(), None),
        (Method::POST, "/dci/v3/user".into(), Some(json!({"email": "x@example.com", "password": "password-x"}))),
        (Method::POST, format!("/dci/v3/user/{me}"), Some(json!({"role": "@admin"}))),
        (Method::DELETE, format!("/dci/v3/user/{them}"), None),
        (Method::GET, "/dci/v3/server/configuration".into(), None),
        (Method::POST, format!("/dci/v3/server/{mine}/owner"), Some(json!({"owner": me}))),
        (Method::DELETE, format!("/dci/v3/server/{mine}/owner"), None),
        (Method::POST, "/dci/v3/location".into(), Some(json!({"name": "L"}))),
        (Method::GET, "/dci/v3/switch".into(), None),
        (Method::POST, format!("/dci/v3/server/{mine}"), Some(json!({"name": "renamed"}))),
        (Method::DELETE, format!("/dci/v3/server/{mine}"), None),
        (Method::POST, format!("/dci/v3/server/{mine}/hardware_info"), Some(json!({}))),
    ];
    for (m, p, b) in admin_only {
        let (st, v) = s.call_as(&t, m.clone(), p, b.clone()).await;
        assert_error(st, &v, StatusCode::FORBIDDEN);
    }
    // Nothing changed.
    let got = s.get(&format!("/dci/v3/server/{mine}")).await;
    assert_eq!((got["name"].as_str(), got["owner"]["id"].as_i64()), (Some("srv-1"), Some(me)));
    assert_eq!(s.get("/dci/v3/user").await["size"], 3);
    s.stop().await;
}

async fn list_queries(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    for n in 1..=12 {
        s.add_free_server(loc, rack, n, if n % 2 == 0 { hw_i9() } else { hw_e2146g() }).await;
    }
    let u = s.add_user("o@example.com", "o-password", "@user").await;
    s.post("/dci/v3/server/3/owner", json!({"owner": u})).await;
    s.post("/dci/v3/server/12", json!({"is_new": true})).await;
    let q = |w: &str| format!("/dci/v3/server?where={}", common::enc(w));
    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v["list"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect()
    };

    let v = s.get(&q("(owner_email IS null) AND is_new EQ false")).await;
    assert_eq!(v["size"], 10);
    let v = s.get(&q("name CP '%srv-1%'")).await;
    assert_eq!(ids(&v), vec![1, 10, 11, 12]);
    let v = s.get(&q("name CP '%SRV-1%' AND NOT id EQ 1")).await;
    assert_eq!(ids(&v), vec![10, 11, 12], "CP ignores case");
    let v = s.get(&q("owner IS NOT null OR id GE 11")).await;
    assert_eq!(ids(&v), vec![3, 11, 12]);
    let v = s.get(&q("configuration EQ 'i9-9900K-64Gb-2x1024NVMe' AND location.id EQ 1")).await;
    assert_eq!(v["size"], 6);
    let v = s.get(&format!("{}&orderby=id%20desc&limit=2,3", q("configuration CP '%NVMe'"))).await;
    assert_eq!((ids(&v), v["size"].clone()), (vec![8, 6, 4], json!(6)), "size counts before limit");
    let v = s.get("/dci/v3/server?limit=5").await;
    assert_eq!((ids(&v), v["size"].clone()), (vec![1, 2, 3, 4, 5], json!(12)));
    // A page's count keeps the joins its filter needs (the owner's e-mail) and drops
    // the others: the same sizes as the whole lists above.
    let v = s.get(&format!("{}&limit=0,2", q("(owner_email IS null) AND is_new EQ false"))).await;
    assert_eq!((ids(&v), v["size"].clone()), (vec![1, 2], json!(10)));
    let v = s.get(&format!("{}&limit=0,2", q("owner_email IS NOT null OR operation.status IS NOT null"))).await;
    assert_eq!((ids(&v), v["size"].clone()), (vec![3], json!(1)));
    let v = s.get(&format!("{}&limit=1,1", q("is_new EQ false AND location.name EQ 'DC-1'"))).await;
    assert_eq!(v["size"], 11);
    let v = s.get("/dci/v3/user?orderby=email%20desc").await;
    assert_eq!(v["list"][0]["email"], "o@example.com");
    s.stop().await;
}

/// Every kind of write shows in the very next read of the server, by id and in the
/// list, on this process and on a second process of the same database (SQLite's reads
/// take the native path, PostgreSQL's sqlx: neither may lag behind a write).
async fn every_write_shows_in_the_next_read(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (other, _dir) = s.another_process(fast_tasks).await;
    let (srv, sw, _pdu) = fake_server(&s).await;
    let (_, pool, _) = add_networks(&s).await;
    let user = s.add_user("reader@example.com", "reader-password", "@user").await;
    let token = s.admin_token.clone();
    let reads = |what: &'static str, check: Box<dyn Fn(&Value) -> bool>| {
        let (s, token, other) = (&s, token.clone(), other.url());
        async move {
            let get = |url: String| {
                let (c, token) = (s.client.clone(), token.clone());
                async move { c.get(url).bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap() }
            };
            for base in [s.url(""), other.clone()] {
                let one = get(format!("{base}/dci/v3/server/{srv}")).await;
                assert!(check(&one), "{what}: GET one on {base}: {one}");
                let list = get(format!("{base}/dci/v3/server?where=id%20EQ%20{srv}")).await;
                assert!(check(&list["list"][0]), "{what}: the list on {base}: {list}");
            }
        }
    };

    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": user})).await;
    reads("owner", Box::new(move |v| v["owner"]["id"] == user)).await;
    s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/owner"), None).await;
    reads("released", Box::new(|v| v["owner"].is_null())).await;

    let task = s.post(&format!("/dci/v3/server/{srv}/power_off"), json!({})).await["task"].as_i64().unwrap();
    assert_eq!(wait_task(&s, task).await["status"], "complete");
    reads("power", Box::new(|v| v["power_status"] == "off")).await;

    let task = s.post(&format!("/dci/v3/server/{srv}/suspend"), json!({})).await["task"].as_i64().unwrap();
    assert_eq!(wait_task(&s, task).await["status"], "complete");
    reads("state", Box::new(|v| v["state"] == "suspended")).await;

    let taken = s.post(&format!("/dci/v3/server/{srv}/ip"), json!({"ip_pool": pool})).await;
    reads("address", Box::new(|v| v["ip"].as_array().is_some_and(|a| a.len() == 1))).await;
    assert_eq!(wait_task(&s, taken["task"].as_i64().unwrap()).await["status"], "complete");
    reads("address ready", Box::new(|v| v["ip"][0]["status"] == "ok")).await;
    let ip = s.get(&format!("/dci/v3/server/{srv}")).await["ip"][0]["id"].as_i64().unwrap();
    let released = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/ip/{ip}"), None).await.1;
    assert_eq!(wait_task(&s, released["task"].as_i64().unwrap()).await["status"], "complete", "{released}");
    reads("address released", Box::new(|v| v["ip"].as_array().is_some_and(|a| a.is_empty()))).await;

    let ports = s.get(&format!("/dci/v3/switch/{sw}/port?limit=2,1")).await;
    s.post(&format!("/dci/v3/server/{srv}/switch_connection"), json!({"port": ports["list"][0]["id"]})).await;
    reads("connection", Box::new(|v| v["switch_connection"].as_array().is_some_and(|a| a.len() == 3))).await;

    let mut hw = hw_i9();
    hw["memory"]["total_mib"] = json!(131072);
    s.post(&format!("/dci/v3/server/{srv}/hardware_info"), hw).await;
    reads("hardware", Box::new(|v| v["hardware_info"]["memory"]["total_mib"] == 131072)).await;

    s.post(&format!("/dci/v3/server/{srv}"), json!({"note": "rack B"})).await;
    reads("note", Box::new(|v| v["note"] == "rack B")).await;

    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for base in [s.url(""), other.url()] {
        let r = s.client.get(format!("{base}/dci/v3/server/{srv}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "deleted, on {base}");
    }
    other.stop(std::time::Duration::from_secs(5)).await.unwrap();
    s.stop().await;
}

/// Without `limit` the list is streamed as it is read, in chunks: the same servers as
/// the pages, for an admin and for a customer; an empty one is the same bytes as ever;
/// a row that cannot be read in the middle breaks the answer rather than shortening it.
async fn the_full_list_is_streamed(db: Db) {
    let s = TestServer::start(db).await;
    let loc = s.post("/dci/v3/location", json!({"name": "Stream"})).await["id"].clone();
    let mut made = vec![];
    // More than two chunks of the stream (128 servers each).
    for n in 0..300 {
        made.push(
            s.post("/dci/v3/server", json!({"name": format!("st-{n:03}"), "location_id": loc})).await["id"].clone(),
        );
    }
    let u = s.add_user("st@example.com", "st-password", "@user").await;
    let theirs = [made[5].clone(), made[150].clone(), made[299].clone()];
    for id in &theirs {
        s.post(&format!("/dci/v3/server/{id}/owner"), json!({"owner": u})).await;
    }
    let ids = |v: &Value| -> Vec<Value> { v["list"].as_array().unwrap().iter().map(|s| s["id"].clone()).collect() };

    let r = s.client.get(s.url("/dci/v3/server")).bearer_auth(&s.admin_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().get("content-length").is_none(), "sent as read, not sized ahead: {:?}", r.headers());
    let all: Value = r.json().await.unwrap();
    assert_eq!(all["size"], 300);
    let mut paged = vec![];
    for offset in [0, 100, 200] {
        paged.extend(s.get(&format!("/dci/v3/server?limit={offset},100")).await["list"].as_array().unwrap().clone());
    }
    assert_eq!(all["list"].as_array().unwrap(), &paged, "the stream and the pages agree, field for field");
    let v = s.get(&format!("/dci/v3/server?orderby=id%20desc&where={}", common::enc("name CP '%-29%'"))).await;
    let want: Vec<Value> = (290..300).rev().map(|n| made[n].clone()).collect();
    assert_eq!((ids(&v), v["size"].clone()), (want, json!(10)), "st-299 down to st-290");

    let t = s.login("st@example.com", "st-password").await;
    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/server", None).await;
    assert_eq!((st, ids(&v), v["size"].clone()), (StatusCode::OK, theirs.to_vec(), json!(3)), "a customer's own");

    let r = s.client.get(s.url("/dci/v3/server?where=id%20EQ%200")).bearer_auth(&s.admin_token).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"list":[],"size":0}"#);

    // A stored state no build knows, in the third chunk: the answer has begun and
    // then breaks (before or after its head reached the client, as the buffers go); it
    // never arrives whole as a shorter list.
    s.sql_beside(format!("UPDATE servers SET state = 'melted' WHERE id = {}", made[280])).await;
    if let Ok(r) = s.client.get(s.url("/dci/v3/server")).bearer_auth(&s.admin_token).send().await {
        assert_eq!(r.status(), StatusCode::OK);
        if let Ok(body) = r.bytes().await {
            panic!("a broken list was sent whole ({} bytes): {}", body.len(), String::from_utf8_lossy(&body));
        }
    }
    // A page that holds the row is refused with the envelope, as before.
    let (st, v) = s.call(Method::GET, "/dci/v3/server?limit=270,20", None).await;
    assert_error(st, &v, StatusCode::INTERNAL_SERVER_ERROR);
    s.stop().await;
}

/// What the racing tests share: a second process on the test server's database (its
/// configuration is the first one's), `n` free servers in one rack, and a customer to
/// give them to.
struct Race {
    other: dcim::serve::Running,
    _dir: common::tempdir::Dir,
    servers: Vec<i64>,
    user: i64,
    /// Both processes' base URLs, the test server's first.
    bases: [String; 2],
}

impl Race {
    async fn new(s: &TestServer, n: i64, email: &str) -> Race {
        let (other, _dir) = s.another_process(|_| {}).await;
        let (loc, rack, _, _) = s.add_site().await;
        let mut servers = vec![];
        for unit in 1..=n {
            servers.push(s.add_free_server(loc, rack, unit, hw_i9()).await);
        }
        let user = s.add_user(email, "racer-password", "@user").await;
        let bases = [s.url(""), other.url()];
        Race { other, _dir, servers, user, bases }
    }
}

/// Owners given and released at once, twenty clients over two processes of one
/// database, across the servers of one configuration: each write moves a server
/// between two rows of the kept counts (`server_counts`), and the writes move them in
/// opposite directions. None fails (on PostgreSQL no two writes wait for each other's
/// count rows in a cycle), and afterwards the free servers and the counted page's size
/// are what the servers themselves say, on both processes.
async fn counts_hold_under_racing_owners(db: Db) {
    let s = TestServer::start(db).await;
    let Race { other, _dir, servers, user, bases } = Race::new(&s, 8, "racer@example.com").await;
    let mut racers = tokio::task::JoinSet::new();
    for w in 0..20usize {
        let (c, token, base, servers) =
            (s.client.clone(), s.admin_token.clone(), bases[w % 2].clone(), servers.clone());
        racers.spawn(async move {
            for i in 0..10usize {
                let srv = servers[(w * 3 + i) % servers.len()];
                let url = format!("{base}/dci/v3/server/{srv}/owner");
                let r = if (w + i) % 2 == 0 {
                    c.post(url).bearer_auth(&token).json(&json!({"owner": user})).send().await.unwrap()
                } else {
                    c.delete(url).bearer_auth(&token).send().await.unwrap()
                };
                let st = r.status();
                assert!(st.is_success(), "racer {w}, write {i} on server {srv}: {st} {}", r.text().await.unwrap());
            }
        });
    }
    while let Some(r) = racers.join_next().await {
        r.unwrap();
    }
    let token = s.admin_token.clone();
    for base in &bases {
        let get = |path: String| {
            let (c, token) = (s.client.clone(), token.clone());
            async move {
                c.get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap()
            }
        };
        let all = get("/dci/v3/server".into()).await;
        let free = all["list"].as_array().unwrap().iter().filter(|v| v["owner"].is_null()).count() as i64;
        let conf = get("/dci/v3/server/configuration".into()).await;
        assert_eq!(
            conf["list"],
            json!([{"configuration": "i9-9900K-64Gb-2x1024NVMe", "free_server_count": free}]),
            "{base}"
        );
        let page = get("/dci/v3/server?where=owner_email%20IS%20null&limit=0,1".into()).await;
        assert_eq!(page["size"], free, "{base}");
    }
    other.stop(std::time::Duration::from_secs(5)).await.unwrap();
    s.stop().await;
}

/// `dcim_server_cache_hits_total` of the process at `base`.
async fn cache_hits(s: &TestServer, base: &str) -> u64 {
    let r = s.client.get(format!("{base}/metrics")).bearer_auth(&s.admin_token).send().await.unwrap();
    let text = r.text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("dcim_server_cache_hits_total ")).expect("the hits counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Readers keep both processes' server caches full while one client writes, each
/// write on the other process than the last: the read after each write's answer, on
/// either process, shows it (an answer read before a commit and kept after it would
/// show the value before). The readers are answered from the cache on both backends.
async fn no_read_lags_a_write(db: Db) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // One token reads as fast as it can: no per-token limit (the other process's
    // configuration is this one's).
    let s = TestServer::start_with(db, |c| c.rate_limit_per_sec = 0).await;
    let Race { other, _dir, servers, user, bases } = Race::new(&s, 3, "lag@example.com").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    for r in 0..4usize {
        let (c, token, bases, servers, stop) =
            (s.client.clone(), s.admin_token.clone(), bases.clone(), servers.clone(), stop.clone());
        readers.spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let url = format!("{}/dci/v3/server/{}", bases[(r + n) % 2], servers[n % servers.len()]);
                let st = c.get(url).bearer_auth(&token).send().await.unwrap().status();
                assert_eq!(st, StatusCode::OK, "reader {r}");
                n += 1;
            }
            n
        });
    }
    for i in 0..60usize {
        let (base, srv) = (&bases[i % 2], servers[i % servers.len()]);
        let note = format!("write {i}");
        let r = s.client.post(format!("{base}/dci/v3/server/{srv}")).bearer_auth(&s.admin_token);
        assert_eq!(r.json(&json!({"note": note})).send().await.unwrap().status(), StatusCode::OK);
        let owned = i % 3 == 0;
        let r = s
            .client
            .request(if owned { Method::POST } else { Method::DELETE }, format!("{base}/dci/v3/server/{srv}/owner"));
        let r = r.bearer_auth(&s.admin_token).json(&json!({"owner": user})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        for b in &bases {
            let r = s.client.get(format!("{b}/dci/v3/server/{srv}")).bearer_auth(&s.admin_token).send().await.unwrap();
            let v: Value = r.json().await.unwrap();
            assert_eq!(
                (v["note"].as_str(), v["owner"].is_object()),
                (Some(note.as_str()), owned),
                "write {i}, read on {b}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    while let Some(n) = readers.join_next().await {
        reads += n.unwrap();
    }
    assert!(reads > 100, "the readers read ({reads})");
    for b in &bases {
        assert!(cache_hits(&s, b).await > 0, "{b}: the readers were answered from the cache");
    }
    other.stop(std::time::Duration::from_secs(5)).await.unwrap();
    s.stop().await;
}

/// Only an admin's reads go through the cache: a customer's own server is read from
/// the database with its scope in the query (the same answer as the admin's) and
/// another's is the same 404 as a server that does not exist, however warm the cache.
/// A write made beside dcim, in SQL on the database, shows in the next read too.
async fn cached_servers_keep_their_scope(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let (mine, free) = (s.add_free_server(loc, rack, 1, hw_i9()).await, s.add_free_server(loc, rack, 2, hw_i9()).await);
    let u = s.add_user("scope@example.com", "scope-password", "@user").await;
    s.post(&format!("/dci/v3/server/{mine}/owner"), json!({"owner": u})).await;
    // Logged in first: a login is a commit, which empties the cache.
    let t = s.login("scope@example.com", "scope-password").await;
    let before = cache_hits(&s, &s.url("")).await;
    let (a, b) = (s.get(&format!("/dci/v3/server/{mine}")).await, s.get(&format!("/dci/v3/server/{free}")).await);
    assert_eq!(s.get(&format!("/dci/v3/server/{free}")).await, b, "the same answer, twice");
    assert_eq!(s.get(&format!("/dci/v3/server/{mine}")).await, a);
    let mut hits = cache_hits(&s, &s.url("")).await;
    match db {
        Db::Sqlite => assert_eq!(hits - before, 2, "the second reads were the cache's"),
        // The snapshot is the cluster's, and the other tests' writes change it: read
        // until one read was the cache's.
        Db::Postgres => {
            for _ in 0..50 {
                if hits > before {
                    break;
                }
                assert_eq!(s.get(&format!("/dci/v3/server/{free}")).await, b);
                hits = cache_hits(&s, &s.url("")).await;
            }
            assert!(hits > before, "a read was the cache's");
        }
    }
    let (st, v) = s.call_as(&t, Method::GET, &format!("/dci/v3/server/{mine}"), None).await;
    assert_eq!((st, v), (StatusCode::OK, a), "the customer's own server, as the admin read it");
    let (st, v) = s.call_as(&t, Method::GET, &format!("/dci/v3/server/{free}"), None).await;
    let msg = assert_error(st, &v, StatusCode::NOT_FOUND);
    let (st, absent) = s.call_as(&t, Method::GET, "/dci/v3/server/999999", None).await;
    assert_eq!(msg, assert_error(st, &absent, StatusCode::NOT_FOUND).replace("999999", &free.to_string()));
    assert_eq!(cache_hits(&s, &s.url("")).await, hits, "no customer's read was the cache's");
    s.call(Method::DELETE, &format!("/dci/v3/server/{mine}/owner"), None).await;
    let (st, v) = s.call_as(&t, Method::GET, &format!("/dci/v3/server/{mine}"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);

    // The server in the cache (a second read at the same version is a hit), then a
    // write beside it.
    for _ in 0..2 {
        assert_eq!(s.get(&format!("/dci/v3/server/{free}")).await["note"], b["note"]);
    }
    s.sql_beside(format!("UPDATE servers SET note = 'written beside dcim' WHERE id = {free}")).await;
    assert_eq!(s.get(&format!("/dci/v3/server/{free}")).await["note"], "written beside dcim");
    s.stop().await;
}

on_both_backends!(
    no_read_lags_a_write,
    cached_servers_keep_their_scope,
    counts_hold_under_racing_owners,
    the_full_list_is_streamed,
    every_write_shows_in_the_next_read,
    owner_assign_and_release,
    fifty_racing_owners_one_winner,
    free_servers_per_configuration,
    users_see_only_their_own,
    list_queries,
);
