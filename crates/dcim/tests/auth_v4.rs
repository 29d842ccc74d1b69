//! Auth v4 as ISPsystem publishes it, through HTTP on both backends: long-lived
//! tokens, the caller's own account, passwords, suspend and resume, locks, SSH keys,
//! roles and time, and two-factor authentication by TOTP (the codes computed here by
//! RFC 6238 itself, not by the server's library).

mod common;

use std::time::Duration;

use common::totp::{SECRET, totp_at, well_inside_a_step};
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Db, TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn login_raw(s: &TestServer, email: &str, password: &str) -> Value {
    let r = s.client.post(s.url("/auth/v4/public/token")).json(&json!({"email": email, "password": password}));
    let (st, v) = common::json_of(r.send().await.unwrap()).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn confirm(s: &TestServer, body: Value) -> (StatusCode, Value) {
    let r = s.client.post(s.url("/api/auth/v4/public/token/confirm")).json(&body).send().await.unwrap();
    common::json_of(r).await
}

async fn long_lived_tokens(db: Db) {
    let s = TestServer::start_with(db, |c| c.session_idle_secs = 2).await;
    let admin = s.admin_token.clone();
    let (st, v) = s
        .call(
            Method::POST,
            "/auth/v4/token",
            Some(json!({"expires_at": "2099-01-01 00:00:00", "description": "billing"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(v["id"].is_i64(), "the token's id is a number: {v}");
    assert_eq!(v["expires_at"], "2099-01-01 00:00:00");
    assert_eq!(v["confirmed"], true);
    let token = v["token"].as_str().unwrap().to_owned();
    let token_id = v["id"].as_i64().unwrap();

    let list = s.get("/auth/v4/token").await;
    let row = list["list"].as_array().unwrap().iter().find(|r| r["id"] == token_id).unwrap().clone();
    assert_eq!((row["type"].as_str(), row["description"].as_str()), (Some("token"), Some("billing")));
    assert!(!list.to_string().contains(&token), "the list never shows a token");
    assert!(!list.to_string().contains(&admin));

    // Bad input writes nothing.
    let before = s.get("/auth/v4/token").await["size"].clone();
    for (body, field) in [
        (json!({"expires_at": "2001-01-01 00:00:00"}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"expires_at": "2099-01-01 00:00:00", "description": "a\nb"}), "description"),
    ] {
        let (st, v) = s.call(Method::POST, "/auth/v4/token", Some(body)).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["value"]["field"], field);
    }
    let (st, v) = s.call(Method::POST, "/auth/v4/token", Some(json!({"description": "x"}))).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST);
    assert_eq!(s.get("/auth/v4/token").await["size"], before);

    // The idle limit ends the login session but not the long-lived token.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (st, _) = s.call_as(&admin, Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the idle session is over");
    let (st, v) = s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["owner_email"], ADMIN_EMAIL);

    // A user cannot revoke the admin's token by id; the admin can.
    let t2 = s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    s.call_as(&t2, Method::POST, "/dci/v3/user", Some(json!({"email": "u@example.com", "password": "u-password"})))
        .await;
    let user = s.login("u@example.com", "u-password").await;
    let (st, v) = s.call_as(&user, Method::DELETE, &format!("/auth/v4/token/{token_id}"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    let (st, v) = s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.call_as(&t2, Method::DELETE, &format!("/auth/v4/token/{token_id}"), None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    let (st, _) = s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "revoked");
    s.stop().await;
}

async fn own_account_and_passwords(db: Db) {
    let s = TestServer::start(db).await;
    let uid = s.add_user("c@example.com", "c-password", "@user").await;
    let c1 = s.login("c@example.com", "c-password").await;
    let c2 = s.login("c@example.com", "c-password").await;

    let (st, me) = s.call_as(&c1, Method::GET, "/auth/v4/self", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["id"], uid);
    assert_eq!(me["email"], "c@example.com");
    assert_eq!(me["roles"], json!(["@user"]));
    assert_eq!((me["state"].as_str(), me["auth_source"].as_str()), (Some("active"), Some("local")));
    assert_eq!(me["uuid"].as_str().unwrap().len(), 36);
    assert_eq!(me["two_factor"], false);

    let (st, v) = s
        .call_as(
            &c1,
            Method::POST,
            "/auth/v4/self",
            Some(json!({"full_name": "C. Lient", "lang": "ru", "timezone": "Europe/Moscow"})),
        )
        .await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    for (body, field) in [
        (json!({"lang": "de", "full_name": "Changed"}), "lang"),
        (json!({"timezone": "Europe/Moscow;DROP", "full_name": "Changed"}), "timezone"),
        (json!({"full_name": "two\nlines"}), "full_name"),
    ] {
        let (st, v) = s.call_as(&c1, Method::POST, "/auth/v4/self", Some(body)).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["value"]["field"], field);
    }
    let (_, me2) = s.call_as(&c1, Method::GET, "/auth/v4/self", None).await;
    assert_eq!((me2["full_name"].as_str(), me2["lang"].as_str()), (Some("C. Lient"), Some("ru")));
    assert_eq!(me2["timezone"], "Europe/Moscow");
    assert_eq!(me2["uuid"], me["uuid"]);

    // Own password: the old one is needed; the other session ends, this one goes on.
    let (st, v) = s
        .call_as(
            &c1,
            Method::POST,
            "/auth/v4/self/password",
            Some(json!({"old_password": "nope", "password": "new-password"})),
        )
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["value"]["field"], "old_password");
    let (st, v) = s
        .call_as(
            &c1,
            Method::POST,
            "/auth/v4/self/password",
            Some(json!({"old_password": "c-password", "password": "short"})),
        )
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
    login_raw(&s, "c@example.com", "c-password").await;
    let (st, v) = s
        .call_as(
            &c1,
            Method::POST,
            "/auth/v4/self/password",
            Some(json!({"old_password": "c-password", "password": "new-password"})),
        )
        .await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    assert_eq!(s.call_as(&c1, Method::GET, "/auth/v4/self", None).await.0, StatusCode::OK);
    assert_eq!(s.call_as(&c2, Method::GET, "/auth/v4/self", None).await.0, StatusCode::UNAUTHORIZED);
    let c3 = s.login("c@example.com", "new-password").await;

    // Another's password: admin only, by id or e-mail; the user's sessions end.
    let (st, v) =
        s.call_as(&c3, Method::POST, "/auth/v4/user/1/password", Some(json!({"password": "taken-over"}))).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    let r = s.call(Method::POST, "/auth/v4/user/c%40example.com/password", Some(json!({"password": "set-by-admin"})));
    assert_eq!(r.await, (StatusCode::OK, json!({})));
    assert_eq!(s.call_as(&c3, Method::GET, "/auth/v4/self", None).await.0, StatusCode::UNAUTHORIZED);
    let c4 = s.login("c@example.com", "set-by-admin").await;
    let (st, v) = s.call(Method::POST, "/auth/v4/user/99/password", Some(json!({"password": "whatever-1"}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);

    // An admin that sets its own password by the user routes keeps the session it did
    // it with; its other sessions end.
    let other = s.login(common::ADMIN_EMAIL, common::ADMIN_PASSWORD).await;
    let (st, _) = s.call(Method::POST, "/dci/v3/user/1", Some(json!({"password": common::ADMIN_PASSWORD}))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.call(Method::GET, "/auth/v4/self", None).await.0, StatusCode::OK);
    assert_eq!(s.call_as(&other, Method::GET, "/auth/v4/self", None).await.0, StatusCode::UNAUTHORIZED);

    // Suspend and resume.
    let (st, v) = s.call_as(&c4, Method::POST, &format!("/auth/v4/user/{uid}/suspend"), Some(json!({}))).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    let (st, v) = s.call(Method::POST, &format!("/auth/v4/user/{uid}/suspend"), Some(json!({}))).await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    assert_eq!(s.call_as(&c4, Method::GET, "/auth/v4/self", None).await.0, StatusCode::UNAUTHORIZED);
    let r = s
        .client
        .post(s.url("/auth/v4/public/token"))
        .json(&json!({"email": "c@example.com", "password": "set-by-admin"}));
    let (st, v) = common::json_of(r.send().await.unwrap()).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    let (st, v) = s.call(Method::POST, "/auth/v4/user/1/suspend", Some(json!({}))).await;
    assert_error(st, &v, StatusCode::CONFLICT);
    let (st, _) = s.call(Method::POST, "/auth/v4/user/c%40example.com/resume", Some(json!({}))).await;
    assert_eq!(st, StatusCode::OK);
    s.login("c@example.com", "set-by-admin").await;

    // Locks keep a user from being deleted.
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/auth/v4/user/{uid}/lock"),
            Some(json!({"service": "billing", "description": "has a contract"})),
        )
        .await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    let (st, v) = s.call(Method::POST, &format!("/auth/v4/user/{uid}/lock"), Some(json!({"service": "billing"}))).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST);
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/user/{uid}"), None).await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("billing"), "{v}");
    let (st, _) = s.call(Method::DELETE, &format!("/auth/v4/user/{uid}/lock/billing"), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.call(Method::DELETE, &format!("/auth/v4/user/{uid}/lock/billing"), None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    let (st, _) = s.call(Method::DELETE, &format!("/dci/v3/user/{uid}"), None).await;
    assert_eq!(st, StatusCode::OK);

    // Public roles; the time.
    let r = s.client.get(s.url("/auth/v4/public/roles")).send().await.unwrap();
    assert_eq!(common::json_of(r).await, (StatusCode::OK, json!({"roles": ["@admin", "@user"]})));
    let t = s.get("/auth/v4/time").await;
    let now = t["list"][0]["current_time"].as_str().unwrap().to_owned();
    assert_eq!(now.len(), 19, "{now}");
    assert_eq!((&now[4..5], &now[10..11], &now[13..14]), ("-", " ", ":"));
    s.stop().await;
}

async fn ssh_keys(db: Db) {
    let s = TestServer::start(db).await;
    s.add_user("a@example.com", "a-password", "@user").await;
    let bid = s.add_user("b@example.com", "b-password", "@user").await;
    let a = s.login("a@example.com", "a-password").await;
    let b = s.login("b@example.com", "b-password").await;
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcBMQ2FMV9bO/ZKRlmNWMt2b+XOXIi9fqBVt+0I0TxX a@laptop";

    for (body, code) in [
        (json!({"name": "laptop", "ssh_pub_key": "ssh-rsa not-a-key"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"name": "", "ssh_pub_key": key}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"name": "laptop"}), StatusCode::BAD_REQUEST),
    ] {
        let (st, v) = s.call_as(&a, Method::POST, "/auth/v4/self/sshkey", Some(body)).await;
        assert_error(st, &v, code);
    }
    assert_eq!(s.call_as(&a, Method::GET, "/auth/v4/self/sshkey", None).await.1, json!({"list": []}));
    let (st, v) =
        s.call_as(&a, Method::POST, "/auth/v4/self/sshkey", Some(json!({"name": "laptop", "ssh_pub_key": key}))).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let kid = v["id"].as_i64().unwrap();
    let (_, list) = s.call_as(&a, Method::GET, "/auth/v4/self/sshkey", None).await;
    assert_eq!(list, json!({"list": [{"id": kid, "name": "laptop", "ssh_pub_key": key}]}));
    let (st, _) =
        s.call_as(&a, Method::POST, &format!("/auth/v4/self/sshkey/{kid}"), Some(json!({"name": "desk"}))).await;
    assert_eq!(st, StatusCode::OK);
    let (_, one) = s.call_as(&a, Method::GET, &format!("/auth/v4/self/sshkey/{kid}"), None).await;
    assert_eq!(one["name"], "desk");

    // Another user sees nothing of it.
    for m in [Method::GET, Method::DELETE] {
        let (st, v) = s.call_as(&b, m, &format!("/auth/v4/self/sshkey/{kid}"), None).await;
        assert_error(st, &v, StatusCode::NOT_FOUND);
    }
    let (st, v) =
        s.call_as(&b, Method::POST, &format!("/auth/v4/self/sshkey/{kid}"), Some(json!({"name": "stolen"}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    let (st, v) = s.call_as(&b, Method::GET, "/auth/v4/user/a%40example.com/sshkey", None).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    let (_, own) = s.call_as(&b, Method::GET, &format!("/auth/v4/user/{bid}/sshkey"), None).await;
    assert_eq!(own, json!({"list": []}));
    let all = s.get("/auth/v4/user/a%40example.com/sshkey").await;
    assert_eq!(all["list"][0]["name"], "desk", "an admin sees the user's keys");

    let (st, _) = s.call_as(&a, Method::DELETE, &format!("/auth/v4/self/sshkey/{kid}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.call_as(&a, Method::GET, "/auth/v4/self/sshkey", None).await.1, json!({"list": []}));
    s.stop().await;
}

async fn two_factor_totp(db: Db) {
    let s = TestServer::start(db).await;
    let uid = s.add_user("t@example.com", "t-password", "@user").await;
    let first = s.login("t@example.com", "t-password").await;
    let other = s.login("t@example.com", "t-password").await;
    let now = well_inside_a_step().await;

    // Setting up: a bad secret or a wrong code is refused and nothing changes.
    for (body, field) in [
        (json!({"secret": "SHORT", "code": totp_at(now)}), "secret"),
        (json!({"secret": SECRET, "code": (totp_at(now) + 1) % 1_000_000}), "code"),
    ] {
        let (st, v) = s.call_as(&first, Method::POST, "/auth/v4/self/2fa", Some(body)).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["value"]["field"], field);
    }
    assert_eq!(s.call_as(&first, Method::GET, "/auth/v4/self", None).await.1["two_factor"], false);
    let (st, v) = s.call_as(&first, Method::POST, "/auth/v4/self/2fa/reserve/generate", Some(json!({}))).await;
    assert_error(st, &v, StatusCode::CONFLICT);

    // On, with the previous step's code (within the skew): the other session ends.
    let (st, v) = s
        .call_as(&first, Method::POST, "/auth/v4/self/2fa", Some(json!({"secret": SECRET, "code": totp_at(now - 30)})))
        .await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    assert_eq!(s.call_as(&first, Method::GET, "/auth/v4/self", None).await.1["two_factor"], true);
    assert_eq!(s.call_as(&other, Method::GET, "/auth/v4/self", None).await.0, StatusCode::UNAUTHORIZED);
    let (st, v) = s
        .call_as(&first, Method::POST, "/auth/v4/self/2fa", Some(json!({"secret": SECRET, "code": totp_at(now)})))
        .await;
    assert_error(st, &v, StatusCode::CONFLICT);

    // A login now gives an unconfirmed token that serves nothing.
    let l = login_raw(&s, "t@example.com", "t-password").await;
    assert_eq!(l["confirmed"], false);
    let token = l["token"].as_str().unwrap().to_owned();
    let (st, v) = s.call_as(&token, Method::GET, "/dci/v3/server", None).await;
    assert!(assert_error(st, &v, StatusCode::UNAUTHORIZED).contains("second factor"));
    assert_eq!(v["error"]["code"], 1005);
    let (st, v) = confirm(&s, json!({"token": token})).await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, v) = confirm(&s, json!({"token": token, "code": (totp_at(now) + 7) % 1_000_000})).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    let (st, v) = confirm(&s, json!({"token": token, "code": totp_at(now - 30)})).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    assert!(v["error"]["msg"].as_str().unwrap().contains("already used"), "the set-up code cannot confirm: {v}");
    let (st, v) = confirm(&s, json!({"token": token, "code": totp_at(now)})).await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    let (st, v) = s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // The same code again, on a new login: refused (a replay).
    let l2 = login_raw(&s, "t@example.com", "t-password").await;
    let t2 = l2["token"].as_str().unwrap().to_owned();
    let (st, v) = confirm(&s, json!({"token": t2, "code": totp_at(now)})).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);
    assert_eq!(s.call_as(&t2, Method::GET, "/auth/v4/whoami", None).await.0, StatusCode::UNAUTHORIZED);
    // The next step's code (within the skew) works.
    let (st, _) = confirm(&s, json!({"token": t2, "code": totp_at(now + 30)})).await;
    assert_eq!(st, StatusCode::OK);

    // Reserve codes: each confirms one login, once.
    let (st, v) = s.call_as(&token, Method::POST, "/auth/v4/self/2fa/reserve/generate", Some(json!({}))).await;
    assert_eq!(st, StatusCode::OK);
    let codes: Vec<String> = v["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    let l3 = login_raw(&s, "t@example.com", "t-password").await;
    let (st, _) = confirm(&s, json!({"token": l3["token"], "reserve_code": codes[0].to_uppercase()})).await;
    assert_eq!(st, StatusCode::OK);
    let l4 = login_raw(&s, "t@example.com", "t-password").await;
    let (st, v) = confirm(&s, json!({"token": l4["token"], "reserve_code": codes[0]})).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED);

    // Five wrong codes end the token.
    for i in 0..5 {
        let (st, v) = confirm(&s, json!({"token": l4["token"], "code": (totp_at(now) + 11 + i) % 1_000_000})).await;
        assert_error(st, &v, StatusCode::UNAUTHORIZED);
    }
    let (st, v) = confirm(&s, json!({"token": l4["token"], "reserve_code": codes[1]})).await;
    assert!(assert_error(st, &v, StatusCode::UNAUTHORIZED).contains("log in again"), "{v}");

    // An admin resets it; a user may not reset another's.
    let (st, v) = s.call_as(&token, Method::DELETE, "/auth/v4/user/1/2fa", None).await;
    assert_error(st, &v, StatusCode::FORBIDDEN);
    let (st, _) = s.call(Method::DELETE, &format!("/auth/v4/user/{uid}/2fa"), None).await;
    assert_eq!(st, StatusCode::OK);
    let l5 = login_raw(&s, "t@example.com", "t-password").await;
    assert_eq!(l5["confirmed"], true);

    // The QR code of a secret.
    let r = s
        .client
        .post(s.url("/auth/v4/public/2fa/qrcode"))
        .json(&json!({"name": "t@example.com", "secret": SECRET, "size": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(&r.bytes().await.unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    for body in [
        json!({"name": "x", "secret": SECRET, "size": 100}),
        json!({"name": "x", "secret": "ABC"}),
        json!({"name": "x", "secret": SECRET, "recovery": "max"}),
    ] {
        let r = s.client.post(s.url("/auth/v4/public/2fa/qrcode")).json(&body).send().await.unwrap();
        let (st, v) = common::json_of(r).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
    }
    s.stop().await;
}

on_both_backends!(long_lived_tokens, own_account_and_passwords, ssh_keys, two_factor_totp);
