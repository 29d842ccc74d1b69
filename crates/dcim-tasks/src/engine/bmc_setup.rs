//! `setup_ipmi`: the part of a diagnostics task that takes over the server's BMC once the
//! in-band agent has given it dcim's user (and an address from `ipmi_pool`). The agent's
//! side is `dcim-agent`'s `bmc` module.

use dcim_core::BmcType;
use dcim_store::servers::ServerDetail;
use dcim_store::tasks::{IpEffect, ServerEffects, TaskRow};
use serde_json::{Map, Value, json};

use super::{Engine, Outcome, StepError, StepResult};
use crate::ops::Operation;

/// A BMC password: 16 letters and digits (IPMI 1.5 allows 16 bytes; 95 bits).
pub(super) fn bmc_password() -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(16).map(char::from).collect()
}

impl Engine {
    /// `setup_ipmi`: waits for the agent's `bmc` report (it gave the BMC dcim's user, the
    /// boot's password and any address from `ipmi_pool`), logs in to the BMC there over
    /// the LAN, and only then makes it the server's BMC; the later steps (power off)
    /// already go through it.
    pub(super) async fn setup_bmc(
        &self,
        task: &TaskRow,
        op: &Operation,
        server: &ServerDetail,
        memo: &mut Map<String, Value>,
    ) -> StepResult {
        let Operation::Diag { setup_ipmi: Some(setup), .. } = op else {
            return Err(StepError::fatal("not a diagnostics with setup_ipmi".into()));
        };
        if memo.contains_key("bmc_done") {
            return Ok(Outcome::Done);
        }
        if let Outcome::Wait(d) = self.await_report(task, "bmc", memo).await? {
            return Ok(Outcome::Wait(d));
        }
        let found = memo.get("bmc").cloned().unwrap_or_default();
        let password = memo.get("bmc_password").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
            StepError::fatal("the BMC password of this boot was not kept; run the diagnostics again".into())
        })?;
        let host = match &setup.ip {
            Some(ip) => ip.address.clone(),
            None => found["address"]
                .as_str()
                .filter(|a| !a.is_empty() && *a != "0.0.0.0")
                .ok_or_else(|| {
                    StepError::fatal("the BMC has no IP address of its own; give ipmi_pool to set one".into())
                })?
                .to_owned(),
        };
        let current = self.store.bmc_credentials(server.server.id).await?;
        // A BMC reached on another port than 623 (a test lab, a NAT) keeps that port.
        let port = current.as_ref().and_then(|b| b.address.rsplit_once(':')).and_then(|(_, p)| p.parse::<u16>().ok());
        let address = match port {
            Some(p) if p != 623 => format!("{host}:{p}"),
            _ => host,
        };
        let kind = match current.as_ref().and_then(|b| b.kind.parse::<BmcType>().ok()) {
            Some(BmcType::Fake) => BmcType::Fake,
            Some(BmcType::Ipmi15) => BmcType::Ipmi15,
            _ => BmcType::IpmiLanplus,
        };
        let user = found["user"].as_str().unwrap_or(&self.cfg.bmc_user).to_owned();
        let access = dcim_drivers::BmcAccess {
            kind,
            address: address.clone(),
            user: user.clone(),
            password: password.clone(),
            mac: server.server.mac.clone(),
            tls_fingerprint: None,
        };
        let driver = self.drivers.power(&access).map_err(|e| StepError::fatal(e.to_string()))?;
        let named = |m: String| format!("the BMC at {address} as {user}: {m}");
        self.call(driver.status()).await.map_err(|e| e.named(named))?;
        let bmc = dcim_store::servers::BmcAccess {
            address: address.clone(),
            kind: kind.as_str().to_owned(),
            user: user.clone(),
            password,
            // An IPMI BMC now: a certificate pin has nothing left to check.
            tls_fingerprint: None,
            web_url: current.and_then(|b| b.web_url),
        };
        let patch = dcim_store::servers::ServerPatch { bmc: Some(Some(bmc)), ..Default::default() };
        self.store.update_server(server.server.id, &patch).await?;
        if let Some(ip) = &setup.ip {
            self.store.set_ip_status(ip.ip_id, "ok", "{}").await?;
        }
        memo.insert("bmc_done".into(), json!({"address": address, "user": user}));
        memo.remove("bmc_password");
        Ok(Outcome::Done)
    }

    /// The address `setup_ipmi` took, when the task ends before dcim reached the BMC there:
    /// back to its pool if the agent never gave it to the BMC; kept, as `fail` with the
    /// reason, if it did (the BMC answers on it until someone changes it, so handing it to
    /// another server would clash).
    pub(super) async fn bmc_ip_back(&self, task: &TaskRow, op: Option<&Operation>, fx: &mut ServerEffects) {
        let Some(ip) = op.and_then(Operation::bmc_ip) else { return };
        if !matches!(self.store.get_ip(ip.ip_id).await, Ok(row) if row.status == "allocating") {
            return;
        }
        // When the reports cannot be read, keep the address: a clash is worse than a leak.
        let given = self.store.task_reports(task.id).await.map_or(true, |r| r.iter().any(|(k, _)| k == "bmc"));
        fx.ip = Some(if given {
            let info = json!({"message": format!(
                "the BMC was given {} but dcim could not log in there; release the address once the BMC no longer uses it",
                ip.address
            )});
            IpEffect::Failed { ip_id: ip.ip_id, status: "fail".into(), info: info.to_string() }
        } else {
            IpEffect::Released { ip_id: ip.ip_id }
        });
    }
}
