# Helpers for .ci/run: timed steps, tool installs, and the checks that depend on what this
# machine has (a local RustSec database, TimescaleDB). Source it; it changes no settings.

ci_log() { echo "[ci] $*" >&2; }

# ci_step NAME COMMAND...: runs COMMAND and says how long it took.
ci_step() {
  local name=$1 start=$SECONDS rc=0
  shift
  ci_log "$name ..."
  "$@" || rc=$?
  if [ "$rc" = 0 ]; then ci_log "$name: ok, $((SECONDS - start)) s"; else
    ci_log "$name: FAILED (exit $rc), $((SECONDS - start)) s"; fi
  return "$rc"
}

# ci_tool CRATE VERSION: installs a cargo subcommand from crates.io (at low priority, with the
# versions of its own Cargo.lock) unless one is already on PATH. Measured on 2 busy cores:
# cargo-deny 5-6 min (about 250 CPU-seconds), cargo-machete about 4 min.
ci_tool() {
  local crate=$1 version=$2
  if command -v "$crate" >/dev/null; then
    ci_log "$crate present: $("$crate" --version 2>&1 | head -n1)"
    return 0
  fi
  ci_step "install $crate $version" nice -n 10 cargo install --locked --quiet "$crate@$version"
}

# RustSec's advisory database is fetched from a host CI cannot reach, so the advisories check
# runs only against a local copy: $WP_ADVISORY_DB (a git checkout of rustsec/advisory-db) or the
# copy `cargo deny fetch` keeps under $CARGO_HOME/advisory-dbs. It never fetches.
ci_advisories() {
  local root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
  local default="$root/advisory-db-3157b0e258782691" # where cargo-deny keeps the default db
  local db="${WP_ADVISORY_DB:-$default}"
  if [ ! -d "$db/crates" ]; then
    echo "[ci] SKIPPED cargo deny advisories: no local RustSec advisory database at $db" \
      "(CI cannot fetch it; set WP_ADVISORY_DB to a checkout of rustsec/advisory-db)"
    return 0
  fi
  if [ "$db" != "$default" ]; then # cargo-deny only looks in its own place: link the copy there
    if [ -e "$default" ] && [ ! -L "$default" ]; then
      ci_log "$default exists and is not a link: remove it to use WP_ADVISORY_DB=$db"
      return 1
    fi
    mkdir -p "$root" && ln -sfn "$(realpath "$db")" "$default"
  fi
  ci_log "advisory database: $db (last commit $(git -C "$db" log -1 --format=%cs 2>/dev/null))"
  ci_step "cargo deny advisories" cargo deny --offline check advisories
}

# Says whether the TimescaleDB-only tests will run against $DATABASE_URL.
ci_timescale_note() {
  local n
  n=$(psql "$DATABASE_URL" -Atqc \
    "select count(*) from pg_available_extensions where name = 'timescaledb'") || n="?"
  case "$n" in
    1) echo "[ci] TimescaleDB is available on $DATABASE_URL: its tests run" ;;
    0) echo "[ci] SKIPPED TimescaleDB-only tests: the extension is not available on" \
      "$DATABASE_URL (WP_REQUIRE_TIMESCALE=1 makes them fail instead)" ;;
    *) echo "[ci] could not ask $DATABASE_URL whether TimescaleDB is available" ;;
  esac
}
