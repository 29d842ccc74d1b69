#!/bin/bash
# build-bootimage.sh OUTDIR : the in-band agent's network boot image, OUTDIR/vmlinuz + OUTDIR/initrd.gz.
#
# Why: the agent (crates/dcim-agent) must run on any server the netboot service boots, before there is an OS, so
# the image is made only of Debian's own packages (the kernel of linux-image-amd64, busybox-static, dmidecode,
# smartmontools, util-linux's wipefs, mdadm, nvme-cli, ipmitool for the in-band BMC) and the agent built static; nothing is compiled but the agent.
# The dynamic tools keep their libraries (and glibc's loader) in /opt/lib and run through it, so the static
# busybox and the static agent never meet a shared glibc.  The image's /init mounts /proc /sys /dev, loads the
# drivers for the hardware it finds (by modalias, like udev's coldplug), brings the NICs up with udhcpc, runs
# /bin/dcim-agent and powers off whatever happened.
#
# Reproducible: fixed mtimes (SOURCE_DATE_EPOCH, default 2000-01-01), sorted cpio with uid/gid 0, gzip -n; the
# same .debs and the same agent binary give the same bytes.  The .debs are cached (apt-get download) in
# $DCIM_BOOTIMAGE_CACHE (default target/bootimage-cache); with them cached the build takes seconds.
#
# Environment: DCIM_AGENT_BIN=path (use this agent binary instead of building it), DCIM_BOOTIMAGE_CACHE=dir,
# SOURCE_DATE_EPOCH=seconds, CARGO_BUILD_JOBS as usual.  Needs: apt-get (with lists: apt-get update once),
# dpkg-deb, cpio, gzip, readelf, cargo.
set -euo pipefail
T0=$(date +%s.%N)
OUT=$(readlink -m "${1:?usage: build-bootimage.sh OUTDIR}")
REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
CACHE=$(readlink -m "${DCIM_BOOTIMAGE_CACHE:-$REPO/target/bootimage-cache}")
EPOCH=${SOURCE_DATE_EPOCH:-946684800}
TARGET=x86_64-unknown-linux-gnu
step() { awk -v t0="$T0" -v t="$(date +%s.%N)" -v s="$1" 'BEGIN { printf "build-bootimage: %-36s %6.2f s\n", s, t - t0 }'; }
die() { echo "build-bootimage: $*" >&2; exit 1; }
mkdir -p "$CACHE" "$OUT"

# --- 1. the packages: kernel (whatever linux-image-amd64 points to), busybox, tools and their libraries
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}') || true
if [ -z "$KPKG" ]; then   # no apt lists: the newest kernel already in the cache
  KPKG=$(cd "$CACHE" && ls linux-image-*-amd64_*.deb 2>/dev/null | grep -v unsigned | sort -V | tail -1 | cut -d_ -f1)
fi
[ -n "$KPKG" ] || die "cannot tell the kernel package: run apt-get update (or put a linux-image deb in $CACHE)"
KV=${KPKG#linux-image-}
TOOLPKGS="busybox-static dmidecode smartmontools util-linux mdadm nvme-cli ipmitool"
LIBPKGS="libc6 libselinux1 libpcre2-8-0 libstdc++6 libgcc-s1 libblkid1 libsmartcols1 libudev1 libcap2 libnvme1
 libjson-c5 zlib1g libssl3 libdbus-1-3 libsystemd0 liblzma5 libzstd1 liblz4-1 libgcrypt20 libgpg-error0
 libfreeipmi17 libreadline8 libtinfo6"
MISSING=
for p in $KPKG $TOOLPKGS $LIBPKGS; do ls "$CACHE/${p}_"*.deb >/dev/null 2>&1 || MISSING="$MISSING $p"; done
if [ -n "$MISSING" ]; then
  (cd "$CACHE" && apt-get download -q $MISSING 2>&1 | grep -v '^W: Download is performed unsandboxed') \
    || die "apt-get download$MISSING failed"
fi
deb() { ls "$CACHE/${1}_"*.deb | sort -V | tail -1; }   # one version per package, the newest cached
step "packages ($KPKG)"

# --- 2. the agent, static (glibc's crt-static: the only Rust target this toolchain has)
if [ -n "${DCIM_AGENT_BIN:-}" ]; then
  AGENT=$(readlink -f "$DCIM_AGENT_BIN")
else
  (cd "$REPO" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build -q -p dcim-agent --release --target "$TARGET") || die "building dcim-agent failed"
  AGENT=$REPO/target/$TARGET/release/dcim-agent
fi
[ -x "$AGENT" ] || die "no agent binary at $AGENT"
[ "$(readelf -d "$AGENT" | grep -c NEEDED)" = 0 ] || die "$AGENT is not static (it needs shared libraries)"
step "agent"

# --- 3. the tree
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
R=$W/root; K=$W/kernel; X=$W/pkgs
mkdir -p "$R"/{bin,proc,sys,dev,tmp,run,etc,opt/bin,opt/lib,lib/modules} "$K" "$X"
ln -s bin "$R/sbin"   # the kernel asks /sbin/modprobe for modules it needs on demand
dpkg-deb --fsys-tarfile "$(deb busybox-static)" | tar -x -O ./bin/busybox > "$R/bin/busybox"
chmod 755 "$R/bin/busybox"

# Drivers: NICs and storage controllers found in servers, virtio for VMs, IPMI for the in-band BMC, the md RAID
# personalities an OS install builds, vfat (with its code pages) for the image's cloud-init seed partition.  Their
# dependencies come from a modules.dep that busybox's depmod writes for the unpacked kernel tree.  Unpacking
# the kernel package is most of the build's time, so the kernel and the chosen modules are kept in the cache
# (a tar keyed by the kernel package and this list) and the package is unpacked again only when either changes.
WANT="virtio_pci virtio_net virtio_blk virtio_scsi e1000 e1000e igb igc ixgbe i40e ice bnxt_en tg3 r8169 mlx4_en
 mlx5_core ahci ata_piix sd_mod nvme megaraid_sas mpt3sas smartpqi hpsa ipmi_si ipmi_devintf md_mod raid0 raid1 raid10
 raid456 vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859_1"
KTAR=$CACHE/kernel-$KV-$(printf '%s\n' "$(basename "$(deb "$KPKG")")" $WANT | sha256sum | cut -c1-16).tar
if [ ! -f "$KTAR" ]; then
  # kernel/{block,arch} hold dependencies of storage modules (t10-pi for sd_mod), kernel/fs vfat and the
  # code pages: without them depmod would miss those dependencies silently
  dpkg-deb --fsys-tarfile "$(deb "$KPKG")" | tar -x -C "$K" "./boot/vmlinuz-$KV" \
    "./lib/modules/$KV/kernel/drivers" "./lib/modules/$KV/kernel/net" "./lib/modules/$KV/kernel/lib" \
    "./lib/modules/$KV/kernel/crypto" "./lib/modules/$KV/kernel/block" "./lib/modules/$KV/kernel/arch" \
    "./lib/modules/$KV/kernel/fs" \
    || die "unpacking $KPKG failed"
  step "kernel unpacked"
  "$R/bin/busybox" depmod -b "$K" "$KV"
  MODS=$(awk -v want=" $(echo $WANT) " '
    { m = $1; sub(":$", "", m); n = m; sub(".*/", "", n); sub("\\.ko$", "", n); gsub("-", "_", n)
      if (index(want, " " n " ")) { print m; for (i = 2; i <= NF; i++) print $i } }' \
    "$K/lib/modules/$KV/modules.dep" | sort -u)
  for w in $WANT; do echo "$MODS" | tr - _ | grep -q "/$w\.ko$" || die "module $w is not in $KPKG"; done
  mkdir -p "$W/k/boot"; cp "$K/boot/vmlinuz-$KV" "$W/k/boot/"
  for m in $MODS; do mkdir -p "$W/k/lib/modules/$KV/$(dirname "$m")"; cp "$K/lib/modules/$KV/$m" "$W/k/lib/modules/$KV/$m"; done
  (cd "$W/k" && find . -print0 | LC_ALL=C sort -z | tar -c --null --no-recursion -f "$KTAR.new" -T -) && mv "$KTAR.new" "$KTAR"
  rm -rf "$K" "$W/k"; mkdir -p "$K"
fi
tar -x -C "$K" -f "$KTAR"; mv "$K/lib/modules/$KV" "$R/lib/modules/$KV"
"$R/bin/busybox" depmod -b "$R" "$KV"
for f in "$R/lib/modules/$KV"/modules.*; do LC_ALL=C sort -o "$f" "$f"; done   # readdir order is not stable
step "modules ($(find "$R/lib/modules" -name '*.ko' | wc -l))"

# Tools that are not static: the binary in /opt/bin, its libraries (closed over NEEDED) in /opt/lib, and a
# wrapper in /bin that runs it through the loader.
for p in $TOOLPKGS $LIBPKGS; do [ "$p" = busybox-static ] || dpkg-deb -x "$(deb "$p")" "$X"; done
for t in usr/sbin/dmidecode usr/sbin/smartctl sbin/wipefs sbin/mdadm usr/sbin/nvme usr/bin/ipmitool; do
  n=$(basename "$t"); cp "$X/$t" "$R/opt/bin/$n"
  printf '#!/bin/sh\nexec /opt/lib/ld.so --library-path /opt/lib /opt/bin/%s "$@"\n' "$n" > "$R/bin/$n"
done
cp -L "$X/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$R/opt/lib/ld.so"
todo=$(ls "$R"/opt/bin/*)
while [ -n "$todo" ]; do
  next=
  for f in $todo; do
    for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      [ -e "$R/opt/lib/$lib" ] && continue
      src=$(find "$X/lib" "$X/usr/lib" -name "$lib" 2>/dev/null | head -1)
      [ -n "$src" ] || die "$(basename "$f") needs $lib, which none of $LIBPKGS has"
      cp -L "$src" "$R/opt/lib/$lib"; next="$next $R/opt/lib/$lib"
    done
  done
  todo=$next
done
cp "$AGENT" "$R/bin/dcim-agent"
strip -o "$R/bin/dcim-agent" "$AGENT" 2>/dev/null || true
chmod 755 "$R"/bin/* "$R"/opt/bin/* "$R"/opt/lib/*
step "tools ($(ls "$R/opt/lib" | wc -l) libraries)"

# --- 4. /init
cat > "$R/init" <<'INIT'
#!/bin/busybox sh
# /init of the dcim agent image (written by scripts/build-bootimage.sh).  Drivers, network, then the agent,
# which reads its task from /proc/cmdline (dcim.callback= dcim.task= dcim.secret= dcim.mode= dcim.clear_hdd=),
# reports and powers off.  This script powers off too, whatever happened, so the machine never stays up.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mkdir -p /tmp /run /var/run
printf '127.0.0.1 localhost\n::1 localhost\n' > /etc/hosts
say() { echo "dcim-init[$(cut -d' ' -f1 /proc/uptime)]: $*"; }
# NICs down first: a virtio-net NAPI poll on a queue the shutdown broke can spin forever (Linux < the
# "virtio_ring: fix infinite loop in virtnet_poll_cleantx" fix)
off() { say "powering off"; for n in /sys/class/net/*; do ip link set dev "${n##*/}" down; done 2>/dev/null
        sync; poweroff -f; sleep 10; echo o > /proc/sysrq-trigger; }
say "kernel $(uname -r)"

# Drivers for the devices present, by modalias, until no new device and no new disk shows up for a while (PCI
# brings virtio and SCSI buses, those bring NICs and disks).  scan=sync: an HBA's probe returns with its disks.
# sd_mod has no modalias busybox's depmod records, so it is loaded up front (it is small).
modprobe -q scsi_mod scan=sync 2>/dev/null; modprobe -q sd_mod 2>/dev/null
echo - > /tmp/aliases; prev=; quiet=0; i=0   # "-": busybox grep -f with no patterns matches every line
# dcim.settle=N (kernel command line): the search ends when nothing new has shown up for N x 0.25 s; 4 (1 s) by
# default, as slow HBAs and NVMe namespaces need; virtual machines whose devices are all there at once do with
# fewer.  It looks every 0.1 s, by a shell glob (no process), and reads the modaliases only when devices changed.
settle=$(sed -n 's/.*dcim\.settle=\([0-9]*\).*/\1/p' /proc/cmdline); settle=${settle:-4}
need=$(( (settle * 5 + 1) / 2 ))
while [ $i -lt 100 ] && [ $quiet -lt "$need" ]; do
  [ $i = 0 ] || sleep 0.1
  set -- /sys/bus/*/devices/* /sys/block/* /sys/class/net/*
  if [ "$#" = "$prev" ]; then quiet=$((quiet+1)); else
    prev=$#; quiet=0
    { echo -; cat /sys/bus/*/devices/*/modalias 2>/dev/null; } | sort -u > /tmp/aliases.now
    new=$(grep -vxFf /tmp/aliases /tmp/aliases.now)   # one modprobe for all: a process costs ~50 ms under TCG
    [ -z "$new" ] || modprobe -qa $new 2>/dev/null
    mv /tmp/aliases.now /tmp/aliases
  fi
  i=$((i+1))
done
# The in-band BMC: ipmi_si probes the KCS/BT/SSIF interfaces firmware describes, which takes a second or more
# under emulation, so it runs beside the network and the inventory; the agent waits for /dev/ipmi0 only
# when it sets the BMC up (setup_ipmi).
(modprobe -q ipmi_si 2>/dev/null; modprobe -q ipmi_devintf 2>/dev/null) &
say "drivers: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
say "disks: $(ls /sys/block | tr '\n' ' ')"

# Network: the boot NIC first (BOOTIF=01-aa-bb-... from iPXE, if given), then the others with a link.
cat > /tmp/udhcpc.sh <<'S'
#!/bin/sh
case "$1" in bound|renew)
  ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface"
  for r in $router; do ip route add default via "$r" dev "$interface" && break; done
  # The DHCP server's DNS servers, for image and installer URLs that name hosts (the static agent's
  # glibc resolves through /etc/resolv.conf and /etc/hosts without NSS modules)
  { [ -n "$domain" ] && echo "search $domain"; for d in $dns; do echo "nameserver $d"; done; } > /etc/resolv.conf;;
esac
S
chmod 755 /tmp/udhcpc.sh; ip link set lo up
NICS=; for n in /sys/class/net/*; do n=${n##*/}; [ "$n" = lo ] || { ip link set "$n" up; NICS="$NICS $n"; }; done
BOOTMAC=$(sed -n 's/.*BOOTIF=01-\([0-9a-fA-F-]*\).*/\1/p' /proc/cmdline | tr - : | tr A-F a-f)
i=0; while [ $i -lt 50 ] && ! grep -qs 1 /sys/class/net/*/carrier; do sleep 0.1; i=$((i+1)); done
ORDER=; for n in $NICS; do [ "$(cat /sys/class/net/$n/address)" = "$BOOTMAC" ] && ORDER="$n"; done
for n in $NICS; do [ "$n" != "$ORDER" ] && [ "$(cat /sys/class/net/$n/carrier 2>/dev/null)" = 1 ] && ORDER="$ORDER $n"; done
IF=; for n in $ORDER; do
  udhcpc -i "$n" -f -q -n -t 5 -T 1 -s /tmp/udhcpc.sh >/tmp/udhcpc.$n 2>&1 && { IF=$n; break; }
done
if [ -n "$IF" ]; then say "network: $IF $(ip -4 -o addr show "$IF" | awk '{print $4}')"
else say "network: no DHCP lease on any of:$NICS (the agent will try anyway)"; fi

/bin/dcim-agent
say "dcim-agent exited with status $?"
off
INIT
chmod 755 "$R/init"

# --- 5. the archive: sorted, owned by root, fixed times, no gzip name or time
find "$R" -exec touch -h -d "@$EPOCH" {} +
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc -R 0:0 --reproducible --quiet) | gzip -6 -n \
  > "$OUT/initrd.gz.new"
cp "$K/boot/vmlinuz-$KV" "$OUT/vmlinuz.new"
touch -d "@$EPOCH" "$OUT/initrd.gz.new" "$OUT/vmlinuz.new"
mv "$OUT/initrd.gz.new" "$OUT/initrd.gz"; mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"
{
  echo "kernel $KPKG"
  for p in $TOOLPKGS $LIBPKGS; do basename "$(deb "$p")"; done
  (cd "$OUT" && sha256sum vmlinuz initrd.gz)
} > "$OUT/manifest.txt"
step "done: initrd.gz $(stat -c %s "$OUT/initrd.gz") bytes"
