#!/usr/bin/env bash
# The full WellPulse demo on one machine:
#   private PostgreSQL (unless DATABASE_URL is set) → cloud (embedded MQTT broker, ingester,
#   maintenance, HTTP API, billing against a local localstripe) → simulator (20 wells) → one
#   agent per well.
# Ctrl-C stops everything cleanly. State lives in .demo/ (database, agent buffers, secrets),
# so data survives a restart of the demo. WELLS=N changes the fleet size.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/services.sh

WELLS="${WELLS:-20}"
DEMO="$PWD/.demo"
TENANT=demo
API=127.0.0.1:8080
mkdir -p "$DEMO/agents" "$DEMO/logs"

# 1. PostgreSQL: the caller's, or a private one in .demo/pg.
own_pg=0
if [ -z "${DATABASE_URL:-}" ]; then
  wp_private_postgres
  own_pg=1
fi
admin_url="$DATABASE_URL"
db_url="${admin_url%/*}/wellpulse"
if ! psql "$admin_url" -Atqc "select 1 from pg_database where datname = 'wellpulse'" | grep -q 1; then
  psql "$admin_url" -qc "create database wellpulse" >/dev/null
fi

# 2. Build: the binaries and the web app (web/dist, served by the cloud at http://$API/).
echo "[demo] building (release)…" >&2
cargo build --release -q -p server -p agent -p simulator
wp_ensure_web
bin="$PWD/target/release"

# 3. Secrets, made once and kept private (never printed).
if [ ! -f "$DEMO/secrets" ]; then
  umask 077
  {
    echo "INGESTER_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "GATEWAY_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } > "$DEMO/secrets"
  umask 022
fi
# The webhook signing secret shared with localstripe (demos made before billing lack it).
if ! grep -q '^STRIPE_WEBHOOK_SECRET=' "$DEMO/secrets"; then
  echo "STRIPE_WEBHOOK_SECRET=whsec_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> "$DEMO/secrets"
fi
source "$DEMO/secrets"
# localstripe takes any key; the real one would come from the environment or a file too.
export STRIPE_API_KEY=sk_test_wellpulse_demo STRIPE_WEBHOOK_SECRET

sed -e "s|@DATABASE_URL@|$db_url|" -e "s|@INGESTER_PASSWORD@|$INGESTER_PASSWORD|" \
    -e "s|@BROKER_CONFIG@|$PWD/broker-config/rumqttd-demo.toml|" -e "s|@API@|$API|" \
    -e "s|@WEB_DIR@|$PWD/web/dist|" \
    deploy/demo/cloud.toml > "$DEMO/cloud.toml"
chmod 600 "$DEMO/cloud.toml"

pids=()
stopping=0
cleanup() {
  trap - INT TERM EXIT
  stopping=1
  echo >&2; echo "[demo] stopping…" >&2
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$own_pg" = 1 ]; then
    local bindir; bindir=$(wp_pg_bindir)
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bindir/pg_ctl" -D "$DEMO/pg" -m fast stop >/dev/null || true
    else "$bindir/pg_ctl" -D "$DEMO/pg" -m fast stop >/dev/null || true; fi
  fi
  echo "[demo] stopped; data kept in $DEMO" >&2
}
trap cleanup INT TERM EXIT

# 4. Simulator: one Modbus TCP listener per well on ports 15020+.
"$bin/wellpulse-cloud" migrate --config "$DEMO/cloud.toml" >/dev/null
# The platform administrator who signs in to the API (password kept in a private file).
[ -f "$DEMO/admin-password" ] || { umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEMO/admin-password"; umask 022; }
"$bin/wellpulse-cloud" create-admin --config "$DEMO/cloud.toml" --email admin@wellpulse.demo \
  --password-file "$DEMO/admin-password" >/dev/null
rm -f "$DEMO/endpoints.json"
"$bin/wellpulse-simulator" --wells "$WELLS" --base-port 15020 --endpoints-json "$DEMO/endpoints.json" \
  --export-schedule "$DEMO/failure-schedule.json" > "$DEMO/logs/simulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do [ -s "$DEMO/endpoints.json" ] && break; sleep 0.2; done
[ -s "$DEMO/endpoints.json" ] || { echo "[demo] the simulator did not start; see $DEMO/logs/simulator.log" >&2; exit 1; }

# 5. One gateway per well: split the endpoint list, register gateway and well in the cloud.
python3 - "$DEMO/endpoints.json" "$DEMO/agents" <<'PY'
import json, pathlib, sys
doc = json.load(open(sys.argv[1]))
endpoints = doc["endpoints"] if isinstance(doc, dict) else doc
wells = {}
for e in endpoints:
    wells.setdefault(e["well"], []).append(e)
with open(pathlib.Path(sys.argv[2]) / "wells.txt", "w") as index:
    for i, (well, eps) in enumerate(sorted(wells.items()), start=1):
        (pathlib.Path(sys.argv[2]) / f"gw-{i:02d}.endpoints.json").write_text(json.dumps(eps))
        index.write(f"gw-{i:02d} {well} 42-329-{40000 + i:05d}\n")
PY
while read -r gw well api; do
  WELLPULSE_GATEWAY_PASSWORD="$GATEWAY_PASSWORD" "$bin/wellpulse-cloud" provision-gateway --config "$DEMO/cloud.toml" --tenant "$TENANT" \
    --gateway "$gw" --site "pad-$(( (10#${gw#gw-} - 1) / 4 + 1 ))" \
    --well "$well" --api-number "$api" >/dev/null
done < "$DEMO/agents/wells.txt"

# 6. Billing: localstripe (a local Stripe-compatible server; its state persists in
#    /tmp/localstripe.pickle) on 127.0.0.1:8420.
wp_ensure_localstripe
localstripe --port 8420 > "$DEMO/logs/localstripe.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do wp_port_open 8420 && break; sleep 0.2; done
wp_port_open 8420 || { echo "[demo] localstripe did not start; see $DEMO/logs/localstripe.log" >&2; exit 1; }

# 7. Cloud: embedded broker, ingester, maintenance, API, billing.
RUST_LOG="${RUST_LOG:-info,rumqttd=warn}" "$bin/wellpulse-cloud" run --config "$DEMO/cloud.toml" \
  > "$DEMO/logs/cloud.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do wp_port_open 18830 && wp_port_open "${API#*:}" && break; sleep 0.2; done
wp_port_open "${API#*:}" || { echo "[demo] the cloud did not start; see $DEMO/logs/cloud.log" >&2; exit 1; }

# 8. The demo tenant as a paying customer: localstripe delivers its signed events to the
#    cloud's webhook; the first time, a customer with a test card is created, linked to the
#    tenant and subscribed to the standard plan's base price (localstripe has no metered
#    prices and no Billing Meters: usage shows in WellPulse, the meters are tested with a
#    fake). Its paid invoice activates the tenant's billing.
STRIPE_WEBHOOK_URL="http://$API/api/v1/billing/webhook" python3 - <<'PY'
import json, os, urllib.parse, urllib.request
req = urllib.request.Request("http://127.0.0.1:8420/_config/webhooks/wellpulse", method="POST",
    data=urllib.parse.urlencode({"url": os.environ["STRIPE_WEBHOOK_URL"],
                                 "secret": os.environ["STRIPE_WEBHOOK_SECRET"]}).encode())
urllib.request.urlopen(req).read()
PY
linked=$(psql "$db_url" -Atqc "select b.customer_id from billing_accounts b join tenants t on t.id = b.tenant_id where t.slug = '$TENANT'" 2>/dev/null || true)
if [ -z "$linked" ]; then
  customer=$(python3 - <<'PY'
import json, os, urllib.parse, urllib.request
def call(path, data):
    req = urllib.request.Request("http://127.0.0.1:8420" + path, method="POST",
        data=urllib.parse.urlencode(data).encode(),
        headers={"Authorization": "Bearer " + os.environ["STRIPE_API_KEY"]})
    return json.loads(urllib.request.urlopen(req).read())
cus = call("/v1/customers", {"name": "Demo Operating", "description": "WellPulse tenant demo"})["id"]
try:
    call("/v1/plans", {"id": "price_demo_base", "amount": "49900", "currency": "usd",
                       "interval": "month", "product[name]": "WellPulse standard"})
except urllib.error.HTTPError:
    pass  # made by an earlier run
tok = call("/v1/tokens", {"card[number]": "4242424242424242", "card[exp_month]": "12",
                          "card[exp_year]": "2035", "card[cvc]": "123"})["id"]
call("/v1/customers/%s/sources" % cus, {"source": tok})
print(cus)
PY
)
  "$bin/wellpulse-cloud" billing-link --config "$DEMO/cloud.toml" --tenant "$TENANT" --customer "$customer" >/dev/null
  CUSTOMER="$customer" python3 - <<'PY'
import json, os, urllib.parse, urllib.request
req = urllib.request.Request("http://127.0.0.1:8420/v1/subscriptions", method="POST",
    data=urllib.parse.urlencode({"customer": os.environ["CUSTOMER"],
                                 "items[0][plan]": "price_demo_base"}).encode(),
    headers={"Authorization": "Bearer " + os.environ["STRIPE_API_KEY"]})
urllib.request.urlopen(req).read()
PY
fi

# 9. Agents, each with its own buffer and /metrics port.
i=0
while read -r gw well api; do
  i=$((i + 1))
  WELLPULSE_MQTT_PASSWORD="$GATEWAY_PASSWORD" "$bin/wellpulse-agent" generate-config \
    --simulator-endpoints "$DEMO/agents/$gw.endpoints.json" --tenant "$TENANT" --gateway "$gw" \
    --mqtt-url mqtt://127.0.0.1:18830 --mqtt-username "$TENANT/$gw" --mqtt-client-id "wp-$TENANT-$gw" \
    --data-dir "$DEMO/agents/$gw" --metrics-listen "127.0.0.1:$((9200 + i))" \
    --output "$DEMO/agents/$gw.toml"
  chmod 600 "$DEMO/agents/$gw.toml"
  "$bin/wellpulse-agent" run --config "$DEMO/agents/$gw.toml" > "$DEMO/logs/agent-$gw.log" 2>&1 &
  pids+=($!)
done < "$DEMO/agents/wells.txt"

cat <<MSG

  WellPulse demo is running: $WELLS wells, $i gateway agents, embedded MQTT broker, cloud.

  Web app                http://$API/   (open tenant "$TENANT" after signing in)
  Sign in                admin@wellpulse.demo, password: the line in $DEMO/admin-password
                         (the API: POST http://$API/api/v1/auth/sign-in, then Authorization: Bearer <access_token>)
  API docs (browsable)   http://$API/api/docs
  OpenAPI spec           http://$API/api/openapi.json
  Gateways               http://$API/api/v1/tenants/$TENANT/gateways
  Wells                  http://$API/api/v1/tenants/$TENANT/wells
  Telemetry (example)    http://$API/api/v1/tenants/$TENANT/wells/<well>/telemetry?metric=tubing_pressure_psi&bucket=1m&from=…&to=…
  Billing (tenant)       http://$API/api/v1/tenants/$TENANT/billing  (plan, usage this month, upcoming and past invoices)
  Revenue (platform)     http://$API/api/v1/admin/billing/revenue?format=csv
  localstripe            http://127.0.0.1:8420  (a local Stripe; nothing leaves this machine)
  Agent metrics          http://127.0.0.1:9201/metrics  (gw-01; gw-NN on 9200+NN)
  MQTT                   mqtt://127.0.0.1:18830 (3.1.1), :18840 (5)
  Database               $db_url
  Logs                   $DEMO/logs/

  Ctrl-C stops everything; data stays in $DEMO.
MSG
wait -n "${pids[@]}" || true
[ "$stopping" = 1 ] || echo "[demo] a component exited; see $DEMO/logs" >&2
