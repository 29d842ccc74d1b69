#!/bin/bash
# Installs the BMC and SNMP simulators the integration tests run against.
#
# Run as root on Debian 12 (CI does, on a fresh machine). Idempotent, and quick
# (well under 2 s) when everything is already there.
#
#   apt:  openipmi (ipmi_sim), ipmitool, snmp (client tools), python3-venv, python3-gdbm,
#         qemu-system-x86 qemu-utils ipxe ipxe-qemu ovmf socat (virtual machines), cpio (boot image),
#         dnsmasq-base (a site DHCP server beside which dcim serves proxyDHCP),
#         chromium chromium-driver (the web UI's browser tests, through WebDriver)
#   fuzz-venv: ${DCIM_SIMS:-/opt/dcim-sims}/fuzz-venv, the API fuzzer (schemathesis), kept
#         apart so its dependencies and the simulators' never meet.
#   venv: ${DCIM_SIMS:-/opt/dcim-sims}/venv, made with Debian's /usr/bin/python3 (not a
#         pyenv python3 that may come first on PATH: snmpsim drops to user nobody, who
#         cannot read /root, and pyenv's build has no dbm module), holding the pinned
#         Python simulators below. Everything in it is readable by nobody.
#
# The tests find the venv through the same DCIM_SIMS variable.
set -euo pipefail

SIMS=${DCIM_SIMS:-/opt/dcim-sims}
VENV=$SIMS/venv
APT_PACKAGES=(openipmi ipmitool snmp python3-venv python3-gdbm qemu-system-x86 qemu-utils socat ipxe ipxe-qemu ovmf cpio
              dnsmasq-base chromium chromium-driver openssl)
# cryptography: snmpsim needs it for SNMPv3 privacy (else "Decryption error");
# pysmi: a dependency snmpsim 1.2.2 forgets to declare;
# prometheus-client: the Prometheus project's own parser, which the metrics test reads
# dcim's /metrics with.
PIP_PACKAGES=(
    sushy-tools==2.2.0
    pyghmi==1.6.19
    snmpsim==1.2.2
    pysmi==2.0.0
    cryptography==50.0.2
    prometheus-client==0.26.0
)
STAMP=$VENV/.dcim-sims-stamp
FUZZ_VENV=$SIMS/fuzz-venv
FUZZ_PACKAGES=(schemathesis==4.32.5)

die() { echo "sims-setup: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

# --- Debian packages: only when one is missing. An install may remove a package already
# there (qemu-system-x86 from bookworm removes a backported qemu-utils), so the check runs
# again after each install, and the script fails if a package is still missing.
missing_packages() {
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$s" = installed ] || missing+=("$p")
    done
}
missing_packages
updated=
for round in 1 2 3; do
    [ ${#missing[@]} -gt 0 ] || break
    echo "sims-setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    [ -n "$updated" ] || { apt-get update -q; updated=1; }
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    missing_packages
done
[ ${#missing[@]} -eq 0 ] || die "still missing after installing: ${missing[*]}"
for tool in ipmi_sim ipmitool snmpget qemu-system-x86_64 qemu-img qemu-io socat cpio dnsmasq chromium chromedriver; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH after the install"
done

# --- The virtualenv: rebuilt when the pin list changed or it is broken.
want="$(printf '%s\n' /usr/bin/python3 "${PIP_PACKAGES[@]}")"
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "sims-setup: building $VENV"
    rm -rf "$VENV"
    mkdir -p "$SIMS"
    (
        umask 022
        /usr/bin/python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --no-cache-dir "${PIP_PACKAGES[@]}"
    )
    # snmpsim runs as nobody: the venv (and every directory above it) must be readable.
    chmod -R a+rX "$SIMS"
    d=$SIMS
    while [ "$d" != / ]; do
        [ "$(stat -c %A "$d" | cut -c10)" = x ] || die "$d is not searchable by nobody: choose another DCIM_SIMS"
        d=$(dirname "$d")
    done
    runuser -u nobody -- "$VENV/bin/python" -c 'import dbm.gnu, snmpsim, pysmi, cryptography, pyghmi, sushy_tools, prometheus_client' \
        || die "user nobody cannot import the simulators from $VENV"
    printf '%s' "$want" > "$STAMP"
fi

# --- The fuzzer's virtualenv, the same way.
want_fuzz="$(printf '%s\n' /usr/bin/python3 "${FUZZ_PACKAGES[@]}")"
if [ ! -x "$FUZZ_VENV/bin/st" ] || [ "$(cat "$FUZZ_VENV/.dcim-stamp" 2>/dev/null)" != "$want_fuzz" ]; then
    echo "sims-setup: building $FUZZ_VENV"
    rm -rf "$FUZZ_VENV"
    (
        umask 022
        /usr/bin/python3 -m venv "$FUZZ_VENV"
        "$FUZZ_VENV/bin/pip" install -q --no-cache-dir "${FUZZ_PACKAGES[@]}"
    )
    "$FUZZ_VENV/bin/st" --version >/dev/null || die "schemathesis does not run from $FUZZ_VENV"
    printf '%s' "$want_fuzz" > "$FUZZ_VENV/.dcim-stamp"
fi

# --- What is there.
echo "ipmi_sim      $(dpkg-query -W -f='${Version}' openipmi) ($(command -v ipmi_sim))"
echo "ipmitool      $(dpkg-query -W -f='${Version}' ipmitool) ($(command -v ipmitool))"
echo "snmp          $(dpkg-query -W -f='${Version}' snmp) ($(command -v snmpget))"
"$VENV/bin/python" - <<'EOF'
import sys
from importlib.metadata import version
print(f"python        {sys.version.split()[0]} ({sys.executable})")
for p in ("sushy-tools", "pyghmi", "snmpsim", "pysnmp", "pysmi", "cryptography"):
    print(f"{p:<13} {version(p)}")
EOF
echo "schemathesis  $("$FUZZ_VENV/bin/st" --version | awk '{print $NF}') ($FUZZ_VENV)"
