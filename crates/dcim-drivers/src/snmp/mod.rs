//! SNMP for switches and PDUs: one small client ([`Client`]) over the `snmp2` crate
//! that does GET, GETBULK table walks and SET in v2c and v3, adds the per-request
//! timeout and retries that crate leaves to its caller, and turns every failure into
//! a [`DriverError`] that says what to fix (the address, the community, the v3 user
//! and keys, write access, the port). [`SnmpSwitch`] reads IF-MIB and opens or shuts
//! ports; [`pdu`] holds the PDU MIB families, one file each.
//!
//! Why `snmp2`: of the crates tried against snmpsim it is the one that does v3 USM
//! (MD5, SHA-1 and SHA-2 authentication; DES and AES privacy) as well as v2c, with
//! GETBULK and SET, async on tokio, and it hands back a response's error-status
//! (`csnmp` does v2c only and reports a refused SET as success; `rasn-snmp` has the
//! message types but no transport and no USM).
//!
//! A client keeps one UDP socket (and, for v3, the agent's engine id and clock) for
//! the life of its driver object; a request that times out drops the socket, so a
//! late answer can never be read as the answer to the next request. Nothing here
//! touches the database, and secrets (communities, keys) never appear in messages.

pub mod pdu;
mod switch;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dcim_core::DeviceProtocol;
use serde::Deserialize;
use snmp2::{AsyncSession, Oid, Value, v3};
use tokio::sync::Mutex;

use crate::{DeviceAccess, DriverError};

pub use switch::SnmpSwitch;

/// How the client waits for agents.
#[derive(Debug, Clone)]
pub struct SnmpSettings {
    /// How long one request waits for its answer.
    pub timeout: Duration,
    /// How many times a request is sent again after a timeout before the agent
    /// counts as unreachable.
    pub retries: u32,
    /// Rows asked for by one GETBULK of a table walk.
    pub max_repetitions: u32,
}

impl Default for SnmpSettings {
    fn default() -> Self {
        SnmpSettings { timeout: Duration::from_millis(1000), retries: 2, max_repetitions: 24 }
    }
}

/// SNMP access data as the inventory stores it (the API's `snmp` object, as JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Access {
    community: Option<String>,
    user: Option<String>,
    auth_protocol: Option<String>,
    auth_password: Option<String>,
    priv_protocol: Option<String>,
    priv_password: Option<String>,
    context: Option<String>,
}

enum Credentials {
    V2c { community: Vec<u8> },
    V3 { user: String, security: Box<v3::Security> },
}

/// A value an agent returned, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Int(i64),
    /// Counter, Gauge/Unsigned32, TimeTicks, Counter64.
    Uint(u64),
    Str(Vec<u8>),
    Oid(Vec<u64>),
    Ip([u8; 4]),
    Null,
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
    /// A type these drivers have no use for.
    Other,
}

impl Val {
    pub fn int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// An OCTET STRING as text (trailing NULs, which some agents send, removed).
    pub fn text(&self) -> Option<String> {
        match self {
            Val::Str(b) => Some(String::from_utf8_lossy(b).trim_end_matches('\0').trim().to_owned()),
            _ => None,
        }
    }

    /// The agent has no such object or instance.
    pub fn is_missing(&self) -> bool {
        matches!(self, Val::NoSuchObject | Val::NoSuchInstance | Val::EndOfMibView)
    }

    fn of(v: &Value<'_>) -> Val {
        match v {
            Value::Integer(i) => Val::Int(*i),
            Value::Counter32(u) | Value::Unsigned32(u) | Value::Timeticks(u) => Val::Uint(u64::from(*u)),
            Value::Counter64(u) => Val::Uint(*u),
            Value::OctetString(b) => Val::Str(b.to_vec()),
            Value::ObjectIdentifier(o) => Val::Oid(arcs(o)),
            Value::IpAddress(a) => Val::Ip(*a),
            Value::Null => Val::Null,
            Value::NoSuchObject => Val::NoSuchObject,
            Value::NoSuchInstance => Val::NoSuchInstance,
            Value::EndOfMibView => Val::EndOfMibView,
            _ => Val::Other,
        }
    }
}

fn arcs(o: &Oid<'_>) -> Vec<u64> {
    o.iter().map(Iterator::collect).unwrap_or_default()
}

fn oid(arcs: &[u64]) -> Result<Oid<'static>, DriverError> {
    Oid::from(arcs).map_err(|_| DriverError::Protocol(format!("{} is not a valid OID", dotted(arcs))))
}

/// `1.3.6.1...`
pub fn dotted(arcs: &[u64]) -> String {
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// `base.index`
pub fn at(base: &[u64], index: i64) -> Vec<u64> {
    let mut o = base.to_vec();
    o.push(u64::try_from(index).unwrap_or(0));
    o
}

/// One row of a walked table: the index suffix and a value per column (if the
/// agent has that column for the row).
pub type Rows = BTreeMap<Vec<u64>, Vec<Option<Val>>>;

/// What a SET writes, for error messages: the object (`ifAdminStatus.5`) and what
/// to tell the operator when the agent has no such instance.
pub struct Target<'a> {
    pub name: &'a str,
    pub missing: &'a str,
}

enum Req<'a> {
    Get(&'a [Oid<'static>]),
    Bulk(&'a [Oid<'static>], u32),
    Set(&'a Oid<'static>, i64),
}

struct Answer {
    error_status: u32,
    error_index: u32,
    varbinds: Vec<(Vec<u64>, Val)>,
}

/// Why the last try of a request failed, when no try succeeded.
enum Lost {
    NoAnswer,
    Closed,
    Open(String),
}

/// An SNMP agent at one address with one set of credentials.
pub struct Client {
    target: String,
    creds: Credentials,
    settings: SnmpSettings,
    session: Mutex<Option<Box<AsyncSession>>>,
}

impl Client {
    /// Reads the access data; no I/O until the first request.
    pub fn new(
        protocol: DeviceProtocol,
        access: &DeviceAccess,
        settings: &SnmpSettings,
    ) -> Result<Client, DriverError> {
        let a: Access = if access.secret.trim().is_empty() {
            Access::default()
        } else {
            serde_json::from_str(&access.secret)
                .map_err(|e| DriverError::Protocol(format!("the stored SNMP access data is unreadable: {e}")))?
        };
        let creds = match protocol {
            DeviceProtocol::SnmpV2c => {
                let community = a.community.filter(|c| !c.is_empty()).ok_or_else(|| {
                    DriverError::Auth("no SNMP community is set for this device; set snmp.community".into())
                })?;
                Credentials::V2c { community: community.into_bytes() }
            }
            DeviceProtocol::SnmpV3 => v3_credentials(a)?,
            DeviceProtocol::Fake => return Err(DriverError::Unsupported("a fake device has no SNMP agent".into())),
        };
        Ok(Client {
            target: socket_target(&access.address),
            creds,
            settings: settings.clone(),
            session: Mutex::new(None),
        })
    }

    /// `host:port` the requests go to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Who writes, in messages: never the community itself.
    fn who(&self) -> String {
        match &self.creds {
            Credentials::V2c { .. } => "the community".into(),
            Credentials::V3 { user, .. } => format!("SNMPv3 user '{user}'"),
        }
    }

    /// GETs objects; the values come back in the order asked.
    pub async fn get(&self, oids: &[Vec<u64>]) -> Result<Vec<Val>, DriverError> {
        let asked = oids.iter().map(|o| oid(o)).collect::<Result<Vec<_>, _>>()?;
        let a = self.request(&Req::Get(&asked)).await?;
        if a.error_status != 0 {
            return Err(DriverError::Protocol(format!(
                "{} answered a GET with {}",
                self.target,
                status_name(a.error_status)
            )));
        }
        Ok(a.varbinds.into_iter().map(|(_, v)| v).collect())
    }

    /// Walks table columns side by side with GETBULK and returns the rows found.
    pub async fn walk(&self, columns: &[&[u64]]) -> Result<Rows, DriverError> {
        let mut rows = Rows::new();
        // Where each column's walk stands; `None` once it left its column.
        let mut cursors: Vec<Option<Vec<u64>>> = columns.iter().map(|c| Some(c.to_vec())).collect();
        let mut reps = self.settings.max_repetitions.max(1);
        let mut requests = 0u32;
        loop {
            let active: Vec<usize> = (0..columns.len()).filter(|&i| cursors[i].is_some()).collect();
            if active.is_empty() {
                return Ok(rows);
            }
            requests += 1;
            if requests > 100_000 {
                return Err(DriverError::Protocol(format!("{} never reached the end of the table", self.target)));
            }
            let asked = active
                .iter()
                .map(|&i| oid(cursors[i].as_deref().unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()?;
            let a = self.request(&Req::Bulk(&asked, reps)).await?;
            match a.error_status {
                0 => {}
                1 if reps > 1 => {
                    reps /= 2; // tooBig: ask for fewer rows at a time
                    continue;
                }
                s => {
                    return Err(DriverError::Protocol(format!(
                        "{} answered a walk with {}",
                        self.target,
                        status_name(s)
                    )));
                }
            }
            let mut advanced = false;
            for (k, (got, val)) in a.varbinds.into_iter().enumerate() {
                let col = active[k % active.len()];
                let Some(cur) = &cursors[col] else { continue };
                let base = columns[col];
                if val == Val::EndOfMibView || got.len() <= base.len() || !got.starts_with(base) || got <= *cur {
                    cursors[col] = None;
                    continue;
                }
                rows.entry(got[base.len()..].to_vec()).or_insert_with(|| vec![None; columns.len()])[col] = Some(val);
                cursors[col] = Some(got);
                advanced = true;
            }
            if !advanced {
                // Nothing new: every column asked ended (or the agent sent nothing).
                for i in active {
                    cursors[i] = None;
                }
            }
        }
    }

    /// SETs an INTEGER object and checks that the agent took it.
    pub async fn set_int(&self, arcs: &[u64], value: i64, what: &Target<'_>) -> Result<(), DriverError> {
        let o = oid(arcs)?;
        let a = self.request(&Req::Set(&o, value)).await?;
        let echoed = a.varbinds.first().map(|(_, v)| v.clone()).unwrap_or(Val::Null);
        let t = &self.target;
        match a.error_status {
            0 if !echoed.is_missing() => Ok(()),
            // Not there, or not writable: which one, a GET tells.
            0 | 2 | 4 | 6 | 11 | 16 | 17 | 18 => {
                let why = if a.error_status == 0 { "noSuchInstance" } else { status_name(a.error_status) };
                let exists = self.get(&[arcs.to_vec()]).await?.first().is_some_and(|v| !v.is_missing());
                if exists {
                    Err(DriverError::Refused(format!(
                        "{t} does not let {} write {} ({why}): give it write access (a read-write community, \
                         or a v3 user whose view allows SET)",
                        self.who(),
                        what.name
                    )))
                } else {
                    Err(DriverError::Refused(format!("{t} {}", what.missing)))
                }
            }
            3 | 7 | 8 | 9 | 10 | 12 => Err(DriverError::Refused(format!(
                "{t} rejected the value {value} for {} ({})",
                what.name,
                status_name(a.error_status)
            ))),
            s => Err(DriverError::Refused(format!(
                "{t} could not write {} ({}, at variable {})",
                what.name,
                status_name(s),
                a.error_index
            ))),
        }
    }

    /// Sends a request, opening the session first if needed; retries after a timeout
    /// on a fresh socket.
    async fn request(&self, req: &Req<'_>) -> Result<Answer, DriverError> {
        let mut guard = self.session.lock().await;
        let tries = self.settings.retries.saturating_add(1);
        let mut lost = Lost::NoAnswer;
        let mut resyncs = 0;
        let mut attempt = 0;
        while attempt < tries {
            attempt += 1;
            if guard.is_none() {
                match tokio::time::timeout(self.settings.timeout, self.open()).await {
                    Ok(Ok(s)) => *guard = Some(s),
                    Ok(Err(Opened::Lost(l))) => {
                        lost = l;
                        continue;
                    }
                    Ok(Err(Opened::Fatal(e))) => return Err(e),
                    Err(_) => {
                        lost = Lost::NoAnswer;
                        continue;
                    }
                }
            }
            let Some(session) = guard.as_mut() else { continue };
            match tokio::time::timeout(self.settings.timeout, exchange(session, req)).await {
                Ok(Ok(a)) => return Ok(a),
                Err(_) => {
                    *guard = None;
                    lost = Lost::NoAnswer;
                }
                // v3: the agent's clock was learned; the same request again, at once.
                Ok(Err(snmp2::Error::AuthUpdated)) if resyncs < 3 => {
                    resyncs += 1;
                    attempt -= 1;
                }
                Ok(Err(snmp2::Error::Send | snmp2::Error::Receive)) => {
                    *guard = None;
                    lost = Lost::Closed;
                }
                Ok(Err(snmp2::Error::RequestIdMismatch)) => *guard = None,
                Ok(Err(e)) => {
                    *guard = None;
                    return Err(self.failure(e));
                }
            }
        }
        Err(self.unreachable(lost, tries))
    }

    async fn open(&self) -> Result<Box<AsyncSession>, Opened> {
        let req_id = i32::from(rand::random::<u16>());
        let opened = match &self.creds {
            Credentials::V2c { community } => AsyncSession::new_v2c(self.target.as_str(), community, req_id).await,
            Credentials::V3 { security, .. } => {
                AsyncSession::new_v3(self.target.as_str(), req_id, (**security).clone()).await
            }
        };
        let mut session = Box::new(
            opened
                .map_err(|e| Opened::Lost(Lost::Open(format!("{} (cannot resolve or reach it: {e})", self.target))))?,
        );
        if let Credentials::V3 { .. } = self.creds {
            match session.init().await {
                Ok(()) => {}
                Err(snmp2::Error::Send | snmp2::Error::Receive) => return Err(Opened::Lost(Lost::Closed)),
                Err(e) => return Err(Opened::Fatal(self.failure(e))),
            }
        }
        Ok(session)
    }

    fn unreachable(&self, lost: Lost, tries: u32) -> DriverError {
        let t = &self.target;
        let ms = self.settings.timeout.as_millis();
        DriverError::Unreachable(match lost {
            Lost::Closed => format!("{t} (nothing listens on its SNMP port)"),
            Lost::Open(m) => m,
            Lost::NoAnswer => match &self.creds {
                Credentials::V2c { .. } => format!(
                    "{t} (no SNMP answer in {tries} tries of {ms} ms; an agent ignores a wrong community, so check \
                     the community as well as the address)"
                ),
                Credentials::V3 { user, .. } => format!(
                    "{t} (no SNMPv3 answer for user '{user}' in {tries} tries of {ms} ms; check the address and \
                     the context name)"
                ),
            },
        })
    }

    fn failure(&self, e: snmp2::Error) -> DriverError {
        let t = &self.target;
        match (&self.creds, e) {
            (Credentials::V3 { user, .. }, e) if is_auth(&e) => DriverError::Auth(format!(
                "SNMPv3 user '{user}' was not accepted by {t} ({}): check the user name, the authentication and \
                 privacy protocols and their passwords",
                auth_reason(&e)
            )),
            (_, e) => DriverError::Protocol(format!("{t} sent an answer that cannot be read ({e})")),
        }
    }
}

enum Opened {
    Lost(Lost),
    Fatal(DriverError),
}

fn is_auth(e: &snmp2::Error) -> bool {
    matches!(
        e,
        snmp2::Error::AuthFailure(_) | snmp2::Error::Crypto(_) | snmp2::Error::AuthUpdated | snmp2::Error::AsnWrongType
    )
}

fn auth_reason(e: &snmp2::Error) -> String {
    match e {
        // A REPORT where a RESPONSE belongs: the agent's USM turned the request down.
        snmp2::Error::AsnWrongType => "the agent answered with a USM report".into(),
        snmp2::Error::AuthFailure(v3::AuthErrorKind::NotAuthenticated) => {
            "the agent answered with an unauthenticated report".into()
        }
        snmp2::Error::Crypto(_) => "its answer could not be decrypted".into(),
        other => other.to_string(),
    }
}

async fn exchange(s: &mut AsyncSession, req: &Req<'_>) -> Result<Answer, snmp2::Error> {
    let pdu = match req {
        Req::Get(oids) => {
            let refs: Vec<&Oid<'_>> = oids.iter().collect();
            s.get_many(&refs).await?
        }
        Req::Bulk(oids, reps) => {
            let refs: Vec<&Oid<'_>> = oids.iter().collect();
            s.getbulk(&refs, 0, *reps).await?
        }
        Req::Set(o, v) => s.set(&[(o, Value::Integer(*v))]).await?,
    };
    Ok(Answer {
        error_status: pdu.error_status,
        error_index: pdu.error_index,
        varbinds: pdu.varbinds.map(|(o, v)| (arcs(&o), Val::of(&v))).collect(),
    })
}

/// `host` gets SNMP's port 161; `host:port`, `ip` and `[v6]:port` are kept.
fn socket_target(address: &str) -> String {
    let a = address.trim();
    if a.parse::<SocketAddr>().is_ok() {
        return a.to_owned();
    }
    if let Ok(ip) = a.parse::<IpAddr>() {
        return SocketAddr::new(ip, 161).to_string();
    }
    if a.contains(':') { a.to_owned() } else { format!("{a}:161") }
}

fn v3_credentials(a: Access) -> Result<Credentials, DriverError> {
    let user = a
        .user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| DriverError::Auth("no SNMPv3 user is set for this device; set snmp.user and its keys".into()))?;
    let auth_password = a.auth_password.unwrap_or_default();
    let priv_password = a.priv_password.unwrap_or_default();
    let auth_protocol = match a.auth_protocol.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("sha") => v3::AuthProtocol::Sha1,
        Some("md5") => v3::AuthProtocol::Md5,
        Some("sha224") => v3::AuthProtocol::Sha224,
        Some("sha256") => v3::AuthProtocol::Sha256,
        Some("sha384") => v3::AuthProtocol::Sha384,
        Some("sha512") => v3::AuthProtocol::Sha512,
        Some(other) => return Err(DriverError::Unsupported(format!("SNMPv3 authentication protocol '{other}'"))),
    };
    let cipher = match a.priv_protocol.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("aes" | "aes128") => v3::Cipher::Aes128,
        Some("des") => v3::Cipher::Des,
        Some("aes192") => v3::Cipher::Aes192,
        Some("aes256") => v3::Cipher::Aes256,
        Some(other) => return Err(DriverError::Unsupported(format!("SNMPv3 privacy protocol '{other}'"))),
    };
    let auth = match (auth_password.is_empty(), priv_password.is_empty()) {
        (true, _) => v3::Auth::NoAuthNoPriv,
        (false, true) => v3::Auth::AuthNoPriv,
        (false, false) => v3::Auth::AuthPriv { cipher, privacy_password: priv_password.into_bytes() },
    };
    let mut security = v3::Security::new(user.as_bytes(), auth_password.as_bytes())
        .with_auth_protocol(auth_protocol)
        .with_auth(auth)
        .with_context_name(a.context.as_deref().unwrap_or(""));
    if cipher.priv_key_needs_extension(&auth_protocol) {
        // AES-192/256 keys longer than the hash: the common (Blumenthal) extension.
        security = security.with_key_extension_method(v3::KeyExtension::Blumenthal);
    }
    Ok(Credentials::V3 { user, security: Box::new(security) })
}

/// The RFC 3416 name of an error-status.
fn status_name(s: u32) -> &'static str {
    match s {
        0 => "noError",
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        7 => "wrongType",
        8 => "wrongLength",
        9 => "wrongEncoding",
        10 => "wrongValue",
        11 => "noCreation",
        12 => "inconsistentValue",
        13 => "resourceUnavailable",
        14 => "commitFailed",
        15 => "undoFailed",
        16 => "authorizationError",
        17 => "notWritable",
        18 => "inconsistentName",
        _ => "an unknown error-status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_snmp_port() {
        assert_eq!(socket_target("10.0.0.1"), "10.0.0.1:161");
        assert_eq!(socket_target("10.0.0.1:1161"), "10.0.0.1:1161");
        assert_eq!(socket_target("sw1.example.com"), "sw1.example.com:161");
        assert_eq!(socket_target("sw1:16100"), "sw1:16100");
        assert_eq!(socket_target("2001:db8::1"), "[2001:db8::1]:161");
        assert_eq!(socket_target("[2001:db8::1]:1161"), "[2001:db8::1]:1161");
    }

    #[test]
    fn access_data_is_checked_before_any_packet() {
        let s = SnmpSettings::default();
        let access = |secret: &str| DeviceAccess { address: "127.0.0.1".into(), secret: secret.into(), location: None };
        let e = Client::new(DeviceProtocol::SnmpV2c, &access("{}"), &s).err().unwrap();
        assert!(matches!(e, DriverError::Auth(m) if m.contains("snmp.community")));
        let e = Client::new(DeviceProtocol::SnmpV3, &access(r#"{"community":"x"}"#), &s).err().unwrap();
        assert!(matches!(e, DriverError::Auth(m) if m.contains("snmp.user")));
        let e = Client::new(DeviceProtocol::SnmpV3, &access(r#"{"user":"u","auth_protocol":"sha3"}"#), &s).err();
        assert!(matches!(e, Some(DriverError::Unsupported(_))));
        let ok = r#"{"user":"u","auth_protocol":"SHA256","auth_password":"authpass1","priv_protocol":"aes","priv_password":"privpass1","context":"c"}"#;
        assert!(Client::new(DeviceProtocol::SnmpV3, &access(ok), &s).is_ok());
    }

    #[test]
    fn oids_print_and_extend() {
        assert_eq!(dotted(&at(&[1, 3, 6, 1, 2, 1, 2, 2, 1, 7], 5)), "1.3.6.1.2.1.2.2.1.7.5");
        let o = oid(&[1, 3, 6, 1, 2, 1, 1, 5, 0]).unwrap();
        assert_eq!(arcs(&o), vec![1, 3, 6, 1, 2, 1, 1, 5, 0]);
    }
}
