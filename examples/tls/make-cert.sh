#!/usr/bin/env bash
# Makes a throwaway self-signed certificate for examples/tls.json:
# DIR/lbd.crt and DIR/lbd.key (DIR defaults to this script's directory),
# valid 30 days for localhost and 127.0.0.1. For trying HTTPS and HTTP/2
# locally only: clients must be told to trust it (curl --cacert DIR/lbd.crt).
set -euo pipefail
dir=${1:-$(dirname "$0")}
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -days 30 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "extendedKeyUsage=serverAuth" \
  -keyout "$dir/lbd.key" -out "$dir/lbd.crt" 2>/dev/null
chmod 600 "$dir/lbd.key"
echo "wrote $dir/lbd.crt and $dir/lbd.key (self-signed, 30 days, localhost and 127.0.0.1)"
