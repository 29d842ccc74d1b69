//! End to end on a real wire: the netboot service on the root-namespace end of a veth
//! pair, a QEMU (TCG) machine network-booting on a tap inside a network namespace the
//! test creates, and small DHCP/TFTP clients run inside that namespace by this same
//! test binary. Proves what unit tests cannot: that iPXE accepts our DHCP answers and
//! router advertisement, fetches its per-MAC script within a bounded time, and that a
//! MAC without a prepared boot (or whose task ended) gets no offer and no script.
//!
//! Needs root, `ip`, QEMU and Debian's iPXE (scripts/sims-setup.sh installs them); a
//! missing tool fails the test. All traffic stays on the veth pair and in the namespace,
//! which is deleted at the end, also when the test fails.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dcim_drivers::{BootDriver, BootMode, BootRequest};
use dcim_netboot::{DhcpMode, EventKind, Netboot, NetbootConfig};
use dhcproto::v4::{Architecture, DhcpOption, Message, MessageType, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};

/// Set when this binary runs as the in-namespace client (see [`in_namespace_client`]).
const HELPER_ENV: &str = "DCIM_NETBOOT_TEST_CLIENT";
const MAC1: &str = "52:54:00:4e:42:01";
const MAC2: &str = "52:54:00:4e:42:02";
const MAC3: &str = "52:54:00:4e:42:03";
const OVMF: &str = "/usr/share/OVMF";

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn require(path: &str) {
    assert!(Path::new(path).exists(), "run scripts/sims-setup.sh (as root) first: {path} is missing");
}

/// The namespace, veth pair, bridge and tap of one test run; removed on drop, and the
/// QEMU processes killed by pid.
struct Lab {
    ns: String,
    host_if: String,
    tap: String,
    subnet: u8,
    qemus: Vec<Child>,
    dir: PathBuf,
}

impl Lab {
    /// `tag` tells apart the labs of the tests of one run (names are per process).
    fn new(tag: u8) -> Lab {
        let id = format!("{}{tag}", std::process::id() % 100_000);
        let subnet = (std::process::id() % 100 * 2 + 20) as u8 + tag;
        let dir = std::env::temp_dir().join(format!("dcim-netboot-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            ns: format!("dcimnb{id}"),
            host_if: format!("nb{id}h"),
            tap: format!("nb{id}t"),
            subnet,
            qemus: Vec::new(),
            dir,
        };
        // Made before the first command so that a failing command still tears down.
        lab.setup(&format!("nb{id}n"));
        lab
    }

    fn setup(&self, peer: &str) {
        let (ns, h, tap) = (self.ns.as_str(), self.host_if.as_str(), self.tap.as_str());
        run("ip", &["netns", "add", ns]);
        run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        run("ip", &["-n", ns, "link", "add", "br0", "type", "bridge", "forward_delay", "0"]);
        run("ip", &["-n", ns, "link", "set", "br0", "up"]);
        run("ip", &["-n", ns, "addr", "add", &format!("{}/24", self.ip(2)), "dev", "br0"]);
        run("ip", &["-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"]);
        run("ip", &["-n", ns, "link", "set", tap, "master", "br0", "up"]);
        run("ip", &["link", "add", h, "type", "veth", "peer", "name", peer, "netns", ns]);
        run("ip", &["-n", ns, "link", "set", peer, "master", "br0", "up"]);
        // No duplicate address detection: the RA needs a usable link-local address at once.
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{h}/accept_dad"), "0").unwrap();
        run("ip", &["addr", "add", &format!("{}/24", self.ip(1)), "dev", h]);
        run("ip", &["link", "set", h, "up"]);
    }

    fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, host)
    }

    /// Powers on a machine on the tap: BIOS (SeaBIOS + QEMU's iPXE ROM), or UEFI (OVMF
    /// with its own PXE: the NIC's iPXE ROM is left out, so the loader comes over TFTP).
    fn start_qemu(&mut self, mac: &str, uefi: bool) -> Instant {
        let serial = self.dir.join(format!("serial-{}.log", mac.replace(':', "")));
        let netdev = format!("tap,id=n0,ifname={},script=no,downscript=no", self.tap);
        let serial = format!("file:{}", serial.display());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "qemu-system-x86_64", "-smp", "1", "-display", "none"]);
        cmd.args(["-monitor", "none", "-serial", &serial, "-netdev", &netdev, "-no-reboot"]);
        if uefi {
            let vars = self.dir.join("OVMF_VARS.fd");
            std::fs::copy(format!("{OVMF}/OVMF_VARS_4M.fd"), &vars).unwrap();
            let code = format!("if=pflash,format=raw,readonly=on,file={OVMF}/OVMF_CODE_4M.fd");
            let vars = format!("if=pflash,format=raw,file={}", vars.display());
            let device = format!("virtio-net-pci,netdev=n0,mac={mac},romfile=,bootindex=1");
            cmd.args(["-machine", "q35,accel=tcg", "-m", "512", "-drive", &code, "-drive", &vars, "-device", &device]);
        } else {
            let device = format!("virtio-net-pci,netdev=n0,mac={mac}");
            cmd.args(["-machine", "accel=tcg", "-m", "256", "-device", &device, "-boot", "n"]);
        }
        let t0 = Instant::now();
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("qemu-system-x86_64");
        self.qemus.push(child);
        t0
    }

    fn serial_logs(&self) -> String {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("serial"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    }

    fn stop_qemus(&mut self) {
        for mut q in self.qemus.drain(..) {
            // `ip netns exec` execs QEMU, so this pid is QEMU's.
            let _ = q.kill();
            let _ = q.wait();
        }
    }

    /// Runs this test binary inside the namespace as a DHCP or TFTP client.
    fn client(&self, args: &str) -> String {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(&exe)
            .args(["--exact", "in_namespace_client", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "client {args}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        // libtest prints "test in_namespace_client ... " before the line: look anywhere in it
        stdout
            .lines()
            .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.trim().to_owned()))
            .unwrap_or_else(|| panic!("no result: {stdout}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_qemus();
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A minimal HTTP/1.0 GET, so the test needs no HTTP client stack.
fn http_get(addr: SocketAddr, path: &str) -> u16 {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn boot_request(task_id: i64, mac: &str) -> BootRequest {
    BootRequest {
        task_id,
        secret: "0123456789abcdef".into(),
        callback: "http://10.0.0.1:1/agent".into(),
        mac: mac.into(),
        mode: BootMode::Diag { clear_hdd: dcim_core::ClearMode::None },
        answer: serde_json::json!({}),
        location_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_netboots_only_prepared_macs() {
    assert!(Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0"), "needs root (netns, taps)");
    require("/usr/bin/qemu-system-x86_64");
    require("/usr/lib/ipxe/undionly.kpxe");
    let mut lab = Lab::new(0);

    // Boot files: iPXE only needs to fetch them, not to boot them.
    let files = lab.dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("vmlinuz"), vec![0u8; 4096]).unwrap();
    std::fs::write(files.join("initrd.gz"), vec![0u8; 4096]).unwrap();

    let server = lab.ip(1);
    let listener = tokio::net::TcpListener::bind((server, 0)).await.unwrap();
    let http = listener.local_addr().unwrap();
    let mode =
        DhcpMode::Full { first: lab.ip(100), last: lab.ip(199), prefix_len: 24, lease_secs: 600, dns_servers: vec![] };
    let cfg = NetbootConfig::new(&lab.host_if, server, mode, format!("http://{http}"), &files);
    let nb = Netboot::new(cfg).unwrap();
    let servers = nb.start().await.expect("netboot service");
    tokio::spawn(axum::serve(listener, nb.router()).into_future());

    // 1. A prepared machine boots: DHCP, RA, iPXE script, kernel and initrd.
    nb.prepare(&boot_request(11, MAC1)).await.unwrap();
    let mac1 = dcim_core::Mac::parse("mac", MAC1).unwrap();
    let t0 = lab.start_qemu(MAC1, false);
    let ev = nb.events().clone();
    let script = ev.wait_for(Duration::from_secs(30), |k| *k == EventKind::Script { mac: mac1, found: true }).await;
    let at = |pred: &dyn Fn(&EventKind) -> bool| {
        ev.snapshot().into_iter().find(|e| pred(&e.kind)).map(|e| e.at.duration_since(t0).as_secs_f64())
    };
    let offer = at(&|k| matches!(k, EventKind::DhcpOffer { mac, ip: Some(_), .. } if *mac == mac1));
    let ack = at(&|k| matches!(k, EventKind::DhcpAck { mac, ip: Some(_), .. } if *mac == mac1));
    let ra = at(&|k| matches!(k, EventKind::RouterAdvertisement { solicited: true }));
    let initrd =
        ev.wait_for(Duration::from_secs(10), |k| *k == EventKind::File { path: "/initrd.gz".into() }).await.is_some();
    let kernel = at(&|k| *k == EventKind::File { path: "/vmlinuz".into() });
    let script_at = script.as_ref().map(|e| e.at.duration_since(t0).as_secs_f64());
    eprintln!(
        "timings after QEMU start (s): offer {offer:?}, ack {ack:?}, solicited RA {ra:?}, script {script_at:?}, \
         kernel {kernel:?}"
    );
    lab.stop_qemus();
    if script.is_none() {
        panic!("no script fetch in 30 s; events {:?}\nserial:\n{}", ev.snapshot(), lab.serial_logs());
    }
    let (ip, boot_file) = ev
        .snapshot()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::DhcpAck { mac, ip: Some(ip), boot_file } if mac == mac1 => Some((ip, boot_file)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no DHCP ack for {MAC1}"));
    assert!(ip >= lab.ip(100) && ip <= lab.ip(199), "{ip}");
    assert_eq!(boot_file, format!("http://{http}/boot/52-54-00-4e-42-01.ipxe"));
    assert!(ra.is_some(), "no router solicitation was answered");
    // ~2.3 s here; iPXE waiting for IPv6 (no RA) takes it to ~18.5 s, for proxyDHCP
    // (no option 175.176) adds 2 s. The margin is for a busy machine.
    let script_at = script_at.unwrap();
    assert!(script_at < 12.0, "script fetched only {script_at:.1} s after power on");
    assert!(kernel.is_some() && initrd, "iPXE did not fetch the kernel and initrd");

    // 2. The PXE-ROM half of the chain: the loader offered by architecture, then TFTP.
    let r = lab.client(&format!("dhcp {MAC1} pxe0"));
    assert_eq!(r, format!("OFFER {ip} undionly.kpxe"));
    let r = lab.client(&format!("dhcp {MAC1} pxe7"));
    assert!(r.ends_with(" snponly.efi"), "{r}");
    let r = lab.client(&format!("tftp {server} undionly.kpxe"));
    let want = std::fs::read("/usr/lib/ipxe/undionly.kpxe").unwrap().len();
    assert_eq!(r, format!("BYTES {want}"));
    assert!(
        ev.snapshot()
            .iter()
            .any(|e| matches!(&e.kind, EventKind::TftpRead { file, found: true, .. } if file == "undionly.kpxe"))
    );

    // 3. A MAC nobody prepared: no offer, no script.
    assert_eq!(lab.client(&format!("dhcp {MAC2} ipxe")), "NONE");
    assert_eq!(http_get(http, "/boot/52-54-00-4e-42-02.ipxe"), 404);

    // 4. The task ends: the same MAC gets nothing any more.
    assert_eq!(lab.client(&format!("dhcp {MAC1} ipxe")).split(' ').next(), Some("OFFER"));
    assert_eq!(http_get(http, "/boot/52-54-00-4e-42-01.ipxe"), 200);
    nb.cleanup(11, MAC1).await.unwrap();
    assert_eq!(lab.client(&format!("dhcp {MAC1} ipxe")), "NONE");
    assert_eq!(http_get(http, "/boot/52-54-00-4e-42-01.ipxe"), 404);

    drop(servers);
    drop(lab);
}

/// The whole chain a PXE ROM takes: OVMF's own PXE (no option 175) is offered
/// `snponly.efi`, fetches it over TFTP, and the iPXE in it asks again and gets its script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uefi_pxe_chainloads_ipxe_over_tftp() {
    assert!(Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0"), "needs root (netns, taps)");
    require("/usr/bin/qemu-system-x86_64");
    require("/usr/lib/ipxe/snponly.efi");
    require(&format!("{OVMF}/OVMF_CODE_4M.fd"));
    let mut lab = Lab::new(2);
    let files = lab.dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let server = lab.ip(1);
    let listener = tokio::net::TcpListener::bind((server, 0)).await.unwrap();
    let http = listener.local_addr().unwrap();
    let mode =
        DhcpMode::Full { first: lab.ip(100), last: lab.ip(199), prefix_len: 24, lease_secs: 600, dns_servers: vec![] };
    let cfg = NetbootConfig::new(&lab.host_if, server, mode, format!("http://{http}"), &files);
    let nb = Netboot::new(cfg).unwrap();
    let servers = nb.start().await.expect("netboot service");
    tokio::spawn(axum::serve(listener, nb.router()).into_future());

    nb.prepare(&boot_request(12, MAC3)).await.unwrap();
    let mac3 = dcim_core::Mac::parse("mac", MAC3).unwrap();
    let t0 = lab.start_qemu(MAC3, true);
    let ev = nb.events().clone();
    let script = ev.wait_for(Duration::from_secs(90), |k| *k == EventKind::Script { mac: mac3, found: true }).await;
    lab.stop_qemus();
    let at = |pred: &dyn Fn(&EventKind) -> bool| {
        ev.snapshot().into_iter().find(|e| pred(&e.kind)).map(|e| e.at.duration_since(t0).as_secs_f64())
    };
    let loader = at(&|k| matches!(k, EventKind::DhcpAck { boot_file, .. } if boot_file == "snponly.efi"));
    let tftp = at(&|k| matches!(k, EventKind::TftpRead { file, found: true, .. } if file == "snponly.efi"));
    let ipxe = at(&|k| matches!(k, EventKind::DhcpAck { boot_file, .. } if boot_file.ends_with(".ipxe")));
    let script_at = script.as_ref().map(|e| e.at.duration_since(t0).as_secs_f64());
    eprintln!(
        "UEFI timings after QEMU start (s): loader ack {loader:?}, TFTP {tftp:?}, iPXE ack {ipxe:?}, script {script_at:?}"
    );
    assert!(script.is_some(), "no script fetch in 90 s; events {:?}\nserial:\n{}", ev.snapshot(), lab.serial_logs());
    assert!(loader.is_some() && tftp.is_some() && ipxe.is_some(), "{:?}", ev.snapshot());
    drop(servers);
    drop(lab);
}

/// Proxy mode beside a segment's own DHCP server: boot options only, no address, and
/// the boot server request on port 4011; nothing for MACs without a prepared boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_answers_pxe_clients_with_boot_options_only() {
    assert!(Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0"), "needs root (netns)");
    require("/usr/lib/ipxe/undionly.kpxe");
    let lab = Lab::new(1);
    let server = lab.ip(1);
    let cfg = NetbootConfig::new(&lab.host_if, server, DhcpMode::Proxy, format!("http://{server}:8080"), &lab.dir);
    let nb = Netboot::new(cfg).unwrap();
    let servers = nb.start().await.expect("netboot service");

    assert_eq!(lab.client(&format!("dhcp {MAC1} pxe0")), "NONE");
    nb.prepare(&boot_request(5, MAC1)).await.unwrap();
    assert_eq!(lab.client(&format!("dhcp {MAC1} pxe0")), "OFFER 0.0.0.0 undionly.kpxe");
    assert_eq!(
        lab.client(&format!("dhcp {MAC1} ipxe")),
        format!("OFFER 0.0.0.0 http://{server}:8080/boot/52-54-00-4e-42-01.ipxe")
    );
    assert_eq!(lab.client(&format!("pxe-request {server} {MAC1}")), "ACK snponly.efi");
    nb.cleanup(5, MAC1).await.unwrap();
    assert_eq!(lab.client(&format!("pxe-request {server} {MAC1}")), "NONE");

    drop(servers);
    drop(lab);
}

/// Not a test of its own: the DHCP/TFTP client [`Lab::client`] runs inside the
/// namespace (this binary, re-executed there). Does nothing in a normal test run.
#[test]
fn in_namespace_client() {
    let Ok(args) = std::env::var(HELPER_ENV) else { return };
    let a: Vec<&str> = args.split(' ').collect();
    let result = match a[0] {
        "dhcp" => dhcp_discover(a[1], a[2]),
        "pxe-request" => pxe_request(a[1].parse().unwrap(), a[2]),
        "tftp" => tftp_get(a[1].parse().unwrap(), a[2]),
        other => panic!("unknown client command {other}"),
    };
    println!("RESULT {result}");
}

/// Sends one DHCPDISCOVER as a PXE ROM (`pxe0`, `pxe7`) or as iPXE (`ipxe`) would, and
/// reports the first offer for it within 3 s: `OFFER <yiaddr> <bootfile>` or `NONE`.
fn dhcp_discover(mac: &str, client: &str) -> String {
    let chaddr: Vec<u8> = mac.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_broadcast(true).unwrap();
    s.bind_device(Some(b"br0")).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into()).unwrap();
    let sock: UdpSocket = s.into();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();

    let mut m = Message::default();
    let xid = m.xid();
    m.set_chaddr(&chaddr).set_flags(dhcproto::v4::Flags::default().set_broadcast());
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Discover));
    let arch = if client == "pxe7" { 7 } else { 0 };
    o.insert(DhcpOption::ClassIdentifier(format!("PXEClient:Arch:{arch:05}:UNDI:002001").into_bytes()));
    o.insert(DhcpOption::ClientSystemArchitecture(Architecture(arch)));
    if client == "ipxe" {
        o.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        o.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::Unknown(175), vec![19, 1, 1])));
    }
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).unwrap();
    sock.send_to(&out, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67)).unwrap();

    let end = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        let Ok((n, _)) = sock.recv_from(&mut buf) else { continue };
        let Ok(r) = Message::decode(&mut Decoder::new(&buf[..n])) else { continue };
        if r.xid() != xid || r.opts().msg_type() != Some(MessageType::Offer) {
            continue;
        }
        let file = match r.opts().get(OptionCode::BootfileName) {
            Some(DhcpOption::BootfileName(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        return format!("OFFER {} {file}", r.yiaddr());
    }
    "NONE".into()
}

/// Asks the boot server port 4011 for an x86-64 UEFI boot file, as a PXE client does
/// after a proxyDHCP offer: `ACK <bootfile>` or `NONE`.
fn pxe_request(server: Ipv4Addr, mac: &str) -> String {
    let chaddr: Vec<u8> = mac.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut m = Message::default();
    let xid = m.xid();
    m.set_chaddr(&chaddr);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Request));
    o.insert(DhcpOption::ClassIdentifier(b"PXEClient:Arch:00007:UNDI:003016".to_vec()));
    o.insert(DhcpOption::ClientSystemArchitecture(Architecture(7)));
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).unwrap();
    sock.send_to(&out, (server, 4011)).unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        let Ok((n, _)) = sock.recv_from(&mut buf) else { continue };
        let Ok(r) = Message::decode(&mut Decoder::new(&buf[..n])) else { continue };
        if r.xid() == xid && r.opts().msg_type() == Some(MessageType::Ack) {
            return match r.opts().get(OptionCode::BootfileName) {
                Some(DhcpOption::BootfileName(b)) => format!("ACK {}", String::from_utf8_lossy(b)),
                _ => "ACK".into(),
            };
        }
    }
    "NONE".into()
}

/// Reads `file` over TFTP (RFC 1350, 512-byte blocks) and reports `BYTES <n>`.
fn tftp_get(server: Ipv4Addr, file: &str) -> String {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(file.as_bytes());
    rrq.push(0);
    rrq.extend_from_slice(b"octet\0");
    sock.send_to(&rrq, (server, 69)).unwrap();
    let (mut total, mut expect) = (0usize, 1u16);
    let mut buf = [0u8; 1024];
    loop {
        let (n, from) = sock.recv_from(&mut buf).expect("TFTP data");
        assert_eq!(&buf[..2], &[0, 3], "not a DATA packet: {:?}", &buf[..n.min(40)]);
        let block = u16::from_be_bytes([buf[2], buf[3]]);
        if block == expect {
            total += n - 4;
            expect = expect.wrapping_add(1);
        }
        let ack = [0, 4, buf[2], buf[3]];
        sock.send_to(&ack, from).unwrap();
        if block.wrapping_add(1) == expect && n - 4 < 512 {
            return format!("BYTES {total}");
        }
    }
}
