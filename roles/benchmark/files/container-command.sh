set -u
# Arguments: scenario model gpus dtype [era [config [probe-spec probe]]]. era is MAD's layout
# (the mad role tells it from the checkout); config is the YAML the run.sh layout runs,
# written by fleetbench for this run; probe-spec and probe are the correctness probe's JSON
# settings and its Python script (both empty: no probe).
# A fresh copy of the pinned MAD checkout per slot: reports of a re-run never mix.
rm -rf /workspace/MAD /workspace/benchmark.log /workspace/correctness.json
cp -a /mad-src /workspace/MAD || exit 90
HF_TOKEN="$(cat /run/fleetbench/hf_token 2>/dev/null)"
if [ -n "$HF_TOKEN" ]; then export HF_TOKEN; else unset HF_TOKEN; fi
cd /workspace/MAD/scripts/vllm || exit 91
if [ "${5:-report-script}" = run-yaml ]; then
    # run.sh reads the token from MAD_SECRETS_HFTOKEN: from the mounted file, as HF_TOKEN.
    if [ -n "${HF_TOKEN:-}" ]; then export MAD_SECRETS_HFTOKEN="$HF_TOKEN"; fi
    mkdir -p configs && printf '%s' "${6:-}" >configs/fleetbench.yaml || exit 92
    bash ./run.sh --model_repo "$2" --config configs/fleetbench.yaml >/workspace/benchmark.log 2>&1
else
    bash ./vllm_benchmark_report.sh -s "$1" -m "$2" -g "$3" -d "$4" >/workspace/benchmark.log 2>&1
fi
status=$?
# The probe's outcome is in its file: the slot's exit code stays the benchmark's.
if [ -n "${7:-}" ]; then
    cd /workspace && python3 -c "$8" "$7" >/workspace/correctness.log 2>&1
fi
exit "$status"
