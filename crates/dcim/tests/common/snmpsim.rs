//! snmpsim for the SNMP tests and the benchmark's twin: one simulator process per
//! test on a free 127.0.0.1 UDP port, serving fresh recordings written by
//! `sims/snmp/gen-snmprec.py` into a temporary directory (so a SET in one test is
//! never seen by another), killed and removed on drop. Debian's `snmpget`/`snmpset`
//! read and change the simulated devices independently of dcim's own client.
//!
//! It needs what `scripts/sims-setup.sh` installs (the snmpsim virtualenv under
//! `${DCIM_SIMS:-/opt/dcim-sims}` and apt `snmp`); a test without them fails with
//! that advice, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The v3 users every simulator knows: (user, auth protocol, auth key, priv key),
/// all with AES-128 privacy.
pub const V3_SHA: (&str, &str, &str, &str) = ("admin", "SHA", "authpass123", "privpass123");
pub const V3_SHA256: (&str, &str, &str, &str) = ("admin256", "SHA256", "authpass256", "privpass256");

/// What `start` serves: communities (and v3 contexts) `switch48` (48 ports,
/// writable), `switch48-ro` (the same ports, read-only), `switch8` (8 ports) and
/// `pdu` (an APC rack PDU with 24 outlets).
pub const DEFAULT_RECORDINGS: &[&str] =
    &["switch48:switch:48", "switch48-ro:switch-ro:48", "switch8:switch:8", "pdu:apc:24"];

const SETUP: &str = "run scripts/sims-setup.sh (as root) first";

pub fn sims_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sims/snmp")
}

fn venv() -> PathBuf {
    PathBuf::from(std::env::var("DCIM_SIMS").unwrap_or_else(|_| "/opt/dcim-sims".into())).join("venv")
}

fn need(path: &Path) {
    assert!(path.exists(), "{} is missing: {SETUP}", path.display());
}

/// A running snmpsim.
pub struct SnmpSim {
    pub port: u16,
    /// `127.0.0.1:PORT`
    pub addr: String,
    child: Child,
    dir: PathBuf,
    /// The network namespace it runs in; none: the test's own.
    netns: Option<String>,
}

impl SnmpSim {
    pub fn start() -> SnmpSim {
        Self::start_with(DEFAULT_RECORDINGS)
    }

    /// Serves recordings given as `NAME:KIND[:COUNT]` (see `gen-snmprec.py`).
    pub fn start_with(recordings: &[&str]) -> SnmpSim {
        Self::start_inner(None, recordings)
    }

    /// [`SnmpSim::start`] on 127.0.0.1:1161 inside network namespace `netns`.
    pub fn start_in_netns(netns: &str) -> SnmpSim {
        Self::start_inner(Some(netns), DEFAULT_RECORDINGS)
    }

    fn start_inner(netns: Option<&str>, recordings: &[&str]) -> SnmpSim {
        let responder = venv().join("bin/snmpsim-command-responder");
        need(&responder);
        need(Path::new("/usr/bin/snmpget"));
        let dir = std::env::temp_dir().join(format!("dcim-snmpsim-{}", hex::encode(rand::random::<[u8; 6]>())));
        for d in ["data", "cache", "run"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        // snmpsim started by root drops to nobody, who must write its cache and log.
        for d in ["", "cache", "run"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let generated = Command::new(venv().join("bin/python"))
            .arg(sims_dir().join("gen-snmprec.py"))
            .arg(dir.join("data"))
            .args(recordings)
            .status()
            .unwrap_or_else(|e| panic!("gen-snmprec.py: {e}: {SETUP}"));
        assert!(generated.success(), "gen-snmprec.py failed");
        let first = recordings[0].split(':').next().unwrap().to_owned();
        for _ in 0..5 {
            let port = if netns.is_some() { 1161 } else { free_udp_port() };
            let mut cmd = responder_command(&responder, &dir, port);
            if let Some(ns) = netns {
                let mut wrapped = Command::new("ip");
                wrapped.args(["netns", "exec", ns]).arg(cmd.get_program()).args(cmd.get_args());
                let out = std::fs::File::create(dir.join("run/sim.out")).unwrap();
                wrapped.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
                cmd = wrapped;
            }
            let mut child = cmd.spawn().expect("snmpsim starts");
            let addr = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile, or snmpsim failed: try again
                }
                let probe = ["-v2c", "-c", &first, "-t", "0.3", "-r", "0", &addr, "1.3.6.1.2.1.1.5.0"];
                if snmp_cmd_in(netns, "snmpget", &probe).is_ok() {
                    return SnmpSim { port, addr, child, dir, netns: netns.map(str::to_owned) };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.join("run/sim.out")).unwrap_or_default();
        panic!("snmpsim did not answer on 127.0.0.1 ({SETUP}); its output:\n{log}");
    }

    /// `snmpget -v2c` of one object: the value alone, e.g. `2` or `"Outlet 3"`.
    pub fn snmpget(&self, community: &str, oid: &str) -> String {
        let args = ["-v2c", "-c", community, "-Oqv", "-t", "1", "-r", "1", &self.addr, oid];
        snmp_cmd_in(self.netns.as_deref(), "snmpget", &args)
            .unwrap_or_else(|e| panic!("snmpget {community} {oid}: {e}"))
    }

    /// `snmpget -v3` (authPriv, AES) in `context`.
    pub fn snmpget_v3(&self, user: (&str, &str, &str, &str), context: &str, oid: &str) -> String {
        let (u, auth, a, x) = user;
        let args = ["-v3", "-l", "authPriv", "-u", u, "-a", auth, "-A", a, "-x", "AES", "-X", x, "-n", context];
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-Oqv", "-t", "1", "-r", "1", &self.addr, oid]);
        snmp_cmd("snmpget", &all).unwrap_or_else(|e| panic!("snmpget -v3 {oid}: {e}"))
    }

    /// `snmpset -v2c` of an INTEGER (`i`) or a string (`s`).
    pub fn snmpset(&self, community: &str, oid: &str, kind: &str, value: &str) {
        snmp_cmd("snmpset", &["-v2c", "-c", community, "-Oqv", "-t", "1", "-r", "1", &self.addr, oid, kind, value])
            .unwrap_or_else(|e| panic!("snmpset {community} {oid} {kind} {value}: {e}"));
    }
}

impl Drop for SnmpSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The simulator's command line for `dir` and `port`.
pub fn responder_command(responder: &Path, dir: &Path, port: u16) -> Command {
    let builtin = std::fs::read_dir(venv().join("lib"))
        .ok()
        .and_then(|mut d| d.find_map(|e| Some(e.ok()?.path().join("site-packages/snmpsim/variation"))))
        .unwrap_or_else(|| panic!("no snmpsim in {}: {SETUP}", venv().display()));
    let mut cmd = Command::new(responder);
    cmd.arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--cache-dir={}", dir.join("cache").display()))
        .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
        .arg(format!("--variation-modules-dir={}", sims_dir().join("variation").display()))
        .arg(format!("--variation-modules-dir={}", builtin.display()))
        .arg(format!("--logging-method=file:{}", dir.join("run/sim.log").display()))
        .arg("--log-level=error");
    for (user, auth, a, x) in [V3_SHA, V3_SHA256] {
        cmd.args([
            format!("--v3-user={user}"),
            format!("--v3-auth-key={a}"),
            format!("--v3-auth-proto={auth}"),
            format!("--v3-priv-key={x}"),
            "--v3-priv-proto=AES".into(),
        ]);
    }
    if is_root() {
        cmd.args(["--process-user=nobody", "--process-group=nogroup"]);
    }
    let out = std::fs::File::create(dir.join("run/sim.out")).unwrap();
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    cmd
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs a net-snmp tool with numeric OIDs (Debian ships no MIB files); its output.
pub fn snmp_cmd(tool: &str, args: &[&str]) -> Result<String, String> {
    snmp_cmd_in(None, tool, args)
}

/// [`snmp_cmd`] inside network namespace `netns`.
pub fn snmp_cmd_in(netns: Option<&str>, tool: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, tool]);
            c
        }
        None => Command::new(tool),
    };
    let out = cmd.env("MIBS", "").arg("-On").args(args).output().map_err(|e| format!("{tool}: {e}: {SETUP}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || text.contains("No Such") || text.contains("Timeout") {
        return Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(text)
}
