//! The storage conformance suite: the same calls, the same answers, on SQLite and
//! on PostgreSQL. Each test takes a fresh SQLite file or PostgreSQL schema
//! (`DCIM_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).

use dcim_core::query::ListQuery;
use dcim_core::{Email, Role, TemplateType};
use dcim_store::ids::{ServerId, UserId};
use dcim_store::inventory::{DeviceKind, NewDevice, OsImage, OsInstaller, PortReport};
use dcim_store::servers::{NewServer, ServerPatch};
use dcim_store::users::NewUser;
use dcim_store::{Store, StoreError};
use sqlx::Connection;

enum Db {
    Sqlite,
    Postgres,
}

struct Fresh {
    store: Store,
    cleanup: Option<String>,
    file: Option<std::path::PathBuf>,
}

fn random_name() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn fresh(db: Db) -> Fresh {
    match db {
        Db::Sqlite => {
            let path = std::env::temp_dir().join(format!("dcim-store-{}.db", random_name()));
            let store = Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            store.migrate().await.unwrap();
            Fresh { store, cleanup: None, file: Some(path) }
        }
        Db::Postgres => {
            let base = std::env::var("DCIM_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let schema = format!("s_{}", random_name());
            let mut c = sqlx::PgConnection::connect(&base).await.expect("PostgreSQL is needed for this test");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut c).await.unwrap();
            let store = Store::connect(&format!("{base}?options=-c%20search_path%3D{schema}")).await.unwrap();
            store.migrate().await.unwrap();
            Fresh { store, cleanup: Some(format!("DROP SCHEMA {schema} CASCADE")), file: None }
        }
    }
}

impl Fresh {
    async fn done(self) {
        self.store.close().await;
        if let Some(path) = self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some(sql) = self.cleanup {
            let base = std::env::var("DCIM_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await.unwrap();
        }
    }
}

macro_rules! conformance {
    ($($name:ident),+) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() { super::$name(super::Db::Sqlite).await }
            #[tokio::test]
            async fn postgres() { super::$name(super::Db::Postgres).await }
        }
    )+};
}

fn user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse("email", email).unwrap(),
        password_hash: "$argon2id$test".into(),
        role: Role::User,
        full_name: String::new(),
        phone_number: String::new(),
        vlans_per_user: 0,
    }
}

/// A server with a name and a location, nothing else.
fn bare_server(name: String, location_id: i64) -> NewServer {
    NewServer {
        name,
        location_id,
        rack_id: None,
        unit: None,
        mac: None,
        domain: String::new(),
        details: Default::default(),
        bmc: None,
    }
}

fn ports(n: i64) -> Vec<PortReport> {
    (1..=n)
        .map(|i| PortReport {
            idx: i,
            name: format!("p{i}"),
            description: String::new(),
            alias: String::new(),
            admin_status: "up".into(),
            oper_status: "up".into(),
            speed: None,
        })
        .collect()
}

async fn migrations_are_idempotent(db: Db) {
    let f = fresh(db).await;
    f.store.migrate().await.unwrap();
    f.store.ping().await.unwrap();
    f.done().await;
}

async fn constraints_map_to_conflicts(db: Db) {
    let f = fresh(db).await;
    let s = &f.store;
    let a = s.create_user(&user("a@example.com")).await.unwrap();
    assert!(matches!(s.create_user(&user("A@example.com")).await, Err(StoreError::Conflict(_))));
    let loc = s.create_location("L", "", None).await.unwrap();
    assert!(matches!(s.create_location("L", "", None).await, Err(StoreError::Conflict(_))));
    let srv = s.create_server(&bare_server("s".into(), loc)).await.unwrap();
    assert!(matches!(s.delete_location(loc).await, Err(StoreError::Conflict(_))), "in use");
    s.assign_owner(srv, a).await.unwrap();
    assert!(matches!(s.delete_user(a).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.assign_owner(srv, UserId(999)).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.get_server(ServerId(999), &[]).await, Err(StoreError::NotFound { .. })));
    // The owner-only scope hides other servers.
    let b = s.create_user(&user("b@example.com")).await.unwrap();
    assert!(s.get_server(srv, &[dcim_store::servers::owned_by(b)]).await.is_err());
    assert!(s.get_server(srv, &[dcim_store::servers::owned_by(a)]).await.is_ok());
    f.done().await;
}

async fn a_failed_device_create_writes_nothing(db: Db) {
    let f = fresh(db).await;
    let s = &f.store;
    let loc = s.create_location("L", "", None).await.unwrap();
    let dev = NewDevice {
        name: "sw".into(),
        location_id: loc,
        ip: "127.0.0.1".into(),
        protocol: dcim_core::DeviceProtocol::Fake,
        model: String::new(),
        secret: "{\"community\":\"c\"}".into(),
    };
    // A repeated index updates that port (ports are upserted by index), it adds none.
    let mut dup = ports(3);
    dup.push(PortReport { name: "again".into(), ..dup[0].clone() });
    let id = s.create_device(DeviceKind::Switch, &dev, &dup).await.unwrap();
    let listed = s.list_ports(DeviceKind::Switch, id, &ListQuery::default()).await.unwrap();
    assert_eq!((listed.size, listed.items[0].name.as_str()), (3, "again"));
    // A duplicate name fails as a whole: no device and no ports are left behind.
    let err = s.create_device(DeviceKind::Switch, &dev, &ports(5)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let all = s.list_devices(DeviceKind::Switch, &ListQuery::default()).await.unwrap();
    assert_eq!(all.size, 1);
    assert_eq!(all.items[0].port_count, 3);
    assert_eq!(s.device_secret(DeviceKind::Switch, id).await.unwrap(), "{\"community\":\"c\"}");
    f.done().await;
}

async fn lists_page_and_count(db: Db) {
    let f = fresh(db).await;
    let s = &f.store;
    let loc = s.create_location("L", "", None).await.unwrap();
    for i in 0..7 {
        let id = s.create_server(&bare_server(format!("n{i}"), loc)).await.unwrap();
        s.set_hardware_info(id, "{}", Some(if i % 2 == 0 { "even" } else { "odd" })).await.unwrap();
        s.update_server(id, &ServerPatch { is_new: Some(i == 0), ..ServerPatch::default() }).await.unwrap();
    }
    let q = ListQuery::parse(Some("configuration EQ even"), Some("name desc"), Some("1,2")).unwrap();
    let page = s.list_servers(&q, &[]).await.unwrap();
    assert_eq!(page.size, 4);
    let names: Vec<&str> = page.items.iter().map(|d| d.server.name.as_str()).collect();
    assert_eq!(names, ["n4", "n2"]);
    let counts = s.configuration_counts(&ListQuery::default()).await.unwrap();
    let got: Vec<(String, i64)> = counts.items.into_iter().map(|c| (c.configuration, c.free_server_count)).collect();
    assert_eq!(got, [("even".to_owned(), 3), ("odd".to_owned(), 3)]);
    f.done().await;
}

async fn sessions_and_keys(db: Db) {
    let f = fresh(db).await;
    let s = &f.store;
    let u = s.create_user(&user("s@example.com")).await.unwrap();
    s.create_session(u, "h1", true).await.unwrap();
    assert_eq!(s.session_user("h1", 3600, 30).await.unwrap().unwrap().user_id, u);
    assert!(s.session_user("h1", -1, 30).await.unwrap().is_none(), "idle beyond the limit");
    assert!(s.session_user("h1", 3600, 30).await.unwrap().is_none(), "and deleted");
    s.create_auth_key(u, "k1", 3600).await.unwrap();
    s.create_auth_key(u, "k2", -1).await.unwrap();
    assert_eq!(s.consume_auth_key("k1").await.unwrap(), Some(u));
    assert_eq!(s.consume_auth_key("k1").await.unwrap(), None, "single use");
    assert_eq!(s.consume_auth_key("k2").await.unwrap(), None, "expired");

    // A long-lived token ignores the idle limit and ends at its expiry.
    let t = s.create_token(u, "t1", dcim_store::now() + 60, "ci").await.unwrap();
    assert_eq!(s.session_user("t1", -1, 30).await.unwrap().unwrap().session_id, t);
    s.create_token(u, "t2", dcim_store::now() - 1, "old").await.unwrap();
    assert!(s.session_user("t2", 3600, 30).await.unwrap().is_none(), "expired");
    let listed: Vec<i64> = s.list_tokens(u).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(listed, [t]);
    assert_eq!(s.delete_session_by_id(t, Some(UserId(u.get() + 1))).await.unwrap(), None, "not another user's");
    assert_eq!(s.delete_session_by_id(t, Some(u)).await.unwrap().as_deref(), Some("t1"));

    // An unconfirmed session: its row says so, wrong codes are counted, then it goes.
    let p = s.create_session(u, "h2", false).await.unwrap();
    assert!(!s.session_user("h2", 3600, 30).await.unwrap().unwrap().confirmed);
    assert!(s.fail_confirmation(p, 2).await.unwrap());
    assert!(!s.fail_confirmation(p, 2).await.unwrap());
    assert!(s.pending_session("h2").await.unwrap().is_none());
    f.done().await;
}

async fn totp_steps_reserve_codes_locks(db: Db) {
    let f = fresh(db).await;
    let s = &f.store;
    let u = s.create_user(&user("t@example.com")).await.unwrap();
    let keep = s.create_session(u, "keep", true).await.unwrap();
    s.create_session(u, "other", true).await.unwrap();
    assert!(!s.claim_totp_step(u, 10).await.unwrap(), "no step is claimed while 2FA is off");
    s.enable_totp(u, "SECRET", 100, keep).await.unwrap();
    assert!(s.session_user("other", 3600, 30).await.unwrap().is_none(), "other sessions end");
    assert!(s.session_user("keep", 3600, 30).await.unwrap().is_some());
    assert_eq!(s.totp_state(u).await.unwrap(), (Some("SECRET".to_owned()), 100));
    assert!(!s.claim_totp_step(u, 100).await.unwrap(), "a step works once");
    assert!(!s.claim_totp_step(u, 99).await.unwrap(), "and no earlier one");
    assert!(s.claim_totp_step(u, 101).await.unwrap());
    s.replace_reserve_codes(u, &["r1".into(), "r2".into()]).await.unwrap();
    assert!(s.use_reserve_code(u, "r1").await.unwrap());
    assert!(!s.use_reserve_code(u, "r1").await.unwrap(), "single use");
    let pending = s.create_session(u, "pending", false).await.unwrap();
    assert!(s.disable_totp(u).await.unwrap());
    assert!(!s.disable_totp(u).await.unwrap());
    assert!(!s.use_reserve_code(u, "r2").await.unwrap(), "reserve codes go with 2FA");
    assert_eq!(s.pending_session("pending").await.unwrap().unwrap().session_id, pending);
    assert!(s.pending_session("pending").await.unwrap().unwrap().confirmed, "nothing left to ask");

    s.lock_user(u, "billing", "contract").await.unwrap();
    s.lock_user(u, "billing", "contract 2").await.unwrap();
    assert_eq!(s.user_locks(u).await.unwrap()[0].description, "contract 2");
    assert!(matches!(s.delete_user(u).await, Err(StoreError::Conflict(m)) if m.contains("billing")));
    assert!(s.unlock_user(u, "billing").await.unwrap());
    assert!(!s.unlock_user(u, "billing").await.unwrap());
    s.delete_user(u).await.unwrap();
    f.done().await;
}

async fn os_template_images(db: Db) {
    let f = fresh(db).await;
    let s = &f.store;
    let img = OsImage { url: "http://10.0.0.1/files/debian.img".into(), sha256: "ab".repeat(32) };
    let os = s.create_os_template("Debian 12", TemplateType::Os, "[]", true, Some(&img), None).await.unwrap();
    let diag = s.create_os_template("Diag6", TemplateType::Diag, "[]", true, None, None).await.unwrap();
    let got = s.get_os_template(os).await.unwrap();
    assert_eq!((got.image_url.as_deref(), got.image_sha256.as_deref()), (Some(img.url.as_str()), Some(&*img.sha256)));
    let got = s.get_os_template(diag).await.unwrap();
    assert_eq!((got.image_url, got.image_sha256), (None, None));
    // Absent leaves the image alone, null clears it.
    s.update_os_template(os, Some("Debian 12.5"), None, None, None, None).await.unwrap();
    assert_eq!(s.get_os_template(os).await.unwrap().image_url.as_deref(), Some(img.url.as_str()));
    s.update_os_template(os, None, None, None, Some(None), None).await.unwrap();
    let got = s.get_os_template(os).await.unwrap();
    assert_eq!((got.name.as_str(), got.image_url, got.image_sha256), ("Debian 12.5", None, None));
    s.update_os_template(diag, None, None, None, Some(Some(&img)), None).await.unwrap();
    assert_eq!(s.get_os_template(diag).await.unwrap().image_sha256, Some(img.sha256.clone()));
    f.done().await;
}

async fn os_template_installers(db: Db) {
    let f = fresh(db).await;
    let s = &f.store;
    let ks = OsInstaller {
        kind: "kickstart".into(),
        kernel: "http://mirror/vmlinuz".into(),
        initrd: "http://mirror/initrd.img".into(),
        template: None,
    };
    let id = s.create_os_template("Alma 9", TemplateType::Os, "[]", true, None, Some(&ks)).await.unwrap();
    let got = s.get_os_template(id).await.unwrap();
    assert_eq!(
        (got.installer.as_deref(), got.installer_kernel.as_deref(), got.installer_initrd.as_deref()),
        (Some("kickstart"), Some("http://mirror/vmlinuz"), Some("http://mirror/initrd.img"))
    );
    assert_eq!((got.installer_template, got.image_url), (None, None));
    let custom = OsInstaller { template: Some("rootpw {{password_hash}}".into()), ..ks };
    s.update_os_template(id, None, None, None, None, Some(Some(&custom))).await.unwrap();
    assert_eq!(s.get_os_template(id).await.unwrap().installer_template, custom.template);
    s.update_os_template(id, None, None, None, None, Some(None)).await.unwrap();
    let got = s.get_os_template(id).await.unwrap();
    assert_eq!((got.installer, got.installer_kernel, got.installer_template), (None, None, None));
    f.done().await;
}

/// The free servers per configuration, computed from the servers themselves by
/// `dcim_core::is_free`: what the counts kept by the triggers must say.
async fn counted_from_servers(s: &Store) -> Vec<(String, i64)> {
    let all = s.list_servers(&ListQuery::default(), &[]).await.unwrap().items;
    let mut by = std::collections::BTreeMap::<String, i64>::new();
    for d in all {
        let r = d.server;
        if let Some(c) = r.configuration {
            let free = dcim_core::is_free(r.owner_id.map(|u| u.get()), r.is_new, r.state, r.diag_error.is_some());
            *by.entry(c).or_default() += i64::from(free);
        }
    }
    by.into_iter().collect()
}

/// Filters a billing counts pages by: the page's size comes from the kept counts
/// (`server_counts`), and must be the number of servers the filter finds.
const COUNTED_FILTERS: &[&str] = &[
    "state EQ 'ok' AND owner_email IS null",
    "state EQ ok AND owner IS null AND is_new EQ false AND diag_error IS null",
    "configuration EQ alpha OR configuration CP 'custom%'",
    "configuration IS null",
    "NOT (state EQ ok) OR owner.email IS NOT null",
    "is_new EQ true AND diag_error IS NOT null",
    "state NE suspended AND configuration IS NOT null",
];

/// Every page of `COUNTED_FILTERS`, with and without a limit: the size the counts
/// give equals the servers the unlimited list finds.
async fn assert_counted_sizes(s: &Store, step: u64) {
    for w in COUNTED_FILTERS {
        let limited = s.list_servers(&ListQuery::parse(Some(w), None, Some("0,1")).unwrap(), &[]).await.unwrap();
        let all = s.list_servers(&ListQuery::parse(Some(w), None, None).unwrap(), &[]).await.unwrap();
        assert_eq!(limited.size, all.items.len() as i64, "after step {step}: size of {w}");
    }
    let all = s.list_servers(&ListQuery::parse(None, None, Some("0,1")).unwrap(), &[]).await.unwrap();
    let every = s.list_servers(&ListQuery::default(), &[]).await.unwrap();
    assert_eq!(all.size, every.items.len() as i64, "after step {step}: size of the whole list");
}

/// Every kind of write that moves a server in or out of a configuration, of being free
/// or of a counted filter (hardware, custom configuration, new, owner, state and
/// diagnostics error through tasks, create and delete), in a seeded random order,
/// failed writes included: after each, the free servers per configuration equal the
/// ones computed from the servers, and every counted page's size equals what its
/// filter finds.
async fn configuration_counts_follow_every_write(db: Db) {
    use dcim_core::{ServerState, TaskStatus};
    use dcim_store::tasks::{NewTask, ServerEffects};
    let f = fresh(db).await;
    let s = &f.store;
    let loc = s.create_location("L", "", None).await.unwrap();
    let users =
        [s.create_user(&user("a@example.com")).await.unwrap(), s.create_user(&user("b@example.com")).await.unwrap()];
    let new_server = |i: u64| bare_server(format!("n{i}"), loc);
    let mut ids = vec![];
    for i in 0..8 {
        ids.push(s.create_server(&new_server(i)).await.unwrap());
    }
    let confs = ["alpha", "beta", "gamma"];
    let states = [ServerState::Ok, ServerState::Suspended, ServerState::Ok];
    // A small linear congruential generator: the same sequence on every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut kinds = std::collections::BTreeSet::new();
    for step in 0..240 {
        let id = ids[next(ids.len() as u64) as usize];
        let kind = next(9);
        let pick = next(3) as usize;
        let _ = match kind {
            0 => s.set_hardware_info(id, "{}", Some(confs[pick])).await,
            1 => s.set_hardware_info(id, "{}", None).await,
            2 => {
                let c = (pick > 0).then(|| format!("custom-{pick}"));
                s.update_server(id, &ServerPatch { custom_configuration: Some(c), ..ServerPatch::default() }).await
            }
            3 => s.update_server(id, &ServerPatch { is_new: Some(pick == 0), ..ServerPatch::default() }).await,
            4 => s.assign_owner(id, users[pick % 2]).await,
            5 => s.release_owner(id).await,
            6 => {
                // A task that sets a state when it starts and another one, with or
                // without a diagnostics error, when it ends.
                let task = NewTask {
                    server_id: id,
                    name: "test".into(),
                    params: "{}".into(),
                    steps: "[]".into(),
                    progress_info: String::new(),
                    secret_hash: None,
                    server_state: Some((states[pick], String::new())),
                    exclusive: false,
                    request_id: None,
                };
                let t = s.create_task(&task).await.unwrap();
                let claimed = s.claim_tasks("test-worker", 60_000, 100).await.unwrap();
                assert!(claimed.iter().any(|c| c.id == t), "the task is claimed");
                let effects = ServerEffects {
                    state: Some((states[(pick + 1) % 3], String::new())),
                    diag_error: Some((pick == 1).then(|| "disk sda failed".to_owned())),
                    ..ServerEffects::default()
                };
                s.finish_task(t, "test-worker", TaskStatus::Complete, "", 100, "", &effects).await.map(|_| ())
            }
            7 if ids.len() > 4 => {
                ids.retain(|i| *i != id);
                s.delete_server(id).await
            }
            _ => {
                let n = s.create_server(&new_server(1000 + step)).await.unwrap();
                ids.push(n);
                s.set_hardware_info(n, "{}", Some(confs[pick])).await
            }
        };
        kinds.insert(kind);
        let kept = s.configuration_counts(&ListQuery::default()).await.unwrap();
        let kept: Vec<(String, i64)> = kept.items.into_iter().map(|c| (c.configuration, c.free_server_count)).collect();
        assert_eq!(kept, counted_from_servers(s).await, "after step {step} (write kind {kind} on server {id:?})");
        assert_counted_sizes(s, step).await;
    }
    assert_eq!(kinds.len(), 9, "every kind of write ran: {kinds:?}");
    f.done().await;
}

/// A site takes only the calls of the locations it serves now, only while it holds its
/// credential, and each once; a call for a location it gave up is refused, never
/// handed over; an answer is read once; an enrollment secret works once.
async fn site_calls_stay_within_the_site(db: Db) {
    use dcim_store::sites::{NewSite, SitePatch};
    let f = fresh(db).await;
    let s = &f.store;
    let (a, b) = (s.create_location("A", "", None).await.unwrap(), s.create_location("B", "", None).await.unwrap());
    let far = 4_102_444_800; // 2100
    let site = NewSite {
        name: "s1".into(),
        description: String::new(),
        locations: vec![a],
        enrollment_hash: "e1".into(),
        enrollment_expires: far,
    };
    let id = s.create_site(&site).await.unwrap();
    let other = NewSite { name: "s2".into(), locations: vec![b], enrollment_hash: "e2".into(), ..site.clone() };
    let id2 = s.create_site(&other).await.unwrap();
    // A location is served by one site at most.
    let taken = NewSite { name: "s3".into(), locations: vec![a], enrollment_hash: "e3".into(), ..site.clone() };
    assert!(matches!(s.create_site(&taken).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.enroll_site("e1", "c1").await.unwrap().map(|r| r.0), Some(id));
    assert_eq!(s.enroll_site("e1", "c9").await.unwrap(), None, "once");
    s.enroll_site("e2", "c2").await.unwrap();
    assert_eq!(s.site_by_credential("c1").await.unwrap().map(|r| r.id), Some(id));

    let deadline = dcim_store::webhooks::now_ms() + 60_000;
    let first = s.queue_site_call(id, a, "power_on", "{\"secret\":1}", deadline, None).await.unwrap();
    // Another site's credential, or another site, takes nothing of it.
    assert!(s.take_site_calls(id, "c2", 10, "no").await.unwrap().is_empty());
    assert!(s.take_site_calls(id2, "c2", 10, "no").await.unwrap().is_empty());
    let got = s.take_site_calls(id, "c1", 10, "no").await.unwrap();
    assert_eq!((got.len(), got[0].id, got[0].body.as_str()), (1, first, "{\"secret\":1}"));
    assert!(s.take_site_calls(id, "c1", 10, "no").await.unwrap().is_empty(), "taken once");
    assert!(!s.answer_site_call(id2, first, "{}").await.unwrap(), "only its site answers it");
    assert_eq!(s.take_site_answer(first).await.unwrap(), None);
    assert!(s.answer_site_call(id, first, "{\"Ok\":1}").await.unwrap());
    assert!(!s.answer_site_call(id, first, "{}").await.unwrap(), "answered once");
    assert_eq!(s.take_site_answer(first).await.unwrap().as_deref(), Some("{\"Ok\":1}"));
    assert_eq!(s.take_site_answer(first).await.unwrap(), None, "read once");

    // The location leaves the site before the call is taken: refused, not handed over.
    let second = s.queue_site_call(id, a, "power_on", "{}", deadline, None).await.unwrap();
    s.update_site(id, &SitePatch { locations: Some(vec![]), ..Default::default() }).await.unwrap();
    assert!(s.take_site_calls(id, "c1", 10, "gone").await.unwrap().is_empty());
    assert_eq!(s.take_site_answer(second).await.unwrap().as_deref(), Some("gone"));
    // A revoked credential takes nothing from that moment.
    s.update_site(id, &SitePatch { locations: Some(vec![a]), ..Default::default() }).await.unwrap();
    let third = s.queue_site_call(id, a, "power_on", "{}", deadline, None).await.unwrap();
    s.reset_site_credential(id, None).await.unwrap();
    assert!(s.take_site_calls(id, "c1", 10, "no").await.unwrap().is_empty());
    assert!(s.site_by_credential("c1").await.unwrap().is_none());
    // A call past its deadline is never handed over, and is purged.
    s.reset_site_credential(id, Some(("e4", far))).await.unwrap();
    s.enroll_site("e4", "c4").await.unwrap();
    s.drop_site_call(third).await.unwrap();
    let late = s.queue_site_call(id, a, "power_on", "{}", dcim_store::webhooks::now_ms() - 1, None).await.unwrap();
    assert!(s.take_site_calls(id, "c4", 10, "no").await.unwrap().is_empty());
    assert_eq!(s.purge_site_calls(0).await.unwrap(), 1);
    assert_eq!(s.take_site_answer(late).await.unwrap(), None);
    assert_eq!(s.get_site(id).await.unwrap().calls_in_flight, 0);

    // A keyed call (an action of a task's step) is joined by the same key: a process
    // that resumes the task, or the step's next attempt, waits for the same call.
    let k = s.queue_site_call(id, a, "power_on", "{}", deadline, Some("t1/s0/w0/0")).await.unwrap();
    assert_eq!(s.queue_site_call(id, a, "power_on", "{}", deadline, Some("t1/s0/w0/0")).await.unwrap(), k);
    assert_eq!(s.take_site_calls(id, "c4", 10, "no").await.unwrap().len(), 1);
    s.drop_site_call(k).await.unwrap();
    assert_eq!(
        s.queue_site_call(id, a, "power_on", "{}", deadline, Some("t1/s0/w0/0")).await.unwrap(),
        k,
        "a taken call outlives the caller that gave up"
    );
    assert!(s.answer_site_call(id, k, "{\"Ok\":2}").await.unwrap());
    assert_eq!(s.take_site_answer(k).await.unwrap().as_deref(), Some("{\"Ok\":2}"));
    // One past its deadline and never answered is queued anew.
    let old = s.queue_site_call(id, a, "power_on", "{}", 1, Some("t1/s1/w0/0")).await.unwrap();
    let new = s.queue_site_call(id, a, "power_on", "{}", deadline, Some("t1/s1/w0/0")).await.unwrap();
    assert_ne!(old, new);
    assert_eq!(s.take_site_calls(id, "c4", 10, "no").await.unwrap().len(), 1);
    f.done().await;
}

conformance!(
    site_calls_stay_within_the_site,
    configuration_counts_follow_every_write,
    totp_steps_reserve_codes_locks,
    os_template_images,
    os_template_installers,
    migrations_are_idempotent,
    constraints_map_to_conflicts,
    a_failed_device_create_writes_nothing,
    lists_page_and_count,
    sessions_and_keys
);
