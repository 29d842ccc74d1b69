//! `diag`: the agent boots, reports the hardware (which becomes the server's
//! `hardware_info` and configuration, with what it found wrong in `diag_error`),
//! optionally gives the BMC dcim's user ([`super::bmc_setup`]) and wipes the disks;
//! then the server is powered off and the boot cleaned up.

use async_trait::async_trait;
use dcim_core::{ClearMode, PowerStatus, ReportKind};
use dcim_drivers::BootMode;
use dcim_store::tasks::ServerEffects;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::bmc_setup::{self, BmcIp, BmcSetup, SetupBmc};
use super::netboot::{AwaitReport, AwaitWipe, BootPlan, CleanupBoot, NetBoot, PrepareBoot, wipe_info};
use super::power::PowerOff;
use super::{Ctx, Family, Step, StepError};

/// The diagnostics' parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diag {
    /// The diagnostics template's name.
    pub template: String,
    pub clear_hdd: ClearMode,
    /// `setup_ipmi`: the agent gives the BMC dcim's user (and the address from
    /// `ipmi_pool`) in-band, and dcim manages the server through it from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_ipmi: Option<BmcSetup>,
}

impl Diag {
    /// The IPAM address `setup_ipmi` took for the BMC, if any.
    pub fn bmc_ip(&self) -> Option<&BmcIp> {
        self.setup_ipmi.as_ref().and_then(|s| s.ip.as_ref())
    }
}

#[async_trait]
impl Family for Diag {
    fn name(&self) -> &'static str {
        "diag"
    }

    fn steps(&self) -> Vec<Box<dyn Step + '_>> {
        let mut steps: Vec<Box<dyn Step + '_>> = vec![
            Box::new(PrepareBoot(self)),
            Box::new(NetBoot),
            Box::new(AwaitReport { report: ReportKind::Hardware, name: "collect hardware" }),
        ];
        if let Some(setup) = &self.setup_ipmi {
            steps.push(Box::new(SetupBmc(setup)));
        }
        steps.extend([Box::new(AwaitWipe(self.clear_hdd)) as Box<dyn Step>, Box::new(PowerOff), Box::new(CleanupBoot)]);
        steps
    }

    async fn completed(&self, cx: &Ctx<'_>, fx: &mut ServerEffects, info: &mut Value) {
        let hw = cx.memo.hardware.clone().unwrap_or_else(|| json!({}));
        let parsed: dcim_core::configuration::HardwareInfo = serde_json::from_value(hw.clone()).unwrap_or_default();
        fx.hardware = Some((hw.to_string(), dcim_core::configuration::generate(&parsed)));
        fx.is_new = Some(false);
        let before: Value = serde_json::from_str(&cx.server.server.hardware_info).unwrap_or_default();
        let findings = diag_findings(&before, &hw);
        fx.diag_error = Some((!findings.is_empty()).then(|| Value::Array(findings).to_string()));
        fx.power_status = Some(PowerStatus::Off);
        wipe_info(cx, info);
        if let Some(b) = &cx.memo.bmc_done {
            info["ipmi"] = b.clone();
        }
    }

    async fn failed(&self, cx: &Ctx<'_>, step: &str, msg: &str, fx: &mut ServerEffects) {
        fx.diag_error = Some(Some(json!([{"type": step, "info": msg}]).to_string()));
        bmc_setup::ip_back(cx, self.bmc_ip(), fx).await;
    }

    async fn canceled(&self, cx: &Ctx<'_>, fx: &mut ServerEffects) {
        bmc_setup::ip_back(cx, self.bmc_ip(), fx).await;
    }
}

impl BootPlan for Diag {
    fn boot(&self, cx: &mut Ctx<'_>, _callback: &str, _secret: &str) -> Result<(BootMode, Value), StepError> {
        let mut answer = json!({"template": self.template});
        if let Some(setup) = &self.setup_ipmi {
            // A new password per boot; kept in the memo until the BMC answers with it.
            let password = bmc_setup::bmc_password();
            let ip =
                setup.ip.as_ref().map(|i| json!({"address": i.address, "netmask": i.netmask, "gateway": i.gateway}));
            answer["bmc"] = json!({"user": cx.cfg().bmc_user, "password": password, "ip": ip});
            cx.memo.bmc_password = Some(password);
        }
        Ok((BootMode::Diag { clear_hdd: self.clear_hdd }, answer))
    }
}

/// What diagnostics found wrong, as `diag_error` entries `{"type","info"}`: a disk whose
/// SMART health check failed (`smart.passed: false` in the agent's report), and a disk
/// known before (by serial) that the report no longer has.
pub fn diag_findings(before: &serde_json::Value, found: &serde_json::Value) -> Vec<serde_json::Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
