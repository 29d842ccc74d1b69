//! Auth API v4 through HTTP: login, the four token carriers, the double-submit
//! guard, logout, idle expiry, throttling, one-time keys, and what is stored.

mod common;

use std::time::Duration;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Db, TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

async fn whoami_with(s: &TestServer, header: (&str, String), prefix: &str) -> (StatusCode, Value) {
    let r = s.client.get(s.url(&format!("{prefix}/auth/v4/whoami"))).header(header.0, header.1).send().await.unwrap();
    common::json_of(r).await
}

async fn login_and_token_carriers(db: Db) {
    let s = TestServer::start(db).await;
    let r = s
        .client
        .post(s.url("/api/auth/v4/public/token"))
        .header("isp-box-instance", "true")
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].is_string(), "id is the user id as a string: {v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "at least 128 bits");

    for prefix in ["/api", ""] {
        for header in [
            ("Cookie", format!("ses6={token}")),
            ("x-xsrf-token", token.clone()),
            ("ISP-Session", token.clone()),
            ("Authorization", format!("Bearer {token}")),
        ] {
            let (st, v) = whoami_with(&s, header.clone(), prefix).await;
            assert_eq!(st, StatusCode::OK, "{header:?} on {prefix}: {v}");
            assert_eq!(
                v,
                json!({"id": 1, "email": ADMIN_EMAIL, "roles": ["@admin"], "owner_id": 1, "owner_email": ADMIN_EMAIL})
            );
        }
    }
    let (st, v) = whoami_with(&s, ("Cookie", "ses6=nonsense".into()), "/api").await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    let r = s.client.get(s.url("/dci/v3/server")).send().await.unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], 1000);

    // Wrong password, unknown e-mail: the same answer.
    for (email, pw) in [(ADMIN_EMAIL, "wrong-password"), ("nobody@example.com", ADMIN_PASSWORD)] {
        let r = s.client.post(s.url("/auth/v4/public/token")).json(&json!({"email": email, "password": pw})).send();
        let (st, v) = common::json_of(r.await.unwrap()).await;
        assert_eq!(assert_error(st, &v, StatusCode::UNAUTHORIZED), "wrong e-mail or password");
    }
    s.stop().await;
}

async fn cookie_only_writes_need_the_xsrf_header(db: Db) {
    let s = TestServer::start(db).await;
    let t = s.admin_token.clone();
    let body = json!({"email": "x1@example.com", "password": "password-1"}).to_string();
    let r = s.client.post(s.url("/api/dci/v3/user")).header("Cookie", format!("ses6={t}")).body(body.clone()).send();
    let (st, v) = common::json_of(r.await.unwrap()).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    assert!(v["error"]["msg"].as_str().unwrap().contains("x-xsrf-token"));
    let r = s
        .client
        .delete(s.url("/api/dci/v3/server/1/owner"))
        .header("Cookie", format!("ses6={t}"))
        .header("x-xsrf-token", "something-else")
        .send();
    let (st, v) = common::json_of(r.await.unwrap()).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/dci/v3/user").await["size"], 1, "nothing was written");
    // With the header, or with a non-cookie carrier, the same call works.
    let r = s
        .client
        .post(s.url("/api/dci/v3/user"))
        .header("Cookie", format!("ses6={t}"))
        .header("x-xsrf-token", t.clone())
        .body(body)
        .send();
    assert_eq!(r.await.unwrap().status(), StatusCode::OK);
    let r = s
        .client
        .post(s.url("/dci/v3/user"))
        .bearer_auth(&t)
        .json(&json!({"email": "x2@example.com", "password": "password-2"}))
        .send();
    assert_eq!(r.await.unwrap().status(), StatusCode::OK);
    s.stop().await;
}

async fn logout_ends_the_session(db: Db) {
    let s = TestServer::start(db).await;
    let t = s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(s.call_as(&t, Method::GET, "/dci/v3/user", None).await.0, StatusCode::OK);
    let (st, _) = s.call_as(&t, Method::DELETE, &format!("/api/auth/v4/token/{t}"), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.call_as(&t, Method::GET, "/dci/v3/user", None).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    let (st, v) = s.call(Method::DELETE, &format!("/auth/v4/token/{t}"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    // The other session of the same user lives on.
    assert_eq!(s.call(Method::GET, "/dci/v3/user", None).await.0, StatusCode::OK);
    s.stop().await;
}

async fn idle_sessions_expire(db: Db) {
    let s = TestServer::start_with(db, |c| c.session_idle_secs = 1).await;
    assert_eq!(s.call(Method::GET, "/auth/v4/whoami", None).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (st, v) = s.call(Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!(
        assert_error(st, &v, StatusCode::UNAUTHORIZED),
        "the session has expired or was logged out; log in again"
    );
    s.stop().await;
}

async fn wrong_passwords_are_throttled(db: Db) {
    let s = TestServer::start(db).await;
    let attempt = |pw: &'static str| {
        s.client.post(s.url("/api/auth/v4/public/token")).json(&json!({"email": ADMIN_EMAIL, "password": pw})).send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("bad-password").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let (st, v) = common::json_of(attempt(ADMIN_PASSWORD).await.unwrap()).await;
    assert_error(st, &v, StatusCode::TOO_MANY_REQUESTS);
    assert!(v["error"]["value"]["retry_after"].as_u64().unwrap() > 0);
    // Another account from the same address still gets in (the address limit is higher).
    s.add_user("other@example.com", "other-password", "@user").await;
    s.login("other@example.com", "other-password").await;
    s.stop().await;
}

async fn one_time_keys(db: Db) {
    let s = TestServer::start(db).await;
    let uid = s.add_user("client@example.com", "client-password", "@user").await;
    for who in [uid.to_string(), "client%40example.com".to_owned()] {
        let v = s.post(&format!("/api/auth/v4/user/{who}/key"), json!({})).await;
        assert_eq!(v["id"], uid.to_string());
        let key = v["key"].as_str().unwrap().to_owned();
        let r = s.client.post(s.url("/api/auth/v4/public/key")).json(&json!({"key": key})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        let (st, me) = s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await;
        assert_eq!((st, me["email"].as_str()), (StatusCode::OK, Some("client@example.com")));
        let r = s.client.post(s.url("/auth/v4/public/key")).json(&json!({"key": key})).send().await.unwrap();
        let (st, v) = common::json_of(r).await;
        assert_error(st, &v, StatusCode::UNAUTHORIZED);
    }
    // The browser link sets the cookie and redirects to the web UI.
    let key = s.post(&format!("/api/auth/v4/user/{uid}/key"), json!({})).await["key"].as_str().unwrap().to_owned();
    let r = s.client.get(s.url(&format!("/auth/key-v4/{key}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let token = cookie.strip_prefix("ses6=").unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await.0, StatusCode::OK);
    // Only an admin issues keys.
    let user_token = s.login("client@example.com", "client-password").await;
    let (st, v) = s.call_as(&user_token, Method::POST, "/auth/v4/user/1/key", Some(json!({}))).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    let (st, v) = s.call(Method::POST, "/auth/v4/user/nobody%40example.com/key", Some(json!({}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    s.stop().await;
}

async fn blocked_users_are_locked_out(db: Db) {
    let s = TestServer::start(db).await;
    let uid = s.add_user("c@example.com", "c-password", "@user").await;
    let t = s.login("c@example.com", "c-password").await;
    s.post(&format!("/dci/v3/user/{uid}/block"), json!({})).await;
    assert_eq!(s.call_as(&t, Method::GET, "/dci/v3/server", None).await.0, StatusCode::UNAUTHORIZED);
    let r = s
        .client
        .post(s.url("/auth/v4/public/token"))
        .json(&json!({"email": "c@example.com", "password": "c-password"}));
    let (st, v) = common::json_of(r.send().await.unwrap()).await;
    assert_eq!(assert_error(st, &v, StatusCode::FORBIDDEN), "this account is blocked");
    assert_eq!(s.get(&format!("/dci/v3/user/{uid}")).await["blocked"], true);
    s.post(&format!("/dci/v3/user/{uid}/unblock"), json!({})).await;
    s.login("c@example.com", "c-password").await;
    s.stop().await;
}

/// Tokens and passwords are stored only as hashes (read straight from SQLite).
#[tokio::test]
async fn only_hashes_are_stored() {
    let s = TestServer::start(Db::Sqlite).await;
    let db = s.dir.0.join("dcim.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let row = sqlx::query("SELECT token_hash FROM sessions").fetch_one(&pool).await.unwrap();
    let stored: String = row.get(0);
    assert_ne!(stored, s.admin_token);
    assert!(!stored.contains(&s.admin_token));
    let hash: String = sqlx::query("SELECT password_hash FROM users").fetch_one(&pool).await.unwrap().get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(ADMIN_PASSWORD));
    pool.close().await;
    s.stop().await;
}

on_both_backends!(
    login_and_token_carriers,
    cookie_only_writes_need_the_xsrf_header,
    logout_ends_the_session,
    idle_sessions_expire,
    wrong_passwords_are_throttled,
    one_time_keys,
    blocked_users_are_locked_out,
);

/// Two processes on one PostgreSQL: a session ended through one (logout, block, a new
/// password, a lost role, a deleted user) is refused by the other on the very next
/// request, though the other had just checked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_are_refused_at_once_by_every_process() {
    let s = TestServer::start(Db::Postgres).await;
    let (other, _dir) = s.another_process(|_| {}).await;
    let there = |path: &str| format!("{}{path}", other.url());
    let status = |token: String, path: &'static str| {
        let (c, url) = (s.client.clone(), there(path));
        async move { c.get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    let uid = s.add_user("c@example.com", "c-password-1", "@admin").await;
    type End = Box<dyn Fn(&str) -> (Method, String, Option<Value>)>;
    let ends: [(&str, End); 5] = [
        ("logout", Box::new(|t: &str| (Method::DELETE, format!("/auth/v4/token/{t}"), None))),
        ("block", Box::new(move |_: &str| (Method::POST, format!("/dci/v3/user/{uid}/block"), Some(json!({}))))),
        (
            "new password",
            Box::new(move |_: &str| {
                (
                    Method::POST,
                    format!("/dci/v3/user/{uid}"),
                    Some(json!({"password": "c-password-2", "blocked": false})),
                )
            }),
        ),
        (
            "role taken away",
            Box::new(move |_: &str| (Method::POST, format!("/dci/v3/user/{uid}"), Some(json!({"role": "@user"})))),
        ),
        ("deleted", Box::new(move |_: &str| (Method::DELETE, format!("/dci/v3/user/{uid}"), None))),
    ];
    let mut password = "c-password-1";
    for (what, end) in ends {
        s.post(&format!("/dci/v3/user/{uid}"), json!({"role": "@admin", "blocked": false})).await;
        let t = s.login("c@example.com", password).await;
        // The other process checks the session (and would keep it a while, cached).
        assert_eq!(status(t.clone(), "/dci/v3/location").await, StatusCode::OK, "{what}");
        assert_eq!(status(t.clone(), "/dci/v3/location").await, StatusCode::OK, "{what}");
        let (m, path, body) = end(&t);
        let (st, v) = s.call(m, &path, body).await;
        assert!(st.is_success(), "{what}: {st} {v}");
        let after = status(t, "/dci/v3/location").await;
        if what == "role taken away" {
            assert!(matches!(after, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED), "{what}: {after}");
        } else {
            assert_eq!(after, StatusCode::UNAUTHORIZED, "{what}");
        }
        if what == "new password" {
            password = "c-password-2";
        }
    }
    other.stop(Duration::from_secs(5)).await.unwrap();
    s.stop().await;
}

/// Two processes on one PostgreSQL count the same failed logins: guesses spread over
/// both lock the account on both, and the lockout says how long it lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_counted_across_processes() {
    let s = TestServer::start(Db::Postgres).await;
    let (other, _dir) = s.another_process(|_| {}).await;
    let bases = [s.base.clone(), other.url()];
    let attempt = |i: usize, pw: &str| {
        s.client
            .post(format!("{}/auth/v4/public/token", bases[i % 2]))
            .json(&json!({"email": ADMIN_EMAIL, "password": pw}))
            .send()
    };
    // The default limit is 5 per account: 3 on one process, 2 on the other.
    for i in 0..5 {
        assert_eq!(attempt(i, "bad-password").await.unwrap().status(), StatusCode::UNAUTHORIZED, "try {i}");
    }
    for i in 0..2 {
        let (st, v) = common::json_of(attempt(i, ADMIN_PASSWORD).await.unwrap()).await;
        assert_error(st, &v, StatusCode::TOO_MANY_REQUESTS);
        let wait = v["error"]["value"]["retry_after"].as_u64().unwrap();
        assert!(wait > 800 && wait <= 900, "the 15-minute window's rest: {wait}");
    }
    other.stop(Duration::from_secs(5)).await.unwrap();
    s.stop().await;
}
