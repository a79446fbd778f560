"""The lab's stand-in rocm/vllm image, as a benchmark container sees it: python3 with
pandas, curl, git, and vLLM's entry points obeying the host's lab settings."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import LabFleet

pytestmark = pytest.mark.lab

MODEL = "NousResearch/Meta-Llama-3-8B"
# What MAD's scripts pass, in the container's /workspace.
LATENCY = (f"python3 /app/vllm/benchmarks/benchmark_latency.py --model {MODEL} --batch-size 8 "
           "-tp 1 --input-len 128 --output-len 128 --num-iters-warmup 3 --num-iters 5 "
           "--trust-remote-code --dtype float16 --enforce-eager "
           "--gpu-memory-utilization 0.9 --output-json")
THROUGHPUT = (f"python3 /app/vllm/benchmarks/benchmark_throughput.py --model {MODEL} "
              "--num-prompts 3000 -tp 1 --input-len 2048 --output-len 128 --trust-remote-code "
              "--dtype float16 --gpu-memory-utilization 0.9 --num-scheduler-steps 1 "
              "--output-json")


def _run(lab: LabFleet, host: str, workspace: Path, script: str, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    """``script`` under bash in a container of the lab's image, laid out as a slot's."""
    image = lab.status()["image"]
    assert isinstance(image, str)
    bench_env = lab.root / "hosts" / host / "bench.env"
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "host",
         "-v", f"{bench_env}:/fleetbench-lab/bench.env:ro", "-v", f"{workspace}:/workspace",
         "-w", "/workspace", "-e", "HIP_VISIBLE_DEVICES=0", image, "bash", "-c", script],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_image_has_python_with_pandas_curl_and_git(lab: LabFleet, tmp_path: Path) -> None:
    done = _run(lab, "lab01", tmp_path,
                "python3 -c 'import pandas, numpy; print(\"pandas\", pandas.__version__)' "
                "&& curl --version && git --version && vllm --version")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("pandas 1.")
    assert any(line.startswith("curl 7.") for line in lines)
    assert any(line.startswith("git version 2.") for line in lines)
    assert lines[-1].startswith("0.9.1")


def test_pandas_writes_a_csv_as_mads_parse_csv_does(lab: LabFleet, tmp_path: Path) -> None:
    script = ("python3 -c 'import pandas as pd; "
              "pd.DataFrame({\"model\": [\"m_1\"], \"performance\": [1.5], \"metric\": [\"ms\"]})"
              ".to_csv(\"perf.csv\", index=False)'")
    done = _run(lab, "lab01", tmp_path, script)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "perf.csv").read_text() == "model,performance,metric\nm_1,1.5,ms\n"


def test_benchmark_entry_points_write_vllms_json(lab: LabFleet, tmp_path: Path) -> None:
    script = (f"{LATENCY} lat.json && {THROUGHPUT} thr.json && "
              f"vllm bench latency --model {MODEL} --input-len 1 --output-len 128 "
              "--batch-size 1 --num-iters 5 --output-json cli.json")
    done = _run(lab, "lab01", tmp_path, script)
    assert done.returncode == 0, done.stderr
    latency = json.loads((tmp_path / "lat.json").read_text())
    assert list(latency) == ["avg_latency", "latencies", "percentiles"]
    assert len(latency["latencies"]) == 5 and 0 < latency["avg_latency"] < 10
    throughput = json.loads((tmp_path / "thr.json").read_text())
    assert throughput["num_requests"] == 3000
    assert throughput["total_num_tokens"] == 3000 * (2048 + 128)
    assert throughput["tokens_per_second"] > 0
    assert json.loads((tmp_path / "cli.json").read_text())["avg_latency"] > 0


def test_vllm_serve_answers_curl_and_the_serving_benchmark(
        lab: LabFleet, tmp_path: Path) -> None:
    port = _free_port()
    script = (
        f"vllm serve {MODEL} --swap-space 16 --disable-log-requests --trust-remote-code "
        f"-tp 1 --dtype float16 --port {port} > serve.log 2>&1 &\n"
        "server=$!\n"
        # MAD's readiness loop, bounded here.
        f"for i in $(seq 100); do curl -s http://localhost:{port}/v1/models > models.json "
        "&& break; sleep 0.2; done\n"
        f"curl -s http://localhost:{port}/v1/completions -H 'Content-Type: application/json' "
        f"-d '{{\"model\": \"{MODEL}\", \"prompt\": \"hi\", \"max_tokens\": 4}}' "
        "> completion.json\n"
        f"python3 /app/vllm/benchmarks/benchmark_serving.py --model {MODEL} "
        "--percentile-metrics ttft,tpot,itl,e2el --dataset-name random "
        "--random-input-len 128 --random-output-len 128 --num-prompts 24 --max-concurrency 8 "
        f"--ignore-eos --save-result --result-filename serving.json --port {port}\n"
        "rc=$?\n"
        "kill $server && wait $server\n"
        "exit $rc\n"
    )
    done = _run(lab, "lab01", tmp_path, script)
    assert done.returncode == 0, done.stderr + (tmp_path / "serve.log").read_text()
    models = json.loads((tmp_path / "models.json").read_text())
    assert [m["id"] for m in models["data"]] == [MODEL]
    completion = json.loads((tmp_path / "completion.json").read_text())
    assert completion["choices"][0]["finish_reason"] == "length"
    serving = json.loads((tmp_path / "serving.json").read_text())
    assert serving["completed"] == 24
    assert serving["median_ttft_ms"] > 0 and serving["output_throughput"] > 0
    assert "Application shutdown complete." in (tmp_path / "serve.log").read_text()


def test_host_faults_reach_the_entry_points(lab: LabFleet, tmp_path: Path) -> None:
    try:
        lab.set("lab02", "bench=fail", "fail_after=2")
        # Each entry point is one engine start; two succeed before the planted failure.
        done = _run(lab, "lab02", tmp_path,
                    f"for i in 1 2 3; do {LATENCY} lat$i.json; echo rc=$?; done")
        assert [line for line in done.stdout.splitlines() if line.startswith("rc=")] == [
            "rc=0", "rc=0", "rc=1"]
        assert "torch.OutOfMemoryError: HIP out of memory" in done.stderr
        assert sorted(p.name for p in tmp_path.glob("lat*.json")) == ["lat1.json", "lat2.json"]

        lab.set("lab02", "bench=slow", "slow_s=2")
        start = time.monotonic()
        done = _run(lab, "lab02", tmp_path, f"{THROUGHPUT} slow.json")
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - start >= 2
        assert (tmp_path / "slow.json").is_file()

        lab.set("lab02", "bench=hang")
        done = _run(lab, "lab02", tmp_path, f"timeout 3 {LATENCY} hang.json; echo rc=$?")
        assert "rc=143" in done.stdout  # still running when timeout killed it
        assert not (tmp_path / "hang.json").exists()

        # factor plants a slow host: same point, half the speed
        lab.set("lab02", "bench=ok", "factor=0.5")
        assert _run(lab, "lab02", tmp_path, f"{LATENCY} half.json").returncode == 0
        lab.set("lab02", "factor=1.0")
        assert _run(lab, "lab02", tmp_path, f"{LATENCY} full.json").returncode == 0
        half = json.loads((tmp_path / "half.json").read_text())["avg_latency"]
        full = json.loads((tmp_path / "full.json").read_text())["avg_latency"]
        assert half == pytest.approx(2 * full)
    finally:
        lab.restore("lab02")
