//! The admin account from the environment, and the demo data center.
//!
//! `DCIM_ADMIN_EMAIL` with `DCIM_ADMIN_PASSWORD` (or `_FILE`) creates that admin at
//! any start if no user has that e-mail. `--demo` adds, once, a virtual data center
//! on the fake drivers: a location, two racks, a 48-port switch, a 24-outlet PDU,
//! 24 servers in four configurations (some new, some owned by two customers) and OS
//! templates. Without a configured admin, the demo makes `admin@example.com` with a
//! random password, kept in `DATA_DIR/demo-admin.txt` and printed at every start.
//! Device addresses use the reserved `.invalid` domain: the fake drivers send nothing.
//!
//! An IPv4 network in 192.0.2.0/24 and an IPv6 one in 2001:db8::/64 with a pool each.
//!
//! The OS templates install: each carries a small disk image that dcim writes under
//! `DATA_DIR/images` and serves itself (`image_url` `/images/demo-NAME.img`, fetched
//! from the listener the agent reports to). The fake agent downloads and checks it;
//! a real machine booted through a netboot segment writes it to its disk and, booted
//! from that disk, prints which template dcim installed. It holds no operating system.

use anyhow::Context;
use dcim_core::configuration::{Cpu, Disk, DiskType, HardwareInfo, Memory, Motherboard, Nic, generate};
use dcim_core::{Email, Role, TemplateType};
use dcim_store::Store;
use dcim_store::inventory::{DeviceKind, NewDevice, OsImage, PortReport};
use dcim_store::servers::{BmcAccess, NewServer, ServerDetails, ServerPatch};
use dcim_store::users::NewUser;
use serde_json::json;

use crate::Config;

const DEMO_ADMIN: &str = "admin@example.com";

async fn add_user(store: &Store, email: &str, password: &str, role: Role) -> anyhow::Result<dcim_store::ids::UserId> {
    let password_hash = dcim_api::auth::hash_password(password.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("hashing the password: {}", e.msg))?;
    let id = store
        .create_user(&NewUser {
            email: Email::parse("email", email).map_err(|e| anyhow::anyhow!("{e}"))?,
            password_hash,
            role,
            full_name: String::new(),
            phone_number: String::new(),
            vlans_per_user: 0,
        })
        .await?;
    Ok(id)
}

/// `dcim user add`, and the configured admin.
pub async fn create_user(
    store: &Store,
    email: &str,
    password: &str,
    role: Role,
) -> anyhow::Result<dcim_store::ids::UserId> {
    add_user(store, email, password, role).await
}

/// Creates the configured admin if both its e-mail and password are set and no
/// user has that e-mail yet.
pub async fn ensure_admin(store: &Store, cfg: &Config) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&cfg.admin_email, &cfg.admin_password) else { return Ok(()) };
    if store.find_user_id_by_email(email).await?.is_some() {
        return Ok(());
    }
    add_user(store, email, password, Role::Admin).await.context("creating the configured admin")?;
    tracing::info!(%email, "admin account created from the configuration");
    Ok(())
}

fn random_password() -> String {
    dcim_api::auth::new_secret()[..20].to_owned()
}

/// Seeds the demo data center unless the database already has a location.
pub async fn seed(store: &Store, cfg: &Config) -> anyhow::Result<()> {
    let no_admin_configured = cfg.admin_email.is_none() || cfg.admin_password.is_none();
    let cred_file = cfg.data_dir.join("demo-admin.txt");
    if no_admin_configured && store.find_user_id_by_email(DEMO_ADMIN).await?.is_none() {
        let password = random_password();
        add_user(store, DEMO_ADMIN, &password, Role::Admin).await?;
        std::fs::create_dir_all(&cfg.data_dir)?;
        crate::tls::write_private(&cred_file, format!("{DEMO_ADMIN} {password}\n").as_bytes())?;
    }
    if no_admin_configured && let Ok(line) = std::fs::read_to_string(&cred_file) {
        let mut parts = line.split_whitespace();
        if let (Some(e), Some(p)) = (parts.next(), parts.next()) {
            println!("demo admin: email {e} password {p}  (kept in {})", cred_file.display());
        }
    }
    if store.list_locations(&Default::default()).await?.size == 0 {
        build(store).await.context("seeding the demo data center")?;
        tracing::info!("demo data center created");
    }
    give_images(store, &cfg.data_dir).await.context("the demo's OS images")
}

/// The `os` templates of the demo, with the file name of their image.
const DEMO_OS: &[(&str, &str)] = &[
    ("Debian 12", "demo-debian-12.img"),
    ("Ubuntu 24.04", "demo-ubuntu-24.04.img"),
    ("AlmaLinux 9", "demo-almalinux-9.img"),
];

/// Writes the demo's images (again, if changed or missing) and gives each demo `os`
/// template that has neither an image nor an installer its image: on a new demo, and
/// on one seeded before the demo's templates had images.
async fn give_images(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use sha2::Digest;
    let dir = data_dir.join("images");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let templates = store.list_os_templates(&Default::default()).await?.items;
    for (name, file) in DEMO_OS {
        let bytes = demo_image(name);
        let path = dir.join(file);
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        let image = OsImage { url: format!("/images/{file}"), sha256: hex::encode(sha2::Sha256::digest(&bytes)) };
        for t in templates.iter().filter(|t| t.name == *name && t.kind == TemplateType::Os) {
            if t.image_url.is_none() && t.installer.is_none() {
                store.update_os_template(t.id, None, None, None, Some(Some(&image)), None).await?;
            }
        }
    }
    Ok(())
}

/// A 2 MiB raw disk: an MBR whose boot code prints (BIOS text output) what was
/// installed, and one empty Linux partition from 1 MiB on.
fn demo_image(template: &str) -> Vec<u8> {
    const SECTORS: u32 = 4096;
    // x86 real mode, loaded at 0:7C00: print the string at 7C19 with int 10h, then halt.
    const CODE: [u8; 25] = [
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0xBE, 0x19, 0x7C, // mov si, 0x7c19
        0xFC, // cld
        0xAC, // next: lodsb
        0x84, 0xC0, // test al, al
        0x74, 0x09, // jz halt
        0xB4, 0x0E, // mov ah, 0x0e (teletype output)
        0xBB, 0x07, 0x00, // mov bx, 7 (page 0, grey)
        0xCD, 0x10, // int 0x10
        0xEB, 0xF2, // jmp next
        0xF4, // halt: hlt
        0xEB, 0xFD, // jmp halt
    ];
    let mut disk = vec![0u8; SECTORS as usize * 512];
    disk[..CODE.len()].copy_from_slice(&CODE);
    let msg = format!(
        "dcim demo image \"{template}\": written and checked by dcim.\r\nThere is no operating system in it.\r\n"
    );
    let msg = &msg.as_bytes()[..msg.len().min(440 - CODE.len() - 1)];
    disk[CODE.len()..CODE.len() + msg.len()].copy_from_slice(msg);
    disk[440..444].copy_from_slice(b"dcim");
    // Partition 1: bootable, type 0x83, LBA 2048 to the end (CHS fields say "use LBA").
    let mut entry = [0x80, 0xFE, 0xFF, 0xFF, 0x83, 0xFE, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0];
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(SECTORS - 2048).to_le_bytes());
    disk[446..462].copy_from_slice(&entry);
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk
}

struct Model {
    cpu: &'static str,
    sockets: u32,
    cores: u32,
    ram_gib: u64,
    disks: &'static [(u64, DiskType)],
    board: &'static str,
}

const MODELS: &[(Model, usize)] = &[
    (
        Model {
            cpu: "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz",
            sockets: 1,
            cores: 8,
            ram_gib: 64,
            disks: &[(1024, DiskType::Nvme), (1024, DiskType::Nvme)],
            board: "Z390 AORUS PRO",
        },
        8,
    ),
    (
        Model {
            cpu: "Intel(R) Xeon(R) E-2146G CPU @ 3.50GHz",
            sockets: 1,
            cores: 6,
            ram_gib: 64,
            disks: &[(1920, DiskType::Ssd), (3840, DiskType::Ssd)],
            board: "X11SCH-F",
        },
        6,
    ),
    (
        Model {
            cpu: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
            sockets: 2,
            cores: 16,
            ram_gib: 256,
            disks: &[(4000, DiskType::Hdd), (4000, DiskType::Hdd), (4000, DiskType::Hdd), (4000, DiskType::Hdd)],
            board: "X11DPi-N",
        },
        6,
    ),
    (
        Model {
            cpu: "AMD EPYC 7502P 32-Core Processor",
            sockets: 1,
            cores: 32,
            ram_gib: 128,
            disks: &[(960, DiskType::Ssd), (960, DiskType::Ssd)],
            board: "H12SSL-i",
        },
        4,
    ),
];

fn hardware(m: &Model, n: usize, mac: &str) -> HardwareInfo {
    HardwareInfo {
        cpu: Some(Cpu {
            model: Some(m.cpu.into()),
            sockets: Some(m.sockets),
            cores: Some(m.cores),
            threads: Some(m.cores * 2),
        }),
        memory: Some(Memory { total_mib: Some(m.ram_gib * 1024) }),
        disks: m
            .disks
            .iter()
            .enumerate()
            .map(|(i, (size, kind))| Disk {
                name: Some(match kind {
                    DiskType::Nvme => format!("nvme{i}n1"),
                    _ => format!("sd{}", (b'a' + i as u8) as char),
                }),
                size_gb: Some(*size),
                kind: Some(*kind),
                serial: Some(format!("DEMO{n:02}D{i}")),
                model: None,
            })
            .collect(),
        nics: vec![Nic { name: Some("eth0".into()), mac: Some(mac.into()), link: Some(true) }],
        motherboard: Some(Motherboard {
            vendor: Some("Supermicro".into()),
            model: Some(m.board.into()),
            serial: Some(format!("DEMO-BOARD-{n:02}")),
        }),
    }
}

async fn build(store: &Store) -> anyhow::Result<()> {
    let loc = store.create_location("Demo DC", "1st Street, 25", None).await?;
    let racks = [store.create_rack("A1", loc, 42).await?, store.create_rack("A2", loc, 42).await?];

    // As a Juniper switch reports them: ifDescr is the interface, ifAlias what the
    // operators wrote on it (servers 1 to 24 on ports 1 to 24, their BMCs on 25 to 48,
    // as connected below).
    let switch_ports: Vec<PortReport> = (0..48)
        .map(|i| PortReport {
            idx: i + 1,
            name: format!("ge-0/0/{i}"),
            description: format!("ge-0/0/{i}"),
            alias: if i < 24 {
                format!("srv-{:02} eth0 (rack {} U{})", i + 1, if i < 12 { "A1" } else { "A2" }, i % 12 * 2 + 1)
            } else {
                format!("srv-{:02} BMC", i - 23)
            },
            admin_status: "up".into(),
            oper_status: "up".into(),
            speed: Some(1000),
        })
        .collect();
    let sw = store
        .create_device(
            DeviceKind::Switch,
            &NewDevice {
                name: "demo-sw1".into(),
                location_id: loc,
                ip: "sw1.demo.invalid".into(),
                protocol: dcim_core::DeviceProtocol::Fake,
                model: String::new(),
                secret: "{}".into(),
            },
            &switch_ports,
        )
        .await?;
    let outlets: Vec<PortReport> = (1..=24)
        .map(|i| PortReport {
            idx: i,
            name: i.to_string(),
            description: String::new(),
            alias: String::new(),
            admin_status: "up".into(),
            oper_status: "up".into(),
            speed: None,
        })
        .collect();
    let pdu = store
        .create_device(
            DeviceKind::Pdu,
            &NewDevice {
                name: "demo-pdu1".into(),
                location_id: loc,
                ip: "pdu1.demo.invalid".into(),
                protocol: dcim_core::DeviceProtocol::Fake,
                model: "apc_rpdu".into(),
                secret: "{}".into(),
            },
            &outlets,
        )
        .await?;
    let sw_ports = store.list_ports(DeviceKind::Switch, sw, &Default::default()).await?.items;
    let pdu_ports = store.list_ports(DeviceKind::Pdu, pdu, &Default::default()).await?.items;

    for (name, kind, tags) in [
        ("Debian 12", TemplateType::Os, json!(["linux", "debian"])),
        ("Ubuntu 24.04", TemplateType::Os, json!(["linux", "ubuntu"])),
        ("AlmaLinux 9", TemplateType::Os, json!(["linux", "rhel"])),
        ("Diag6", TemplateType::Diag, json!(["diagnostics"])),
        ("SystemRescue", TemplateType::Rescue, json!(["rescue"])),
    ] {
        store.create_os_template(name, kind, &tags.to_string(), true, None, None).await?;
    }

    // Documentation ranges only: no traffic is ever sent to them.
    for (cidr, gw, start, end, pool) in [
        ("192.0.2.0/24", "192.0.2.1", "192.0.2.10", "192.0.2.250", "public-ipv4"),
        ("2001:db8::/64", "2001:db8::1", "2001:db8::100", "2001:db8::ffff", "public-ipv6"),
    ] {
        let net: ipnet::IpNet = cidr.parse()?;
        let net_id = store
            .create_ipnet(&dcim_store::ipam::NewIpnet {
                name: net.to_string(),
                family: dcim_core::ip::family(&net.addr()),
                prefix: i64::from(net.prefix_len()),
                first_key: dcim_core::ip::key(&net.network()),
                last_key: dcim_core::ip::key(&net.broadcast()),
                gateway: gw.into(),
                vlan: "100".into(),
                note: "demo (documentation range)".into(),
                userspace: 1,
                need_reserve: true,
            })
            .await?;
        let (s, e): (std::net::IpAddr, std::net::IpAddr) = (start.parse()?, end.parse()?);
        let range = (net_id, dcim_core::ip::key(&s), dcim_core::ip::key(&e));
        store.create_pool(pool, "demo", true, 1, &[range]).await?;
    }
    let customers = [
        add_user(store, "customer1@example.com", &random_password(), Role::User).await?,
        add_user(store, "customer2@example.com", &random_password(), Role::User).await?,
    ];

    let mut n = 0usize;
    for (model, count) in MODELS {
        for k in 0..*count {
            n += 1;
            let mac = format!("52:54:00:00:00:{n:02x}");
            let id = store
                .create_server(&NewServer {
                    name: format!("srv-{n:02}"),
                    location_id: loc,
                    rack_id: Some(racks[(n - 1) / 12]),
                    unit: Some(((n - 1) % 12 * 2 + 1) as i64),
                    mac: Some(mac.clone()),
                    domain: format!("srv-{n:02}.demo.invalid"),
                    details: ServerDetails {
                        barcode: format!("DC{:06}", 100_000 + n),
                        serial_number: format!("DEMO-SN-{n:04}"),
                        model: model.board.into(),
                        platform_name: "Colocation 1U".into(),
                        ..ServerDetails::default()
                    },
                    bmc: Some(BmcAccess {
                        address: format!("bmc-{n:02}.demo.invalid"),
                        kind: dcim_core::BmcType::Fake,
                        user: "admin".into(),
                        password: random_password(),
                        web_url: None,
                        tls_fingerprint: None,
                    }),
                })
                .await?;
            let hw = hardware(model, n, &mac);
            let hw_json = serde_json::to_string(&hw)?;
            store.set_hardware_info(id, &hw_json, generate(&hw).as_deref()).await?;
            // The last server of each model is new (not yet diagnosed).
            if k + 1 < *count {
                store.update_server(id, &ServerPatch { is_new: Some(false), ..ServerPatch::default() }).await?;
            }
            store.connect_switch_port(id, sw_ports[n - 1].id, false).await?;
            store.connect_switch_port(id, sw_ports[24 + n - 1].id, true).await?;
            store.connect_pdu_port(id, pdu_ports[n - 1].id).await?;
            // The first two servers of each model are rented out.
            if let Some(customer) = customers.get(k) {
                store.assign_owner(id, *customer).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_images_are_bootable_disks() {
        let d = super::demo_image("Debian 12");
        assert_eq!(d.len(), 2 << 20);
        assert_eq!(&d[510..512], &[0x55, 0xAA]);
        assert_eq!(d[446 + 4], 0x83);
        let text = String::from_utf8_lossy(&d[25..440]);
        assert!(text.starts_with("dcim demo image \"Debian 12\""), "{text}");
        assert_eq!(super::demo_image("Debian 12"), d, "the same bytes every time (a stable SHA-256)");
    }
}
