//! Disk erasure: `simple` clears what makes a disk recognisable (partition tables,
//! RAID, LVM and filesystem signatures), `full` overwrites every byte with zeroes.
//!
//! Simple zeroes the first and last MiB of every partition and of the whole disk
//! (GPT keeps a backup at the end; md 0.90/1.0 and ZFS keep labels there too) and
//! runs `wipefs -a` first when the image has it. Full lets an NVMe drive erase
//! itself (`nvme format --ses=1`, a user data erase) when its controller supports
//! Format NVM, which is faster and reaches blocks a host cannot (spare area);
//! otherwise, or if that fails, it writes zeroes from the first byte to the last
//! and syncs. ATA/SAS secure erase is not used yet. The report's `method` says which
//! was done, so nobody assumes more than that.
//!
//! The functions work on any path (a block device in production, a plain file in
//! the tests), take the size from the caller, and only write where asked.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::cmdline::ClearMode;

pub const MIB: u64 = 1024 * 1024;
/// How much a full wipe writes per call.
const CHUNK: u64 = 4 * MIB;
/// A full wipe syncs (and reports progress) after this much.
const SYNC_EVERY: u64 = 1024 * MIB;

/// What was done to one disk.
#[derive(Debug, Clone, Serialize)]
pub struct Wiped {
    pub name: String,
    pub size_bytes: u64,
    /// In words, as the fake agent says it: `signatures, first and last MiB` or `every byte`.
    pub wiped: &'static str,
    /// How: `zeroes`, or `nvme format (user data erase)`.
    pub method: &'static str,
    /// Why the drive's own erase was not used, when it was tried and failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub bytes_written: u64,
    /// Partitions whose first and last MiB were zeroed too.
    pub partitions: Vec<String>,
    /// Whether `wipefs -a` ran (it is not in every image).
    pub wipefs: bool,
    pub seconds: f64,
}

/// Zeroes `[offset, offset + len)` of an open device, in chunks.
fn zero(f: &fs::File, offset: u64, len: u64, on_chunk: &mut dyn FnMut(u64)) -> std::io::Result<()> {
    let buf = vec![0u8; CHUNK.min(len.max(1)) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64);
        f.write_all_at(&buf[..n as usize], offset + done)?;
        done += n;
        on_chunk(n);
    }
    Ok(())
}

/// Zeroes the first and the last MiB of `path` (all of it when it is smaller than 2 MiB).
pub fn wipe_ends(path: &Path, size: u64) -> anyhow::Result<u64> {
    let f = OpenOptions::new().write(true).open(path).with_context(|| format!("opening {}", path.display()))?;
    let head = size.min(MIB);
    zero(&f, 0, head, &mut |_| {}).with_context(|| format!("zeroing the start of {}", path.display()))?;
    let tail_start = size.saturating_sub(MIB).max(head);
    zero(&f, tail_start, size - tail_start, &mut |_| {})
        .with_context(|| format!("zeroing the end of {}", path.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    Ok(head + (size - tail_start))
}

/// Zeroes every byte of `path`; `progress(done, size)` is called after each sync.
pub fn wipe_all(path: &Path, size: u64, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<u64> {
    let f = OpenOptions::new().write(true).open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut done = 0u64;
    let mut since_sync = 0u64;
    let mut err = None;
    let r = zero(&f, 0, size, &mut |n| {
        done += n;
        since_sync += n;
        if since_sync >= SYNC_EVERY && err.is_none() {
            since_sync = 0;
            match f.sync_data() {
                Ok(()) => progress(done, size),
                Err(e) => err = Some(e),
            }
        }
    });
    r.and(err.map_or(Ok(()), Err)).with_context(|| format!("zeroing {}", path.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    progress(size, size);
    Ok(size)
}

/// The partitions of a disk as sysfs lists them (`/sys/block/sda/sda1`), with sizes in bytes.
pub fn partitions(root: &Path, disk: &str) -> Vec<(String, u64)> {
    let dir = root.join("sys/block").join(disk);
    let mut v: Vec<(String, u64)> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let p = dir.join(&name);
                p.join("partition").exists().then_some(())?;
                let sectors: u64 = fs::read_to_string(p.join("size")).ok()?.trim().parse().ok()?;
                Some((name, sectors * 512))
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `wipefs -a PATH` when wipefs is installed; `Ok(false)` when it is not.
fn wipefs(path: &Path) -> anyhow::Result<bool> {
    let Some(bin) = ["/sbin/wipefs", "/usr/sbin/wipefs", "/bin/wipefs"].into_iter().find(|p| Path::new(p).exists())
    else {
        return Ok(false);
    };
    let out = Command::new(bin).arg("-a").arg(path).output().with_context(|| format!("running {bin}"))?;
    anyhow::ensure!(
        out.status.success(),
        "wipefs -a {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(true)
}

fn nvme_cli() -> Option<&'static str> {
    ["/bin/nvme", "/sbin/nvme", "/usr/sbin/nvme"].into_iter().find(|p| Path::new(p).exists())
}

/// Whether an `nvme id-ctrl -o json` answer says the controller supports Format NVM (OACS bit 1).
fn supports_format(id_ctrl: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(id_ctrl)
        .ok()
        .and_then(|v| v["oacs"].as_u64())
        .is_some_and(|o| o & 2 != 0)
}

/// Lets an NVMe namespace erase itself: `Ok(false)` when nvme-cli is missing or
/// the controller cannot format, an error when it tried and failed.
fn nvme_format(dev: &Path) -> anyhow::Result<bool> {
    let Some(bin) = nvme_cli() else { return Ok(false) };
    let id = Command::new(bin).arg("id-ctrl").arg(dev).args(["-o", "json"]).output().context("running nvme id-ctrl")?;
    if !id.status.success() || !supports_format(&id.stdout) {
        return Ok(false);
    }
    let out = Command::new(bin)
        .arg("format")
        .arg(dev)
        .args(["--ses=1", "--force"])
        .output()
        .context("running nvme format")?;
    anyhow::ensure!(
        out.status.success(),
        "nvme format {} --ses=1 failed: {}",
        dev.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(true)
}

/// Wipes one disk `name` of `size` bytes whose device node is `dev_dir/name`
/// (`/dev` in production); partitions come from `root`'s sysfs.
pub fn wipe_disk(
    root: &Path,
    dev_dir: &Path,
    name: &str,
    size: u64,
    mode: ClearMode,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Wiped> {
    let t = Instant::now();
    let dev = dev_dir.join(name);
    let parts = partitions(root, name);
    let mut written = 0;
    let mut ran_wipefs = false;
    let mut method = "zeroes";
    let mut note = None;
    let wiped = match mode {
        ClearMode::None => "nothing",
        ClearMode::Simple => {
            for (p, _) in &parts {
                ran_wipefs |= wipefs(&dev_dir.join(p))?;
            }
            ran_wipefs |= wipefs(&dev)?;
            for (p, psize) in &parts {
                written += wipe_ends(&dev_dir.join(p), *psize)?;
            }
            written += wipe_ends(&dev, size)?;
            "signatures, first and last MiB"
        }
        ClearMode::Full => {
            let formatted = if name.starts_with("nvme") {
                nvme_format(&dev).unwrap_or_else(|e| {
                    note = Some(format!("{e:#}; wrote zeroes instead"));
                    false
                })
            } else {
                false
            };
            if formatted {
                method = "nvme format (user data erase)";
                progress(size, size);
            } else {
                written = wipe_all(&dev, size, progress)?;
            }
            "every byte"
        }
    };
    Ok(Wiped {
        name: name.to_owned(),
        size_bytes: size,
        wiped,
        method,
        note,
        bytes_written: written,
        partitions: if mode == ClearMode::Simple { parts.into_iter().map(|p| p.0).collect() } else { vec![] },
        wipefs: ran_wipefs,
        seconds: (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::tests::TempDir;

    fn disk(t: &TempDir, name: &str, size: u64) -> std::path::PathBuf {
        let p = t.0.join("dev").join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, vec![0xa5u8; size as usize]).unwrap();
        p
    }

    #[test]
    fn simple_zeroes_the_ends_of_the_disk_and_its_partitions() {
        let t = TempDir::new("wipe");
        let size = 8 * MIB;
        let d = disk(&t, "sdz", size);
        // sdz1 covers 1..5 MiB, sdz2 5..7 MiB (as files standing in for partition nodes)
        disk(&t, "sdz1", 4 * MIB);
        disk(&t, "sdz2", 2 * MIB);
        t.put("sys/block/sdz/size", format!("{}\n", size / 512));
        t.put("sys/block/sdz/sdz1/partition", "1\n");
        t.put("sys/block/sdz/sdz1/size", format!("{}\n", 4 * MIB / 512));
        t.put("sys/block/sdz/sdz2/partition", "2\n");
        t.put("sys/block/sdz/sdz2/size", format!("{}\n", 2 * MIB / 512));
        t.put("sys/block/sdz/queue/rotational", "1\n"); // not a partition
        let w = wipe_disk(&t.0, &t.0.join("dev"), "sdz", size, ClearMode::Simple, &mut |_, _| {}).unwrap();
        assert_eq!(w.partitions, ["sdz1", "sdz2"]);
        assert_eq!(w.bytes_written, 2 * MIB + 2 * MIB + 2 * MIB);
        assert_eq!((w.wiped, w.method), ("signatures, first and last MiB", "zeroes"));
        let b = fs::read(&d).unwrap();
        assert!(b[..MIB as usize].iter().all(|&x| x == 0));
        assert!(b[(size - MIB) as usize..].iter().all(|&x| x == 0));
        assert!(b[MIB as usize..(size - MIB) as usize].iter().all(|&x| x == 0xa5), "the middle survives");
        let p1 = fs::read(t.0.join("dev/sdz1")).unwrap();
        assert!(p1[..MIB as usize].iter().all(|&x| x == 0) && p1[3 * MIB as usize..].iter().all(|&x| x == 0));
        assert!(p1[MIB as usize..3 * MIB as usize].iter().all(|&x| x == 0xa5));
        let p2 = fs::read(t.0.join("dev/sdz2")).unwrap();
        assert!(p2.len() as u64 == 2 * MIB && p2.iter().all(|&x| x == 0), "a 2 MiB partition is zeroed whole");
    }

    #[test]
    fn simple_on_a_tiny_disk_and_full_on_any() {
        let t = TempDir::new("wipe-full");
        let d = disk(&t, "vdz", MIB + 4096);
        assert_eq!(wipe_ends(&d, MIB + 4096).unwrap(), MIB + 4096);
        assert!(fs::read(&d).unwrap().iter().all(|&x| x == 0));

        let size = 9 * MIB + 512;
        let d = disk(&t, "vdy", size);
        let mut seen = vec![];
        let w = wipe_disk(&t.0, &t.0.join("dev"), "vdy", size, ClearMode::Full, &mut |done, total| {
            seen.push((done, total))
        })
        .unwrap();
        assert_eq!((w.bytes_written, w.wiped), (size, "every byte"));
        assert_eq!(seen.last(), Some(&(size, size)));
        let b = fs::read(&d).unwrap();
        assert_eq!(b.len() as u64, size, "a wipe never grows the device");
        assert!(b.iter().all(|&x| x == 0));
    }

    #[test]
    fn format_support_from_id_ctrl() {
        assert!(supports_format(br#"{"vid":6966,"oacs":23,"fna":0}"#));
        assert!(!supports_format(br#"{"vid":6966,"oacs":1}"#));
        assert!(!supports_format(b"Error: not an NVMe device"));
    }

    #[test]
    fn a_missing_device_is_an_error_that_names_it() {
        let t = TempDir::new("wipe-missing");
        let e = wipe_disk(&t.0, &t.0.join("dev"), "sdq", MIB, ClearMode::Simple, &mut |_, _| {}).unwrap_err();
        assert!(format!("{e:#}").contains("sdq"), "{e:#}");
    }
}
