//! `os_install`: the agent boots and installs the template (writes its image, or boots
//! its installer with an answer file rendered for the server), with the RAID, root
//! password hash and SSH keys of the request; then the disk boots.

use async_trait::async_trait;
use dcim_core::PowerStatus;
use dcim_core::configuration::HardwareInfo;
use dcim_core::installer::{self, InstallVars, InstallerKind};
use dcim_core::{RaidLevel, ReportKind};
use dcim_drivers::BootMode;
use dcim_store::tasks::ServerEffects;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::netboot::{AwaitReport, BootPlan, CleanupBoot, DiskBoot, NetBoot, PrepareBoot};
use super::{Ctx, Family, Step, StepError};

/// The installation's parameters, as of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallOs {
    pub template_id: i64,
    pub template: String,
    pub raid: RaidLevel,
    pub hostname: String,
    /// SHA-512 crypt hash; the password itself is never stored.
    pub password_hash: String,
    pub ssh_keys: Vec<String>,
    /// Disks of the RAID, by name, from the server's hardware ([`raid_disks`]).
    pub disks: Vec<String>,
    /// The template's raw disk image and its SHA-256 (hex), as of the request.
    /// Empty in tasks stored before templates had images.
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub image_sha256: String,
    /// For an installer template instead of an image: its installer, as of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<Box<InstallerSpec>>,
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

#[async_trait]
impl Family for InstallOs {
    fn name(&self) -> &'static str {
        "os_install"
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        vec![
            Box::new(PrepareBoot(self)),
            Box::new(NetBoot),
            Box::new(AwaitReport { report: ReportKind::Installed, name: "install OS" }),
            Box::new(DiskBoot),
            Box::new(CleanupBoot),
        ]
    }

    async fn completed(&self, _cx: &Ctx<'_>, fx: &mut ServerEffects, _info: &mut Value) {
        fx.os_template_id = Some(self.template_id);
        fx.power_status = Some(PowerStatus::On);
    }
}

impl BootPlan for InstallOs {
    fn boot(&self, cx: &mut Ctx<'_>, callback: &str, secret: &str) -> Result<(BootMode, Value), StepError> {
        let mut answer = json!({"hostname": self.hostname, "password_hash": self.password_hash,
               "ssh_keys": self.ssh_keys, "raid": self.raid, "disks": self.disks, "template": self.template,
               "image_url": served_url(&self.image_url, callback), "image_sha256": self.image_sha256});
        if let Some(i) = &self.installer {
            let kind: InstallerKind = i.kind.parse().map_err(StepError::fatal)?;
            let vars = InstallVars {
                hostname: self.hostname.clone(),
                password_hash: self.password_hash.clone(),
                ssh_keys: self.ssh_keys.clone(),
                raid: self.raid.as_str().into(),
                disks: self.disks.clone(),
                callback: callback.to_owned(),
                task: cx.task.id.get(),
                secret: secret.to_owned(),
            };
            answer["installer"] = json!({"kind": kind.as_str(), "kernel": i.kernel,
                "initrd": i.initrd, "answer_file": installer::render(kind, i.template.as_deref(), &vars)});
        }
        Ok((BootMode::Install { template: self.template.clone() }, answer))
    }
}

/// The disks a RAID level is built on: the largest group of identical disks (same size
/// and type) of the server's hardware, one of them for `no_raid`; or why there are not
/// enough.
pub fn raid_disks(hw: &HardwareInfo, raid: RaidLevel) -> Result<Vec<String>, String> {
    let min = raid.min_disks();
    let mut groups: std::collections::BTreeMap<(u64, String), Vec<String>> = Default::default();
    for (i, d) in hw.disks.iter().enumerate() {
        let key = (d.size_gb.unwrap_or(0), d.kind.map(|k| k.as_str().to_owned()).unwrap_or_default());
        groups.entry(key).or_default().push(d.name.clone().unwrap_or_else(|| format!("disk{i}")));
    }
    let best = groups.into_values().max_by_key(Vec::len).unwrap_or_default();
    if best.len() < min {
        return Err(format!(
            "{raid} needs {min} identical disks; the server's hardware shows {} (run diagnostics if it is unknown)",
            best.len()
        ));
    }
    if raid == RaidLevel::Raid10 && best.len() % 2 != 0 {
        return Err("raid_10 needs an even number of identical disks".into());
    }
    Ok(if raid == RaidLevel::NoRaid { best.into_iter().take(1).collect() } else { best })
}

/// An image URL that a template gives as a path (`/images/NAME`: served by dcim
/// itself) is made absolute against the listener the agent reports to: its
/// provisioning segment's, or this server's own.
fn served_url(url: &str, callback: &str) -> String {
    if !url.starts_with('/') {
        return url.to_owned();
    }
    let base = callback.strip_suffix("/agent/v1/task").unwrap_or(callback).trim_end_matches('/');
    format!("{base}{url}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_dcim_serves_are_fetched_from_the_agents_listener() {
        let cb = "http://10.0.0.1:8080/agent/v1/task";
        assert_eq!(served_url("/images/a.img", cb), "http://10.0.0.1:8080/images/a.img");
        assert_eq!(served_url("https://m.example/a.img", cb), "https://m.example/a.img");
    }

    #[test]
    fn a_raid_is_built_on_the_largest_group_of_identical_disks() {
        let hw: HardwareInfo = serde_json::from_value(json!({"disks": [
            {"name": "sda", "size_gb": 480, "type": "ssd"}, {"name": "sdb", "size_gb": 480, "type": "ssd"},
            {"name": "sdc", "size_gb": 480, "type": "ssd"}, {"name": "nvme0n1", "size_gb": 960, "type": "nvme"}]}))
        .unwrap();
        assert_eq!(raid_disks(&hw, RaidLevel::Raid1).unwrap(), ["sda", "sdb", "sdc"]);
        assert_eq!(raid_disks(&hw, RaidLevel::NoRaid).unwrap(), ["sda"]);
        assert!(raid_disks(&hw, RaidLevel::Raid10).unwrap_err().contains("needs 4 identical disks"));
        assert_eq!("raid_6".parse::<RaidLevel>().map_err(|e| e.what), Err("RaidLevel"));
    }
}
