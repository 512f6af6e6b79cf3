# Helpers for .ci/run: timed steps and tool installs. Source it; it changes no settings.

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

# ci_tool CRATE VERSION [ENV=VALUE...]: installs a cargo subcommand from crates.io (at low
# priority, with the versions of its own Cargo.lock) unless one is already on PATH.
ci_tool() {
  local crate=$1 version=$2
  shift 2
  if command -v "$crate" >/dev/null; then
    ci_log "$crate present: $("$crate" --version 2>&1 | head -n1)"
    return 0
  fi
  ci_step "install $crate $version" env "$@" nice -n 10 cargo install --locked --quiet "$crate@$version"
}
