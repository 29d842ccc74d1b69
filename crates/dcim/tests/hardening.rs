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

/// What a raw connection gets within `wait`: the bytes read until the server closes
/// it, or `None` if it is still open.
fn read_until_closed(c: &mut std::net::TcpStream, wait: std::time::Duration) -> Option<Vec<u8>> {
    use std::io::Read;
    c.set_read_timeout(Some(wait)).unwrap();
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
            Err(_) => return Some(got),
        }
    }
}

/// `max_connections`: one connection more is closed at once, and served again when
/// another goes. `header_read_timeout_secs`: a client that sends half a request head,
/// or nothing, or keeps an idle connection, is cut off after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_and_header_timeouts() {
    use std::io::Write;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let s = TestServer::start_with(Db::Sqlite, |c| {
        c.max_connections = 3;
        c.header_read_timeout_secs = 1;
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    // The test client's kept-alive login connection ends first (the idle timeout).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = TcpStream::connect(&addr).unwrap();
    let _ = extra.write_all(health);
    assert_eq!(read_until_closed(&mut extra, Duration::from_millis(500)), Some(vec![]), "closed unanswered");
    held.pop();
    std::thread::sleep(Duration::from_millis(100));
    let mut next = TcpStream::connect(&addr).unwrap();
    next.write_all(health).unwrap();
    next.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut next, &mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    drop(next);
    // The held connections sent nothing: cut off after the timeout.
    let t = Instant::now();
    for c in &mut held {
        assert!(read_until_closed(c, Duration::from_secs(3)).is_some(), "an idle connection was closed");
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Half a head, then silence.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t = Instant::now();
    assert!(read_until_closed(&mut half, Duration::from_secs(3)).is_some(), "a slow head was cut off");
    assert!(t.elapsed() >= Duration::from_millis(900), "not before the timeout: {:?}", t.elapsed());
    // A kept-alive connection left idle after its answer.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(health).unwrap();
    assert!(read_until_closed(&mut idle, Duration::from_secs(3)).is_some(), "an idle kept-alive connection closed");
    s.stop().await;
}

/// The certificate a TLS client sees at `addr` (its SHA-256 fingerprint, by openssl),
/// or `None` when the handshake fails with these `s_client` options.
fn served_fingerprint(addr: &str, opts: &str) -> Option<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} {opts} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    text.contains("Fingerprint=").then_some(text)
}

/// A renewed certificate is taken on SIGHUP without a restart (a broken one is not,
/// and the old one stays); TLS 1.2 and 1.3 only with modern suites: a client offering
/// only an old RSA-key-exchange CBC suite gets no handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_and_modern_tls() {
    use std::io::BufRead;
    let dir = common::tempdir::Dir::new();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let write = |names: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![names.to_owned()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    };
    write("127.0.0.1");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dcim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .env("DCIM_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut addr = String::new();
    for l in std::io::BufReader::new(out).lines() {
        if let Some(u) = l.unwrap().strip_prefix("dcim listening on https://") {
            addr = u.to_owned();
            break;
        }
    }
    let first = served_fingerprint(&addr, "").expect("a TLS handshake");
    assert!(served_fingerprint(&addr, "-tls1_3").is_some());
    assert!(served_fingerprint(&addr, "-tls1_2").is_some());
    assert_eq!(served_fingerprint(&addr, "-tls1_2 -cipher AES128-SHA"), None, "no RSA key exchange, no CBC");

    let hup = || {
        assert!(std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    // A broken pair: the old certificate stays.
    std::fs::write(&key, "not a key").unwrap();
    hup();
    assert_eq!(served_fingerprint(&addr, "").as_deref(), Some(first.as_str()));
    // The renewed one is served at once, without a restart.
    write("127.0.0.1");
    hup();
    let second = served_fingerprint(&addr, "").expect("a TLS handshake");
    assert_ne!(first, second);
    let _ = child.kill();
    let _ = child.wait();
}

/// A token past its rate is refused with 429, code 1005, `Retry-After` and the same in
/// the envelope; another token is not; the bucket refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_rate_limited() {
    let s = TestServer::start_with(Db::Sqlite, |c| {
        c.rate_limit_per_sec = 2;
        c.rate_limit_burst = 5;
    })
    .await;
    let get = |t: String| {
        let c = s.client.clone();
        let url = s.url("/dci/v3/location");
        async move { c.get(url).bearer_auth(t).send().await.unwrap() }
    };
    let mut refused = None;
    for _ in 0..8 {
        let r = get(s.admin_token.clone()).await;
        if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("a burst of 5, then 429");
    assert_eq!(r.headers()["retry-after"], "1");
    let (st, v) = common::json_of(r).await;
    let msg = common::assert_error(st, &v, reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v["error"]["code"], 1005, "{msg}");
    assert_eq!(v["error"]["value"]["retry_after"], 1);
    let other = s.login(common::ADMIN_EMAIL, common::ADMIN_PASSWORD).await;
    assert_eq!(get(other).await.status(), reqwest::StatusCode::OK, "another token has its own");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(s.admin_token.clone()).await.status(), reqwest::StatusCode::OK, "refilled");
    s.stop().await;
}

/// Bodies are held to 64 KiB, but for the routes that carry large ones (a server's
/// hardware, an OS template, an agent's report), which take up to 4 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_per_route() {
    let s = TestServer::start(Db::Sqlite).await;
    // The server answers 413 without reading the body and closes the connection: those
    // requests go on connections of their own, so the pooled client of `s.post` never
    // gets one the server is closing (a flaky IncompleteMessage on CI).
    let fresh = common::client_without_pool();
    let post = |path: String, body: String| {
        let (c, url, t) = (fresh.clone(), s.url(&path), s.admin_token.clone());
        async move { c.post(url).bearer_auth(t).header("content-type", "application/json").body(body).send().await.unwrap() }
    };
    let pad = "x".repeat(100 * 1024);
    let r = post(
        "/dci/v3/user".into(),
        format!(r#"{{"email":"a@example.com","password":"pw-12345678","full_name":"{pad}"}}"#),
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    let loc = s.post("/dci/v3/location", json!({"name": "DC"})).await["id"].as_i64().unwrap();
    let srv = s.post("/dci/v3/server", json!({"name": "a", "location_id": loc})).await["id"].as_i64().unwrap();
    let r = post(format!("/dci/v3/server/{srv}/hardware_info"), format!(r#"{{"note":"{pad}"}}"#)).await;
    assert_ne!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE, "a large hardware report is read");
    let r = post("/dci/v3/os_template".into(), format!(r#"{{"name":"t","type":"os","note":"{pad}"}}"#)).await;
    assert_ne!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE, "a large template is read");
    let huge = "x".repeat(5 << 20);
    let r = post(format!("/dci/v3/server/{srv}/hardware_info"), format!(r#"{{"note":"{huge}"}}"#)).await;
    assert_eq!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE, "but not past 4 MiB");
    s.stop().await;
}
