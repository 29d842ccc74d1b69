//! `--mode ui-admin`: the admin pages of the web UI at scale, one request at a time
//! over loopback. A rack page with 42 servers, a location page drawing 20 racks of 42
//! servers, the IPAM page and the address list over 120,000 addresses (a page of
//! 100, the first and one deep in the list), and a bulk power reset of 1,000 selected
//! servers: the confirmation (resolving the filter to its servers), then the run,
//! from the click to every task accepted.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::summary;
use crate::ui::times;

/// The value of the first `name="NAME" value="..."` of a page.
fn field(body: &str, name: &str) -> anyhow::Result<String> {
    let key = format!("name=\"{name}\" value=\"");
    let at = body.find(&key).with_context(|| format!("no {name} on the page"))? + key.len();
    Ok(body[at..at + body[at..].find('"').context("unterminated value")?].to_owned())
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn run(client: &reqwest::Client, base: &str, token: &str, servers: usize) -> anyhow::Result<()> {
    anyhow::ensure!(servers >= 1000, "ui-admin needs --servers 1000 or more (it racks 840 and acts on 1,000)");
    let api = |path: &str| format!("{base}/api{path}");
    // 20 racks of 42 units in the seeded location, 42 servers in each.
    let t = Instant::now();
    let mut racks = vec![];
    for r in 0..20 {
        let v: serde_json::Value = client
            .post(api("/dci/v3/rack"))
            .bearer_auth(token)
            .json(&serde_json::json!({"name": format!("R{r:02}"), "location_id": 1, "size": 42}))
            .send()
            .await?
            .json()
            .await?;
        racks.push(v["id"].as_i64().context("a rack")?);
    }
    for (r, rack) in racks.iter().enumerate() {
        for u in 0..42 {
            let id = r * 42 + u + 1;
            let res = client
                .post(api(&format!("/dci/v3/server/{id}")))
                .bearer_auth(token)
                .json(&serde_json::json!({"rack_id": rack, "unit": u + 1}))
                .send()
                .await?;
            anyhow::ensure!(res.status().is_success(), "placing server {id}: {}", res.text().await?);
        }
    }
    println!("placed 840 servers in 20 racks through the API in {:.1} s", t.elapsed().as_secs_f64());

    let ui = format!("dcim_ui={token}");
    let total: serde_json::Value =
        client.get(api("/dci/v3/ip?limit=0,0")).bearer_auth(token).send().await?.json().await?;
    let addresses = total["size"].as_u64().unwrap_or(0);
    let deep = (addresses / 100 / 2).max(1);
    for (label, url, n) in [
        ("UI  GET /ui/racks/{id} (42 servers)".to_owned(), format!("{base}/ui/racks/{}", racks[0]), 100),
        ("UI  GET /ui/locations/1 (20 racks, 840 servers)".to_owned(), format!("{base}/ui/locations/1"), 50),
        ("UI  GET /ui/ipam (networks and pools with their counts)".to_owned(), format!("{base}/ui/ipam"), 50),
        (format!("UI  GET /ui/ipam/addresses (100 of {addresses})"), format!("{base}/ui/ipam/addresses"), 100),
        (
            format!("UI  GET /ui/ipam/addresses?page={deep} (100 of {addresses}, mid-list)"),
            format!("{base}/ui/ipam/addresses?page={deep}"),
            100,
        ),
        (
            format!("UI  GET /ui/ipam/addresses?q=198.18.1 (searched, 100 of {addresses})"),
            format!("{base}/ui/ipam/addresses?q=198.18.1"),
            50,
        ),
    ] {
        let ms = times(client, &url, &ui, n).await?;
        println!("{label}: {}", summary(&ms));
    }

    // A bulk power reset of the 1,000 servers `id LE 1000`, as an admin clicks it.
    let page = client.get(format!("{base}/ui/servers")).header("Cookie", &ui).send().await?.text().await?;
    let csrf = field(&page, "_csrf")?;
    let t = Instant::now();
    let confirm = client
        .post(format!("{base}/ui/servers/bulk"))
        .header("Cookie", &ui)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("_csrf", &csrf),
            ("stage", "confirm"),
            ("scope", "all"),
            ("where", "id LE 1000"),
            ("action", "power_reset"),
        ]))
        .send()
        .await?
        .text()
        .await?;
    let confirmed = t.elapsed();
    let ids = field(&confirm, "ids")?;
    anyhow::ensure!(ids.split(',').count() == 1000, "the confirmation carries 1,000 servers");
    let t = Instant::now();
    let result = client
        .post(format!("{base}/ui/servers/bulk"))
        .header("Cookie", &ui)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("_csrf", &csrf), ("stage", "run"), ("ids", &ids), ("action", "power_reset")]))
        .send()
        .await?
        .text()
        .await?;
    let accepted = t.elapsed();
    anyhow::ensure!(result.contains("1000 started, 0 refused"), "every task accepted");
    crate::wait_tasks_done(client, base, token, Duration::from_secs(600)).await?;
    let done = t.elapsed();
    println!(
        "bulk power reset of 1,000 servers: confirmation {:.0} ms, click to all 1,000 tasks accepted {:.2} s, \
         to all complete {:.2} s",
        confirmed.as_secs_f64() * 1e3,
        accepted.as_secs_f64(),
        done.as_secs_f64()
    );
    Ok(())
}
