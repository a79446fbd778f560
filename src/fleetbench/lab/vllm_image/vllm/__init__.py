"""fleetbench lab: a stand-in for vLLM in the lab's ``rocm/vllm`` image.

It does no GPU work. Its entry points (``/app/vllm/benchmarks/benchmark_*.py`` and the
``vllm`` command) take vLLM's arguments, fail where vLLM would, obey the lab host's fault
settings, and write vLLM's JSON shapes with synthetic numbers that depend on the model,
the tensor-parallel size, the dtype, the host and the GPU slot. ``vllm.LLM`` and
``vllm.SamplingParams`` generate offline (the correctness probe's way in) with the lab's
model (``vllm._answers``). Standard library only.
"""

from typing import Any

__version__ = "0.9.1+fleetbench.lab"


def __getattr__(name: str) -> Any:
    # Imported on first use, as vLLM's own package does: the benchmarks never pay for them.
    if name == "LLM":
        from vllm.entrypoints.llm import LLM

        return LLM
    if name == "SamplingParams":
        from vllm.sampling_params import SamplingParams

        return SamplingParams
    raise AttributeError(f"module 'vllm' has no attribute {name!r}")
