#!/usr/bin/env bash
# Makes the TLS files a broker listener needs, signed by a private CA of your own:
#   ca.crt      the CA certificate: give it to every gateway ([mqtt.tls] ca_file)
#   ca.key      the CA's private key: keep it offline; it signs the next broker certificate
#   broker.crt  the broker's certificate, for the given host names / IP addresses
#   broker.key  its private key (mode 0640; group set to the broker's user when present)
#
# Usage:   broker-config/make-broker-cert.sh DIR NAME [NAME...]   (NAME: host name or IP)
# Example: broker-config/make-broker-cert.sh /etc/wellpulse/tls mqtt.example.com 203.0.113.7
# Env:     DAYS (validity of the broker certificate, default 825), BROKER_GROUP (group that
#          may read broker.key, default mosquitto when that group exists).
#
# An existing ca.crt/ca.key in DIR is reused, so renewing the broker certificate does not
# touch the gateways. With a public or company CA instead, skip this script and put its
# chain and key at the paths mosquitto.conf / rumqttd.toml name.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
dir=$1
shift
days=${DAYS:-825}
mkdir -p "$dir"
cd "$dir"
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
if [ ! -f ca.key ] || [ ! -f ca.crt ]; then
  openssl req -x509 -days 3650 -subj "/CN=WellPulse broker CA" "${ec[@]}" \
    -keyout ca.key -out ca.crt 2>/dev/null
fi
san=""
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then
    san="${san:+$san,}IP:$name"
  else
    san="${san:+$san,}DNS:$name"
  fi
done
openssl req -new -subj "/CN=$1" "${ec[@]}" -keyout broker.key -out broker.csr 2>/dev/null
printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' \
  "$san" >broker.ext
openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile broker.ext -out broker.crt 2>/dev/null
rm -f broker.csr broker.ext
chmod 0644 ca.crt broker.crt
chmod 0640 broker.key
group=${BROKER_GROUP:-mosquitto}
if getent group "$group" >/dev/null; then
  chgrp "$group" broker.key
fi
echo "made $dir/broker.crt for $* (signed by $dir/ca.crt)"
