//! Every driver [`crate::Drivers`] hands out is wrapped here, so each call is counted
//! in [`dcim_metrics::Metrics`] by protocol, operation and outcome, with its latency,
//! whatever the protocol. The wrappers only measure: they pass calls and answers on.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use dcim_core::{OutletStatus, PortStatus};
use dcim_metrics::Metrics;

use crate::{
    BootDevice, BootDriver, BootRequest, DriverError, OutletInfo, PduDriver, PortInfo, PortState, PowerDriver,
    PowerState, SwitchDriver,
};

/// The outcome label of a call's result.
pub fn outcome<T>(r: &Result<T, DriverError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

/// A driver of any kind with the protocol it speaks.
pub struct Instrumented<D: ?Sized> {
    pub(crate) inner: Box<D>,
    pub(crate) protocol: &'static str,
    pub(crate) metrics: Arc<Metrics>,
}

impl<D: ?Sized> Instrumented<D> {
    async fn measure<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        let started = Instant::now();
        let r = call.await;
        self.metrics.driver_call(self.protocol, operation, outcome(&r), started.elapsed().as_secs_f64());
        r
    }
}

#[async_trait]
impl PowerDriver for Instrumented<dyn PowerDriver> {
    async fn status(&self) -> Result<PowerState, DriverError> {
        self.measure("status", self.inner.status()).await
    }
    async fn on(&self) -> Result<(), DriverError> {
        self.measure("on", self.inner.on()).await
    }
    async fn off(&self) -> Result<(), DriverError> {
        self.measure("off", self.inner.off()).await
    }
    async fn reset(&self) -> Result<(), DriverError> {
        self.measure("reset", self.inner.reset()).await
    }
    async fn set_boot_device(&self, device: BootDevice, efi: bool, persistent: bool) -> Result<(), DriverError> {
        self.measure("set_boot_device", self.inner.set_boot_device(device, efi, persistent)).await
    }
}

#[async_trait]
impl SwitchDriver for Instrumented<dyn SwitchDriver> {
    async fn ports(&self) -> Result<Vec<PortInfo>, DriverError> {
        self.measure("ports", self.inner.ports()).await
    }
    async fn set_admin(&self, index: i64, up: bool) -> Result<(), DriverError> {
        self.measure("set_admin", self.inner.set_admin(index, up)).await
    }
    async fn oper_status(&self, index: i64) -> Result<PortStatus, DriverError> {
        self.measure("oper_status", self.inner.oper_status(index)).await
    }
    async fn port_states(&self) -> Result<Vec<PortState>, DriverError> {
        self.measure("port_states", self.inner.port_states()).await
    }
}

#[async_trait]
impl PduDriver for Instrumented<dyn PduDriver> {
    async fn outlets(&self) -> Result<Vec<OutletInfo>, DriverError> {
        self.measure("outlets", self.inner.outlets()).await
    }
    async fn outlet_status(&self, index: i64) -> Result<OutletStatus, DriverError> {
        self.measure("outlet_status", self.inner.outlet_status(index)).await
    }
    async fn set_outlet(&self, index: i64, on: bool) -> Result<(), DriverError> {
        self.measure("set_outlet", self.inner.set_outlet(index, on)).await
    }
    async fn reboot_outlet(&self, index: i64) -> Result<(), DriverError> {
        self.measure("reboot_outlet", self.inner.reboot_outlet(index)).await
    }
}

#[async_trait]
impl BootDriver for Instrumented<dyn BootDriver> {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError> {
        self.measure("boot_prepare", self.inner.prepare(req)).await
    }
    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError> {
        self.measure("boot_cleanup", self.inner.cleanup(task_id, mac)).await
    }
    fn agent_callback(&self, location: Option<i64>) -> Option<String> {
        self.inner.agent_callback(location)
    }
}
