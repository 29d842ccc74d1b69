//! Bad input gets DCImanager's error envelope with the right status, and nothing
//! is written.

mod common;

use common::{Db, TestServer, assert_error, enc, hw_i9};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn raw(s: &TestServer, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let r = s.seed_request(method, path, &s.admin_token).body(body.to_owned()).send().await.unwrap();
    common::json_of(r).await
}

async fn bodies_are_checked_and_nothing_is_written(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let srv = s.add_free_server(loc, rack, 1, hw_i9()).await;
    let before_users = s.get("/dci/v3/user").await;
    let before_server = s.get(&format!("/dci/v3/server/{srv}")).await;

    let cases: &[(Method, String, &str, StatusCode, &str)] = &[
        (
            Method::POST,
            "/dci/v3/user".into(),
            "{\"email\": \"a@example.com\",",
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (Method::POST, "/dci/v3/user".into(), "[1,2]", StatusCode::BAD_REQUEST, "body:"),
        (
            Method::POST,
            "/dci/v3/user".into(),
            "{\"email\": 5, \"password\": \"password-1\"}",
            StatusCode::BAD_REQUEST,
            "email:",
        ),
        (
            Method::POST,
            "/dci/v3/user".into(),
            "{\"password\": \"password-1\"}",
            StatusCode::BAD_REQUEST,
            "missing field `email`",
        ),
        (
            Method::POST,
            "/dci/v3/user".into(),
            "{\"email\": \"not-an-email\", \"password\": \"password-1\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "email:",
        ),
        (
            Method::POST,
            "/dci/v3/user".into(),
            "{\"email\": \"a@example.com\", \"password\": \"short\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "password:",
        ),
        (
            Method::POST,
            "/dci/v3/user".into(),
            "{\"email\": \"a@example.com\", \"password\": \"password-1\", \"role\": \"level\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "role:",
        ),
        (
            Method::POST,
            "/dci/v3/user".into(),
            "{\"email\": \"admin@test.example\", \"password\": \"password-1\"}",
            StatusCode::CONFLICT,
            "exists",
        ),
        (
            Method::POST,
            format!("/dci/v3/server/{srv}/owner"),
            "{\"owner\": \"abc\"}",
            StatusCode::BAD_REQUEST,
            "owner:",
        ),
        (Method::POST, format!("/dci/v3/server/{srv}/owner"), "{\"owner\": true}", StatusCode::BAD_REQUEST, "owner:"),
        (Method::POST, format!("/dci/v3/server/{srv}/owner"), "{}", StatusCode::BAD_REQUEST, "missing field `owner`"),
        (
            Method::POST,
            format!("/dci/v3/server/{srv}"),
            "{\"mac\": \"zz:zz\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "mac:",
        ),
        (Method::POST, format!("/dci/v3/server/{srv}"), "{\"unit\": 99}", StatusCode::CONFLICT, "outside rack"),
        (
            Method::POST,
            format!("/dci/v3/server/{srv}"),
            "{\"ipmi\": {\"address\": \"a b\", \"type\": \"fake\"}}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "ipmi.address",
        ),
        (
            Method::POST,
            format!("/dci/v3/server/{srv}"),
            "{\"ipmi\": {\"address\": \"127.0.0.1\", \"type\": \"IPMI v3\"}}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "ipmi.type",
        ),
        (
            Method::POST,
            format!("/dci/v3/server/{srv}/hardware_info"),
            "{\"disks\": [{\"type\": \"tape\"}]}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "hardware_info",
        ),
        (Method::POST, "/dci/v3/server/abc/owner".into(), "{\"owner\": 1}", StatusCode::BAD_REQUEST, "path parameter"),
        (Method::GET, "/dci/v3/server/999".into(), "", StatusCode::NOT_FOUND, "server 999 not found"),
        (Method::GET, "/dci/v3/user/999".into(), "", StatusCode::NOT_FOUND, "user 999 not found"),
        (Method::GET, "/dci/v3/nothing/here".into(), "", StatusCode::NOT_FOUND, "request handler not found"),
        (Method::DELETE, "/dci/v3/server/configuration".into(), "", StatusCode::METHOD_NOT_ALLOWED, "method"),
    ];
    for (m, p, body, status, msg) in cases {
        let (st, v) = raw(&s, m.clone(), p, body).await;
        let got = assert_error(st, &v, *status);
        assert!(got.contains(msg), "{m} {p} {body}: '{got}' should mention '{msg}'");
    }
    assert_eq!(s.get("/dci/v3/user").await, before_users);
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await, before_server);
    s.stop().await;
}

async fn oversized_bodies_are_refused(db: Db) {
    let s = TestServer::start(db).await;
    let big = format!(
        "{{\"email\": \"big@example.com\", \"password\": \"password-1\", \"full_name\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    // Its own connection: the server answers 413 without reading the rest and
    // closes it, which must not break the pooled connections of the other calls.
    let once = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let r = once
        .post(s.url("/dci/v3/user"))
        .header("Cookie", format!("ses6={}", s.admin_token))
        .header("x-xsrf-token", &s.admin_token)
        .body(big)
        .send()
        .await
        .unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.get("/dci/v3/user").await["size"], 1);
    s.stop().await;
}

async fn list_queries_are_parsed_not_pasted(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    s.add_free_server(loc, rack, 1, hw_i9()).await;
    for (w, msg) in [
        ("password EQ 'x'", "unknown field 'password'"),
        ("ipmi.password EQ 'x'", "unknown field 'ipmi.password'"),
        ("name EQ 'x'; DROP TABLE users", "where"),
        ("name EQ 'x' OR 1=1", "where"),
        ("id EQ 'abc'", "expects an integer"),
        ("(name EQ 'x'", "never closed"),
        ("name XX 1", "unknown operator 'XX'"),
        ("name EQ 'unterminated", "unterminated"),
    ] {
        let (st, v) = s.call(Method::GET, &format!("/dci/v3/server?where={}", enc(w)), None).await;
        let got = assert_error(st, &v, StatusCode::BAD_REQUEST);
        assert!(got.contains(msg), "{w}: '{got}' should mention '{msg}'");
        assert_eq!(v["error"]["value"]["param"], "where", "{v}");
    }
    // A SQL fragment inside a quoted value is just a value that matches nothing.
    for w in ["name EQ 'x'' OR ''1''=''1'", "name EQ 'srv-1; DROP TABLE servers; --'", "name CP '%'' OR 1=1 --%'"] {
        let v = s.get(&format!("/dci/v3/server?where={}", enc(w))).await;
        assert_eq!(v["size"], 0, "{w}");
    }
    assert_eq!(s.get("/dci/v3/server").await["size"], 1, "the table is intact");
    for (param, value) in [("orderby", "secret desc"), ("orderby", "id sideways"), ("limit", "a,b"), ("limit", "1,2,3")]
    {
        let (st, v) = s.call(Method::GET, &format!("/dci/v3/server?{param}={}", enc(value)), None).await;
        assert_error(st, &v, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["value"]["param"], param);
    }
    s.stop().await;
}

#[test]
fn the_error_table_is_documented() {
    let doc = include_str!("../../../docs/API.md");
    for (kind, status, code) in dcim_api::error::ErrorKind::TABLE {
        let row = format!("| {code} | {status} |");
        assert!(doc.contains(&row), "docs/API.md lists {kind:?} as '{row} ...'");
    }
}

on_both_backends!(
    bodies_are_checked_and_nothing_is_written,
    oversized_bodies_are_refused,
    list_queries_are_parsed_not_pasted
);
