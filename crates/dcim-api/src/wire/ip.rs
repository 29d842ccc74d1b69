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
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewIpnet {
    /// CIDR, e.g. `192.0.2.0/24` or `2001:db8::/64`.
    pub name: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(default)]
    pub vlan: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IpnetEdit {
    pub gateway: Option<String>,
    pub vlan: Option<String>,
    pub note: Option<String>,
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
    #[schema(value_type = bool)]
    pub is_public: bool,
    pub ranges: Vec<PoolRange>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IppoolEdit {
    pub name: Option<String>,
    pub note: Option<String>,
    #[serde(default, deserialize_with = "opt_bool_like")]
    #[schema(value_type = Option<bool>)]
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
    /// `allocating`, `deleting`, `ok`, `fail`, `allocation_fail`.
    pub status: String,
    #[schema(value_type = Object)]
    pub status_info: Value,
    /// `server` (the server's own address) or `ipmi` (its BMC's, from `setup_ipmi`).
    pub purpose: String,
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
    #[schema(value_type = bool)]
    pub set_as_main_ipv4: bool,
    pub userspace: Option<i64>,
}

/// `true`/`false`, or the strings `"true"`/`"false"` some clients send.
pub fn bool_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Str(s) if s == "true" || s == "on" => Ok(true),
        B::Str(s) if s == "false" || s == "off" || s.is_empty() => Ok(false),
        B::Str(s) => Err(serde::de::Error::custom(format!("'{s}' is not true or false"))),
    }
}

fn opt_bool_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool_like(d).map(Some)
}
