//! The enums and small value types whose spellings are fixed by the DCImanager 6
//! contract (`../shared/seed` in the development tree, fixtures in the repo).
//!
//! Each enum round-trips through the exact string the wire uses, and the same string
//! is what the database stores, so there is one spelling per value everywhere.

use serde::{Deserialize, Serialize};

/// Defines a string-backed enum with `as_str`, `FromStr` and serde in one spelling.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Every value's spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The contract's spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: stringify!($name),
                        value: s.to_owned(),
                        allowed: $name::NAMES,
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Stored as its spelling: a column of this enum reads as the enum (and a
        /// nullable one as `Option` of it) straight from the row.
        #[cfg(feature = "sqlx")]
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
            }
        }

        /// The same for the store's native SQLite reads.
        #[cfg(feature = "rusqlite")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                v.as_str()?.parse().map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

/// A string that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {what}; expected one of {allowed:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

wire_enum! {
    /// A user's system role.
    Role { Admin => "@admin", User => "@user" }
}

wire_enum! {
    /// The server `state` of the seed.
    ServerState {
        Ok => "ok",
        Suspending => "suspending",
        Suspended => "suspended",
        SuspendError => "suspend_error",
        Resuming => "resuming",
        ResumeError => "resume_error",
    }
}

wire_enum! {
    /// A task's `status`.
    TaskStatus {
        Pending => "pending",
        Running => "running",
        Complete => "complete",
        Fail => "fail",
        Canceled => "canceled",
    }
}

impl TaskStatus {
    /// Pending or running: the task holds its server.
    pub fn is_active(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Running)
    }

    /// Ended without doing what it was asked.
    pub fn is_unsuccessful(self) -> bool {
        matches!(self, TaskStatus::Fail | TaskStatus::Canceled)
    }
}

wire_enum! {
    /// A task step's `status` in `progress_info`.
    StepStatus {
        Pending => "pending",
        Running => "running",
        Complete => "complete",
        Skipped => "skipped",
        Fail => "fail",
        Canceled => "canceled",
    }
}

wire_enum! {
    /// A webhook delivery's `status`: to be tried (again), or ended.
    DeliveryStatus { Pending => "pending", Delivered => "delivered", Failed => "failed" }
}

wire_enum! {
    /// A server's power as its power driver last reported it.
    PowerStatus { On => "on", Off => "off", Unknown => "unknown" }
}

wire_enum! {
    /// The BMC kinds of the seed (`ipmi.type`), plus dcim's `redfish` and `fake`.
    BmcType {
        Ipmi15 => "IPMI v1.5/v2",
        IpmiLanplus => "IPMI v2(lanplus)",
        Redfish => "redfish",
        Fake => "fake",
    }
}

wire_enum! {
    /// How dcim talks to a switch or a PDU.
    DeviceProtocol { SnmpV2c => "snmp_v2c", SnmpV3 => "snmp_v3", Fake => "fake" }
}

wire_enum! {
    /// An address's `status`: taken and waiting for its task (`allocating`, `deleting`),
    /// the server's (`ok`), or what a failed task left (`fail`, `allocation_fail`).
    IpStatus {
        Ok => "ok",
        Allocating => "allocating",
        Deleting => "deleting",
        InProgress => "in_progress",
        Fail => "fail",
        AllocationFail => "allocation_fail",
    }
}

impl IpStatus {
    /// Taken and waiting for its task: it cannot be released or made main until the
    /// task ends (the store holds the same rule in `mark_ip_and_start`).
    pub fn is_waiting(self) -> bool {
        matches!(self, IpStatus::Allocating | IpStatus::Deleting | IpStatus::InProgress)
    }
}

wire_enum! {
    /// A switch port's `admin_status` / `oper_status`.
    PortStatus { Up => "up", Down => "down", Testing => "testing", Unknown => "unknown" }
}

wire_enum! {
    /// A PDU outlet's `power_status`.
    OutletStatus { Up => "up", Down => "down", Unknown => "unknown" }
}

wire_enum! {
    /// How the disks are wiped (`clear_hdd`): not, the partition tables and signatures
    /// (`simple`), or every block (`full`).
    ClearMode { None => "none", Simple => "simple", Full => "full" }
}

wire_enum! {
    /// The RAID levels of `operation_os` (`hdd_raid`).
    RaidLevel { NoRaid => "no_raid", Raid0 => "raid_0", Raid1 => "raid_1", Raid5 => "raid_5", Raid10 => "raid_10" }
}

impl RaidLevel {
    /// The identical disks the level needs at least.
    pub fn min_disks(self) -> usize {
        match self {
            RaidLevel::NoRaid => 1,
            RaidLevel::Raid0 | RaidLevel::Raid1 => 2,
            RaidLevel::Raid5 => 3,
            RaidLevel::Raid10 => 4,
        }
    }
}

wire_enum! {
    /// The `kind` of an in-band agent's report: what it found or did (`hardware`, `bmc`,
    /// `wiped`, `installed`), how far it is (`progress`), or that it ended (`done`,
    /// `failed`).
    ReportKind {
        Hardware => "hardware",
        Bmc => "bmc",
        Wiped => "wiped",
        Installed => "installed",
        Progress => "progress",
        Done => "done",
        Failed => "failed",
    }
}

wire_enum! {
    /// What an address is for: a server's own (`server`), its BMC's (`ipmi`), or given
    /// out through IPmanager without a server (`ipmgr`).
    IpPurpose { Server => "server", Ipmi => "ipmi", Ipmgr => "ipmgr" }
}

wire_enum! {
    /// What an OS template boots: an installable OS, diagnostics, or a rescue system.
    TemplateType { Os => "os", Diag => "diag", Rescue => "rescue" }
}

/// A server is free (rentable) when nobody owns it, it passed diagnostics, it is in
/// state `ok` and diagnostics recorded no error. The storage layer counts free servers
/// by the same rule in SQL (the triggers of its migration 0017 that keep
/// `configuration_counts`); the HTTP tests check its answers.
pub fn is_free(owner: Option<i64>, is_new: bool, state: ServerState, has_diag_error: bool) -> bool {
    owner.is_none() && !is_new && state == ServerState::Ok && !has_diag_error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_contract_spelling() {
        for s in ServerState::ALL {
            assert_eq!(s.as_str().parse::<ServerState>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!("IPMI v2(lanplus)".parse::<BmcType>().unwrap(), BmcType::IpmiLanplus);
        let err = "root".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("@admin"), "{err}");
    }

    #[test]
    fn free_means_unowned_tested_ok_and_healthy() {
        assert!(is_free(None, false, ServerState::Ok, false));
        assert!(!is_free(Some(1), false, ServerState::Ok, false));
        assert!(!is_free(None, true, ServerState::Ok, false));
        assert!(!is_free(None, false, ServerState::Suspended, false));
        assert!(!is_free(None, false, ServerState::Ok, true));
    }
}
