#!/usr/bin/env bash
# The test command: set up a fresh machine, then run the whole suite (unit, contract,
# packaging, and integration on a real lab: sshd, Docker engine, registry).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two workers (FLEETBENCH_TEST_WORKERS): the lab tests spend most of their time waiting on
# SSH, containers and timers, so a second worker runs while the first waits. Tests
# sharing a module-wide lab carry an xdist_group mark and stay on one worker; each worker
# brings its labs up on addresses of its own (tests/integration/conftest.py).
.venv/bin/python -m pytest -n "${FLEETBENCH_TEST_WORKERS:-2}" --dist loadgroup --durations=15 "$@"
