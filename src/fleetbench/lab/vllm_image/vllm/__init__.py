"""fleetbench lab: a stand-in for vLLM in the lab's ``rocm/vllm`` image.

It does no GPU work. Its entry points (``/app/vllm/benchmarks/benchmark_*.py`` and the
``vllm`` command) take vLLM's arguments, fail where vLLM would, obey the lab host's fault
settings, and write vLLM's JSON shapes with synthetic numbers that depend on the model,
the tensor-parallel size, the dtype, the host and the GPU slot. Standard library only.
"""

__version__ = "0.9.1+fleetbench.lab"
