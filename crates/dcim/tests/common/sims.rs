//! BMC simulators for driver tests: `ipmi_sim` (OpenIPMI, IPMI 2.0 lanplus and 1.5),
//! a slow/lossy pyghmi BMC, and sushy-emulator (Redfish), each on 127.0.0.1 with a
//! free port and a fresh directory, stopped (killed) and wiped when dropped.
//!
//! The tools come from `scripts/sims-setup.sh` (apt `openipmi ipmitool`, and a virtualenv
//! at `$DCIM_SIMS/venv`, default `/opt/dcim-sims/venv`); the configurations from the
//! repository's `sims/` directory. A missing tool fails the test, it never skips.
//!
//! Each simulated server keeps its state in files of its directory (the layout of
//! `sims/ipmi/chassis.sh`): `power` (0/1), `boot`, `resets`, `power.log` (one line per
//! call the BMC made, e.g. `1795788641.409 set power 1`). Boot devices use ipmi_sim's
//! words: `none` (no override), `pxe`, `default` (force hard disk), `cdrom`, `bios`.
//!
//! Everything here blocks (std processes and sockets; [`Sushy`]'s HTTP calls run on a
//! runtime of their own), so it serves sync and async tests alike.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::tempdir::Dir;

/// The virtualenv of the Python simulators: `$DCIM_SIMS/venv`, default `/opt/dcim-sims/venv`.
pub fn venv() -> PathBuf {
    PathBuf::from(std::env::var("DCIM_SIMS").unwrap_or_else(|_| "/opt/dcim-sims".into())).join("venv")
}

/// The repository's `sims/` directory.
pub fn sims_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sims");
    p.canonicalize().unwrap_or(p)
}

fn missing(what: &str) -> ! {
    panic!("run scripts/sims-setup.sh (as root) first: {what}")
}

/// `name` on PATH, or the test fails.
pub fn require_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| missing(&format!("`{name}` is not on PATH")))
}

pub fn require_file(p: &Path, what: &str) -> PathBuf {
    if !p.is_file() {
        missing(&format!("{what} ({} does not exist)", p.display()));
    }
    p.to_owned()
}

/// The venv's Python with `module` importable (looked for in its site-packages).
fn require_python_module(module: &str) -> PathBuf {
    let venv = venv();
    let python = require_file(&venv.join("bin/python"), "the simulators' virtualenv");
    let found = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("site-packages").join(module).is_dir());
    if !found {
        missing(&format!("Python module `{module}` is not in {}", venv.display()));
    }
    python
}

pub fn template(name: &str, vars: &[(&str, &str)]) -> String {
    let path = sims_dir().join(name);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "{name}: a placeholder was left unfilled");
    text
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok().map(|s| s.trim().to_owned())
}

/// Bound sockets on distinct free UDP ports of 127.0.0.1 (drop them just before use).
fn free_udp_ports(n: usize) -> Vec<u16> {
    let socks: Vec<UdpSocket> = (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    socks.iter().map(|s| s.local_addr().unwrap().port()).collect()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn check_name(what: &str, s: &str, max: usize) {
    assert!(
        !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\'),
        "{what} {s:?}: 1 to {max} printable ASCII characters without quote or backslash"
    );
}

pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What `ipmitool -I <interface> ... -p PORT -U user -P password args` printed (stdout then
/// stderr) and whether it succeeded.
pub fn run_ipmitool(port: u16, user: &str, password: &str, iface: &[&str], args: &[&str]) -> (bool, String) {
    run_ipmitool_in(None, port, user, password, iface, args)
}

/// [`run_ipmitool`] inside network namespace `netns`, when given.
pub fn run_ipmitool_in(
    netns: Option<&str>,
    port: u16,
    user: &str,
    password: &str,
    iface: &[&str],
    args: &[&str],
) -> (bool, String) {
    let port = port.to_string();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(require_program("ipmitool"));
            c
        }
        None => Command::new(require_program("ipmitool")),
    };
    let out = cmd
        .args(iface)
        .args(["-H", "127.0.0.1", "-p", &port, "-U", user, "-P", password])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ipmitool runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// IPMI 1.5 Get Channel Authentication Capabilities (channel 0xE, admin), outside a
/// session: what `ipmitool` sends first. Both simulators answer it once they listen.
const IPMI_PING: [u8; 23] = [
    0x06, 0x00, 0xff, 0x07, // RMCP, class IPMI
    0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, // no auth, sequence 0, session 0, length 9
    0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5, // BMC, netfn App, cmd 0x38
];

// ---------------------------------------------------------------------------------------
// ipmi_sim

/// One `ipmi_sim` BMC on 127.0.0.1:PORT: RMCP+ (lanplus, cipher suite 3) and IPMI 1.5
/// (MD5 or straight password), one admin user; chassis control through `sims/ipmi/chassis.sh`.
/// About 6 MB of memory each.
pub struct IpmiSim {
    child: Child,
    port: u16,
    user: String,
    password: String,
    dir: Dir,
}

/// One `ipmi_sim` on 127.0.0.1:`port` of the root namespace, or of `netns`.
fn spawn_ipmi_sim(port: u16, user: &str, password: &str, netns: Option<&str>) -> IpmiSim {
    let ipmi_sim = require_program("ipmi_sim");
    let hook = require_file(&sims_dir().join("ipmi/chassis.sh"), "sims/ipmi/chassis.sh");
    let emu = require_file(&sims_dir().join("ipmi/bmc.emu"), "sims/ipmi/bmc.emu");
    let dir = Dir::new();
    let guid = hex::encode(rand::random::<[u8; 16]>());
    let conf = template(
        "ipmi/lan.conf.in",
        &[
            ("NAME", &format!("bmc{port}")),
            ("PORT", &port.to_string()),
            ("GUID", &guid),
            ("USER", user),
            ("PASSWORD", password),
            ("HOOK", hook.to_str().unwrap()),
            ("STATE", dir.0.to_str().unwrap()),
            ("EXTRA_LAN", ""),
            ("SERIAL", ""),
        ],
    );
    std::fs::write(dir.0.join("lan.conf"), conf).unwrap();
    std::fs::write(dir.0.join("power"), "0\n").unwrap();
    std::fs::create_dir(dir.0.join("persist")).unwrap();
    let log = std::fs::File::create(dir.0.join("sim.log")).unwrap();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&ipmi_sim);
            c
        }
        None => Command::new(&ipmi_sim),
    };
    let child = cmd
        .arg("-c")
        .arg(dir.0.join("lan.conf"))
        .arg("-f")
        .arg(&emu)
        .arg("-s")
        .arg(dir.0.join("persist"))
        .arg("-n")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting ipmi_sim: {e}"));
    IpmiSim { child, port, user: user.into(), password: password.into(), dir }
}

impl IpmiSim {
    /// Starts one BMC and waits until it answers (at most 5 s).
    pub fn start(user: &str, password: &str) -> IpmiSim {
        Self::start_many(1, user, password).pop().unwrap()
    }

    /// Starts `n` BMCs at once on distinct ports, and waits until all answer. 200 take a few
    /// seconds on 2 cores.
    pub fn start_many(n: usize, user: &str, password: &str) -> Vec<IpmiSim> {
        check_name("IPMI user", user, 16);
        check_name("IPMI password", password, 16); // ipmi_sim ignores a user with a longer one
        require_program("ipmitool");
        let spawn = |port: u16| spawn_ipmi_sim(port, user, password, None);
        let mut sims: Vec<IpmiSim> = free_udp_ports(n).into_iter().map(&spawn).collect();

        // Ping every BMC not yet answering; one that exited (its port was taken meanwhile)
        // starts again on another port.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut ready = vec![false; n];
        let mut restarts = 0;
        let deadline = Instant::now() + Duration::from_secs(5) + Duration::from_millis(50) * n as u32;
        while ready.iter().any(|r| !r) {
            for i in 0..n {
                if ready[i] {
                    continue;
                }
                if let Ok(Some(status)) = sims[i].child.try_wait() {
                    let log = sims[i].sim_log();
                    restarts += 1;
                    assert!(restarts <= 3 + n / 10, "ipmi_sim exited ({status}): {log}");
                    sims[i] = spawn(free_udp_ports(1)[0]);
                }
                let _ = sock.send_to(&IPMI_PING, ("127.0.0.1", sims[i].port));
            }
            let wave = Instant::now();
            let mut buf = [0u8; 512];
            while wave.elapsed() < Duration::from_millis(20) {
                if let Ok((_, from)) = sock.recv_from(&mut buf)
                    && let Some(i) = sims.iter().position(|s| s.port == from.port())
                {
                    ready[i] = true;
                }
            }
            if Instant::now() > deadline {
                let late: Vec<String> =
                    sims.iter().zip(&ready).filter(|(_, r)| !**r).map(|(s, _)| s.address()).collect();
                panic!("ipmi_sim did not answer in time: {late:?}; first log: {}", sims[0].sim_log());
            }
        }
        sims
    }

    /// One BMC on 127.0.0.1:`port` inside network namespace `netns` (where nothing else
    /// listens), once it answers `ipmitool` run in that namespace (at most 5 s).
    pub fn start_in_netns(netns: &str, port: u16, user: &str, password: &str) -> IpmiSim {
        check_name("IPMI user", user, 16);
        check_name("IPMI password", password, 16);
        let sim = spawn_ipmi_sim(port, user, password, Some(netns));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (ok, out) = sim.ipmitool_in(netns, &["chassis", "power", "status"]);
            if ok {
                return sim;
            }
            assert!(Instant::now() < deadline, "ipmi_sim in {netns} did not answer: {out}; {}", sim.sim_log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ipmitool -I lanplus` against this BMC, run inside `netns`.
    pub fn ipmitool_in(&self, netns: &str, args: &[&str]) -> (bool, String) {
        let iface = ["-I", "lanplus", "-C", "3", "-N", "1", "-R", "3"];
        run_ipmitool_in(Some(netns), self.port, &self.user, &self.password, &iface, args)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT"
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory with lan.conf, the hook's files and sim.log.
    /// Changes the power from outside the BMC (a PDU cut, someone at the power button).
    pub fn set_power(&self, on: bool) {
        std::fs::write(self.dir().join("power"), if on { "1\n" } else { "0\n" }).unwrap();
    }

    /// `ipmitool -I lanplus -C 3` against this BMC as its user, an independent check.
    pub fn ipmitool(&self, args: &[&str]) -> (bool, String) {
        run_ipmitool(self.port, &self.user, &self.password, &["-I", "lanplus", "-C", "3", "-N", "1", "-R", "3"], args)
    }

    /// The same over IPMI 1.5 (`-I lan -A MD5`).
    pub fn ipmitool_v15(&self, args: &[&str]) -> (bool, String) {
        run_ipmitool(self.port, &self.user, &self.password, &["-I", "lan", "-A", "MD5", "-N", "1", "-R", "3"], args)
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------
// pyghmi

/// `sims/ipmi/fakebmc.py`: a pyghmi BMC (IPMI 2.0 lanplus, cipher suite 3 only; no IPMI 1.5,
/// no ASF ping) that may answer slowly and lose datagrams. Same state files as [`IpmiSim`].
pub struct FakeBmc {
    child: Child,
    port: u16,
    user: String,
    password: String,
    delay: Option<Duration>,
    dir: Dir,
}

impl FakeBmc {
    /// Starts the BMC and waits until it listens (at most 10 s). `delay`: a sleep before
    /// answering each command; `drop_every`: every Nth datagram received is silently dropped
    /// (N ≥ 4 for ipmitool, see `sims/ipmi/fakebmc.py`).
    pub fn start(user: &str, password: &str, delay: Option<Duration>, drop_every: Option<u32>) -> FakeBmc {
        check_name("IPMI user", user, 16);
        check_name("IPMI password", password, 20);
        let python = require_python_module("pyghmi");
        let script = require_file(&sims_dir().join("ipmi/fakebmc.py"), "sims/ipmi/fakebmc.py");
        let dir = Dir::new();
        let port = free_udp_ports(1)[0];
        let mut cmd = Command::new(python);
        cmd.arg(script).args([port.to_string().as_str(), user, password]).arg("--state").arg(&dir.0);
        if let Some(d) = delay {
            cmd.args(["--delay", &d.as_secs_f64().to_string()]);
        }
        if let Some(n) = drop_every {
            assert!(n >= 2, "drop_every must be at least 2");
            cmd.args(["--drop-every", &n.to_string()]);
        }
        let log = std::fs::File::create(dir.0.join("sim.log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting fakebmc.py: {e}"));
        let mut bmc = FakeBmc { child, port, user: user.into(), password: password.into(), delay, dir };
        // It writes "listening" once its socket is bound. (No ping: it would count as a
        // datagram for --drop-every.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bmc.log().contains("listening on") {
            if let Ok(Some(status)) = bmc.child.try_wait() {
                panic!("fakebmc.py exited ({status}): {}", bmc.sim_log());
            }
            assert!(Instant::now() < deadline, "fakebmc.py did not start: {}", bmc.sim_log());
            std::thread::sleep(Duration::from_millis(20));
        }
        bmc
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT"
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The flags of the last boot device set: any of "valid", "persistent", "efi".
    pub fn boot_flags(&self) -> Vec<String> {
        read(self.dir(), "bootflags").unwrap_or_default().split_whitespace().map(String::from).collect()
    }

    /// `ipmitool -I lanplus -C 3` with a per-try timeout longer than the delay.
    pub fn ipmitool(&self, args: &[&str]) -> (bool, String) {
        let timeout = (self.delay.unwrap_or_default().as_secs_f64().ceil() as u64 + 1).to_string();
        run_ipmitool(
            self.port,
            &self.user,
            &self.password,
            &["-I", "lanplus", "-C", "3", "-N", &timeout, "-R", "4"],
            args,
        )
    }
}

impl Drop for FakeBmc {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// What a simulated BMC's chassis hook (or the pyghmi BMC) keeps in its directory:
/// power, boot device, resets, and a log line per call. Shared by [`IpmiSim`] and [`FakeBmc`].
pub trait BmcState {
    fn dir(&self) -> &Path;

    /// Whether the simulated server is powered on (what the hook recorded).
    fn power(&self) -> bool {
        read(self.dir(), "power").as_deref() == Some("1")
    }

    /// The boot device in ipmi_sim's words: none, pxe, default (= disk), cdrom, bios. ipmi_sim
    /// does not pass the persistent/EFI flags on; [`FakeBmc::boot_flags`] has them.
    fn boot(&self) -> String {
        read(self.dir(), "boot").unwrap_or_else(|| "none".into())
    }

    /// How many hard resets (`chassis power reset`) the BMC saw.
    fn resets(&self) -> usize {
        read(self.dir(), "resets").map_or(0, |s| s.lines().count())
    }

    /// Every call, one a line: "<time> get power", "<time> set power 1", "<time> set reset 1",
    /// "<time> set shutdown 1" (soft), "<time> set boot pxe"; the pyghmi BMC adds its flags
    /// and "<time> drop datagram N".
    fn log(&self) -> String {
        read(self.dir(), "power.log").unwrap_or_default()
    }

    /// The simulator's own output (tracebacks land here).
    fn sim_log(&self) -> String {
        read(self.dir(), "sim.log").unwrap_or_default()
    }
}

impl BmcState for IpmiSim {
    fn dir(&self) -> &Path {
        &self.dir.0
    }
}

impl BmcState for FakeBmc {
    fn dir(&self) -> &Path {
        &self.dir.0
    }
}

// ---------------------------------------------------------------------------------------
// Redfish

/// How to start [`Sushy`].
#[derive(Debug, Clone)]
pub struct SushyOptions {
    /// Serve HTTPS with a fresh self-signed certificate for 127.0.0.1 ([`Sushy::cert_pem`]).
    pub https: bool,
    /// A reset lands on the first read at least this many whole seconds later (0: at once);
    /// `None` keeps sushy's own random 1–11 s.
    pub power_delay: Option<u32>,
}

impl Default for SushyOptions {
    fn default() -> Self {
        SushyOptions { https: false, power_delay: Some(1) }
    }
}

/// sushy-emulator with its fake driver: the given systems under /redfish/v1/Systems/UUID,
/// HTTP basic auth for one user (the service root /redfish/v1/ needs none), per-run state.
///
/// Known gaps of sushy 2.2.0: no SessionService (404); `BootSourceOverrideEnabled` always
/// reads "Continuous"; an unknown ResetType gives 501 (Redfish error body).
pub struct Sushy {
    child: Child,
    port: u16,
    user: String,
    password: String,
    cert_pem: Option<String>,
    dir: Dir,
}

impl Sushy {
    /// HTTP, power changes landing within a second. `systems`: (uuid, name, powered on).
    pub fn start(user: &str, password: &str, systems: &[(&str, &str, bool)]) -> Sushy {
        Self::start_with(user, password, systems, SushyOptions::default())
    }

    pub fn start_with(user: &str, password: &str, systems: &[(&str, &str, bool)], opts: SushyOptions) -> Sushy {
        check_name("Redfish user", user, 64);
        assert!(!user.contains(':'), "Redfish user {user:?}: no colon");
        let python = require_python_module("sushy_tools");
        let emulator = require_file(&venv().join("bin/sushy-emulator"), "sushy-emulator in the virtualenv");
        let dir = Dir::new();

        // htpasswd: bcrypt is the only digest sushy takes; cost 4 keeps each request cheap.
        let out = Command::new(&python)
            .args([
                "-c",
                "import bcrypt, sys; print(sys.argv[1] + ':' + bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt(4)).decode())",
                user,
                password,
            ])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "bcrypt: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(dir.0.join("htpasswd"), &out.stdout).unwrap();

        let mut list = Vec::new();
        for (i, (uuid, name, on)) in systems.iter().enumerate() {
            check_name("system uuid", uuid, 64);
            check_name("system name", name, 64);
            assert!(!uuid.contains('\'') && !name.contains('\''), "no quote in {uuid:?} {name:?}");
            list.push(format!(
                "{{'uuid': '{uuid}', 'name': '{name}', 'power_state': '{}', 'external_notifier': False, \
                 'nics': [{{'mac': '52:54:00:5e:{:02x}:{:02x}', 'ip': '127.0.0.1'}}]}}",
                if *on { "On" } else { "Off" },
                i / 256,
                i % 256
            ));
        }
        let delay = opts.power_delay.map_or(-1, i64::from).to_string();
        let cert_pem = opts.https.then(|| {
            let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("self-signed certificate");
            let pem = ck.cert.pem();
            std::fs::write(dir.0.join("cert.pem"), &pem).unwrap();
            std::fs::write(dir.0.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
            pem
        });
        // A free port may be taken by another test's simulator before sushy binds it, and
        // a connect would then reach that one: sushy is up only once its own log says it
        // runs; if it exits because the port is in use, it starts again on another.
        for _ in 0..5 {
            let port = free_tcp_port();
            let conf = template(
                "redfish/emulator.conf.in",
                &[
                    ("PORT", &port.to_string()),
                    ("DIR", dir.0.to_str().unwrap()),
                    ("SYSTEMS", &format!("[{}]", list.join(",\n    "))),
                    ("POWER_DELAY", &delay),
                ],
            );
            std::fs::write(dir.0.join("emulator.conf"), conf).unwrap();
            let mut cmd = Command::new(&emulator);
            cmd.arg("--config").arg(dir.0.join("emulator.conf"));
            if cert_pem.is_some() {
                cmd.arg("--ssl-certificate").arg(dir.0.join("cert.pem"));
                cmd.arg("--ssl-key").arg(dir.0.join("key.pem"));
            }
            let log = std::fs::File::create(dir.0.join("emu.log")).unwrap();
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting sushy-emulator: {e}"));
            let deadline = Instant::now() + Duration::from_secs(15);
            let up = loop {
                let log = read(&dir.0, "emu.log").unwrap_or_default();
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(log.contains("Address already in use"), "sushy-emulator exited ({status}): {log}");
                    break false;
                }
                if log.contains(" * Running on ") && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                assert!(Instant::now() < deadline, "sushy-emulator did not listen: {log}");
                std::thread::sleep(Duration::from_millis(25));
            };
            if up {
                return Sushy { child, port, user: user.into(), password: password.into(), cert_pem, dir };
            }
        }
        panic!("sushy-emulator found no free port in 5 tries");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "http://127.0.0.1:PORT" (https with [`SushyOptions::https`]).
    pub fn address(&self) -> String {
        let scheme = if self.cert_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// "/redfish/v1/Systems/UUID"
    pub fn system_path(&self, uuid: &str) -> String {
        format!("/redfish/v1/Systems/{uuid}")
    }

    /// The self-signed certificate it serves (PEM), with HTTPS.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The emulator's output: one line per request.
    pub fn log(&self) -> String {
        read(self.dir(), "emu.log").unwrap_or_default()
    }

    /// A client that trusts this emulator's certificate, and nothing else.
    pub fn client(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = &self.cert_pem {
            b = b.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()]);
        }
        b.build().unwrap()
    }

    /// GET `path` (under the address) as the user: status and JSON. Blocks (see [`block_on`]).
    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, None)
    }

    /// A request with a JSON body as the user (POST an action, PATCH a system): status and
    /// JSON. Blocks.
    pub fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(method, path, Some(body))
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rb = self
            .client()
            .request(method, format!("{}{path}", self.address()))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        block_on(async move { super::json_of(rb.send().await.unwrap()).await })
    }

    /// The ComputerSystem resource. Blocks.
    pub fn system(&self, uuid: &str) -> Value {
        let (status, v) = self.get(&self.system_path(uuid));
        assert_eq!(status, StatusCode::OK, "GET system {uuid}: {v}");
        v
    }

    /// Whether the system's PowerState is "On". Blocks.
    pub fn power(&self, uuid: &str) -> bool {
        self.system(uuid)["PowerState"] == "On"
    }

    /// Waits until the system's power is `on`; false after `timeout`. Blocks.
    pub fn wait_power(&self, uuid: &str, on: bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.power(uuid) == on {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs a future to completion on a runtime of its own in another thread, so that it may
/// be called from sync code and from inside a test's runtime alike. The calling thread
/// waits meanwhile: in a current-thread runtime nothing else runs until it returns.
pub fn block_on<T: Send>(f: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

impl Drop for Sushy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
