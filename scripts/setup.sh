#!/usr/bin/env bash
# Set up a fresh Debian machine for fleetbench: system packages, the Python environment,
# and a running Docker engine (no bridge, no iptables: the lab uses host networking only).
# Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(openssh-server openssh-client docker.io docker-registry git busybox-static python3-venv chromium
  python3-pandas python3-numpy python3-yaml python3-psutil curl)  # the last five: the lab image
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd (--bridge=none --iptables=false)"
  log="${TMPDIR:-/tmp}/fleetbench-dockerd.log"
  as_root sh -c "nohup dockerd --bridge=none --iptables=false --ip6tables=false >'$log' 2>&1 &"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start, see $log" >&2; exit 1; }
fi
