#!/usr/bin/env bash
# Install Debian's PostgreSQL (if needed), start it on 127.0.0.1:5432 and create the llmos test
# role and database. Idempotent; needs root (or sudo). Prints the URL as its last line:
#   export LLMOS_TEST_POSTGRES_URL="$(.ci/postgres.sh | tail -n 1)"
set -euo pipefail

PGUSER_NAME=llmos
PGPASS=llmos
PGDB=llmos_test
URL="postgresql+psycopg://${PGUSER_NAME}:${PGPASS}@127.0.0.1:5432/${PGDB}"

SUDO=""
AS_POSTGRES=(runuser -u postgres --)
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; AS_POSTGRES=(sudo -u postgres); fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq postgresql >/dev/null
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -1)"
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -q "^${VERSION} main$"; then
  $SUDO pg_createcluster "${VERSION}" main >/dev/null
fi
CONF="/etc/postgresql/${VERSION}/main/postgresql.conf"
if ! grep -q "^listen_addresses = '127.0.0.1'" "${CONF}"; then
  echo "listen_addresses = '127.0.0.1'" | $SUDO tee -a "${CONF}" >/dev/null
  echo "port = 5432" | $SUDO tee -a "${CONF}" >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="${VERSION}" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
  $SUDO pg_ctlcluster "${VERSION}" main start
fi

ready=0
for _ in $(seq 1 60); do
  if (cd / && "${AS_POSTGRES[@]}" pg_isready -q -h 127.0.0.1 -p 5432); then ready=1; break; fi
  sleep 1
done
if [ "${ready}" -ne 1 ]; then echo "postgres did not become ready on 127.0.0.1:5432" >&2; exit 1; fi

psql_admin_local() { (cd / && "${AS_POSTGRES[@]}" psql -v ON_ERROR_STOP=1 -qtA -d postgres -c "$1"); }

if [ "$(psql_admin_local "SELECT 1 FROM pg_roles WHERE rolname='${PGUSER_NAME}'")" != "1" ]; then
  psql_admin_local "CREATE ROLE ${PGUSER_NAME} LOGIN PASSWORD '${PGPASS}'"
else
  psql_admin_local "ALTER ROLE ${PGUSER_NAME} LOGIN PASSWORD '${PGPASS}'"
fi
if [ "$(psql_admin_local "SELECT 1 FROM pg_database WHERE datname='${PGDB}'")" != "1" ]; then
  psql_admin_local "CREATE DATABASE ${PGDB} OWNER ${PGUSER_NAME}"
fi

export LLMOS_TEST_POSTGRES_URL="${URL}"
echo "${URL}"
