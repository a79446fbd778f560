"""The stand-in MAD script's numbers are the stand-in vLLM's, and physically plausible.

The script runs under busybox (awk), so it carries its own copy of the image's physics and
model table (``vllm/_lab.py``). Here every row it writes for a grid of models, dtypes and
TP sizes is read back with fleetbench's own report parser and compared with what the
stand-in vLLM computes for the same point, host and slot, and with its roofline on the lab's
slowest slot (CPX/NPS4): below 80 % at factor 1.0 on the fastest host and slot of the spread.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbench.lab.mad import ERA_TAGS, MadRepo
from fleetbench.reports.parse import parse_file
from fleetbench.reports.records import Record
from tests.unit.lab_mad.conftest import Checkout, script_env
from tests.unit.lab_vllm.physics import CEILING, fastest_speed, fraction, standin

lab = standin("_lab")

# Models with figures of every kind: GQA, MHA (the biggest KV cache per token), MoE whose
# name says no size (DeepSeek) or a misleading one (Mixtral's 8x7B).
MODELS = ("amd/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct",
          "meta-llama/Llama-2-7b-chat-hf", "deepseek-ai/DeepSeek-R1",
          "mistralai/Mixtral-8x7B-Instruct-v0.1")
# bfloat16 takes the float16 path of the script (two bytes a weight): the stand-in vLLM's
# grid covers it.
DTYPES = ("float16", "float8")
TPS = (1, 2, 4, 8)
HOST = "lab01"


def _speed(devices: str) -> float:
    previous = os.environ.get("HIP_VISIBLE_DEVICES")
    os.environ["HIP_VISIBLE_DEVICES"] = devices
    try:
        return float(lab.speed(lab.Settings(host=HOST)))
    finally:
        if previous is None:
            del os.environ["HIP_VISIBLE_DEVICES"]
        else:
            os.environ["HIP_VISIBLE_DEVICES"] = previous


def _standin_value(record: Record, model: str, speed: float) -> float:
    """What the image's stand-in vLLM computes for the record's point (ms or tok/s)."""
    engine = lab.engine(model, record.tp, record.dtype, record.dtype == "float8")
    inp, out = record.input_len, record.output_len
    if record.scenario == "latency":
        assert record.batch_size is not None
        ms = 1000 * engine.batch_latency_s(record.batch_size, inp, out) / speed
        return ms if record.metric == "latency" else ms / out
    assert record.num_prompts is not None
    prompts = record.num_prompts
    if record.scenario == "throughput":
        seconds = engine.offline_elapsed_s(prompts, inp, out) / speed
    else:
        batch = max(1, min(record.max_concurrency or prompts, prompts, lab.MAX_NUM_SEQS))
        full, rest = divmod(prompts, batch)
        seconds = (full * engine.wave_s(batch, inp, out)
                   + (engine.wave_s(rest, inp, out) if rest else 0.0)) / speed
        prefill = engine.prefill_s(batch, inp) * (batch + 1) / (2 * batch)
        ttft = 1000 * max(engine.prefill_s(1, inp), prefill) / speed
        tpot = 1000 * engine.decode_step_s(batch, inp + out / 2) / speed
        times = {"ttft_median": ttft, "tpot_median": tpot, "itl_median": tpot,
                 "e2el_median": ttft + (out - 1) * tpot}
        if record.metric in times:
            return times[record.metric]
    tokens = prompts * (out if record.metric == "throughput_gen" else inp + out)
    return tokens / seconds


def _rows(busybox_bin: Path, checkout: Checkout, lab_env: Path
          ) -> Iterator[tuple[str, str, float, Record]]:
    lab_env.write_text(f"host={HOST}\n")
    for model in MODELS:
        for dtype in DTYPES:
            for tp in TPS:
                devices = ",".join(str(gpu) for gpu in range(tp))
                done = subprocess.run(
                    [str(busybox_bin / "bash"), "./vllm_benchmark_report.sh", "-s", "all",
                     "-m", model, "-g", str(tp), "-d", dtype],
                    cwd=checkout.workdir, env=script_env(busybox_bin, lab_env, devices=devices),
                    capture_output=True, text=True, timeout=30, check=False)
                assert done.returncode == 0, done.stderr
                name = model.split("/")[1]
                for kind in ("latency", "throughput", "serving"):
                    summary = checkout.summary(dtype) / f"{name}_{kind}_report.csv"
                    # the summary gathers the rows of every tp run so far: this run's only
                    for record in parse_file(summary):
                        if record.tp == tp:
                            yield model, devices, _speed(devices), record


@pytest.fixture(scope="module")
def rows(mad_repo: MadRepo, busybox_bin: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> list[tuple[str, str, float, Record]]:
    """Every row of the grid's runs, in one clone of the stand-in MAD."""
    root = tmp_path_factory.mktemp("mad-physics")
    subprocess.run(["git", "clone", "-q", "--branch", ERA_TAGS["D"], str(mad_repo.path),
                    str(root / "MAD")], check=True, capture_output=True)
    return list(_rows(busybox_bin, Checkout(root / "MAD"), root / "bench.env"))


def test_the_scripts_numbers_are_the_standin_vllms(
        rows: list[tuple[str, str, float, Record]]) -> None:
    assert len(rows) == len(MODELS) * len(DTYPES) * len(TPS) * (16 + 8 + 24)
    for model, _, speed, record in rows:
        expected = _standin_value(record, model, speed)
        assert record.value is not None
        if record.unit == "tok/s":
            # whole tokens per second, as MAD's report writes them
            assert expected - 1 <= record.value <= expected, (model, record)
        else:
            assert record.value == pytest.approx(expected, rel=1e-3), (model, record)


def test_every_number_is_below_the_roofline(rows: list[tuple[str, str, float, Record]]
                                            ) -> None:
    over = []
    for model, devices, speed, record in rows:
        assert record.value is not None
        share = fraction(record.value, model=model.split("/")[1], dtype=record.dtype,
                         tp=record.tp, scenario=record.scenario, metric=record.metric,
                         input_len=record.input_len, output_len=record.output_len,
                         batch_size=record.batch_size, num_prompts=record.num_prompts,
                         max_concurrency=record.max_concurrency)
        # as on the fastest host and slot of the spread
        share *= fastest_speed() / speed
        if not share < CEILING:
            over.append(f"{model} {record.configuration} on {devices}: {share:.0%}")
    assert not over, "\n".join(over[:20])
