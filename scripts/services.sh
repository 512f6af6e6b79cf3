#!/usr/bin/env bash
# Makes sure what the tests and the demo need is installed and running on this machine:
# PostgreSQL (15+), Mosquitto, socat (virtual serial ports), Python's cbor2, aiosmtpd,
# schemathesis, standardwebhooks and jsonschema (with its format checkers), localstripe
# and Stripe's Python library (the billing tests), Chromium
# (the API test that renders the docs page in a headless browser, and the web app's
# Playwright tests), Node.js and npm (the web app in web/, built by wp_ensure_web).
# Source it: it exports DATABASE_URL (an admin URL tests create their databases from).
#
# Order of preference for PostgreSQL:
#   1. DATABASE_URL already set by the caller: used as is.
#   2. A server on 127.0.0.1:5432 that accepts `postgres` without a password.
#   3. A private server started from the machine's PostgreSQL binaries in .demo/pg
#      (installed from Debian's packages first if absent and we are root).

wp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

wp_log() { echo "[services] $*" >&2; }

wp_apt_install() {
  if [ "$(id -u)" != 0 ]; then
    wp_log "missing packages: $*; run: sudo apt-get install -y $*"
    return 1
  fi
  if [ -z "${WP_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    export WP_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

wp_pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

wp_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wp_ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then return 0; fi
  command -v psql >/dev/null || wp_apt_install postgresql postgresql-client || return 1
  if psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    return 0
  fi
  # Start the machine's cluster if it has one that is down.
  if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q down; then
    local v; v=$(pg_lsclusters -h | awk '$4=="down"{print $1; exit}')
    pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 2>&1 || true
    sleep 2
    if psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
      export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
      return 0
    fi
  fi
  wp_private_postgres
}

# A private cluster with trust auth on 127.0.0.1:${WP_PG_PORT:-55432}, data in .demo/pg.
wp_private_postgres() {
  local bindir port data
  bindir=$(wp_pg_bindir) || { wp_apt_install postgresql && bindir=$(wp_pg_bindir); } || return 1
  port="${WP_PG_PORT:-55432}"
  data="$wp_root/.demo/pg"
  local run_as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r -m postgres
    run_as=(runuser -u postgres --)
    mkdir -p "$wp_root/.demo"
    chown postgres "$wp_root/.demo" 2>/dev/null || true
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    wp_log "initialising a private PostgreSQL in $data"
    mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown postgres "$data"
    "${run_as[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null
  fi
  if ! wp_port_open "$port"; then
    wp_log "starting the private PostgreSQL on 127.0.0.1:$port"
    "${run_as[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c max_connections=300" start >&2
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

wp_ensure_mosquitto() {
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || wp_apt_install mosquitto || return 1
  if ! wp_port_open 1883; then
    wp_log "starting Mosquitto on 127.0.0.1:1883"
    local conf; conf=$(mktemp /tmp/wp-mosquitto-XXXX.conf)
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' > "$conf"
    /usr/sbin/mosquitto -d -c "$conf"
    sleep 1
  fi
}

wp_ensure_socat() { command -v socat >/dev/null || wp_apt_install socat; }

# A Python package from PyPI, installed when `import` fails: wp_ensure_py MODULE PACKAGE.
wp_ensure_py() {
  python3 -c "import $1" 2>/dev/null || python3 -m pip install -q "$2" >&2 ||
    python3 -m pip install -q --break-system-packages "$2" >&2
}

wp_ensure_cbor2() { wp_ensure_py cbor2 cbor2; }

# The alert delivery tests (cloud/alerts/tests/deliver.rs): webhook signatures checked by the
# Standard Webhooks reference library, bodies validated against the published schemas with
# the date-time and uri formats checked.
wp_ensure_standardwebhooks() { wp_ensure_py standardwebhooks standardwebhooks; }
wp_ensure_jsonschema() {
  wp_ensure_py "jsonschema, rfc3339_validator, rfc3986_validator" "jsonschema[format-nongpl]"
}

# The SMTP sink the mail tests start (cloud/testkit/smtp_sink.py).
wp_ensure_aiosmtpd() { wp_ensure_py aiosmtpd aiosmtpd; }

# The billing tests: localstripe (a local Stripe-compatible server the tests start on a
# free port) and Stripe's official library (it signs the webhook payloads the tests send).
wp_ensure_localstripe() { wp_ensure_py localstripe localstripe && wp_ensure_py stripe stripe; }

# The API's property-based test against its OpenAPI document.
wp_ensure_schemathesis() { command -v schemathesis >/dev/null || wp_ensure_py schemathesis schemathesis; }

# Debian's chromium, at the path the API's docs test runs it from.
wp_ensure_chromium() { [ -x /usr/bin/chromium ] || wp_apt_install chromium; }

# Debian's Node.js and npm (the web app's build and browser tests).
wp_ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null || wp_apt_install nodejs npm
}

# The web app: its npm packages as package-lock.json pins them (npm ci, again only when the
# lock file changed) and a fresh build in web/dist, which `[api] web_dir` serves.
wp_ensure_web() {
  wp_ensure_node || return 1
  local web="$wp_root/web"
  if [ ! -f "$web/node_modules/.package-lock.json" ] ||
     ! cmp -s "$web/package-lock.json" "$web/node_modules/.wp-package-lock.json"; then
    wp_log "installing the web app's packages (npm ci)"
    (cd "$web" && npm ci --no-audit --no-fund >&2) || return 1
    cp "$web/package-lock.json" "$web/node_modules/.wp-package-lock.json"
  fi
  wp_log "building the web app (vite build → web/dist)"
  (cd "$web" && npm run --silent build >&2)
}

wp_ensure_all() {
  wp_ensure_postgres && wp_ensure_mosquitto && wp_ensure_socat && wp_ensure_cbor2 &&
    wp_ensure_standardwebhooks && wp_ensure_jsonschema && wp_ensure_aiosmtpd &&
    wp_ensure_schemathesis && wp_ensure_localstripe && wp_ensure_chromium
}
