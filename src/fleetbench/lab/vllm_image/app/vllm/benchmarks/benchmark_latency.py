#!/usr/bin/env python3
"""fleetbench lab stand-in for vLLM's benchmarks/benchmark_latency.py.

The benchmark itself is vllm.benchmarks.latency in this image's vllm package.
"""

import sys

from vllm.benchmarks import latency

SCRIPT = "/app/vllm/benchmarks/benchmark_latency.py"

if __name__ == "__main__":
    sys.exit(latency.main(latency.parse(sys.argv[1:]), SCRIPT))
