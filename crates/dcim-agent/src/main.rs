//! `dcim-agent`: the in-band agent. It runs from the network-booted image
//! (`scripts/build-bootimage.sh`), once the image's `/init` has loaded the NIC and
//! disk drivers and got an address by DHCP, and does what the task asked: report
//! the hardware, wipe the disks, or build the RAID and write an OS image onto it
//! ([`install`]), report what it did, then power the machine off.
//! Power off is the last thing it does whatever happened, and every failure is
//! reported first, so no task on the server waits for its timeout.
//!
//! # Kernel command line
//!
//! The agent takes its instructions from `/proc/cmdline` (the netboot service puts
//! them on the iPXE `kernel` line); one image serves every task:
//!
//! | word | meaning |
//! |---|---|
//! | `dcim.callback=URL` | reports go to `POST URL/{task}/report` (the server's `/agent/v1/task`) |
//! | `dcim.task=ID` | the task id |
//! | `dcim.secret=S` | sent as `Authorization: Bearer S` |
//! | `dcim.mode=diag\|wipe\|install` | diag: hardware, then a wipe unless `clear_hdd` is `none`; wipe: only the wipe; install: the answer's RAID and OS image, see [`install`] (default diag) |
//! | `dcim.clear_hdd=none\|simple\|full` | simple: signatures and the first and last MiB of every disk and partition; full: every byte |
//! | `dcim.answer=URL` | optional: when `dcim.clear_hdd` is absent, its `boot.clear_hdd` decides (fetched with the secret); install mode needs it |
//! | `dcim.timeout=SECONDS` | optional: report a failure and power off after this long; default 1800 s, none for a full wipe; 0 = none |
//! | `BOOTIF=01-aa-bb-cc-dd-ee-ff` | optional (iPXE's `${net0/mac:hexhyp}`), read by the image's `/init`: that NIC asks for DHCP first |
//!
//! Without `dcim.clear_hdd` and an answer, a wipe task does `simple` and a diag does none.
//! Host names in URLs resolve through the DNS servers the segment's DHCP gave (the
//! image's DHCP client writes them to `/etc/resolv.conf`, which the static glibc reads
//! without NSS modules).
//!
//! # Reports
//!
//! `{"kind": K, "data": {...}}`, in order: `progress` before each step
//! (`{"step", "message", "percent"}`), `hardware` (the `hardware_info` schema, see
//! [`inventory`]), `wiped` (`{"mode", "disks": [{"name", "wiped", "method", ...}]}`),
//! `done` (`{}`); after `hardware`, when the answer has `bmc` (`setup_ipmi`), `bmc` (see
//! [`bmc`]: the BMC's user, slot, channel, address, netmask, gateway, MAC); in install mode `installed` (`{"target", "bytes", "sha256", "raid", "seed"}`,
//! `seed` the partition given the cloud-init seed or null)
//! instead of `hardware`, `wiped` and `done`; or `failed` (`{"step", "message"}`) as soon as a step fails.
//! A report the server refuses (4xx: the task was aborted or has ended) is a
//! failure too, so an aborted task's machine stops at its next report and powers off.
//!
//! Started by hand (`/proc/cmdline` without `dcim.callback` and `dcim.task`) it
//! refuses to run and touches nothing; `dcim-agent inventory [ROOT]` prints the
//! inventory of this machine (or of a copied `/proc` + `/sys` tree) and exits.

mod bmc;
mod cmdline;
mod install;
mod inventory;
mod qcow2;
mod report;
mod wipe;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use dcim_core::ReportKind;
use serde_json::{Value, json};

use cmdline::{ClearMode, Mode, Params};
use report::Reporter;

/// A console line with the time since boot, as the serial log shows it.
pub fn say(msg: &str) {
    let up = std::fs::read_to_string("/proc/uptime").ok().and_then(|s| s.split(' ').next().map(str::to_owned));
    eprintln!("dcim-agent[{}]: {msg}", up.unwrap_or_default());
}

/// A step's failure: the step's name as the server's task shows it, and why.
struct Failure {
    step: &'static str,
    error: anyhow::Error,
}

trait StepContext<T> {
    fn step(self, step: &'static str) -> Result<T, Failure>;
}

impl<T> StepContext<T> for anyhow::Result<T> {
    fn step(self, step: &'static str) -> Result<T, Failure> {
        self.map_err(|error| Failure { step, error })
    }
}

fn progress(r: &Reporter, step: &str, percent: u32, message: &str) -> anyhow::Result<()> {
    say(message);
    r.send(ReportKind::Progress, json!({"step": step, "message": message, "percent": percent}))
}

/// The wipe level: the command line, else the answer data, else the mode's default.
fn clear_hdd(p: &Params, answer: &Value) -> anyhow::Result<ClearMode> {
    if let Some(c) = p.clear_hdd {
        return Ok(c);
    }
    if let Some(c) = answer["boot"]["clear_hdd"].as_str() {
        return cmdline::parse_clear(c);
    }
    Ok(if p.mode == Mode::Wipe { ClearMode::Simple } else { ClearMode::None })
}

fn run(p: &Params, r: &Reporter) -> Result<(), Failure> {
    let root = Path::new("/");
    let answer = match &p.answer {
        Some(url) => r.fetch_json(url).step("agent_answer")?,
        None => Value::Null,
    };
    let clear = clear_hdd(p, &answer).step("agent_answer")?;
    watchdog(p, clear);
    match p.mode {
        Mode::Install => return install_os(p, r, &answer),
        Mode::Diag => {
            progress(r, "agent_hardware", 0, "collecting the hardware inventory").step("agent_hardware")?;
            let inv = inventory::collect(root, &inventory::smartctl);
            let data = serde_json::to_value(&inv).context("encoding the inventory").step("agent_hardware")?;
            say(&format!(
                "found {} disks, {} NICs, {} MiB of RAM",
                inv.disks.len(),
                inv.nics.len(),
                inv.memory.total_mib.unwrap_or(0)
            ));
            r.send(ReportKind::Hardware, data).step("agent_hardware")?;
            if let Some(setup) = bmc::Setup::parse(&answer["answer"]["bmc"]).step("agent_bmc")? {
                let msg = format!("giving the BMC the user {} in-band", setup.user);
                progress(r, "agent_bmc", 0, &msg).step("agent_bmc")?;
                bmc::wait_device(Path::new("/dev/ipmi0"), std::time::Duration::from_secs(10)).step("agent_bmc")?;
                let data = bmc::setup(&setup, &bmc::ipmitool).step("agent_bmc")?;
                say(&format!("BMC: user {} (slot {}) at {}", setup.user, data["user_id"], data["address"]));
                r.send(ReportKind::Bmc, data).step("agent_bmc")?;
            }
        }
        Mode::Wipe => {}
    }
    if p.mode == Mode::Wipe || clear != ClearMode::None {
        let data = wipe_disks(root, clear, r).step("agent_wipe")?;
        r.send(ReportKind::Wiped, data).step("agent_wipe")?;
    }
    r.send(ReportKind::Done, json!({})).step("agent_done")
}

/// Install mode: the answer, the RAID, the image written and checked, `installed`.
fn install_os(p: &Params, r: &Reporter, answer: &Value) -> Result<(), Failure> {
    if p.answer.is_none() {
        return Err(anyhow::anyhow!("the command line has no dcim.answer")).step("agent_answer");
    }
    let a = install::Answer::parse(&answer["answer"]).step("agent_answer")?;
    let msg = format!("building {} over {}", a.raid, a.disks.join(", "));
    progress(r, "agent_raid", 0, &msg).step("agent_raid")?;
    let target = install::build_target(Path::new("/dev"), &a).step("agent_raid")?;
    let msg = format!("writing {} onto {}", a.image_url, target.display());
    progress(r, "agent_image", 10, &msg).step("agent_image")?;
    let mut last_report = std::time::Instant::now();
    let mut on_progress = |n: u64, total: Option<u64>| {
        if last_report.elapsed().as_secs() >= 30 {
            last_report = std::time::Instant::now();
            let pct = total.map_or(50, |t| 10 + (n * 85 / t.max(1)) as u32);
            let _ = progress(r, "agent_image", pct, &format!("written {n} of {} bytes", total.unwrap_or(0)));
        }
    };
    let w = install::write_image(&a.image_url, &a.image_sha256, &target, &mut on_progress).step("agent_image")?;
    say(&format!("{}: {} bytes written, sha256 {} as expected", target.display(), w.bytes, w.sha256));
    progress(r, "agent_seed", 95, "writing the cloud-init seed (hostname, root password, SSH keys)")
        .step("agent_seed")?;
    let seed = install::write_seed(&target, &a, &format!("dcim-task-{}", p.task)).step("agent_seed")?;
    match &seed {
        Some(part) => say(&format!("cloud-init seed written onto {}", part.display())),
        None => say("the image has no CIDATA partition 2: no password, keys or hostname written"),
    }
    let seed = seed.map(|p| p.display().to_string());
    let data = json!({"target": target.display().to_string(), "bytes": w.bytes, "sha256": w.sha256, "raid": a.raid,
                      "seed": seed});
    r.send(ReportKind::Installed, data).step("agent_install")
}

/// Wipes every disk in turn, reporting progress; the `wiped` report's data.
fn wipe_disks(root: &Path, clear: ClearMode, r: &Reporter) -> anyhow::Result<Value> {
    let names = inventory::disk_names(root);
    let mut done = vec![];
    for (i, name) in names.iter().enumerate() {
        let size = inventory::disk_size(root, name);
        let base = (i * 100 / names.len().max(1)) as u32;
        let share = 100 / names.len().max(1) as u64;
        progress(r, "agent_wipe", base, &format!("wiping {name} ({} bytes, {})", size, clear.as_str()))?;
        let mut last_report = std::time::Instant::now();
        let mut on_progress = |d: u64, total: u64| {
            // a full wipe of a big disk takes hours: a line now and then, a report at most every 30 s
            if d < total && last_report.elapsed().as_secs() >= 30 {
                last_report = std::time::Instant::now();
                let pct = base + (d * share / total.max(1)) as u32;
                let _ = progress(r, "agent_wipe", pct, &format!("wiping {name}: {d} of {total} bytes"));
            }
        };
        let w = wipe::wipe_disk(root, Path::new("/dev"), name, size, clear, &mut on_progress)?;
        say(&format!("{name}: {} ({} bytes written in {} s)", w.wiped, w.bytes_written, w.seconds));
        done.push(w);
    }
    Ok(json!({"mode": clear.as_str(), "disks": done}))
}

/// Syncs and powers the machine off; returns only if that is not allowed.
///
/// The NICs go down first: the kernel's shutdown breaks virtio queues while NAPI
/// may still poll them, and Linux before the fix "virtio_ring: fix infinite loop in
/// virtnet_poll_cleantx when device is broken" can then spin in softirq forever
/// (seen here as a soft lockup after `reboot: Power down` was due, QEMU never exiting).
fn power_off() -> ExitCode {
    say("powering off");
    if Path::new("/bin/ip").exists() {
        for nic in inventory::nics(Path::new("/")) {
            if let Some(name) = nic.nic.name {
                let _ = std::process::Command::new("/bin/ip").args(["link", "set", "dev", &name, "down"]).status();
            }
        }
    }
    nix::unistd::sync();
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(e) => {
            say(&format!("power off failed: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// The deadline: whatever the agent is doing then (a disk that never answers, a
/// hung tool), the failure is reported and the machine powered off, so the task
/// ends before the server's own timeout.
fn watchdog(p: &Params, clear: ClearMode) {
    let secs = p.timeout.unwrap_or(if clear == ClearMode::Full { 0 } else { 1800 });
    if secs == 0 {
        return;
    }
    let p = p.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(secs));
        let message = format!("the agent did not finish within {secs} s (dcim.timeout)");
        say(&message);
        let _ = Reporter::new(&p).send(ReportKind::Failed, json!({"step": "agent_timeout", "message": message}));
        power_off();
        std::process::exit(1);
    });
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("inventory") {
        let root = args.get(1).map_or("/", String::as_str);
        let inv = inventory::collect(Path::new(root), &inventory::smartctl);
        println!("{}", serde_json::to_string_pretty(&inv).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let params =
        match std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline").and_then(|c| Params::parse(&c))
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("dcim-agent: {e:#}; nothing done (`dcim-agent inventory [ROOT]` prints the inventory)");
                return ExitCode::from(2);
            }
        };
    say(&format!("task {} mode {:?} callback {}", params.task, params.mode, params.callback));
    let reporter = Reporter::new(&params);
    match run(&params, &reporter) {
        Ok(()) => say("all steps done"),
        Err(Failure { step, error }) => {
            let message = format!("{error:#}");
            say(&format!("{step} failed: {message}"));
            if let Err(e) = reporter.send(ReportKind::Failed, json!({"step": step, "message": message})) {
                say(&format!("could not report the failure either: {e:#}"));
            }
        }
    }
    power_off()
}
