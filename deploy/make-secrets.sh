#!/usr/bin/env bash
# Create the compose stack's secrets (once): deploy/secrets/{llmos_admin_key, postgres_password,
# grafana_admin_password}, random, never overwritten. The directory is 0700 (yours only); the
# files are 0644 because compose bind-mounts them into containers that run as other users.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 700 secrets
random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
make() {
  local file="secrets/$1"
  if [ -s "${file}" ]; then
    echo "kept ${file}"
    return
  fi
  printf '%s\n' "$2" > "${file}"
  chmod 644 "${file}"
  echo "wrote ${file}"
}
make llmos_admin_key "sk-llmos-$(random 40)"
make postgres_password "$(random 32)"
make grafana_admin_password "$(random 24)"
echo "the llmos admin key is in $(pwd)/secrets/llmos_admin_key"
