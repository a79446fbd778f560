# Runs inside the pulled image (docker run --rm --network none): prints one line per piece
# ROCm/MAD's vLLM scripts need that the image lacks; nothing when it has them all. Then
# vLLM's version as `vllm-version: X` (from its distribution metadata: importing vLLM
# would load torch), for the run's attribution.
command -v python3 >/dev/null 2>&1 || echo "python3"
command -v python3 >/dev/null 2>&1 && { python3 -c "import pandas" >/dev/null 2>&1 || echo "pandas (python3 -c 'import pandas' fails)"; }
command -v bash >/dev/null 2>&1 || echo "bash"
if [ ! -f /app/vllm/benchmarks/benchmark_latency.py ] && ! command -v vllm >/dev/null 2>&1; then
  echo "vLLM's benchmark entry points (/app/vllm/benchmarks/benchmark_*.py or the vllm command)"
fi
command -v python3 >/dev/null 2>&1 && python3 -c "import importlib.metadata as m; print('vllm-version: ' + m.version('vllm'))" 2>/dev/null
exit 0
