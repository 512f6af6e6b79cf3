# Helpers for .ci/run. Source it; it changes no settings.

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
