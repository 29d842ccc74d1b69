//! qcow2 images written onto a disk as they stream in over HTTP, in one pass and
//! without a copy: the file arrives in order and is cut into clusters; the header
//! gives the L1 table, the L1 table the L2 tables, the L2 tables where each data
//! cluster belongs on the disk, and each data cluster is written there as it passes.
//! Whatever the image leaves unallocated (or marks as zero) is zeroed on the disk at the
//! end, so the disk reads as the image does.
//!
//! `qemu-img convert -O qcow2` writes the L1 table first and every L2 table before the
//! data it maps, so nothing waits; a cluster whose meaning is not known yet when it
//! passes (an image grown out of order) is held in memory, up to [`PENDING_LIMIT`].
//! Images this cannot write say so: compressed clusters, encryption, backing files,
//! external data files, extended L2 entries.
//!
//! Written here because no crate converts a qcow2 stream: the qcow2 readers there are
//! read a seekable file, which an HTTP body is not, and qemu-img reads HTTP only
//! through a module the boot image does not carry. Format: QEMU's `docs/interop/qcow2.txt`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use anyhow::{Context, bail, ensure};

/// The first bytes of a qcow2 file.
pub const MAGIC: &[u8; 4] = b"QFI\xfb";

/// Bytes of clusters held while their meaning is not known yet.
pub const PENDING_LIMIT: usize = 64 << 20;

const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
const ZERO_FLAG: u64 = 1;

/// The header fields the conversion needs.
#[derive(Debug, Clone)]
struct Header {
    cluster_bits: u32,
    size: u64,
    l1_size: u64,
    l1_offset: u64,
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn parse_header(b: &[u8]) -> anyhow::Result<Header> {
    ensure!(b.len() >= 72 && &b[..4] == MAGIC, "not a qcow2 image");
    let version = be32(b, 4);
    ensure!(version == 2 || version == 3, "qcow2 version {version} is not 2 or 3");
    ensure!(be64(b, 8) == 0, "the qcow2 image has a backing file; flatten it (qemu-img convert) first");
    let cluster_bits = be32(b, 20);
    ensure!((9..=21).contains(&cluster_bits), "qcow2 cluster_bits {cluster_bits} is out of range");
    ensure!(be32(b, 32) == 0, "the qcow2 image is encrypted");
    if version == 3 {
        ensure!(b.len() >= 104, "the qcow2 v3 header is cut short");
        let incompatible = be64(b, 72);
        ensure!(incompatible & 0b10 == 0, "the qcow2 image is marked corrupt");
        ensure!(incompatible & 0b100 == 0, "the qcow2 image keeps its data in an external file");
        ensure!(incompatible & 0b1_0000 == 0, "the qcow2 image has extended L2 entries (subclusters)");
        ensure!(incompatible & !0b1_1111 == 0, "the qcow2 image has incompatible features {incompatible:#x}");
    }
    Ok(Header { cluster_bits, size: be64(b, 24), l1_size: u64::from(be32(b, 36)), l1_offset: be64(b, 40) })
}

/// Writes a qcow2 file fed in order through [`Write`] onto `dst` as the disk it
/// describes; [`Qcow2Sink::finish`] checks it was whole and zeroes the rest.
pub struct Qcow2Sink<'a> {
    dst: &'a File,
    /// File offset of the next byte fed.
    pos: u64,
    /// The cluster being filled.
    cluster: Vec<u8>,
    header: Option<Header>,
    l1: Vec<u8>,
    /// L2 table file offset → its index in L1, once L1 is known.
    l2_tables: HashMap<u64, u64>,
    l2_seen: usize,
    /// Data cluster file offset → disk offset.
    data: HashMap<u64, u64>,
    /// Disk offsets written, by cluster index.
    written: Vec<bool>,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
}

impl<'a> Qcow2Sink<'a> {
    pub fn new(dst: &'a File) -> Self {
        Qcow2Sink {
            dst,
            pos: 0,
            cluster: vec![],
            header: None,
            l1: vec![],
            l2_tables: HashMap::new(),
            l2_seen: 0,
            data: HashMap::new(),
            written: vec![],
            pending: BTreeMap::new(),
            pending_bytes: 0,
        }
    }

    fn cluster_size(&self) -> usize {
        self.header.as_ref().map_or(512, |h| 1 << h.cluster_bits)
    }

    fn l1_complete(&self) -> bool {
        self.header.as_ref().is_some_and(|h| self.l1.len() as u64 >= h.l1_size * 8)
    }

    /// One whole cluster at file offset `at`.
    fn cluster(&mut self, at: u64, bytes: Vec<u8>) -> anyhow::Result<()> {
        let Some(h) = self.header.clone() else { bail!("qcow2: no header") };
        let size = 1u64 << h.cluster_bits;
        let l1_end = h.l1_offset + h.l1_size * 8;
        if at == 0 {
            return Ok(());
        }
        if at >= h.l1_offset && at < l1_end {
            // L1 is contiguous and cluster-aligned; its clusters arrive in order.
            let want = (l1_end - at).min(size) as usize;
            self.l1.extend_from_slice(&bytes[..want]);
            if self.l1_complete() {
                for (i, e) in self.l1.chunks_exact(8).enumerate() {
                    let off = u64::from_be_bytes(e.try_into().expect("8 bytes")) & OFFSET_MASK;
                    if off != 0 {
                        self.l2_tables.insert(off, i as u64);
                    }
                }
                self.replay()?;
            }
            return Ok(());
        }
        if let Some(&index) = self.l2_tables.get(&at) {
            let entries = size / 8;
            for (i, e) in bytes.chunks_exact(8).enumerate() {
                let e = u64::from_be_bytes(e.try_into().expect("8 bytes"));
                let disk = (index * entries + i as u64) * size;
                if e & COMPRESSED != 0 {
                    bail!("the qcow2 image has compressed clusters; convert it without -c first");
                }
                let off = e & OFFSET_MASK;
                if off != 0 && e & ZERO_FLAG == 0 && disk < h.size {
                    self.data.insert(off, disk);
                }
            }
            self.l2_seen += 1;
            return self.replay();
        }
        if let Some(&disk) = self.data.get(&at) {
            let len = (h.size - disk).min(size) as usize;
            self.dst.write_all_at(&bytes[..len], disk).with_context(|| format!("writing the disk at byte {disk}"))?;
            let c = (disk / size) as usize;
            if self.written.len() <= c {
                self.written.resize(c + 1, false);
            }
            self.written[c] = true;
            self.data.remove(&at);
            return Ok(());
        }
        if !(self.l1_complete() && self.l2_seen == self.l2_tables.len()) {
            self.pending_bytes += bytes.len();
            ensure!(
                self.pending_bytes <= PENDING_LIMIT,
                "the qcow2 image puts its tables after more than {} MiB of data; rewrite it with \
                 `qemu-img convert -O qcow2` so it can be streamed",
                PENDING_LIMIT >> 20
            );
            self.pending.insert(at, bytes);
        }
        Ok(())
    }

    /// Clusters held earlier whose meaning is known now.
    fn replay(&mut self) -> anyhow::Result<()> {
        let known: Vec<u64> = self
            .pending
            .keys()
            .copied()
            .filter(|k| self.l2_tables.contains_key(k) || self.data.contains_key(k))
            .collect();
        for k in known {
            if let Some(b) = self.pending.remove(&k) {
                self.pending_bytes -= b.len();
                self.cluster(k, b)?;
            }
        }
        Ok(())
    }

    /// Checks that every table and data cluster arrived, zeroes what the image leaves
    /// unallocated, and returns the disk size the image describes.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        if !self.cluster.is_empty() {
            let at = self.pos - self.cluster.len() as u64;
            ensure!(!self.data.contains_key(&at), "the qcow2 image ended inside a data cluster");
            let mut last = std::mem::take(&mut self.cluster);
            last.resize(self.cluster_size(), 0);
            self.cluster(at, last)?;
        }
        let Some(h) = self.header.clone() else { bail!("the qcow2 image ended inside its header") };
        ensure!(self.l1_complete(), "the qcow2 image ended before its L1 table");
        ensure!(
            self.l2_seen == self.l2_tables.len(),
            "the qcow2 image ended before {} of its L2 tables",
            self.l2_tables.len() - self.l2_seen
        );
        ensure!(self.data.is_empty(), "the qcow2 image ended before {} of its data clusters", self.data.len());
        let size = 1u64 << h.cluster_bits;
        let clusters = h.size.div_ceil(size);
        let mut c = 0u64;
        while c < clusters {
            if self.written.get(c as usize).copied().unwrap_or(false) {
                c += 1;
                continue;
            }
            let start = c;
            while c < clusters && !self.written.get(c as usize).copied().unwrap_or(false) {
                c += 1;
            }
            let (from, to) = (start * size, (c * size).min(h.size));
            zero(self.dst, from, to - from)?;
        }
        Ok(h.size)
    }
}

/// Zeroes `len` bytes at `at`: the device zeroes them itself where it can
/// (FALLOC_FL_ZERO_RANGE: write-zeroes, unmap), else they are written.
fn zero(dst: &File, at: u64, len: u64) -> anyhow::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    let flags = FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    if let (Ok(a), Ok(l)) = (i64::try_from(at), i64::try_from(len))
        && fallocate(dst, flags, a, l).is_ok()
    {
        return Ok(());
    }
    let buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        dst.write_all_at(&buf[..n], at + done).with_context(|| format!("zeroing the disk at byte {}", at + done))?;
        done += n as u64;
    }
    Ok(())
}

impl Write for Qcow2Sink<'_> {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            if self.header.is_none() {
                // The header lies in the first cluster, whose size it gives: gather 104 bytes first.
                let take = (104 - self.cluster.len()).min(buf.len());
                self.cluster.extend_from_slice(&buf[..take]);
                self.pos += take as u64;
                buf = &buf[take..];
                if self.cluster.len() == 104 {
                    let h = parse_header(&self.cluster).map_err(std::io::Error::other)?;
                    self.header = Some(h);
                }
                continue;
            }
            let size = self.cluster_size();
            let take = (size - self.cluster.len()).min(buf.len());
            self.cluster.extend_from_slice(&buf[..take]);
            self.pos += take as u64;
            buf = &buf[take..];
            if self.cluster.len() == size {
                let at = self.pos - size as u64;
                let c = std::mem::take(&mut self.cluster);
                self.cluster(at, c).map_err(std::io::Error::other)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A raw disk with data here and there, converted by qemu-img (Debian's qemu-utils,
    /// which scripts/sims-setup.sh installs) to qcow2 with `extra` options.
    fn image(dir: &std::path::Path, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let mut raw = vec![0u8; 5 << 20];
        for (i, b) in raw[..300_000].iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        raw[(3 << 20) + 17..(3 << 20) + 4000].fill(0x5a);
        raw[(5 << 20) - 10..].fill(0x77);
        std::fs::write(dir.join("in.raw"), &raw).unwrap();
        let out = Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .args(extra)
            .arg(dir.join("in.raw"))
            .arg(dir.join("out.qcow2"))
            .output()
            .expect("qemu-img (apt qemu-utils) runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (raw, std::fs::read(dir.join("out.qcow2")).unwrap())
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("dcim-qcow2-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Feeds the file in uneven pieces onto a "disk" full of old bytes.
    fn convert(qcow: &[u8], dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
        std::fs::write(dir.join("disk"), vec![0xeeu8; 6 << 20]).unwrap();
        let disk = std::fs::OpenOptions::new().read(true).write(true).open(dir.join("disk")).unwrap();
        let mut sink = Qcow2Sink::new(&disk);
        for piece in qcow.chunks(7777) {
            sink.write_all(piece)?;
        }
        let size = sink.finish()?;
        assert_eq!(size, 5 << 20);
        Ok(std::fs::read(dir.join("disk")).unwrap())
    }

    #[test]
    fn qemu_img_output_converts_to_the_raw_disk() {
        for (name, extra) in
            [("v3", &["-o", "cluster_size=65536"][..]), ("v2-4k", &["-o", "compat=0.10,cluster_size=4096"][..])]
        {
            let dir = tmp(name);
            let (raw, qcow) = image(&dir, extra);
            assert_eq!(&qcow[..4], MAGIC);
            let disk = convert(&qcow, &dir).unwrap();
            assert!(disk[..raw.len()] == raw[..], "{name}: the disk reads as the image");
            assert!(disk[raw.len()..].iter().all(|b| *b == 0xee), "{name}: nothing past the image is touched");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn what_cannot_be_streamed_is_refused_with_a_reason() {
        let dir = tmp("bad");
        let (_, qcow) = image(&dir, &["-c"]);
        let e = convert(&qcow, &dir).unwrap_err();
        assert!(format!("{e:#}").contains("compressed clusters"), "{e:#}");
        let (_, qcow) = image(&dir, &[]);
        // cut inside a data cluster, and after one (a whole data cluster missing)
        let e = convert(&qcow[..qcow.len() - 70_000], &dir).unwrap_err();
        assert!(format!("{e:#}").contains("ended inside a data cluster"), "{e:#}");
        let e = convert(&qcow[..qcow.len() - 65_536], &dir).unwrap_err();
        assert!(format!("{e:#}").contains("ended before 1 of its data clusters"), "{e:#}");
        let mut bad = qcow.clone();
        bad[4..8].copy_from_slice(&7u32.to_be_bytes());
        assert!(format!("{:#}", convert(&bad, &dir).unwrap_err()).contains("version 7"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
