//! Install mode: the answer's RAID is built over the answer's disks, the template's
//! disk image (raw, or qcow2: [`crate::qcow2`]) is streamed onto it while it is hashed,
//! and the hash must be the template's before the agent reports `installed`.
//!
//! The image is written through as it arrives (no copy in RAM: the image may be far
//! bigger than the machine's memory), so a checksum mismatch is found only after the
//! write; the first MiB of the target is then zeroed so the half-trusted image cannot
//! boot, and the step fails. RAID arrays use metadata 1.0 (superblock at the end of
//! each member): the members' first sectors are the image's own, so the BIOS boots
//! any one of them. Names and the RAID level come from the server and were checked
//! there; here they are checked again only so a bad answer cannot name another path.
//!
//! The root password (its SHA-512 crypt hash only), SSH keys and hostname reach the
//! installed system as a cloud-init NoCloud seed: when the image has a partition 2
//! holding a FAT filesystem labelled `CIDATA`, the agent writes `meta-data` and
//! `user-data` there, and the image's cloud-init applies them at its first boot. The
//! agent never edits the image's own root filesystem: it knows no OS's layout, and
//! the verified image stays as the template made it, but for that seed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use dcim_core::RaidLevel;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The install part of the boot's answer data (`answer` in `GET dcim.answer`).
#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    pub raid: RaidLevel,
    pub disks: Vec<String>,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub image_sha256: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub password_hash: String,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
}

impl Answer {
    pub fn parse(v: &serde_json::Value) -> anyhow::Result<Answer> {
        let a: Answer = serde_json::from_value(v.clone()).context("the answer has no install data")?;
        ensure!(!a.image_url.is_empty(), "the answer names no image (the OS template has no image_url)");
        ensure!(
            a.image_sha256.len() == 64 && a.image_sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "the answer's image_sha256 is not a SHA-256"
        );
        ensure!(!a.disks.is_empty(), "the answer names no disk");
        for d in &a.disks {
            ensure!(
                !d.is_empty() && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "the answer names a disk '{d}' that is not a block device name"
            );
        }
        Ok(a)
    }
}

/// `mdadm --create` arguments for `raid` over `members`, or `None` for `no_raid`.
pub fn mdadm_create(raid: RaidLevel, target: &Path, members: &[PathBuf]) -> anyhow::Result<Option<Vec<String>>> {
    let level = match raid {
        RaidLevel::NoRaid => return Ok(None),
        RaidLevel::Raid0 => "0",
        RaidLevel::Raid1 => "1",
        RaidLevel::Raid5 => "5",
        RaidLevel::Raid10 => "10",
    };
    ensure!(
        members.len() >= raid.min_disks(),
        "{raid} needs {} disks at least, the answer names {}",
        raid.min_disks(),
        members.len()
    );
    let mut args: Vec<String> = vec![
        "--create".into(),
        target.display().to_string(),
        "--run".into(),
        format!("--level={level}"),
        "--metadata=1.0".into(),
        format!("--raid-devices={}", members.len()),
    ];
    args.extend(members.iter().map(|m| m.display().to_string()));
    Ok(Some(args))
}

fn run(tool: &str, args: &[String]) -> anyhow::Result<()> {
    let out = std::process::Command::new(tool).args(args).output().with_context(|| format!("running {tool}"))?;
    ensure!(
        out.status.success(),
        "{tool} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(())
}

/// Builds the answer's RAID (old signatures and arrays on the members go first);
/// the block device to write the image to.
pub fn build_target(dev: &Path, a: &Answer) -> anyhow::Result<PathBuf> {
    let members: Vec<PathBuf> = a.disks.iter().map(|d| dev.join(d)).collect();
    let target = dev.join("md0");
    let Some(args) = mdadm_create(a.raid, &target, &members)? else {
        return Ok(members[0].clone());
    };
    // the personalities are modules; the kernel would ask for them too, this says which failed
    for m in ["md_mod", "raid0", "raid1", "raid10", "raid456"] {
        let _ = std::process::Command::new("modprobe").arg(m).output();
    }
    let _ = std::process::Command::new("mdadm").args(["--stop", "--scan"]).output();
    for m in &members {
        let _ = std::process::Command::new("mdadm").arg("--zero-superblock").arg(m).output();
        run("wipefs", &["-a".into(), m.display().to_string()])?;
    }
    run("mdadm", &args)?;
    Ok(target)
}

/// What was written: bytes and their SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    pub sha256: String,
}

/// Copies `src` onto `dst` while hashing it; `on_progress(bytes)` now and then.
pub fn copy_hashed(
    src: &mut dyn Read,
    dst: &mut dyn Write,
    on_progress: &mut dyn FnMut(u64),
) -> anyhow::Result<Written> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the image"),
        };
        h.update(&buf[..n]);
        dst.write_all(&buf[..n]).with_context(|| format!("writing the image at byte {bytes}"))?;
        bytes += n as u64;
        on_progress(bytes);
    }
    dst.flush().context("flushing the image")?;
    let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Written { bytes, sha256 })
}

/// Reads until `buf` is full or the stream ends; the bytes read.
fn read_up_to(src: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Streams the image at `url` onto `target`, syncs it, and checks its SHA-256 (of the
/// file as served). A raw image is written as it is; a qcow2 one (told by its magic) as
/// the disk it describes, see [`crate::qcow2`].
pub fn write_image(
    url: &str,
    sha256: &str,
    target: &Path,
    on_progress: &mut dyn FnMut(u64, Option<u64>),
) -> anyhow::Result<Written> {
    let http: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .user_agent(concat!("dcim-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut r = http.get(url).call().with_context(|| format!("GET {url}"))?;
    ensure!(r.status().is_success(), "GET {url}: HTTP {}", r.status());
    let total = r.body().content_length();
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .with_context(|| format!("opening {}", target.display()))?;
    let mut body = r.body_mut().as_reader();
    // Raw, or qcow2 by its magic: then the disk it describes is written, not the file.
    let mut head = [0u8; 4];
    let got = read_up_to(&mut body, &mut head).context("reading the image")?;
    let mut src = std::io::Read::chain(&head[..got], body);
    let qcow2 = head[..got] == crate::qcow2::MAGIC[..];
    let (w, format) = if qcow2 {
        let mut sink = crate::qcow2::Qcow2Sink::new(&dst);
        let w = copy_hashed(&mut src, &mut sink, &mut |n| on_progress(n, total))?;
        sink.finish().context("writing the qcow2 image")?;
        (w, "qcow2")
    } else {
        (copy_hashed(&mut src, &mut dst, &mut |n| on_progress(n, total))?, "raw")
    };
    if let Some(t) = total {
        ensure!(w.bytes == t, "the image ended after {} of {t} bytes", w.bytes);
    }
    crate::say(&format!("{url}: a {format} image of {} bytes", w.bytes));
    dst.sync_all().with_context(|| format!("syncing {}", target.display()))?;
    if !w.sha256.eq_ignore_ascii_case(sha256) {
        // the image is not the template's: make sure it does not boot
        let zero = vec![0u8; (1 << 20).min(w.bytes as usize)];
        let _ = std::io::Seek::seek(&mut dst, std::io::SeekFrom::Start(0))
            .and_then(|_| dst.write_all(&zero))
            .and_then(|_| dst.sync_all());
        bail!("checksum mismatch: the image's SHA-256 is {}, the template says {sha256}", w.sha256);
    }
    Ok(w)
}

/// The NoCloud seed: `meta-data` and `user-data` (strings are JSON-quoted, which YAML reads as they are).
pub fn seed_files(a: &Answer, instance_id: &str) -> (String, String) {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let meta = format!("instance-id: {}\nlocal-hostname: {}\n", q(instance_id), q(&a.hostname));
    let keys: String = a.ssh_keys.iter().map(|k| format!("      - {}\n", q(k))).collect();
    let user = format!(
        "#cloud-config\nhostname: {host}\nfqdn: {host}\ndisable_root: false\nssh_pwauth: true\nusers:\n  - name: root\n    \
         lock_passwd: false\n    hashed_passwd: {hash}\n    ssh_authorized_keys:\n{keys}chpasswd:\n  expire: false\n  \
         users:\n    - name: root\n      password: {hash}\n      type: HASH\n",
        host = q(&a.hostname),
        hash = q(&a.password_hash),
    );
    (meta, user)
}

/// Partition `n` of a disk or array: `vda` → `vda2`, `md0` → `md0p2`, `nvme0n1` → `nvme0n1p2`.
pub fn partition(target: &Path, n: u32) -> PathBuf {
    let name = target.display().to_string();
    if name.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{name}p{n}").into()
    } else {
        format!("{name}{n}").into()
    }
}

/// The volume label of a FAT boot sector (FAT12/16 or FAT32), if it is one.
pub fn fat_label(bs: &[u8]) -> Option<String> {
    let at = if bs.get(0x52..0x57) == Some(b"FAT32") {
        0x47
    } else if bs.get(0x36..0x39) == Some(b"FAT") {
        0x2b
    } else {
        return None;
    };
    // padded with spaces, or by some tools (busybox mkdosfs) with NULs
    Some(String::from_utf8_lossy(bs.get(at..at + 11)?).trim_end_matches([' ', '\0']).to_owned())
}

/// Writes the seed onto the image's `CIDATA` partition 2; which device, or `None`
/// when the image has none (it then gets no password, keys or hostname from dcim).
pub fn write_seed(target: &Path, a: &Answer, instance_id: &str) -> anyhow::Result<Option<PathBuf>> {
    // the kernel read the old partition table: make it read the image's
    let reread = std::process::Command::new("blockdev").arg("--rereadpt").arg(target).output();
    if let Ok(o) = &reread
        && !o.status.success()
    {
        crate::say(&format!("blockdev --rereadpt: {}", String::from_utf8_lossy(&o.stderr).trim()));
    }
    let part = partition(target, 2);
    let mut bs = vec![0u8; 512];
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match std::fs::File::open(&part).and_then(|mut f| f.read_exact(&mut bs)) {
            Ok(()) => break,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                crate::say(&format!("{}: {e}", part.display()));
                return Ok(None);
            }
        }
    }
    let label = fat_label(&bs);
    if !label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case("cidata")) {
        crate::say(&format!("{}: not a FAT filesystem labelled CIDATA (label {label:?})", part.display()));
        return Ok(None);
    }
    // vfat asks for its code page and I/O charset (the kernel's defaults) when it mounts
    for m in ["vfat", "nls_cp437", "nls_ascii", "nls_utf8"] {
        let _ = std::process::Command::new("modprobe").arg(m).output();
    }
    let mnt = Path::new("/run/seed");
    std::fs::create_dir_all(mnt).context("creating /run/seed")?;
    run("mount", &["-t".into(), "vfat".into(), part.display().to_string(), mnt.display().to_string()])?;
    let (meta, user) = seed_files(a, instance_id);
    let wrote = std::fs::write(mnt.join("meta-data"), meta)
        .and_then(|_| std::fs::write(mnt.join("user-data"), user))
        .with_context(|| format!("writing the seed onto {}", part.display()));
    nix::unistd::sync();
    let unmounted = run("umount", &[mnt.display().to_string()]);
    wrote?;
    unmounted?;
    Ok(Some(part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_checked() {
        let ok = json!({"raid": "raid_1", "disks": ["vda", "vdb"], "image_url": "http://10.0.0.1/files/i.img",
                        "image_sha256": "ab".repeat(32), "hostname": "h"});
        assert_eq!(Answer::parse(&ok).unwrap().disks, ["vda", "vdb"]);
        for (k, v) in [
            ("disks", json!(["../etc"])),
            ("image_sha256", json!("abc")),
            ("image_url", json!("")),
            ("raid", json!("raid_6")),
        ] {
            let mut bad = ok.clone();
            bad[k] = v;
            assert!(Answer::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seeds_and_partitions() {
        let a = Answer::parse(&json!({"raid": "no_raid", "disks": ["vda"], "image_url": "http://h/i",
            "image_sha256": "ab".repeat(32), "hostname": "web-1", "password_hash": "$6$salt$hash",
            "ssh_keys": ["ssh-ed25519 AAAA x@y"]}))
        .unwrap();
        let (meta, user) = seed_files(&a, "dcim-task-7");
        assert_eq!(meta, "instance-id: \"dcim-task-7\"\nlocal-hostname: \"web-1\"\n");
        assert!(user.starts_with("#cloud-config\n"), "{user}");
        assert!(user.contains("hashed_passwd: \"$6$salt$hash\""), "{user}");
        assert!(user.contains("      - \"ssh-ed25519 AAAA x@y\"\n"), "{user}");
        assert_eq!(partition(Path::new("/dev/md0"), 2), Path::new("/dev/md0p2"));
        assert_eq!(partition(Path::new("/dev/vda"), 2), Path::new("/dev/vda2"));
        let mut bs = vec![0u8; 512];
        assert_eq!(fat_label(&bs), None);
        bs[0x47..0x52].copy_from_slice(b"CIDATA     ");
        bs[0x52..0x5a].copy_from_slice(b"FAT32   ");
        assert_eq!(fat_label(&bs).as_deref(), Some("CIDATA"));
        bs[0x47..0x52].copy_from_slice(b"CIDATA\0\0\0\0\0");
        assert_eq!(fat_label(&bs).as_deref(), Some("CIDATA"));
    }

    #[test]
    fn mdadm_lines() {
        let m = [PathBuf::from("/dev/vda"), PathBuf::from("/dev/vdb")];
        let md = Path::new("/dev/md0");
        assert_eq!(mdadm_create(RaidLevel::NoRaid, md, &m).unwrap(), None);
        assert_eq!(
            mdadm_create(RaidLevel::Raid1, md, &m).unwrap().unwrap().join(" "),
            "--create /dev/md0 --run --level=1 --metadata=1.0 --raid-devices=2 /dev/vda /dev/vdb"
        );
        assert!(mdadm_create(RaidLevel::Raid5, md, &m).is_err(), "raid_5 over two disks");
        let four: Vec<PathBuf> =
            ["sda", "sdb", "sdc", "sdd"].iter().map(|d| PathBuf::from(format!("/dev/{d}"))).collect();
        assert_eq!(
            mdadm_create(RaidLevel::Raid5, md, &four[..3]).unwrap().unwrap().join(" "),
            "--create /dev/md0 --run --level=5 --metadata=1.0 --raid-devices=3 /dev/sda /dev/sdb /dev/sdc"
        );
        assert_eq!(
            mdadm_create(RaidLevel::Raid10, md, &four).unwrap().unwrap().join(" "),
            "--create /dev/md0 --run --level=10 --metadata=1.0 --raid-devices=4 /dev/sda /dev/sdb /dev/sdc /dev/sdd"
        );
    }

    #[test]
    fn copies_and_hashes() {
        let data = b"abc".repeat(1000);
        let mut out = vec![];
        let mut seen = 0;
        let w = copy_hashed(&mut &data[..], &mut out, &mut |n| seen = n).unwrap();
        assert_eq!((out, w.bytes, seen), (data.clone(), 3000, 3000));
        let expect: String = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(w.sha256, expect);
    }
}
