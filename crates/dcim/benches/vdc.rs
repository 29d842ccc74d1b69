//! How long dcim takes to diagnose virtual machines for real: QEMU (TCG) machines behind
//! `ipmi_sim` BMCs, booted over dcim's own netboot service into the agent, which reports
//! the hardware, wipes both disks (`clear_hdd: simple`, as the recipe's `/init` wiped
//! them) and powers the machine off. For each scenario it prints, per run and as
//! the median, the time from the BMC's power on (the chassis hook starting QEMU for a
//! network boot) to the hardware report and to the task's `complete`, beside the figures
//! of the hand-made recipe (`virtual-dc.md`: dnsmasq, a Python HTTP server and a shell
//! `/init`, no data-centre manager): BIOS 10.4 to 11.3 s, three BIOS machines at once
//! 17.1 to 19.9 s, UEFI through OVMF's own network boot loading iPXE over TFTP (as here)
//! 17.3 to 19.2 s, from power on to power off.
//!
//! `cargo bench -p dcim --bench vdc -- [--runs N] [bios] [uefi] [three]` (default: all,
//! 3 runs). Needs root and what `scripts/test.sh` installs and builds (the boot image);
//! do not run it beside the machine tests: both use the namespaces' 10.79.x subnets.

#[path = "../tests/common/mod.rs"]
mod common;

use common::lab::{Lab, diag, net_power_on, wait_all_timed};
use common::vdc::{Firmware, VirtualMachine};

/// One run's figures, in seconds from the BMC's power on.
struct Run {
    hardware: f64,
    complete: f64,
    /// When the kernel started, estimated as the hardware report's arrival less the
    /// guest's uptime when it sent it (the recipe's own estimate): everything before it
    /// is firmware, dcim's DHCP, TFTP and iPXE script, the kernel and initramfs download
    /// and decompression.
    kernel: f64,
}

/// The guest's uptime when the agent sent its hardware report (its console line
/// `dcim-agent[UPTIME]: found N disks, ...`).
fn report_uptime(console: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains("dcim-agent[") && l.contains("]: found "))?;
    line.split_once("dcim-agent[")?.1.split_once(']')?.0.parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(name: &str, recipe: &str, runs: &[Run]) {
    let kernel = median(runs.iter().map(|r| r.kernel).collect());
    let hw = median(runs.iter().map(|r| r.hardware).collect());
    let done = median(runs.iter().map(|r| r.complete).collect());
    let all = |f: fn(&Run) -> f64| runs.iter().map(|r| format!("{:.1}", f(r))).collect::<Vec<_>>().join(" ");
    println!(
        "vdc {name:<6} median of {}: power on to kernel start {kernel:.1} s, to hardware report {hw:.1} s, \
         to complete {done:.1} s (runs: hardware {} / complete {}); recipe: {recipe}",
        runs.len(),
        all(|r| r.hardware),
        all(|r| r.complete)
    );
}

/// Diagnoses the machines at once, `runs` times; for more than one machine a run's
/// figures are the first power on to the last report and the last `complete`.
async fn scenario(segment: u8, fw: Firmware, machines: usize, runs: usize) -> Vec<Run> {
    let lab = Lab::start(segment, |_| {}).await;
    let vms: Vec<VirtualMachine> = (1..=machines)
        .map(|i| VirtualMachine::start_with(&lab.ns, &format!("52:54:00:79:{segment:02x}:{i:02x}"), fw))
        .collect();
    let mut servers = vec![];
    for (i, vm) in vms.iter().enumerate() {
        servers.push(lab.server(&format!("bench-{i}"), &vm.mac, vm).await);
    }
    let mut out = vec![];
    for run in 1..=runs {
        let mut tasks = vec![];
        for srv in &servers {
            tasks.push(lab.start_op(*srv, "operation_diag", diag("simple")).await);
        }
        let ends = wait_all_timed(&lab.s, &tasks, 300).await;
        let mut on = f64::MAX;
        let (mut hw, mut done, mut kernel) = (0f64, 0f64, 0f64);
        for ((t, seen), vm) in ends.iter().zip(&vms) {
            let console = vm.console();
            assert_eq!(t["status"], "complete", "{t}\nconsole:\n{console}");
            let start = net_power_on(vm).expect("power.log has the network boot's power on");
            on = on.min(start);
            hw = hw.max(seen["collect hardware"]);
            done = done.max(seen["task end"]);
            let uptime = report_uptime(&console).expect("the console shows the agent's inventory line");
            kernel = kernel.max(seen["collect hardware"] - uptime - start);
        }
        let r = Run { hardware: hw - on, complete: done - on, kernel };
        println!(
            "  run {run}: kernel started at {:.1} s, hardware report {:.1} s, complete {:.1} s",
            r.kernel, r.hardware, r.complete
        );
        out.push(r);
    }
    lab.s.stop().await;
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut runs = 3;
    let mut wanted = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "bios" | "uefi" | "three" => wanted.push(a.clone()),
            other => panic!("unknown argument {other}: [--runs N] [bios] [uefi] [three]"),
        }
    }
    if wanted.is_empty() {
        wanted = vec!["bios".into(), "uefi".into(), "three".into()];
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        for w in &wanted {
            println!("vdc {w}: {runs} runs");
            let (r, recipe) = match w.as_str() {
                "bios" => {
                    (scenario(11, Firmware::Bios, 1, runs).await, "kernel ~6 s, hardware 8.95-10.0 s, off 10.4-11.3 s")
                }
                "uefi" => (scenario(12, Firmware::Uefi, 1, runs).await, "off 17.3-19.2 s (OVMF PXE, iPXE over TFTP)"),
                _ => (scenario(13, Firmware::Bios, 3, runs).await, "hardware 14.1-17.0 s, off 17.1-19.9 s"),
            };
            report(w, recipe, &r);
        }
    });
}
