//! The probe set of bad input (issue 21): each request is sent exactly as the probe
//! sent it, through the real HTTP server, and must get the error envelope with the
//! right status while nothing is written: the lists read before and after are equal
//! and no task was started.

mod common;

use common::{Db, TestServer, assert_error, fake_server, fast_tasks};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every list a probe could have written to.
async fn everything(s: &TestServer) -> Vec<Value> {
    let mut all = vec![];
    for path in [
        "/dci/v3/server",
        "/dci/v3/user",
        "/dci/v3/task",
        "/dci/v3/location",
        "/dci/v3/rack",
        "/dci/v3/switch",
        "/dci/v3/pdu",
        "/dci/v3/os_template",
        "/dci/v3/ip",
        "/ip/v3/ipnet",
        "/ip/v3/ippool",
    ] {
        all.push(s.get(path).await);
    }
    all
}

async fn raw(s: &TestServer, method: Method, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    // One connection per probe: a refused body may close it.
    let once = common::client_without_pool();
    let r = once
        .request(method, s.url(path))
        .header("Cookie", format!("ses6={}", s.admin_token))
        .header("x-xsrf-token", &s.admin_token)
        .header("isp-box-instance", "true")
        .body(body)
        .send()
        .await
        .unwrap();
    common::json_of(r).await
}

/// Sends a POST with `body` on a connection of its own, writing while it reads (the
/// server may answer before it has read the body, and close), and returns what came
/// back.
async fn send_raw(s: &TestServer, path: &str, body: &[u8]) -> String {
    let t = &s.admin_token;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ses6={t}\r\nx-xsrf-token: {t}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let addr = s.base.strip_prefix("http://").expect("the test server speaks plain HTTP");
    let conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = conn.into_split();
    let body = body.to_vec();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body.chunks(64 << 10) {
                if wr.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut answer = vec![];
    let mut buf = [0u8; 16 << 10];
    let read = async {
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read).await.expect("the server answers and closes");
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status and the JSON body of a raw HTTP/1.1 answer.
fn envelope(answer: &str) -> (StatusCode, Value) {
    let status: u16 = answer[9..12].parse().unwrap();
    let json_start = answer.find("{\"error\"").expect("the error envelope");
    (StatusCode::from_u16(status).unwrap(), serde_json::from_str(answer[json_start..].trim_end()).unwrap())
}

/// Items 1 and 2: a body that is present is exactly one JSON object within the limit,
/// on the operations that take no fields too; on every POST and DELETE route.
async fn bodies_are_read_on_every_route(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let customer = s.add_user("c1@example.com", "customer-password", "@user").await;
    let before = everything(&s).await;

    // power_on with `{bad`, and with 20 MB of garbage.
    let (st, v) = raw(&s, Method::POST, &format!("/dci/v3/server/{srv}/power_on"), "{bad").await;
    let msg = assert_error(st, &v, StatusCode::BAD_REQUEST);
    assert!(msg.contains("not valid JSON"), "{msg}");
    let answer = send_raw(&s, &format!("/dci/v3/server/{srv}/power_on"), &vec![b'x'; 20 << 20]).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let (st, v) = envelope(&answer);
    assert_error(st, &v, StatusCode::PAYLOAD_TOO_LARGE);
    // `{}` and an empty body are still fine, elsewhere (no task is started here).
    let (st, _) = raw(&s, Method::POST, "/dci/v3/user/999/block", "{}").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = raw(&s, Method::POST, "/dci/v3/user/999/block", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Trailing data after the object, and two objects.
    for body in [format!("{{\"owner\":{customer}}} garbage"), format!("{{\"owner\":{customer}}}{{\"owner\":5}}")] {
        let (st, v) = raw(&s, Method::POST, &format!("/dci/v3/server/{srv}/owner"), body.clone()).await;
        let msg = assert_error(st, &v, StatusCode::BAD_REQUEST);
        assert!(msg.contains("trailing characters"), "{body}: {msg}");
    }

    // Every POST and DELETE route of the OpenAPI document refuses `{bad` and trailing
    // data before it does anything (path parameters are ids that exist: the server,
    // the customer).
    let doc = s.get("/swagger/openapi.json").await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let mut concrete = path
                .replace("{id}", &srv.to_string())
                .replace("{user}", &customer.to_string())
                .replace("{token}", &s.admin_token);
            while let (Some(a), Some(b)) = (concrete.find('{'), concrete.find('}')) {
                concrete.replace_range(a..=b, "1");
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for body in ["{bad", "{} {}", "{\"a\":1} x"] {
                let (st, v) = raw(&s, m.clone(), &concrete, body).await;
                assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {path} with {body}: {v}");
                assert_error(st, &v, StatusCode::BAD_REQUEST);
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "the document lists the API's writes ({checked})");
    assert_eq!(everything(&s).await, before, "nothing was written, no task started");
    s.stop().await;
}

/// Item 3: control characters in text fields are refused, naming the field.
async fn control_characters_are_refused(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let before = everything(&s).await;
    let server = |name: &str| {
        format!(r#"{{"name":"{name}","location_id":{loc},"rack_id":{rack},"unit":5,"mac":"52:54:00:00:0a:01"}}"#)
    };
    let cases = [
        ("/dci/v3/server", server(r"srv\u0000x"), "name"),
        ("/dci/v3/server", server(r"srv\u001b[31m"), "name"),
        ("/dci/v3/server", server("srv\\tx"), "name"),
        ("/dci/v3/location", r#"{"name":"\u0000"}"#.to_owned(), "name"),
        ("/dci/v3/location", r#"{"name":"DC-9","geolocation":"a\nb"}"#.to_owned(), "geolocation"),
        ("/dci/v3/rack", format!(r#"{{"name":"R\u0007","location_id":{loc},"size":42}}"#), "name"),
        (
            "/dci/v3/user",
            r#"{"email":"n@example.com","password":"password-1","full_name":"a\u0000"}"#.to_owned(),
            "full_name",
        ),
        (
            "/dci/v3/user",
            r#"{"email":"n@example.com","password":"password-1","phone_number":"1\r\n2"}"#.to_owned(),
            "phone_number",
        ),
        ("/ip/v3/ipnet", r#"{"name":"198.51.100.0/24","note":"x\u0000"}"#.to_owned(), "note"),
        (
            "/dci/v3/server",
            format!(
                r#"{{"name":"srv-9","location_id":{loc},"ipmi":{{"address":"127.0.0.1","type":"fake","user":"a\u0000"}}}}"#
            ),
            "ipmi.user",
        ),
    ];
    for (path, body, field) in cases {
        let (st, v) = raw(&s, Method::POST, path, body.clone()).await;
        let msg = assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["value"]["field"], field, "{path} {body}: {msg}");
        assert!(msg.contains("control characters"), "{msg}");
    }
    // A field dcim does not know is not read, nor is its text: a key with a NUL in it is
    // such a field, and the request stands or falls on the fields it names.
    let (st, v) = raw(&s, Method::POST, "/dci/v3/location", r#"{"name":"DC-9","na\u0000me":"x\u0001"}"#).await;
    assert!(st.is_success(), "{v}");
    assert_eq!(s.get(&format!("/dci/v3/location/{}", v["id"])).await["name"], "DC-9");
    s.call(Method::DELETE, &format!("/dci/v3/location/{}", v["id"]), None).await;
    // Line breaks and tabs stay fine where text may span lines (a network's note).
    let (st, v) = raw(&s, Method::POST, "/ip/v3/ipnet", r#"{"name":"198.51.100.0/24","note":"a\n\tb"}"#).await;
    assert!(st.is_success(), "{v}");
    let net = v["id"].as_i64().unwrap();
    assert_eq!(s.get(&format!("/ip/v3/ipnet/{net}")).await["note"], "a\n\tb");
    s.call(Method::DELETE, &format!("/ip/v3/ipnet/{net}"), None).await;
    assert_eq!(everything(&s).await, before, "nothing was written");
    s.stop().await;
}

/// Item 4: wrong one-time keys throttle their own client address, never the others.
async fn key_logins_are_throttled_per_address(db: Db) {
    let s = TestServer::start(db).await;
    let customer = s.add_user("c1@example.com", "customer-password", "@user").await;
    let key = s.post(&format!("/auth/v4/user/{customer}/key"), json!({})).await["key"].as_str().unwrap().to_owned();
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };
    let attacker = from("127.0.0.1");
    let mut throttled_after = None;
    for i in 1..=30 {
        let r = attacker.get(s.url(&format!("/auth/key-v4/{:064x}", i))).send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled_after = Some(i - 1);
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(throttled_after, Some(20), "the attacker's address is throttled after its own failures");
    // The throttled address itself is refused even with a good key...
    let r = attacker.get(s.url(&format!("/auth/key-v4/{key}"))).send().await.unwrap();
    let (st, v) = common::json_of(r).await;
    assert_error(st, &v, StatusCode::TOO_MANY_REQUESTS);
    // ...but a customer at another address logs in with a valid key.
    let customer_browser = from("127.0.0.2");
    let r = customer_browser.get(s.url(&format!("/auth/key-v4/{key}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let token = cookie.split(';').next().unwrap().strip_prefix("ses6=").unwrap().to_owned();
    let (st, me) = s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!((st, me["id"].as_i64()), (StatusCode::OK, Some(customer)));
    // Password logins of the same address are counted apart.
    s.login("c1@example.com", "customer-password").await;
    s.stop().await;
}

/// Item 5: `Content-Length` with `Transfer-Encoding: chunked` is refused.
async fn ambiguous_framing_is_refused(db: Db) {
    let s = TestServer::start(db).await;
    let (srv, _, _) = {
        let (loc, rack, _, _) = s.add_site().await;
        (s.add_free_server(loc, rack, 1, common::hw_i9()).await, 0, 0)
    };
    let customer = s.add_user("c1@example.com", "customer-password", "@user").await;
    let before = everything(&s).await;
    let body = format!("{{\"owner\":{customer}}}");
    let t = &s.admin_token;
    let request = format!(
        "POST /dci/v3/server/{srv}/owner HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ses6={t}\r\nx-xsrf-token: {t}\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let addr = s.base.strip_prefix("http://").expect("the test server speaks plain HTTP");
    // Well-framed requests pipelined on one connection are all answered, chunked
    // bodies included.
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let block = format!(
        "POST /dci/v3/user/999/block HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ses6={t}\r\nx-xsrf-token: {t}\r\n\
         Transfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n1\r\n}}\r\n0\r\n\r\n"
    );
    let health = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let last = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    conn.write_all(format!("{health}{block}{last}").as_bytes()).await.unwrap();
    let mut answers = vec![];
    conn.read_to_end(&mut answers).await.unwrap();
    let answers = String::from_utf8_lossy(&answers);
    let statuses: Vec<&str> = answers.match_indices("HTTP/1.1 ").map(|(i, _)| &answers[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["200", "404", "200"], "{answers}");

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![];
    tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let (st, v) = envelope(&answer);
    assert_error(st, &v, StatusCode::BAD_REQUEST);
    assert_eq!(everything(&s).await, before, "nothing was written");
    s.stop().await;
}

on_both_backends!(
    bodies_are_read_on_every_route,
    control_characters_are_refused,
    key_logins_are_throttled_per_address,
    ambiguous_framing_is_refused
);
