//! The server `configuration` string, derived from its `hardware_info`.
//!
//! Billing systems group free servers by their `configuration` string
//! (`i9-9900K-64Gb-2x1024NVMe`), so it must be a pure, documented and
//! deterministic function of the hardware: the same hardware always yields the
//! same string, whatever order the disks were reported in. This module holds
//! the typed `hardware_info` schema and that function, [`generate`].
//!
//! What this module must NOT do: no I/O, no SQL, no clock or randomness. It
//! neither collects hardware (drivers do) nor stores the result (the store
//! does); it only maps a [`HardwareInfo`] value to a string.
//!
//! # `hardware_info` schema (dcim's own)
//!
//! ```json
//! { "cpu": {"model": "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz", "sockets": 1, "cores": 8, "threads": 16},
//!   "memory": {"total_mib": 65536},
//!   "disks": [{"name": "nvme0n1", "size_gb": 1024, "type": "NVMe", "serial": "S4EWNX0N", "model": "Samsung 970"}],
//!   "nics": [{"name": "eth0", "mac": "52:54:00:12:34:56", "link": true}],
//!   "motherboard": {"vendor": "Supermicro", "model": "X11SCH-F", "serial": "ZM19AS0123"} }
//! ```
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `cpu.model` | string | model string as reported by the CPU (`/proc/cpuinfo` "model name") |
//! | `cpu.sockets` | integer | populated CPU sockets; each socket holds one such CPU |
//! | `cpu.cores`, `cpu.threads` | integer | total physical cores / hardware threads |
//! | `memory.total_mib` | integer | installed RAM in MiB |
//! | `disks[].name` | string | kernel device name (`sda`, `nvme0n1`) |
//! | `disks[].size_gb` | integer | capacity in (decimal) gigabytes, as sold: 1920, 3840 |
//! | `disks[].type` | `"HDD"` \| `"SSD"` \| `"NVMe"` | media / interface kind (lower-case accepted on input) |
//! | `disks[].serial`, `disks[].model` | string | identification |
//! | `nics[].name`, `nics[].mac` | string | interface name and MAC address |
//! | `nics[].link` | bool | whether the link was up when inventoried |
//! | `motherboard.vendor`, `.model`, `.serial` | string | board identification |
//!
//! Every field is optional: a missing or `null` object, array or field is
//! accepted and simply absent, so partial inventories still parse. Unknown
//! extra fields are ignored (and not preserved on re-serialization).
//!
//! # Configuration string
//!
//! `generate` joins up to three parts with `-`, skipping any that is missing:
//!
//! 1. **CPU**: [`cpu_short_name`] of `cpu.model`, prefixed with `<sockets>x`
//!    when `cpu.sockets` > 1 (`2xGold-6130`).
//! 2. **RAM**: `<round(total_mib / 1024)>Gb` (`64Gb`), halves rounded up;
//!    skipped when that is 0.
//! 3. **Disks**: disks grouped by (`size_gb`, `type`); each group is
//!    `<N>x<size><TYPE>` with `<N>x` omitted when N = 1 (`2x1024NVMe`,
//!    `1920SSD`). Groups are ordered by size ascending, then type
//!    (HDD < SSD < NVMe; a disk without a type sorts first and renders as
//!    just its size). Disks without a size, or of size 0, are ignored.
//!
//! When no part is present, there is no configuration (`None`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A server's hardware inventory, as stored in its `hardware_info` column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HardwareInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(deserialize_with = "null_as_default")]
    pub disks: Vec<Disk>,
    #[serde(deserialize_with = "null_as_default")]
    pub nics: Vec<Nic>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motherboard: Option<Motherboard>,
}

/// The CPU model and count. `sockets` CPUs of this `model` are installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

/// Installed memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_mib: Option<u64>,
}

/// One disk. The JSON key `type` is the Rust field `kind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u64>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<DiskType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Disk media kind. The declaration order is the sort order used in the
/// configuration string: HDD < SSD < NVMe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DiskType {
    #[serde(rename = "HDD", alias = "hdd", alias = "Hdd")]
    Hdd,
    #[serde(rename = "SSD", alias = "ssd", alias = "Ssd")]
    Ssd,
    #[serde(rename = "NVMe", alias = "nvme", alias = "NVME", alias = "Nvme")]
    Nvme,
}

impl DiskType {
    /// The spelling used in JSON and in configuration strings.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskType::Hdd => "HDD",
            DiskType::Ssd => "SSD",
            DiskType::Nvme => "NVMe",
        }
    }
}

impl fmt::Display for DiskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Nic {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<bool>,
}

/// Motherboard identification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Motherboard {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// Accepts `null` where a collection is expected and treats it as empty.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Vendor and family words dropped from CPU model strings (case-insensitive).
const CPU_NOISE_WORDS: [&str; 6] = ["intel", "amd", "core", "xeon", "cpu", "processor"];

/// Shortens a CPU model string to the part that identifies it.
///
/// Drops `(R)`, `(TM)` (any case, also `®`/`™`), everything from `@` on,
/// the word `with` and everything after it (`with Radeon Graphics`), the words
/// `Intel`, `AMD`, `Core`, `Xeon`, `CPU`, `Processor` and any `N-Core` token
/// (`16-Core`, also spelled-out `Eight-Core`), then joins the remaining words
/// with `-`. Characters other than ASCII letters, digits, `-`, `_`, `.` and
/// `+` act as word separators, so the result is always safe to embed.
///
/// `Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz` → `i9-9900K`;
/// `AMD EPYC 7502P 32-Core Processor` → `EPYC-7502P`.
pub fn cpu_short_name(model: &str) -> String {
    let before_at = model.split('@').next().unwrap_or_default();
    let cleaned = remove_marks(before_at);
    let cleaned: String = cleaned
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+') { c } else { ' ' })
        .collect();

    cleaned
        .split_whitespace()
        .map(|word| word.trim_matches('-'))
        .take_while(|word| !word.eq_ignore_ascii_case("with"))
        .filter(|word| !word.is_empty())
        .filter(|word| !CPU_NOISE_WORDS.iter().any(|n| word.eq_ignore_ascii_case(n)))
        .filter(|word| !is_n_core(word))
        .collect::<Vec<_>>()
        .join("-")
}

/// Removes `(R)` and `(TM)` in any case.
fn remove_marks(s: &str) -> String {
    const MARKS: [&str; 2] = ["(r)", "(tm)"];
    let lower = s.to_ascii_lowercase(); // same byte offsets as `s`
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if let Some(mark) = MARKS.iter().find(|m| lower[i..].starts_with(*m)) {
            i += mark.len();
        } else {
            let c = s[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `16-Core`, `Eight-Core`, ... (a non-empty prefix followed by `-Core`).
fn is_n_core(word: &str) -> bool {
    const SUFFIX: &str = "-core";
    word.len() > SUFFIX.len()
        && word.is_char_boundary(word.len() - SUFFIX.len())
        && word[word.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX)
}

/// Builds the configuration string for `hw`, or `None` when there is no CPU
/// model, no memory and no disk to describe. See the module documentation for
/// the exact rules.
pub fn generate(hw: &HardwareInfo) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();

    if let Some(cpu) = &hw.cpu {
        let name = cpu.model.as_deref().map(cpu_short_name).unwrap_or_default();
        if !name.is_empty() {
            match cpu.sockets {
                Some(n) if n > 1 => parts.push(format!("{n}x{name}")),
                _ => parts.push(name),
            }
        }
    }

    if let Some(mib) = hw.memory.as_ref().and_then(|m| m.total_mib) {
        let gib = mib / 1024 + u64::from(mib % 1024 >= 512);
        if gib > 0 {
            parts.push(format!("{gib}Gb"));
        }
    }

    let mut groups: BTreeMap<(u64, Option<DiskType>), usize> = BTreeMap::new();
    for disk in &hw.disks {
        if let Some(size) = disk.size_gb.filter(|&s| s > 0) {
            *groups.entry((size, disk.kind)).or_default() += 1;
        }
    }
    for ((size, kind), count) in groups {
        let count = if count > 1 { format!("{count}x") } else { String::new() };
        let kind = kind.map(DiskType::as_str).unwrap_or_default();
        parts.push(format!("{count}{size}{kind}"));
    }

    if parts.is_empty() { None } else { Some(parts.join("-")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(model: &str, sockets: u32) -> Option<Cpu> {
        Some(Cpu { model: Some(model.to_owned()), sockets: Some(sockets), ..Cpu::default() })
    }

    fn mem_gib(gib: u64) -> Option<Memory> {
        Some(Memory { total_mib: Some(gib * 1024) })
    }

    fn disk(size_gb: u64, kind: DiskType) -> Disk {
        Disk { size_gb: Some(size_gb), kind: Some(kind), ..Disk::default() }
    }

    fn hw(cpu: Option<Cpu>, memory: Option<Memory>, disks: Vec<Disk>) -> HardwareInfo {
        HardwareInfo { cpu, memory, disks, ..HardwareInfo::default() }
    }

    #[test]
    fn cpu_short_names() {
        for (model, short) in [
            ("Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz", "i9-9900K"),
            ("Intel(R) Xeon(R) E-2146G CPU @ 3.50GHz", "E-2146G"),
            ("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "Gold-6130"),
            ("AMD EPYC 7502P 32-Core Processor", "EPYC-7502P"),
            ("AMD Ryzen 9 5950X 16-Core Processor", "Ryzen-9-5950X"),
            ("AMD Ryzen 7 PRO 4750G with Radeon Graphics", "Ryzen-7-PRO-4750G"),
            ("AMD Ryzen 5 3400G with Radeon Vega Graphics", "Ryzen-5-3400G"),
            ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "E5-2680-v4"),
            ("Intel(R) Xeon(R) CPU           X5650  @ 2.67GHz", "X5650"),
            ("Intel(R) Core(tm) i7-8700 CPU @ 3.20GHz", "i7-8700"),
            ("intel(r) core(tm) i5-4570 cpu @ 3.20ghz", "i5-4570"),
            ("AMD FX(tm)-8350 Eight-Core Processor", "FX-8350"),
            ("Intel® Xeon® Silver 4214 CPU @ 2.20GHz", "Silver-4214"),
            ("Intel Xeon Processor (Skylake, IBRS)", "Skylake-IBRS"),
            ("Intel(R) Core(TM) i5 - 4570", "i5-4570"),
            ("  EPYC 7502P  ", "EPYC-7502P"),
            ("", ""),
            ("Intel(R) CPU @ 2.00GHz", ""),
        ] {
            assert_eq!(cpu_short_name(model), short, "{model}");
        }
    }

    #[test]
    fn dcimanager_example_nvme() {
        let h = hw(
            cpu("Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz", 1),
            mem_gib(64),
            vec![disk(1024, DiskType::Nvme), disk(1024, DiskType::Nvme)],
        );
        assert_eq!(generate(&h).as_deref(), Some("i9-9900K-64Gb-2x1024NVMe"));
    }

    #[test]
    fn dcimanager_example_ssd_in_either_order() {
        let cpu_model = "Intel(R) Xeon(R) E-2146G CPU @ 3.50GHz";
        let a = hw(cpu(cpu_model, 1), mem_gib(64), vec![disk(1920, DiskType::Ssd), disk(3840, DiskType::Ssd)]);
        let b = hw(cpu(cpu_model, 1), mem_gib(64), vec![disk(3840, DiskType::Ssd), disk(1920, DiskType::Ssd)]);
        assert_eq!(generate(&a).as_deref(), Some("E-2146G-64Gb-1920SSD-3840SSD"));
        assert_eq!(generate(&a), generate(&b));
    }

    #[test]
    fn multi_socket() {
        let h = hw(
            cpu("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", 2),
            mem_gib(256),
            vec![disk(480, DiskType::Ssd), disk(480, DiskType::Ssd)],
        );
        assert_eq!(generate(&h).as_deref(), Some("2xGold-6130-256Gb-2x480SSD"));
        let single = hw(cpu("AMD EPYC 7502P 32-Core Processor", 0), None, vec![]);
        assert_eq!(generate(&single).as_deref(), Some("EPYC-7502P"));
    }

    #[test]
    fn mixed_hdd_ssd_nvme_sorted_by_size_then_type() {
        let h = hw(
            cpu("AMD Ryzen 9 5950X 16-Core Processor", 1),
            mem_gib(128),
            vec![
                disk(4000, DiskType::Hdd),
                disk(960, DiskType::Nvme),
                disk(4000, DiskType::Hdd),
                disk(960, DiskType::Ssd),
                disk(960, DiskType::Hdd),
                disk(240, DiskType::Ssd),
            ],
        );
        assert_eq!(generate(&h).as_deref(), Some("Ryzen-9-5950X-128Gb-240SSD-960HDD-960SSD-960NVMe-2x4000HDD"));
    }

    #[test]
    fn memory_rounding() {
        let mem =
            |mib| generate(&HardwareInfo { memory: Some(Memory { total_mib: Some(mib) }), ..HardwareInfo::default() });
        assert_eq!(mem(65536).as_deref(), Some("64Gb"));
        assert_eq!(mem(65437).as_deref(), Some("64Gb")); // firmware-reserved memory
        assert_eq!(mem(65536 + 511).as_deref(), Some("64Gb"));
        assert_eq!(mem(65536 + 512).as_deref(), Some("65Gb"));
        assert_eq!(mem(512).as_deref(), Some("1Gb"));
        assert_eq!(mem(511), None);
        assert_eq!(mem(0), None);
    }

    #[test]
    fn partial_data() {
        // only disks
        let h = hw(None, None, vec![disk(2000, DiskType::Hdd)]);
        assert_eq!(generate(&h).as_deref(), Some("2000HDD"));
        // CPU and memory, no disks
        let h = hw(cpu("Intel(R) Xeon(R) E-2146G CPU @ 3.50GHz", 1), mem_gib(32), vec![]);
        assert_eq!(generate(&h).as_deref(), Some("E-2146G-32Gb"));
        // CPU without a model, memory without a total
        let h = hw(
            Some(Cpu { sockets: Some(2), ..Cpu::default() }),
            Some(Memory::default()),
            vec![disk(480, DiskType::Ssd)],
        );
        assert_eq!(generate(&h).as_deref(), Some("480SSD"));
        // disks without size are ignored; disks without type render size only
        let h = hw(
            None,
            mem_gib(16),
            vec![
                Disk { name: Some("sr0".to_owned()), ..Disk::default() },
                disk(0, DiskType::Ssd),
                Disk { size_gb: Some(500), ..Disk::default() },
                disk(500, DiskType::Hdd),
            ],
        );
        assert_eq!(generate(&h).as_deref(), Some("16Gb-500-500HDD"));
    }

    #[test]
    fn nothing_to_describe_is_none() {
        assert_eq!(generate(&HardwareInfo::default()), None);
        let h = HardwareInfo {
            nics: vec![Nic { name: Some("eth0".to_owned()), ..Nic::default() }],
            motherboard: Some(Motherboard { vendor: Some("Supermicro".to_owned()), ..Motherboard::default() }),
            ..hw(Some(Cpu::default()), Some(Memory::default()), vec![])
        };
        assert_eq!(generate(&h), None);
    }

    #[test]
    fn deterministic_regardless_of_disk_order() {
        let disks = vec![
            disk(1024, DiskType::Nvme),
            disk(4000, DiskType::Hdd),
            disk(1024, DiskType::Nvme),
            disk(480, DiskType::Ssd),
            disk(4000, DiskType::Hdd),
            disk(1024, DiskType::Ssd),
        ];
        let expected = "i9-9900K-64Gb-480SSD-1024SSD-2x1024NVMe-2x4000HDD";
        let model = "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz";
        // every rotation, plus the reverse of each
        for shift in 0..disks.len() {
            let mut d = disks.clone();
            d.rotate_left(shift);
            let h = hw(cpu(model, 1), mem_gib(64), d.clone());
            assert_eq!(generate(&h).as_deref(), Some(expected));
            assert_eq!(generate(&h), generate(&h));
            d.reverse();
            let h = hw(cpu(model, 1), mem_gib(64), d);
            assert_eq!(generate(&h).as_deref(), Some(expected));
        }
        // other fields do not influence the result
        let mut h = hw(cpu(model, 1), mem_gib(64), disks);
        h.nics.push(Nic { name: Some("eth0".to_owned()), mac: Some("52:54:00:12:34:56".to_owned()), link: Some(true) });
        if let Some(c) = h.cpu.as_mut() {
            c.cores = Some(8);
        }
        assert_eq!(generate(&h).as_deref(), Some(expected));
    }

    #[test]
    fn parses_documented_schema() {
        let json = r#"{ "cpu": {"model": "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz", "sockets": 1, "cores": 8, "threads": 16},
          "memory": {"total_mib": 65536},
          "disks": [{"name": "nvme0n1", "size_gb": 1024, "type": "NVMe", "serial": "S4EWNX0N", "model": "Samsung 970"},
                    {"name": "nvme1n1", "size_gb": 1024, "type": "NVMe", "serial": "S4EWNX0M", "model": "Samsung 970"}],
          "nics": [{"name": "eth0", "mac": "52:54:00:12:34:56", "link": true}],
          "motherboard": {"vendor": "Supermicro", "model": "X11SCH-F", "serial": "ZM19AS0123"} }"#;
        let h: HardwareInfo = serde_json::from_str(json).unwrap();
        assert_eq!(
            h.cpu,
            Some(Cpu {
                model: Some("Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz".to_owned()),
                sockets: Some(1),
                cores: Some(8),
                threads: Some(16),
            })
        );
        assert_eq!(h.disks[0].kind, Some(DiskType::Nvme));
        assert_eq!(h.disks[0].serial.as_deref(), Some("S4EWNX0N"));
        assert_eq!(h.nics[0].link, Some(true));
        assert_eq!(h.motherboard.as_ref().and_then(|m| m.model.as_deref()), Some("X11SCH-F"));
        assert_eq!(generate(&h).as_deref(), Some("i9-9900K-64Gb-2x1024NVMe"));

        // round trip
        let back: HardwareInfo = serde_json::from_value(serde_json::to_value(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn parses_partial_and_sloppy_json() {
        let h: HardwareInfo = serde_json::from_str("{}").unwrap();
        assert_eq!(h, HardwareInfo::default());

        let h: HardwareInfo = serde_json::from_str(
            r#"{"cpu": null, "memory": {}, "disks": null, "nics": null, "motherboard": {},
                "bios": {"vendor": "AMI"}}"#,
        )
        .unwrap();
        assert_eq!(h.cpu, None);
        assert!(h.disks.is_empty() && h.nics.is_empty());
        assert_eq!(generate(&h), None);

        let h: HardwareInfo = serde_json::from_str(
            r#"{"disks": [{"size_gb": 960, "type": "ssd"}, {"size_gb": 960, "type": "SSD", "rotational": false}, {"type": "nvme"}, {}]}"#,
        )
        .unwrap();
        assert_eq!(h.disks.len(), 4);
        assert_eq!(h.disks[2].kind, Some(DiskType::Nvme));
        assert_eq!(generate(&h).as_deref(), Some("2x960SSD"));

        assert!(serde_json::from_str::<HardwareInfo>(r#"{"disks": [{"type": "tape"}]}"#).is_err());
    }

    #[test]
    fn disk_type_spelling_and_order() {
        assert_eq!(serde_json::to_string(&DiskType::Hdd).unwrap(), r#""HDD""#);
        assert_eq!(serde_json::to_string(&DiskType::Ssd).unwrap(), r#""SSD""#);
        assert_eq!(serde_json::to_string(&DiskType::Nvme).unwrap(), r#""NVMe""#);
        assert_eq!(DiskType::Nvme.to_string(), "NVMe");
        assert!(DiskType::Hdd < DiskType::Ssd && DiskType::Ssd < DiskType::Nvme);
    }

    #[test]
    fn serialization_omits_absent_fields() {
        let h = hw(None, mem_gib(8), vec![]);
        assert_eq!(serde_json::to_string(&h).unwrap(), r#"{"memory":{"total_mib":8192},"disks":[],"nics":[]}"#);
    }
}
