#!/usr/bin/env python3
"""fleetbench lab stand-in for vLLM's benchmarks/benchmark_throughput.py.

The benchmark itself is vllm.benchmarks.throughput in this image's vllm package.
"""

import sys

from vllm.benchmarks import throughput

SCRIPT = "/app/vllm/benchmarks/benchmark_throughput.py"

if __name__ == "__main__":
    sys.exit(throughput.main(throughput.parse(sys.argv[1:]), SCRIPT))
