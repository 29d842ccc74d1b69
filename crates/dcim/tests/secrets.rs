//! Secrets at rest (issue 18, item 3), on SQLite and PostgreSQL: the BMC password, the
//! SNMP community and v3 keys, and the webhook secret given through the API appear
//! nowhere in the database file (and its WAL) or in a `pg_dump`; a password written in
//! clear by an older dcim is sealed at the next start; `dcim secrets rotate` re-seals
//! everything under a new key file (mode 0600) and every device stays reachable: the
//! BMC (ipmi_sim, which checks the password) powers on and the switch (snmpsim, which
//! checks the community) syncs; a process given another key stops at start-up and says
//! why.

mod common;

use std::process::Command;
use std::time::Duration;

use common::sims::{BmcState, IpmiSim};
use common::snmpsim::SnmpSim;
use common::{Db, TestServer, fast_tasks, wait_task};
use serde_json::{Value, json};
use sqlx::Connection;

const SECRETS: [&str; 5] =
    ["Bmc-Pw-Zq81x", "Auth-Key-Zq72y", "Priv-Key-Zq63z", "Webhook-Secret-Zq54w", "Clear-Pw-Zq45v"];

/// Everything the database holds, as text: the SQLite file and its WAL, or a dump of
/// the test's PostgreSQL schema.
fn database_text(s: &TestServer) -> String {
    match &s.schema {
        None => {
            let db = s.cfg.data_dir.join("dcim.db");
            let mut bytes = std::fs::read(&db).unwrap();
            if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
                bytes.extend(wal);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Some(schema) => {
            let out = Command::new("pg_dump")
                .args(["--schema", schema, "--data-only", &common::postgres_base_url()])
                .output()
                .expect("pg_dump");
            assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }
}

fn key_file(s: &TestServer) -> std::path::PathBuf {
    s.cfg.secret_key_path()
}

async fn restart(s: &mut TestServer) {
    s.running.take().unwrap().stop(Duration::from_secs(5)).await.unwrap();
    let r = dcim::serve::start(&s.cfg).await.expect("restarts");
    s.base = r.url();
    s.running = Some(r);
}

async fn run(s: &TestServer, path: &str) -> Value {
    let v = s.post(path, json!({})).await;
    wait_task(s, v["task"].as_i64().unwrap()).await
}

async fn secrets_at_rest(db: Db) {
    let bmc = IpmiSim::start("admin", SECRETS[0]);
    let sim = SnmpSim::start();
    let mut s = TestServer::start_with(db, fast_tasks).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key_file(&s)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file made at the first start is its owner's only");

    let loc = s.post("/dci/v3/location", json!({"name": "DC-1"})).await["id"].as_i64().unwrap();
    let srv = s
        .post(
            "/dci/v3/server",
            json!({"name": "a-1", "location_id": loc,
                   "ipmi": {"address": bmc.address(), "type": "IPMI v2(lanplus)", "user": "admin", "password": SECRETS[0]}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    // snmpsim's community is the recording's name: it is the secret a v2c switch has.
    let sw = s
        .post(
            "/dci/v3/switch",
            json!({"name": "sw-1", "location_id": loc, "ip": sim.addr, "protocol": "snmp_v2c",
                   "snmp": {"community": "switch48"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    s.post(
        "/dci/v3/switch",
        json!({"name": "sw-3", "location_id": loc, "ip": "127.0.0.1:9", "protocol": "snmp_v3",
               "snmp": {"user": "ops", "auth_protocol": "sha", "auth_password": SECRETS[1],
                        "priv_protocol": "aes", "priv_password": SECRETS[2], "context": ""}}),
    )
    .await;
    s.post(
        "/dci/v3/webhook",
        json!({"url": "http://127.0.0.1:9/dcim", "secret": SECRETS[3], "events": ["task.finished"]}),
    )
    .await;

    let text = database_text(&s);
    for secret in &SECRETS[..4] {
        assert!(!text.contains(secret), "{secret} is in the database in clear");
    }
    assert!(!text.contains("switch48"), "the community is in the database in clear");
    assert!(text.contains("sealed:v1:"), "the secrets are there, sealed");

    // What an older dcim wrote in clear is sealed at the next start.
    let url = s.cfg.database_url();
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE servers SET ipmi_password = $1 WHERE id = $2")
        .bind(SECRETS[4])
        .bind(srv)
        .execute(&mut c)
        .await
        .unwrap();
    if s.schema.is_none() {
        // Into the main file, where years of an older dcim would have left it.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut c).await.unwrap();
        let main = std::fs::read(s.cfg.data_dir.join("dcim.db")).unwrap();
        assert!(String::from_utf8_lossy(&main).contains(SECRETS[4]));
    }
    drop(c);
    restart(&mut s).await;
    assert!(!database_text(&s).contains(SECRETS[4]), "sealed at start-up");
    s.post(
        &format!("/dci/v3/server/{srv}"),
        json!({"ipmi": {"address": bmc.address(), "type": "IPMI v2(lanplus)",
        "user": "admin", "password": SECRETS[0]}}),
    )
    .await;

    // Rotation: a new key file, every device still reachable with what it was given.
    let old = std::fs::read_to_string(key_file(&s)).unwrap();
    s.running.take().unwrap().stop(Duration::from_secs(5)).await.unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcim"));
    cmd.args(["secrets", "rotate", "--data-dir"]).arg(&s.cfg.data_dir).env("DCIM_LOG", "warn");
    if s.schema.is_some() {
        cmd.args(["--database-url", &url]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "rotate: {}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("4 secrets sealed under the new key"), "a password, two switches, a webhook: {said}");
    let new = std::fs::read_to_string(key_file(&s)).unwrap();
    assert_ne!(old, new);
    assert_eq!(std::fs::metadata(key_file(&s)).unwrap().permissions().mode() & 0o777, 0o600);
    let r = dcim::serve::start(&s.cfg).await.expect("starts with the rotated key");
    s.base = r.url();
    s.running = Some(r);
    let t = run(&s, &format!("/dci/v3/server/{srv}/power_on")).await;
    assert_eq!(t["status"], "complete", "the BMC took the password: {t}");
    assert!(bmc.power());
    assert_eq!(s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await, json!({"id": sw}));
    assert_eq!(s.get(&format!("/dci/v3/switch/{sw}/port")).await["size"], 48, "the switch took the community");

    // The old key (or any other) is refused at start-up, naming both keys.
    let mut other = s.cfg.clone();
    other.listen = "127.0.0.1:0".into();
    other.secret_key = Some(old.trim().to_owned());
    let e = format!("{:#}", dcim::serve::start(&other).await.err().expect("refused"));
    assert!(e.contains("sealed with secret key") && e.contains("same key"), "{e}");
    s.stop().await;
}

on_both_backends!(secrets_at_rest);
