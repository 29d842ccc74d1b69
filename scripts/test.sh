#!/usr/bin/env bash
# The test command: makes sure what the tests talk to is there (PostgreSQL on
# 127.0.0.1:5432; the BMC and SNMP simulators, installed by scripts/sims-setup.sh, which
# needs root the first time), then runs every test of the workspace. The tests start and
# stop the simulators themselves, on 127.0.0.1 ports.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/postgres-up.sh
  bash scripts/sims-setup.sh
else
  sudo bash scripts/postgres-up.sh
  sudo bash scripts/sims-setup.sh
fi
exec cargo test --workspace --locked "$@"
