//! The server fields DCImanager 6's clients read (labels, notes, uuid, platform with
//! its height, warehouse status, the switch's name on connections), rack placement by
//! height with racing placements, the warehouse list, racks' device counts, and the
//! owner's `user_note`: through HTTP on both backends.

mod common;

use common::{Db, TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn add(s: &TestServer, body: Value) -> (StatusCode, Value) {
    s.call(Method::POST, "/dci/v3/server", Some(body)).await
}

fn server(name: &str, loc: i64, rack: Option<i64>, unit: Option<i64>, size: i64) -> Value {
    json!({"name": name, "location_id": loc, "rack_id": rack, "unit": unit, "platform": {"size": size}})
}

async fn fields_platform_and_placement(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, sw, _) = s.add_site().await;
    let (st, v) = add(
        &s,
        json!({"name": "big-1", "location_id": loc, "rack_id": rack, "unit": 10, "barcode": "DC000123",
               "serial_number": "SN-77", "model": "SYS-2029P", "note": "line one\nline two",
               "user_note": "", "platform": {"name": "Supermicro 2U", "size": 2}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let big = v["id"].as_i64().unwrap();
    let port = s.get(&format!("/dci/v3/switch/{sw}/port?limit=0,1")).await["list"][0]["id"].clone();
    s.post(&format!("/dci/v3/server/{big}/switch_connection"), json!({"port": port})).await;
    let g = s.get(&format!("/dci/v3/server/{big}")).await;
    assert_eq!(
        (g["barcode"].as_str(), g["serial_number"].as_str(), g["model"].as_str()),
        (Some("DC000123"), Some("SN-77"), Some("SYS-2029P"))
    );
    assert_eq!(g["note"], "line one\nline two");
    assert_eq!(g["platform"], json!({"id": big, "name": "Supermicro 2U", "size": 2, "type": "server"}));
    assert_eq!(g["warehouse_status"], "in_rack");
    assert_eq!(g["uuid"].as_str().unwrap().len(), 36);
    assert_eq!(g["switch_connection"][0]["switch_name"], "sw1");

    // Heights: big-1 holds units 10 and 11.
    let count = || async { s.get("/dci/v3/server").await["size"].clone() };
    let before = count().await;
    for (body, says) in [
        (server("x-11", loc, Some(rack), Some(11), 1), "big-1 is in units 10 to 11"),
        (server("x-9", loc, Some(rack), Some(9), 2), "big-1"),
        (server("x-42", loc, Some(rack), Some(42), 2), "units 42 to 43 are outside"),
    ] {
        let (st, v) = add(&s, body.clone()).await;
        assert!(assert_error(st, &v, StatusCode::CONFLICT).contains(says), "{body}: {v}");
    }
    for (body, field) in [
        (server("x-0", loc, Some(rack), Some(20), 0), "platform.size"),
        (server("x-65", loc, Some(rack), Some(20), 65), "platform.size"),
        (json!({"name": "x-b", "location_id": loc, "barcode": "a\nb"}), "barcode"),
        (json!({"name": "x-n", "location_id": loc, "note": "a\u{0}b"}), "note"),
    ] {
        let (st, v) = add(&s, body.clone()).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["value"]["field"], field, "{body}");
    }
    assert_eq!(count().await, before, "nothing was written");
    let (st, v) = add(&s, server("top", loc, Some(rack), Some(41), 2)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = add(&s, server("next", loc, Some(rack), Some(12), 1)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let next = v["id"].as_i64().unwrap();
    // Growing big-1 to 3 units would take unit 12.
    let (st, v) = s.call(Method::POST, &format!("/dci/v3/server/{big}"), Some(json!({"platform": {"size": 3}}))).await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("next"), "{v}");
    assert_eq!(s.get(&format!("/dci/v3/server/{big}")).await["platform"]["size"], 2);
    // Moving `next` up frees it; the edit carries other fields along.
    let edit = json!({"unit": 14, "barcode": "DC000124", "model": "1U box"});
    s.post(&format!("/dci/v3/server/{next}"), edit).await;
    s.post(&format!("/dci/v3/server/{big}"), json!({"platform": {"size": 3}})).await;
    assert_eq!(s.get(&format!("/dci/v3/server/{next}")).await["barcode"], "DC000124");

    // Filters and the rack's device count.
    for (q, n) in [
        ("barcode%20EQ%20'DC000123'", 1),
        ("serial_number%20CP%20'%25SN-7%25'", 1),
        ("platform.size%20GE%202", 2),
        ("platform.name%20EQ%20'Supermicro%202U'", 1),
        ("model%20CP%20'%25box%25'", 1),
        ("warehouse_status%20EQ%20'in_rack'", 3),
    ] {
        assert_eq!(s.get(&format!("/dci/v3/server?where={q}")).await["size"], n, "{q}");
    }
    let r2 = s.post("/dci/v3/rack", json!({"name": "R2", "location_id": loc, "size": 42})).await["id"].clone();
    let racks = s.get("/dci/v3/rack?orderby=device_count%20desc").await;
    assert_eq!((racks["list"][0]["id"].clone(), racks["list"][0]["device_count"].clone()), (json!(rack), json!(3)));
    assert_eq!((racks["list"][1]["id"].clone(), racks["list"][1]["device_count"].clone()), (r2.clone(), json!(0)));

    // The warehouse: servers of the location without a rack.
    let (st, v) = add(&s, server("spare", loc, None, None, 1)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let spare = v["id"].as_i64().unwrap();
    let w = s.get("/dci/v3/warehouse/server").await;
    assert_eq!((w["size"].clone(), w["list"][0]["id"].clone()), (json!(1), json!(spare)));
    assert_eq!(w["list"][0]["warehouse_status"], "in_warehouse");
    assert_eq!(s.get("/dci/v3/server?where=warehouse_status%20EQ%20'in_warehouse'").await["size"], 1);
    s.post(&format!("/dci/v3/server/{spare}"), json!({"rack_id": r2, "unit": 1})).await;
    assert_eq!(s.get("/dci/v3/warehouse/server").await["size"], 0);
    s.stop().await;
}

/// Placements racing for overlapping units of one rack: exactly one of each pair wins.
async fn racing_placements(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    for round in 0..6i64 {
        let unit = 1 + round * 4;
        let a = add(&s, server(&format!("a-{round}"), loc, Some(rack), Some(unit), 2));
        let b = add(&s, server(&format!("b-{round}"), loc, Some(rack), Some(unit + 1), 2));
        let ((sa, _), (sb, _)) = tokio::join!(a, b);
        let won = [sa, sb].iter().filter(|st| **st == StatusCode::CREATED).count();
        let lost = [sa, sb].iter().filter(|st| **st == StatusCode::CONFLICT).count();
        assert_eq!((won, lost), (1, 1), "round {round}: {sa} {sb}");
    }
    assert_eq!(s.get("/dci/v3/server").await["size"], 6);
    s.stop().await;
}

/// The owner may write its `user_note`, and nothing else; another user sees nothing.
async fn the_owners_note(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let id = add(&s, server("rented", loc, Some(rack), Some(1), 1)).await.1["id"].as_i64().unwrap();
    let uid = s.add_user("c@example.com", "c-password", "@user").await;
    s.add_user("d@example.com", "d-password", "@user").await;
    s.post(&format!("/dci/v3/server/{id}/owner"), json!({"owner": uid})).await;
    let c = s.login("c@example.com", "c-password").await;
    let d = s.login("d@example.com", "d-password").await;
    let path = format!("/dci/v3/server/{id}");
    let (st, v) = s.call_as(&c, Method::POST, &path, Some(json!({"user_note": "web01 (prod)"}))).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"id": id})));
    for body in [json!({"note": "mine now"}), json!({"user_note": "x", "name": "renamed"}), json!({})] {
        let (st, v) = s.call_as(&c, Method::POST, &path, Some(body)).await;
        assert_error(st, &v, StatusCode::FORBIDDEN);
    }
    let (st, v) = s.call_as(&d, Method::POST, &path, Some(json!({"user_note": "not mine"}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    let g = s.get(&path).await;
    assert_eq!(
        (g["user_note"].as_str(), g["note"].as_str(), g["name"].as_str()),
        (Some("web01 (prod)"), Some(""), Some("rented"))
    );
    let (_, own) = s.call_as(&c, Method::GET, &path, None).await;
    assert_eq!(own["user_note"], "web01 (prod)");
    s.stop().await;
}

on_both_backends!(fields_platform_and_placement, racing_placements, the_owners_note);
