#!/usr/bin/env bash
# The llmos image's entrypoint. It also runs outside a container (tests/deploy/test_entrypoint.py
# runs it in CI with a temporary LLMOS_HOME on a loopback port).
#
#   llmos-entrypoint [serve] [llmos serve options]   the server (the default command)
#   llmos-entrypoint llmos keys create --admin        any other command runs as given, after 1-2
#
# Before any command it
#  1. reads secrets from files: for LLMOS_ADMIN_KEY, LLMOS_API_KEY, LLMOS_DATABASE_URL and
#     LLMOS_DATABASE_PASSWORD, a variable NAME_FILE names a file holding NAME's value (Docker and
#     Kubernetes secrets); setting both NAME and NAME_FILE is an error;
#  2. puts LLMOS_DATABASE_PASSWORD into LLMOS_DATABASE_URL (which then holds no secret itself);
# and before serving it
#  3. checks that LLMOS_HOME is writable, waits for the database (LLMOS_DATABASE_WAIT seconds,
#     default 60) and migrates it to the newest schema;
#  4. execs `llmos serve` on LLMOS_HOST (default 0.0.0.0 here): the server pulls the default model
#     (LLMOS_DEFAULT_MODEL) on its first start and loads it; /health answers at once, /ready once
#     the model is loaded. SIGTERM drains: /ready turns 503, in-flight requests get
#     --drain-timeout seconds (default 30) to finish, then every model is unloaded.
set -euo pipefail

die() {
  echo "llmos-entrypoint: $*" >&2
  exit 78 # EX_CONFIG
}

file_env() {
  local name="$1"
  local file_name="${name}_FILE"
  local file="${!file_name:-}"
  if [ -n "${file}" ]; then
    if [ -n "${!name:-}" ]; then
      die "both ${name} and ${file_name} are set; set only one of them"
    fi
    if [ ! -r "${file}" ]; then
      die "${file_name}=${file} cannot be read (mount the secret there, readable by uid $(id -u))"
    fi
    local value
    value="$(cat -- "${file}")" # $(...) drops the trailing newline editors leave
    if [ -z "${value}" ]; then
      die "${file_name}=${file} is empty"
    fi
    export "${name}=${value}"
  fi
  unset "${file_name}"
}

for secret in LLMOS_ADMIN_KEY LLMOS_API_KEY LLMOS_DATABASE_URL LLMOS_DATABASE_PASSWORD; do
  file_env "${secret}"
done

PYTHON="${LLMOS_PYTHON:-python3}"

if [ -n "${LLMOS_DATABASE_PASSWORD:-}" ]; then
  if [ -z "${LLMOS_DATABASE_URL:-}" ]; then
    die "LLMOS_DATABASE_PASSWORD is set but LLMOS_DATABASE_URL is not (postgresql+psycopg://user@host:5432/db)"
  fi
  LLMOS_DATABASE_URL="$("${PYTHON}" -c '
import os, sys
from sqlalchemy.engine import make_url
url = make_url(os.environ["LLMOS_DATABASE_URL"])
if url.password:
    sys.exit("LLMOS_DATABASE_URL already holds a password; drop it there or unset LLMOS_DATABASE_PASSWORD")
print(url.set(password=os.environ["LLMOS_DATABASE_PASSWORD"]).render_as_string(hide_password=False))
')" || die "cannot combine LLMOS_DATABASE_URL and LLMOS_DATABASE_PASSWORD"
  export LLMOS_DATABASE_URL
fi
unset LLMOS_DATABASE_PASSWORD

if [ "$#" -eq 0 ] || [ "$1" = "serve" ] || [ "${1#-}" != "$1" ]; then
  if [ "${1:-}" = "serve" ]; then shift; fi
else
  exec "$@" # another command (llmos keys create --admin...) with the same secrets and database
fi

export LLMOS_HOST="${LLMOS_HOST:-0.0.0.0}"

home="${LLMOS_HOME:-${HOME}/.llmos}"
mkdir -p -- "${home}" 2>/dev/null || true
if ! { [ -d "${home}" ] && [ -w "${home}" ]; }; then
  die "LLMOS_HOME=${home} is not a writable directory for uid $(id -u); give the volume to that user (chown, or fsGroup in Kubernetes)"
fi

# The wait runs in the background so that a SIGTERM (docker stop) ends it at once.
"${PYTHON}" - <<'PY' &
import os
import sys
import time

from llmos.config import load_config
from llmos.errors import LLMOSError, SourceUnavailable
from llmos.storage.db import open_database
from llmos.storage.migrate import current_revision

wait = float(os.environ.get("LLMOS_DATABASE_WAIT", "60"))
try:
    config = load_config()
except Exception as exc:  # an invalid LLMOS_* setting: one line, no traceback
    sys.exit(f"llmos-entrypoint: invalid configuration: {exc}")
deadline = time.monotonic() + wait
while True:
    try:
        db = open_database(config)  # migrates to the newest schema
        break
    except SourceUnavailable as exc:
        if time.monotonic() >= deadline:
            sys.exit(f"llmos-entrypoint: gave up after {wait:.0f} s: {exc.message}")
        print(f"llmos-entrypoint: waiting for the database: {exc.message}", file=sys.stderr, flush=True)
        time.sleep(2)
    except LLMOSError as exc:
        sys.exit(f"llmos-entrypoint: {exc.message}")
print(f"llmos-entrypoint: database at schema {current_revision(db.engine)}", file=sys.stderr, flush=True)
db.dispose()
PY
migrate=$!
trap 'kill -TERM "${migrate}" 2>/dev/null; wait "${migrate}"; exit 143' TERM INT
wait "${migrate}" || exit $?
trap - TERM INT

exec llmos serve "$@"
