//! The admin pages of the web UI over HTTP, on both backends: locations and racks with
//! the rack elevation (its SVG parsed and checked against the inventory), switches
//! and PDUs (a port shut and opened, SNMP secrets never shown), users (the login
//! link), bulk actions on exactly the confirmed servers, and the CSV export. A
//! customer gets none of these pages and no link to them.

mod common;

use common::ui::{Page, field, ids, page, post_form};
use common::{Db, TestServer, fake_server, fast_tasks, wait_task};
use reqwest::StatusCode;
use serde_json::json;

/// Where a post-redirect-get answer sends the browser.
fn location(p: &Page) -> String {
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    p.headers["location"].to_str().unwrap().to_owned()
}

/// The admin's session and its CSRF token.
async fn admin(s: &TestServer) -> (String, String) {
    let token = s.admin_token.clone();
    let csrf = field(&page(s, &token, "/ui/").await.body, "_csrf");
    (token, csrf)
}

async fn customer(s: &TestServer, email: &str) -> (i64, String) {
    let id = s.add_user(email, "customer-password", "@user").await;
    (id, s.login(email, "customer-password").await)
}

async fn admin_pages_are_the_admins(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, sw, pdu) = fake_server(&s).await;
    let loc = s.get("/dci/v3/location").await["list"][0]["id"].as_i64().unwrap();
    let rack = s.get("/dci/v3/rack").await["list"][0]["id"].as_i64().unwrap();
    let (user_id, user) = customer(&s, "customer@example.com").await;
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": user_id})).await;
    let (token, _) = admin(&s).await;
    let tpl = s.get("/dci/v3/os_template").await["list"][0]["id"].as_i64().unwrap();
    let site = s.post("/dci/v3/site", json!({"name": "far"})).await["id"].as_i64().unwrap();
    let paths = [
        "/ui/sites".to_owned(),
        format!("/ui/sites/{site}"),
        "/ui/locations".to_owned(),
        format!("/ui/locations/{loc}"),
        format!("/ui/racks/{rack}"),
        "/ui/devices".to_owned(),
        format!("/ui/switches/{sw}"),
        format!("/ui/pdus/{pdu}"),
        "/ui/users".to_owned(),
        format!("/ui/users/{user_id}"),
        "/ui/templates".to_owned(),
        format!("/ui/templates/{tpl}"),
        "/ui/servers/new".to_owned(),
        format!("/ui/servers/{srv}/inventory"),
    ];
    for path in &paths {
        let p = page(&s, &token, path).await;
        assert_eq!(p.status, StatusCode::OK, "admin {path}: {}", p.body);
        let csp = p.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert!(!p.body.contains("style=") && !p.body.contains("<script>"), "{path}: no inline style or script");
        assert!(p.body.contains("id=\"nav-locations\"") && p.body.contains("id=\"nav-users\""), "{path}");
        let p = page(&s, &user, path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "customer {path}: {}", p.body);
    }
    // The customer's own pages link to none of them, and its server page does not
    // link to the rack.
    for path in ["/ui/".to_owned(), "/ui/servers".to_owned(), format!("/ui/servers/{srv}")] {
        let p = page(&s, &user, &path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        for admin_link in [
            "/ui/locations",
            "/ui/racks/",
            "/ui/devices",
            "/ui/switches/",
            "/ui/users",
            "/ui/templates",
            "/ui/sites",
            "/ui/servers/new",
            "/inventory",
        ] {
            assert!(!p.body.contains(admin_link), "customer {path} links to {admin_link}");
        }
    }
    let p = page(&s, &token, &format!("/ui/servers/{srv}")).await;
    assert!(
        p.body.contains(&format!("href=\"/ui/racks/{rack}\" id=\"rack-link\"")),
        "the admin's server page links to its rack"
    );
    // A customer's posts to admin pages are refused, and nothing changes.
    let ucsrf = field(&page(&s, &user, "/ui/").await.body, "_csrf");
    for (path, form) in [
        ("/ui/locations".to_owned(), vec![("name", "X")]),
        (format!("/ui/locations/{loc}/delete"), vec![]),
        (format!("/ui/racks/{rack}/edit"), vec![("name", "R9"), ("size", "10")]),
        (format!("/ui/switches/{sw}/sync"), vec![]),
        ("/ui/users".to_owned(), vec![("email", "x@example.com"), ("password", "long-password-1")]),
        (format!("/ui/users/{user_id}/key"), vec![]),
        ("/ui/sites".to_owned(), vec![("name", "mine")]),
        (format!("/ui/sites/{site}/enrollment"), vec![]),
        (format!("/ui/sites/{site}/delete"), vec![]),
    ] {
        let mut f = vec![("_csrf", ucsrf.as_str())];
        f.extend(form);
        let p = post_form(&s, &user, &path, &f).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}: {}", p.body);
    }
    assert_eq!(s.get("/dci/v3/location").await["size"], 1);
    assert_eq!(s.get("/dci/v3/rack").await["list"][0]["name"], "R1");
    assert_eq!(s.get("/dci/v3/user").await["size"], 2);
    let sites = s.get("/dci/v3/site").await;
    assert_eq!((sites["size"].as_i64(), sites["list"][0]["enrollment_expires"].is_string()), (Some(1), true));
    s.stop().await;
}

/// Sites by their forms: a new one shows its secret once, with the command that starts
/// it (and, on plain HTTP, that a site needs HTTPS); a location another site serves is
/// refused beside the form, as typed; edits, a new secret, revocation and deletion go
/// through the API's handlers; a name is escaped; a post without the CSRF token changes
/// nothing.
async fn sites_made_edited_revoked_and_deleted(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (token, csrf) = admin(&s).await;
    let a = s.post("/dci/v3/location", json!({"name": "Hall A"})).await["id"].as_i64().unwrap();
    let b = s.post("/dci/v3/location", json!({"name": "Hall B"})).await["id"].as_i64().unwrap();
    let (a_s, b_s) = (a.to_string(), b.to_string());
    let made = [("_csrf", csrf.as_str()), ("name", "<b>west</b>"), ("description", "West"), ("location", &a_s)];
    let p = post_form(&s, &token, "/ui/sites", &made).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let site = s.get("/dci/v3/site").await["list"][0].clone();
    let id = site["id"].as_i64().unwrap();
    assert_eq!((site["name"].as_str(), site["locations"].clone()), (Some("<b>west</b>"), json!([a])), "{site}");
    let command = p.body.split("id=\"enroll-command\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(
        command.starts_with("DCIM_SITE_ENROLLMENT=") && command.contains(" dcim site --central https://"),
        "{command}"
    );
    let secret = command.split_whitespace().next().unwrap().trim_start_matches("DCIM_SITE_ENROLLMENT=").to_owned();
    assert_eq!(secret.len(), 64, "{command}");
    assert!(p.body.contains("id=\"enroll-warning\">This server serves plain HTTP"), "{}", p.body);
    assert!(p.body.contains("&#60;b&#62;west&#60;/b&#62;") && !p.body.contains("<b>west</b>"), "escaped: {}", p.body);
    // Shown once: the site's page and the list do not have it.
    let p = page(&s, &token, &format!("/ui/sites/{id}")).await;
    assert!(!p.body.contains(&secret) && !p.body.contains("enroll-command"), "{}", p.body);
    assert!(p.body.contains("an enrollment secret waits"), "{}", p.body);
    let list = page(&s, &token, "/ui/sites").await.body;
    assert!(!list.contains(&secret) && list.contains("not enrolled") && list.contains("Hall A"), "{list}");
    assert!(list.contains("(served by &#60;b&#62;west&#60;/b&#62;)"), "{list}");
    // The secret works, once.
    let (st, v) = s.call(reqwest::Method::POST, "/dci/v3/site/enroll", Some(json!({"secret": secret}))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(s.get(&format!("/dci/v3/site/{id}")).await["enrolled"], true);

    // Hall A is served already: refused beside the form, the typed fields kept.
    let other = [("_csrf", csrf.as_str()), ("name", "east"), ("location", &a_s), ("location", &b_s)];
    let p = post_form(&s, &token, "/ui/sites", &other).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"create-error\">") && p.body.contains("value=\"east\""), "{}", p.body);
    assert!(p.body.contains(&format!("value=\"{b}\" checked")), "the boxes as ticked: {}", p.body);
    assert_eq!(s.get("/dci/v3/site").await["size"], 1, "nothing made");
    // Without the CSRF token nothing changes.
    let p = post_form(&s, &token, &format!("/ui/sites/{id}/delete"), &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);

    // Edited: another name, both halls.
    let edit =
        [("_csrf", csrf.as_str()), ("name", "west"), ("description", ""), ("location", &a_s), ("location", &b_s)];
    assert_eq!(
        location(&post_form(&s, &token, &format!("/ui/sites/{id}/edit"), &edit).await),
        format!("/ui/sites/{id}")
    );
    let now = s.get(&format!("/dci/v3/site/{id}")).await;
    assert_eq!((now["name"].as_str(), now["description"].as_str()), (Some("west"), Some("")), "{now}");
    assert_eq!(now["locations"], json!([a, b]));
    // A new secret revokes the credential and is shown once.
    let p = post_form(&s, &token, &format!("/ui/sites/{id}/enrollment"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("id=\"enroll-command\">DCIM_SITE_ENROLLMENT="), "{}", p.body);
    assert_eq!(s.get(&format!("/dci/v3/site/{id}")).await["enrolled"], false);
    // Revoked: the waiting secret goes too.
    assert_eq!(
        location(&post_form(&s, &token, &format!("/ui/sites/{id}/revoke"), &[("_csrf", &csrf)]).await),
        format!("/ui/sites/{id}")
    );
    let now = s.get(&format!("/dci/v3/site/{id}")).await;
    assert!(now["enrolled"] == false && now["enrollment_expires"].is_null(), "{now}");
    assert_eq!(
        location(&post_form(&s, &token, &format!("/ui/sites/{id}/delete"), &[("_csrf", &csrf)]).await),
        "/ui/sites"
    );
    assert_eq!(s.get("/dci/v3/site").await["size"], 0);
    let p = page(&s, &token, &format!("/ui/sites/{id}")).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

/// A server's box in a rack's SVG.
#[derive(Debug)]
struct Drawn {
    server: i64,
    unit: i64,
    size: i64,
    y: f64,
    height: f64,
    class: String,
}

/// A rack's SVG: its height in units, the pixels of a unit and of the top margin, the
/// server boxes, and the free units drawn.
struct Drawing {
    size: i64,
    unit_px: i64,
    top_px: i64,
    boxes: Vec<Drawn>,
    gaps: i64,
}

fn drawing(svg: &str) -> Drawing {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
    let root = doc.descendants().find(|n| n.has_tag_name("svg")).unwrap();
    let num = |n: roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    let mut d = Drawing {
        size: num(root, "data-size") as i64,
        unit_px: num(root, "data-unit-px") as i64,
        top_px: num(root, "data-top-px") as i64,
        boxes: vec![],
        gaps: 0,
    };
    for n in doc.descendants().filter(|n| n.has_tag_name("rect")) {
        if n.attribute("data-free-unit").is_some() {
            d.gaps += 1;
        }
        if let Some(id) = n.attribute("data-server") {
            d.boxes.push(Drawn {
                server: id.parse().unwrap(),
                unit: num(n, "data-unit") as i64,
                size: num(n, "data-size") as i64,
                y: num(n, "y"),
                height: num(n, "height"),
                class: n.attribute("data-class").unwrap().to_owned(),
            });
        }
    }
    d
}

/// The SVG of a page (the first rack drawn on it).
fn svg_of(body: &str) -> String {
    let start = body.find("<svg").expect("an SVG");
    let end = body[start..].find("</svg>").unwrap() + start + 6;
    body[start..end].to_owned()
}

async fn locations_racks_and_elevations(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (token, csrf) = admin(&s).await;
    // A location made by the form, a refused one shown again with the reason.
    let p =
        post_form(&s, &token, "/ui/locations", &[("_csrf", &csrf), ("name", "Hall B"), ("geolocation", "2nd Street")])
            .await;
    let to = location(&p);
    let loc: i64 = to.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(s.get(&format!("/dci/v3/location/{loc}")).await["geolocation"], "2nd Street");
    let p = post_form(&s, &token, "/ui/locations", &[("_csrf", &csrf), ("name", "Hall B")]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"create-error\">location &#39;Hall B&#39; exists"), "{}", p.body);
    assert!(p.body.contains("name=\"name\" value=\"Hall B\""), "the refused form keeps what was typed");
    let p = post_form(&s, &token, "/ui/locations", &[("_csrf", &csrf), ("name", "")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert_eq!(s.get("/dci/v3/location").await["size"], 1, "nothing half-made");
    // A rack by the location page's form; a bad height is refused with the reason.
    let p =
        post_form(&s, &token, &format!("/ui/locations/{loc}/rack"), &[("_csrf", &csrf), ("name", "B1"), ("size", "0")])
            .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"rack-error\">size: must be 1 to 100 units"), "{}", p.body);
    let p = post_form(
        &s,
        &token,
        &format!("/ui/locations/{loc}/rack"),
        &[("_csrf", &csrf), ("name", "B1"), ("size", "10")],
    )
    .await;
    let rack: i64 = location(&p).rsplit('/').next().unwrap().parse().unwrap();
    let second =
        s.post("/dci/v3/rack", json!({"name": "B2", "location_id": loc, "size": 6})).await["id"].as_i64().unwrap();
    // Servers of several heights, one rented, one busy with diagnostics errors.
    let mut placed = vec![];
    for (n, unit, size) in [(1, 1, 2), (2, 4, 1), (3, 9, 2), (4, 6, 3)] {
        let id = s
            .post(
                "/dci/v3/server",
                json!({"name": format!("b-{n}"), "location_id": loc, "rack_id": rack, "unit": unit,
                       "platform": {"size": size}, "mac": format!("52:54:00:0b:00:{n:02x}"),
                       "ipmi": {"address": format!("bmc-b-{n}"), "type": "fake", "user": "admin", "password": "pw"}}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        s.post(&format!("/dci/v3/server/{id}"), json!({"is_new": false})).await;
        placed.push(id);
    }
    let (uid, _) = customer(&s, "renter@example.com").await;
    s.post(&format!("/dci/v3/server/{}/owner", placed[1]), json!({"owner": uid})).await;
    // Two servers in one unit are refused, whatever their heights.
    for (unit, size) in [(2, 1), (3, 2), (5, 2)] {
        let (status, body) = s
            .call(
                reqwest::Method::POST,
                "/dci/v3/server",
                Some(json!({"name": "clash", "location_id": loc, "rack_id": rack, "unit": unit, "platform": {"size": size}})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "unit {unit} size {size}: {body}");
    }
    // The rack page's SVG against the inventory, unit by unit.
    let p = page(&s, &token, &format!("/ui/racks/{rack}")).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let d = drawing(&svg_of(&p.body));
    assert_eq!(d.size, 10);
    assert_eq!(d.boxes.len(), 4, "{:?}", d.boxes);
    let mut used = 0;
    for b in &d.boxes {
        let api = s.get(&format!("/dci/v3/server/{}", b.server)).await;
        assert_eq!(api["unit"].as_i64(), Some(b.unit), "{api}");
        assert_eq!(api["platform"]["size"].as_i64(), Some(b.size), "{api}");
        // Unit 1 at the bottom: the box's top is the top of its highest unit.
        let top_unit = b.unit + b.size - 1;
        assert_eq!(b.y, (d.top_px + (d.size - top_unit) * d.unit_px) as f64, "{b:?}");
        assert_eq!(b.height, (b.size * d.unit_px) as f64, "{b:?}");
        let want = if b.server == placed[1] { "rented" } else { "free" };
        assert_eq!(b.class, want, "{b:?}");
        used += b.size;
    }
    assert_eq!(d.gaps, d.size - used, "every unit not taken is drawn free");
    assert!(p.body.contains(&format!("href=\"/ui/servers/{}\"", placed[0])), "each box links to its server");
    assert!(p.body.contains("renter@example.com"), "the owner is in the tooltip");
    // The location page draws both racks.
    let p = page(&s, &token, &format!("/ui/locations/{loc}")).await;
    assert_eq!(p.body.matches("<svg").count(), 2);
    assert!(p.body.contains(&format!("id=\"rack-{second}\"")));
    // Deleting what is in use is refused with the reason, and nothing is lost.
    let p = post_form(&s, &token, &format!("/ui/racks/{rack}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"delete-error\">"), "{}", p.body);
    let p = post_form(&s, &token, &format!("/ui/locations/{loc}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert_eq!(s.get("/dci/v3/rack").await["size"], 2);
    // An empty rack goes; an edit that would leave a server outside is the API's call.
    let p = post_form(
        &s,
        &token,
        &format!("/ui/racks/{second}/edit"),
        &[("_csrf", &csrf), ("name", "B2-new"), ("size", "8")],
    )
    .await;
    assert_eq!(location(&p), format!("/ui/racks/{second}"));
    assert_eq!(s.get(&format!("/dci/v3/rack/{second}")).await["name"], "B2-new");
    let p = post_form(&s, &token, &format!("/ui/racks/{second}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(location(&p), format!("/ui/locations/{loc}"));
    assert_eq!(s.get("/dci/v3/rack").await["size"], 1);
    // The forms need the CSRF token.
    let p = post_form(&s, &token, &format!("/ui/locations/{loc}/edit"), &[("name", "Hijacked")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(s.get(&format!("/dci/v3/location/{loc}")).await["name"], "Hall B");
    // Hostile names are text in the SVG too.
    s.post(&format!("/dci/v3/server/{}", placed[0]), json!({"name": "<script>x</script>&"})).await;
    let p = page(&s, &token, &format!("/ui/racks/{rack}")).await;
    assert!(!p.body.contains("<script>x"), "{}", p.body);
    drawing(&svg_of(&p.body));
    s.stop().await;
}

async fn switch_ports_and_device_settings(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, sw, pdu) = fake_server(&s).await;
    let (token, csrf) = admin(&s).await;
    let ports = s.get(&format!("/dci/v3/switch/{sw}/port?where=server%20EQ%20{srv}&orderby=index%20asc")).await;
    let port = ports["list"][0]["id"].as_i64().unwrap();
    let p = page(&s, &token, &format!("/ui/switches/{sw}")).await;
    assert!(p.body.contains(&format!("id=\"port-{port}\"")), "{}", p.body);
    assert!(p.body.contains("loses its link"), "the confirmation names the server: {}", p.body);
    assert!(p.body.contains("Shut port") && p.body.contains("op-1 loses its link"), "{}", p.body);
    // Shut, then open, through the UI; the API sees each.
    let p = post_form(
        &s,
        &token,
        &format!("/ui/switches/{sw}/port_down"),
        &[("_csrf", &csrf), ("port", &port.to_string())],
    )
    .await;
    assert_eq!(location(&p), format!("/ui/switches/{sw}#port-{port}"));
    assert_eq!(s.get(&format!("/dci/v3/switch/{sw}/port/{port}")).await["admin_status"], "down");
    let p = page(&s, &token, &format!("/ui/switches/{sw}")).await;
    assert!(p.body.contains(&format!("id=\"port-{port}\" data-id=\"{port}\" data-admin=\"down\"")), "{}", p.body);
    let p =
        post_form(&s, &token, &format!("/ui/switches/{sw}/port_up"), &[("_csrf", &csrf), ("port", &port.to_string())])
            .await;
    location(&p);
    assert_eq!(s.get(&format!("/dci/v3/switch/{sw}/port/{port}")).await["admin_status"], "up");
    // An unknown port is the API's 404.
    let p =
        post_form(&s, &token, &format!("/ui/switches/{sw}/port_down"), &[("_csrf", &csrf), ("port", "999999")]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    // Sync shows the ports as read.
    for (noun, id) in [("switches", sw), ("pdus", pdu)] {
        let p = post_form(&s, &token, &format!("/ui/{noun}/{id}/sync"), &[("_csrf", &csrf)]).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert!(p.body.contains("id=\"synced\""), "{}", p.body);
    }
    let p = page(&s, &token, &format!("/ui/pdus/{pdu}")).await;
    assert!(p.body.contains(&format!("href=\"/ui/servers/{srv}\">op-1")), "the outlet's server: {}", p.body);
    assert!(p.body.contains("op-1 loses its power."), "the confirmation names the server: {}", p.body);
    // An outlet off, rebooted and on through the UI; the API and the lab see each.
    let outlet =
        s.get(&format!("/dci/v3/pdu/{pdu}/port?where=server%20EQ%20{srv}")).await["list"][0]["id"].as_i64().unwrap();
    let o = outlet.to_string();
    let p = post_form(&s, &token, &format!("/ui/pdus/{pdu}/outlet_off"), &[("_csrf", &csrf), ("port", &o)]).await;
    assert_eq!(location(&p), format!("/ui/pdus/{pdu}#port-{outlet}"));
    assert_eq!(
        s.get(&format!("/dci/v3/pdu/{pdu}/port?where=id%20EQ%20{outlet}")).await["list"][0]["power_status"],
        "down"
    );
    let p = page(&s, &token, &format!("/ui/pdus/{pdu}")).await;
    assert!(p.body.contains(&format!("id=\"port-{outlet}\" data-id=\"{outlet}\" data-power=\"down\"")), "{}", p.body);
    for action in ["outlet_on", "outlet_reboot"] {
        location(&post_form(&s, &token, &format!("/ui/pdus/{pdu}/{action}"), &[("_csrf", &csrf), ("port", &o)]).await);
        assert_eq!(
            s.get(&format!("/dci/v3/pdu/{pdu}/port?where=id%20EQ%20{outlet}")).await["list"][0]["power_status"],
            "up",
            "{action}"
        );
    }
    let q = common::enc("action EQ 'ui.outlet_reboot'");
    assert_eq!(s.get(&format!("/dci/v3/audit?where={q}")).await["size"], 1, "the click is in the trail");
    let p = post_form(&s, &token, &format!("/ui/switches/{sw}/outlet_off"), &[("_csrf", &csrf), ("port", &o)]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "a switch has no outlets");
    // SNMP secrets are write-only: a stored community is never on the page, an empty
    // field keeps it, a typed one replaces it, a bad one is refused by the field.
    let loc = s.get("/dci/v3/location").await["list"][0]["id"].as_i64().unwrap();
    let snmp = s
        .post(
            "/dci/v3/switch",
            json!({"name": "sw-secret", "location_id": loc, "ip": "127.0.0.2", "protocol": "fake",
                   "snmp": {"community": "very-secret-community"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let p = page(&s, &token, &format!("/ui/switches/{snmp}")).await;
    assert!(!p.body.contains("very-secret-community"));
    let p = post_form(
        &s,
        &token,
        &format!("/ui/switches/{sw}/settings"),
        &[("_csrf", &csrf), ("name", "sw1-renamed"), ("community", "")],
    )
    .await;
    location(&p);
    assert_eq!(s.get(&format!("/dci/v3/switch/{sw}")).await["name"], "sw1-renamed");
    let p =
        post_form(&s, &token, &format!("/ui/switches/{sw}/settings"), &[("_csrf", &csrf), ("ip", "not an address!")])
            .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("id=\"settings-error\">ip:"), "{}", p.body);
    s.stop().await;
}

async fn users_and_the_login_link(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let (token, csrf) = admin(&s).await;
    // A short password is refused by its field, the e-mail kept, no user made.
    let p = post_form(
        &s,
        &token,
        "/ui/users",
        &[("_csrf", &csrf), ("email", "new@example.com"), ("password", "x"), ("role", "@user")],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"create-error\">password:"), "{}", p.body);
    assert!(
        p.body.contains("value=\"new@example.com\"") && !p.body.contains("value=\"x\""),
        "the password is not sent back"
    );
    assert_eq!(s.get("/dci/v3/user").await["size"], 1);
    let p = post_form(
        &s,
        &token,
        "/ui/users",
        &[
            ("_csrf", &csrf),
            ("email", "new@example.com"),
            ("password", "new-password-1"),
            ("role", "@user"),
            ("full_name", "New Customer"),
        ],
    )
    .await;
    let id: i64 = location(&p).rsplit('/').next().unwrap().parse().unwrap();
    let u = s.get(&format!("/dci/v3/user/{id}")).await;
    assert_eq!(u["full_name"], "New Customer");
    assert_eq!(u["roles"], json!(["@user"]));
    s.post(&format!("/dci/v3/server/{srv}/owner"), json!({"owner": id})).await;
    // The list shows the server count.
    let p = page(&s, &token, "/ui/users?q=new%40").await;
    assert_eq!(ids(&p.body), vec![id]);
    assert!(p.body.contains(">1</a>"), "{}", p.body);
    // Edit; the password is kept when left empty.
    let p = post_form(
        &s,
        &token,
        &format!("/ui/users/{id}/edit"),
        &[
            ("_csrf", &csrf),
            ("email", "new@example.com"),
            ("full_name", "Renamed"),
            ("phone_number", "+1 555"),
            ("role", "@user"),
            ("password", ""),
        ],
    )
    .await;
    location(&p);
    assert_eq!(s.get(&format!("/dci/v3/user/{id}")).await["full_name"], "Renamed");
    s.login("new@example.com", "new-password-1").await;
    // Deleting a user who owns a server is refused with the reason.
    let p = post_form(&s, &token, &format!("/ui/users/{id}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"delete-error\">"), "{}", p.body);
    // Block and unblock.
    location(&post_form(&s, &token, &format!("/ui/users/{id}/block"), &[("_csrf", &csrf)]).await);
    assert_eq!(s.get(&format!("/dci/v3/user/{id}")).await["blocked"], true);
    location(&post_form(&s, &token, &format!("/ui/users/{id}/unblock"), &[("_csrf", &csrf)]).await);
    assert_eq!(s.get(&format!("/dci/v3/user/{id}")).await["blocked"], false);
    // An admin cannot block itself from the page either.
    let me = s.get("/auth/v4/whoami").await["id"].as_i64().unwrap();
    let p = post_form(&s, &token, &format!("/ui/users/{me}/block"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    // The login link: shown once, it logs the customer in on a fresh client, once.
    let p = post_form(&s, &token, &format!("/ui/users/{id}/key"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let at = p.body.find("id=\"key-link\" readonly value=\"").expect("the link is shown") + 30;
    let link = p.body[at..at + p.body[at..].find('"').unwrap()].to_owned();
    assert!(link.contains("/auth/key-v4/"), "{link}");
    let path = &link[link.find("/auth/key-v4/").unwrap()..];
    let fresh = common::client();
    let r = fresh.get(s.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let ui_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("dcim_ui="))
        .unwrap();
    let session = ui_cookie.trim_start_matches("dcim_ui=").split(';').next().unwrap().to_owned();
    let p = page(&s, &session, "/ui/servers").await;
    assert!(p.body.contains("new@example.com"), "logged in as the customer");
    assert_eq!(ids(&p.body), vec![srv]);
    assert_ne!(fresh.get(s.url(path)).send().await.unwrap().status(), StatusCode::SEE_OTHER, "the link works once");
    assert!(!page(&s, &token, &format!("/ui/users/{id}")).await.body.contains("/auth/key-v4/"), "shown only once");
    s.stop().await;
}

/// Adds `n` fake servers named `{prefix}-{i}` in the first location; returns their ids.
async fn many(s: &TestServer, prefix: &str, n: usize) -> Vec<i64> {
    let loc = s.get("/dci/v3/location").await["list"][0]["id"].as_i64().unwrap();
    let mut out = vec![];
    for i in 0..n {
        let v = s
            .post(
                "/dci/v3/server",
                json!({"name": format!("{prefix}-{i:02}"), "location_id": loc,
                       "ipmi": {"address": format!("bmc-{prefix}-{i}"), "type": "fake", "user": "admin", "password": "pw"}}),
            )
            .await;
        out.push(v["id"].as_i64().unwrap());
    }
    out
}

/// The `data-id`s of the links of the confirmation's list.
fn named(body: &str) -> Vec<i64> {
    let list = &body[body.find("id=\"confirm-names\"").unwrap()..];
    let list = &list[..list.find("</p>").unwrap()];
    list.match_indices("data-id=\"").map(|(i, _)| list[i + 9..].split('"').next().unwrap().parse().unwrap()).collect()
}

async fn bulk_acts_on_exactly_the_confirmed_servers(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    fake_server(&s).await;
    let ids_all = many(&s, "bulk", 40).await;
    let (token, csrf) = admin(&s).await;
    // The filter: 30 of the 40.
    let filter = "name CP 'bulk-%' AND name LT 'bulk-30'";
    let selected: Vec<i64> = ids_all[..30].to_vec();
    let listed = s.get(&format!("/dci/v3/server?where={}&limit=0", common::enc(filter))).await;
    assert_eq!(listed["size"], 30);
    // Three of them are busy: a slow power-on holds them.
    s.post("/dci/v3/fake/delay", json!({"ms": 3000})).await;
    let busy: Vec<i64> = vec![selected[3], selected[10], selected[29]];
    let mut busy_tasks = vec![];
    for id in &busy {
        busy_tasks.push(s.post(&format!("/dci/v3/server/{id}/power_on"), json!({})).await["task"].as_i64().unwrap());
    }
    // The list page offers the action on all matching.
    let p = page(&s, &token, &format!("/ui/servers?where={}", common::enc(filter))).await;
    assert!(p.body.contains("all 30 matching this filter"), "{}", p.body);
    // The confirmation names them (30 ≤ 50: every one) and carries their ids.
    let p = post_form(
        &s,
        &token,
        "/ui/servers/bulk",
        &[("_csrf", &csrf), ("stage", "confirm"), ("scope", "all"), ("where", filter), ("action", "power_reset")],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Power reset: 30 servers?"), "{}", p.body);
    assert!(p.body.contains("id=\"confirm-where\">name CP &#39;bulk-%&#39;"), "the filter is named");
    let mut shown = named(&p.body);
    shown.sort_unstable();
    assert_eq!(shown, selected);
    let carried = field(&p.body, "ids");
    // A server that comes to match the filter after the confirmation is not touched.
    s.post(&format!("/dci/v3/server/{}", ids_all[35]), json!({"name": "bulk-00a"})).await;
    assert_eq!(s.get(&format!("/dci/v3/server?where={}&limit=0,0", common::enc(filter))).await["size"], 31);
    let p = post_form(
        &s,
        &token,
        "/ui/servers/bulk",
        &[("_csrf", &csrf), ("stage", "run"), ("ids", &carried), ("action", "power_reset")],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Power reset: 27 started, 3 refused"), "{}", p.body);
    for (id, t) in busy.iter().zip(&busy_tasks) {
        let row = &p.body[p.body.find(&format!("<tr data-id=\"{id}\"")).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains("data-status=\"409\"") && row.contains(&format!("{t}")),
            "busy {id} names its task {t}: {row}"
        );
    }
    // Through the API: exactly one power_reset task per selected server not busy.
    let resets = s.get("/dci/v3/task?where=name%20EQ%20%27power_reset%27").await;
    let mut reset_servers: Vec<i64> =
        resets["list"].as_array().unwrap().iter().map(|t| t["server"].as_i64().unwrap()).collect();
    reset_servers.sort_unstable();
    let mut want: Vec<i64> = selected.iter().copied().filter(|id| !busy.contains(id)).collect();
    want.sort_unstable();
    assert_eq!(reset_servers, want, "exactly the confirmed, free servers");
    s.post("/dci/v3/fake/delay", json!({"ms": 0})).await;
    for t in resets["list"].as_array().unwrap() {
        wait_task(&s, t["id"].as_i64().unwrap()).await;
    }
    // Ticked servers: the confirmation names the ticked ones the caller sees.
    let p = post_form(
        &s,
        &token,
        "/ui/servers/bulk",
        &[
            ("_csrf", &csrf),
            ("stage", "confirm"),
            ("action", "power_on"),
            ("id", &ids_all[31].to_string()),
            ("id", &ids_all[32].to_string()),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(named(&p.body).len(), 2);
    // Nothing ticked, an unknown action, no CSRF token: refused, nothing started.
    let before = s.get("/dci/v3/task?limit=0,0").await["size"].clone();
    for form in [
        vec![("_csrf", csrf.as_str()), ("stage", "confirm"), ("action", "power_on")],
        vec![("_csrf", csrf.as_str()), ("stage", "run"), ("action", "reboot_now"), ("ids", "1")],
        vec![("stage", "run"), ("action", "power_on"), ("ids", "1")],
    ] {
        let p = post_form(&s, &token, "/ui/servers/bulk", &form).await;
        assert!(p.status.is_client_error(), "{form:?}: {}", p.status);
    }
    assert_eq!(s.get("/dci/v3/task?limit=0,0").await["size"], before);
    // A customer acts on its own server only; another's is refused as not found.
    let (uid, user) = customer(&s, "bulk-customer@example.com").await;
    s.post(&format!("/dci/v3/server/{}/owner", ids_all[38]), json!({"owner": uid})).await;
    let ucsrf = field(&page(&s, &user, "/ui/").await.body, "_csrf");
    let p = post_form(
        &s,
        &user,
        "/ui/servers/bulk",
        &[("_csrf", &ucsrf), ("stage", "confirm"), ("scope", "all"), ("where", ""), ("action", "power_on")],
    )
    .await;
    assert_eq!(named(&p.body), vec![ids_all[38]], "all matching is all the customer's");
    let ids = format!("{},{}", ids_all[38], ids_all[39]);
    let p = post_form(
        &s,
        &user,
        "/ui/servers/bulk",
        &[("_csrf", &ucsrf), ("stage", "run"), ("ids", &ids), ("action", "power_on")],
    )
    .await;
    assert!(p.body.contains("1 started, 1 refused"), "{}", p.body);
    assert!(
        p.body.contains(&format!("<tr data-id=\"{}\" data-task=\"0\" data-status=\"404\"", ids_all[39])),
        "{}",
        p.body
    );
    let p = post_form(
        &s,
        &user,
        "/ui/servers/bulk",
        &[("_csrf", &ucsrf), ("stage", "run"), ("ids", &ids), ("action", "suspend")],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "suspend is the admin's");
    s.stop().await;
}

async fn csv_export_is_the_list(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    fake_server(&s).await;
    let ids_all = many(&s, "csv", 12).await;
    s.post(&format!("/dci/v3/server/{}", ids_all[0]), json!({"name": "=HYPERLINK(\"http://x\")"})).await;
    let (token, _) = admin(&s).await;
    let r = s
        .client
        .get(s.url("/ui/servers.csv?where=name%20CP%20%27csv-%25%27&sort=name%20desc&per=10"))
        .header("Cookie", format!("dcim_ui={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains("servers.csv"));
    let body = r.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines[0].starts_with("id,name,domain,state,power_status"));
    let api = s.get("/dci/v3/server?where=name%20CP%20%27csv-%25%27&orderby=name%20desc").await;
    let want: Vec<String> = api["list"].as_array().unwrap().iter().map(|v| v["id"].to_string()).collect();
    let got: Vec<String> = lines[1..].iter().map(|l| l.split(',').next().unwrap().to_owned()).collect();
    assert_eq!(got, want, "every page of the filtered list, in its order");
    assert_eq!(got.len(), 11);
    let r = s
        .client
        .get(s.url(&format!("/ui/servers.csv?where=id%20EQ%20{}", ids_all[0])))
        .header("Cookie", format!("dcim_ui={token}"))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&format!("\n{},\"'=HYPERLINK(\"\"http://x\"\")\",", ids_all[0])),
        "a formula is made inert: {body}"
    );
    // A customer's export is its own servers.
    let (uid, user) = customer(&s, "csv@example.com").await;
    s.post(&format!("/dci/v3/server/{}/owner", ids_all[5]), json!({"owner": uid})).await;
    let r = s.client.get(s.url("/ui/servers.csv")).header("Cookie", format!("dcim_ui={user}")).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert_eq!(body.lines().count(), 2, "{body}");
    assert!(body.lines().nth(1).unwrap().starts_with(&format!("{},csv-05,", ids_all[5])));
    s.stop().await;
}

async fn servers_enrolled_and_connected(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (op, sw, pdu) = fake_server(&s).await;
    let loc = s.get("/dci/v3/location").await["list"][0]["id"].as_i64().unwrap();
    let rack = s.get("/dci/v3/rack").await["list"][0]["id"].as_i64().unwrap();
    let (token, csrf) = admin(&s).await;
    let (uid, user) = customer(&s, "enroll@example.com").await;
    assert_eq!(page(&s, &user, "/ui/servers/new").await.status, StatusCode::FORBIDDEN);
    assert_eq!(page(&s, &user, &format!("/ui/servers/{op}/inventory")).await.status, StatusCode::FORBIDDEN);
    let p = page(&s, &token, "/ui/servers/new").await;
    assert_eq!(p.status, StatusCode::OK);
    let (locs, racks) = (loc.to_string(), rack.to_string());
    let form = |name: &'static str, mac: &'static str, unit: &'static str, size: &'static str| {
        vec![
            ("_csrf", csrf.clone()),
            ("name", name.to_owned()),
            ("domain", format!("{name}.example.com")),
            ("mac", mac.to_owned()),
            ("location_id", locs.clone()),
            ("rack_id", racks.clone()),
            ("unit", unit.to_owned()),
            ("size", size.to_owned()),
            ("bmc_type", "fake".to_owned()),
            ("bmc_address", format!("bmc-{name}")),
            ("bmc_user", "admin".to_owned()),
            ("bmc_password", "bmc-secret-pw".to_owned()),
        ]
    };
    let post = |path: String, f: Vec<(&'static str, String)>| {
        let s = &s;
        let token = token.clone();
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(s, &token, &path, &pairs).await
        }
    };
    // A bad MAC is refused by its field, the form kept but for the password.
    let p = post("/ui/servers/new".into(), form("web-1", "not-a-mac", "3", "2")).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("id=\"create-error\">mac:"), "{}", p.body);
    assert!(p.body.contains("value=\"web-1\"") && !p.body.contains("bmc-secret-pw"), "{}", p.body);
    assert_eq!(s.get("/dci/v3/server").await["size"], 1, "nothing made");
    // A good one, 2U at unit 3; then one that would share unit 4 is refused.
    let p = post("/ui/servers/new".into(), form("web-1", "52:54:00:aa:00:01", "3", "2")).await;
    let to = location(&p);
    let id: i64 = to.trim_end_matches("/inventory").rsplit('/').next().unwrap().parse().unwrap();
    let v = s.get(&format!("/dci/v3/server/{id}")).await;
    assert_eq!((v["unit"].as_i64(), v["platform"]["size"].as_i64()), (Some(3), Some(2)), "{v}");
    assert_eq!(v["ipmi"]["address"], "bmc-web-1");
    assert_eq!(v["rack"]["id"], rack);
    let p = post("/ui/servers/new".into(), form("web-2", "52:54:00:aa:00:02", "4", "1")).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("web-1"), "the refusal names the server in the way: {}", p.body);
    // The inventory page holds no BMC password.
    let inv = format!("/ui/servers/{id}/inventory");
    let p = page(&s, &token, &inv).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(!p.body.contains("bmc-secret-pw"));
    // A switch port and an outlet picked from the free ones, then let go.
    let free = s.get(&format!("/dci/v3/switch/{sw}/port?where=server%20IS%20null&orderby=index%20asc&limit=0,1")).await;
    let port = free["list"][0]["id"].as_i64().unwrap();
    assert!(p.body.contains(&format!("<option value=\"{port}\">")), "{}", p.body);
    let taken =
        s.get(&format!("/dci/v3/switch/{sw}/port?where=server%20EQ%20{op}&limit=0,1")).await["list"][0]["id"].clone();
    assert!(!p.body.contains(&format!("<option value=\"{taken}\">")), "a taken port is not offered");
    location(&post(format!("{inv}/connect_port"), vec![("_csrf", csrf.clone()), ("port", port.to_string())]).await);
    let v = s.get(&format!("/dci/v3/server/{id}")).await;
    assert_eq!(v["switch_connection"][0]["id"], port, "{v}");
    let cid = v["switch_connection"][0]["connection_id"].as_i64().unwrap();
    let p = post(format!("{inv}/connect_port"), vec![("_csrf", csrf.clone()), ("port", taken.to_string())]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "a taken port is refused: {}", p.body);
    assert!(p.body.contains("id=\"ports-error\">"), "{}", p.body);
    location(
        &post(format!("{inv}/disconnect_port"), vec![("_csrf", csrf.clone()), ("connection", cid.to_string())]).await,
    );
    assert_eq!(s.get(&format!("/dci/v3/server/{id}")).await["switch_connection"], json!([]));
    let outlet = s.get(&format!("/dci/v3/pdu/{pdu}/port?where=server%20IS%20null&limit=0,1")).await["list"][0]["id"]
        .as_i64()
        .unwrap();
    location(&post(format!("{inv}/connect_outlet"), vec![("_csrf", csrf.clone()), ("port", outlet.to_string())]).await);
    let v = s.get(&format!("/dci/v3/server/{id}")).await;
    assert_eq!(v["pdu_connection"]["port_id"], outlet, "{v}");
    let ocid = v["pdu_connection"]["connection_id"].as_i64().unwrap();
    location(
        &post(format!("{inv}/disconnect_outlet"), vec![("_csrf", csrf.clone()), ("connection", ocid.to_string())])
            .await,
    );
    assert!(s.get(&format!("/dci/v3/server/{id}")).await["pdu_connection"].is_null());
    // Hardware by hand: bad JSON is refused and kept in the box; good JSON is stored.
    let p =
        post(format!("{inv}/hardware"), vec![("_csrf", csrf.clone()), ("hardware_info", "{\"cpu\": ".into())]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"hardware-error\">hardware_info: is not JSON"), "{}", p.body);
    assert!(p.body.contains("{&#34;cpu&#34;: </textarea>"), "{}", p.body);
    let hw = json!({"cpu": {"model": "Xeon E-2146G", "sockets": 1, "cores": 6}, "memory": {"total_mib": 32768}});
    location(&post(format!("{inv}/hardware"), vec![("_csrf", csrf.clone()), ("hardware_info", hw.to_string())]).await);
    assert_eq!(s.get(&format!("/dci/v3/server/{id}")).await["hardware_info"]["cpu"]["model"], "Xeon E-2146G");
    // Edit: a clash is refused; a rename and a move up the rack are taken.
    let mut edit = form("web-1", "52:54:00:aa:00:01", "1", "2");
    edit.retain(|(k, _)| !k.starts_with("bmc") && *k != "location_id");
    let p = post(format!("{inv}/edit"), edit.clone()).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "unit 1 is op-1's: {}", p.body);
    assert!(p.body.contains("id=\"edit-error\">"), "{}", p.body);
    for (k, v) in edit.iter_mut() {
        match *k {
            "name" => *v = "web-1b".into(),
            "unit" => *v = "10".into(),
            _ => {}
        }
    }
    location(&post(format!("{inv}/edit"), edit).await);
    let v = s.get(&format!("/dci/v3/server/{id}")).await;
    assert_eq!((v["name"].as_str(), v["unit"].as_i64()), (Some("web-1b"), Some(10)), "{v}");
    // The BMC's access replaced.
    let bmc = vec![
        ("_csrf", csrf.clone()),
        ("bmc_type", "fake".into()),
        ("bmc_address", "bmc-new".into()),
        ("bmc_user", "root".into()),
        ("bmc_password", "new-bmc-pw".into()),
    ];
    location(&post(format!("{inv}/bmc"), bmc).await);
    assert_eq!(s.get(&format!("/dci/v3/server/{id}")).await["ipmi"]["address"], "bmc-new");
    // Deleting a rented server is refused; a free one goes.
    s.post(&format!("/dci/v3/server/{id}/owner"), json!({"owner": uid})).await;
    let p = post(format!("{inv}/delete"), vec![("_csrf", csrf.clone())]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"delete-error\">"), "{}", p.body);
    s.call(reqwest::Method::DELETE, &format!("/dci/v3/server/{id}/owner"), None).await;
    assert_eq!(location(&post(format!("{inv}/delete"), vec![("_csrf", csrf.clone())]).await), "/ui/servers");
    let (status, _) = s.call(reqwest::Method::GET, &format!("/dci/v3/server/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.stop().await;
}

async fn os_templates_made_edited_and_kept_while_used(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let (token, csrf) = admin(&s).await;
    let (_, user) = customer(&s, "tpl@example.com").await;
    assert_eq!(page(&s, &user, "/ui/templates").await.status, StatusCode::FORBIDDEN);
    assert_eq!(page(&s, &token, "/ui/templates").await.status, StatusCode::OK);
    let before = s.get("/dci/v3/os_template").await["size"].clone();
    let sha = "ab".repeat(32);
    // An image and an installer at once, or an installer on a diag template: refused.
    let both = [
        ("_csrf", csrf.as_str()),
        ("kind", "os"),
        ("name", "Both"),
        ("image_url", "http://192.0.2.1/a.img"),
        ("image_sha256", sha.as_str()),
        ("installer", "preseed"),
        ("installer_kernel", "http://192.0.2.1/linux"),
        ("installer_initrd", "http://192.0.2.1/initrd.gz"),
    ];
    let p = post_form(&s, &token, "/ui/templates", &both).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(
        p.body.contains("id=\"create-error\">installer: an OS template has an image or an installer, not both"),
        "{}",
        p.body
    );
    assert!(p.body.contains("value=\"Both\""), "the form is kept");
    let mut diag = both.to_vec();
    diag.retain(|(k, _)| !k.starts_with("image"));
    diag[1] = ("kind", "diag");
    let p = post_form(&s, &token, "/ui/templates", &diag).await;
    assert!(p.body.contains("only an os template boots an installer"), "{}", p.body);
    assert_eq!(s.get("/dci/v3/os_template").await["size"], before, "nothing made");
    // An installer template, then edited to an image one.
    let mut inst = both.to_vec();
    inst.retain(|(k, _)| !k.starts_with("image"));
    inst[2] = ("name", "Debian 12 netinst");
    inst.push(("tags", "linux, debian"));
    inst.push(("efi", "yes"));
    let to = location(&post_form(&s, &token, "/ui/templates", &inst).await);
    let id: i64 = to.rsplit('/').next().unwrap().parse().unwrap();
    let t = s.get(&format!("/dci/v3/os_template/{id}")).await;
    assert_eq!((t["installer"].as_str(), t["efi"].as_bool()), (Some("preseed"), Some(true)), "{t}");
    assert_eq!(t["tags"], json!(["linux", "debian"]));
    let p = page(&s, &token, &to).await;
    assert!(p.body.contains("value=\"http://192.0.2.1/linux\""), "{}", p.body);
    let edit = [
        ("_csrf", csrf.as_str()),
        ("name", "Debian 12 image"),
        ("tags", "linux"),
        ("image_url", "http://192.0.2.1/debian.img"),
        ("image_sha256", sha.as_str()),
        ("installer", ""),
    ];
    location(&post_form(&s, &token, &format!("/ui/templates/{id}/edit"), &edit).await);
    let t = s.get(&format!("/dci/v3/os_template/{id}")).await;
    assert_eq!(t["name"], "Debian 12 image");
    assert!(t["installer"].is_null() && t["installer_kernel"].is_null(), "{t}");
    assert_eq!(t["efi"], false, "an unticked box clears EFI");
    assert_eq!(t["image_sha256"], sha);
    // A bad checksum is refused by the edit form, the typed values kept.
    let bad =
        [("_csrf", csrf.as_str()), ("name", "X"), ("image_url", "http://192.0.2.1/x.img"), ("image_sha256", "123")];
    let p = post_form(&s, &token, &format!("/ui/templates/{id}/edit"), &bad).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"edit-error\">image_sha256:") && p.body.contains("value=\"123\""), "{}", p.body);
    assert_eq!(s.get(&format!("/dci/v3/os_template/{id}")).await["name"], "Debian 12 image");
    // Installed on a server, the template cannot go; unused, it can.
    let task = s
        .post(
            &format!("/dci/v3/server/{srv}/operation_os"),
            json!({"os_template_id": id, "password": "root-pass-1", "hdd_raid": "no_raid"}),
        )
        .await["task"]
        .as_i64()
        .unwrap();
    assert_eq!(wait_task(&s, task).await["status"], "complete");
    let p = page(&s, &token, &format!("/ui/templates/{id}")).await;
    assert!(p.body.contains("1 servers installed with it"), "{}", p.body);
    let p = post_form(&s, &token, &format!("/ui/templates/{id}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"delete-error\">"), "{}", p.body);
    let diag_id = s.get("/dci/v3/os_template?where=type%20EQ%20%27diag%27").await["list"][0]["id"].as_i64().unwrap();
    assert_eq!(
        location(&post_form(&s, &token, &format!("/ui/templates/{diag_id}/delete"), &[("_csrf", &csrf)]).await),
        "/ui/templates"
    );
    s.stop().await;
}

async fn ipam_networks_pools_and_addresses(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (srv, _, _) = fake_server(&s).await;
    let (v4, pool, v6) = common::add_networks(&s).await;
    let (token, csrf) = admin(&s).await;
    let (_, user) = customer(&s, "ipam@example.com").await;
    for path in [
        "/ui/ipam".to_owned(),
        format!("/ui/ipam/networks/{v4}"),
        format!("/ui/ipam/pools/{pool}"),
        "/ui/ipam/addresses".to_owned(),
    ] {
        assert_eq!(page(&s, &token, &path).await.status, StatusCode::OK, "{path}");
        assert_eq!(page(&s, &user, &path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    // The usage shown is the API's count, exact for IPv6.
    let p = page(&s, &token, "/ui/ipam").await;
    for net in [v4, v6] {
        let n = s.get(&format!("/ip/v3/ipnet/{net}")).await;
        let shown = format!("{} / {}", n["using_ip"].as_str().unwrap(), n["total_ip"].as_str().unwrap());
        assert!(p.body.contains(&shown), "{shown} in {}", p.body);
    }
    let total6 = s.get(&format!("/ip/v3/ipnet/{v6}")).await["total_ip"].as_str().unwrap().to_owned();
    assert!(total6.len() > 15, "an IPv6 /64 as a decimal string: {total6}");
    // A network and a pool by the forms; bad input refused by the field, nothing made.
    let p = post_form(&s, &token, "/ui/ipam/networks", &[("_csrf", &csrf), ("name", "198.51.100.0/33")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("id=\"networks-error\">name:"), "{}", p.body);
    assert!(p.body.contains("value=\"198.51.100.0/33\""), "kept as typed");
    let net = location(
        &post_form(
            &s,
            &token,
            "/ui/ipam/networks",
            &[("_csrf", &csrf), ("name", "198.51.100.0/24"), ("gateway", "198.51.100.1"), ("vlan", "20")],
        )
        .await,
    );
    let net: i64 = net.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(s.get(&format!("/ip/v3/ipnet/{net}")).await["gateway"], "198.51.100.1");
    let bad = [
        ("_csrf", csrf.as_str()),
        ("name", "edge"),
        ("ipnet", &net.to_string()),
        ("start", "198.51.100.50"),
        ("end", "198.51.101.5"),
    ];
    let p = post_form(&s, &token, "/ui/ipam/pools", &bad).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("id=\"pools-error\">"), "{}", p.body);
    let good = [
        ("_csrf", csrf.as_str()),
        ("name", "edge"),
        ("ipnet", &net.to_string()),
        ("start", "198.51.100.50"),
        ("end", "198.51.100.59"),
    ];
    let to = location(&post_form(&s, &token, "/ui/ipam/pools", &good).await);
    let edge: i64 = to.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(s.get(&format!("/ip/v3/ippool/{edge}")).await["total_ip"], "10");
    location(
        &post_form(
            &s,
            &token,
            &format!("/ui/ipam/pools/{edge}/range"),
            &[("_csrf", &csrf), ("range", "198.51.100.70-198.51.100.71")],
        )
        .await,
    );
    assert_eq!(s.get(&format!("/ip/v3/ippool/{edge}")).await["total_ip"], "12");
    let p = post_form(
        &s,
        &token,
        &format!("/ui/ipam/pools/{edge}/range"),
        &[("_csrf", &csrf), ("range", "10.0.0.1-10.0.0.2")],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("id=\"range-error\">"), "{}", p.body);
    // Edit a network: a gateway outside it is refused; a new VLAN is taken.
    let p = post_form(
        &s,
        &token,
        &format!("/ui/ipam/networks/{net}/edit"),
        &[("_csrf", &csrf), ("gateway", "10.0.0.1"), ("vlan", "20")],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("id=\"edit-error\">gateway:"), "{}", p.body);
    location(
        &post_form(
            &s,
            &token,
            &format!("/ui/ipam/networks/{net}/edit"),
            &[("_csrf", &csrf), ("gateway", "198.51.100.1"), ("vlan", "21"), ("note", "edge")],
        )
        .await,
    );
    assert_eq!(s.get(&format!("/ip/v3/ipnet/{net}")).await["vlan"], "21");
    // Give the server the next free address of the pool, as its main one, then a chosen one.
    let inv = format!("/ui/servers/{srv}/inventory");
    let give = [
        ("_csrf", csrf.as_str()),
        ("source", &format!("pool:{edge}")),
        ("family", "ipv4"),
        ("ip_domain", "op-1.example.com"),
        ("main", "yes"),
    ];
    location(&post_form(&s, &token, &format!("{inv}/allocate_ip"), &give).await);
    let chosen = [
        ("_csrf", csrf.as_str()),
        ("source", ""),
        ("ip_name", "198.51.100.200"),
        ("family", "ipv4"),
        ("ip_domain", ""),
    ];
    location(&post_form(&s, &token, &format!("{inv}/allocate_ip"), &chosen).await);
    for t in s.get(&format!("/dci/v3/task?where=server%20EQ%20{srv}")).await["list"].as_array().unwrap() {
        wait_task(&s, t["id"].as_i64().unwrap()).await;
    }
    let ips = s.get(&format!("/dci/v3/server/{srv}/ip")).await;
    let names: Vec<&str> = ips["list"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"198.51.100.50") && names.contains(&"198.51.100.200"), "{ips}");
    let first =
        ips["list"].as_array().unwrap().iter().find(|i| i["name"] == "198.51.100.50").unwrap()["id"].as_i64().unwrap();
    assert_eq!(s.get(&format!("/dci/v3/server/{srv}")).await["main_ipv4"], first, "the main address");
    let p = page(&s, &token, &inv).await;
    assert!(p.body.contains(&format!("<tr data-ip=\"{first}\"><td class=\"code\">198.51.100.50</td>")), "{}", p.body);
    assert!(p.body.contains("main</span>"));
    // A taken address, an address outside every network: refused by the form.
    let p = post_form(&s, &token, &format!("{inv}/allocate_ip"), &chosen).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"ip-error\">"), "{}", p.body);
    let nowhere = [("_csrf", csrf.as_str()), ("ip_name", "203.0.113.9"), ("family", "ipv4")];
    let p = post_form(&s, &token, &format!("{inv}/allocate_ip"), &nowhere).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    // The address list, filtered by pool, by server, and searched.
    let p = page(&s, &token, &format!("/ui/ipam/addresses?pool={edge}")).await;
    assert_eq!(ids(&p.body), vec![first]);
    let p = page(&s, &token, &format!("/ui/ipam/addresses?server={srv}")).await;
    assert_eq!(ids(&p.body).len(), 2);
    let p = page(&s, &token, "/ui/ipam/addresses?q=100.20").await;
    assert_eq!(ids(&p.body).len(), 1, "{}", p.body);
    // A pool with an address given out is not deleted; the address released, it is.
    let p = post_form(&s, &token, &format!("/ui/ipam/pools/{edge}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"delete-error\">"), "{}", p.body);
    location(
        &post_form(&s, &token, &format!("{inv}/release_ip"), &[("_csrf", &csrf), ("ip", &first.to_string())]).await,
    );
    for t in
        s.get(&format!("/dci/v3/task?where=server%20EQ%20{srv}%20AND%20status%20NE%20%27complete%27")).await["list"]
            .as_array()
            .unwrap()
    {
        wait_task(&s, t["id"].as_i64().unwrap()).await;
    }
    let ips = s.get(&format!("/dci/v3/server/{srv}/ip")).await;
    assert_eq!(ips["size"], 1, "{ips}");
    assert_eq!(
        location(&post_form(&s, &token, &format!("/ui/ipam/pools/{edge}/delete"), &[("_csrf", &csrf)]).await),
        "/ui/ipam"
    );
    s.stop().await;
}

async fn the_fake_lab_panel(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let (token, csrf) = admin(&s).await;
    // Nothing uses the fake drivers yet: no panel, no link.
    assert_eq!(page(&s, &token, "/ui/lab").await.status, StatusCode::NOT_FOUND);
    assert!(!page(&s, &token, "/ui/").await.body.contains("/ui/lab"));
    let (srv, _, _) = fake_server(&s).await;
    let (_, user) = customer(&s, "lab@example.com").await;
    assert!(page(&s, &token, "/ui/").await.body.contains("id=\"lab-link\""));
    assert!(!page(&s, &user, "/ui/").await.body.contains("/ui/lab"));
    assert_eq!(page(&s, &user, "/ui/lab").await.status, StatusCode::FORBIDDEN);
    let p = page(&s, &token, "/ui/lab").await;
    assert_eq!(p.status, StatusCode::OK);
    // A delay and a fault set from the panel are the lab's.
    location(&post_form(&s, &token, "/ui/lab/delay", &[("_csrf", &csrf), ("ms", "250")]).await);
    assert_eq!(s.get("/dci/v3/fake").await["delay_ms"], 250);
    location(&post_form(&s, &token, "/ui/lab/delay", &[("_csrf", &csrf), ("ms", "0")]).await);
    let p =
        post_form(&s, &token, "/ui/lab/fault", &[("_csrf", &csrf), ("device", "*"), ("op", "reboot_everything")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"fault-error\">op:"), "{}", p.body);
    let fault =
        [("_csrf", csrf.as_str()), ("device", "bmc-op-1"), ("op", "power_on"), ("message", "smoke from the PSU")];
    location(&post_form(&s, &token, "/ui/lab/fault", &fault).await);
    assert_eq!(s.get("/dci/v3/fake").await["faults"][0]["op"], "power_on");
    let task = s.post(&format!("/dci/v3/server/{srv}/power_on"), json!({})).await["task"].as_i64().unwrap();
    let t = wait_task(&s, task).await;
    assert_eq!(t["status"], "fail");
    assert!(t.to_string().contains("smoke from the PSU"), "{t}");
    assert!(page(&s, &token, "/ui/lab").await.body.contains("smoke from the PSU"));
    location(&post_form(&s, &token, "/ui/lab/clear", &[("_csrf", &csrf)]).await);
    assert_eq!(s.get("/dci/v3/fake").await["faults"], json!([]));
    let p =
        post_form(&s, &token, "/ui/lab/hardware", &[("_csrf", &csrf), ("mac", "52:54:00:0f:00:01"), ("hardware", "{")])
            .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ucsrf = field(&page(&s, &user, "/ui/").await.body, "_csrf");
    let p = post_form(&s, &user, "/ui/lab/delay", &[("_csrf", &ucsrf), ("ms", "9000")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/dci/v3/fake").await["delay_ms"], 0);
    s.stop().await;
}

on_both_backends!(
    sites_made_edited_revoked_and_deleted,
    the_fake_lab_panel,
    ipam_networks_pools_and_addresses,
    os_templates_made_edited_and_kept_while_used,
    servers_enrolled_and_connected,
    admin_pages_are_the_admins,
    locations_racks_and_elevations,
    switch_ports_and_device_settings,
    users_and_the_login_link,
    bulk_acts_on_exactly_the_confirmed_servers,
    csv_export_is_the_list
);
