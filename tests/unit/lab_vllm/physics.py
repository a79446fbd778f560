"""The lab's numbers against fleetbench's roofline: the stand-in vLLM's physics module
imported here (it is plain Python in the image), and each number's fraction of its bound
on the slowest slot the lab gives (CPX partitions of MI300X in NPS4)."""

from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType

from fleetbench.roofline import GPU_SPECS, ModelBytes, Slot, bound, lookup_model
from tests.conftest import REPO

STANDINS = REPO / "src" / "fleetbench" / "lab" / "vllm_image"
#: Every number of the lab stays below this share of its roofline at factor 1.0.
CEILING = 0.8


def standin(module: str) -> ModuleType:
    """A module of the image's stand-in ``vllm`` package (``_lab``, ``benchmarks.latency``)."""
    if str(STANDINS) not in sys.path:
        sys.path.append(str(STANDINS))
    return importlib.import_module(f"vllm.{module}")


def fastest_speed() -> float:
    """The fastest host and slot the lab's spread gives at factor 1.0."""
    lab = standin("_lab")
    return float((1 + lab.HOST_SPREAD) * (1 + lab.SLOT_SPREAD))


def lab_slot(tp: int) -> Slot:
    """``tp`` CPX partitions of MI300X in NPS4, as the lab's hosts have by default."""
    return Slot(GPU_SPECS["MI300X"], "CPX", "NPS4", tp)


@functools.cache
def model_bytes(model: str, dtype: str) -> ModelBytes:
    return lookup_model(model, dtype)


def fraction(value: float, *, model: str, dtype: str, tp: int, scenario: str, metric: str,
             input_len: int, output_len: int, batch_size: int | None = None,
             num_prompts: int | None = None, max_concurrency: int | None = None) -> float:
    """How close ``value`` comes to its roofline on the lab's slot (1 = at the bound)."""
    item = bound(lab_slot(tp), model_bytes(model, dtype), scenario=scenario, metric=metric,
                 dtype=dtype, batch_size=batch_size, num_prompts=num_prompts,
                 max_concurrency=max_concurrency, input_len=input_len, output_len=output_len)
    share = item.fraction(value)
    assert share is not None, (model, scenario, metric, value)
    return share
