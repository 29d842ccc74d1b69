//! `setup_ipmi`, in-band: the machine's own BMC, reached through the kernel's IPMI
//! driver (`ipmi_si` finds the KCS, BT or SSIF interface; `ipmi_devintf` gives
//! `/dev/ipmi0`), gets dcim's user with the boot's password and administrator rights on
//! its LAN channel, and, when the answer carries one, a static address. What the BMC
//! then says of itself (`lan print`) is the `bmc` report; dcim logs in over the LAN
//! with those credentials before it takes the BMC as the server's.
//!
//! Through Debian's `ipmitool -I open`, as MAAS's and Ironic's in-band ramdisks do:
//! talking to `/dev/ipmi0` directly takes ioctls, which need `unsafe` (forbidden in
//! this workspace), and no crate offers the in-band interface with the user and LAN
//! configuration commands. Every change is read back, because some BMCs and ipmitool
//! itself report success for a command the BMC refused.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// What the answer's `bmc` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub user: String,
    pub password: String,
    pub ip: Option<StaticIp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    pub address: String,
    pub netmask: String,
    /// Empty: none.
    pub gateway: String,
}

impl Setup {
    /// The answer's `bmc` object; `None` when there is none (no `setup_ipmi`).
    pub fn parse(bmc: &Value) -> anyhow::Result<Option<Setup>> {
        if bmc.is_null() {
            return Ok(None);
        }
        let text = |v: &Value, k: &str| v[k].as_str().map(str::to_owned);
        let user = text(bmc, "user").context("the answer's bmc has no user")?;
        let password = text(bmc, "password").context("the answer's bmc has no password")?;
        let ip = match &bmc["ip"] {
            Value::Null => None,
            ip => Some(StaticIp {
                address: text(ip, "address").context("the answer's bmc.ip has no address")?,
                netmask: text(ip, "netmask").context("the answer's bmc.ip has no netmask")?,
                gateway: text(ip, "gateway").unwrap_or_default(),
            }),
        };
        Ok(Some(Setup { user, password, ip }))
    }
}

/// Runs `ipmitool` with these arguments; its standard output, or why it failed.
pub type Ipmitool<'a> = &'a dyn Fn(&[&str]) -> anyhow::Result<String>;

/// The real one, in-band.
pub fn ipmitool(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ipmitool")
        .args(["-I", "open"])
        .args(args)
        .output()
        .with_context(|| format!("running ipmitool {}", shown(args)))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("ipmitool {} failed ({}): {}", shown(args), out.status, err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The arguments as a log shows them: never a password.
fn shown(args: &[&str]) -> String {
    match args {
        ["user", "set", "password", id, ..] => format!("user set password {id} ********"),
        _ => args.join(" "),
    }
}

/// Waits up to `limit` for the kernel to find the BMC (`/dev/ipmi0`).
pub fn wait_device(dev: &Path, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while !dev.exists() {
        if start.elapsed() > limit {
            bail!(
                "no in-band BMC: {} did not appear within {} s (no KCS, BT or SSIF interface the kernel knows)",
                dev.display(),
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Does the setup; the `bmc` report's data (never the password).
pub fn setup(s: &Setup, run: Ipmitool) -> anyhow::Result<Value> {
    let channel = lan_channel(run)?;
    let ch = channel.to_string();
    let users = parse_users(&run(&["user", "list", &ch])?);
    let id = pick_user(&users, &s.user)
        .with_context(|| format!("the BMC has no free user slot for '{}' (slots 3 and up are taken)", s.user))?;
    let ids = id.to_string();
    if users.iter().find(|(i, _)| *i == id).map(|(_, n)| n.as_str()) != Some(s.user.as_str()) {
        run(&["user", "set", "name", &ids, &s.user])?;
    }
    run(&["user", "set", "password", &ids, &s.password])?;
    run(&["channel", "setaccess", &ch, &ids, "callin=on", "ipmi=on", "link=on", "privilege=4"])?;
    run(&["user", "enable", &ids])?;
    run(&["lan", "set", &ch, "access", "on"])?;
    if let Some(ip) = &s.ip {
        run(&["lan", "set", &ch, "ipsrc", "static"])?;
        run(&["lan", "set", &ch, "ipaddr", &ip.address])?;
        run(&["lan", "set", &ch, "netmask", &ip.netmask])?;
        if !ip.gateway.is_empty() {
            run(&["lan", "set", &ch, "defgw", "ipaddr", &ip.gateway])?;
        }
    }
    // Read back: the name, and the address the BMC now has.
    let after = parse_users(&run(&["user", "list", &ch])?);
    if !after.iter().any(|(i, n)| *i == id && *n == s.user) {
        bail!("the BMC did not keep the user name '{}' in slot {id}", s.user);
    }
    let lan = parse_lan(&run(&["lan", "print", &ch])?);
    let get = |k: &str| lan.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let address = get("IP Address");
    if let Some(ip) = &s.ip
        && address != ip.address
    {
        bail!("the BMC was given {} but reports {address:?}", ip.address);
    }
    Ok(json!({
        "user": s.user,
        "user_id": id,
        "channel": channel,
        "address": address,
        "netmask": get("Subnet Mask"),
        "gateway": get("Default Gateway IP"),
        "mac": get("MAC Address"),
        "ip_source": get("IP Address Source"),
    }))
}

/// The first channel whose medium is 802.3 LAN (channel 1 on nearly every BMC).
fn lan_channel(run: Ipmitool) -> anyhow::Result<u8> {
    for ch in 1..=11u8 {
        // A channel that does not exist is an error; try the next.
        if let Ok(out) = run(&["channel", "info", &ch.to_string()])
            && out.lines().any(|l| l.contains("Channel Medium Type") && l.contains("802.3 LAN"))
        {
            return Ok(ch);
        }
    }
    bail!("the BMC has no 802.3 LAN channel (channels 1 to 11)")
}

/// `ipmitool user list` rows: the id in the first 4 columns, the name in the next 17.
fn parse_users(out: &str) -> Vec<(u8, String)> {
    out.lines()
        .filter_map(|l| {
            let id: u8 = l.get(..4.min(l.len()))?.trim().parse().ok()?;
            let name = l.get(4..21.min(l.len())).unwrap_or("").trim().to_owned();
            Some((id, name))
        })
        .collect()
}

/// dcim's user where it already is, else the first unnamed slot from 3 on (1 is the
/// anonymous user, 2 the vendor's administrator on most BMCs).
fn pick_user(users: &[(u8, String)], user: &str) -> Option<u8> {
    users
        .iter()
        .find(|(_, n)| n == user)
        .or_else(|| users.iter().find(|(i, n)| *i >= 3 && n.is_empty()))
        .map(|(i, _)| *i)
}

/// `ipmitool lan print` as `(key, value)` pairs; continuation lines (`: value`) are skipped.
fn parse_lan(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), v.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    // As ipmitool 1.8.19 prints them for ipmi_sim (OpenIPMI 2.0.33).
    const USERS: &str = "ID  Name\t     Callin  Link Auth\tIPMI Msg   Channel Priv Limit\n\
        1                    true    false      false      Unknown (0x00)\n\
        2   admin            true    false      true       ADMINISTRATOR\n\
        3                    true    false      false      Unknown (0x00)\n\
        4                    true    false      false      Unknown (0x00)\n";
    const LAN: &str = "Set in Progress         : Set Complete\n\
        Auth Type Enable        : Callback : MD5 PASSWORD \n\
        \x20                       : User     : MD5 PASSWORD \n\
        IP Address Source       : Static Address\n\
        IP Address              : 10.1.2.30\n\
        Subnet Mask             : 255.255.255.0\n\
        MAC Address             : 00:00:00:00:00:00\n\
        Default Gateway IP      : 10.1.2.1\n";

    #[test]
    fn parses_users_and_lan() {
        let u = parse_users(USERS);
        assert_eq!(u.len(), 4);
        assert_eq!(u[1], (2, "admin".to_owned()));
        assert_eq!(u[2], (3, String::new()));
        assert_eq!(pick_user(&u, "dcim"), Some(3));
        assert_eq!(pick_user(&u, "admin"), Some(2), "an existing user is reused");
        assert_eq!(pick_user(&u[..2], "dcim"), None);
        let l = parse_lan(LAN);
        assert!(l.contains(&("IP Address".into(), "10.1.2.30".into())));
        assert!(l.contains(&("Default Gateway IP".into(), "10.1.2.1".into())));
        assert!(!l.iter().any(|(k, _)| k.is_empty()));
    }

    #[test]
    fn answer_parses() {
        assert_eq!(Setup::parse(&Value::Null).unwrap(), None);
        let s = Setup::parse(&json!({"user": "dcim", "password": "p", "ip": null})).unwrap().unwrap();
        assert_eq!(s.ip, None);
        let s = Setup::parse(&json!({"user": "dcim", "password": "p",
            "ip": {"address": "10.1.2.30", "netmask": "255.255.255.0", "gateway": ""}}))
        .unwrap()
        .unwrap();
        assert_eq!(s.ip.unwrap().address, "10.1.2.30");
        assert!(Setup::parse(&json!({"user": "dcim"})).is_err());
    }

    /// A BMC whose LAN channel is 2, answering as ipmi_sim does after the changes.
    fn scripted(calls: &RefCell<Vec<String>>, keeps_name: bool) -> impl Fn(&[&str]) -> anyhow::Result<String> + '_ {
        move |args: &[&str]| {
            calls.borrow_mut().push(args.join(" "));
            let renamed = calls.borrow().iter().any(|c| c.starts_with("user set name 3 dcim")) && keeps_name;
            match args {
                ["channel", "info", "1"] => Ok("Channel 0x1 info:\n  Channel Medium Type   : IPMB (I2C)\n".into()),
                ["channel", "info", "2"] => Ok("Channel 0x2 info:\n  Channel Medium Type   : 802.3 LAN\n".into()),
                ["channel", "info", _] => bail!("Unable to Get Channel Info"),
                ["user", "list", "2"] if renamed => Ok(USERS.replace("3                ", "3   dcim         ")),
                ["user", "list", "2"] => Ok(USERS.into()),
                ["lan", "print", "2"] => Ok(LAN.into()),
                _ => Ok(String::new()),
            }
        }
    }

    #[test]
    fn sets_up_user_and_address_and_reads_back() {
        let calls = RefCell::new(vec![]);
        let run = scripted(&calls, true);
        let s = Setup {
            user: "dcim".into(),
            password: "pw".into(),
            ip: Some(StaticIp {
                address: "10.1.2.30".into(),
                netmask: "255.255.255.0".into(),
                gateway: "10.1.2.1".into(),
            }),
        };
        let r = setup(&s, &run).unwrap();
        assert_eq!(r["channel"], 2);
        assert_eq!(r["user_id"], 3);
        assert_eq!(r["address"], "10.1.2.30");
        assert_eq!(r["gateway"], "10.1.2.1");
        assert!(r.get("password").is_none());
        drop(run);
        let calls = calls.into_inner();
        for want in [
            "user set name 3 dcim",
            "user set password 3 pw",
            "channel setaccess 2 3 callin=on ipmi=on link=on privilege=4",
            "user enable 3",
            "lan set 2 ipsrc static",
            "lan set 2 ipaddr 10.1.2.30",
            "lan set 2 netmask 255.255.255.0",
            "lan set 2 defgw ipaddr 10.1.2.1",
        ] {
            assert!(calls.iter().any(|c| c == want), "{want} not in {calls:?}");
        }
    }

    #[test]
    fn a_bmc_that_forgets_is_an_error() {
        let calls = RefCell::new(vec![]);
        let run = scripted(&calls, false);
        let s = Setup { user: "dcim".into(), password: "pw".into(), ip: None };
        let e = setup(&s, &run).unwrap_err().to_string();
        assert!(e.contains("did not keep the user name"), "{e}");
        let s = Setup {
            user: "dcim".into(),
            password: "pw".into(),
            ip: Some(StaticIp { address: "10.9.9.9".into(), netmask: "255.0.0.0".into(), gateway: String::new() }),
        };
        let calls = RefCell::new(vec![]);
        let run = scripted(&calls, true);
        let e = setup(&s, &run).unwrap_err().to_string();
        assert!(e.contains("was given 10.9.9.9 but reports \"10.1.2.30\""), "{e}");
        assert_eq!(shown(&["user", "set", "password", "3", "pw"]), "user set password 3 ********");
    }
}
