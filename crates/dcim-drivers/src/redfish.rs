//! Redfish power driver: a ComputerSystem's `PowerState`, `ComputerSystem.Reset` with
//! a reset type the BMC advertises, and the boot source override. Plain HTTPS (or
//! HTTP) with typed serde structs over reqwest and HTTP basic authentication. A
//! dedicated Redfish crate was not taken: the one that worked pinned a dependency
//! to a newer compiler and had no way to accept a BMC's self-signed certificate.
//!
//! The BMC address is `host[:port]` (HTTPS), or a URL `http[s]://host[:port]`, optionally
//! ending with the system's path `/redfish/v1/Systems/ID` for a BMC that manages
//! several systems.
//!
//! Certificates: a BMC whose certificate is pinned (`ipmi.tls_fingerprint`) is trusted
//! when it shows that certificate, whoever signed it; without a pin the certificate must
//! chain to the system's trusted CAs (`bmc_tls_verify`, on by default; off accepts any
//! certificate), and a refusal names the fingerprint to pin ([`dcim_tls::PinOrTrust`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Client, Method, StatusCode};
use rustls::client::danger::ServerCertVerifier;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{BootDevice, DriverError, PowerDriver, PowerState};

/// Shared by every Redfish driver of a process: one HTTP client (connection pool) for
/// BMCs checked against the trusted CAs (or not checked), one per pinned certificate.
pub struct Redfish {
    client: Client,
    pinned: Mutex<HashMap<dcim_tls::Digest, Client>>,
    verify_tls: bool,
    timeout: Duration,
}

impl Redfish {
    /// `verify_tls`: refuse BMC certificates not signed by a trusted CA unless pinned
    /// (off: accept any certificate of a BMC that has no pin).
    pub fn new(timeout: Duration, verify_tls: bool) -> Self {
        let client = Self::client(timeout, None, verify_tls);
        Redfish { client, pinned: Mutex::new(HashMap::new()), verify_tls, timeout }
    }

    /// A client trusting the certificate pinned, else the platform's CAs when
    /// `verify`, else any.
    fn client(timeout: Duration, pin: Option<dcim_tls::Digest>, verify: bool) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = (pin.is_none() && verify).then(|| {
            Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone())
                    .expect("the platform's trusted certificates load"),
            ) as Arc<dyn ServerCertVerifier>
        });
        Client::builder()
            .tls_backend_preconfigured(dcim_tls::PinOrTrust::new(provider, pin, roots).client_config())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a TLS client with the ring provider builds")
    }

    /// The driver of one BMC; `pin`: the SHA-256 of the certificate it must show.
    pub fn bmc(
        &self,
        address: &str,
        user: &str,
        password: &str,
        pin: Option<dcim_tls::Digest>,
    ) -> Result<RedfishPower, DriverError> {
        let (base, system) = split_address(address)?;
        let client = match pin {
            None => self.client.clone(),
            Some(pin) => self
                .pinned
                .lock()
                .expect("the pinned clients")
                .entry(pin)
                .or_insert_with(|| Self::client(self.timeout, Some(pin), true))
                .clone(),
        };
        Ok(RedfishPower {
            client,
            verify_tls: self.verify_tls || pin.is_some(),
            timeout: self.timeout,
            name: address.to_owned(),
            base,
            system,
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// The BMC's base URL and, when given, the system's path.
fn split_address(address: &str) -> Result<(String, Option<String>), DriverError> {
    let a = address.trim().trim_end_matches('/');
    let (scheme, rest) = match a.split_once("://") {
        Some((s @ ("http" | "https"), r)) => (s, r),
        Some((s, _)) => return Err(DriverError::Unsupported(format!("Redfish over '{s}' (use http or https)"))),
        None => ("https", a),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_owned())),
        None => (rest, None),
    };
    if host.is_empty() {
        return Err(DriverError::Unreachable(format!("Redfish address '{address}' has no host")));
    }
    Ok((format!("{scheme}://{host}"), path))
}

/// A server's BMC, spoken to over Redfish.
pub struct RedfishPower {
    client: Client,
    verify_tls: bool,
    timeout: Duration,
    name: String,
    base: String,
    system: Option<String>,
    user: String,
    password: String,
}

#[derive(Debug, Deserialize)]
struct Collection {
    #[serde(rename = "Members", default)]
    members: Vec<Link>,
}

#[derive(Debug, Deserialize)]
struct Link {
    #[serde(rename = "@odata.id")]
    id: String,
}

#[derive(Debug, Deserialize)]
struct System {
    #[serde(rename = "PowerState")]
    power_state: Option<String>,
    #[serde(rename = "Boot", default)]
    boot: Value,
    #[serde(rename = "Actions", default)]
    actions: Actions,
}

#[derive(Debug, Default, Deserialize)]
struct Actions {
    #[serde(rename = "#ComputerSystem.Reset")]
    reset: Option<ResetAction>,
}

#[derive(Debug, Deserialize)]
struct ResetAction {
    target: String,
    #[serde(rename = "ResetType@Redfish.AllowableValues", default)]
    allowed: Vec<String>,
}

impl RedfishPower {
    fn transport_error(&self, e: reqwest::Error) -> DriverError {
        if e.is_timeout() {
            return DriverError::Timeout(self.timeout.as_millis() as u64);
        }
        let chain = error_chain(&e);
        if chain.contains("certificate") || chain.contains("Certificate") {
            let hint = if self.verify_tls {
                "the BMC's certificate is refused (pin the fingerprint below in ipmi.tls_fingerprint, give the \
                 BMC a certificate signed by a trusted CA, or turn bmc_tls_verify off)"
            } else {
                "TLS failed"
            };
            return DriverError::Refused(format!("BMC {}: {hint}: {chain}", self.name));
        }
        DriverError::Unreachable(format!("BMC {} (Redfish): {chain}", self.name))
    }

    async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Result<Option<Value>, DriverError> {
        let url = format!("{}{}", self.base, path);
        let mut rq = self
            .client
            .request(method.clone(), &url)
            .basic_auth(&self.user, Some(&self.password))
            .header("Accept", "application/json")
            .header("OData-Version", "4.0");
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let resp = rq.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(e))?;
        match status {
            s if s.is_success() => Ok(if text.trim().is_empty() { None } else { serde_json::from_str(&text).ok() }),
            StatusCode::UNAUTHORIZED => Err(DriverError::Auth(format!(
                "BMC {}: Redfish refused the user '{}' or its password",
                self.name, self.user
            ))),
            StatusCode::FORBIDDEN => {
                Err(DriverError::Auth(format!("BMC {}: the user '{}' may not {method} {path}", self.name, self.user)))
            }
            StatusCode::NOT_FOUND => Err(DriverError::Refused(format!("BMC {}: no {path} on this BMC", self.name))),
            s if s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED => Err(DriverError::Unreachable(format!(
                "BMC {}: {method} {path} answered {s}: {}",
                self.name,
                redfish_message(&text)
            ))),
            s => Err(DriverError::Refused(format!(
                "BMC {}: {method} {path} answered {s}: {}",
                self.name,
                redfish_message(&text)
            ))),
        }
    }

    /// The path of the system this driver controls.
    async fn system_path(&self) -> Result<String, DriverError> {
        if let Some(p) = &self.system {
            return Ok(p.clone());
        }
        let v = self.request(Method::GET, "/redfish/v1/Systems", None).await?.unwrap_or_default();
        let c: Collection = serde_json::from_value(v).map_err(|e| {
            DriverError::Protocol(format!("BMC {}: a Systems collection that does not parse: {e}", self.name))
        })?;
        match c.members.as_slice() {
            [one] => Ok(one.id.trim_end_matches('/').to_owned()),
            [] => Err(DriverError::Refused(format!("BMC {} manages no system", self.name))),
            many => Err(DriverError::Refused(format!(
                "BMC {} manages {} systems; name one in the BMC address, e.g. {}{}",
                self.name,
                many.len(),
                self.base,
                many[0].id
            ))),
        }
    }

    async fn system(&self) -> Result<(String, System), DriverError> {
        let path = self.system_path().await?;
        let v = self.request(Method::GET, &path, None).await?.unwrap_or_default();
        let s = serde_json::from_value(v).map_err(|e| {
            DriverError::Protocol(format!("BMC {}: a ComputerSystem that does not parse: {e}", self.name))
        })?;
        Ok((path, s))
    }

    /// Posts `ComputerSystem.Reset` with the first of `wanted` the BMC allows.
    async fn reset_with(&self, wanted: &[&str]) -> Result<(), DriverError> {
        let (path, sys) = self.system().await?;
        let action = sys.actions.reset.ok_or_else(|| {
            DriverError::Unsupported(format!("BMC {}: the system has no ComputerSystem.Reset", self.name))
        })?;
        let kind = if action.allowed.is_empty() {
            wanted[0]
        } else {
            wanted.iter().find(|w| action.allowed.iter().any(|a| a == *w)).copied().ok_or_else(|| {
                DriverError::Unsupported(format!(
                    "BMC {} allows reset types {:?}, none of {:?}",
                    self.name, action.allowed, wanted
                ))
            })?
        };
        let target =
            if action.target.is_empty() { format!("{path}/Actions/ComputerSystem.Reset") } else { action.target };
        self.request(Method::POST, &target, Some(json!({"ResetType": kind}))).await.map(drop)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The human message of a Redfish error body, or the body itself, shortened.
fn redfish_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let extended = e["@Message.ExtendedInfo"][0]["Message"].as_str();
    let msg = extended.or(e["message"].as_str()).map(str::to_owned).unwrap_or_else(|| body.trim().to_owned());
    msg.chars().take(300).collect()
}

#[async_trait]
impl PowerDriver for RedfishPower {
    async fn status(&self) -> Result<PowerState, DriverError> {
        let (_, sys) = self.system().await?;
        match sys.power_state.as_deref() {
            // Until the transition ends, the server is still in its former state.
            Some("On" | "PoweringOff") => Ok(PowerState::On),
            Some("Off" | "PoweringOn") => Ok(PowerState::Off),
            other => Err(DriverError::Protocol(format!("BMC {} reports PowerState {other:?}", self.name))),
        }
    }

    async fn on(&self) -> Result<(), DriverError> {
        self.reset_with(&["On", "ForceOn"]).await
    }

    async fn off(&self) -> Result<(), DriverError> {
        self.reset_with(&["ForceOff", "GracefulShutdown"]).await
    }

    async fn reset(&self) -> Result<(), DriverError> {
        if self.status().await? == PowerState::Off {
            return self.on().await;
        }
        self.reset_with(&["ForceRestart", "PowerCycle", "GracefulRestart"]).await
    }

    async fn set_boot_device(&self, device: BootDevice, efi: bool, persistent: bool) -> Result<(), DriverError> {
        let (path, sys) = self.system().await?;
        let target = match device {
            BootDevice::Pxe => "Pxe",
            BootDevice::Disk => "Hdd",
        };
        let mut boot = json!({
            "BootSourceOverrideTarget": target,
            "BootSourceOverrideEnabled": if persistent { "Continuous" } else { "Once" },
        });
        // Only BMCs that show the mode take it; others refuse the unknown property.
        if sys.boot.get("BootSourceOverrideMode").is_some() {
            boot["BootSourceOverrideMode"] = json!(if efi { "UEFI" } else { "Legacy" });
        }
        self.request(Method::PATCH, &path, Some(json!({ "Boot": boot }))).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(split_address("10.0.0.5").unwrap(), ("https://10.0.0.5".into(), None));
        assert_eq!(split_address("http://127.0.0.1:8000/").unwrap(), ("http://127.0.0.1:8000".into(), None));
        assert_eq!(
            split_address("https://bmc:8443/redfish/v1/Systems/abc").unwrap(),
            ("https://bmc:8443".into(), Some("/redfish/v1/Systems/abc".into()))
        );
        assert!(split_address("ftp://x").is_err());
    }

    #[test]
    fn error_messages() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"x",
            "@Message.ExtendedInfo":[{"Message":"ResetType Bogus is not supported"}]}}"#;
        assert_eq!(redfish_message(body), "ResetType Bogus is not supported");
        assert_eq!(redfish_message("plain"), "plain");
    }
}
