//! The web UI over HTTP, on both backends: every page and fragment for an admin and a
//! customer, the customer's view limited to its own servers, CSRF on every write,
//! filtered lists equal to the API's `where`, escaping of hostile names, login,
//! logout and the one-time key link.

mod common;

use common::ui::{FormOf, field, ids, page, post_form};
use common::{Db, TestServer, fake_server, fast_tasks, wait_task};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Site {
    admin: String,
    user: String,
    user_id: i64,
    /// The customer's server, and one that is not.
    own: i64,
    other: i64,
}

async fn site(s: &TestServer) -> Site {
    let (own, _, _) = fake_server(s).await;
    let loc = s.get("/dci/v3/location").await["list"][0]["id"].as_i64().unwrap();
    let other = s
        .post(
            "/dci/v3/server",
            json!({"name": "other-1", "location_id": loc, "mac": "52:54:00:0f:00:02",
                   "ipmi": {"address": "bmc-other-1", "type": "fake", "user": "admin", "password": "pw"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let user_id = s.add_user("customer@example.com", "customer-password", "@user").await;
    s.post(&format!("/dci/v3/server/{own}/owner"), json!({"owner": user_id})).await;
    let user = s.login("customer@example.com", "customer-password").await;
    Site { admin: s.admin_token.clone(), user, user_id, own, other }
}

async fn pages_render_for_admin_and_customer(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let t = site(&s).await;
    let own_task = s.post(&format!("/dci/v3/server/{}/power_on", t.own), json!({})).await["task"].as_i64().unwrap();
    let other_task = s.post(&format!("/dci/v3/server/{}/power_on", t.other), json!({})).await["task"].as_i64().unwrap();
    wait_task(&s, own_task).await;
    wait_task(&s, other_task).await;

    for (who, token) in [("admin", &t.admin), ("customer", &t.user)] {
        for path in [
            "/ui/".to_owned(),
            "/ui/servers".to_owned(),
            format!("/ui/servers/{}", t.own),
            format!("/ui/servers/{}/live", t.own),
            "/ui/tasks".to_owned(),
            format!("/ui/tasks/{own_task}"),
            format!("/ui/tasks/{own_task}/steps"),
        ] {
            let p = page(&s, token, &path).await;
            assert_eq!(p.status, StatusCode::OK, "{who} {path}: {}", p.body);
            assert_eq!(p.headers["cache-control"], "no-store", "{path}");
            let csp = p.headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
            assert_eq!(p.headers["x-frame-options"], "DENY");
            assert!(!p.body.contains("style=") && !p.body.contains("<script>"), "{path}: no inline style or script");
        }
    }
    // The customer sees its own server only: lists, dashboard, search, pages, actions.
    let list = page(&s, &t.user, "/ui/servers").await;
    assert_eq!(ids(&list.body), vec![t.own]);
    let dash = page(&s, &t.user, "/ui/").await;
    assert!(dash.body.contains("1 servers"), "{}", dash.body);
    assert!(!dash.body.contains("free-stock"), "free stock is the admin's");
    let admin_dash = page(&s, &t.admin, "/ui/").await;
    assert!(admin_dash.body.contains("2 servers") && admin_dash.body.contains("free-stock"));
    let found = s
        .client
        .get(s.url("/ui/search?q=other-1"))
        .header("Cookie", format!("dcim_ui={}", t.user))
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), StatusCode::SEE_OTHER);
    let to = found.headers()["location"].to_str().unwrap().to_owned();
    assert!(ids(&page(&s, &t.user, &to).await.body).is_empty(), "search finds nothing of another's");
    assert_eq!(ids(&page(&s, &t.admin, &to).await.body), vec![t.other], "the admin's search finds it");
    let tasks = page(&s, &t.user, "/ui/tasks").await;
    assert!(tasks.body.contains(&format!("/ui/tasks/{own_task}\"")));
    assert!(!tasks.body.contains(&format!("/ui/tasks/{other_task}\"")));
    for path in [
        format!("/ui/servers/{}", t.other),
        format!("/ui/servers/{}/live", t.other),
        format!("/ui/tasks/{other_task}"),
        format!("/ui/tasks/{other_task}/steps"),
    ] {
        assert_eq!(page(&s, &t.user, &path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let before = s.get("/dci/v3/task").await["size"].clone();
    let csrf = field(&page(&s, &t.user, &format!("/ui/servers/{}", t.own)).await.body, "_csrf");
    for action in ["power_off", "power_reset", "abort", "wipe"] {
        let p = post_form(
            &s,
            &t.user,
            &format!("/ui/servers/{}/{action}", t.other),
            &[("_csrf", &csrf), ("clear_hdd", "simple"), ("confirm", "yes")],
        )
        .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{action} on another's server");
    }
    // Admin-only actions are refused to the customer, on its own server too.
    for action in ["suspend", "diag", "owner", "release"] {
        let p = post_form(&s, &t.user, &format!("/ui/servers/{}/{action}", t.own), &[("_csrf", &csrf)]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}: {}", p.body);
    }
    assert_eq!(s.get("/dci/v3/task").await["size"], before, "no task was started");
    // The customer may power its own server.
    let p = post_form(&s, &t.user, &format!("/ui/servers/{}/power_off", t.own), &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.headers["location"], format!("/ui/servers/{}", t.own));
    assert_eq!(s.get(&format!("/dci/v3/server/{}", t.own)).await["owner"]["id"], t.user_id);
    s.stop().await;
}

async fn writes_need_the_csrf_token(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let t = site(&s).await;
    let before = s.get("/dci/v3/task").await;
    for form in [vec![], vec![("_csrf", "0".repeat(64))], vec![("_csrf", common::ADMIN_PASSWORD.to_owned())]] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let p = post_form(&s, &t.admin, &format!("/ui/servers/{}/power_off", t.own), &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        assert!(p.body.contains("CSRF"), "{}", p.body);
        let p = post_form(&s, &t.admin, &format!("/ui/servers/{}/release", t.own), &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        let p = post_form(&s, &t.admin, "/ui/logout", &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(s.get("/dci/v3/task").await, before, "no task");
    assert_eq!(s.get(&format!("/dci/v3/server/{}", t.own)).await["owner"]["id"], t.user_id, "still rented");
    // The token of another session does not pass either.
    let other_session = s.login(common::ADMIN_EMAIL, common::ADMIN_PASSWORD).await;
    let foreign = field(&page(&s, &other_session, "/ui/").await.body, "_csrf");
    let p = post_form(&s, &t.admin, &format!("/ui/servers/{}/power_off", t.own), &[("_csrf", &foreign)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // The header htmx sends is accepted in place of the field.
    let csrf = field(&page(&s, &t.admin, "/ui/").await.body, "_csrf");
    let r = s
        .client
        .post(s.url(&format!("/ui/servers/{}/power_off", t.own)))
        .header("Cookie", format!("dcim_ui={}", t.admin))
        .header("x-csrf-token", &csrf)
        .form_of(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    s.stop().await;
}

async fn filtered_lists_are_the_apis_where(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, rack, _, _) = s.add_site().await;
    for n in 1..=12 {
        let hw = if n % 3 == 0 { common::hw_e2146g() } else { common::hw_i9() };
        s.add_free_server(loc, rack, n, hw).await;
    }
    let customer = s.add_user("c@example.com", "customer-password", "@user").await;
    for id in [2, 5, 7] {
        s.post(&format!("/dci/v3/server/{id}/owner"), json!({"owner": customer})).await;
    }
    s.post("/dci/v3/server/4", json!({"is_new": true})).await;
    let conf = s.get("/dci/v3/server/3").await["configuration"].as_str().unwrap().to_owned();
    for query in [
        "rent=free".to_owned(),
        "rent=rented&sort=name%20desc".to_owned(),
        format!("configuration={}&new=no", common::enc(&conf)),
        "owner=c%40example.com".to_owned(),
        "where=name%20CP%20%27srv-1%25%27&rent=free".to_owned(),
        "new=yes".to_owned(),
        "per=10&page=2".to_owned(),
        "sort=power_status%20desc&per=10".to_owned(),
    ] {
        let p = page(&s, &s.admin_token, &format!("/ui/servers?{query}")).await;
        assert_eq!(p.status, StatusCode::OK, "{query}: {}", p.body);
        let api = p.body.split("href=\"/api/dci/v3/server?").nth(1).unwrap().split('"').next().unwrap();
        let api = api.replace("&#38;", "&").replace("&amp;", "&");
        let listed = s.get(&format!("/dci/v3/server?{api}")).await;
        let want: Vec<i64> = listed["list"].as_array().unwrap().iter().map(|v| v["id"].as_i64().unwrap()).collect();
        assert_eq!(ids(&p.body), want, "{query} is {api}");
        assert!(p.body.contains(&format!(" of {}</span>", listed["size"])), "{query}: the count");
    }
    let p = page(&s, &s.admin_token, "/ui/servers?per=10").await;
    assert!(p.body.contains("1–10 of 12") && p.body.contains("id=\"next\""), "{}", p.body);
    let p = page(&s, &s.admin_token, "/ui/servers?where=password%20EQ%201").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("unknown field"), "{}", p.body);
    s.stop().await;
}

async fn hostile_names_are_text(db: Db) {
    let s = TestServer::start(db).await;
    let (loc, _, _, _) = s.add_site().await;
    let evil = "<script>alert(1)</script>";
    let id = s
        .post("/dci/v3/server", json!({"name": evil, "location_id": loc, "domain": "", "mac": "52:54:00:0f:00:09"}))
        .await["id"]
        .as_i64()
        .unwrap();
    s.post(
        "/dci/v3/os_template",
        json!({"name": format!("\"><img src=x onerror=alert(2)>{evil}"), "type": "os",
        "image_url": "http://192.0.2.1/x.img", "image_sha256": "ab".repeat(32)}),
    )
    .await;
    s.post(&format!("/dci/v3/location/{loc}"), json!({"name": format!("DC {evil}")})).await;
    for path in [
        format!("/ui/servers/{id}"),
        "/ui/servers".into(),
        format!("/ui/servers?where=name%20EQ%20%27{}%27", common::enc(evil)),
    ] {
        let p = page(&s, &s.admin_token, &path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert!(!p.body.contains(evil) && !p.body.contains("<img src=x"), "{path}: {}", p.body);
        assert!(p.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{path} shows the name as text");
    }
    s.stop().await;
}

async fn login_logout_and_the_key_link(db: Db) {
    let s = TestServer::start(db).await;
    let user_id = s.add_user("customer@example.com", "customer-password", "@user").await;
    // The login form's token is a cookie and a field; without both the login is refused.
    let login_page = s.client.get(s.url("/ui/login?next=%2Fui%2Ftasks")).send().await.unwrap();
    let cookie = login_page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let body = login_page.text().await.unwrap();
    let form_token = field(&body, "_login");
    let login = |email: &'static str, password: &'static str, with_cookie: bool| {
        let mut rb = s.client.post(s.url("/ui/login"));
        if with_cookie {
            rb = rb.header("Cookie", cookie.clone());
        }
        rb.form_of(&[("email", email), ("password", password), ("next", "/ui/tasks"), ("_login", &form_token)]).send()
    };
    let r = login("customer@example.com", "wrong-password", true).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("Wrong e-mail or password."));
    let r = login("customer@example.com", "customer-password", false).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no form cookie");
    s.post(&format!("/dci/v3/user/{user_id}/block"), json!({})).await;
    let r = login("customer@example.com", "customer-password", true).await.unwrap();
    assert!(r.text().await.unwrap().contains("This account is blocked."));
    s.post(&format!("/dci/v3/user/{user_id}/unblock"), json!({})).await;
    let r = login("customer@example.com", "customer-password", true).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/tasks", "back where the login started");
    let set: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    let ui = set.iter().find(|c| c.starts_with("dcim_ui=")).expect("the UI cookie");
    assert!(ui.contains("HttpOnly") && ui.contains("SameSite=Strict") && ui.contains("Path=/ui"), "{ui}");
    let token = ui.split(';').next().unwrap().strip_prefix("dcim_ui=").unwrap().to_owned();
    let p = page(&s, &token, "/ui/").await;
    assert!(p.status == StatusCode::OK && p.body.contains("customer@example.com"));
    // An open redirect is not offered.
    let r = s.client.get(s.url("/ui/login?next=https%3A%2F%2Fevil.example%2F")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("name=\"next\" value=\"/ui/\""));
    // Logout ends the session for the API too.
    let csrf = field(&p.body, "_csrf");
    let out = post_form(&s, &token, "/ui/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let (st, _) = s.call_as(&token, Method::GET, "/auth/v4/whoami", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(page(&s, &token, "/ui/").await.status, StatusCode::SEE_OTHER, "back to the login page");

    // The billing panel's one-time key link: both cookies, then the UI.
    let key = s.post(&format!("/auth/v4/user/{user_id}/key"), json!({})).await["key"].as_str().unwrap().to_owned();
    let r = s.client.get(s.url(&format!("/auth/key-v4/{key}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/");
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let ses6 = set.iter().find(|c| c.starts_with("ses6=")).unwrap().split(';').next().unwrap().to_owned();
    assert!(set.iter().any(|c| c.starts_with("dcim_ui=") && c.contains("SameSite=Strict")));
    // Arriving cross-site, only the Lax ses6 cookie is sent: the page reads with it and
    // sets the UI's own.
    let r = s.client.get(s.url("/ui/")).header("Cookie", &ses6).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["set-cookie"].to_str().unwrap().starts_with("dcim_ui="));
    // ...but it never authorizes a write.
    let r = s.client.post(s.url("/ui/logout")).header("Cookie", &ses6).form_of(&[("_csrf", "x")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/ui/login"));
    let (st, v) = s.call(Method::GET, "/", None).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{v}");
    s.stop().await;
}

async fn login_with_a_second_factor(db: Db) {
    use common::totp::{SECRET, totp_at, well_inside_a_step};
    let s = TestServer::start(db).await;
    s.add_user("two@example.com", "two-password", "@user").await;
    let api = s.login("two@example.com", "two-password").await;
    let now = well_inside_a_step().await;
    let (st, v) = s
        .call_as(&api, Method::POST, "/auth/v4/self/2fa", Some(json!({"secret": SECRET, "code": totp_at(now - 30)})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, codes) = s.call_as(&api, Method::POST, "/auth/v4/self/2fa/reserve/generate", Some(json!({}))).await;
    let login = |code: String| {
        let s = &s;
        async move {
            let login_page = s.client.get(s.url("/ui/login")).send().await.unwrap();
            let cookie = login_page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
            let form_token = field(&login_page.text().await.unwrap(), "_login");
            let form = [
                ("email", "two@example.com"),
                ("password", "two-password"),
                ("code", code.as_str()),
                ("_login", form_token.as_str()),
            ];
            s.client.post(s.url("/ui/login")).header("Cookie", cookie).form_of(&form).send().await.unwrap()
        }
    };
    let sessions = || async { s.call_as(&api, Method::GET, "/auth/v4/token", None).await.1["size"].clone() };
    let before = sessions().await;
    // Without the code, or with a wrong one: no session, and no token left behind.
    let r = login(String::new()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().starts_with("dcim_ui=")));
    assert!(r.text().await.unwrap().contains("This account needs its two-factor code."));
    let r = login(format!("{:06}", (totp_at(now) + 3) % 1_000_000)).await;
    assert!(r.text().await.unwrap().contains("Wrong or already used two-factor code."));
    assert_eq!(sessions().await, before, "refused logins leave no session");
    // With the code: in. The same code a second time: refused. A reserve code: in.
    let code = format!("{:06}", totp_at(now));
    let r = login(code.clone()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    let ui = set.iter().find(|c| c.starts_with("dcim_ui=")).expect("the UI cookie");
    let token = ui.split(';').next().unwrap().strip_prefix("dcim_ui=").unwrap().to_owned();
    let p = page(&s, &token, "/ui/").await;
    assert!(p.status == StatusCode::OK && p.body.contains("two@example.com"));
    assert!(login(code).await.text().await.unwrap().contains("Wrong or already used two-factor code."));
    let r = login(codes["codes"][0].as_str().unwrap().to_owned()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    s.stop().await;
}

async fn refused_actions_say_why_by_the_field(db: Db) {
    let s = TestServer::start_with(db, fast_tasks).await;
    let t = site(&s).await;
    let csrf = field(&page(&s, &t.admin, "/ui/").await.body, "_csrf");
    let tpl = s.get("/dci/v3/os_template?where=type%20EQ%20os").await["list"][0]["id"].to_string();
    let path = format!("/ui/servers/{}/install", t.own);
    let install = |more: &'static [(&'static str, &'static str)]| {
        let mut form = vec![("_csrf", csrf.clone()), ("os_template_id", tpl.clone()), ("hdd_raid", "raid_1".into())];
        form.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
        let (s, token, path) = (&s, t.admin.clone(), path.clone());
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(s, &token, &path, &form).await
        }
    };
    let p = install(&[("password", ""), ("confirm", "yes")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"install-password-error\">password: must be 1 to 256"), "{}", p.body);
    let p = install(&[("password", "root-pass-1")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "the confirmation box is needed");
    assert!(p.body.contains("tick the box to confirm this on op-1"), "{}", p.body);
    let p = install(&[("password", "root-pass-1"), ("hostname", "no such host!"), ("confirm", "yes")]).await;
    assert!(p.body.contains("id=\"install-hostname-error\">hostname:"), "{}", p.body);
    let p = post_form(
        &s,
        &t.admin,
        &format!("/ui/servers/{}/owner", t.other),
        &[("_csrf", &csrf), ("owner", "x@example.com")],
    )
    .await;
    assert!(p.body.contains("id=\"owner-error\">owner: there is no user x@example.com"), "{}", p.body);
    assert_eq!(s.get("/dci/v3/task").await["size"], 0, "nothing started");
    // A good install runs and its steps show on the task page.
    let p = install(&[("password", "root-pass-1"), ("confirm", "yes")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let task = s.get("/dci/v3/task").await["list"][0].clone();
    let done: Value = wait_task(&s, task["id"].as_i64().unwrap()).await;
    let tp = page(&s, &t.admin, &format!("/ui/tasks/{}", done["id"])).await;
    assert!(tp.body.contains("id=\"task-status\">complete"), "{}", tp.body);
    assert!(!tp.body.contains("hx-trigger"), "a finished task's page stops polling");
    s.stop().await;
}

on_both_backends!(
    pages_render_for_admin_and_customer,
    writes_need_the_csrf_token,
    filtered_lists_are_the_apis_where,
    hostile_names_are_text,
    login_logout_and_the_key_link,
    login_with_a_second_factor,
    refused_actions_say_why_by_the_field
);
