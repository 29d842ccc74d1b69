//! `--mode site`: power tasks through a remote site against the direct path, in one
//! run: N `power_reset` tasks on the fake lab directly, the latency of one task at a
//! time, then the same servers' location given to a `dcim site` process (its own fake
//! lab, the same delay) and both figures again through it; and the site's memory.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{Args, Process, rss_mib, summary, tasks};

/// One `power_reset` at a time on server 1, `n` times: each from the request to the
/// task's end, in milliseconds.
async fn one_at_a_time(client: &reqwest::Client, base: &str, token: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = vec![];
    for _ in 0..n {
        let t0 = Instant::now();
        let v: serde_json::Value = client
            .post(format!("{base}/api/dci/v3/server/1/power_reset"))
            .bearer_auth(token)
            .body("{}")
            .send()
            .await?
            .json()
            .await?;
        let task = v["task"].as_i64().with_context(|| format!("power_reset: {v}"))?;
        loop {
            let t: serde_json::Value =
                client.get(format!("{base}/api/dci/v3/task/{task}")).bearer_auth(token).send().await?.json().await?;
            match t["status"].as_str() {
                Some("complete") => break,
                Some("fail" | "canceled") => anyhow::bail!("task {task}: {t}"),
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// The SHA-256 of the central's certificate (the bench wrote it into `dir`).
fn fingerprint(dir: &std::path::Path) -> anyhow::Result<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let cert = CertificateDer::from_pem_file(dir.join("bench-cert.pem")).context("the bench's certificate")?;
    Ok(dcim_tls::fingerprint(&sha2::Sha256::digest(cert.as_ref()).into()))
}

pub async fn run(
    args: &Args,
    client: &reqwest::Client,
    base: &str,
    token: &str,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let n = args.servers;
    println!("direct path (the central's own fake lab):");
    tasks(client, &[base.to_owned()], token, n, args.connections, args.fake_delay_ms).await?;
    let direct = one_at_a_time(client, base, token, 50).await?;
    println!("one power_reset at a time, request to task complete, direct: {}", summary(&direct));

    let created: serde_json::Value = client
        .post(format!("{base}/api/dci/v3/site"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "bench-site", "locations": [1]}))
        .send()
        .await?
        .json()
        .await?;
    let (id, secret) = (
        created["id"].as_i64().with_context(|| format!("creating the site: {created}"))?,
        created["enrollment_secret"].as_str().context("the enrollment secret")?.to_owned(),
    );
    let site_dir = dir.join("site");
    std::fs::create_dir_all(&site_dir)?;
    let mut child = Command::new(&args.dcim)
        .args(["--data-dir"])
        .arg(&site_dir)
        .args(["site", "--central", base, "--central-fingerprint", &fingerprint(dir)?, "--enroll", &secret])
        .arg("--fake-drivers")
        .env("DCIM_LOG", "warn")
        .env("DCIM_FAKE_DELAY_MS", args.fake_delay_ms.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} site", args.dcim))?;
    let stdout = child.stdout.take().context("stdout")?;
    let site = Process(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if line?.starts_with("dcim site polling") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let t0 = Instant::now();
    loop {
        let s: serde_json::Value =
            client.get(format!("{base}/api/dci/v3/site/{id}")).bearer_auth(token).send().await?.json().await?;
        if s["connected"] == true {
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(30), "the site did not connect: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = site.0.id();
    println!("through a site (dcim site pid {pid}, RSS after start {} MiB):", rss_mib(pid, "VmRSS"));
    tasks(client, &[base.to_owned()], token, n, args.connections, args.fake_delay_ms).await?;
    let remote = one_at_a_time(client, base, token, 50).await?;
    println!("one power_reset at a time, request to task complete, through the site: {}", summary(&remote));
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("the site adds {:.2} ms to a task of two device calls (medians)", median(&remote) - median(&direct));
    println!("dcim site RSS now {} MiB, peak {} MiB", rss_mib(pid, "VmRSS"), rss_mib(pid, "VmHWM"));
    drop(site);
    Ok(())
}
