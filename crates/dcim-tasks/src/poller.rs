//! The power poller: asks every BMC for the server's power at an interval, with
//! bounded concurrency and a timeout per BMC, so a dead or slow BMC marks only its
//! own server `unknown` (with the reason in `ipmi.status_info`) and never delays
//! the others. Servers with a running operation are left to it. Every process
//! polls; writes happen only when something changed.

use std::sync::Arc;

use dcim_core::PowerStatus;
use dcim_drivers::BmcAccess;
use dcim_store::tasks::PollTarget;
use serde_json::json;

use crate::Engine;
use crate::workers::Round;

/// One round: polls every BMC once, and says how many answered.
pub async fn poll_once(engine: &Arc<Engine>, concurrency: usize) -> Round {
    let targets = engine.store.poll_targets().await.map_err(|e| format!("listing the BMCs failed: {e}"))?;
    // At most `concurrency` polls exist at a time: a task per BMC spawned up front held
    // 100,000 of them at once (with their BMC's access) at that scale.
    let concurrency = concurrency.max(1);
    let mut set = tokio::task::JoinSet::new();
    let mut answers: Vec<bool> = Vec::with_capacity(targets.len());
    for t in targets {
        if set.len() >= concurrency
            && let Some(done) = set.join_next().await
        {
            answers.push(done.unwrap_or(false));
        }
        let engine = engine.clone();
        set.spawn(async move { poll_one(&engine, t).await });
    }
    answers.extend(set.join_all().await);
    let failed = answers.iter().filter(|ok| !**ok).count();
    engine.drivers.metrics().poller_round("power", failed as u64);
    Ok(format!("{} of {} BMCs answered", answers.len() - failed, answers.len()))
}

async fn poll_one(engine: &Engine, t: PollTarget) -> bool {
    let bmc = BmcAccess {
        kind: t.ipmi_type,
        address: t.ipmi_address,
        user: t.ipmi_user,
        password: t.ipmi_password,
        mac: t.mac,
        tls_fingerprint: t.ipmi_tls_fingerprint.as_deref().and_then(dcim_tls::parse_fingerprint),
        location: Some(t.location_id),
    };
    let answer = match engine.drivers.power(&bmc) {
        Err(e) => Err(e.to_string()),
        Ok(driver) => match tokio::time::timeout(engine.cfg.call_timeout, driver.status()).await {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the BMC did not answer within {} ms", engine.cfg.call_timeout.as_millis())),
        },
    };
    let (power, info, ok) = match answer {
        Ok(state) => (PowerStatus::from(state), "{}".to_owned(), true),
        Err(reason) => (PowerStatus::Unknown, json!({"message": reason}).to_string(), false),
    };
    if (power != t.power_status || info != t.ipmi_status_info)
        && let Err(e) = engine.store.set_bmc_state(t.server_id, power, &info).await
    {
        tracing::warn!(server = t.server_id.get(), error = %e, "power poll: recording failed");
    }
    ok
}
