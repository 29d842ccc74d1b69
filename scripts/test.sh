#!/usr/bin/env bash
# The test command: makes sure what the tests talk to is there (PostgreSQL on
# 127.0.0.1:5432; the BMC and SNMP simulators and QEMU, installed by scripts/sims-setup.sh,
# which needs root the first time; the agent's boot image), then runs every test of the
# workspace. The tests start and stop the simulators and virtual machines themselves, on
# 127.0.0.1 ports and in network namespaces they create.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/postgres-up.sh
  bash scripts/sims-setup.sh
else
  sudo bash scripts/postgres-up.sh
  sudo bash scripts/sims-setup.sh
fi
# The agent's network boot image, which the virtual machines of the tests boot (its
# Debian packages are downloaded once into target/bootimage-cache; apt needs its lists).
ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && apt-get update -qq || sudo apt-get update -qq; }
bash scripts/build-bootimage.sh target/bootimage
exec cargo test --workspace --locked "$@"
