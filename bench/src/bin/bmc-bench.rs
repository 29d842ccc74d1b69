//! Power status of many simulated BMCs: dcim's native IPMI client against one
//! `ipmitool -I lanplus ... chassis power status` process per BMC (how Ironic's
//! ipmitool driver does it), at the same concurrency, in one run.
//!
//! Starts `--bmcs` OpenIPMI `ipmi_sim` instances on 127.0.0.1 from the repo's
//! `sims/ipmi` templates (scripts/sims-setup.sh installs them) without the tests' power
//! hook, then times `--rounds` rounds of each side, alternating, and prints the medians
//! and their ratio.
//!
//! `cargo run --release -p dcim-bench --bin bmc-bench -- --bmcs 200 --concurrency 32`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use dcim_drivers::PowerDriver;
use dcim_drivers::ipmi::{Ipmi, IpmiPower, Timing};
use tokio::sync::Semaphore;

#[derive(Parser)]
struct Args {
    /// Simulated BMCs.
    #[arg(long, default_value_t = 200)]
    bmcs: usize,
    /// Requests in flight at once, on both sides.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Timed rounds of each side (every BMC once per round).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// First UDP port; BMC i listens on base + i.
    #[arg(long, default_value_t = 17000)]
    base_port: u16,
    /// Keep the tests' power hook: every status then runs a shell in each BMC, which
    /// makes the BMCs, not the clients, the bottleneck.
    #[arg(long)]
    with_hook: bool,
}

struct Fleet {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_fleet(n: usize, base: u16, with_hook: bool) -> anyhow::Result<Fleet> {
    let sims = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sims/ipmi");
    let template = std::fs::read_to_string(sims.join("lan.conf.in")).context("sims/ipmi/lan.conf.in")?;
    let hook = sims.join("chassis.sh").canonicalize()?;
    let dir = std::env::temp_dir().join(format!("dcim-bmc-bench-{}", std::process::id()));
    let mut fleet = Fleet { dir: dir.clone(), children: vec![] };
    for i in 0..n {
        let b = dir.join(format!("bmc{i}"));
        std::fs::create_dir_all(b.join("state"))?;
        std::fs::write(b.join("power"), "0\n")?;
        let conf = template
            .replace("{{NAME}}", &format!("bmc{i}"))
            .replace("{{PORT}}", &(base as usize + i).to_string())
            .replace("{{GUID}}", &format!("a123456789abcdefa123456789ab{i:04x}"))
            .replace("{{USER}}", "admin")
            .replace("{{PASSWORD}}", "secret")
            .replace("{{HOOK}}", &hook.display().to_string())
            .replace("{{STATE}}", &b.display().to_string())
            .replace("{{EXTRA_LAN}}", "")
            .replace("{{SERIAL}}", "")
            .lines()
            // Status only: ipmi_sim answers it from its own state. The tests' power hook
            // would add a shell process per request to both sides and measure that.
            .filter(|l| with_hook || !l.trim_start().starts_with("chassis_control"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(b.join("lan.conf"), conf)?;
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(b.join("lan.conf"))
            .arg("-f")
            .arg(sims.join("bmc.emu"))
            .arg("-s")
            .arg(b.join("state"))
            .arg("-n")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("ipmi_sim (run scripts/sims-setup.sh as root first)")?;
        fleet.children.push(child);
    }
    Ok(fleet)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn native_round(drivers: &[Arc<IpmiPower>], concurrency: usize) -> anyhow::Result<Duration> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut jobs = Vec::with_capacity(drivers.len());
    for d in drivers {
        let (d, gate) = (d.clone(), gate.clone());
        jobs.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("open");
            d.status().await
        }));
    }
    for j in jobs {
        j.await?.map_err(|e| anyhow::anyhow!("native status: {e}"))?;
    }
    Ok(started.elapsed())
}

async fn ipmitool_round(ports: &[u16], concurrency: usize) -> anyhow::Result<Duration> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut jobs = Vec::with_capacity(ports.len());
    for &port in ports {
        let gate = gate.clone();
        jobs.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("open");
            tokio::process::Command::new("ipmitool")
                .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port.to_string()])
                .args(["-U", "admin", "-P", "secret", "chassis", "power", "status"])
                .output()
                .await
        }));
    }
    for j in jobs {
        let out = j.await??;
        anyhow::ensure!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Chassis Power is"),
            "ipmitool failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let _fleet = start_fleet(args.bmcs, args.base_port, args.with_hook)?;
    let ports: Vec<u16> = (0..args.bmcs).map(|i| args.base_port + i as u16).collect();
    let ipmi = Arc::new(Ipmi::new(Timing { attempt: Duration::from_millis(500), attempts: 4 }));
    let drivers: Vec<Arc<IpmiPower>> = ports
        .iter()
        .map(|p| ipmi.bmc(&format!("127.0.0.1:{p}"), "admin", "secret", false).map(Arc::new))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Every BMC answers before timing starts (this also learns each one's cipher suite).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match native_round(&drivers, args.concurrency).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = e;
            }
            Err(e) => return Err(e),
        }
    }
    println!(
        "{} ipmi_sim BMCs up in {:.1} s; concurrency {}",
        args.bmcs,
        started.elapsed().as_secs_f64(),
        args.concurrency
    );

    let (mut native, mut tool) = (vec![], vec![]);
    for _ in 0..args.rounds {
        native.push(native_round(&drivers, args.concurrency).await?.as_secs_f64() * 1e3);
        tool.push(ipmitool_round(&ports, args.concurrency).await?.as_secs_f64() * 1e3);
    }
    let (n, t) = (median(native.clone()), median(tool.clone()));
    println!("native client : median {n:8.1} ms per round of {} (rounds: {native:.0?})", args.bmcs);
    println!("ipmitool      : median {t:8.1} ms per round of {} (rounds: {tool:.0?})", args.bmcs);
    println!("ratio         : native is {:.1}x faster", t / n);
    Ok(())
}
