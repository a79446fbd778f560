"""The stand-in vLLM's numbers are physically plausible: below fleetbench's roofline.

The image has no fleetbench package, so its physics (``vllm/_lab.py``) copies the few
constants of :mod:`fleetbench.roofline` and the model figures of :mod:`fleetbench.fit`.
These tests hold the copy to the source: the same figures, the same slot, and for a grid
of models, dtypes, TP sizes and the lab's benchmark points every number the entry points
compute at factor 1.0 (on the fastest host and slot of the spread) is below 80 % of its
roofline on the slowest slot the lab gives (CPX/NPS4), with room left for a planted fast
host (factor 1.5).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fleetbench.fit import builtin_model_ids
from fleetbench.roofline import (
    GPU_SPECS,
    MEMORY_DOMAINS,
    PARTITIONS_PER_GPU,
    NoBound,
    Slot,
    lookup_model,
)
from tests.unit.lab_vllm.physics import CEILING, fastest_speed, fraction, lab_slot, standin

lab = standin("_lab")
latency = standin("benchmarks.latency")
throughput = standin("benchmarks.throughput")
serve = standin("benchmarks.serve")

DTYPES = ("float16", "bfloat16", "float8")
TPS = (1, 2, 4, 8)
# The lab's report script (era D), fleetbench's run.sh configs, the lab's default YAML's
# concurrency 8 (10 prompts a request in flight) and a point of many waves.
LATENCY = [(bs, inp, out) for bs in (1, 8) for inp in (128, 2048) for out in (128, 2048)]
THROUGHPUT = [(4000, 128, 128), (3000, 128, 2048), (3000, 2048, 128), (1500, 2048, 2048),
              *((1000, inp, out) for inp in (128, 2048) for out in (128, 2048))]
SERVING = [*((252, inp, out, 128) for inp in (128, 2048) for out in (128, 2048)),
           (80, 1024, 1024, 8), (640, 1024, 1024, 64)]
#: The models of the grid: one of each distinct figure among fleetbench's built-in models.
MODELS = tuple({lab.model_figures(m): m for m in builtin_model_ids()}.values())


@dataclass(frozen=True)
class Point:
    """One number the stand-in computed and its fraction of the roofline."""

    label: str
    model: str
    metric: str
    fraction: float


def _engine_args(model: str, tp: int, dtype: str) -> list[str]:
    quantised = ["--dtype", "float16", "--quantization", "fp8"] if dtype == "float8" else []
    return ["--model", model, "-tp", str(tp), *(quantised or ["--dtype", dtype])]


def _headroom(settings: object) -> float:
    """How much faster the fastest host and slot of the spread are than ``settings``'."""
    return fastest_speed() / float(lab.speed(settings))


def _with(args: argparse.Namespace, **values: int) -> argparse.Namespace:
    """``args`` parsed once, with a point's sizes (parsing each point is slow)."""
    return argparse.Namespace(**{**vars(args), **values})


def _latency_points(model: str, tp: int, dtype: str, settings: object) -> Iterator[Point]:
    parsed = latency.parse([*_engine_args(model, tp, dtype), "--num-iters", "5"])
    for bs, inp, out in LATENCY:
        args = _with(parsed, batch_size=bs, input_len=inp, output_len=out)
        ms = 1000 * latency.results(args, settings)["avg_latency"]
        shape = {"model": model, "dtype": dtype, "tp": tp, "scenario": "latency",
                 "batch_size": bs, "input_len": inp, "output_len": out}
        for metric, value in (("latency", ms), ("latency_per_token", ms / out)):
            yield Point(f"{model} {dtype} tp{tp} latency bs{bs} {inp}/{out} {metric}", model,
                        metric, fraction(value, metric=metric, **shape) * _headroom(settings))


def _throughput_points(model: str, tp: int, dtype: str, settings: object) -> Iterator[Point]:
    parsed = throughput.parse([*_engine_args(model, tp, dtype), "--input-len", "1",
                               "--output-len", "1"])
    for prompts, inp, out in THROUGHPUT:
        args = _with(parsed, num_prompts=prompts, input_len=inp, output_len=out)
        result = throughput.results(args, settings)
        generated = prompts * out / result["elapsed_time"]
        shape = {"model": model, "dtype": dtype, "tp": tp, "scenario": "throughput",
                 "num_prompts": prompts, "input_len": inp, "output_len": out}
        for metric, value in (("throughput_total", result["tokens_per_second"]),
                              ("throughput_gen", generated)):
            yield Point(f"{model} {dtype} tp{tp} throughput {prompts}x{inp}/{out} {metric}",
                        model, metric,
                        fraction(value, metric=metric, **shape) * _headroom(settings))


def _serving_points(model: str, tp: int, dtype: str, settings: object) -> Iterator[Point]:
    args = argparse.Namespace(model=model, tensor_parallel_size=tp, pipeline_parallel_size=1,
                              dtype="float16" if dtype == "float8" else dtype,
                              quantization="fp8" if dtype == "float8" else None)
    header = lab.engine(model, tp, args.dtype, dtype == "float8").header()
    parsed = serve.parse(["--model", model, "--dataset-name", "random",
                          "--percentile-metrics", "ttft,tpot,itl,e2el"])
    for prompts, inp, out, mc in SERVING:
        client = _with(parsed, num_prompts=prompts, random_input_len=inp,
                       random_output_len=out, max_concurrency=mc)
        outcomes = [serve.Outcome(True, " lab", "", header)] * prompts
        test = serve.Outcome(True, " lab", "", header)
        result = serve.results(client, settings, outcomes, serve.server_engine(client, test))
        shape = {"model": model, "dtype": dtype, "tp": tp, "scenario": "serving",
                 "num_prompts": prompts, "max_concurrency": mc, "input_len": inp,
                 "output_len": out}
        for metric, key in (("throughput_total", "total_token_throughput"),
                            ("throughput_gen", "output_throughput"),
                            ("ttft_median", "median_ttft_ms"), ("tpot_median", "median_tpot_ms"),
                            ("itl_median", "median_itl_ms"), ("e2el_median", "median_e2el_ms")):
            yield Point(f"{model} {dtype} tp{tp} serving {prompts}x{inp}/{out} mc{mc} {metric}",
                        model, metric,
                        fraction(result[key], metric=metric, **shape) * _headroom(settings))


@pytest.fixture(scope="module")
def points() -> list[Point]:
    """Every number of the grid at factor 1.0, as on the fastest host and slot."""
    settings = lab.Settings(host="lab01", factor=1.0)
    found: list[Point] = []
    for model in MODELS:
        for dtype in DTYPES:
            for tp in TPS:
                for points_of in (_latency_points, _throughput_points, _serving_points):
                    found += points_of(model, tp, dtype, settings)
    return found


def test_the_model_table_is_fleetbenchs() -> None:
    for model in builtin_model_ids():
        parameters, kv_values = lab.model_figures(model)
        figures = lookup_model(model, "float8")  # one byte per weight and per KV value
        # rounded up, never down: a bigger model is a slower one
        assert figures.active_parameters <= parameters <= 1.001 * figures.active_parameters, model
        assert kv_values == figures.kv_bytes_per_token, model


def test_a_model_the_table_lacks_gets_its_size_and_a_generous_kv_cache() -> None:
    parameters, kv_values = lab.model_figures("NousResearch/Meta-Llama-3-8B")
    assert parameters == 8e9
    # more KV per parameter than any model of the table (Llama 2 7B, no GQA, has most)
    assert kv_values / parameters >= max(kv / p for p, kv in lab.MODELS.values())


@pytest.mark.parametrize("tp", range(1, 17))
def test_the_standins_slot_is_the_rooflines_cpx_nps4_slot(tp: int) -> None:
    slot = lab_slot(tp)
    for width, dtype in ((2, "float16"), (1, "float8")):
        engine = lab.Engine(parameters=8e9, kv_values=65536, width=width, tp=tp)
        assert engine.bandwidth == pytest.approx(slot.bandwidth, rel=1e-12)
        assert engine.flops == pytest.approx(slot.flops(dtype), rel=1e-12)


@pytest.mark.parametrize("tp", range(1, 17))
def test_cpx_nps4_is_the_slowest_slot_of_every_mode(tp: int) -> None:
    """Numbers plausible on CPX/NPS4 stay plausible in the other modes and on MI325X: no
    slot of the same width reads HBM slower or computes slower."""
    slowest = lab_slot(tp)
    compared = 0
    for spec in GPU_SPECS.values():
        for compute in PARTITIONS_PER_GPU:
            for memory in MEMORY_DOMAINS:
                slot = Slot(spec, compute, memory, tp)
                try:
                    bandwidth = slot.bandwidth
                except NoBound:
                    continue  # not a mode the driver offers (SPX/DPX with NPS4)
                compared += 1
                assert bandwidth >= slowest.bandwidth, (spec.name, compute, memory)
                for dtype in ("float16", "bfloat16", "float8"):
                    assert slot.flops(dtype) >= slowest.flops(dtype), (spec.name, compute)
    assert compared >= 2 * 6  # SPX, DPX, QPX, CPX with NPS1; QPX, CPX with NPS4


def test_every_number_is_below_the_roofline(points: list[Point]) -> None:
    assert len(points) > 10_000
    over = [p for p in points if not p.fraction < CEILING]
    assert not over, "\n".join(f"{p.label}: {p.fraction:.0%} of roofline" for p in over[:20])


def test_a_host_planted_half_again_as_fast_stays_plausible(points: list[Point]) -> None:
    worst = max(points, key=lambda p: p.fraction)
    assert 1.5 * worst.fraction < 1, f"{worst.label}: {worst.fraction:.0%} of roofline"


def test_per_token_times_of_known_models_are_realistic(points: list[Point]) -> None:
    """Not absurdly slow either: vLLM decodes an 8B or 70B model at 25-50 % of HBM
    roofline (the fixed overheads weigh most where the model is small and wide)."""
    big = [p for p in points if p.metric == "latency_per_token"
           and ("-8B" in p.model or "-70B" in p.model)]
    assert big
    for point in big:
        assert 0.2 < point.fraction < 0.5, point.label
