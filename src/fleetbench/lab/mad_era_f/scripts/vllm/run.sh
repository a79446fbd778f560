#!/bin/bash
# fleetbench lab: a re-creation of ROCm/MAD scripts/vllm/run.sh of late 2025 (YAML configs).
#   ./run.sh --model_repo <org/name> [--config configs/<x>.yaml] [--benchmark all|latency|…]
# Like MAD's: installs its extra Python packages, runs run_vllm.py for the model's entries of
# the config and moves perf_<name>.csv to the parent folder. `set -e`: the first failing
# step (a vLLM call run_vllm.py makes) ends the script with its status, and the perf file
# then stays where run_vllm.py wrote it.
set -ex

if [[ -z "${HF_HUB_CACHE:-}" ]]; then
    export HF_HUB_CACHE="/myworkspace"
fi

while [[ "$#" -gt 0 ]]; do
    case $1 in
        --model_repo) MODEL="$2"; shift ;;
        --config) CONFIG_ARG="$2"; shift ;;
        --benchmark) BENCHMARK_ARG="$2"; shift ;;
        *) echo "Unknown parameter passed: $1"; exit 1 ;;
    esac
    shift
done

# Either option may come from the environment instead.
BENCHMARK=${BENCHMARK:-${BENCHMARK_ARG:-all}}
CONFIG=${CONFIG:-${CONFIG_ARG:-configs/default.yaml}}

pip install -qqq lm-eval[api] hf-transfer

python3 -u run_vllm.py --config "$CONFIG" --model "$MODEL" --benchmark "$BENCHMARK"

MODEL_NAME=$(basename "$MODEL")
mv "perf_${MODEL_NAME}.csv" ../
