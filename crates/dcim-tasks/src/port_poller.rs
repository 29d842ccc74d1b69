//! The port poller: reads every SNMP switch's port statuses (ifAdminStatus,
//! ifOperStatus) and every SNMP PDU's outlet states at an interval, so the port
//! lists show a cable pulled or a port shut at the switch's console, not only what
//! dcim itself did. Devices are read with bounded concurrency and a timeout each, so
//! a dead switch delays no other; it keeps its last known statuses and the reason
//! goes to the log. Only changed rows are written. Fake devices are skipped: their
//! state changes only through dcim. Like the power poller it takes no input and
//! runs in every process.

use std::sync::Arc;

use dcim_drivers::{DeviceAccess, DriverError};
use dcim_store::inventory::{DeviceKind, PolledDevice, PortStates};
use tokio::sync::Semaphore;

use crate::Engine;
use crate::workers::Round;

/// One round: reads every switch and PDU once, and says how many answered.
pub async fn poll_once(engine: &Arc<Engine>, concurrency: usize) -> Round {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for kind in [DeviceKind::Switch, DeviceKind::Pdu] {
        let devices =
            engine.store.polled_devices(kind).await.map_err(|e| format!("listing the devices failed: {e}"))?;
        for d in devices {
            let (engine, permits) = (engine.clone(), permits.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await.ok()?;
                Some(poll_one(&engine, kind, d).await)
            });
        }
    }
    let answers: Vec<bool> = set.join_all().await.into_iter().flatten().collect();
    let failed = answers.iter().filter(|ok| !**ok).count();
    engine.drivers.metrics().poller_round("port", failed as u64);
    Ok(format!("{} of {} switches and PDUs answered", answers.len() - failed, answers.len()))
}

async fn read(engine: &Engine, kind: DeviceKind, d: &PolledDevice) -> Result<Vec<PortStates>, DriverError> {
    let protocol = d.protocol;
    let access = DeviceAccess { address: d.ip.clone(), secret: d.secret.clone(), location: Some(d.location_id) };
    let states = match kind {
        DeviceKind::Switch => engine
            .drivers
            .switch(protocol, &access)?
            .port_states()
            .await?
            .into_iter()
            .map(|p| PortStates {
                idx: p.index,
                admin_status: p.admin_status.as_str().into(),
                oper_status: p.oper_status.as_str().into(),
            })
            .collect(),
        DeviceKind::Pdu => engine
            .drivers
            .pdu(protocol, &d.model, &access)?
            .outlets()
            .await?
            .into_iter()
            .map(|o| PortStates {
                idx: o.index,
                admin_status: o.status.as_str().into(),
                oper_status: o.status.as_str().into(),
            })
            .collect(),
    };
    Ok(states)
}

async fn poll_one(engine: &Engine, kind: DeviceKind, d: PolledDevice) -> bool {
    let what = if kind == DeviceKind::Switch { "switch" } else { "pdu" };
    let states = match tokio::time::timeout(engine.cfg.call_timeout, read(engine, kind, &d)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(device = %d.name, kind = what, error = %e, "port poll: device not read");
            return false;
        }
        Err(_) => {
            let ms = engine.cfg.call_timeout.as_millis();
            tracing::warn!(device = %d.name, kind = what, "port poll: no answer within {ms} ms");
            return false;
        }
    };
    match engine.store.set_port_states(kind, d.id, &states).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(device = %d.name, kind = what, changed = n, "port poll: statuses changed"),
        Err(e) => tracing::warn!(device = %d.name, kind = what, error = %e, "port poll: recording failed"),
    }
    true
}
