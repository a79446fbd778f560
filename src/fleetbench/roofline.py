"""Physical plausibility: the fastest a configuration can possibly run on the GPUs it had.

A benchmark result is compared with a *roofline*: the bound set by the GPU's peak HBM
bandwidth (every forward pass reads the weights, every generated token its sequence's KV
cache) and its peak matrix rate (every token processed costs ``2 x active parameters``
FLOPs). A time below its lower bound, or a throughput above its upper bound, cannot have
been measured on that hardware: the host is misconfigured (not the GPUs the plan says) or a
parser read the wrong column. Such a result is ``implausible`` and fails the gate. Every
other result gets its fraction of the bound ("decode at 61 % of HBM roofline").

**The constants** (one table per GPU model, :data:`GPU_SPECS`), with their sources:

=============================  ===========  ===========  ==========================
                               MI300X       MI325X       source
=============================  ===========  ===========  ==========================
HBM peak bandwidth per GPU     5.3 TB/s     6.0 TB/s     [D1] [D2]
HBM capacity                   192 GB       256 GB       [D1] [D2]
compute units per GPU          304          304          [D1] [D2] [W1]
peak FP16/BF16 dense per GPU   1307.4 TF/s  1307.4 TF/s  [D1] [D2]
peak FP8 dense per GPU         2614.9 TF/s  2614.9 TF/s  [D1] [D2]
peak engine clock              2100 MHz     2100 MHz     [D1] [D2]; KFD
                                                         ``max_engine_clk_fcompute``
=============================  ===========  ===========  ==========================

Per compute unit that is 1307.4 TF/s / 304 = 4.30 TF/s FP16/BF16 (2048 FLOP per clock at
2.1 GHz, [W1]) and twice that for FP8.

Partitions ([S5] [S8], the MI300X partitioning guide and the ROCm blog on partition modes):
the GPU has 8 XCDs of 38 active CUs on 4 I/O dies, each I/O die with 2 of the 8 HBM stacks.

==========  =====================  ============  ======================================
compute     partitions per GPU     CUs each      memory each partition can reach
==========  =====================  ============  ======================================
SPX         1                      304           NPS1: all 8 stacks (share 1)
DPX         2                      152           NPS1: all 8 stacks (share 1)
QPX         4                      76            NPS1: 1; NPS4: its quadrant, 2 stacks (1/4)
CPX         8                      38            NPS1: 1; NPS4: its quadrant, 2 stacks (1/4),
                                                 shared with the other CPX partition there
==========  =====================  ============  ======================================

The bandwidth bound of a slot is what its partitions' memory can deliver at most: in NPS1
memory is interleaved over every stack, so one partition alone could in principle draw the
whole GPU's bandwidth (a loose bound, never a false alarm); in NPS4 a partition's memory
lives in its quadrant. Partitions of one GPU never exceed the GPU's bandwidth together.
Slots take contiguous logical GPUs (:mod:`fleetbench.plan`), and partitions of one GPU are
contiguous, in quadrant order: ``tp`` partitions span ``tp // per_gpu`` whole GPUs plus the
first quadrants of one more. The *fair share* (all partitions busy at once, as when every
slot of a host runs) is ``1 / partitions per GPU``; :func:`partition_share` gives it for
mode-aware thresholds.

Sources:

- [D1] AMD Instinct MI300X accelerator data sheet (amd.com, 2023): 304 CUs, 192 GB HBM3,
  5.3 TB/s, 1307.4 TFLOPS FP16/BF16 and 2614.9 TFLOPS FP8 (dense), 2100 MHz.
- [D2] AMD Instinct MI325X accelerator data sheet (amd.com, 2024): 304 CUs, 256 GB HBM3E,
  6 TB/s, the same peak rates.
- [W1] AMD CDNA 3 architecture white paper (2023): 8 XCDs x 38 active CUs, 4 I/O dies with
  2 HBM stacks each; per-CU matrix rates.
- [S5] AMD's MI300X GPU partitioning guide (ROCm/amdgpu-docs) and [S8] the ROCm blog "Deep
  dive into the MI300 compute and memory partition modes": CUs per partition (38 in CPX),
  NPS4 = one memory partition per quadrant.
- PCI device ids from the PCI ID repository (pci-ids.ucw.cz, vendor 1002): 74a1 MI300X,
  74b5 MI300X VF, 74a5 MI325X, 74b9 MI325X VF.

**The bounds** for a configuration (model, dtype, tp, batch, input/output lengths) on a slot
of ``tp`` partitions (``P`` active parameters, ``W`` weight bytes and ``K`` KV cache bytes per
token from :mod:`fleetbench.fit`; ``B`` the slot's HBM bandwidth, ``F`` its peak rate):

- one decode step of ``b`` sequences with context ``c``: ``max((W + b·c·K) / B, 2·P·b / F)``
  (``c`` = the input length: the shortest context any step has);
- prefill of ``b`` prompts of ``n`` tokens: ``max(W / B, 2·P·b·n / F)``;
- ``latency`` (one batch) ≥ prefill + (output - 1) decode steps; ``latency_per_token`` ≥ that
  over the output length; serving ``ttft`` ≥ prefill of one prompt, ``tpot``/``itl`` ≥ one
  decode step of one sequence, ``e2el`` ≥ ttft + (output - 1) · tpot;
- ``throughput_total`` ≤ ``F / (2·P)`` (every token costs ``2·P`` FLOPs) and ≤ the generated
  bound x (input + output) / output; ``throughput_gen`` ≤ ``B / (n·K + W / r)`` (each
  generated token reads its sequence's KV cache; ``r`` = the number of prompts shares one
  read of the weights) and ≤ ``F / (2·P)``.

Bytes: the dtype's bytes per weight and per KV value (FP8 KV when the weights are FP8: the
smaller, so the bound stays a bound). MoE models count their active experts only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from fleetbench.errors import FleetbenchError
from fleetbench.fit import (
    DTYPE_BYTES,
    ModelConfig,
    count_parameters,
    kv_cache_per_token_bytes,
    normalize_dtype,
    resolve_model,
)

TB: Final = 10**12
#: A result beyond its bound by more than this share is implausible (timer granularity of
#: the benchmark's own clock; peak rates are hard limits).
TOLERANCE: Final = 0.0

PARTITIONS_PER_GPU: Final[Mapping[str, int]] = {"SPX": 1, "DPX": 2, "QPX": 4, "CPX": 8}
#: Memory partitions (NUMA domains) per GPU in each memory mode.
MEMORY_DOMAINS: Final[Mapping[str, int]] = {"NPS1": 1, "NPS4": 4}


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model's peak figures (see the module docstring for the sources)."""

    name: str
    hbm_bytes_per_s: float
    hbm_bytes: int
    compute_units: int
    #: Dense matrix peak per GPU (FLOP/s) by canonical dtype.
    peak_flops: Mapping[str, float]
    engine_clock_mhz: int
    pci_device_ids: tuple[int, ...]
    sources: tuple[str, ...]

    def flops_per_cu(self, dtype: str) -> float:
        """Peak dense FLOP/s of one compute unit in ``dtype``."""
        return self.peak_flops[dtype] / self.compute_units


_CDNA3_PEAK = {"float16": 1307.4e12, "bfloat16": 1307.4e12, "float8": 2614.9e12}

GPU_SPECS: Final[Mapping[str, GpuSpec]] = {
    "MI300X": GpuSpec(
        name="MI300X", hbm_bytes_per_s=5.3 * TB, hbm_bytes=192 * 10**9, compute_units=304,
        peak_flops=_CDNA3_PEAK, engine_clock_mhz=2100, pci_device_ids=(0x74A1, 0x74B5),
        sources=("AMD Instinct MI300X data sheet", "AMD CDNA 3 white paper",
                 "MI300X GPU partitioning guide")),
    "MI325X": GpuSpec(
        name="MI325X", hbm_bytes_per_s=6.0 * TB, hbm_bytes=256 * 10**9, compute_units=304,
        peak_flops=_CDNA3_PEAK, engine_clock_mhz=2100, pci_device_ids=(0x74A5, 0x74B9),
        sources=("AMD Instinct MI325X data sheet", "AMD CDNA 3 white paper",
                 "MI300X GPU partitioning guide")),
}


def gpu_model_of(device_id: int | None = None, product_name: str | None = None) -> str | None:
    """The :data:`GPU_SPECS` key of a device: by PCI device id, else by its product name."""
    for spec in GPU_SPECS.values():
        if device_id is not None and device_id in spec.pci_device_ids:
            return spec.name
    text = (product_name or "").upper()
    # MI325X before MI300X: neither name contains the other, but keep the longest first.
    for name in sorted(GPU_SPECS, key=len, reverse=True):
        if name in text:
            return name
    return None


class NoBound(FleetbenchError):
    """No roofline for a result: unknown GPU, mode, model, dtype or metric."""


def compute_units(spec: GpuSpec, compute: str) -> int:
    """CUs of one partition in ``compute`` mode (38 in CPX on MI300X)."""
    return spec.compute_units // _per_gpu(compute)


def _per_gpu(compute: str) -> int:
    try:
        return PARTITIONS_PER_GPU[compute]
    except KeyError:
        raise NoBound(f"unknown compute partition mode {compute!r}") from None


def memory_share(compute: str, memory: str, partitions: int) -> float:
    """The share of one GPU's HBM bandwidth that ``partitions`` contiguous partitions of it
    can draw at most (1 in NPS1; the quadrants they cover, a quarter each, in NPS4)."""
    per_gpu = _per_gpu(compute)
    if memory not in MEMORY_DOMAINS:
        raise NoBound(f"unknown memory partition mode {memory!r}")
    if not 1 <= partitions <= per_gpu:
        raise ValueError(f"{partitions} partitions of a {compute} GPU")
    domains = MEMORY_DOMAINS[memory]
    if domains == 1:
        return 1.0
    if per_gpu < domains:
        raise NoBound(f"{compute} with {memory} is not a mode the driver offers")
    per_domain = per_gpu // domains
    return math.ceil(partitions / per_domain) / domains


def partition_share(compute: str) -> float:
    """A partition's fair share of a GPU (its CUs; its bandwidth when all are busy)."""
    return 1 / _per_gpu(compute)


@dataclass(frozen=True)
class Slot:
    """The hardware one configuration ran on: ``tp`` partitions of ``spec`` in a mode."""

    spec: GpuSpec
    compute: str
    memory: str
    tp: int

    @property
    def bandwidth(self) -> float:
        """HBM bytes per second the slot's partitions can read at most."""
        per_gpu = _per_gpu(self.compute)
        whole, rest = divmod(self.tp, per_gpu)
        share = whole + (memory_share(self.compute, self.memory, rest) if rest else 0.0)
        return share * self.spec.hbm_bytes_per_s

    def flops(self, dtype: str) -> float:
        """Peak dense FLOP/s of the slot's CUs in ``dtype``."""
        if dtype not in self.spec.peak_flops:
            raise NoBound(f"no peak rate for {dtype} on {self.spec.name}")
        return self.tp * compute_units(self.spec, self.compute) * self.spec.flops_per_cu(dtype)


@dataclass(frozen=True)
class ModelBytes:
    """What one token costs a model: active parameters, weight bytes, KV bytes per token."""

    name: str
    active_parameters: int
    weight_bytes: int
    kv_bytes_per_token: int


def _active_config(config: ModelConfig) -> ModelConfig:
    """The config with only the experts each token uses (MoE), for the per-token cost."""
    per_token = config.values.get("num_experts_per_tok")
    if not isinstance(per_token, int) or per_token <= 0:
        return config
    values = dict(config.values)
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if isinstance(values.get(key), int):
            values[key] = min(int(values[key]), per_token)
    return ModelConfig(name=config.name, source=config.source, values=values)


def model_bytes(config: ModelConfig, dtype: str) -> ModelBytes:
    """Active parameters and the bytes a forward pass must read, in ``dtype``."""
    dtype = normalize_dtype(dtype)
    width = DTYPE_BYTES[dtype]
    active = count_parameters(_active_config(config))
    return ModelBytes(name=config.name, active_parameters=active, weight_bytes=active * width,
                      kv_bytes_per_token=kv_cache_per_token_bytes(config, width))


def lookup_model(model: str, dtype: str) -> ModelBytes:
    """:func:`model_bytes` of a model named as a report names it (no network)."""
    try:
        return model_bytes(resolve_model(model, env={}), dtype)
    except FleetbenchError as exc:
        raise NoBound(f"no model figures for {model} ({dtype}): {exc}") from None


# --- the bounds ------------------------------------------------------------------------------


def _compute_dtype(dtype: str) -> str:
    try:
        canonical = normalize_dtype(dtype)
    except FleetbenchError:
        raise NoBound(f"unknown dtype {dtype!r}") from None
    if canonical == "float32":
        raise NoBound("float32 runs have no matrix-rate bound here")
    return canonical


def decode_step_s(slot: Slot, model: ModelBytes, dtype: str, batch: int, context: int) -> float:
    """Lower bound of one decode step: ``batch`` sequences of ``context`` tokens each."""
    read = model.weight_bytes + batch * context * model.kv_bytes_per_token
    work = 2 * model.active_parameters * batch
    return max(read / slot.bandwidth, work / slot.flops(_compute_dtype(dtype)))


def prefill_s(slot: Slot, model: ModelBytes, dtype: str, batch: int, tokens: int) -> float:
    """Lower bound of the prefill of ``batch`` prompts of ``tokens`` tokens."""
    work = 2 * model.active_parameters * batch * tokens
    return max(model.weight_bytes / slot.bandwidth, work / slot.flops(_compute_dtype(dtype)))


def compute_tokens_per_s(slot: Slot, model: ModelBytes, dtype: str) -> float:
    """Upper bound of tokens processed per second (prefill or decode): ``F / 2P``."""
    return slot.flops(_compute_dtype(dtype)) / (2 * model.active_parameters)


def generated_tokens_per_s(slot: Slot, model: ModelBytes, dtype: str, input_len: int,
                           requests: int) -> float:
    """Upper bound of generated tokens per second (HBM and compute)."""
    per_token = input_len * model.kv_bytes_per_token + model.weight_bytes / max(requests, 1)
    return min(slot.bandwidth / per_token, compute_tokens_per_s(slot, model, dtype))


@dataclass(frozen=True)
class Bound:
    """The roofline of one configuration and metric: its value and which roof sets it."""

    value: float
    unit: str
    #: ``lower`` for times (the result must be at least this), ``upper`` for throughputs.
    kind: str
    roof: str  # "HBM" or "compute"

    def fraction(self, measured: float) -> float | None:
        """How close ``measured`` comes to the bound (1 = at the bound, > 1 beyond it)."""
        if measured <= 0:
            return None
        return self.value / measured if self.kind == "lower" else measured / self.value

    def implausible(self, measured: float) -> bool:
        """True when ``measured`` lies beyond the bound."""
        fraction = self.fraction(measured)
        return fraction is not None and fraction > 1 + TOLERANCE


def bound(slot: Slot, model: ModelBytes, *, scenario: str, metric: str, dtype: str,
          batch_size: int | None, num_prompts: int | None, max_concurrency: int | None,
          input_len: int, output_len: int) -> Bound:
    """The roofline of one configuration's ``metric`` on ``slot`` (NoBound when none)."""
    out = max(output_len, 1)
    if metric in ("latency", "latency_per_token") and scenario == "latency":
        batch = batch_size or 1
        first = prefill_s(slot, model, dtype, batch, input_len)
        step = decode_step_s(slot, model, dtype, batch, input_len)
        total = first + (out - 1) * step
        roof = _roof(slot, model, dtype, batch)
        if metric == "latency":
            return Bound(total * 1000, "ms", "lower", roof)
        return Bound(total * 1000 / out, "ms", "lower", roof)
    if metric == "ttft_median":
        return Bound(prefill_s(slot, model, dtype, 1, input_len) * 1000, "ms", "lower",
                     _roof(slot, model, dtype, input_len))
    if metric in ("tpot_median", "itl_median"):
        return Bound(decode_step_s(slot, model, dtype, 1, input_len) * 1000, "ms", "lower",
                     _roof(slot, model, dtype, 1))
    if metric == "e2el_median":
        total = prefill_s(slot, model, dtype, 1, input_len) + (out - 1) * decode_step_s(
            slot, model, dtype, 1, input_len)
        return Bound(total * 1000, "ms", "lower", _roof(slot, model, dtype, 1))
    requests = max_concurrency or num_prompts or batch_size or 1
    if metric in ("throughput_gen", "throughput_total", "throughput"):
        generated = generated_tokens_per_s(slot, model, dtype, input_len, requests)
        compute = compute_tokens_per_s(slot, model, dtype)
        if metric == "throughput_gen":
            return Bound(generated, "tok/s", "upper",
                         "compute" if generated >= compute else "HBM")
        # ``throughput`` (an era B/C perf file) may be either: the total's bound covers both.
        total = min(compute, generated * (input_len + out) / out)
        return Bound(total, "tok/s", "upper", "compute" if total >= compute else "HBM")
    raise NoBound(f"no roofline for {scenario} {metric}")


def _roof(slot: Slot, model: ModelBytes, dtype: str, tokens: int) -> str:
    """Which roof bounds a pass over ``tokens`` tokens: HBM or compute."""
    read = model.weight_bytes / slot.bandwidth
    work = 2 * model.active_parameters * tokens / slot.flops(_compute_dtype(dtype))
    return "HBM" if read >= work else "compute"
