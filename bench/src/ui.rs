//! `--mode ui`: the web UI's pages beside the API calls that return the same rows, one
//! request at a time over loopback (so each figure is the server's render time plus
//! one loopback round trip), and, when chromedriver is installed, the time headless
//! Chromium takes from navigation to a loaded page.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

pub(crate) async fn times(client: &reqwest::Client, url: &str, cookie: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = vec![];
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).header("Cookie", cookie).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

pub async fn run(client: &reqwest::Client, base: &str, token: &str, servers: usize) -> anyhow::Result<()> {
    let api = format!("ses6={token}");
    let ui = format!("dcim_ui={token}");
    let id = servers / 2;
    for (label, url, cookie, n) in [
        ("API GET /dci/v3/server?limit=0,50", format!("{base}/api/dci/v3/server?limit=0,50"), &api, 100),
        ("UI  GET /ui/servers (50 rows)", format!("{base}/ui/servers"), &ui, 100),
        (
            "API GET /dci/v3/server?where=..&limit=0,50 (free, sorted by name)",
            format!("{base}/api/dci/v3/server?where=owner_email%20IS%20null&orderby=name%20asc&limit=0,50"),
            &api,
            100,
        ),
        (
            "UI  GET /ui/servers?rent=free&sort=name asc",
            format!("{base}/ui/servers?rent=free&sort=name%20asc"),
            &ui,
            100,
        ),
        ("UI  GET /ui/servers?page=150 (rows 7451-7500)", format!("{base}/ui/servers?page=150"), &ui, 100),
        ("API GET /dci/v3/server/{id}", format!("{base}/api/dci/v3/server/{id}"), &api, 200),
        ("UI  GET /ui/servers/{id}", format!("{base}/ui/servers/{id}"), &ui, 200),
        ("UI  GET /ui/servers/{id}/live (the polled fragment)", format!("{base}/ui/servers/{id}/live"), &ui, 200),
        ("UI  GET /ui/ (dashboard)", format!("{base}/ui/"), &ui, 50),
        ("UI  GET /ui/tasks", format!("{base}/ui/tasks"), &ui, 50),
    ] {
        let ms = times(client, &url, cookie, n).await?;
        println!("{label}: {}", crate::summary(&ms));
    }
    browser(base, id).await
}

/// Navigation to loaded page in headless Chromium (Navigation Timing's `duration`).
async fn browser(base: &str, id: usize) -> anyhow::Result<()> {
    if Command::new("chromedriver").arg("--version").output().is_err() {
        println!("(chromedriver not installed: scripts/sims-setup.sh installs Chromium for the browser figures)");
        return Ok(());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("chromedriver")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = std::env::temp_dir().join(format!("dcim-bench-chromium-{}", std::process::id()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": "/usr/bin/chromium", "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1440,1000", format!("--user-data-dir={}", profile.display())]}),
    );
    let result = async {
        let c = fantoccini::ClientBuilder::rustls()?
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await?;
        c.goto(&format!("{base}/ui/login")).await?;
        c.find(fantoccini::Locator::Css("#email")).await?.send_keys(crate::ADMIN).await?;
        c.find(fantoccini::Locator::Css("#password")).await?.send_keys(crate::PASSWORD).await?;
        c.find(fantoccini::Locator::Css("#login")).await?.click().await?;
        c.wait().for_element(fantoccini::Locator::Css("#by-state")).await?;
        for (label, path) in [
            ("/ui/servers", "/ui/servers".to_owned()),
            ("/ui/servers/{id}", format!("/ui/servers/{id}")),
            ("/ui/", "/ui/".to_owned()),
        ] {
            let mut ms = vec![];
            for _ in 0..10 {
                c.goto(&format!("{base}{path}")).await?;
                let d = c.execute("return performance.getEntriesByType('navigation')[0].duration", vec![]).await?;
                ms.push(d.as_f64().unwrap_or(f64::NAN));
            }
            println!("Chromium navigation to loaded page {label}: {}", crate::summary(&ms));
        }
        c.close().await?;
        anyhow::Ok(())
    }
    .await;
    // chromedriver leads its own process group, Chromium included.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", driver.id())]).status();
    let _ = driver.wait();
    let _ = std::fs::remove_dir_all(&profile);
    result
}
