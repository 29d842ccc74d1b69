//! Hardware inventory from the kernel's own files: `/proc/cpuinfo`, `/proc/meminfo`,
//! `/sys/block`, `/sys/class/net`, `/sys/class/dmi/id` and the raw SMBIOS memory
//! devices under `/sys/firmware/dmi/entries`, plus `smartctl` where it is installed.
//!
//! Reading sysfs rather than running tools keeps the boot image small and the
//! result the same on every distribution's kernel; every function takes the root
//! the files live under, so the unit tests build a fake tree in a temporary
//! directory. The report's shape is the server's `hardware_info` schema
//! (`dcim_core::configuration::HardwareInfo`, whose types it embeds), with a few
//! extra fields (`size_bytes`, `rotational`, `smart`, `operstate`, `system`) that
//! the server accepts and ignores. This module reads and never writes.

use std::fs;
use std::path::Path;
use std::process::Command;

use dcim_core::configuration::{Cpu, Disk, DiskType, Motherboard, Nic};
use serde::Serialize;

/// The `hardware` report's `data`.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub cpu: Cpu,
    pub memory: MemoryReport,
    pub disks: Vec<DiskReport>,
    pub nics: Vec<NicReport>,
    pub motherboard: Motherboard,
    /// The machine as a whole (SMBIOS type 1): the serial on the chassis label.
    pub system: System,
}

/// Installed memory: the SMBIOS memory devices' sizes when the firmware lists them,
/// otherwise what the kernel sees (`MemTotal`, a little less than installed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryReport {
    pub total_mib: Option<u64>,
    /// `MemTotal` in MiB.
    pub visible_mib: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    #[serde(flatten)]
    pub disk: Disk,
    pub size_bytes: u64,
    pub rotational: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wwid: Option<String>,
    /// `smartctl -H`: absent when smartctl is missing or the disk has no SMART.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart: Option<Smart>,
}

/// What `smartctl -H -i -j` says about a disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Smart {
    /// The overall health self-assessment.
    pub passed: bool,
    #[serde(skip)]
    pub serial: Option<String>,
    #[serde(skip)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NicReport {
    #[serde(flatten)]
    pub nic: Nic,
    /// `up`, `down`, `unknown`...
    pub operstate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct System {
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub uuid: Option<String>,
}

/// Reads a small text file, trimmed; `None` when missing, unreadable or empty.
fn read(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Names of the entries of a directory, sorted (so reports do not depend on
/// directory order).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Everything, under `root` (`/` on a real machine). `smart` asks about one disk
/// by its kernel name; pass [`smartctl`] in production.
pub fn collect(root: &Path, smart: &dyn Fn(&str) -> Option<Smart>) -> Inventory {
    let (motherboard, system) = dmi(root);
    Inventory { cpu: cpu(root), memory: memory(root), disks: disks(root, smart), nics: nics(root), motherboard, system }
}

/// CPU model, sockets (distinct `physical id`), cores (distinct physical id +
/// core id) and threads (`processor` entries).
pub fn cpu(root: &Path) -> Cpu {
    let text = fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
    let mut model = None;
    let mut threads = 0u32;
    let mut sockets = std::collections::BTreeSet::new();
    let mut cores = std::collections::BTreeSet::new();
    for block in text.split("\n\n").filter(|b| b.contains("processor")) {
        threads += 1;
        let field = |k: &str| {
            block.lines().find_map(|l| {
                let (key, v) = l.split_once(':')?;
                (key.trim() == k).then(|| v.trim().to_owned())
            })
        };
        if model.is_none() {
            model = field("model name").filter(|m| !m.is_empty());
        }
        let socket = field("physical id").unwrap_or_default();
        let core = field("core id").unwrap_or_else(|| format!("thread{threads}"));
        sockets.insert(socket.clone());
        cores.insert((socket, core));
    }
    if threads == 0 {
        return Cpu { model, ..Cpu::default() };
    }
    Cpu { model, sockets: Some(sockets.len() as u32), cores: Some(cores.len() as u32), threads: Some(threads) }
}

/// Installed RAM from the SMBIOS type 17 (memory device) entries, and `MemTotal`.
pub fn memory(root: &Path) -> MemoryReport {
    let entries = root.join("sys/firmware/dmi/entries");
    let mut installed = 0u64;
    for e in names(&entries).iter().filter(|n| n.starts_with("17-")) {
        if let Ok(raw) = fs::read(entries.join(e).join("raw")) {
            installed += memory_device_mib(&raw).unwrap_or(0);
        }
    }
    let visible = fs::read_to_string(root.join("proc/meminfo")).ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024)
    });
    MemoryReport { total_mib: if installed > 0 { Some(installed) } else { visible }, visible_mib: visible }
}

/// The size of one SMBIOS memory device structure (type 17) in MiB; `None` for an
/// empty slot or an unknown size. SMBIOS 3.x, §7.18: word at 0x0C, in KiB when bit
/// 15 is set, 0x7FFF = see the extended size (dword at 0x1C, MiB).
fn memory_device_mib(raw: &[u8]) -> Option<u64> {
    if raw.len() < 0x0E || raw[0] != 17 || (raw[1] as usize) < 0x0E {
        return None;
    }
    let size = u16::from_le_bytes([raw[0x0C], raw[0x0D]]);
    match size {
        0 | 0xFFFF => None,
        0x7FFF if raw[1] as usize >= 0x20 && raw.len() >= 0x20 => {
            let ext = u32::from_le_bytes([raw[0x1C], raw[0x1D], raw[0x1E], raw[0x1F]]) & 0x7FFF_FFFF;
            Some(u64::from(ext))
        }
        0x7FFF => None,
        s if s & 0x8000 != 0 => Some(u64::from(s & 0x7FFF) / 1024),
        s => Some(u64::from(s)),
    }
}

/// Block devices that are not disks: loop, RAM, optical, floppy, device-mapper, RAID, network.
fn is_disk_name(name: &str) -> bool {
    !["loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd"].iter().any(|p| name.starts_with(p))
}

/// The whole disks under `/sys/block` that can be wiped: real ones with a size.
pub fn disk_names(root: &Path) -> Vec<String> {
    let block = root.join("sys/block");
    names(&block)
        .into_iter()
        .filter(|n| is_disk_name(n))
        .filter(|n| read(&block.join(n).join("hidden")).as_deref() != Some("1")) // NVMe multipath paths
        .filter(|n| read(&block.join(n).join("size")).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) > 0)
        .collect()
}

/// A disk's size in bytes (`size` counts 512-byte sectors whatever the block size).
pub fn disk_size(root: &Path, name: &str) -> u64 {
    read(&root.join("sys/block").join(name).join("size")).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) * 512
}

/// The serial from the SCSI unit serial number VPD page (0x80): SATA and SAS disks.
fn vpd_serial(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = u16::from_be_bytes([page[2], page[3]]) as usize;
    let s = String::from_utf8_lossy(page.get(4..4 + len).unwrap_or(&page[4..]));
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_owned())
}

pub fn disks(root: &Path, smart: &dyn Fn(&str) -> Option<Smart>) -> Vec<DiskReport> {
    let block = root.join("sys/block");
    disk_names(root)
        .into_iter()
        .map(|name| {
            let d = block.join(&name);
            let size_bytes = disk_size(root, &name);
            let rotational = read(&d.join("queue/rotational")).as_deref() == Some("1");
            let kind = if name.starts_with("nvme") {
                DiskType::Nvme
            } else if rotational {
                DiskType::Hdd
            } else {
                DiskType::Ssd
            };
            let health = smart(&name);
            let wwid = read(&d.join("wwid")).or_else(|| read(&d.join("device/wwid")));
            let serial = read(&d.join("serial"))
                .or_else(|| read(&d.join("device/serial")))
                .or_else(|| fs::read(d.join("device/vpd_pg80")).ok().and_then(|p| vpd_serial(&p)))
                .or_else(|| health.as_ref().and_then(|h| h.serial.clone()))
                .or_else(|| wwid.clone());
            let model = read(&d.join("device/model")).or_else(|| health.as_ref().and_then(|h| h.model.clone()));
            DiskReport {
                disk: Disk {
                    name: Some(name),
                    // decimal GB rounded down, as sold: a "1.92 TB" SSD holds 1 920 383 410 176 bytes
                    size_gb: Some(size_bytes / 1_000_000_000),
                    kind: Some(kind),
                    serial,
                    model,
                },
                size_bytes,
                rotational,
                wwid,
                smart: health,
            }
        })
        .collect()
}

/// Physical NICs (those with a `device`): name, MAC, carrier, operstate, driver.
pub fn nics(root: &Path) -> Vec<NicReport> {
    let net = root.join("sys/class/net");
    names(&net)
        .into_iter()
        .filter(|n| n != "lo" && net.join(n).join("device").exists())
        .map(|name| {
            let n = net.join(&name);
            let driver = fs::read_link(n.join("device/driver"))
                .ok()
                .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
            NicReport {
                nic: Nic {
                    mac: read(&n.join("address")),
                    // reading `carrier` of an interface that is down fails: no link
                    link: Some(read(&n.join("carrier")).as_deref() == Some("1")),
                    name: Some(name),
                },
                operstate: read(&n.join("operstate")).unwrap_or_else(|| "unknown".into()),
                driver,
            }
        })
        .collect()
}

/// Firmware placeholders that mean "no value".
fn dmi_value(root: &Path, key: &str) -> Option<String> {
    let v = read(&root.join("sys/class/dmi/id").join(key))?;
    let lower = v.to_ascii_lowercase();
    let junk = ["to be filled by o.e.m.", "default string", "not specified", "none", "system serial number", "0"];
    (!junk.contains(&lower.as_str())).then_some(v)
}

/// The board (SMBIOS type 2) and the system (type 1). Where the firmware leaves
/// the board fields empty (QEMU does), the system's vendor, product and serial
/// stand in: they identify the same machine.
pub fn dmi(root: &Path) -> (Motherboard, System) {
    let system = System {
        vendor: dmi_value(root, "sys_vendor"),
        product: dmi_value(root, "product_name"),
        serial: dmi_value(root, "product_serial"),
        uuid: dmi_value(root, "product_uuid"),
    };
    let board = Motherboard {
        vendor: dmi_value(root, "board_vendor").or_else(|| system.vendor.clone()),
        model: dmi_value(root, "board_name").or_else(|| system.product.clone()),
        serial: dmi_value(root, "board_serial").or_else(|| system.serial.clone()),
    };
    (board, system)
}

/// Where smartctl is, if the image has it.
fn smartctl_path() -> Option<&'static str> {
    ["/bin/smartctl", "/sbin/smartctl", "/usr/sbin/smartctl", "/usr/bin/smartctl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// `smartctl -H -i -j /dev/NAME`: health, serial and model. `None` when smartctl
/// is missing or says nothing about health (virtual disks, USB bridges).
pub fn smartctl(name: &str) -> Option<Smart> {
    let out = Command::new(smartctl_path()?).args(["-H", "-i", "-j"]).arg(format!("/dev/{name}")).output().ok()?;
    parse_smartctl(&out.stdout)
}

fn parse_smartctl(json: &[u8]) -> Option<Smart> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let passed = v["smart_status"]["passed"].as_bool()?;
    let s = |k: &str| v[k].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    Some(Smart { passed, serial: s("serial_number"), model: s("model_name") })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dcim_core::configuration::HardwareInfo;
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "dcim-agent-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        pub fn put(&self, rel: &str, content: impl AsRef<[u8]>) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\n\
        physical id\t: 0\ncore id\t\t: 0\ncpu cores\t: 2\n\n\
        processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n\
        processor\t: 2\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\nphysical id\t: 0\ncore id\t\t: 1\n\n\
        processor\t: 3\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\nphysical id\t: 1\ncore id\t\t: 0\n\n";

    fn memory_device(size: u16, ext: u32) -> Vec<u8> {
        let mut raw = vec![0u8; 0x28];
        raw[0] = 17;
        raw[1] = 0x28;
        raw[0x0C..0x0E].copy_from_slice(&size.to_le_bytes());
        raw[0x1C..0x20].copy_from_slice(&ext.to_le_bytes());
        raw
    }

    /// A two-socket server with an NVMe, a SATA SSD, a SATA HDD, a CD, a loop device and two NICs.
    pub fn fake_server() -> TempDir {
        let t = TempDir::new("inv");
        t.put("proc/cpuinfo", CPUINFO);
        t.put("proc/meminfo", "MemTotal:       65742332 kB\nMemFree:  1 kB\n");
        t.put("sys/firmware/dmi/entries/17-0/raw", memory_device(16384, 0));
        t.put("sys/firmware/dmi/entries/17-1/raw", memory_device(0x7FFF, 49152)); // 48 GiB: only the extended size can say it
        t.put("sys/firmware/dmi/entries/17-2/raw", memory_device(0, 0)); // empty slot
        t.put("sys/firmware/dmi/entries/16-0/raw", [16u8, 4, 0, 0]);
        // NVMe: serial on the controller, wwid on the namespace
        t.put("sys/block/nvme0n1/size", "2000409264\n");
        t.put("sys/block/nvme0n1/queue/rotational", "0\n");
        t.put("sys/block/nvme0n1/wwid", "eui.0025388b91b2c0a1\n");
        t.put("sys/block/nvme0n1/device/serial", "S4EWNX0N123456    \n");
        t.put("sys/block/nvme0n1/device/model", "Samsung SSD 970 EVO Plus 1TB\n");
        // SATA SSD: serial only in VPD page 0x80
        t.put("sys/block/sda/size", "3750748848\n");
        t.put("sys/block/sda/queue/rotational", "0\n");
        t.put("sys/block/sda/device/model", "INTEL SSDSC2KB01\n");
        let mut pg80 = vec![0u8, 0x80, 0, 20];
        pg80.extend_from_slice(b"  PHYF812345671P9DGN");
        pg80.push(0);
        t.put("sys/block/sda/device/vpd_pg80", pg80);
        // SATA HDD: no serial in sysfs; smartctl knows it
        t.put("sys/block/sdb/size", "7814037168\n");
        t.put("sys/block/sdb/queue/rotational", "1\n");
        t.put("sys/block/sr0/size", "2097151\n");
        t.put("sys/block/loop0/size", "0\n");
        t.put("sys/block/nvme0c0n1/size", "2000409264\n");
        t.put("sys/block/nvme0c0n1/hidden", "1\n");
        for (n, mac, carrier) in [("eno1", "0c:c4:7a:00:00:01", Some("1")), ("eno2", "0c:c4:7a:00:00:02", None)] {
            t.put(&format!("sys/class/net/{n}/address"), format!("{mac}\n"));
            t.put(&format!("sys/class/net/{n}/device/vendor"), "0x8086\n");
            t.put(&format!("sys/class/net/{n}/operstate"), if carrier.is_some() { "up\n" } else { "down\n" });
            if let Some(c) = carrier {
                t.put(&format!("sys/class/net/{n}/carrier"), c);
            }
        }
        t.put("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        t.put("sys/class/net/br0/address", "0c:c4:7a:00:00:03\n"); // virtual: no device
        t.put("sys/class/dmi/id/board_vendor", "Supermicro\n");
        t.put("sys/class/dmi/id/board_name", "X11DPi-N\n");
        t.put("sys/class/dmi/id/board_serial", "ZM19AS0123\n");
        t.put("sys/class/dmi/id/sys_vendor", "Supermicro\n");
        t.put("sys/class/dmi/id/product_name", "SYS-6029P\n");
        t.put("sys/class/dmi/id/product_serial", "S123456X\n");
        t.put("sys/class/dmi/id/product_uuid", "00000000-0000-0000-0000-0cc47a000001\n");
        t
    }

    pub fn fake_smart(name: &str) -> Option<Smart> {
        (name == "sdb").then(|| Smart {
            passed: false,
            serial: Some("WD-WCC4N0123456".into()),
            model: Some("WDC WD40".into()),
        })
    }

    #[test]
    fn inventories_a_fake_server() {
        let t = fake_server();
        let inv = collect(&t.0, &fake_smart);
        let cpu = &inv.cpu;
        assert_eq!(cpu.model.as_deref(), Some("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"));
        assert_eq!((cpu.sockets, cpu.cores, cpu.threads), (Some(2), Some(3), Some(4)));
        assert_eq!((inv.memory.total_mib, inv.memory.visible_mib), (Some(65536), Some(64201)));

        let d: Vec<_> = inv.disks.iter().map(|d| (d.disk.name.as_deref().unwrap(), d)).collect();
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), ["nvme0n1", "sda", "sdb"]);
        let (nvme, ssd, hdd) = (d[0].1, d[1].1, d[2].1);
        assert_eq!(nvme.disk.kind, Some(DiskType::Nvme));
        assert_eq!(nvme.size_bytes, 2000409264 * 512);
        assert_eq!(nvme.disk.size_gb, Some(1024));
        assert_eq!(nvme.disk.serial.as_deref(), Some("S4EWNX0N123456"));
        assert_eq!(nvme.wwid.as_deref(), Some("eui.0025388b91b2c0a1"));
        assert_eq!(nvme.disk.model.as_deref(), Some("Samsung SSD 970 EVO Plus 1TB"));
        assert_eq!((ssd.disk.kind, ssd.disk.size_gb), (Some(DiskType::Ssd), Some(1920)));
        assert_eq!(ssd.disk.serial.as_deref(), Some("PHYF812345671P9DGN"));
        assert_eq!((hdd.disk.kind, hdd.disk.size_gb, hdd.rotational), (Some(DiskType::Hdd), Some(4000), true));
        assert_eq!(hdd.disk.serial.as_deref(), Some("WD-WCC4N0123456"));
        assert_eq!(hdd.smart.as_ref().map(|s| s.passed), Some(false));
        assert!(nvme.smart.is_none());

        let n: Vec<_> = inv
            .nics
            .iter()
            .map(|n| {
                (
                    n.nic.name.as_deref().unwrap(),
                    n.nic.mac.as_deref().unwrap(),
                    n.nic.link.unwrap(),
                    n.operstate.as_str(),
                )
            })
            .collect();
        assert_eq!(n, [("eno1", "0c:c4:7a:00:00:01", true, "up"), ("eno2", "0c:c4:7a:00:00:02", false, "down")]);

        assert_eq!(inv.motherboard.vendor.as_deref(), Some("Supermicro"));
        assert_eq!(inv.motherboard.model.as_deref(), Some("X11DPi-N"));
        assert_eq!(inv.motherboard.serial.as_deref(), Some("ZM19AS0123"));
        assert_eq!(inv.system.serial.as_deref(), Some("S123456X"));
    }

    #[test]
    fn the_report_is_the_servers_hardware_info() {
        let t = fake_server();
        let v = serde_json::to_value(collect(&t.0, &fake_smart)).unwrap();
        let hw: HardwareInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            dcim_core::configuration::generate(&hw).as_deref(),
            Some("2xGold-6130-64Gb-1024NVMe-1920SSD-4000HDD")
        );
        assert_eq!(hw.disks[1].serial.as_deref(), Some("PHYF812345671P9DGN"));
        assert_eq!(hw.nics[0].link, Some(true));
        assert_eq!(v["disks"][0]["type"], "NVMe");
        assert_eq!(v["disks"][2]["smart"], serde_json::json!({"passed": false}));
        assert_eq!(v["memory"]["total_mib"], 65536);
    }

    #[test]
    fn board_fields_fall_back_to_the_system_and_placeholders_are_dropped() {
        let t = TempDir::new("dmi");
        t.put("sys/class/dmi/id/board_vendor", "To Be Filled By O.E.M.\n");
        t.put("sys/class/dmi/id/sys_vendor", "VirtualDC\n");
        t.put("sys/class/dmi/id/product_name", "vdc-node\n");
        t.put("sys/class/dmi/id/product_serial", "VDC-SN-0001\n");
        let (b, s) = dmi(&t.0);
        assert_eq!(
            (b.vendor.as_deref(), b.model.as_deref(), b.serial.as_deref()),
            (Some("VirtualDC"), Some("vdc-node"), Some("VDC-SN-0001"))
        );
        assert_eq!(s.uuid, None);
        // no SMBIOS memory devices: MemTotal
        t.put("proc/meminfo", "MemTotal:         462240 kB\n");
        assert_eq!(memory(&t.0).total_mib, Some(451));
        // an empty tree is an empty (but valid) inventory
        let inv = collect(&TempDir::new("empty").0, &|_| None);
        assert!(inv.disks.is_empty() && inv.nics.is_empty() && inv.cpu.model.is_none());
    }

    #[test]
    fn smbios_memory_sizes() {
        assert_eq!(memory_device_mib(&memory_device(512, 0)), Some(512));
        assert_eq!(memory_device_mib(&memory_device(0x8000 | 2048, 0)), Some(2));
        assert_eq!(memory_device_mib(&memory_device(0x7FFF, 131072)), Some(131072));
        assert_eq!(memory_device_mib(&memory_device(0xFFFF, 0)), None);
        assert_eq!(memory_device_mib(&[17, 4, 0, 0]), None);
    }

    #[test]
    fn smartctl_json() {
        let out = br#"{"json_format_version":[1,0],"model_name":"WDC WD40EFRX","serial_number":"WD-WCC4N0123456",
            "smart_status":{"passed":true}}"#;
        let s = parse_smartctl(out).unwrap();
        assert_eq!((s.passed, s.serial.as_deref()), (true, Some("WD-WCC4N0123456")));
        // a virtual disk: smartctl answers, but without a health status
        assert_eq!(parse_smartctl(br#"{"smartctl":{"exit_status":4},"device":{"name":"/dev/vda"}}"#), None);
        assert_eq!(parse_smartctl(b"not json"), None);
    }
}
