//! Installer answer files: kickstart, preseed and Ubuntu autoinstall, rendered from an
//! OS install's answers.
//!
//! An installer-based OS template boots a distribution's own installer (its netboot
//! kernel and initrd) instead of dcim's agent; the installer reads the answer file this
//! module renders. A template may carry its own answer-file text; without one, a short
//! built-in default for its kind is used.
//!
//! Placeholders are `{{name}}` (no spaces inside the braces); an unknown one is left as
//! it is. The names:
//!
//! | placeholder | value |
//! |---|---|
//! | `{{hostname}}` | the server's host name |
//! | `{{password_hash}}` | root's SHA-512 crypt hash |
//! | `{{ssh_keys}}` | the OpenSSH public keys, one per line |
//! | `{{raid}}` | `no_raid`, `raid_0`, `raid_1`, `raid_5` or `raid_10` |
//! | `{{raid_level}}` | the level alone: `0`, `1`, `5`, `10`, empty without RAID |
//! | `{{disks}}` | the disks' names, separated by spaces |
//! | `{{callback}}`, `{{task}}`, `{{secret}}` | where and how to post the `installed` report |
//!
//! The defaults cover: the host name, root's password hash, root's SSH keys (autoinstall:
//! through its `user-data`, since Subiquity's `identity` cannot be root), and the
//! disks (one disk plainly; several as software RAID of the requested level holding a
//! single ext4 root, with a small `/boot` on RAID 1 where the installer needs one), and,
//! as the installer's last action, the `installed` report to dcim with curl:
//! kickstart in `%post`, preseed in `late_command`, autoinstall in `late-commands`.
//! They do not set up networking beyond DHCP, mirrors, proxies, locales or packages.
//!
//! Pure text: no I/O, nothing here fetches or checks the installer's files.

use std::fmt::Write as _;

/// The kind of installer an OS template boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallerKind {
    /// Red Hat family (Anaconda): `inst.ks=URL`.
    Kickstart,
    /// Debian installer: `auto=true priority=critical url=URL`.
    Preseed,
    /// Ubuntu Subiquity: `autoinstall ds=nocloud-net;s=URL/`, serving `user-data` and `meta-data`.
    Autoinstall,
}

impl InstallerKind {
    pub const ALL: [InstallerKind; 3] = [InstallerKind::Kickstart, InstallerKind::Preseed, InstallerKind::Autoinstall];

    pub fn as_str(self) -> &'static str {
        match self {
            InstallerKind::Kickstart => "kickstart",
            InstallerKind::Preseed => "preseed",
            InstallerKind::Autoinstall => "autoinstall",
        }
    }
}

impl std::str::FromStr for InstallerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InstallerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not one of kickstart, preseed, autoinstall"))
    }
}

/// What an answer file is rendered from.
#[derive(Debug, Clone, Default)]
pub struct InstallVars {
    pub hostname: String,
    pub password_hash: String,
    pub ssh_keys: Vec<String>,
    pub raid: String,
    pub disks: Vec<String>,
    pub callback: String,
    pub task: i64,
    pub secret: String,
}

impl InstallVars {
    /// `0`, `1`, `5`, `10`; empty for `no_raid` or with fewer than two disks.
    pub fn raid_level(&self) -> &str {
        if self.disks.len() < 2 {
            return "";
        }
        self.raid.strip_prefix("raid_").unwrap_or("")
    }

    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "hostname" => self.hostname.clone(),
            "password_hash" => self.password_hash.clone(),
            "ssh_keys" => self.ssh_keys.join("\n"),
            "raid" => self.raid.clone(),
            "raid_level" => self.raid_level().to_owned(),
            "disks" => self.disks.join(" "),
            "callback" => self.callback.clone(),
            "task" => self.task.to_string(),
            "secret" => self.secret.clone(),
            _ => return None,
        })
    }
}

/// The answer file: `template` (or the kind's default) with its placeholders filled in.
pub fn render(kind: InstallerKind, template: Option<&str>, vars: &InstallVars) -> String {
    match template {
        Some(t) => substitute(t, vars),
        None => substitute(&default_template(kind, vars), vars),
    }
}

/// Replaces each known `{{name}}` once, left to right; values are not scanned again.
pub fn substitute(text: &str, vars: &InstallVars) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| vars.value(&after[..end]).map(|v| (end, v))) {
            Some((end, v)) => {
                out.push_str(&v);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The report an installer posts when it is done; the same line in every default.
pub const REPORT_CURL: &str = "curl -fsS -X POST -H 'Authorization: Bearer {{secret}}' \
     -H 'Content-Type: application/json' -d '{\"kind\":\"installed\",\"data\":{\"installer\":\"KIND\"}}' \
     {{callback}}/{{task}}/report";

fn report_curl(kind: InstallerKind) -> String {
    REPORT_CURL.replace("KIND", kind.as_str())
}

/// The built-in answer file of `kind`, still with its placeholders; the disk layout
/// depends on the answers, so it is built for them.
pub fn default_template(kind: InstallerKind, vars: &InstallVars) -> String {
    match kind {
        InstallerKind::Kickstart => kickstart(vars),
        InstallerKind::Preseed => preseed(vars),
        InstallerKind::Autoinstall => autoinstall(vars),
    }
}

fn kickstart(v: &InstallVars) -> String {
    let mut s = String::from(
        "# dcim default kickstart\ntext\nlang en_US.UTF-8\nkeyboard us\ntimezone UTC --utc\n\
         network --bootproto=dhcp --hostname={{hostname}}\nrootpw --iscrypted {{password_hash}}\n",
    );
    for k in &v.ssh_keys {
        let _ = writeln!(s, "sshkey --username=root \"{k}\"");
    }
    let disks = v.disks.join(",");
    let _ = writeln!(s, "zerombr\nclearpart --all --initlabel --drives={disks}\nignoredisk --only-use={disks}");
    match v.raid_level() {
        "" => {
            let d = v.disks.first().map(String::as_str).unwrap_or("sda");
            let _ = writeln!(s, "reqpart --add-boot\npart / --fstype=ext4 --grow --ondisk={d}");
        }
        level => {
            let _ = writeln!(s, "reqpart");
            let (mut boot, mut root) = (vec![], vec![]);
            for (i, d) in v.disks.iter().enumerate() {
                let _ = writeln!(s, "part raid.b{i} --size=1024 --ondisk={d}");
                let _ = writeln!(s, "part raid.r{i} --size=1 --grow --ondisk={d}");
                boot.push(format!("raid.b{i}"));
                root.push(format!("raid.r{i}"));
            }
            let _ = writeln!(s, "raid /boot --level=1 --device=md0 --fstype=ext4 {}", boot.join(" "));
            let _ = writeln!(s, "raid / --level={level} --device=md1 --fstype=ext4 {}", root.join(" "));
        }
    }
    s.push_str("bootloader\nreboot\n%packages\n@core\ncurl\n%end\n");
    let _ = write!(s, "%post --nochroot\n{}\n%end\n", report_curl(InstallerKind::Kickstart));
    s
}

fn preseed(v: &InstallVars) -> String {
    let mut s = String::from(
        "# dcim default preseed\n\
         d-i debian-installer/locale string en_US.UTF-8\n\
         d-i keyboard-configuration/xkb-keymap select us\n\
         d-i netcfg/choose_interface select auto\n\
         d-i netcfg/get_hostname string {{hostname}}\n\
         d-i netcfg/hostname string {{hostname}}\n\
         d-i time/zone string UTC\n\
         d-i passwd/root-login boolean true\n\
         d-i passwd/make-user boolean false\n\
         d-i passwd/root-password-crypted password {{password_hash}}\n",
    );
    let devs: Vec<String> = v.disks.iter().map(|d| format!("/dev/{d}")).collect();
    let _ = writeln!(s, "d-i partman-auto/disk string {}", devs.join(" "));
    match v.raid_level() {
        "" => s.push_str("d-i partman-auto/method string regular\nd-i partman-auto/choose_recipe select atomic\n"),
        level => {
            // the first partition: sda1, but nvme0n1p1
            let parts: Vec<String> = devs
                .iter()
                .map(|d| if d.ends_with(|c: char| c.is_ascii_digit()) { format!("{d}p1") } else { format!("{d}1") })
                .collect();
            let _ = writeln!(
                s,
                "d-i partman-auto/method string raid\n\
                 d-i partman-auto/expert_recipe string multiraid :: 1000 5000 -1 raid $primary{{ }} \
                 method{{ raid }} .\n\
                 d-i partman-auto-raid/recipe string {level} {n} 0 ext4 / {parts} .\n\
                 d-i partman-md/confirm boolean true\nd-i partman-md/device_remove_md boolean true",
                n = parts.len(),
                parts = parts.join("#"),
            );
        }
    }
    let _ = writeln!(
        s,
        "d-i partman-lvm/device_remove_lvm boolean true\n\
         d-i partman-partitioning/confirm_write_new_label boolean true\n\
         d-i partman/choose_partition select finish\nd-i partman/confirm boolean true\n\
         d-i partman/confirm_nooverwrite boolean true\n\
         tasksel tasksel/first multiselect standard, ssh-server\nd-i pkgsel/include string curl\n\
         d-i grub-installer/bootdev string {}\n\
         d-i finish-install/reboot_in_progress note",
        if devs.is_empty() { "default".to_owned() } else { devs.join(" ") },
    );
    let mut late = String::from("mkdir -p /target/root/.ssh");
    for k in &v.ssh_keys {
        let _ = write!(late, "; echo '{k}' >> /target/root/.ssh/authorized_keys");
    }
    let _ = write!(late, "; {}", report_curl(InstallerKind::Preseed));
    let _ = writeln!(s, "d-i preseed/late_command string {late}");
    s
}

fn autoinstall(v: &InstallVars) -> String {
    let mut s = String::from(
        "#cloud-config\n# dcim default autoinstall\nautoinstall:\n  version: 1\n  ssh:\n    \
         install-server: true\n    allow-pw: false\n  user-data:\n    hostname: {{hostname}}\n    \
         disable_root: false\n    chpasswd:\n      expire: false\n      users:\n        \
         - {name: root, password: '{{password_hash}}', type: hash}\n    ssh_authorized_keys:\n",
    );
    for k in &v.ssh_keys {
        let _ = writeln!(s, "      - '{k}'");
    }
    s.push_str("  storage:\n    config:\n");
    let level = v.raid_level();
    for (i, d) in v.disks.iter().enumerate() {
        let _ = writeln!(
            s,
            "      - {{type: disk, id: disk{i}, path: /dev/{d}, ptable: gpt, wipe: superblock, grub_device: true}}\n      \
             - {{type: partition, id: bios{i}, device: disk{i}, size: 1M, flag: bios_grub}}\n      \
             - {{type: partition, id: part{i}, device: disk{i}, size: -1}}"
        );
        if level.is_empty() {
            break;
        }
    }
    let root = if level.is_empty() {
        "part0".to_owned()
    } else {
        let parts: Vec<String> = (0..v.disks.len()).map(|i| format!("part{i}")).collect();
        let _ = writeln!(
            s,
            "      - {{type: raid, id: md0, name: md0, raidlevel: {level}, devices: [{}]}}",
            parts.join(", ")
        );
        "md0".to_owned()
    };
    let _ = writeln!(
        s,
        "      - {{type: format, id: root-fs, volume: {root}, fstype: ext4}}\n      \
         - {{type: mount, id: root-mount, device: root-fs, path: /}}\n  late-commands:\n    - \"{}\"",
        report_curl(InstallerKind::Autoinstall).replace('"', "\\\""),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(raid: &str, disks: &[&str]) -> InstallVars {
        InstallVars {
            hostname: "n1.example.net".into(),
            password_hash: "$6$salt$hash".into(),
            ssh_keys: vec!["ssh-ed25519 AAAAkey1 a@b".into(), "ssh-ed25519 AAAAkey2 c@d".into()],
            raid: raid.into(),
            disks: disks.iter().map(|d| (*d).to_owned()).collect(),
            callback: "http://10.0.0.1:8080/agent/v1/task".into(),
            task: 42,
            secret: "s3cret".into(),
        }
    }

    const CURL_TAIL: &str = "http://10.0.0.1:8080/agent/v1/task/42/report";

    #[test]
    fn kinds_parse_and_print() {
        for k in InstallerKind::ALL {
            assert_eq!(k.as_str().parse::<InstallerKind>(), Ok(k));
        }
        assert!("anaconda".parse::<InstallerKind>().is_err());
    }

    #[test]
    fn default_kickstart_has_host_hash_keys_and_raid() {
        let ks = render(InstallerKind::Kickstart, None, &vars("raid_1", &["sda", "sdb"]));
        assert!(ks.contains("--hostname=n1.example.net"), "{ks}");
        assert!(ks.contains("rootpw --iscrypted $6$salt$hash"), "{ks}");
        assert!(ks.contains("sshkey --username=root \"ssh-ed25519 AAAAkey2 c@d\""), "{ks}");
        assert!(ks.contains("part raid.r1 --size=1 --grow --ondisk=sdb"), "{ks}");
        assert!(ks.contains("raid / --level=1 --device=md1 --fstype=ext4 raid.r0 raid.r1"), "{ks}");
        assert!(ks.contains("Authorization: Bearer s3cret"), "{ks}");
        assert!(ks.contains(CURL_TAIL), "{ks}");
        assert!(!ks.contains("{{"), "{ks}");
        let plain = render(InstallerKind::Kickstart, None, &vars("no_raid", &["sda"]));
        assert!(plain.contains("part / --fstype=ext4 --grow --ondisk=sda"), "{plain}");
        assert!(!plain.contains("raid /"), "{plain}");
    }

    #[test]
    fn default_preseed_has_host_hash_keys_and_raid() {
        let p = render(InstallerKind::Preseed, None, &vars("raid_10", &["sda", "sdb", "sdc", "sdd"]));
        assert!(p.contains("d-i netcfg/get_hostname string n1.example.net"), "{p}");
        assert!(p.contains("d-i passwd/root-password-crypted password $6$salt$hash"), "{p}");
        assert!(p.contains("echo 'ssh-ed25519 AAAAkey1 a@b' >> /target/root/.ssh/authorized_keys"), "{p}");
        assert!(p.contains("partman-auto-raid/recipe string 10 4 0 ext4 / /dev/sda1#/dev/sdb1#/dev/sdc1#/dev/sdd1 ."));
        assert!(p.contains("method{ raid }"), "{p}");
        assert!(p.contains(CURL_TAIL), "{p}");
        let nvme = render(InstallerKind::Preseed, None, &vars("raid_1", &["nvme0n1", "nvme1n1"]));
        assert!(nvme.contains("ext4 / /dev/nvme0n1p1#/dev/nvme1n1p1 ."), "{nvme}");
        let late = p.lines().find(|l| l.starts_with("d-i preseed/late_command")).unwrap();
        assert!(late.contains("curl -fsS"), "{late}");
    }

    #[test]
    fn default_autoinstall_has_host_hash_keys_and_raid() {
        let a = render(InstallerKind::Autoinstall, None, &vars("raid_5", &["sda", "sdb", "sdc"]));
        assert!(a.starts_with("#cloud-config\n"), "{a}");
        assert!(a.contains("hostname: n1.example.net"), "{a}");
        assert!(a.contains("{name: root, password: '$6$salt$hash', type: hash}"), "{a}");
        assert!(a.contains("      - 'ssh-ed25519 AAAAkey1 a@b'"), "{a}");
        assert!(a.contains("{type: raid, id: md0, name: md0, raidlevel: 5, devices: [part0, part1, part2]}"), "{a}");
        assert!(a.contains("path: /dev/sdc"), "{a}");
        assert!(a.contains("late-commands:"), "{a}");
        assert!(a.contains(CURL_TAIL), "{a}");
        let plain = render(InstallerKind::Autoinstall, None, &vars("no_raid", &["nvme0n1"]));
        assert!(plain.contains("volume: part0"), "{plain}");
        assert!(!plain.contains("type: raid"), "{plain}");
    }

    #[test]
    fn custom_template_substitutes_placeholders() {
        let t = "host={{hostname}} hash={{password_hash}} raid={{raid}}/{{raid_level}} disks={{disks}}\n\
                 {{ssh_keys}}\n{{unknown}} {{ task }} {{task}} {{callback}} {{secret}} {{";
        let out = render(InstallerKind::Kickstart, Some(t), &vars("raid_1", &["sda", "sdb"]));
        assert_eq!(
            out,
            "host=n1.example.net hash=$6$salt$hash raid=raid_1/1 disks=sda sdb\n\
             ssh-ed25519 AAAAkey1 a@b\nssh-ed25519 AAAAkey2 c@d\n{{unknown}} {{ task }} 42 \
             http://10.0.0.1:8080/agent/v1/task s3cret {{"
        );
        // a value containing a placeholder is not expanded again
        let mut v = vars("no_raid", &["sda"]);
        v.hostname = "{{secret}}".into();
        assert_eq!(substitute("{{hostname}}", &v), "{{secret}}");
    }
}
