"""The stand-in vllm_benchmark_report.sh, run under bash + busybox only.

Its report files are compared with the era D fixtures produced by MAD's own
report-writing code: same names, headers, line endings, columns and number formats.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES

ERA_D = FIXTURES / "mad" / "eraD_2025-06_rocm6.4.1"
ERA_B = FIXTURES / "mad" / "eraB_2024-11-05_8f4dcbb"
ERA_D_SUMMARY = ERA_D / "reports_float16_vllm_rocm6.4.1" / "summary"
NAME = "Llama-3.1-8B-Instruct"
GATED = f"meta-llama/{NAME}"
OPEN = f"amd/{NAME}"
KINDS = ("latency", "throughput", "serving")
ALL = ("-s", "all", "-m", GATED, "-g", "1", "-d", "float16")

INT = re.compile(r"^\d+$")
FLOAT = re.compile(r"^\d+\.\d+$")


def value_kind(text: str) -> str:
    if INT.match(text):
        return "int"
    if FLOAT.match(text):
        return "float"
    return "text"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def expected_perf(summary_dir: Path, name: str) -> bytes:
    """perf_<name>.csv as MAD's parse_csv.py (pandas) derives it from the summaries."""
    lines = ["model,performance,metric"]
    for kind in KINDS:
        path = summary_dir / f"{name}_{kind}_report.csv"
        if not path.exists():
            continue
        for r in rows(path):
            config = f"{r['tp']}"
            if kind == "latency":
                key = f"{r['model']}_latency_{config}_{r['batch_size']}"
                key += f"_{r['input_len']}_{r['output_len']}_{r['dtype']}"
                metrics = [("", r["latency (ms)"], "ms")]
            elif kind == "throughput":
                key = f"{r['model']}_throughput_{config}_{r['num_prompts']}"
                key += f"_{r['input_len']}_{r['output_len']}_{r['dtype']}"
                metrics = [("", r["throughput_gen (tok/sec)"], "tok/sec")]
            else:
                key = f"{r['model']}_serving_{config}_{r['num_prompts']}_{r['input_len']}"
                key += f"_{r['output_len']}_{r['max_concurrency']}_{r['dtype']}"
                metrics = [
                    ("_throughput_tot", r["throughput_tot (tok/sec)"], "tok/sec"),
                    ("_throughput_gen", r["throughput_gen (tok/sec)"], "tok/sec"),
                    ("_median_ttft", r["median_ttft (ms)"], "ms"),
                    ("_median_tpot", r["median_tpot (ms)"], "ms"),
                    ("_median_itl", r["median_itl (ms)"], "ms"),
                    ("_median_e2el", r["median_e2el (ms)"], "ms"),
                ]
            lines += [f"{key}{suffix},{float(v)!r},{unit}" for suffix, v, unit in metrics]
    return ("\n".join(lines) + "\n").encode()


def number(path: Path, column: str, row: int = 0) -> float:
    return float(rows(path)[row][column])


def summary_file(checkout: Any, kind: str, dtype: str = "float16", name: str = NAME) -> Path:
    return checkout.summary(dtype) / f"{name}_{kind}_report.csv"


# ---------------------------------------------------------------- formats


def test_all_writes_era_d_reports_shaped_like_the_fixtures(run_script, checkout) -> None:
    done = run_script(*ALL)
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in checkout.summary().iterdir())
    assert written == sorted(p.name for p in ERA_D_SUMMARY.iterdir())
    for kind in KINDS:
        ours = summary_file(checkout, kind).read_bytes()
        theirs = (ERA_D_SUMMARY / f"{NAME}_{kind}_report.csv").read_bytes()
        # csv.writer: CRLF on every line, including the last; no bare LF anywhere.
        assert ours.endswith(b"\r\n")
        assert ours.count(b"\n") == ours.count(b"\r\n")
        our_lines = ours.split(b"\r\n")[:-1]
        their_lines = theirs.split(b"\r\n")[:-1]
        assert our_lines[0] == their_lines[0]
        assert len(our_lines) > 1
        their_rows = [line.decode().split(",") for line in their_lines[1:]]
        our_rows = [line.decode().split(",") for line in our_lines[1:]]
        assert {len(r) for r in our_rows} == {len(r) for r in their_rows}
        for column in range(len(their_rows[0])):
            their_kinds = {value_kind(r[column]) for r in their_rows}
            assert {value_kind(r[column]) for r in our_rows} == their_kinds, (kind, column)
        for r in our_rows:
            assert (r[0], r[1], r[2], r[5]) == (NAME, kind, "1", "float16")
            # Floats as Python's csv module writes them: repr(float).
            assert all(repr(float(v)) == v for v in r if FLOAT.match(v))


def test_perf_file_is_derived_from_the_summaries_like_mads(run_script, checkout) -> None:
    # The derivation reproduces the fixture, so it is MAD's; then ours must match it.
    assert expected_perf(ERA_D_SUMMARY, NAME) == (ERA_D / f"perf_{NAME}.csv").read_bytes()
    assert run_script(*ALL).returncode == 0
    perf = checkout.perf().read_bytes()
    assert b"\r" not in perf
    assert perf == expected_perf(checkout.summary(), NAME)
    assert not (checkout.workdir / f"perf_{NAME}.csv").exists()  # moved to ../


def test_json_inputs_are_written_per_point_with_vllms_keys(run_script, checkout) -> None:
    assert run_script(*ALL).returncode == 0
    report_dir = checkout.summary().parent
    jsons = {p.name: json.loads(p.read_text()) for p in report_dir.glob("*.json")}
    points = sum(len(rows(summary_file(checkout, kind))) for kind in KINDS)
    assert len(jsons) == points

    fixture_serving = next((ERA_D / "vllm_json_inputs_synthetic").glob("*_serving_*.json"))
    serving_name = re.compile(rf"^{NAME}_serving_req(\d+)_in(\d+)_out(\d+)_mc(\d+)_float16\.json$")
    assert serving_name.match(fixture_serving.name)
    serving = {n: data for n, data in jsons.items() if serving_name.match(n)}
    assert len(serving) == len(rows(summary_file(checkout, "serving")))
    fixture_keys = set(json.loads(fixture_serving.read_text()))
    assert all(set(data) == fixture_keys for data in serving.values())
    first = rows(summary_file(checkout, "serving"))[0]
    match_name = (
        f"{NAME}_serving_req{first['num_prompts']}_in{first['input_len']}"
        f"_out{first['output_len']}_mc{first['max_concurrency']}_float16.json"
    )
    assert serving[match_name]["median_ttft_ms"] == float(first["median_ttft (ms)"])

    for kind in ("latency", "throughput"):
        fixture_json = next((ERA_B / "vllm_json_inputs_synthetic").glob(f"*_{kind}_*.json"))
        ours = [data for n, data in jsons.items() if n.startswith(f"{NAME}_{kind}_")]
        assert len(ours) == len(rows(summary_file(checkout, kind)))
        assert all(set(data) == set(json.loads(fixture_json.read_text())) for data in ours)
    latency = rows(summary_file(checkout, "latency"))[0]
    latency_json = jsons[
        f"{NAME}_latency_bs{latency['batch_size']}_in{latency['input_len']}"
        f"_out{latency['output_len']}_float16.json"
    ]
    assert latency_json["avg_latency"] * 1000 == pytest.approx(float(latency["latency (ms)"]))


def test_a_rerun_appends_rows_under_the_one_header(run_script, checkout) -> None:
    assert run_script(*ALL).returncode == 0
    first = {kind: summary_file(checkout, kind).read_bytes() for kind in KINDS}
    assert run_script(*ALL).returncode == 0
    for kind in KINDS:
        again = summary_file(checkout, kind).read_bytes()
        header, _, body = first[kind].partition(b"\r\n")
        assert again == header + b"\r\n" + body + body
    perf_lines = checkout.perf().read_text().splitlines()
    assert len(perf_lines) == 1 + 2 * (8 + 4 + 4 * 6)


def test_a_single_scenario_writes_only_its_report(run_script, checkout) -> None:
    done = run_script("--scenario", "throughput", "--model", OPEN, "--numgpu", "1",
                      "--datatype", "bfloat16")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = checkout.summary("bfloat16")
    assert [p.name for p in summary.iterdir()] == [f"{NAME}_throughput_report.csv"]
    assert {r["dtype"] for r in rows(summary / f"{NAME}_throughput_report.csv")} == {"bfloat16"}
    perf = checkout.perf().read_text().splitlines()
    assert len(perf) == 5
    assert all("_throughput_1_" in line and "_bfloat16," in line for line in perf[1:])


def test_a_whole_sweep_in_ok_mode_is_fast(run_script) -> None:
    started = time.monotonic()
    done = run_script(*ALL, bench={"host": "lab01", "mode": "ok"})
    # Well under a second on an idle machine; the margin is for a loaded CI runner.
    assert time.monotonic() - started < 2
    assert done.returncode == 0
    for marker in ("MODEL: ", "[INFO] LATENCY", "[INFO] THROUGHPUT", "[INFO] SERVING"):
        assert marker in done.stdout


# ---------------------------------------------------------------- numbers


def first_numbers(checkout: Any, dtype: str = "float16", name: str = NAME) -> tuple[float, float]:
    latency = number(summary_file(checkout, "latency", dtype, name), "latency (ms)")
    throughput = number(
        summary_file(checkout, "throughput", dtype, name), "throughput_gen (tok/sec)"
    )
    return latency, throughput


def test_numbers_are_deterministic(run_script, clone_mad) -> None:
    bench = {"host": "lab03", "mode": "ok", "factor": "1.0"}
    clones = [clone_mad(), clone_mad()]
    for where in clones:
        assert run_script(*ALL, bench=bench, devices="8", where=where).returncode == 0
    for kind in KINDS:
        first, second = (summary_file(where, kind).read_bytes() for where in clones)
        assert first == second


def test_numbers_are_realistic_for_an_8b_model(run_script, checkout) -> None:
    """The era D fixture is a whole MI300X's; the lab's slot is one CPX partition in NPS4,
    a quarter of the GPU's HBM bandwidth and an eighth of its CUs: an 8B model decodes
    about twice as slow per token there (the fixture's decode is near a whole GPU's
    roofline, the lab's at under half of its own), and its batch throughput, bound by the
    partition's compute, about a third as fast."""
    assert run_script(*ALL, bench={"host": "lab01"}).returncode == 0
    fixture_latency = number(ERA_D_SUMMARY / f"{NAME}_latency_report.csv", "latency (ms)")
    fixture_gen = number(ERA_D_SUMMARY / f"{NAME}_throughput_report.csv",
                         "throughput_gen (tok/sec)")  # fmt: skip
    latency, gen = first_numbers(checkout)
    assert 1.8 < latency / fixture_latency < 2.8
    assert 0.2 < gen / fixture_gen < 0.5


@pytest.mark.parametrize(
    ("slower", "faster"),
    [
        (("amd/Llama-3.1-70B-Instruct", "8", "float16"), (OPEN, "8", "float16")),
        ((OPEN, "1", "float16"), (OPEN, "8", "float16")),
        (
            ("amd/Llama-3.1-70B-Instruct", "8", "float16"),
            ("amd/Llama-3.1-70B-Instruct", "8", "float8"),
        ),
    ],
    ids=["bigger-model", "fewer-gpus", "wider-dtype"],
)
def test_numbers_follow_model_size_tp_and_dtype(run_script, clone_mad, slower, faster) -> None:
    results = []
    for model, tp, dtype in (slower, faster):
        where = clone_mad()
        devices = ",".join(str(gpu) for gpu in range(int(tp)))
        done = run_script("-s", "all", "-m", model, "-g", tp, "-d", dtype, devices=devices,
                          where=where)  # fmt: skip
        assert done.returncode == 0, done.stderr
        results.append(first_numbers(where, dtype, model.split("/")[1]))
    (slow_latency, slow_gen), (fast_latency, fast_gen) = results
    assert slow_latency > 1.1 * fast_latency
    assert slow_gen < fast_gen / 1.1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (({"host": "lab01"}, "8"), ({"host": "lab02"}, "8")),
        (({"host": "lab01"}, "8"), ({"host": "lab01"}, "9")),
    ],
    ids=["per-host", "per-slot"],
)
def test_numbers_differ_per_host_and_per_slot(run_script, clone_mad, first, second) -> None:
    results = []
    for bench, devices in (first, second):
        where = clone_mad()
        assert run_script(*ALL, bench=bench, devices=devices, where=where).returncode == 0
        results.append(first_numbers(where))
    (lat_a, gen_a), (lat_b, gen_b) = results
    assert lat_a != lat_b and gen_a != gen_b
    # a few percent, not a different machine
    assert 0.9 < lat_a / lat_b < 1.1
    assert 0.9 < gen_a / gen_b < 1.1


def test_factor_scales_throughput_up_and_latency_down(run_script, clone_mad) -> None:
    results = {}
    for factor in ("1.0", "0.5"):
        where = clone_mad()
        bench = {"host": "lab01", "factor": factor}
        assert run_script(*ALL, bench=bench, where=where).returncode == 0
        results[factor] = {
            kind: rows(summary_file(where, kind)) for kind in ("latency", "throughput")
        }
    for normal, slow in zip(results["1.0"]["latency"], results["0.5"]["latency"], strict=True):
        assert float(slow["latency (ms)"]) == pytest.approx(2 * float(normal["latency (ms)"]),
                                                            rel=1e-3)  # fmt: skip
    for normal, slow in zip(results["1.0"]["throughput"], results["0.5"]["throughput"],
                            strict=True):  # fmt: skip
        # whole tokens per second, as MAD's report writes them: one apart at most
        halved = float(normal["throughput_gen (tok/sec)"]) / 2
        assert abs(float(slow["throughput_gen (tok/sec)"]) - halved) <= 1


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-s", "all", "-m", OPEN, "-g", "1"), "missing -d/--datatype"),
        (("-m", OPEN, "-g", "1", "-d", "float16"), "missing -s/--scenario"),
        (("-s", "all", "-m", OPEN, "-g", "1", "-d"), "option -d requires a value"),
        (("-s", "all", "--model", "-g", "1", "-d", "float16"), "option --model requires a value"),
        (("-s", "prefill", "-m", OPEN, "-g", "1", "-d", "float16"), "invalid scenario 'prefill'"),
        (("-s", "all", "-m", OPEN, "-g", "1", "-d", "int8"), "invalid datatype 'int8'"),
        (("-s", "all", "-m", OPEN, "-g", "0", "-d", "float16"), "invalid numgpu '0'"),
        (("-s", "all", "-m", OPEN, "-g", "eight", "-d", "float16"), "invalid numgpu 'eight'"),
    ],
)
def test_bad_arguments_fail_with_a_clear_error(run_script, checkout, args, message) -> None:
    done = run_script(*args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Usage:" in done.stderr
    assert not list(checkout.workdir.glob("reports_*"))


@pytest.mark.parametrize("flag", ["--foo", "-x", "--tp"])
def test_unknown_parameters_are_rejected_like_era_d(run_script, checkout, flag) -> None:
    done = run_script("-s", "all", "-m", OPEN, flag, "8", "-g", "1", "-d", "float16")
    assert done.returncode == 1
    assert done.stdout.strip() == f"Unknown parameter passed: {flag}"
    assert not list(checkout.workdir.glob("reports_*"))


def assert_every_point_failed(done: subprocess.CompletedProcess[str], checkout: Any,
                              name: str = NAME, points: int = 16) -> None:
    """What MAD's script leaves when every vLLM call fails: it goes on, every point's
    report step fails for want of vLLM's JSON, no summary report, a perf file that is one
    empty line (pandas' empty table), and exit 0 from the final mv."""
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("FileNotFoundError: [Errno 2] No such file or directory") == points
    assert not list(checkout.summary().iterdir())
    assert checkout.perf(name).read_bytes() == b"\n"
    assert "The file of latency summary is not found." in done.stdout


@pytest.mark.parametrize("model", [GATED, "mistralai/Mistral-7B-Instruct-v0.3"])
def test_gated_model_without_token_fails_like_a_hub_401(run_script, checkout, model) -> None:
    done = run_script("-s", "all", "-m", model, "-g", "1", "-d", "float16", hf_token="")
    assert "401 Client Error" in done.stderr
    assert done.stderr.count("OSError: You are trying to access a gated repo.") == 16
    assert f"https://huggingface.co/{model}" in done.stderr
    assert_every_point_failed(done, checkout, model.split("/")[1])


def test_open_model_needs_no_token(run_script, checkout) -> None:
    done = run_script("-s", "latency", "-m", OPEN, "-g", "1", "-d", "float16", hf_token=None)
    assert done.returncode == 0, done.stderr
    assert summary_file(checkout, "latency").exists()


def test_token_never_appears_in_the_output(run_script) -> None:
    done = run_script(*ALL, hf_token="hf_SECRETSECRET")
    assert done.returncode == 0
    assert "hf_SECRETSECRET" not in done.stdout + done.stderr


def test_a_local_path_is_not_a_hub_model(run_script) -> None:
    done = run_script("-s", "latency", "-m", "/models/llama", "-g", "1", "-d", "float16")
    assert done.returncode == 0  # as the real script: only its last mv counts
    assert "is not a local folder and is not a valid model identifier" in done.stderr


@pytest.mark.parametrize(
    ("devices", "tp", "message"),
    [
        ("8,9,10,11", "8", "tensor parallel size 8 is larger than the number of visible devices 4"),
        ("8,9,10,11", "2", "tensor parallel size 2 does not use all 4 visible devices"),
        ("", "1", "No HIP GPUs are available"),
    ],
)
def test_tp_must_match_the_visible_devices(run_script, checkout, devices, tp, message) -> None:
    done = run_script("-s", "all", "-m", OPEN, "-g", tp, "-d", "float16", devices=devices)
    assert message in done.stderr
    assert_every_point_failed(done, checkout)


def test_tp_matching_the_devices_runs(run_script, checkout) -> None:
    done = run_script("-s", "latency", "-m", OPEN, "-g", "4", "-d", "float16",
                      devices="8,9,10,11")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {r["tp"] for r in rows(summary_file(checkout, "latency"))} == {"4"}


def test_without_hip_visible_devices_any_tp_runs(run_script, checkout) -> None:
    done = run_script("-s", "latency", "-m", OPEN, "-g", "8", "-d", "float16", devices=None)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("bench", "message"),
    [
        ({"mode": "broken"}, "unknown mode 'broken'"),
        ({"factor": "0"}, "factor '0' is not a positive number"),
        ({"factor": "fast"}, "factor 'fast' is not a positive number"),
        ({"mode": "slow", "slow_s": "x"}, "slow_s 'x' is not a number"),
        ({"perf_csv": "lost"}, "perf_csv 'lost' is not written or missing"),
    ],
)
def test_a_broken_lab_file_fails_loudly(run_script, bench, message) -> None:
    done = run_script(*ALL, bench=bench)
    assert done.returncode == 1
    assert message in done.stderr


# ---------------------------------------------------------------- lab modes


def test_fail_mode_fails_every_vllm_call_and_still_exits_0(run_script, checkout) -> None:
    done = run_script(*ALL, bench={"host": "lab01", "mode": "fail"})
    assert done.stderr.count("torch.OutOfMemoryError: HIP out of memory") == 16
    assert_every_point_failed(done, checkout)
    # The log still lists every point the script started, failed or not.
    for marker in ("[INFO] LATENCY", "[INFO] THROUGHPUT", "[INFO] SERVING"):
        assert marker in done.stdout
    assert len(re.findall(rf"^{GATED} (latency|throughput|serving)( \d+)+$", done.stdout,
                          re.MULTILINE)) == 16


def test_fail_mode_after_some_points_leaves_partial_reports(run_script, checkout) -> None:
    done = run_script(*ALL, bench={"host": "lab01", "mode": "fail", "fail_after": "2"})
    assert done.returncode == 0
    assert done.stderr.count("HIP out of memory") == 14
    assert len(rows(summary_file(checkout, "latency"))) == 2
    assert not summary_file(checkout, "throughput").exists()
    perf = checkout.perf().read_text().splitlines()
    assert len(perf) == 3 and all("_latency_" in line for line in perf[1:])


def test_fail_mode_measures_the_points_before_fail_after(run_script, checkout) -> None:
    done = run_script("-s", "throughput", "-m", OPEN, "-g", "1", "-d", "float16",
                      bench={"mode": "fail", "fail_after": "99"})  # fmt: skip
    assert done.returncode == 0
    assert "HIP out of memory" not in done.stderr
    assert len(rows(summary_file(checkout, "throughput"))) == 4


def test_a_perf_step_that_fails_makes_the_final_mv_exit_1(run_script, checkout) -> None:
    done = run_script(*ALL, bench={"host": "lab01", "perf_csv": "missing"})
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'pandas'" in done.stderr
    assert f"perf_{NAME}.csv" in done.stderr  # mv's own complaint
    for kind in KINDS:  # every report written
        assert len(rows(summary_file(checkout, kind))) == {"latency": 8}.get(kind, 4)
    assert not checkout.perf().exists()


def test_hang_mode_never_returns_until_killed(busybox_bin, checkout, tmp_path) -> None:
    lab_env = tmp_path / "bench.env"
    lab_env.write_text("host=lab01\nmode=hang\n")
    log = tmp_path / "benchmark.log"
    env = {
        "PATH": str(busybox_bin),
        "FLEETBENCH_LAB_ENV": str(lab_env),
        "HIP_VISIBLE_DEVICES": "0",
        "HF_TOKEN": "hf_lab_token",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(busybox_bin / "bash"), "./vllm_benchmark_report.sh", *ALL],
            cwd=checkout.workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the kill reaches the sleep too
        )
        try:
            time.sleep(1)
            assert proc.poll() is None
            text = log.read_text()
            assert f"MODEL: {GATED}" in text
            assert "Initializing" in text
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGTERM
    assert not summary_file(checkout, "latency").exists()


def test_slow_mode_sleeps_per_point(run_script, checkout) -> None:
    started = time.monotonic()
    done = run_script("-s", "latency", "-m", OPEN, "-g", "1", "-d", "float16",
                      bench={"mode": "slow", "slow_s": "0.2"})  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0
    points = len(rows(summary_file(checkout, "latency")))
    assert points == 8
    assert elapsed >= points * 0.2


def test_no_lab_file_is_a_healthy_host(run_script, checkout) -> None:
    done = run_script(*ALL, bench=None)
    assert done.returncode == 0, done.stderr
    assert checkout.perf().exists()
