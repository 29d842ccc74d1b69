//! Conformance with ISPsystem's own OpenAPI documents for Auth v4 and IPmanager 6
//! (`fixtures/vendor/`, the project's copies): every operation of those documents that
//! dcim serves is called through the real server, and each answer is checked against
//! the vendor's schema for its status with a JSON Schema validator (OpenAPI 3.0
//! schemas, `$ref`s inlined and `nullable` turned into a `null` type). What dcim does
//! not serve is listed, and that list is pinned here.
//!
//! Two places where the vendor documents disagree with DCImanager as its clients know
//! it are decided by the contract (`docs/API.md`), and checked as such:
//! - errors: the documents describe `{"error": "<text>", "code": N}` (Auth v4) and
//!   `{"error": {"code", "msg", "value": "<text>"}}` (IPmanager); DCImanager 6 answers
//!   `{"error": {"code", "msg", "value": {...}}}`, and so does dcim, everywhere. Error
//!   answers are checked against that envelope and their status against the document.
//! - the login's `id`: the Auth v4 document says a number (a token id); running
//!   DCImanager 6 installations send the user id as a string (`{"id":"24","token":...}`),
//!   which billing modules read, so dcim does too. This is the one pinned deviation.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::totp::{SECRET, totp_at, well_inside_a_step};
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Db, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Which vendor document an operation belongs to, and the prefix dcim serves it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Doc {
    Auth,
    Ipmgr,
}

impl Doc {
    fn prefix(self) -> &'static str {
        match self {
            Doc::Auth => "/auth/v4",
            Doc::Ipmgr => "/ip/v3",
        }
    }

    fn load(self) -> Value {
        let file = match self {
            Doc::Auth => "auth_v4_api.json",
            Doc::Ipmgr => "ipmgr_api.json",
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vendor").join(file);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}

/// The pinned deviations: (operation, status, why).
const DEVIATIONS: &[(&str, u16, &str)] = &[
    ("post /auth/v4/public/token", 201, "id is the user id as a string, as DCImanager 6 sends it"),
    ("post /auth/v4/public/key", 201, "id is the user id as a string, like the login"),
    ("post /auth/v4/user/{user_id}/key", 201, "id is the user id as a string, as DCImanager 6's docs show it"),
    ("delete /auth/v4/user/{user_id}/lock/{service}", 404, "the document lists no 404; a missing lock is one"),
    ("get /auth/v4/self/sshkey/{key_id}", 404, "the document lists no 404; a missing (or another's) key is one"),
];

/// The operations of the vendor documents dcim does not serve, pinned: serving one
/// means adding a call for it below and taking it off this list.
const NOT_SERVED: &[&str] = &[
    "delete /auth/v4/acl/{}",
    "delete /auth/v4/acl/{}/user/{}",
    "delete /auth/v4/instance/{}/user/{}",
    "delete /auth/v4/instance/{}/user/{}/trustee/{}/roles",
    "delete /auth/v4/restrictons/ban/{}",
    "delete /auth/v4/restrictons/ban/{}/{}",
    "delete /auth/v4/role/{}",
    "delete /auth/v4/setting/{}",
    "delete /auth/v4/user/{}",
    "delete /auth/v4/user/{}/trustee/{}/roles",
    "delete /ip/v3/dnsbl/{}",
    "get /auth/v4/acl",
    "get /auth/v4/acl/{}",
    "get /auth/v4/instance/{}/user",
    "get /auth/v4/instance/{}/user/{}",
    "get /auth/v4/instance/{}/user/{}/method/{}/target/{}",
    "get /auth/v4/instance/{}/user/{}/trustee/{}",
    "get /auth/v4/instance/{}/user/{}/trustee/{}/method/{}/target/{}",
    "get /auth/v4/public/global/whoami",
    "get /auth/v4/public/global/whoami/method/{}/target/{}",
    "get /auth/v4/public/instance/{}/whoami",
    "get /auth/v4/public/instance/{}/whoami/method/{}/target/{}",
    "get /auth/v4/restrictions/ban",
    "get /auth/v4/restrictions/role",
    "get /auth/v4/role",
    "get /auth/v4/role/{}",
    "get /auth/v4/self/acl",
    "get /auth/v4/self/handles",
    "get /auth/v4/self/setting/{}",
    "get /auth/v4/self/subroles",
    "get /auth/v4/setting/{}",
    "get /auth/v4/user",
    "get /auth/v4/user/{}",
    "get /auth/v4/user/{}/acl",
    "get /auth/v4/user/{}/method/{}/target/{}",
    "get /auth/v4/user/{}/trustee/{}",
    "get /auth/v4/user/{}/trustee/{}/method/{}/target/{}",
    "get /ip/v3/dnsbl",
    "get /ip/v3/dnsbl/{}",
    "get /ip/v3/plugin/dnsproxy/status",
    "get /ip/v3/settings/migrate_ipmgr5",
    "post /auth/v4/acl",
    "post /auth/v4/acl/{}",
    "post /auth/v4/acl/{}/user/{}",
    "post /auth/v4/instance/{}/import/user",
    "post /auth/v4/instance/{}/user/{}",
    "post /auth/v4/instance/{}/user/{}/trustee/{}/roles",
    "post /auth/v4/public/confirmation/{}/change_password",
    "post /auth/v4/public/confirmation/{}/invite_user",
    "post /auth/v4/public/first_user_invite",
    "post /auth/v4/public/token/{}/invite_first_user",
    "post /auth/v4/restrictions/role",
    "post /auth/v4/role",
    "post /auth/v4/role/{}",
    "post /auth/v4/self/acl",
    "post /auth/v4/self/back",
    "post /auth/v4/self/key",
    "post /auth/v4/self/setting/{}",
    "post /auth/v4/setting/{}",
    "post /auth/v4/user",
    "post /auth/v4/user/{}",
    "post /auth/v4/user/{}/acl",
    "post /auth/v4/user/{}/su",
    "post /auth/v4/user/{}/trustee/{}/roles",
    "post /ip/v3/dnsbl",
    "post /ip/v3/dnsbl/{}",
    "post /ip/v3/ip/dnsproxy/sync",
    "post /ip/v3/migrate_ipmgr5",
    "post /ip/v3/plugin/dnsproxy/disable",
    "post /ip/v3/plugin/dnsproxy/enable",
    "post /ip/v3/settings/gateway",
    "post /ip/v3/settings/ipv6_prefix",
];

/// `{name}` path parameters as `{}`, so dcim's and the vendor's names need not agree.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// An OpenAPI 3.0 schema as JSON Schema: `$ref`s inlined, `nullable` as a `null` type,
/// OpenAPI-only keywords dropped.
fn to_json_schema(doc: &Value, s: &Value, depth: usize) -> Value {
    assert!(depth < 32, "a $ref cycle in the vendor document");
    match s {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let target = doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {r}"));
                return to_json_schema(doc, target, depth + 1);
            }
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "nullable" | "example" | "examples" | "deprecated" | "readOnly" | "writeOnly" | "xml"
                    | "externalDocs" | "discriminator" => {}
                    "properties" => {
                        let props = v
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(name, p)| (name.clone(), to_json_schema(doc, p, depth + 1)))
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), to_json_schema(doc, v, depth + 1));
                    }
                }
            }
            if m.get("nullable") == Some(&Value::Bool(true))
                && let Some(t) = out.get("type").and_then(Value::as_str).map(str::to_owned)
            {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| to_json_schema(doc, x, depth + 1)).collect()),
        other => other.clone(),
    }
}

/// DCImanager's error envelope, which every error answer must have.
fn envelope() -> Value {
    json!({
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "msg", "value"],
            "properties": {"code": {"type": "integer"}, "msg": {"type": "string"}, "value": {"type": "object"}}}}
    })
}

fn validate(schema: &Value, body: &Value) -> Vec<String> {
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("vendor schema does not compile: {e}\n{schema}"));
    v.iter_errors(body).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

struct Checker<'a> {
    s: &'a TestServer,
    docs: BTreeMap<Doc, Value>,
    /// Operations answered with a success that validated.
    passed: BTreeSet<String>,
    findings: Vec<String>,
    deviations_seen: BTreeSet<String>,
}

impl Checker<'_> {
    fn deviation(&self, key: &str, code: &str) -> bool {
        DEVIATIONS.iter().any(|(k, c, _)| *k == key && c.to_string() == code)
    }

    /// Calls `path` (dcim's prefix included) as `token` and checks the answer against
    /// the vendor's operation `vendor_path`; returns status and body.
    async fn call(
        &mut self,
        doc: Doc,
        method: Method,
        vendor_path: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.s.client.request(method.clone(), self.s.url(path));
        if let Some(t) = token {
            rb = rb.header("x-xsrf-token", t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let ctype = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = r.bytes().await.unwrap();
        let key = format!("{} {}{}", method.as_str().to_lowercase(), doc.prefix(), vendor_path);
        let op = self.docs[&doc]["paths"][vendor_path][method.as_str().to_lowercase()].clone();
        assert!(op.is_object(), "{key} is not an operation of the vendor document");
        let code = status.as_u16().to_string();
        let spec = op["responses"].get(&code).or_else(|| op["responses"].get("default")).cloned();
        let Some(spec) = spec else {
            if self.deviation(&key, &code) {
                self.deviations_seen.insert(key.clone());
            } else {
                self.findings.push(format!("{key}: status {code} is not in the document"));
            }
            return (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        };
        let spec = to_json_schema(&self.docs[&doc], &spec, 0);
        if ctype.starts_with("image/png") {
            if spec["content"].get("image/png").is_none() && !spec["content"].is_null() {
                self.findings.push(format!("{key}: answered image/png, the document says {}", spec["content"]));
            }
            self.passed.insert(key);
            return (status, Value::Null);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{key}: not JSON: {bytes:?}"));
        if !status.is_success() {
            let errs = validate(&envelope(), &v);
            if !errs.is_empty() {
                self.findings.push(format!("{key} {code}: not the error envelope: {errs:?}"));
            }
            return (status, v);
        }
        let schema = &spec["content"]["application/json"]["schema"];
        let errs = if schema.is_null() { vec![] } else { validate(schema, &v) };
        if errs.is_empty() {
            self.passed.insert(key);
        } else if self.deviation(&key, &code) {
            self.deviations_seen.insert(key.clone());
            self.passed.insert(key);
        } else {
            self.findings.push(format!("{key} {code}: {errs:?}\n  answer: {v}"));
        }
        (status, v)
    }
}

async fn vendor_documents(db: Db) {
    let s = TestServer::start(db).await;
    let mut c = Checker {
        s: &s,
        docs: [(Doc::Auth, Doc::Auth.load()), (Doc::Ipmgr, Doc::Ipmgr.load())].into(),
        passed: BTreeSet::new(),
        findings: vec![],
        deviations_seen: BTreeSet::new(),
    };
    let admin = s.admin_token.clone();
    let a = Some(admin.as_str());
    use Doc::{Auth, Ipmgr};
    use Method as M;

    // Auth v4.
    let login = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    let (st, l) = c.call(Auth, M::POST, "/public/token", "/auth/v4/public/token", None, Some(login)).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = c.call(Auth, M::GET, "/self", "/auth/v4/self", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    c.call(Auth, M::GET, "/whoami", "/auth/v4/whoami", a, None).await;
    c.call(Auth, M::GET, "/public/roles", "/auth/v4/public/roles", None, None).await;
    c.call(Auth, M::GET, "/time", "/auth/v4/time", a, None).await;
    c.call(Auth, M::GET, "/self", "/auth/v4/self", a, None).await;
    c.call(Auth, M::POST, "/self", "/api/auth/v4/self", a, Some(json!({"lang": "en", "timezone": "UTC"}))).await;
    let body = json!({"expires_at": "2099-01-01 00:00:00", "description": "billing"});
    let (_, t) = c.call(Auth, M::POST, "/token", "/auth/v4/token", a, Some(body)).await;
    let path = format!("/auth/v4/token/{}", t["id"]);
    let (st, _) = c.call(Auth, M::DELETE, "/token/{token_id}", &path, a, None).await;
    assert_eq!(st, StatusCode::OK);

    let uid = s.add_user("v@example.com", "v-password", "@user").await;
    let u = |tail: &str| format!("/auth/v4/user/{uid}{tail}");
    c.call(Auth, M::POST, "/user/{user_id}/password", &u("/password"), a, Some(json!({"password": "v-password-2"})))
        .await;
    c.call(Auth, M::POST, "/user/{user_id}/suspend", &u("/suspend"), a, Some(json!({}))).await;
    c.call(Auth, M::POST, "/user/{user_id}/resume", &u("/resume"), a, Some(json!({}))).await;
    let lock = json!({"service": "billing", "description": "contract"});
    c.call(Auth, M::POST, "/user/{user_id}/lock", &u("/lock"), a, Some(lock)).await;
    c.call(Auth, M::DELETE, "/user/{user_id}/lock/{service}", &u("/lock/billing"), a, None).await;
    let (st, _) = c.call(Auth, M::DELETE, "/user/{user_id}/lock/{service}", &u("/lock/billing"), a, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, k) = c.call(Auth, M::POST, "/user/{user_id}/key", &u("/key"), a, Some(json!({}))).await;
    let (_, ul) =
        c.call(Auth, M::POST, "/public/key", "/auth/v4/public/key", None, Some(json!({"key": k["key"]}))).await;
    let user = ul["token"].as_str().unwrap().to_owned();
    let ut = Some(user.as_str());
    let pw = json!({"old_password": "v-password-2", "password": "v-password-3"});
    c.call(Auth, M::POST, "/self/password", "/auth/v4/self/password", ut, Some(pw)).await;
    let (st, _) = c
        .call(
            Auth,
            M::POST,
            "/user/{user_id}/password",
            "/auth/v4/user/1/password",
            ut,
            Some(json!({"password": "x-password"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcBMQ2FMV9bO/ZKRlmNWMt2b+XOXIi9fqBVt+0I0TxX v@laptop";
    let (st, nk) = c
        .call(
            Auth,
            M::POST,
            "/self/sshkey",
            "/auth/v4/self/sshkey",
            ut,
            Some(json!({"name": "laptop", "ssh_pub_key": key})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let kp = format!("/auth/v4/self/sshkey/{}", nk["id"]);
    c.call(Auth, M::GET, "/self/sshkey", "/auth/v4/self/sshkey", ut, None).await;
    c.call(Auth, M::GET, "/self/sshkey/{key_id}", &kp, ut, None).await;
    c.call(Auth, M::POST, "/self/sshkey/{key_id}", &kp, ut, Some(json!({"name": "desk"}))).await;
    c.call(Auth, M::GET, "/user/{user_id}/sshkey", &u("/sshkey"), a, None).await;
    c.call(Auth, M::DELETE, "/self/sshkey/{key_id}", &kp, ut, None).await;
    let (st, _) = c.call(Auth, M::GET, "/self/sshkey/{key_id}", &kp, ut, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let now = well_inside_a_step().await;
    let qr = json!({"name": "v@example.com", "secret": SECRET});
    c.call(Auth, M::POST, "/public/2fa/qrcode", "/auth/v4/public/2fa/qrcode", None, Some(qr)).await;
    c.call(Auth, M::POST, "/self/2fa", "/auth/v4/self/2fa", ut, Some(json!({"secret": SECRET, "code": totp_at(now)})))
        .await;
    let (_, codes) = c
        .call(Auth, M::POST, "/self/2fa/reserve/generate", "/auth/v4/self/2fa/reserve/generate", ut, Some(json!({})))
        .await;
    let login = json!({"email": "v@example.com", "password": "v-password-3"});
    let (_, pending) = c.call(Auth, M::POST, "/public/token", "/auth/v4/public/token", None, Some(login)).await;
    assert_eq!(pending["confirmed"], false);
    let confirm = json!({"token": pending["token"], "reserve_code": codes["codes"][0]});
    c.call(Auth, M::POST, "/public/token/confirm", "/auth/v4/public/token/confirm", None, Some(confirm)).await;
    c.call(Auth, M::DELETE, "/user/{user_id}/2fa", &u("/2fa"), a, None).await;
    c.call(Auth, M::DELETE, "/self/2fa", "/auth/v4/self/2fa", ut, None).await;
    let path = format!("/auth/v4/token/{}", l["token"].as_str().unwrap());
    c.call(Auth, M::DELETE, "/token/{token_id}", &path, None, None).await;

    // IPmanager 6: userspaces, networks, pools, ranges, addresses, history.
    let (_, us) = c.call(Ipmgr, M::POST, "/userspace", "/ip/v3/userspace", a, Some(json!({"note": "tenant"}))).await;
    let usp = format!("/ip/v3/userspace/{}", us["id"]);
    c.call(Ipmgr, M::GET, "/userspace", "/ip/v3/userspace", a, None).await;
    c.call(Ipmgr, M::GET, "/userspace/{userspace_id}", &usp, a, None).await;
    c.call(Ipmgr, M::POST, "/userspace/{userspace_id}", &usp, a, Some(json!({"note": "tenant A"}))).await;
    let body = json!({"name": "203.0.113.0/24", "gateway": "203.0.113.1", "vlan": "7"});
    let (_, un) =
        c.call(Ipmgr, M::POST, "/userspace/{userspace_id}/ipnet", &format!("{usp}/ipnet"), a, Some(body)).await;
    let body = json!({"name": "tenant pool"});
    let (_, up) =
        c.call(Ipmgr, M::POST, "/userspace/{userspace_id}/ippool", &format!("{usp}/ippool"), a, Some(body)).await;
    let body = json!({"name": "203.0.113.10-203.0.113.20"});
    let rp = format!("/ip/v3/ippool/{}/range", up["id"]);
    let (_, range) = c.call(Ipmgr, M::POST, "/ippool/{pool_id}/range", &rp, a, Some(body)).await;
    let rg = format!("/ip/v3/range/{}", range["id"]);
    c.call(Ipmgr, M::GET, "/range", "/ip/v3/range", a, None).await;
    c.call(Ipmgr, M::GET, "/range/{range_id}", &rg, a, None).await;
    c.call(Ipmgr, M::POST, "/range/{range_id}", &rg, a, Some(json!({"name": "203.0.113.10-203.0.113.30"}))).await;
    let ap = format!("/ip/v3/ippool/{}/ip", up["id"]);
    let (_, got) =
        c.call(Ipmgr, M::POST, "/ippool/{pool_id}/ip", &ap, a, Some(json!({"domain": "t.example.com"}))).await;
    c.call(Ipmgr, M::GET, "/range/{range_id}/ip", &format!("{rg}/ip"), a, None).await;
    let np = format!("/ip/v3/ipnet/{}/ip", un["id"]);
    let body = json!({"name": "203.0.113.200", "status": "service", "note": "dns"});
    let (_, given) = c.call(Ipmgr, M::POST, "/ipnet/{net_id}/ip", &np, a, Some(body)).await;
    let body = json!({"name": "203.0.113.201"});
    let (_, by_us) = c.call(Ipmgr, M::POST, "/userspace/{userspace_id}/ip", &format!("{usp}/ip"), a, Some(body)).await;
    c.call(Ipmgr, M::GET, "/ip", "/ip/v3/ip", a, None).await;
    let gp = format!("/ip/v3/ip/{}", given["id"]);
    c.call(Ipmgr, M::GET, "/ip/{ip_id}", &gp, a, None).await;
    c.call(Ipmgr, M::POST, "/ip/{ip_id}", &gp, a, Some(json!({"locked": true, "status": "special"}))).await;
    let (st, _) = c.call(Ipmgr, M::DELETE, "/ip/{ip_id}", &gp, a, None).await;
    assert_eq!(st, StatusCode::CONFLICT, "locked");
    c.call(Ipmgr, M::POST, "/ip/{ip_id}", &gp, a, Some(json!({"locked": false}))).await;
    for ip in [&got, &given, &by_us] {
        c.call(Ipmgr, M::DELETE, "/ip/{ip_id}", &format!("/ip/v3/ip/{}", ip["id"]), a, None).await;
    }
    let hp = format!("{usp}/history/203.0.113.200");
    c.call(Ipmgr, M::GET, "/userspace/{userspace_id}/history/{address}", &hp, a, None).await;
    c.call(Ipmgr, M::DELETE, "/range/{range_id}", &rg, a, None).await;
    c.call(Ipmgr, M::DELETE, "/ippool/{pool_id}", &format!("/ip/v3/ippool/{}", up["id"]), a, None).await;
    c.call(Ipmgr, M::DELETE, "/ipnet/{net_id}", &format!("/ip/v3/ipnet/{}", un["id"]), a, None).await;
    c.call(Ipmgr, M::DELETE, "/userspace/{userspace_id}", &usp, a, None).await;

    // Networks and pools of the public userspace (created through dcim's own routes).
    let (_, net) = c_post(&s, "/ip/v3/ipnet", json!({"name": "198.51.100.0/24", "gateway": "198.51.100.1"})).await;
    let np = format!("/ip/v3/ipnet/{}", net["id"]);
    c.call(Ipmgr, M::GET, "/ipnet", "/ip/v3/ipnet", a, None).await;
    c.call(Ipmgr, M::GET, "/ipnet/{net_id}", &np, a, None).await;
    c.call(Ipmgr, M::POST, "/ipnet/{net_id}", &np, a, Some(json!({"note": "edge"}))).await;
    let range = json!([{"ipnet": net["id"], "start": "198.51.100.10", "end": "198.51.100.20"}]);
    let (_, pool) = c_post(&s, "/ip/v3/ippool", json!({"name": "edge", "ranges": range})).await;
    let pp = format!("/ip/v3/ippool/{}", pool["id"]);
    c.call(Ipmgr, M::GET, "/ippool", "/ip/v3/ippool", a, None).await;
    c.call(Ipmgr, M::GET, "/ippool/{pool_id}", &pp, a, None).await;
    c.call(Ipmgr, M::POST, "/ippool/{pool_id}", &pp, a, Some(json!({"note": "edge pool"}))).await;
    c.call(Ipmgr, M::DELETE, "/ippool/{pool_id}", &pp, a, None).await;
    let (st, _) = c.call(Ipmgr, M::GET, "/ippool/{pool_id}", &pp, a, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    c.call(Ipmgr, M::DELETE, "/ipnet/{net_id}", &np, a, None).await;

    // What dcim serves of the documents, by its own OpenAPI document.
    let ours = s.client.get(s.url("/swagger/openapi.json")).send().await.unwrap().json::<Value>().await.unwrap();
    let mut served = BTreeSet::new();
    for (path, item) in ours["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            served.insert(format!("{m} {}", shape(path)));
        }
    }
    let mut implemented = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for (doc, d) in &c.docs {
        for (path, item) in d["paths"].as_object().unwrap() {
            for m in item.as_object().unwrap().keys().filter(|m| ["get", "post", "delete"].contains(&m.as_str())) {
                let key = format!("{m} {}", shape(&format!("{}{path}", doc.prefix())));
                if served.contains(&key) {
                    implemented.insert((key, format!("{m} {}{path}", doc.prefix())));
                } else {
                    missing.insert(key);
                }
            }
        }
    }
    let unchecked: Vec<_> = implemented.iter().filter(|(_, k)| !c.passed.contains(k)).map(|(_, k)| k).collect();
    println!("vendor operations served and validated: {}", implemented.len());
    println!("vendor operations not served: {}", missing.len());
    assert!(c.findings.is_empty(), "answers that do not match the vendor documents:\n{}", c.findings.join("\n"));
    assert!(unchecked.is_empty(), "served vendor operations without a validated call here: {unchecked:?}");
    let pinned: BTreeSet<String> = NOT_SERVED.iter().map(|s| s.to_string()).collect();
    assert_eq!(missing, pinned, "the operations dcim does not serve changed: update NOT_SERVED");
    let deviations: BTreeSet<String> = DEVIATIONS.iter().map(|(k, _, _)| k.to_string()).collect();
    assert_eq!(c.deviations_seen, deviations, "a pinned deviation no longer occurs: take it off DEVIATIONS");
    s.stop().await;
}

/// A create through dcim's own routes (not a vendor operation).
async fn c_post(s: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    let (st, v) = s.call(Method::POST, path, Some(body)).await;
    assert!(st.is_success(), "{path}: {v}");
    (st, v)
}

on_both_backends!(vendor_documents);
