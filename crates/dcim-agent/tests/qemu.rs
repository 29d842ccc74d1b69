//! The agent on a (virtual) machine: boots the image `scripts/build-bootimage.sh`
//! makes in QEMU (TCG, so no KVM is needed), with the kernel and initrd given
//! directly instead of PXE, qcow2 disks with serials (virtio, an IDE "SSD" with
//! SMART, an NVMe) and a user-mode NIC whose only way out is a `guestfwd` to this
//! test's HTTP server on 127.0.0.1. The server records the reports; the test checks them against the machine QEMU was told to
//! be, checks the disks from the host afterwards, and that the agent powered the
//! machine off by itself.
//!
//! It needs `qemu-system-x86_64`, `qemu-img`, `qemu-io` and `socat`
//! (`apt-get install qemu-system-x86 qemu-utils socat`, see `scripts/sims-setup.sh`)
//! and fails, never skips, when they are missing. The image is (re)built by the
//! script first (seconds once its .debs are cached; the first run downloads them),
//! unless `DCIM_BOOTIMAGE=DIR` names a directory with a ready `vmlinuz` and
//! `initrd.gz`. QEMU is always killed by its pid when the test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// What `GET /boot/{mac}/answer` of the netboot service gives a wipe task.
const ANSWER: &str = r#"{"task_id":42,"boot":{"mode":"wipe","clear_hdd":"full"},"answer":{}}"#;
/// The agent powers off about 10 s after QEMU starts (TCG); this is the bound.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn need(tool: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false);
    assert!(found, "{tool} is not installed: apt-get install qemu-system-x86 qemu-utils socat");
}

/// The image directory: `DCIM_BOOTIMAGE`, or target/bootimage rebuilt now.
fn image() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let dir = match std::env::var_os("DCIM_BOOTIMAGE") {
        Some(d) => PathBuf::from(d),
        None => {
            let dir = repo().join("target/bootimage");
            let t = Instant::now();
            let mut cmd = Command::new(repo().join("scripts/build-bootimage.sh"));
            // what cargo sets for a test would make the script's cargo rebuild the agent every time
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy().into_owned();
                let keep = ["CARGO_HOME", "CARGO_BUILD_JOBS", "CARGO_TARGET_DIR"].contains(&k.as_str());
                if (k.starts_with("CARGO") && !keep) || k == "LD_LIBRARY_PATH" || k == "OUT_DIR" {
                    cmd.env_remove(k);
                }
            }
            let out = cmd.arg(&dir).output().expect("running scripts/build-bootimage.sh");
            assert!(
                out.status.success(),
                "scripts/build-bootimage.sh {} failed:\n{}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("boot image built in {:.1} s", t.elapsed().as_secs_f64());
            dir
        }
    };
    for f in ["vmlinuz", "initrd.gz"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run scripts/build-bootimage.sh {} (or unset DCIM_BOOTIMAGE)",
            dir.join(f).display(),
            dir.display()
        );
    }
    *built = Some(dir.clone());
    dir
}

/// A report as the server received it.
#[derive(Debug, Clone)]
struct Report {
    at: Duration,
    path: String,
    auth: String,
    kind: String,
    data: Value,
}

/// A minimal stand-in for the server's agent route and the netboot service's answer
/// data: records every request; a POST is answered `{}`, a GET with [`ANSWER`] (and
/// recorded as kind `answer`).
fn serve(started: Instant) -> (u16, Arc<Mutex<Vec<Report>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let method = line.split(' ').next().unwrap_or_default().to_owned();
            let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
            let (mut len, mut auth) = (0, String::new());
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "authorization" => auth = v.trim().to_owned(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let kind = if method == "GET" { "answer" } else { v["kind"].as_str().unwrap_or_default() }.to_owned();
            rec.lock().unwrap().push(Report { at: started.elapsed(), path, auth, kind, data: v["data"].clone() });
            let answer = if method == "GET" { ANSWER } else { "{}" };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}

/// QEMU, killed by pid when dropped.
struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A work directory under target/, fresh for each test.
fn workdir(name: &str) -> PathBuf {
    let d = repo().join("target/qemu-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A qcow2 disk of `size` bytes: 0xa5 in the first and the last MiB, `marker` at `marker_at`.
fn disk(dir: &Path, name: &str, size: u64, marker: u8, marker_at: u64) -> PathBuf {
    let p = dir.join(name);
    run(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&p).arg(size.to_string()));
    run(Command::new("qemu-io")
        .args(["-f", "qcow2"])
        .args([
            "-c".into(),
            "write -q -P 0xa5 0 1M".to_string(),
            "-c".into(),
            format!("write -q -P {marker:#x} {marker_at} 1M"),
            "-c".into(),
            format!("write -q -P 0xa5 {} 1M", size - MIB),
        ])
        .arg(&p));
    p
}

/// The disk's bytes `[offset, offset + len)`, read from a raw copy.
fn read_disk(qcow: &Path, offset: u64, len: u64) -> Vec<u8> {
    let raw = qcow.with_extension("raw");
    run(Command::new("qemu-img").args(["convert", "-O", "raw"]).arg(qcow).arg(&raw));
    let mut f = std::fs::File::open(&raw).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len as usize];
    f.read_exact(&mut buf).unwrap();
    let _ = std::fs::remove_file(&raw);
    buf
}

struct Boot {
    reports: Vec<Report>,
    exited_after: Duration,
    serial: String,
}

/// Boots the image with `args` after the agent's callback words and waits until QEMU exits.
/// `disks`: (qcow2, QEMU device with its properties but without `drive=`).
fn boot(dir: &Path, args: &str, disks: &[(&Path, &str)]) -> Boot {
    for t in ["qemu-system-x86_64", "qemu-img", "qemu-io", "socat"] {
        need(t);
    }
    let img = image();
    let started = Instant::now();
    let (port, seen) = serve(started);
    let serial = dir.join("serial.log");
    let append = format!(
        "console=ttyS0 quiet panic=-1 dcim.callback=http://10.0.2.100:{port}/agent/v1/task dcim.task=42 \
         dcim.secret=s3cret {}",
        args.replace("{port}", &port.to_string())
    );
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "pc,accel=tcg", "-m", "512", "-smp", "1", "-nographic", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-kernel")
        .arg(img.join("vmlinuz"))
        .arg("-initrd")
        .arg(img.join("initrd.gz"))
        .args(["-append", &append])
        .arg("-netdev")
        .arg(format!("user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:{port}-cmd:socat - TCP:127.0.0.1:{port}"))
        .args(["-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"])
        .args(["-smbios", "type=1,manufacturer=dcim-test,product=qemu-node,serial=QEMU-SN-0001"]);
    for (i, (path, device)) in disks.iter().enumerate() {
        cmd.arg("-drive").arg(format!("if=none,id=d{i},file={},format=qcow2", path.display()));
        cmd.args(["-device", &format!("{device},drive=d{i}")]);
    }
    let qemu_log = std::fs::File::create(dir.join("qemu.log")).unwrap();
    cmd.stdin(Stdio::null()).stdout(qemu_log.try_clone().unwrap()).stderr(qemu_log);
    let mut vm = Vm(cmd.spawn().expect("starting qemu-system-x86_64"));
    let exited_after = loop {
        if let Some(status) = vm.0.try_wait().unwrap() {
            assert!(
                status.success(),
                "qemu exited with {status}: {}",
                std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default()
            );
            break started.elapsed();
        }
        if started.elapsed() > BOOT_TIMEOUT {
            drop(vm);
            panic!(
                "the machine did not power off within {BOOT_TIMEOUT:?}; reports: {:?}\nserial console:\n{}",
                seen.lock().unwrap().iter().map(|r| &r.kind).collect::<Vec<_>>(),
                std::fs::read_to_string(&serial).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(vm);
    let reports = seen.lock().unwrap().clone();
    let dump: Vec<Value> = reports
        .iter()
        .map(|r| serde_json::json!({"at_s": r.at.as_secs_f64(), "kind": r.kind, "data": r.data}))
        .collect();
    std::fs::write(dir.join("reports.json"), serde_json::to_string_pretty(&dump).unwrap()).unwrap();
    Boot { reports, exited_after, serial: std::fs::read_to_string(&serial).unwrap_or_default() }
}

impl Boot {
    fn kinds(&self) -> Vec<&str> {
        self.reports.iter().map(|r| r.kind.as_str()).filter(|k| *k != "progress").collect()
    }

    fn get(&self, kind: &str) -> &Report {
        self.reports
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} report; serial:\n{}", self.serial))
    }

    fn timings(&self, what: &str) {
        let first = self.reports.first().map(|r| r.at.as_secs_f64()).unwrap_or(f64::NAN);
        eprintln!(
            "{what}: first report after {first:.1} s, {} reports, powered off after {:.1} s",
            self.reports.len(),
            self.exited_after.as_secs_f64()
        );
    }
}

#[test]
fn diag_with_a_simple_wipe_reports_the_machine_and_clears_both_disks() {
    let dir = workdir("diag-simple");
    let (s0, s1) = (2048 * MIB, 1024 * MIB);
    let d0 = disk(&dir, "disk0.qcow2", s0, 0x5a, 1000 * MIB);
    let d1 = disk(&dir, "disk1.qcow2", s1, 0x6b, 500 * MIB);
    // QEMU's IDE disk answers SMART and can say it does not rotate: an "SSD" on the PIIX controller
    let (s2, d2) = (256 * MIB, disk(&dir, "disk2.qcow2", 256 * MIB, 0x7c, 128 * MIB));
    let (s3, d3) = (512 * MIB, disk(&dir, "disk3.qcow2", 512 * MIB, 0x3e, 300 * MIB));
    let b = boot(
        &dir,
        "dcim.mode=diag dcim.clear_hdd=simple",
        &[
            (&d0, "virtio-blk-pci,serial=DISK0"),
            (&d1, "virtio-blk-pci,serial=DISK1"),
            (&d2, "ide-hd,bus=ide.0,serial=IDE-SSD-0,model=dcim-test-ssd,rotation_rate=1"),
            (&d3, "nvme,serial=NVME-0"),
        ],
    );
    b.timings("diag + simple wipe");

    assert_eq!(b.kinds(), ["hardware", "wiped", "done"], "serial:\n{}", b.serial);
    for r in &b.reports {
        assert_eq!((r.path.as_str(), r.auth.as_str()), ("/agent/v1/task/42/report", "Bearer s3cret"));
    }
    assert!(!b.kinds().contains(&"answer"), "dcim.clear_hdd is on the command line: no need to ask");
    assert!(b.reports.iter().filter(|r| r.kind == "progress").count() >= 3, "a progress report before each step");

    let hw = &b.get("hardware").data;
    // exactly what the server parses
    let info: dcim_core::configuration::HardwareInfo = serde_json::from_value(hw.clone()).unwrap();
    let disks: Vec<_> = info.disks.iter().map(|d| (d.name.as_deref(), d.serial.as_deref(), d.size_gb)).collect();
    assert_eq!(
        disks,
        [
            (Some("nvme0n1"), Some("NVME-0"), Some(0)),
            (Some("sda"), Some("IDE-SSD-0"), Some(0)),
            (Some("vda"), Some("DISK0"), Some(2)),
            (Some("vdb"), Some("DISK1"), Some(1))
        ],
        "{hw:#}"
    );
    let sizes: Vec<_> = (0..4).map(|i| hw["disks"][i]["size_bytes"].as_u64()).collect();
    assert_eq!(sizes, [Some(s3), Some(s2), Some(s0), Some(s1)]);
    let kinds: Vec<_> = (0..4).map(|i| hw["disks"][i]["type"].as_str()).collect();
    assert_eq!(kinds, [Some("NVMe"), Some("SSD"), Some("HDD"), Some("HDD")], "virtio-blk always says rotational");
    assert_eq!(hw["disks"][1]["model"], "dcim-test-ssd");
    assert_eq!(hw["disks"][1]["smart"], serde_json::json!({"passed": true}), "smartctl in the image: {hw:#}");
    assert!(hw["disks"][2].get("smart").is_none(), "virtio disks have no SMART");
    assert_eq!(info.nics.len(), 1, "{hw:#}");
    assert_eq!((info.nics[0].mac.as_deref(), info.nics[0].link), (Some("52:54:00:12:34:56"), Some(true)));
    assert_eq!(info.memory.as_ref().and_then(|m| m.total_mib), Some(512), "SMBIOS memory devices: {hw:#}");
    let cpu = info.cpu.as_ref().unwrap();
    assert!(cpu.model.as_deref().is_some_and(|m| !m.is_empty()), "{hw:#}");
    assert_eq!((cpu.sockets, cpu.threads), (Some(1), Some(1)));
    assert_eq!(info.motherboard.as_ref().and_then(|m| m.serial.as_deref()), Some("QEMU-SN-0001"));
    assert_eq!(hw["system"]["vendor"], "dcim-test");

    let wiped = &b.get("wiped").data;
    assert_eq!(wiped["mode"], "simple");
    assert_eq!(wiped["disks"].as_array().map(Vec::len), Some(4), "{wiped:#}");
    assert_eq!(wiped["disks"][0]["wiped"], "signatures, first and last MiB");

    for (d, size, marker, at) in [
        (&d0, s0, 0x5a, 1000 * MIB),
        (&d1, s1, 0x6b, 500 * MIB),
        (&d2, s2, 0x7c, 128 * MIB),
        (&d3, s3, 0x3e, 300 * MIB),
    ] {
        assert!(read_disk(d, 0, MIB).iter().all(|&x| x == 0), "{}: first MiB not zero", d.display());
        assert!(read_disk(d, size - MIB, MIB).iter().all(|&x| x == 0), "{}: last MiB not zero", d.display());
        assert!(
            read_disk(d, at, MIB).iter().all(|&x| x == marker),
            "{}: the marker in the middle is gone",
            d.display()
        );
    }
}

#[test]
fn a_full_wipe_zeroes_every_byte_and_an_install_is_refused_then_the_machine_powers_off() {
    let dir = workdir("wipe-full");
    let size = 64 * MIB;
    let d0 = disk(&dir, "disk0.qcow2", size, 0x5a, 32 * MIB);
    let d1 = disk(&dir, "disk1.qcow2", size, 0x5a, 32 * MIB);
    // as the netboot service boots it: the wipe level only in the answer data
    let answer = "dcim.answer=http://10.0.2.100:{port}/boot/52-54-00-12-34-56/answer";
    let b = boot(
        &dir,
        &format!("dcim.mode=wipe {answer}"),
        &[(&d0, "virtio-blk-pci,serial=FULL0"), (&d1, "nvme,serial=FULL1")],
    );
    b.timings("full wipe of 64 MiB");
    assert_eq!(b.kinds(), ["answer", "wiped", "done"], "serial:\n{}", b.serial);
    let a = b.get("answer");
    assert_eq!((a.path.as_str(), a.auth.as_str()), ("/boot/52-54-00-12-34-56/answer", "Bearer s3cret"));
    let w = &b.get("wiped").data["disks"];
    let got: Vec<_> =
        (0..2).map(|i| (w[i]["name"].as_str(), w[i]["method"].as_str(), w[i]["bytes_written"].as_u64())).collect();
    assert_eq!(
        got,
        [(Some("nvme0n1"), Some("nvme format (user data erase)"), Some(0)), (Some("vda"), Some("zeroes"), Some(size))],
        "{w:#}"
    );
    for d in [&d0, &d1] {
        assert!(read_disk(d, 0, size).iter().all(|&x| x == 0), "{}: not every byte is zero", d.display());
    }

    // an install needs the answer (RAID, disks, image): without dcim.answer it is refused
    let dir = workdir("install");
    let d0 = disk(&dir, "disk0.qcow2", size, 0x5a, 32 * MIB);
    let b = boot(&dir, "dcim.mode=install", &[(&d0, "virtio-blk-pci,serial=INST0")]);
    b.timings("install (refused)");
    assert_eq!(b.kinds(), ["failed"], "serial:\n{}", b.serial);
    let f = &b.get("failed").data;
    assert_eq!(f["step"], "agent_answer");
    assert!(f["message"].as_str().unwrap_or_default().contains("dcim.answer"), "{f}");
    assert!(read_disk(&d0, 32 * MIB, MIB).iter().all(|&x| x == 0x5a), "a refused task touches no disk");
}
