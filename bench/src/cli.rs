//! `--mode cli`: `dcimctl` as an operator runs it, whole processes against the bench's
//! dcim over HTTPS (its self-signed certificate, pinned at login): start-up plus one
//! `server list -o json` of 50 servers against `curl` for the same call, `--all` over
//! every seeded server, and `power reset` of 500 servers with `--wait`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use crate::{ADMIN, PASSWORD, summary};

/// Runs a whole process with its output discarded; its wall time in milliseconds.
fn timed(cmd: &mut Command) -> anyhow::Result<f64> {
    let t = Instant::now();
    let st = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(st.success(), "{cmd:?} failed: {st}");
    Ok(ms)
}

pub async fn run(dcimctl: &str, base: &str, dir: &Path, token: &str, servers: usize) -> anyhow::Result<()> {
    let home = dir.join("dcimctl-home");
    let ctl = |args: &[&str]| {
        let mut c = Command::new(dcimctl);
        c.args(args).env("XDG_CONFIG_HOME", &home).env_remove("DCIM_URL").env_remove("DCIM_TOKEN");
        c
    };
    // Login: the first try shows the certificate's fingerprint, the second pins it.
    let login = ["login", "--url", base, "--email", ADMIN, "--password-stdin"];
    let first = ctl(&login).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let err = String::from_utf8_lossy(&first.stderr);
    let fp = err
        .split("fingerprint is ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .with_context(|| format!("no fingerprint in: {err}"))?
        .to_owned();
    let mut c = ctl(&[&login[..], &["--fingerprint", &fp]].concat());
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, format!("{PASSWORD}\n").as_bytes())?;
    anyhow::ensure!(child.wait()?.success(), "dcimctl login failed");

    let cert = dir.join("bench-cert.pem");
    let url = format!("{base}/dci/v3/server?limit=50");
    let (mut ctl_ms, mut curl_ms) = (vec![], vec![]);
    for _ in 0..21 {
        ctl_ms.push(timed(&mut ctl(&["server", "list", "--limit", "50", "-o", "json"]))?);
        curl_ms.push(timed(Command::new("curl").args(["-sf", "--cacert"]).arg(&cert).args([
            "-H",
            &format!("Authorization: Bearer {token}"),
            &url,
        ]))?);
    }
    println!("dcimctl server list --limit 50 -o json, whole process over HTTPS: {}", summary(&ctl_ms));
    println!("curl, the same call over HTTPS:                               {}", summary(&curl_ms));

    let mut all = vec![];
    for _ in 0..5 {
        all.push(timed(&mut ctl(&["server", "list", "--all", "-o", "json"]))?);
    }
    println!("dcimctl server list --all -o json ({servers} servers, pages of 1,000): {}", summary(&all));

    let n = servers.min(500);
    let selection = format!("id LE {n}");
    let mut reset = vec![];
    for _ in 0..3 {
        reset.push(timed(&mut ctl(&[
            "server",
            "power",
            "reset",
            "--where",
            &selection,
            "--yes",
            "--wait=600",
            "-o",
            "ids",
        ]))?);
    }
    println!(
        "dcimctl server power reset --where \"{selection}\" --yes --wait ({n} servers, every task complete): {}",
        summary(&reset)
    );
    Ok(())
}
