#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration and end-to-end.
# Installs and starts what the tests need first (PostgreSQL, Mosquitto, socat, cbor2).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/services.sh
wp_ensure_all
echo "[test] DATABASE_URL=${DATABASE_URL}" >&2
exec cargo test --workspace "$@"
