//! Several provisioning segments in one dcim: each [`Netboot`] serves the servers of
//! the locations it names (a data centre, a hall with its own provisioning VLAN), one
//! may serve every location no other names. The task engine holds the set as its
//! one boot driver; a boot is prepared on the segment of the server's location and its
//! agent reports to that segment's own HTTP listener.

use std::collections::HashSet;

use async_trait::async_trait;
use dcim_drivers::{BootDriver, BootRequest, DriverError};

use crate::Netboot;

/// One segment: its service and the locations it serves (none: every other location).
pub struct Segment {
    pub locations: Vec<i64>,
    pub service: Netboot,
}

pub struct Segments {
    list: Vec<Segment>,
}

impl Segments {
    /// Refuses two segments for one location, and two for "every other location".
    pub fn new(list: Vec<Segment>) -> Result<Segments, String> {
        let mut seen = HashSet::new();
        let mut default = None;
        for s in &list {
            let name = &s.service.config().interface;
            if s.locations.is_empty()
                && let Some(other) = default.replace(name)
            {
                return Err(format!(
                    "netboot segments on {other} and {name} both serve every location; give one of them `locations`"
                ));
            }
            for l in &s.locations {
                if !seen.insert(*l) {
                    return Err(format!("location {l} is served by two netboot segments"));
                }
            }
        }
        Ok(Segments { list })
    }

    /// The segment of `location`: the one naming it, else the one serving every location.
    pub fn pick(&self, location: Option<i64>) -> Result<&Netboot, DriverError> {
        let named = location.and_then(|l| self.list.iter().find(|s| s.locations.contains(&l)));
        named.or_else(|| self.list.iter().find(|s| s.locations.is_empty())).map(|s| &s.service).ok_or_else(|| {
            DriverError::Unsupported(match location {
                Some(l) => format!("no netboot segment serves location {l}; add it to a segment's `locations`"),
                None => "no netboot segment serves servers without a location".into(),
            })
        })
    }
}

#[async_trait]
impl BootDriver for Segments {
    async fn prepare(&self, req: &BootRequest) -> Result<(), DriverError> {
        self.pick(req.location_id)?.prepare(req).await
    }

    /// Every segment forgets the task's boot: a server may have moved since.
    async fn cleanup(&self, task_id: i64, mac: &str) -> Result<(), DriverError> {
        for s in &self.list {
            s.service.cleanup(task_id, mac).await?;
        }
        Ok(())
    }

    fn agent_callback(&self, location: Option<i64>) -> Option<String> {
        self.pick(location).ok().and_then(|n| n.agent_callback(location))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NetbootConfig;

    fn service(interface: &str, base: &str) -> Netboot {
        let cfg: NetbootConfig = serde_json::from_value(serde_json::json!({
            "interface": interface, "server_ip": "10.0.0.1", "mode": "proxy",
            "http_base": base, "boot_files_dir": "/tmp"
        }))
        .unwrap();
        Netboot::new(cfg).unwrap()
    }

    #[tokio::test]
    async fn each_location_boots_on_its_own_segment() {
        let set = Segments::new(vec![
            Segment { locations: vec![1, 2], service: service("prov-a", "http://10.1.0.1:8081") },
            Segment { locations: vec![], service: service("prov-b", "http://10.2.0.1:8081") },
        ])
        .unwrap();
        assert_eq!(set.pick(Some(2)).unwrap().config().interface, "prov-a");
        assert_eq!(set.pick(Some(7)).unwrap().config().interface, "prov-b");
        assert_eq!(set.agent_callback(Some(1)).unwrap(), "http://10.1.0.1:8081/agent/v1/task");
        assert_eq!(set.agent_callback(None).unwrap(), "http://10.2.0.1:8081/agent/v1/task");

        let req = BootRequest {
            task_id: 5,
            secret: "s".into(),
            callback: "http://10.1.0.1:8081/agent/v1/task".into(),
            mac: "52:54:00:00:00:05".into(),
            mode: dcim_drivers::BootMode::Diag { clear_hdd: dcim_core::ClearMode::None },
            answer: serde_json::json!({}),
            location_id: Some(1),
        };
        set.prepare(&req).await.unwrap();
        assert_eq!(set.list[0].service.boots().len(), 1);
        assert_eq!(set.list[1].service.boots().len(), 0, "only the location's segment has the boot");
        set.cleanup(5, &req.mac).await.unwrap();
        assert_eq!(set.list[0].service.boots().len(), 0);

        let only =
            Segments::new(vec![Segment { locations: vec![1], service: service("p", "http://10.1.0.1") }]).unwrap();
        let e = only.pick(Some(3)).err().unwrap().to_string();
        assert!(e.contains("no netboot segment serves location 3"), "{e}");
    }

    #[test]
    fn overlapping_segments_are_refused() {
        let two_defaults = Segments::new(vec![
            Segment { locations: vec![], service: service("a", "http://10.1.0.1") },
            Segment { locations: vec![], service: service("b", "http://10.2.0.1") },
        ]);
        assert!(two_defaults.err().unwrap().contains("both serve every location"));
        let twice = Segments::new(vec![
            Segment { locations: vec![4], service: service("a", "http://10.1.0.1") },
            Segment { locations: vec![4], service: service("b", "http://10.2.0.1") },
        ]);
        assert!(twice.err().unwrap().contains("location 4 is served by two"));
    }
}
