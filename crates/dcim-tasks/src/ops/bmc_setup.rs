//! `setup_ipmi`: the part of a diagnostics task that takes over the server's BMC once the
//! in-band agent has given it dcim's user (and an address from `ipmi_pool`). The agent's
//! side is `dcim-agent`'s `bmc` module.

use async_trait::async_trait;
use dcim_core::{BmcType, IpStatus, ReportKind};
use dcim_store::ids::IpId;
use dcim_store::tasks::{IpEffect, ServerEffects};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Ctx, Outcome, Step, StepError, StepResult};

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
    pub ip_id: IpId,
    pub address: String,
    pub netmask: String,
    pub gateway: String,
}

/// A BMC password: 16 letters and digits (IPMI 1.5 allows 16 bytes; 95 bits).
pub(super) fn bmc_password() -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(16).map(char::from).collect()
}

/// Waits for the agent's `bmc` report (it gave the BMC dcim's user, the boot's password
/// and any address from `ipmi_pool`), logs in to the BMC there over the LAN, and only
/// then makes it the server's BMC; the later steps (power off) already go through it.
pub struct SetupBmc<'a>(pub &'a BmcSetup);

#[async_trait]
impl Step for SetupBmc<'_> {
    fn name(&self) -> &'static str {
        "set up IPMI"
    }

    async fn run(&self, cx: &mut Ctx<'_>) -> StepResult {
        if cx.memo.bmc_done.is_some() {
            return Ok(Outcome::Done);
        }
        if let Outcome::Wait(d) = cx.await_report(ReportKind::Bmc).await? {
            return Ok(Outcome::Wait(d));
        }
        let found = cx.memo.bmc.clone().unwrap_or_default();
        let password = cx.memo.bmc_password.clone().ok_or_else(|| {
            StepError::fatal("the BMC password of this boot was not kept; run the diagnostics again".into())
        })?;
        let host = match &self.0.ip {
            Some(ip) => ip.address.clone(),
            None => found["address"]
                .as_str()
                .filter(|a| !a.is_empty() && *a != "0.0.0.0")
                .ok_or_else(|| {
                    StepError::fatal("the BMC has no IP address of its own; give ipmi_pool to set one".into())
                })?
                .to_owned(),
        };
        let server_id = cx.server.server.id;
        let current = cx.store().bmc_credentials(server_id).await?;
        // A BMC reached on another port than 623 (a test lab, a NAT) keeps that port.
        let port = current.as_ref().and_then(|b| b.address.rsplit_once(':')).and_then(|(_, p)| p.parse::<u16>().ok());
        let address = match port {
            Some(p) if p != 623 => format!("{host}:{p}"),
            _ => host,
        };
        let kind = match current.as_ref().map(|b| b.kind) {
            Some(BmcType::Fake) => BmcType::Fake,
            Some(BmcType::Ipmi15) => BmcType::Ipmi15,
            _ => BmcType::IpmiLanplus,
        };
        let user = found["user"].as_str().unwrap_or(&cx.cfg().bmc_user).to_owned();
        let access = dcim_drivers::BmcAccess {
            kind,
            address: address.clone(),
            user: user.clone(),
            password: password.clone(),
            mac: cx.server.server.mac.clone(),
            tls_fingerprint: None,
            location: Some(cx.server.server.location_id),
        };
        let driver = cx.bmc_power(&access)?;
        let named = |m: String| format!("the BMC at {address} as {user}: {m}");
        cx.call(driver.status()).await.map_err(|e| e.named(named))?;
        let bmc = dcim_store::servers::BmcAccess {
            address: address.clone(),
            kind,
            user: user.clone(),
            password,
            // An IPMI BMC now: a certificate pin has nothing left to check.
            tls_fingerprint: None,
            web_url: current.and_then(|b| b.web_url),
        };
        let patch = dcim_store::servers::ServerPatch { bmc: Some(Some(bmc)), ..Default::default() };
        cx.store().update_server(server_id, &patch).await?;
        if let Some(ip) = &self.0.ip {
            cx.store().set_ip_status(ip.ip_id, IpStatus::Ok, "{}").await?;
        }
        cx.memo.bmc_done = Some(json!({"address": address, "user": user}));
        cx.memo.bmc_password = None;
        Ok(Outcome::Done)
    }
}

/// The address `setup_ipmi` took, when the task ends before dcim reached the BMC there:
/// back to its pool if the agent never gave it to the BMC; kept, as `fail` with the
/// reason, if it did (the BMC answers on it until someone changes it, so handing it to
/// another server would clash).
pub(super) async fn ip_back(cx: &Ctx<'_>, ip: Option<&BmcIp>, fx: &mut ServerEffects) {
    let Some(ip) = ip else { return };
    if !matches!(cx.store().get_ip(ip.ip_id.get()).await, Ok(row) if row.status == IpStatus::Allocating) {
        return;
    }
    // When the reports cannot be read, keep the address: a clash is worse than a leak.
    let given =
        cx.store().task_reports(cx.task.id).await.map_or(true, |r| r.iter().any(|(k, _)| *k == ReportKind::Bmc));
    fx.ip = Some(if given {
        let info: Value = json!({"message": format!(
            "the BMC was given {} but dcim could not log in there; release the address once the BMC no longer uses it",
            ip.address
        )});
        IpEffect::Failed { ip_id: ip.ip_id, status: IpStatus::Fail, info: info.to_string() }
    } else {
        IpEffect::Released { ip_id: ip.ip_id }
    });
}
