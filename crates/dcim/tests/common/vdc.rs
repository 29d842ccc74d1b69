//! A virtual data center for tests: QEMU (TCG) machines whose power is an `ipmi_sim`
//! BMC on 127.0.0.1 (its chassis hook, `sims/vdc/chassis.sh`, starts and stops the
//! machine), with their NIC on a bridge inside a network namespace the test creates.
//! Nothing leaves loopback and that namespace; both are removed when dropped.
//!
//! Needs root (namespaces, taps) and what `scripts/sims-setup.sh` installs: `ipmi_sim`,
//! `ipmitool`, `qemu-system-x86`, `qemu-utils`, `ipxe-qemu`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sims::{kill, require_file, require_program, run_ipmitool_in, sims_dir, template};
use super::tempdir::Dir;

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A network namespace holding a bridge `br0`, joined to the root namespace by a veth
/// whose root end (`host_if`) has `host_ip`/24.
pub struct Netns {
    pub name: String,
    pub bridge: &'static str,
    pub host_if: String,
}

impl Netns {
    pub fn create(host_ip: &str) -> Netns {
        require_program("ip");
        let id = hex::encode(rand::random::<[u8; 3]>());
        let ns = Netns { name: format!("dcimt{id}"), bridge: "br0", host_if: format!("dcimh{id}") };
        let peer = format!("dcimn{id}");
        sh(&["ip", "netns", "add", &ns.name]);
        sh(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &ns.name, "link", "add", "br0", "type", "bridge", "forward_delay", "0"]);
        sh(&["ip", "-n", &ns.name, "link", "set", "br0", "up"]);
        sh(&["ip", "link", "add", &ns.host_if, "type", "veth", "peer", "name", &peer, "netns", &ns.name]);
        sh(&["ip", "-n", &ns.name, "link", "set", &peer, "master", "br0", "up"]);
        // A link-local address at once (no duplicate detection): the router advertisement needs one.
        sh(&["sysctl", "-qw", &format!("net.ipv6.conf.{}.accept_dad=0", ns.host_if)]);
        sh(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &ns.host_if]);
        sh(&["ip", "link", "set", &ns.host_if, "up"]);
        ns
    }
}

/// dnsmasq inside a namespace at `ip`/24 on its bridge, as one of the site's own servers
/// dcim must live beside: a DHCP server handing out addresses and nothing about booting
/// ([`SiteDhcp::start`]), or a DNS server ([`SiteDhcp::dns`]). Its log is `log()`.
pub struct SiteDhcp {
    child: Child,
    dir: Dir,
}

impl SiteDhcp {
    /// DHCP only (no DNS), handing out `first..=last`.
    pub fn start(ns: &Netns, ip: &str, first: &str, last: &str) -> SiteDhcp {
        Self::spawn(
            ns,
            ip,
            &["--port=0".into(), format!("--dhcp-range={first},{last},255.255.255.0,10m"), "--log-dhcp".into()],
            "DHCP, IP range",
        )
    }

    /// DNS only, answering `name` with `addr` (and nothing else: no upstream servers).
    pub fn dns(ns: &Netns, ip: &str, name: &str, addr: &str) -> SiteDhcp {
        let args = [
            format!("--listen-address={ip}"),
            "--no-resolv".into(),
            "--no-hosts".into(),
            format!("--address=/{name}/{addr}"),
            "--log-queries".into(),
        ];
        Self::spawn(ns, ip, &args, "started, version")
    }

    fn spawn(ns: &Netns, ip: &str, args: &[String], ready: &str) -> SiteDhcp {
        let dnsmasq = require_program("dnsmasq");
        sh(&["ip", "-n", &ns.name, "addr", "add", &format!("{ip}/24"), "dev", ns.bridge]);
        let dir = Dir::new();
        let d = &dir.0;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(dnsmasq)
            .args(["--keep-in-foreground", "--conf-file=/dev/null", "--bind-interfaces", "--user=root"])
            .arg(format!("--interface={}", ns.bridge))
            .args(args)
            .arg(format!("--dhcp-leasefile={}", d.join("leases").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-facility={}", d.join("dnsmasq.log").display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("dnsmasq starts");
        let sd = SiteDhcp { child, dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sd.log().contains(ready) {
            assert!(Instant::now() < deadline, "dnsmasq did not start: {}", sd.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        sd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("dnsmasq.log")).unwrap_or_default()
    }
}

impl Drop for SiteDhcp {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// One virtual machine: 512 MiB, a virtio NIC with iPXE on the namespace's bridge, two
/// qcow2 disks (320 and 256 MiB, serials NAME-d0/-d1), and its BMC on 127.0.0.1:PORT
/// (admin/secret, lanplus and IPMI 1.5), which the machine also sees in-band through a
/// KCS interface. Off until its BMC powers it on.
pub struct VirtualMachine {
    bmc: Child,
    port: u16,
    pub mac: String,
    dir: Dir,
    _aliases: Vec<UdpAlias>,
    /// The namespace the BMC (and so the machine) runs in; none: the root namespace.
    bmc_netns: Option<String>,
}

/// The BMC answering on one more loopback address, with its port: every datagram to
/// `alias:port` goes to `127.0.0.1:port` from a socket of its sender's own, and the
/// answers come back from `alias:port`. ipmi_sim takes one `addr` per LAN channel and
/// cannot move to the address a `Set LAN Configuration` gives it, as a real BMC does;
/// RMCP+ sessions are keyed by session id, so they cross the relay unchanged.
struct UdpAlias {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpAlias {
    fn start(alias: &str, port: u16) -> UdpAlias {
        use std::net::{SocketAddr, UdpSocket};
        use std::sync::atomic::Ordering;
        let front = UdpSocket::bind((alias, port)).unwrap_or_else(|e| panic!("binding {alias}:{port}: {e}"));
        front.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peers: Vec<(SocketAddr, UdpSocket)> = vec![];
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::SeqCst) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    if !peers.iter().any(|(p, _)| *p == from) {
                        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
                        back.connect(("127.0.0.1", port)).unwrap();
                        back.set_nonblocking(true).unwrap();
                        peers.push((from, back));
                    }
                    let (_, back) = peers.iter().find(|(p, _)| *p == from).unwrap();
                    let _ = back.send(&buf[..n]);
                }
                for (peer, back) in &peers {
                    while let Ok(n) = back.recv(&mut buf) {
                        let _ = front.send_to(&buf[..n], peer);
                    }
                }
            }
        });
        UdpAlias { stop, thread: Some(thread) }
    }
}

impl Drop for UdpAlias {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub const BMC_USER: &str = "admin";
pub const BMC_PASSWORD: &str = "secret";

/// The machine's firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS with the NIC's iPXE option ROM.
    Bios,
    /// OVMF (q35) with its own network boot, which loads iPXE over TFTP.
    Uefi,
}

impl VirtualMachine {
    pub fn start(ns: &Netns, mac: &str) -> VirtualMachine {
        Self::start_with(ns, mac, Firmware::Bios)
    }

    pub fn start_with(ns: &Netns, mac: &str, fw: Firmware) -> VirtualMachine {
        Self::start_full(ns, mac, fw, &[])
    }

    /// With `bmc_aliases`: more 127.x addresses the BMC answers on (with its port), as a
    /// real BMC would once given one (`setup_ipmi` with an `ipmi_pool`).
    pub fn start_full(ns: &Netns, mac: &str, fw: Firmware, bmc_aliases: &[&str]) -> VirtualMachine {
        Self::start_inner(ns, mac, fw, bmc_aliases, false)
    }

    /// With its BMC, and so the machine, inside the namespace: the BMC answers on the
    /// namespace's loopback only, where nothing outside it reaches.
    pub fn start_in_netns(ns: &Netns, mac: &str) -> VirtualMachine {
        Self::start_inner(ns, mac, Firmware::Bios, &[], true)
    }

    fn start_inner(ns: &Netns, mac: &str, fw: Firmware, bmc_aliases: &[&str], inside: bool) -> VirtualMachine {
        let ipmi_sim = require_program("ipmi_sim");
        require_program("qemu-system-x86_64");
        let qemu_img = require_program("qemu-img");
        let hook = require_file(&sims_dir().join("vdc/chassis.sh"), "sims/vdc/chassis.sh");
        let emu = require_file(&sims_dir().join("ipmi/bmc.emu"), "sims/ipmi/bmc.emu");
        let dir = Dir::new();
        let d = &dir.0;
        let name = format!("vm{}", &mac.replace(':', "")[6..]);
        let tap = format!("dt{}", hex::encode(rand::random::<[u8; 4]>()));
        let firmware = match fw {
            Firmware::Bios => "bios",
            Firmware::Uefi => {
                let vars = require_file(Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd"), "OVMF (apt ovmf)");
                std::fs::copy(vars, d.join("OVMF_VARS.fd")).unwrap();
                "uefi"
            }
        };
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let vm_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let env = format!(
            "NAME={name}\nMAC={mac}\nNETNS={}\nBRIDGE={}\nTAP={tap}\nMEM=512\nFW={firmware}\nVM_PORT={vm_port}\n",
            ns.name, ns.bridge
        );
        std::fs::write(d.join("machine.env"), env).unwrap();
        // Disks full of old data: a pattern at both ends and a marker in the middle.
        let qemu_io = require_program("qemu-io");
        for (disk, size, pattern) in [("disk0.qcow2", 320, "0xa5"), ("disk1.qcow2", 256, "0xb6")] {
            let st = Command::new(&qemu_img)
                .args(["create", "-q", "-f", "qcow2"])
                .arg(d.join(disk))
                .arg(format!("{size}M"))
                .status();
            assert!(st.is_ok_and(|s| s.success()), "qemu-img create {disk}");
            let st = Command::new(&qemu_io)
                .args(["-f", "qcow2", "-c", &format!("write -q -P {pattern} 0 1M")])
                .args(["-c", "write -q -P 0x5a 100M 1M"])
                .args(["-c", &format!("write -q -P {pattern} {}M 1M", size - 1)])
                .arg(d.join(disk))
                .status();
            assert!(st.is_ok_and(|s| s.success()), "qemu-io {disk}");
        }
        let serial = format!("  serial 15 127.0.0.1 {vm_port} codec VM");
        let conf = template(
            "ipmi/lan.conf.in",
            &[
                ("NAME", &name),
                ("PORT", &port.to_string()),
                ("GUID", &hex::encode(rand::random::<[u8; 16]>())),
                ("USER", BMC_USER),
                ("PASSWORD", BMC_PASSWORD),
                ("HOOK", hook.to_str().unwrap()),
                ("STATE", d.to_str().unwrap()),
                ("EXTRA_LAN", ""),
                ("SERIAL", &serial),
            ],
        );
        std::fs::write(d.join("lan.conf"), conf).unwrap();
        std::fs::create_dir(d.join("persist")).unwrap();
        let log = std::fs::File::create(d.join("sim.log")).unwrap();
        let mut bmc = if inside {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(ipmi_sim);
            c
        } else {
            Command::new(ipmi_sim)
        };
        let bmc = bmc
            .arg("-c")
            .arg(d.join("lan.conf"))
            .arg("-f")
            .arg(emu)
            .arg("-s")
            .arg(d.join("persist"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("ipmi_sim starts");
        let aliases = bmc_aliases.iter().map(|a| UdpAlias::start(a, port)).collect();
        let bmc_netns = inside.then(|| ns.name.clone());
        let vm = VirtualMachine { bmc, port, mac: mac.to_owned(), dir, _aliases: aliases, bmc_netns };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !vm.ipmitool(&["mc", "info"]).0 {
            assert!(Instant::now() < deadline, "the machine's BMC did not answer: {}", vm.file("sim.log"));
            std::thread::sleep(Duration::from_millis(50));
        }
        vm
    }

    /// The BMC's `127.0.0.1:PORT`.
    pub fn bmc_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.0.join(name)).unwrap_or_default()
    }

    /// Whether the machine's QEMU process is alive (not a zombie). The process execs
    /// twice on its way up (bash, python, qemu), and in the middle of an exec its
    /// command line reads empty, as a zombie's does: an empty one is read again until
    /// the process shows its new command line, ends, or turns out to be a zombie.
    pub fn running(&self) -> bool {
        let pid = self.file("qemu.pid").trim().to_owned();
        if pid.is_empty() {
            return false;
        }
        for _ in 0..40 {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            if !cmdline.is_empty() {
                return String::from_utf8_lossy(&cmdline).contains(self.dir.0.to_str().unwrap());
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').next());
            if matches!(state, None | Some("Z" | "X")) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// The machine's console (SeaBIOS, iPXE, then whatever it boots).
    pub fn console(&self) -> String {
        self.file("serial.log")
    }

    /// Waits until the console shows `text`; false after `timeout`.
    pub fn wait_console(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.console().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Disk `n`'s bytes (converted to raw by `qemu-img`): its first MiB, the MiB at
    /// 100 MiB, its last MiB.
    pub fn disk_samples(&self, n: usize) -> [Vec<u8>; 3] {
        let bytes = self.disk_raw(n);
        let mib = 1 << 20;
        [bytes[..mib].to_vec(), bytes[100 * mib..101 * mib].to_vec(), bytes[bytes.len() - mib..].to_vec()]
    }

    /// Disk `n`'s bytes, all of them (converted to raw by `qemu-img`).
    pub fn disk_raw(&self, n: usize) -> Vec<u8> {
        let raw = self.dir.0.join(format!("disk{n}.raw"));
        let st = Command::new(require_program("qemu-img"))
            .args(["convert", "-f", "qcow2", "-O", "raw"])
            .arg(self.dir.0.join(format!("disk{n}.qcow2")))
            .arg(&raw)
            .status();
        assert!(st.is_ok_and(|s| s.success()), "qemu-img convert disk{n}");
        let bytes = std::fs::read(&raw).unwrap();
        let _ = std::fs::remove_file(&raw);
        bytes
    }

    /// `ipmitool -I lanplus` against this machine's BMC, as an independent check.
    pub fn ipmitool(&self, args: &[&str]) -> (bool, String) {
        let iface = ["-I", "lanplus", "-C", "3", "-N", "1", "-R", "2"];
        run_ipmitool_in(self.bmc_netns.as_deref(), self.port, BMC_USER, BMC_PASSWORD, &iface, args)
    }
}

impl Drop for VirtualMachine {
    fn drop(&mut self) {
        kill(&mut self.bmc);
        let pid = self.file("qemu.pid").trim().to_owned();
        if !pid.is_empty() && self.running() {
            let _ = Command::new("kill").args(["-KILL", &pid]).output();
        }
    }
}

/// A small raw "OS image" for install tests, made here (no network, no tools): a
/// 512-byte MBR boot sector whose code prints `line` on COM1 (port 0x3f8) and halts,
/// then `mib` MiB in all of deterministic pseudo-random bytes, so a copy that is
/// short, shifted or from another image does not compare equal. Written from the
/// recipe of /work/shared/reference/virtual-dc.md §3 (`mk-image.py`), without its
/// isa-debug-exit: the machine stays up, showing the line, until it is powered off.
pub fn boot_sector_image(line: &str, mib: usize) -> Vec<u8> {
    #[rustfmt::skip]
    let code: [u8; 0x14] = [
        0xfa,             // cli
        0x31, 0xc0,       // xor ax,ax
        0x8e, 0xd8,       // mov ds,ax
        0xbe, 0x14, 0x7c, // mov si,0x7c14 (the line, right after this code)
        0xba, 0xf8, 0x03, // mov dx,0x3f8 (COM1's transmit register)
        0xac,             // next: lodsb
        0x84, 0xc0,       // test al,al
        0x74, 0x03,       // jz halt
        0xee,             // out dx,al
        0xeb, 0xf8,       // jmp next
        0xf4,             // halt: hlt (interrupts are off: for good)
    ];
    let mut img = code.to_vec();
    img.extend_from_slice(format!("{line}\r\n").as_bytes());
    img.push(0);
    assert!(img.len() <= 446, "the line fits before the partition table");
    img.resize(510, 0);
    img.extend_from_slice(&[0x55, 0xaa]);
    let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ line.len() as u64;
    while img.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        img.extend_from_slice(&x.to_le_bytes());
    }
    img.truncate(mib << 20);
    img
}

/// `img` (at least 4 MiB, from [`boot_sector_image`]) as a partitioned disk: partition 1
/// (Linux, bootable) is its MiB 1 to 4 and stands for the OS; partition 2 (FAT32 LBA)
/// follows at 4 MiB and is `fat`, a filesystem labelled CIDATA for the agent's
/// cloud-init seed. The partition table sits after the boot code in the MBR.
pub fn with_seed_partition(mut img: Vec<u8>, fat: &[u8]) -> Vec<u8> {
    const MIB: usize = 1 << 20;
    assert!(img.len() >= 4 * MIB && fat.len().is_multiple_of(512));
    img.truncate(4 * MIB);
    let entry = |boot: u8, kind: u8, start: usize, len: usize| {
        let mut e = vec![boot, 0xfe, 0xff, 0xff, kind, 0xfe, 0xff, 0xff];
        e.extend_from_slice(&u32::try_from(start / 512).unwrap().to_le_bytes());
        e.extend_from_slice(&u32::try_from(len / 512).unwrap().to_le_bytes());
        e
    };
    let table = [entry(0x80, 0x83, MIB, 3 * MIB), entry(0, 0x0c, 4 * MIB, fat.len())].concat();
    img[446..446 + 32].copy_from_slice(&table);
    img.extend_from_slice(fat);
    img
}
