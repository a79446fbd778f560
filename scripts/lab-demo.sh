#!/usr/bin/env bash
# The main job on a lab fleet, from a fresh machine: set up, bring up 3 simulated MI300X
# hosts, and check them. The lab stays up (remove it with: .venv/bin/fleetbench lab down --dir "$LAB").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
LAB="${LAB:-$PWD/.lab}"
.venv/bin/fleetbench lab up --dir "$LAB" --hosts 3
.venv/bin/fleetbench check -i "$LAB/inventory.yml"
