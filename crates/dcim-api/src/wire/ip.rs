//! IPmanager (`/ip/v3`) and address shapes. Counts are decimal strings: IPv6
//! counts pass what a JSON number can carry.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A network as `GET /ip/v3/ipnet` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ipnet {
    pub id: i64,
    pub name: String,
    /// 2 for IPv4, 10 for IPv6.
    pub family: i64,
    /// The prefix length.
    pub mask: i64,
    pub gateway: String,
    pub userspace: i64,
    pub vlan: String,
    pub note: String,
    /// Addresses in the network.
    pub size: String,
    pub using_ip: String,
    /// Addresses that may be handed out (without network, broadcast and gateway).
    pub total_ip: String,
    /// The network's first and last address.
    pub first: String,
    pub last: String,
    pub need_reserve: bool,
    /// Pools with a range in this network.
    pub ippools: Vec<i64>,
    /// `container` when networks of its userspace lie inside it (it then gives out no
    /// address itself), else `active`.
    pub kind: &'static str,
    /// The smallest network it lies inside, if any.
    pub parent: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewIpnet {
    /// CIDR, e.g. `192.0.2.0/24` or `2001:db8::/64`.
    pub name: String,
    /// A host address of the network; absent, `null` or "" for none.
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub vlan: String,
    #[serde(default)]
    pub note: String,
    /// Kept and shown as IPmanager does; default true.
    #[serde(default)]
    pub need_reserve: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IpnetEdit {
    /// Accepted only unchanged: a network's address does not change.
    pub name: Option<String>,
    pub gateway: Option<String>,
    pub vlan: Option<String>,
    pub note: Option<String>,
    pub need_reserve: Option<bool>,
}

/// A pool as `GET /ip/v3/ippool` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ippool {
    pub id: i64,
    pub name: String,
    pub userspace: i64,
    pub note: String,
    /// `"true"` or `"false"`.
    pub is_public: String,
    pub using_ip: String,
    pub using_ipv4: String,
    pub using_ipv6: String,
    pub total_ip: String,
    pub total_ipv4: String,
    pub total_ipv6: String,
    /// The networks the pool's ranges are in.
    pub ipnets: Vec<PoolNet>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolNet {
    pub id: i64,
    pub name: String,
    pub gateway: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PoolRange {
    pub ipnet: i64,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewIppool {
    pub name: String,
    #[serde(default)]
    pub note: String,
    #[serde(default, deserialize_with = "bool_like")]
    #[schema(schema_with = bool_like_schema)]
    pub is_public: bool,
    pub ranges: Vec<PoolRange>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IppoolEdit {
    pub name: Option<String>,
    pub note: Option<String>,
    #[serde(default, deserialize_with = "opt_bool_like")]
    #[schema(schema_with = opt_bool_like_schema)]
    pub is_public: Option<bool>,
}

/// An address as `GET /dci/v3/ip` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ip {
    pub domain: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub gateway: String,
    pub id: i64,
    pub name: String,
    pub network: String,
    /// The server's name.
    pub server: Option<String>,
    /// `allocating`, `deleting`, `in_progress`, `ok`, `fail`, `allocation_fail`.
    #[schema(value_type = String)]
    pub status: dcim_core::IpStatus,
    #[schema(value_type = Object)]
    pub status_info: Value,
    /// `server` (the server's own address) or `ipmi` (its BMC's, from `setup_ipmi`).
    #[schema(value_type = String)]
    pub purpose: dcim_core::IpPurpose,
}

/// The seed's "IP address allocation to server" body. 0 and "" mean "not given".
#[derive(Debug, Deserialize, ToSchema)]
pub struct IpRequest {
    #[serde(default)]
    pub domain: String,
    /// `ipv4` (default) or `ipv6`.
    pub family: Option<String>,
    /// A given address.
    pub ip_name: Option<String>,
    /// The next free address of this network...
    pub ip_net: Option<i64>,
    /// ...or of this pool.
    pub ip_pool: Option<i64>,
    /// Make it the server's main address of its family.
    #[serde(default, deserialize_with = "bool_like")]
    #[schema(schema_with = bool_like_schema)]
    pub set_as_main_ipv4: bool,
    pub userspace: Option<i64>,
}

/// `true`/`false`, or the strings `"true"`/`"false"` (`"on"`/`"off"`, `""` for false)
/// some clients send.
pub fn bool_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::de::{Error, Visitor};
    struct BoolVisitor;
    impl Visitor<'_> for BoolVisitor {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E: Error>(self, b: bool) -> Result<bool, E> {
            Ok(b)
        }
        fn visit_str<E: Error>(self, s: &str) -> Result<bool, E> {
            match s {
                "true" | "on" => Ok(true),
                "false" | "off" | "" => Ok(false),
                _ => Err(E::custom(format_args!("'{s}' is not true or false"))),
            }
        }
    }
    d.deserialize_any(BoolVisitor)
}

/// What [`bool_like`] takes, as the OpenAPI document says it.
fn bool_like_schema() -> utoipa::openapi::Object {
    bool_like_object(false)
}

/// What [`opt_bool_like`] takes.
fn opt_bool_like_schema() -> utoipa::openapi::Object {
    bool_like_object(true)
}

fn bool_like_object(nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let mut types = vec![Type::Boolean, Type::String];
    let mut values = vec![
        serde_json::json!(true),
        serde_json::json!(false),
        "true".into(),
        "false".into(),
        "on".into(),
        "off".into(),
        "".into(),
    ];
    if nullable {
        types.push(Type::Null);
        values.push(serde_json::Value::Null);
    }
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(types))
        .enum_values(Some(values))
        .description(Some("`true` or `false`; the strings `\"true\"`, `\"on\"`, `\"false\"`, `\"off\"` and `\"\"` too"))
        .build()
}

/// [`bool_like`], or `null` for not given.
fn opt_bool_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct BoolLike(bool);
    impl<'de> Deserialize<'de> for BoolLike {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            bool_like(d).map(BoolLike)
        }
    }
    Ok(Option::<BoolLike>::deserialize(d)?.map(|b| b.0))
}

/// An IPmanager userspace: networks, pools and addresses apart from another's.
#[derive(Debug, Serialize, ToSchema)]
pub struct Userspace {
    pub id: i64,
    pub is_public: bool,
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserspaceBody {
    #[serde(default)]
    pub note: String,
}

/// `POST /ip/v3/userspace/{id}/ippool`: a pool without ranges yet.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserspacePool {
    pub name: String,
    #[serde(default)]
    pub note: String,
}

/// A pool range as IPmanager shows it; `name` is `first-last`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Range {
    pub id: i64,
    /// 2 for IPv4, 10 for IPv6.
    pub family: i64,
    pub ippool: i64,
    pub ipnet: i64,
    pub name: String,
    pub using_ip: String,
    pub total_ip: String,
    pub first: String,
    pub last: String,
    /// Ranges are never locked in dcim.
    pub locked: bool,
}

/// `POST /ip/v3/ippool/{id}/range` and `POST /ip/v3/range/{id}`: `name` is
/// `first-last`, a CIDR, or one address.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RangeBody {
    pub name: String,
}

/// An address as IPmanager shows it (`/ip/v3/ip`, `/dci/v3/ipmgr/ip`).
#[derive(Debug, Serialize, ToSchema)]
pub struct IpmgrIp {
    pub id: i64,
    pub name: String,
    /// The same as `name`: DCImanager's `ipmgr` lists carry both.
    pub ip_addr: String,
    pub domain: String,
    pub ipnet: i64,
    pub ipnet_name: String,
    /// Absent when the address is in no pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ippool: Option<i64>,
    /// One address: dcim gives out no subnets.
    pub size: i64,
    /// `busy`, `special`, `locked`, `problem`, `service`, `extended`, `dnsbl`, `deleted`.
    pub status: String,
    pub note: String,
    pub userspace: i64,
    pub locked: bool,
    pub first: String,
    /// The server holding it (absent for an address IPmanager gave out alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<i64>,
    /// `server`, `ipmi` (a server's BMC) or `ipmgr`.
    #[schema(value_type = String)]
    pub purpose: dcim_core::IpPurpose,
}

/// `POST /ip/v3/ipnet/{id}/ip` and `POST /ip/v3/userspace/{id}/ip`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IpCreate {
    /// The address; absent in a network: its next free one.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub ippool: Option<i64>,
}

/// `POST /ip/v3/ippool/{id}/ip`: the pool's next free address.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IpAllocate {
    #[serde(default)]
    pub domain: String,
    /// `ipv4` (default) or `ipv6`.
    #[serde(default)]
    pub family: Option<String>,
    /// Only a single address: 32 (IPv4) or 128 (IPv6).
    #[serde(default)]
    pub ip_prefix: Option<i64>,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub prefered_net: Option<i64>,
    #[serde(default)]
    pub subnet_by_address: Option<bool>,
    #[serde(default)]
    pub ready_for_empty_gw: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IpAllocated {
    pub id: i64,
    pub ids: Vec<i64>,
}

/// `POST /ip/v3/ip/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IpEdit {
    pub domain: Option<String>,
    pub status: Option<String>,
    pub note: Option<String>,
    pub locked: Option<bool>,
}

/// A change of an address: `old` is null when it was created, `new` when deleted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = IpHistoryEntry)]
pub struct HistoryEntry {
    pub id: i64,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<i64>,
    pub date_time: String,
    #[schema(value_type = Object)]
    pub data: Value,
}
