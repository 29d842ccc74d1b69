//! The table of prepared boots, shared by the DHCP, TFTP and HTTP sides, and the
//! log of what the service answered.
//!
//! The table is the only thing that makes the service answer a machine: DHCP offers
//! nothing and HTTP serves no script to a MAC that has no entry, so a boot (and the
//! secret it carries) lives exactly as long as the task that prepared it. It is kept
//! in memory on purpose: after a restart the task engine prepares its running boots
//! again (`prepare` is idempotent), and a secret never reaches the database twice.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dcim_core::Mac;
use dcim_drivers::BootMode;

/// One machine's network boot, as the task engine prepared it.
#[derive(Debug, Clone)]
pub struct PreparedBoot {
    pub task_id: i64,
    pub secret: String,
    pub callback: String,
    pub mode: BootMode,
    pub answer: serde_json::Value,
    pub prepared_at: Instant,
}

/// MAC → prepared boot. Cheap to clone; all clones share one table.
#[derive(Debug, Clone, Default)]
pub struct BootTable {
    inner: Arc<Mutex<HashMap<Mac, PreparedBoot>>>,
}

impl BootTable {
    /// Registers (or replaces: a newer task supersedes an older one) the boot of `mac`.
    pub fn insert(&self, mac: Mac, boot: PreparedBoot) {
        self.lock().insert(mac, boot);
    }

    /// Removes the boot of `mac` if it still belongs to `task_id`; a boot a newer
    /// task prepared in the meantime stays. Returns whether one was removed.
    pub fn remove(&self, mac: &Mac, task_id: i64) -> bool {
        let mut t = self.lock();
        if t.get(mac).is_some_and(|b| b.task_id == task_id) {
            t.remove(mac);
            return true;
        }
        false
    }

    pub fn get(&self, mac: &Mac) -> Option<PreparedBoot> {
        self.lock().get(mac).cloned()
    }

    pub fn contains(&self, mac: &Mac) -> bool {
        self.lock().contains_key(mac)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Mac, PreparedBoot>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Something the service did, for tests and for an operator's "why did it not boot".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A DHCP offer (full mode: with `ip`; proxy mode: boot options only).
    DhcpOffer {
        mac: Mac,
        ip: Option<Ipv4Addr>,
        boot_file: String,
    },
    DhcpAck {
        mac: Mac,
        ip: Option<Ipv4Addr>,
        boot_file: String,
    },
    DhcpNak {
        mac: Mac,
    },
    /// A DHCP request left unanswered, and why.
    DhcpIgnored {
        mac: Mac,
        reason: String,
    },
    RouterAdvertisement {
        solicited: bool,
    },
    TftpRead {
        peer: SocketAddr,
        file: String,
        found: bool,
    },
    /// `GET /boot/{mac}.ipxe`; `found` is false when it was answered 404.
    Script {
        mac: Mac,
        found: bool,
    },
    /// A boot file (kernel, initramfs, image) requested over HTTP.
    File {
        path: String,
    },
}

#[derive(Debug, Clone)]
pub struct Event {
    pub at: Instant,
    pub wall: SystemTime,
    pub kind: EventKind,
}

/// The last [`EventLog::CAPACITY`] events.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    inner: Arc<Mutex<VecDeque<Event>>>,
}

impl EventLog {
    pub const CAPACITY: usize = 1024;

    pub fn push(&self, kind: EventKind) {
        let mut q = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() == Self::CAPACITY {
            q.pop_front();
        }
        q.push_back(Event { at: Instant::now(), wall: SystemTime::now(), kind });
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Waits until an event matches `pred` (polling), returning it, or `None` after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&EventKind) -> bool) -> Option<Event> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(e) = self.snapshot().into_iter().find(|e| pred(&e.kind)) {
                return Some(e);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Parses a MAC from a DHCP `chaddr` (Ethernet: six bytes).
pub fn mac_from_bytes(b: &[u8]) -> Option<Mac> {
    let b = b.get(..6)?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Mac::parse("chaddr", &hex).ok()
}

/// `52-54-00-78-00-01`: the MAC as it appears in URLs (iPXE's `${mac:hexhyp}`).
pub fn mac_hyphens(mac: &Mac) -> String {
    mac.to_string().replace(':', "-")
}
