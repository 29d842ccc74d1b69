//! What every answer carries and who the client is: the security headers on API and UI
//! answers, `Strict-Transport-Security` only over HTTPS; `X-Forwarded-For` believed only
//! from a configured proxy (the audit trail records the client it names), ignored from
//! anyone else.

mod common;

use common::{Db, TestServer};
use reqwest::Method;
use serde_json::json;

async fn audited_address(s: &TestServer, xff: &str, rid: &str) -> String {
    let t = &s.admin_token;
    s.client
        .post(s.url("/dci/v3/location"))
        .bearer_auth(t)
        .header("x-forwarded-for", xff)
        .header("x-request-id", rid)
        .json(&json!({"name": rid}))
        .send()
        .await
        .unwrap();
    let q = common::enc(&format!("request_id EQ '{rid}'"));
    s.get(&format!("/dci/v3/audit?where={q}")).await["list"][0]["address"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_only_from_trusted_proxies() {
    let s = TestServer::start(Db::Sqlite).await;
    assert_eq!(audited_address(&s, "203.0.113.9", "direct").await, "127.0.0.1", "anyone may send the header");
    s.stop().await;
    let s = TestServer::start_with(Db::Sqlite, |c| c.trusted_proxies = vec!["127.0.0.1".into()]).await;
    assert_eq!(audited_address(&s, "203.0.113.9", "proxied").await, "203.0.113.9");
    assert_eq!(audited_address(&s, "198.51.100.1, 203.0.113.9", "forged").await, "203.0.113.9", "the proxy's entry");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_answer() {
    let s = TestServer::start(Db::Sqlite).await;
    for (m, path) in [(Method::GET, "/dci/v3/server"), (Method::GET, "/dci/v3/nowhere"), (Method::GET, "/ui/login")] {
        let r = s.client.request(m, s.url(path)).bearer_auth(&s.admin_token).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert!(!h.contains_key("strict-transport-security"), "not over plain HTTP: {path}");
    }
    s.stop().await;

    // Over HTTPS, HSTS.
    let dir = common::tempdir::Dir::new();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.0.join("c.pem"), dir.0.join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let s = TestServer::start_with(Db::Sqlite, |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let r = s.client.get(s.url("/dci/v3/server")).bearer_auth(&s.admin_token).send().await.unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    s.stop().await;
}
