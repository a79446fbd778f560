# Runs inside the pulled image (docker run --rm --network none), with MAD's layout as $1
# (report-script or run-yaml, told by the mad role from the checkout; empty when unknown):
# prints one line per piece the layout's scripts need that the image lacks; nothing when it
# has them all. Then vLLM's version as `vllm-version: X` (from its distribution metadata:
# importing vLLM would load torch), for the run's attribution.
era="${1:-}"
command -v python3 >/dev/null 2>&1 || echo "python3"
command -v python3 >/dev/null 2>&1 && { python3 -c "import pandas" >/dev/null 2>&1 || echo "pandas (python3 -c 'import pandas' fails)"; }
command -v bash >/dev/null 2>&1 || echo "bash"
case "$era" in
  report-script)
    # vllm_benchmark_report.sh runs vLLM's benchmark scripts, and waits for vllm serve with curl.
    for kind in latency throughput serving; do
      [ -f "/app/vllm/benchmarks/benchmark_$kind.py" ] || echo "/app/vllm/benchmarks/benchmark_$kind.py (MAD's vllm_benchmark_report.sh runs it)"
    done
    command -v curl >/dev/null 2>&1 || echo "curl (MAD's vllm_benchmark_report.sh waits for vllm serve with it)"
    ;;
  run-yaml)
    # run.sh installs with pip; run_vllm.py reads YAML, downloads with hf, runs vllm serve
    # and vllm bench, and waits for the server with curl.
    if command -v vllm >/dev/null 2>&1; then
      vllm bench --help >/dev/null 2>&1 || echo "vllm bench (MAD's run_vllm.py runs it; the image's vllm command lacks it)"
    else
      echo "the vllm command (MAD's run_vllm.py runs vllm serve and vllm bench)"
    fi
    command -v python3 >/dev/null 2>&1 && { python3 -c "import yaml" >/dev/null 2>&1 || echo "PyYAML (python3 -c 'import yaml' fails; MAD's run_vllm.py reads its config with it)"; }
    command -v hf >/dev/null 2>&1 || echo "the hf command (MAD's run_vllm.py downloads the model with hf download)"
    command -v pip >/dev/null 2>&1 || echo "pip (MAD's run.sh installs its extra packages with it)"
    command -v curl >/dev/null 2>&1 || echo "curl (MAD's run_vllm.py waits for vllm serve with it)"
    ;;
  *)
    if [ ! -f /app/vllm/benchmarks/benchmark_latency.py ] && ! command -v vllm >/dev/null 2>&1; then
      echo "vLLM's benchmark entry points (/app/vllm/benchmarks/benchmark_*.py or the vllm command)"
    fi
    ;;
esac
command -v python3 >/dev/null 2>&1 && python3 -c "import importlib.metadata as m; print('vllm-version: ' + m.version('vllm'))" 2>/dev/null
exit 0
