#!/usr/bin/env bash
# Install Debian's Prometheus (prometheus and promtool) for the monitoring tests in tests/deploy:
# promtool checks and unit-tests the alert rules, and a real Prometheus scrapes a live llmos.
# Nothing is started here (the tests start their own on loopback). Idempotent; needs root (or sudo).
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: not the node exporter; the package's service is not started in a container.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
promtool --version | head -n 1
