#!/usr/bin/env python3
"""fleetbench lab stand-in for vLLM's benchmarks/benchmark_serving.py.

The benchmark itself is vllm.benchmarks.serve in this image's vllm package.
"""

import sys

from vllm.benchmarks import serve

SCRIPT = "/app/vllm/benchmarks/benchmark_serving.py"

if __name__ == "__main__":
    sys.exit(serve.main(serve.parse(sys.argv[1:]), SCRIPT))
