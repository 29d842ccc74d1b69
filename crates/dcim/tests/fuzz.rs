//! The API fuzzer: schemathesis (installed by scripts/sims-setup.sh in its own
//! virtualenv) generates requests from dcim's own OpenAPI document and checks every
//! answer against it: no server error, the documented statuses, content types and
//! schemas, schema-valid requests taken and schema-violating ones refused, no
//! operation served without or with a wrong credential, and the stateful checks
//! (an object deleted is gone, one created can be read, another user's object is
//! not). It runs against the real `dcim serve --demo` binary, once with the admin's
//! token and once with a customer's that owns one server, and any finding fails the
//! test. Its settings and every exception, with its reason, are in
//! tests/fixtures/schemathesis.toml.
//!
//! The fuzzer makes up BMCs, switches, PDUs and webhooks at any address it likes, and
//! dcim would speak to them: the server runs in a network namespace of its own, joined
//! to the test by one veth, with no route anywhere else (and no DNS), so nothing it
//! sends leaves the machine. Needs root, as CI runs.
//!
//! `DCIM_FUZZ_SEED` and `DCIM_FUZZ_EXAMPLES` change the seed (fixed, so that a run
//! can be repeated) and the cases per operation. The reports (JUnit and the text
//! output) go to target/fuzz/.

mod common;

use std::path::PathBuf;

use common::Served;
use common::tempdir::Dir;
use serde_json::{Value, json};

const ADMIN: &str = "fuzz-admin@example.com";
const PASSWORD: &str = "fuzz-admin-password";
const CUSTOMER: &str = "fuzz-customer@example.com";

fn st() -> PathBuf {
    let st =
        PathBuf::from(std::env::var("DCIM_SIMS").unwrap_or_else(|_| "/opt/dcim-sims".into())).join("fuzz-venv/bin/st");
    assert!(st.exists(), "{} is missing: run `sudo bash scripts/sims-setup.sh`", st.display());
    st
}

async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let r = client
        .post(format!("{base}/api/auth/v4/public/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap_or_else(|| panic!("login of {email}: {v}")).to_owned()
}

async fn call(client: &reqwest::Client, token: &str, method: reqwest::Method, url: String, body: Value) -> Value {
    let mut rb = client.request(method, &url).bearer_auth(token);
    if !body.is_null() {
        rb = rb.json(&body);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

/// One run of the fuzzer as `who`; returns its summary lines.
fn fuzz(base: &str, token: &str, who: &str) -> String {
    let seed = std::env::var("DCIM_FUZZ_SEED").unwrap_or_else(|_| "20261205".into());
    let examples = std::env::var("DCIM_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let reports = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz").join(who);
    std::fs::create_dir_all(&reports).unwrap();
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemathesis.toml");
    let out = std::process::Command::new(st())
        .arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run", &format!("{base}/swagger/openapi.json"), "--url", base])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--seed", &seed, "--max-examples", &examples, "--workers", "2"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&reports)
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache directory lands in the working directory.
        .current_dir(&reports)
        .output()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(reports.join("output.txt"), &text).unwrap();
    let summary = text.find("SUMMARY").map_or(text.as_str(), |i| &text[i..]).to_owned();
    println!("--- fuzzer as {who} (seed {seed}, {examples} cases per operation)\n{summary}");
    assert!(
        out.status.success(),
        "the fuzzer found something as {who} (seed {seed}); the report is in {}:\n{text}\n{}",
        reports.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_finds_nothing_as_admin_or_customer() {
    let dir = Dir::new();
    let ns = common::vdc::Netns::create("10.213.77.1");
    let status = std::process::Command::new("ip")
        .args(["-n", &ns.name, "addr", "add", "10.213.77.2/24", "dev", ns.bridge])
        .status()
        .unwrap();
    assert!(status.success(), "the server's address in the namespace");
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &ns.name])
        .arg(env!("CARGO_BIN_EXE_dcim"))
        .args(["serve", "--demo", "--no-tls", "--listen", "10.213.77.2:0", "--data-dir"])
        .arg(&dir.0)
        .env("RUST_LOG", "warn")
        // The fuzzer sends as fast as the server answers; the per-token rate limit
        // (tested in hardening.rs) would turn most of its cases into 429s.
        .env("DCIM_RATE_LIMIT_PER_SEC", "1000000")
        .env("DCIM_RATE_LIMIT_BURST", "1000000")
        .env("DCIM_ADMIN_EMAIL", ADMIN)
        .env("DCIM_ADMIN_PASSWORD", PASSWORD);
    let served = Served::start(cmd);
    let base = served.url.clone();
    let client = common::client();
    let admin = login(&client, &base, ADMIN, PASSWORD).await;

    // A customer with a server of its own, an address and a key, as billing makes one.
    let user = call(
        &client,
        &admin,
        reqwest::Method::POST,
        format!("{base}/api/dci/v3/user"),
        json!({"email": CUSTOMER, "password": "fuzz-customer-password", "role": "@user"}),
    )
    .await;
    let free = call(
        &client,
        &admin,
        reqwest::Method::GET,
        format!("{base}/api/dci/v3/server?where=owner%20IS%20null&limit=1"),
        Value::Null,
    )
    .await;
    let server = free["list"][0]["id"].as_i64().expect("a free server on the demo");
    call(
        &client,
        &admin,
        reqwest::Method::POST,
        format!("{base}/api/dci/v3/server/{server}/owner"),
        json!({"owner": user["id"]}),
    )
    .await;
    let customer = login(&client, &base, CUSTOMER, "fuzz-customer-password").await;

    // The customer first: the admin's run may block, edit or delete the customer.
    let customer_summary = fuzz(&base, &customer, "customer");
    let admin_summary = fuzz(&base, &admin, "admin");
    for s in [admin_summary, customer_summary] {
        assert!(s.contains("Tested:"), "the summary names the operations tested: {s}");
    }
    // Each run kept its session to the end, so every operation was tried as its caller.
    for (who, token) in [("customer", &customer), ("admin", &admin)] {
        let r = client.get(format!("{base}/api/auth/v4/self")).bearer_auth(token).send().await.unwrap();
        assert!(r.status().is_success() || who == "customer", "the {who}'s session ended during its run");
    }
    served.stop();
    drop(ns);
}
