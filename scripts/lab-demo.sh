#!/usr/bin/env bash
# The main job on a lab fleet, from a fresh machine: set up, bring up 3 simulated MI300X
# hosts (CPX/NPS4, 64 logical GPUs each), check them, then run the guide's benchmark
# (-s all -m meta-llama/Llama-3.1-8B-Instruct -g 8 -d float16) on every 8-GPU slot of every
# host and collect the reports into one run directory.
# The lab stays up afterwards; remove it with: .venv/bin/fleetbench lab down --dir .lab
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
LAB="${LAB:-$PWD/.lab}"
.venv/bin/fleetbench lab up --dir "$LAB" --hosts 3
.venv/bin/fleetbench check -i "$LAB/inventory.yml"
# The lab's stand-in hub accepts any token; a real fleet needs a real one for meta-llama.
export HF_TOKEN="${HF_TOKEN:-lab-token-not-a-secret}"
.venv/bin/fleetbench run -i "$LAB/inventory.yml" \
  --model meta-llama/Llama-3.1-8B-Instruct --gpus 8 --dtype float16 --scenario all \
  --runs-dir "$PWD/runs"
