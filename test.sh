#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration and end-to-end.
# Installs and starts what the tests need first (PostgreSQL, Mosquitto, socat, cbor2,
# Chromium, Node.js) and builds the web app (web/dist) its browser tests load.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/services.sh
wp_ensure_all
wp_ensure_web
echo "[test] DATABASE_URL=${DATABASE_URL}" >&2
exec cargo test --workspace "$@"
