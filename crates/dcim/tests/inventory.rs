//! The inventory API: locations, racks, switches and PDUs with ports, servers with
//! BMC data and connections, hardware by hand, OS templates. Secrets never come back.

mod common;

use common::{Db, TestServer, assert_error, hw_i9};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn equipment_life_cycle(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, sw, pdu) = s.add_site().await;
    assert_eq!(
        s.get(&format!("/dci/v3/location/{loc}")).await,
        json!({"id": loc, "name": "DC-1", "geolocation": "1st Street, 25", "userspace": null})
    );
    assert_eq!(
        s.get(&format!("/dci/v3/rack/{rack}")).await,
        json!({"id": rack, "name": "R1", "location_id": loc, "size": 42, "device_count": 0})
    );

    let ports = s.get(&format!("/dci/v3/switch/{sw}/port")).await;
    assert_eq!(ports["size"], 48);
    assert_eq!(
        ports["list"][0],
        json!({"id": ports["list"][0]["id"], "switch": sw, "index": 1, "name": "ge-0/0/0", "description": "ge-0/0/0", "alias": "", "admin_status": "up", "oper_status": "up", "speed": 1000, "server": null})
    );
    let outlets = s.get(&format!("/dci/v3/pdu/{pdu}/port?orderby=index%20desc&limit=0,2")).await;
    assert_eq!((outlets["size"].clone(), outlets["list"][0]["index"].clone()), (json!(24), json!(24)));
    assert_eq!(s.get(&format!("/dci/v3/pdu/{pdu}")).await["model"], "apc_rpdu");

    // A real SNMP switch: stored with its secret hidden; read by sync (here nothing answers).
    let snmp = s
        .post("/dci/v3/switch", json!({"name": "core", "location_id": loc, "ip": "127.0.0.1:16100", "protocol": "snmp_v2c", "snmp": {"community": "very-secret-community"}}))
        .await["id"]
        .as_i64()
        .unwrap();
    let (st, v) = s.call(Method::POST, &format!("/dci/v3/switch/{snmp}/sync"), Some(json!({}))).await;
    assert!(assert_error(st, &v, StatusCode::SERVICE_UNAVAILABLE).contains("127.0.0.1:16100"));
    let (st, v) = s
        .call(
            Method::POST,
            "/dci/v3/switch",
            Some(json!({"name": "x", "location_id": loc, "ip": "127.0.0.1", "protocol": "snmp_v2c"})),
        )
        .await;
    assert!(assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY).contains("snmp.community"));
    let (st, v) = s
        .call(
            Method::POST,
            "/dci/v3/switch",
            Some(json!({"name": "x", "location_id": loc, "ip": "127.0.0.1", "protocol": "telnet"})),
        )
        .await;
    assert!(assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY).contains("protocol"));

    // A server wired to two switch ports (one for its BMC) and an outlet.
    let srv = s.add_free_server(loc, rack, 7, hw_i9()).await;
    let p0 = ports["list"][0]["id"].as_i64().unwrap();
    let p1 = ports["list"][1]["id"].as_i64().unwrap();
    let c0 =
        s.post(&format!("/dci/v3/server/{srv}/switch_connection"), json!({"port": p0})).await["id"].as_i64().unwrap();
    s.post(&format!("/dci/v3/server/{srv}/switch_connection"), json!({"port": p1, "is_ipmi_connection": true})).await;
    let o1 = s.get(&format!("/dci/v3/pdu/{pdu}/port?where=index%20EQ%201")).await["list"][0]["id"].as_i64().unwrap();
    s.post(&format!("/dci/v3/server/{srv}/pdu_connection"), json!({"port": o1})).await;
    let (st, v) =
        s.call(Method::POST, &format!("/dci/v3/server/{srv}/switch_connection"), Some(json!({"port": p0}))).await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("already connected"));
    let (st, v) =
        s.call(Method::POST, &format!("/dci/v3/server/{srv}/switch_connection"), Some(json!({"port": 99999}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    let port0 = s.get(&format!("/dci/v3/switch/{sw}/port?where=server%20EQ%20{srv}")).await;
    assert_eq!(port0["size"], 2);
    assert_eq!(port0["list"][0]["server"], json!({"id": srv, "name": "srv-7"}));

    let got = s.get(&format!("/dci/v3/server/{srv}")).await;
    assert_eq!(got["switch_connection"].as_array().unwrap().len(), 2);
    assert_eq!(got["switch_connection"][1]["is_ipmi_connection"], true);
    assert_eq!(got["pdu_connection"]["pdu_name"], "pdu1");
    assert_eq!(got["ipmi"]["address"], "127.0.0.1:6237");
    assert_eq!(got["ipmi"]["type"], "IPMI v2(lanplus)");
    assert_eq!(got["configuration"], "i9-9900K-64Gb-2x1024NVMe");
    assert_eq!(got["hardware_info"]["motherboard"]["model"], "Z390");

    // Re-reading the ports keeps the connections.
    s.post(&format!("/dci/v3/switch/{sw}/sync"), json!({})).await;
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["switch_connection"], got["switch_connection"]);

    // Secrets are write-only.
    for path in [
        format!("/dci/v3/server/{srv}"),
        "/dci/v3/server".into(),
        format!("/dci/v3/switch/{snmp}"),
        "/dci/v3/switch".into(),
    ] {
        let r = s.seed_request(Method::GET, &path, &s.admin_token).send().await.unwrap();
        let text = r.text().await.unwrap();
        assert!(!text.contains("bmc-secret") && !text.contains("very-secret-community"), "{path} leaks a secret");
    }

    // Things in use cannot go.
    for p in [
        format!("/dci/v3/switch/{sw}"),
        format!("/dci/v3/pdu/{pdu}"),
        format!("/dci/v3/location/{loc}"),
        format!("/dci/v3/rack/{rack}"),
    ] {
        let (st, v) = s.call(Method::DELETE, &p, None).await;
        assert_error(st, &v, StatusCode::CONFLICT);
    }
    let u = s.add_user("owner@example.com", "owner-password", "@user").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": u})).await;
    let (st, v) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}"), None).await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("owner@example.com"));
    let (st, _) = s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/switch_connection/{c0}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["switch_connection"].as_array().unwrap().len(), 1);
    s.call(Method::DELETE, &format!("/dci/v3/server/{srv}/owner"), None).await;
    assert_eq!(s.call(Method::DELETE, &format!("/dci/v3/server/{srv}"), None).await.0, StatusCode::OK);
    for p in [
        format!("/dci/v3/switch/{sw}"),
        format!("/dci/v3/pdu/{pdu}"),
        format!("/dci/v3/switch/{snmp}"),
        format!("/dci/v3/rack/{rack}"),
        format!("/dci/v3/location/{loc}"),
    ] {
        let (st, v) = s.call(Method::DELETE, &p, None).await;
        assert_eq!(st, StatusCode::OK, "{p}: {v}");
    }
    assert_eq!(s.get("/dci/v3/location").await["size"], 0);
    s.stop().await;
}

async fn servers_and_templates(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    let other_loc = s.post("/dci/v3/location", json!({"name": "DC-2"})).await["id"].as_i64().unwrap();
    let (st, v) = s
        .call(Method::POST, "/dci/v3/server", Some(json!({"name": "s1", "location_id": other_loc, "rack_id": rack})))
        .await;
    assert!(assert_error(st, &v, StatusCode::CONFLICT).contains("is in location"));
    let (st, v) = s.call(Method::POST, "/dci/v3/server", Some(json!({"name": "s1", "location_id": 999}))).await;
    assert_error(st, &v, StatusCode::NOT_FOUND);
    let a = s
        .post(
            "/dci/v3/server",
            json!({"name": "s1", "location_id": loc, "rack_id": rack, "unit": 1, "mac": "52-54-00-AA-BB-CC"}),
        )
        .await;
    let a = a["id"].as_i64().unwrap();
    let got = s.get(&format!("/dci/v3/server/{a}")).await;
    assert_eq!(
        (got["mac"].clone(), got["is_new"].clone(), got["ipmi"].clone()),
        (json!("52:54:00:aa:bb:cc"), json!(true), json!(null))
    );
    assert_eq!((got["configuration"].clone(), got["hardware_info"].clone()), (json!(null), json!({})));
    for body in [
        json!({"name": "s1", "location_id": loc}),
        json!({"name": "s2", "location_id": loc, "mac": "52:54:00:aa:bb:cc"}),
        json!({"name": "s3", "location_id": loc, "rack_id": rack, "unit": 1}),
    ] {
        let (st, v) = s.call(Method::POST, "/dci/v3/server", Some(body.clone())).await;
        assert_error(st, &v, StatusCode::CONFLICT);
    }
    assert_eq!(s.get("/dci/v3/server").await["size"], 1, "nothing half-written");

    s.post(&format!("/dci/v3/server/{a}"), json!({"ipmi": {"address": "[::1]:6230", "type": "redfish", "user": "root", "password": "pw"}, "domain": "S1.Example.COM"})).await;
    let got = s.get(&format!("/dci/v3/server/{a}")).await;
    assert_eq!((got["ipmi"]["type"].clone(), got["domain"].clone()), (json!("redfish"), json!("s1.example.com")));
    s.post(&format!("/dci/v3/server/{a}"), json!({"ipmi": null, "mac": null})).await;
    let got = s.get(&format!("/dci/v3/server/{a}")).await;
    assert_eq!((got["ipmi"].clone(), got["mac"].clone()), (json!(null), json!(null)));
    // Out of its rack into the warehouse: integer columns set to null (PostgreSQL once
    // refused a NULL bound as text for them).
    s.post(&format!("/dci/v3/server/{a}"), json!({"rack_id": null, "unit": null})).await;
    let got = s.get(&format!("/dci/v3/server/{a}")).await;
    assert_eq!(
        (got["rack"].clone(), got["unit"].clone(), got["warehouse_status"].clone()),
        (json!(null), json!(null), json!("in_warehouse")),
        "{got}"
    );

    let t = s.post("/dci/v3/os_template", json!({"name": "Debian 12", "type": "os", "tags": ["linux"]})).await["id"]
        .as_i64()
        .unwrap();
    s.post("/dci/v3/os_template", json!({"name": "Diag6", "type": "diag"})).await;
    assert_eq!(
        s.get(&format!("/dci/v3/os_template/{t}")).await,
        json!({"id": t, "name": "Debian 12", "type": "os", "tags": ["linux"], "efi": true,
               "image_url": null, "image_sha256": null, "installer": null, "installer_kernel": null,
               "installer_initrd": null, "installer_template": null})
    );
    // An image: an http(s) URL and a SHA-256, set and cleared together.
    let sha = "AB".repeat(32);
    let img = json!({"image_url": "https://mirror.example/debian.img", "image_sha256": sha});
    s.post(&format!("/dci/v3/os_template/{t}"), img).await;
    let got = s.get(&format!("/dci/v3/os_template/{t}")).await;
    assert_eq!(
        (&got["image_url"], &got["image_sha256"]),
        (&json!("https://mirror.example/debian.img"), &json!(sha.to_lowercase()))
    );
    for (body, field) in [
        (json!({"image_url": "ftp://mirror.example/x.img", "image_sha256": sha}), "image_url"),
        (json!({"image_url": "http://", "image_sha256": sha}), "image_url"),
        (json!({"image_url": "http://mirror.example/x.img", "image_sha256": "abc"}), "image_sha256"),
        (json!({"image_url": "http://mirror.example/x.img", "image_sha256": "g".repeat(64)}), "image_sha256"),
        (json!({"image_url": "http://mirror.example/x.img"}), "image_sha256"),
        (json!({"image_url": "/images/../dcim.db", "image_sha256": sha}), "image_url"),
        (json!({"image_url": "/images/.hidden", "image_sha256": sha}), "image_url"),
        (json!({"image_url": "/images/", "image_sha256": sha}), "image_url"),
        (json!({"image_url": "/etc/passwd", "image_sha256": sha}), "image_url"),
    ] {
        let (st, v) = s.call(Method::POST, &format!("/dci/v3/os_template/{t}"), Some(body.clone())).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(v.to_string().contains(field), "{body}: {v}");
        let mut new = body;
        new["name"] = json!("Y");
        new["type"] = json!("os");
        let (st, v) = s.call(Method::POST, "/dci/v3/os_template", Some(new)).await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // An image of dcim's own images directory.
    s.post(&format!("/dci/v3/os_template/{t}"), json!({"image_url": "/images/debian-12.img", "image_sha256": sha}))
        .await;
    assert_eq!(s.get(&format!("/dci/v3/os_template/{t}")).await["image_url"], "/images/debian-12.img");
    s.post(&format!("/dci/v3/os_template/{t}"), json!({"image_url": null, "image_sha256": null})).await;
    assert_eq!(s.get(&format!("/dci/v3/os_template/{t}")).await["image_url"], json!(null));
    assert_eq!(s.get("/dci/v3/os_template?where=type%20EQ%20diag").await["size"], 1);
    let (st, v) = s.call(Method::POST, "/dci/v3/os_template", Some(json!({"name": "X", "type": "windows"}))).await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY);
    s.post(&format!("/dci/v3/os_template/{t}"), json!({"tags": ["linux", "debian"], "efi": false})).await;
    assert_eq!(s.get(&format!("/dci/v3/os_template/{t}")).await["tags"], json!(["linux", "debian"]));
    s.stop().await;
}

async fn users_edit_and_delete(db: Db) {
    let s = TestServer::start(db).await;
    let u = s.add_user("edit@example.com", "edit-password", "@user").await;
    s.post(
        &format!("/dci/v3/user/{u}"),
        json!({"full_name": "Edith", "phone_number": "+1 555", "vlans_per_user": 5, "role": "@admin"}),
    )
    .await;
    let got = s.get(&format!("/dci/v3/user/{u}")).await;
    assert_eq!(
        got,
        json!({"id": u, "email": "edit@example.com", "server_count": 0, "roles": ["@admin"], "vlans_per_user": 5, "full_name": "Edith", "phone_number": "+1 555", "blocked": false})
    );
    let t = s.login("edit@example.com", "edit-password").await;
    s.post(&format!("/dci/v3/user/{u}"), json!({"password": "new-password"})).await;
    assert_eq!(
        s.call_as(&t, Method::GET, "/auth/v4/whoami", None).await.0,
        StatusCode::UNAUTHORIZED,
        "a new password ends sessions"
    );
    s.login("edit@example.com", "new-password").await;
    let (st, v) = s.call(Method::POST, "/dci/v3/user/1", Some(json!({"blocked": true}))).await;
    assert_error(st, &v, StatusCode::CONFLICT);
    let (st, v) = s.call(Method::DELETE, "/dci/v3/user/1", None).await;
    assert_error(st, &v, StatusCode::CONFLICT);
    let (st, v) =
        s.call(Method::POST, &format!("/dci/v3/user/{u}"), Some(json!({"email": "admin@test.example"}))).await;
    assert_error(st, &v, StatusCode::CONFLICT);
    assert_eq!(s.call(Method::DELETE, &format!("/dci/v3/user/{u}"), None).await.0, StatusCode::OK);
    assert_eq!(s.call(Method::DELETE, &format!("/dci/v3/user/{u}"), None).await.0, StatusCode::NOT_FOUND);
    s.stop().await;
}

on_both_backends!(equipment_life_cycle, servers_and_templates, users_edit_and_delete);
