"""The stand-in latency and throughput benchmarks: vLLM's arguments, vLLM's JSON, the
host's numbers and faults."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.unit.lab_vllm.conftest import MODEL, Standins, latency_args, mad_value

THROUGHPUT_JSON_KEYS = ["elapsed_time", "num_requests", "total_num_tokens",
                        "requests_per_second", "tokens_per_second"]


def _latency(standins: Standins, *extra: str, name: str = "lat.json", **shape: int
             ) -> dict[str, object]:
    done = standins.run("latency", *latency_args(name, *extra, **shape))
    assert done.returncode == 0, done.stderr
    text = (standins.root / name).read_text()
    data: dict[str, object] = json.loads(text)
    return data


def _throughput_args(output_json: str, *extra: str) -> list[str]:
    # MAD 2025-02 (config.csv) passes the chunked-prefill flag a value.
    return ["--model", MODEL, "-tp", "8", "--input-len", "2048", "--output-len", "128",
            "--trust-remote-code", "--output-json", output_json, "--dtype", "float16",
            "--distributed-executor-backend", "mp", "--num-prompts", "3000",
            "--max-num-seqs", "3000", "--gpu-memory-utilization", "0.9",
            "--num-scheduler-steps", "10", "--enable-chunked-prefill", "False", *extra]


def test_latency_writes_vllms_json_shape(standins: Standins) -> None:
    done = standins.run("latency", *latency_args("lat.json"))
    assert done.returncode == 0, done.stderr
    text = (standins.root / "lat.json").read_text()
    data = json.loads(text)
    assert list(data) == ["avg_latency", "latencies", "percentiles"]
    assert len(data["latencies"]) == 5  # --num-iters
    assert data["avg_latency"] == pytest.approx(sum(data["latencies"]) / 5)
    assert list(data["percentiles"]) == ["10", "25", "50", "75", "90", "99"]
    assert min(data["latencies"]) <= data["percentiles"]["50"] <= max(data["latencies"])
    # An 8B model, batch 8, 128 in / 128 out on one GPU: seconds, not milliseconds.
    assert 1 < data["avg_latency"] < 5
    # vLLM writes indent=4; MAD's report tool reads it token by token.
    assert text.startswith('{\n    "avg_latency": ')
    assert mad_value(text, "avg_latency") == data["avg_latency"]
    assert "Avg latency:" in done.stdout


def test_latency_takes_underscored_options_as_vllm_does(standins: Standins) -> None:
    dashed = _latency(standins, name="a.json")
    args = [a.replace("--num-iters", "--num_iters").replace("--output-json", "--output_json")
            for a in latency_args("b.json")]
    done = standins.run("latency", *args)
    assert done.returncode == 0, done.stderr
    assert json.loads((standins.root / "b.json").read_text()) == dashed


def test_latency_rejects_an_unknown_option_like_argparse(standins: Standins) -> None:
    done = standins.run("latency", *latency_args("lat.json", "--no-such-option"))
    assert done.returncode == 2
    assert "unrecognized arguments: --no-such-option" in done.stderr
    assert not (standins.root / "lat.json").exists()


def test_latency_rejects_a_bad_dtype(standins: Standins) -> None:
    args = [a if a != "float16" else "float8" for a in latency_args("lat.json")]
    done = standins.run("latency", *args)
    assert done.returncode == 2
    assert "--dtype: invalid choice: 'float8'" in done.stderr


def test_latency_grows_with_batch_and_output(standins: Standins) -> None:
    small = _latency(standins, name="s.json", batch=1, out=128)["avg_latency"]
    batch = _latency(standins, name="b.json", batch=64, out=128)["avg_latency"]
    prefill = _latency(standins, name="p.json", batch=1, out=1)["avg_latency"]
    assert isinstance(small, float) and isinstance(batch, float) and isinstance(prefill, float)
    assert prefill < small < batch


def test_factor_plants_a_slow_host_deterministically(standins: Standins) -> None:
    normal = _latency(standins, name="n.json")["avg_latency"]
    again = _latency(standins, name="a.json")["avg_latency"]
    standins.settings["factor"] = "0.5"
    slow = _latency(standins, name="s.json")["avg_latency"]
    assert isinstance(normal, float) and isinstance(slow, float)
    assert again == normal
    assert slow == pytest.approx(2 * normal)


def test_hosts_and_slots_differ_by_a_few_percent(standins: Standins) -> None:
    standins.extra_env["HIP_VISIBLE_DEVICES"] = "0"
    lab01 = _latency(standins, name="1.json")["avg_latency"]
    standins.settings["host"] = "lab02"
    lab02 = _latency(standins, name="2.json")["avg_latency"]
    standins.extra_env["HIP_VISIBLE_DEVICES"] = "1"
    lab02_slot1 = _latency(standins, name="3.json")["avg_latency"]
    assert isinstance(lab01, float) and isinstance(lab02, float)
    assert isinstance(lab02_slot1, float)
    assert len({lab01, lab02, lab02_slot1}) == 3
    assert abs(lab02 / lab01 - 1) < 0.07
    assert abs(lab02_slot1 / lab02 - 1) < 0.05


def test_throughput_writes_vllms_json_shape(standins: Standins) -> None:
    done = standins.run("throughput", *_throughput_args("thr.json"))
    assert done.returncode == 0, done.stderr
    text = (standins.root / "thr.json").read_text()
    data = json.loads(text)
    assert list(data) == THROUGHPUT_JSON_KEYS
    assert data["num_requests"] == 3000
    assert data["total_num_tokens"] == 3000 * (2048 + 128)
    assert data["tokens_per_second"] == pytest.approx(data["total_num_tokens"]
                                                      / data["elapsed_time"])
    assert data["requests_per_second"] == pytest.approx(3000 / data["elapsed_time"])
    assert text.startswith('{\n    "elapsed_time": ')
    assert mad_value(text, "tokens_per_second") == data["tokens_per_second"]
    assert "Throughput:" in done.stdout


def test_throughput_is_faster_with_fp8_weights(standins: Standins) -> None:
    assert standins.run("throughput", *_throughput_args("f16.json")).returncode == 0
    fp8 = standins.run("throughput", *_throughput_args(
        "fp8.json", "--quantization", "fp8", "--kv-cache-dtype", "fp8"))
    assert fp8.returncode == 0, fp8.stderr
    f16 = json.loads((standins.root / "f16.json").read_text())["tokens_per_second"]
    assert json.loads((standins.root / "fp8.json").read_text())["tokens_per_second"] > f16


def test_throughput_needs_lengths_without_a_dataset(standins: Standins) -> None:
    done = standins.run("throughput", "--model", MODEL, "--num-prompts", "10")
    assert done.returncode == 2
    assert "--input-len and --output-len are required" in done.stderr


def test_vllm_bench_runs_the_same_benchmarks(standins: Standins) -> None:
    done = standins.run("vllm", "bench", "latency", *latency_args("cli.json"))
    assert done.returncode == 0, done.stderr
    assert standins.run("latency", *latency_args("script.json")).returncode == 0
    assert (json.loads((standins.root / "cli.json").read_text())
            == json.loads((standins.root / "script.json").read_text()))
    done = standins.run("vllm", "bench", "throughput", *_throughput_args("t.json"))
    assert done.returncode == 0, done.stderr
    assert list(json.loads((standins.root / "t.json").read_text())) == THROUGHPUT_JSON_KEYS
    assert standins.run("vllm", "--version").stdout.strip().startswith("0.9.1")
    unknown = standins.run("vllm", "bench", "nonsense")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


# ------------------------------------------------------------------- faults


def test_fail_exits_with_vllms_out_of_memory_traceback(standins: Standins) -> None:
    standins.settings.update(mode="fail", fail_after="0")
    done = standins.run("latency", *latency_args("lat.json"))
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert '"/app/vllm/benchmarks/benchmark_latency.py"' in done.stderr
    assert "torch.OutOfMemoryError: HIP out of memory" in done.stderr
    assert not (standins.root / "lat.json").exists()


def test_fail_after_counts_points_across_processes(standins: Standins) -> None:
    standins.settings.update(mode="fail", fail_after="2")
    codes = [standins.run("latency", *latency_args(f"{i}.json")).returncode for i in range(4)]
    assert codes == [0, 0, 1, 1]
    assert sorted(p.name for p in standins.root.glob("*.json")) == ["0.json", "1.json"]
    codes = [standins.run("throughput", *_throughput_args("t.json")).returncode]
    assert codes == [1]


def test_slow_sleeps_then_succeeds(standins: Standins) -> None:
    standins.settings.update(mode="slow", slow_s="1.5")
    start = time.monotonic()
    done = standins.run("throughput", *_throughput_args("thr.json"))
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start >= 1.5
    assert list(json.loads((standins.root / "thr.json").read_text())) == THROUGHPUT_JSON_KEYS


def test_hang_never_returns(standins: Standins) -> None:
    standins.settings["mode"] = "hang"
    process = standins.start("latency", *latency_args(str(standins.root / "lat.json")))
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (standins.root / "lat.json").exists()


def test_a_broken_settings_file_is_named(standins: Standins) -> None:
    standins.settings["factor"] = "fast"
    done = standins.run("latency", *latency_args("lat.json"))
    assert done.returncode == 1
    assert f"[fleetbench-lab] {standins.settings_file}: factor 'fast'" in done.stderr


def test_gated_model_needs_a_token(standins: Standins) -> None:
    args = [a if a != MODEL else "meta-llama/Llama-3.1-8B-Instruct"
            for a in latency_args("lat.json")]
    done = standins.run("latency", *args)
    assert done.returncode == 1
    assert "gated repo" in done.stderr
    standins.extra_env["HF_TOKEN"] = "hf_test_token"
    done = standins.run("latency", *args)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("devices", "tp", "message"), [
    ("", 1, "No HIP GPUs are available"),
    ("0", 2, "tensor parallel size 2 is larger than the number of visible devices 1"),
    ("0,1", 1, "tensor parallel size 1 does not use all 2 visible devices"),
])
def test_slot_devices_must_match_the_tensor_parallel_size(
        standins: Standins, devices: str, tp: int, message: str) -> None:
    standins.extra_env["HIP_VISIBLE_DEVICES"] = devices
    done = standins.run("latency", *latency_args("lat.json", tp=tp))
    assert done.returncode == 1
    assert f"ValueError: {message}" in done.stderr


@pytest.mark.parametrize(("devices", "message"), [
    ("0,1", ""),
    ("1,0", ""),
    # host numbers in a container given only its slot's two render nodes
    ("8,9", "No HIP GPUs are available"),
    ("1,2", "tensor parallel size 2 is larger than the number of visible devices 1"),
])
def test_a_container_with_render_nodes_sees_only_those_gpus(
        standins: Standins, tmp_path: Path, devices: str, message: str) -> None:
    dri = tmp_path / "dri"
    dri.mkdir()
    for name in ("renderD136", "renderD137"):
        (dri / name).touch()
    standins.extra_env.update(HIP_VISIBLE_DEVICES=devices, FLEETBENCH_LAB_DRI=str(dri))
    done = standins.run("latency", *latency_args("lat.json", tp=2))
    if message:
        assert done.returncode == 1
        assert f"ValueError: {message}" in done.stderr
    else:
        assert done.returncode == 0, done.stderr


def test_not_a_model_id(standins: Standins, tmp_path: Path) -> None:
    args = [a if a != MODEL else "not a model" for a in latency_args("lat.json")]
    done = standins.run("latency", *args)
    assert done.returncode == 1
    assert "is not a local folder and is not a valid model identifier" in done.stderr
