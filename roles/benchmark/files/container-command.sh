set -u
# A fresh copy of the pinned MAD checkout per slot: reports of a re-run never mix.
rm -rf /workspace/MAD /workspace/benchmark.log
cp -a /mad-src /workspace/MAD || exit 90
HF_TOKEN="$(cat /run/fleetbench/hf_token 2>/dev/null)"
if [ -n "$HF_TOKEN" ]; then export HF_TOKEN; else unset HF_TOKEN; fi
cd /workspace/MAD/scripts/vllm || exit 91
exec bash ./vllm_benchmark_report.sh -s "$1" -m "$2" -g "$3" -d "$4" >/workspace/benchmark.log 2>&1
