#!/usr/bin/env bash
# The test command: set up a fresh machine, then run the whole suite (unit, contract,
# packaging, and integration on a real lab: sshd, Docker engine, registry).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
