//! The web UI as a person uses it: the real `dcim serve --demo` binary, and Debian's
//! headless Chromium driven over WebDriver (chromedriver, through fantoccini). Log
//! in; filter the server list and page through it; power a server off and see its
//! state change in place; run diagnostics and watch the steps reach `complete`;
//! abort a task; the dark theme; and a customer arriving through the one-time key
//! link, who sees only its own servers. Every flow saves a screenshot under
//! `target/ui-screenshots/`. The test fails, never skips, when the browser is missing
//! (`scripts/sims-setup.sh` installs `chromium` and `chromium-driver`).

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tempdir::Dir;
use common::{KillOnDrop, Remote, Served};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

struct Browser {
    driver: Child,
    client: Client,
    shots: PathBuf,
    _profile: Dir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, Chromium's processes included: a test
        // that failed midway leaves no browser behind.
        let pgid = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn browser() -> Browser {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is needed (Debian's chromium-driver; scripts/sims-setup.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = Dir::new();
    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1440,1000",
            format!("--user-data-dir={}", profile.0.display()),
        ]}),
    );
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session (is Debian's chromium installed?)");
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    Browser { driver, client, shots, _profile: profile }
}

impl Browser {
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The text of `css`, once it is there.
    async fn text(&self, css: &str) -> String {
        self.wait_for(css, |_| true).await
    }

    /// Waits until the text of `css` satisfies `ok` (the page may swap it meanwhile).
    async fn wait_for(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
            assert!(Instant::now() < deadline, "{css} never became what was awaited (last: {last:?})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks `css`, finding it again if the page swapped it in between.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) if e.click().await.is_ok() => return,
                _ => {}
            }
            assert!(Instant::now() < deadline, "could not click {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn accept_confirm(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.client.accept_alert().await.is_err() {
            assert!(Instant::now() < deadline, "no confirmation was asked");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn select(&self, css: &str, value: &str) {
        self.client.find(Locator::Css(css)).await.unwrap().select_by_value(value).await.unwrap();
    }
}

/// The real `dcim serve --demo` binary, its URL, its admin password, and its API as
/// the admin (for setting things up and for the numbers to compare with).
struct Demo {
    served: Served,
    url: String,
    password: String,
    api: Remote,
    _dir: Dir,
}

async fn demo() -> Demo {
    let dir = Dir::new();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcim"));
    cmd.args(["serve", "--demo", "--data-dir", dir.0.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env_remove("DCIM_ADMIN_EMAIL")
        .env_remove("DCIM_ADMIN_PASSWORD");
    let served = Served::start(cmd);
    let creds = served.lines.iter().find(|l| l.starts_with("demo admin:")).unwrap().clone();
    let password = creds.split_whitespace().nth(5).unwrap().to_owned();
    let url = served.url.clone();
    let api = Remote::login(&format!("{url}/api"), "admin@example.com", &password).await;
    Demo { served, url, password, api, _dir: dir }
}

impl Browser {
    /// Logs in through the login form.
    async fn log_in(&self, url: &str, email: &str, password: &str) {
        self.client.goto(&format!("{url}/ui/")).await.unwrap();
        assert!(self.client.current_url().await.unwrap().path().ends_with("/ui/login"));
        self.client.find(Locator::Css("#email")).await.unwrap().send_keys(email).await.unwrap();
        self.client.find(Locator::Css("#password")).await.unwrap().send_keys(password).await.unwrap();
        self.click("#login").await;
        self.text("#by-state").await;
    }

    /// Types `text` into the field `css`, replacing what it held; waits for the field,
    /// which a page htmx is still swapping in may not have yet.
    async fn fill(&self, css: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && e.clear().await.is_ok()
                && e.send_keys(text).await.is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "could not fill {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_in_a_real_browser() {
    let Demo { served, url, password, api, _dir } = demo().await;
    let b = browser().await;

    // Log in.
    b.client.goto(&format!("{url}/ui/")).await.unwrap();
    assert!(b.client.current_url().await.unwrap().path().ends_with("/ui/login"));
    b.shot("01-login").await;
    b.client.find(Locator::Css("#email")).await.unwrap().send_keys("admin@example.com").await.unwrap();
    b.client.find(Locator::Css("#password")).await.unwrap().send_keys(&password).await.unwrap();
    b.click("#login").await;
    b.text("#by-state").await;
    assert!(b.text("h1").await.contains("24 servers"));
    b.shot("02-dashboard").await;

    // Filter the list (free servers, 10 a page) and page through it.
    b.client.goto(&format!("{url}/ui/servers")).await.unwrap();
    b.wait_for("#count", |t| t.ends_with("of 24")).await;
    b.shot("03-servers").await;
    let free = api.get("/dci/v3/server?where=owner_email%20IS%20null&limit=0").await["size"].as_i64().unwrap();
    b.select("select[name=rent]", "free").await;
    b.select("select[name=per]", "10").await;
    b.click("#apply").await;
    b.wait_for("#count", |t| t == format!("1–10 of {free}")).await;
    b.click("#next").await;
    b.wait_for("#count", |t| t.starts_with("11–")).await;
    assert!(b.client.current_url().await.unwrap().query().unwrap().contains("page=2"), "the page is in the URL");
    b.shot("04-servers-filtered-page-2").await;

    // Power a server off and see it change in place (no reload: a mark set in the
    // page survives).
    let on = api.post("/dci/v3/server/5/power_on", json!({})).await["task"].as_i64().unwrap();
    api.until(on, |t| t["status"] == "complete").await;
    b.client.goto(&format!("{url}/ui/servers/5")).await.unwrap();
    b.wait_for("#power", |t| t == "on").await;
    b.js("window.dcimMark = 42; return true").await;
    b.click("#power-off").await;
    b.accept_confirm().await;
    b.wait_for("#power", |t| t == "off").await;
    b.wait_for("#task-status", |t| t == "complete").await;
    assert_eq!(b.js("return window.dcimMark === 42").await, json!(true), "the page was not reloaded");
    b.shot("05-server-powered-off").await;
    // The click is in the audit trail as the admin's, with the UI's route.
    let history = api.get("/dci/v3/server/5/history").await;
    let click = history["list"].as_array().unwrap().iter().find(|e| e["audit"]["action"] == "ui.power_off");
    let click = click.unwrap_or_else(|| panic!("{history}"));
    assert_eq!(click["audit"]["email"], "admin@example.com", "{click}");
    assert_eq!(click["audit"]["result"], "ok", "{click}");
    assert_eq!(click["audit"]["server_id"], 5, "{click}");
    assert_eq!(click["audit"]["route"], "/ui/servers/{id}/{action}", "{click}");

    // Diagnostics: the steps advance to complete. The panel still shows the
    // power-off task until the diagnostics' task replaces it.
    let before = b.text("#task-id").await;
    b.click("#diag").await;
    b.wait_for("#task-id", |t| t != before).await;
    b.wait_for("#task-status", |t| t == "running" || t == "pending" || t == "complete").await;
    b.wait_for("#task-status", |t| t == "complete").await;
    let steps = b.client.find_all(Locator::Css("#steps tbody tr")).await.unwrap().len();
    assert!(steps >= 3, "the diagnostics' steps are listed ({steps})");
    b.shot("06-diagnostics-complete").await;

    // Abort a task: slow fake devices keep it running long enough to press the button.
    api.post("/dci/v3/fake/delay", json!({"ms": 1500})).await;
    b.click("#diag").await;
    b.text("#abort").await;
    b.click("#abort").await;
    b.accept_confirm().await;
    b.wait_for("#task-status", |t| t == "canceled").await;
    api.post("/dci/v3/fake/delay", json!({"ms": 0})).await;
    b.shot("07-task-aborted").await;
    b.client.goto(&format!("{url}/ui/tasks")).await.unwrap();
    b.text("#tasks").await;
    b.shot("08-tasks").await;

    // The dark theme, remembered across pages.
    b.click("#theme").await;
    let bg = "return getComputedStyle(document.body).backgroundColor";
    assert_eq!(b.js("return document.documentElement.getAttribute('data-theme')").await, json!("dark"));
    assert_eq!(b.js(bg).await, json!("rgb(13, 17, 23)"));
    b.client.goto(&format!("{url}/ui/servers/5")).await.unwrap();
    b.text("#power").await;
    assert_eq!(b.js(bg).await, json!("rgb(13, 17, 23)"));
    b.shot("09-server-dark").await;
    b.click("#theme").await;
    assert_eq!(b.js(bg).await, json!("rgb(246, 247, 249)"));

    // A customer arrives through the one-time key link and sees only its servers.
    let customer = api.get("/dci/v3/user?where=email%20EQ%20%27customer1%40example.com%27").await["list"][0]["id"]
        .as_i64()
        .unwrap();
    let key = api.post(&format!("/auth/v4/user/{customer}/key"), json!({})).await["key"].as_str().unwrap().to_owned();
    let own = api.get("/dci/v3/server?where=owner_email%20EQ%20%27customer1%40example.com%27").await;
    b.client.delete_all_cookies().await.unwrap();
    b.client.goto(&format!("{url}/auth/key-v4/{key}")).await.unwrap();
    b.text("#by-state").await;
    assert!(b.text("#who").await.contains("customer1@example.com"));
    b.client.goto(&format!("{url}/ui/servers")).await.unwrap();
    b.wait_for("#count", |t| t.ends_with(&format!("of {}", own["size"]))).await;
    let shown: Vec<String> = {
        let mut v = vec![];
        for row in b.client.find_all(Locator::Css("#servers tbody tr")).await.unwrap() {
            v.push(row.attr("data-id").await.unwrap().unwrap());
        }
        v
    };
    let want: Vec<String> = own["list"].as_array().unwrap().iter().map(|s| s["id"].to_string()).collect();
    assert_eq!(shown, want, "the customer's servers, and no other");
    b.shot("10-customer-servers").await;
    b.client.goto(&format!("{url}/ui/servers/{}", if want.contains(&"5".to_string()) { 6 } else { 5 })).await.unwrap();
    assert!(b.text("#error").await.contains("not found"), "another's server is not found");

    b.client.clone().close().await.unwrap();
    served.stop();
}

impl Browser {
    /// Waits until `script` returns `want`.
    async fn wait_js(&self, script: &str, want: Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.js(script).await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{script} stayed {got}, not {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An admin sets up and runs the data center from the browser: a location, a rack
/// and a server seen in the elevation; a switch port shut and opened; a filtered
/// bulk power reset with its confirmation; a customer made and its login link opened
/// in a fresh session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_in_a_real_browser() {
    let Demo { served, url, password, api, _dir } = demo().await;
    let b = browser().await;
    b.log_in(&url, "admin@example.com", &password).await;

    // A location and a rack in it, made by their forms.
    b.click("#nav-locations").await;
    b.text("#locations").await;
    b.shot("11-locations").await;
    b.fill("#location-form input[name=name]", "Hall B").await;
    b.fill("#location-form input[name=geolocation]", "2nd Street, 7").await;
    b.click("#create-location").await;
    b.wait_for("#location-name", |t| t.starts_with("Hall B")).await;
    b.fill("#rack-name", "B1").await;
    b.fill("#rack-size", "16").await;
    b.click("#create-rack").await;
    b.wait_for("#rack-title", |t| t.starts_with("Rack B1")).await;
    let path = b.client.current_url().await.unwrap().path().to_owned();
    let rack: i64 = path.rsplit('/').next().unwrap().parse().unwrap();
    let loc = api.get(&format!("/dci/v3/rack/{rack}")).await["location_id"].as_i64().unwrap();
    // The server, enrolled by the form into that rack.
    b.click("#nav-servers").await;
    b.click("#new-server").await;
    b.fill("#server-name-input", "b1-web").await;
    b.select("#server-location", &loc.to_string()).await;
    b.select("#server-rack", &rack.to_string()).await;
    b.fill("#server-unit", "5").await;
    b.fill("#server-size", "2").await;
    b.select("select[name=bmc_type]", "fake").await;
    b.fill("#bmc-address", "bmc-b1-web").await;
    b.shot("12-server-new").await;
    b.click("#create-server").await;
    b.wait_for("#inventory-title", |t| t.starts_with("b1-web")).await;
    let srv = api.get("/dci/v3/server?where=name%20EQ%20%27b1-web%27").await["list"][0]["id"].as_i64().unwrap();
    b.shot("13-server-inventory").await;
    b.client.goto(&format!("{url}/ui/racks/{rack}")).await.unwrap();
    b.text(&format!("#slot-{srv}")).await;
    let unit = b.js(&format!("return document.querySelector('#slot-{srv} rect').getAttribute('data-unit')")).await;
    assert_eq!(unit, json!("5"));
    b.shot("14-rack-elevation").await;
    b.click(&format!("#slot-{srv}")).await;
    b.wait_for("#server-name", |t| t.starts_with("b1-web")).await;
    assert!(b.text("#rack-link").await.contains("rack B1, unit 5"));
    b.client.goto(&format!("{url}/ui/locations/1")).await.unwrap();
    b.text("#racks").await;
    b.shot("15-location-racks").await;

    // Shut a switch port with a server on it, see it change, open it again.
    let sw = api.get("/dci/v3/switch").await["list"][0]["id"].as_i64().unwrap();
    let port =
        api.get(&format!("/dci/v3/switch/{sw}/port?where=server%20IS%20NOT%20null&limit=0,1")).await["list"][0].clone();
    let pid = port["id"].as_i64().unwrap();
    b.click("#nav-devices").await;
    b.text("#switches").await;
    b.shot("16-devices").await;
    b.client.goto(&format!("{url}/ui/switches/{sw}")).await.unwrap();
    b.text("#ports").await;
    b.click(&format!("#port-{pid} button.port-down")).await;
    b.accept_confirm().await;
    b.wait_js(&format!("return document.querySelector('#port-{pid}').getAttribute('data-admin')"), json!("down")).await;
    assert_eq!(api.get(&format!("/dci/v3/switch/{sw}/port/{pid}")).await["admin_status"], "down");
    b.shot("17-switch-port-shut").await;
    b.click(&format!("#port-{pid} button.port-up")).await;
    b.wait_js(&format!("return document.querySelector('#port-{pid}').getAttribute('data-admin')"), json!("up")).await;
    assert_eq!(api.get(&format!("/dci/v3/switch/{sw}/port/{pid}")).await["admin_status"], "up");
    let pdu = api.get("/dci/v3/pdu").await["list"][0]["id"].as_i64().unwrap();
    b.client.goto(&format!("{url}/ui/pdus/{pdu}")).await.unwrap();
    b.text("#ports").await;
    b.shot("18-pdu").await;

    // Give a server the next free address of the demo's IPv4 pool, then take it back.
    let pool = api.get("/ip/v3/ippool").await["list"][0]["id"].as_i64().unwrap();
    b.client.goto(&format!("{url}/ui/ipam")).await.unwrap();
    b.text("#networks").await;
    b.shot("19-ipam").await;
    b.client.goto(&format!("{url}/ui/ipam/pools/{pool}")).await.unwrap();
    b.text("#ranges").await;
    b.shot("20-ipam-pool").await;
    b.client.goto(&format!("{url}/ui/servers/3/inventory")).await.unwrap();
    b.select("#ip-source", &format!("pool:{pool}")).await;
    b.click("#give-ip").await;
    let given = loop {
        let ips = api.get("/dci/v3/server/3/ip").await;
        if let Some(ip) = ips["list"].as_array().unwrap().iter().find(|i| i["status"] == "ok") {
            break ip.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    b.client.refresh().await.unwrap();
    let row = format!("#addresses tr[data-ip='{}']", given["id"]);
    assert!(b.text(&row).await.contains(given["name"].as_str().unwrap()));
    b.shot("21-server-address").await;
    b.click(&format!("{row} button.release-ip")).await;
    b.accept_confirm().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get("/dci/v3/server/3/ip").await["size"] != 0 {
        assert!(Instant::now() < deadline, "the address was not released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.client.goto(&format!("{url}/ui/ipam/addresses?pool={pool}")).await.unwrap();
    b.text("#addresses").await;
    b.shot("22-ipam-addresses").await;
    assert!(
        b.client.find(Locator::Css(&format!("#addresses tr[data-id='{}']", given["id"]))).await.is_err(),
        "released"
    );

    // Bulk power reset of every server of one configuration, through the confirmation.
    let confs = api.get("/dci/v3/server/configuration").await;
    let conf = confs["list"][0]["configuration"].as_str().unwrap().to_owned();
    let matching = api.get(&format!("/dci/v3/server?where=configuration%20EQ%20%27{}%27", conf)).await;
    let want: Vec<i64> = matching["list"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert!(want.len() > 1);
    b.client.goto(&format!("{url}/ui/servers")).await.unwrap();
    b.select("select[name=configuration]", &conf).await;
    b.click("#apply").await;
    b.wait_for("#count", |t| t.ends_with(&format!("of {}", want.len()))).await;
    b.select("#bulk-scope", "all").await;
    b.select("#bulk-action", "power_reset").await;
    b.shot("23-servers-bulk").await;
    b.click("#bulk-go").await;
    let title = b.text("#confirm-title").await;
    assert_eq!(title, format!("Power reset: {} servers?", want.len()));
    b.shot("24-bulk-confirm").await;
    b.click("#confirm").await;
    b.wait_for("#result-title", |t| t.starts_with("Power reset:")).await;
    b.shot("25-bulk-result").await;
    let tasks = api.get("/dci/v3/task?where=name%20EQ%20%27power_reset%27").await;
    let mut got: Vec<i64> = tasks["list"].as_array().unwrap().iter().map(|t| t["server"].as_i64().unwrap()).collect();
    got.sort_unstable();
    let mut want = want;
    want.sort_unstable();
    assert_eq!(got, want, "exactly the servers of the filter");

    // A customer made in the browser, and its login link opened in a fresh session.
    b.client.goto(&format!("{url}/ui/templates")).await.unwrap();
    b.text("#templates").await;
    b.shot("26-os-templates").await;
    b.client.goto(&format!("{url}/ui/templates/1")).await.unwrap();
    b.text("#template-name").await;
    b.shot("27-os-template").await;
    b.client.goto(&format!("{url}/ui/")).await.unwrap();
    b.click("#lab-link").await;
    b.text("#machines").await;
    b.shot("28-fake-lab").await;

    // A remote site made by its form, serving Hall B: its secret and the command that
    // starts it are shown once; the real `dcim site`, run as the page says, connects,
    // and the site's page says so; revoked through its form, the site stops.
    b.click("#nav-sites").await;
    b.text("#sites").await;
    b.fill("#site-form input[name=name]", "dc-west").await;
    b.fill("#site-form input[name=description]", "West hall").await;
    b.click(&format!("#site-locations input[value='{loc}']")).await;
    b.click("#create-site").await;
    let command = b.text("#enroll-command").await;
    b.shot("28b-site-enrollment").await;
    let words: Vec<&str> = command.split_whitespace().collect();
    let secret = words[0].strip_prefix("DCIM_SITE_ENROLLMENT=").unwrap_or_else(|| panic!("{command}"));
    assert_eq!(words[1..5], ["dcim", "site", "--central", url.as_str()], "{command}");
    assert_eq!(words[5], "--central-fingerprint", "{command}");
    let site_dir = Dir::new();
    let mut site = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_dcim"))
            .arg("--data-dir")
            .arg(&site_dir.0)
            .args(&words[2..])
            .arg("--fake-drivers")
            .env("DCIM_SITE_ENROLLMENT", secret)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let site_id = api.get("/dci/v3/site").await["list"][0]["id"].as_i64().unwrap();
    b.client.goto(&format!("{url}/ui/sites/{site_id}")).await.unwrap();
    b.text("#site-status").await;
    assert!(b.client.find(Locator::Css("#enroll-command")).await.is_err(), "the secret is shown once");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.text("#link").await != "connected" {
        assert!(Instant::now() < deadline, "the site did not connect");
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.client.refresh().await.unwrap();
    }
    assert!(b.text("#site-status").await.contains("127.0.0.1"));
    b.shot("28c-site-connected").await;
    b.click("#nav-sites").await;
    let row = b.text("#sites tbody tr").await;
    assert!(row.contains("dc-west") && row.contains("Hall B") && row.contains("connected"), "{row}");
    b.shot("28d-sites").await;
    b.click("#sites tbody tr a").await;
    b.click("#revoke").await;
    b.accept_confirm().await;
    b.wait_for("#link", |t| t == "not enrolled").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while site.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the revoked site still runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    b.click("#nav-users").await;
    b.text("#users").await;
    b.shot("29-users").await;
    b.fill("#new-email", "walk-in@example.com").await;
    b.fill("#new-password", "walk-in-password-1").await;
    b.select("#new-role", "@user").await;
    b.click("#create-user").await;
    b.wait_for("#user-email", |t| t.starts_with("walk-in@example.com")).await;
    b.click("#make-link").await;
    b.text("#login-link").await;
    b.shot("30-user-login-link").await;
    let link = b.js("return document.getElementById('key-link').value").await.as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("{url}/auth/key-v4/")), "{link}");
    b.client.delete_all_cookies().await.unwrap();
    b.client.goto(&link).await.unwrap();
    b.text("#by-state").await;
    assert!(b.text("#who").await.contains("walk-in@example.com"));
    assert!(b.client.find(Locator::Css("#nav-users")).await.is_err(), "a customer has no admin links");
    b.client.goto(&format!("{url}/ui/users")).await.unwrap();
    assert!(b.text("#error").await.contains("admin"), "and no admin pages");

    b.client.clone().close().await.unwrap();
    served.stop();
}
