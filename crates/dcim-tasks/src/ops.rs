//! The operations: their parameters, steps, and what they change on the server.

use serde::{Deserialize, Serialize};

/// An operation with its validated parameters, stored as the task's `params`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    PowerOn,
    PowerOff,
    PowerReset,
    /// Choose the next boot device at the BMC; `efi` unset means the server's own mode.
    BootDevice {
        pxe: bool,
        efi: Option<bool>,
        persistent: bool,
    },
    Suspend,
    Resume,
    Diag {
        template: String,
        clear_hdd: String,
        /// `setup_ipmi`: the agent gives the BMC dcim's user (and the address from
        /// `ipmi_pool`) in-band, and dcim manages the server through it from then on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        setup_ipmi: Option<BmcSetup>,
    },
    ClearHdd {
        clear_hdd: String,
    },
    InstallOs {
        template_id: i64,
        template: String,
        raid: String,
        hostname: String,
        /// SHA-512 crypt hash; the password itself is never stored.
        password_hash: String,
        ssh_keys: Vec<String>,
        /// Disks of the RAID, by name, from the server's hardware.
        disks: Vec<String>,
        /// The template's raw disk image and its SHA-256 (hex), as of the request.
        /// Empty in tasks stored before templates had images.
        #[serde(default)]
        image_url: String,
        #[serde(default)]
        image_sha256: String,
        /// For an installer template instead of an image: its installer, as of the request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        installer: Option<Box<InstallerSpec>>,
    },
    /// Give the server an address already reserved for it (row `allocating`).
    IpAssign {
        ip_id: i64,
        family: i64,
        main: bool,
    },
    /// Take an address back from the server (row `deleting`).
    IpRelease {
        ip_id: i64,
    },
}

/// What `setup_ipmi` gives the BMC besides dcim's user: an address taken from
/// `ipmi_pool` when the request named one (its row stays `allocating` until the BMC
/// answers there), else the BMC keeps its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcSetup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<BmcIp>,
}

/// A static address for the BMC: the IPAM row, the address, its netmask and gateway
/// (empty: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcIp {
    pub ip_id: i64,
    pub address: String,
    pub netmask: String,
    pub gateway: String,
}

/// An installer-based OS template's boot: the installer's kind (`kickstart`, `preseed`,
/// `autoinstall`), its kernel and initrd URLs, and its own answer-file text if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallerSpec {
    pub kind: String,
    pub kernel: String,
    pub initrd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A step of an operation: its name in `progress_info` and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    PowerOn,
    PowerOff,
    Reset,
    ConfirmOn,
    ConfirmOff,
    SetBootDevice,
    ShutPorts,
    OpenPorts,
    PrepareBoot,
    NetBoot,
    AwaitHardware,
    SetupBmc,
    AwaitWipe,
    AwaitInstall,
    DiskBoot,
    CleanupBoot,
    AssignIp,
    ReleaseIp,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::PowerOn => "power on",
            StepKind::PowerOff => "power off",
            StepKind::Reset => "reset",
            StepKind::ConfirmOn => "confirm power on",
            StepKind::ConfirmOff => "confirm power off",
            StepKind::SetBootDevice => "set boot device",
            StepKind::ShutPorts => "shut switch ports",
            StepKind::OpenPorts => "open switch ports",
            StepKind::PrepareBoot => "prepare network boot",
            StepKind::NetBoot => "boot from network",
            StepKind::AwaitHardware => "collect hardware",
            StepKind::SetupBmc => "set up IPMI",
            StepKind::AwaitWipe => "clear disks",
            StepKind::AwaitInstall => "install OS",
            StepKind::DiskBoot => "boot from disk",
            StepKind::CleanupBoot => "clean up network boot",
            StepKind::AssignIp => "assign address",
            StepKind::ReleaseIp => "release address",
        }
    }
}

impl Operation {
    /// The task name, as `GET /task` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::PowerOn => "power_on",
            Operation::PowerOff => "power_off",
            Operation::PowerReset => "power_reset",
            Operation::BootDevice { .. } => "boot_device",
            Operation::Suspend => "suspend",
            Operation::Resume => "resume",
            Operation::Diag { .. } => "diag",
            Operation::ClearHdd { .. } => "clear_hdd",
            Operation::InstallOs { .. } => "os_install",
            Operation::IpAssign { .. } => "ip_assign",
            Operation::IpRelease { .. } => "ip_release",
        }
    }

    /// Whether it holds the server (one such operation at a time); IP changes
    /// run beside the others.
    pub fn exclusive(&self) -> bool {
        !matches!(self, Operation::IpAssign { .. } | Operation::IpRelease { .. })
    }

    pub fn steps(&self) -> Vec<StepKind> {
        use StepKind::*;
        match self {
            Operation::PowerOn => vec![PowerOn, ConfirmOn],
            Operation::PowerOff => vec![PowerOff, ConfirmOff],
            Operation::PowerReset => vec![Reset, ConfirmOn],
            Operation::BootDevice { .. } => vec![SetBootDevice],
            Operation::Suspend => vec![ShutPorts],
            Operation::Resume => vec![OpenPorts],
            Operation::Diag { setup_ipmi: None, .. } => {
                vec![PrepareBoot, NetBoot, AwaitHardware, AwaitWipe, PowerOff, CleanupBoot]
            }
            Operation::Diag { setup_ipmi: Some(_), .. } => {
                vec![PrepareBoot, NetBoot, AwaitHardware, SetupBmc, AwaitWipe, PowerOff, CleanupBoot]
            }
            Operation::ClearHdd { .. } => vec![PrepareBoot, NetBoot, AwaitWipe, PowerOff, CleanupBoot],
            Operation::InstallOs { .. } => vec![PrepareBoot, NetBoot, AwaitInstall, DiskBoot, CleanupBoot],
            Operation::IpAssign { .. } => vec![AssignIp],
            Operation::IpRelease { .. } => vec![ReleaseIp],
        }
    }

    /// The server `state` the operation puts the server in when it is accepted.
    pub fn starting_state(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Operation::Suspend => Some(("suspending", "")),
            Operation::Resume => Some(("resuming", "")),
            _ => None,
        }
    }

    /// Whether it boots the in-band agent.
    pub fn uses_netboot(&self) -> bool {
        matches!(self, Operation::Diag { .. } | Operation::ClearHdd { .. } | Operation::InstallOs { .. })
    }

    /// `clear_hdd` of the operations that wipe, `none` otherwise.
    pub fn clear_hdd(&self) -> &str {
        match self {
            Operation::Diag { clear_hdd, .. } | Operation::ClearHdd { clear_hdd } => clear_hdd,
            _ => "none",
        }
    }

    /// The IPAM address `setup_ipmi` took for the BMC, if any.
    pub fn bmc_ip(&self) -> Option<&BmcIp> {
        match self {
            Operation::Diag { setup_ipmi: Some(BmcSetup { ip }), .. } => ip.as_ref(),
            _ => None,
        }
    }
}

/// What diagnostics found wrong, as `diag_error` entries `{"type","info"}`: a disk whose
/// SMART health check failed (`smart.passed: false` in the agent's report), and a disk
/// known before (by serial) that the report no longer has.
pub fn diag_findings(before: &serde_json::Value, found: &serde_json::Value) -> Vec<serde_json::Value> {
    use serde_json::json;
    let disks = |hw: &serde_json::Value| hw["disks"].as_array().cloned().unwrap_or_default();
    let label = |d: &serde_json::Value| {
        let name = d["name"].as_str().unwrap_or("?");
        match d["serial"].as_str() {
            Some(s) => format!("disk {name} (serial {s})"),
            None => format!("disk {name}"),
        }
    };
    let now = disks(found);
    let mut out: Vec<serde_json::Value> = now
        .iter()
        .filter(|d| d["smart"]["passed"] == json!(false))
        .map(|d| json!({"type": "smart", "info": format!("{}: the SMART health check failed", label(d))}))
        .collect();
    for old in disks(before) {
        let Some(serial) = old["serial"].as_str().filter(|s| !s.is_empty()) else { continue };
        if !now.iter().any(|d| d["serial"].as_str() == Some(serial)) {
            out.push(
                json!({"type": "disk_missing", "info": format!("{} was found before and is missing now", label(&old))}),
            );
        }
    }
    out
}

/// The RAID levels of the seed and the identical disks each needs at least.
pub fn raid_min_disks(raid: &str) -> Option<usize> {
    match raid {
        "no_raid" => Some(1),
        "raid_0" | "raid_1" => Some(2),
        "raid_5" => Some(3),
        "raid_10" => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_and_steps_are_named() {
        let op = Operation::Diag { template: "Diag6".into(), clear_hdd: "simple".into(), setup_ipmi: None };
        let s = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<Operation>(&s).unwrap(), op);
        assert_eq!(op.steps().len(), 6);
        // a task stored before setup_ipmi existed reads the same
        let old = r#"{"op":"diag","template":"Diag6","clear_hdd":"simple"}"#;
        assert_eq!(serde_json::from_str::<Operation>(old).unwrap(), op);
        let ip = BmcIp { ip_id: 4, address: "10.0.0.9".into(), netmask: "255.255.255.0".into(), gateway: "".into() };
        let op = Operation::Diag {
            template: "Diag6".into(),
            clear_hdd: "none".into(),
            setup_ipmi: Some(BmcSetup { ip: Some(ip.clone()) }),
        };
        assert_eq!(serde_json::from_str::<Operation>(&serde_json::to_string(&op).unwrap()).unwrap(), op);
        assert_eq!(op.steps()[3], StepKind::SetupBmc);
        assert_eq!(op.bmc_ip(), Some(&ip));
        assert_eq!(Operation::Suspend.starting_state(), Some(("suspending", "")));
        assert_eq!(raid_min_disks("raid_10"), Some(4));
        assert_eq!(raid_min_disks("raid_6"), None);
    }

    #[test]
    fn diagnostics_find_failed_and_missing_disks() {
        use serde_json::json;
        let before =
            json!({"disks": [{"name": "sda", "serial": "A"}, {"name": "sdb", "serial": "B"}, {"name": "sdc"}]});
        let found = json!({"disks": [{"name": "sda", "serial": "A", "smart": {"passed": false}},
                                     {"name": "sdc", "smart": {"passed": true}}]});
        let f = diag_findings(&before, &found);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0], json!({"type": "smart", "info": "disk sda (serial A): the SMART health check failed"}));
        assert_eq!(
            f[1],
            json!({"type": "disk_missing", "info": "disk sdb (serial B) was found before and is missing now"})
        );
        assert!(diag_findings(&json!(null), &found).len() == 1, "no earlier hardware: only SMART");
        assert!(diag_findings(&found, &json!({"disks": [{"name": "sda", "serial": "A"}, {"name": "sdc"}]})).is_empty());
    }
}
