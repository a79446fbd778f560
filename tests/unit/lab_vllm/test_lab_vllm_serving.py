"""The stand-in ``vllm serve`` and the serving benchmark's client against it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.lab_vllm.conftest import MODEL, Standins, mad_value

Register = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def _get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read()


def _serve(standins: Standins, background: Register, port: int, *extra: str
           ) -> subprocess.Popen[str]:
    server = background(standins.start("vllm", "serve", MODEL, "--swap-space", "16",
                                       "--disable-log-requests", "--trust-remote-code",
                                       "-tp", "1", "--dtype", "float16", "--port", str(port),
                                       *extra))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()
        try:
            if _get(port, "/health")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    pytest.fail("vllm serve did not answer /health within 20 s")


def _client_args(port: int, result: str, *extra: str) -> list[str]:
    # What MAD's 2025-06 script passes (plus the port: tests never take 8000).
    return ["--model", MODEL, "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--dataset-name", "random", "--random-input-len", "128", "--random-output-len",
            "128", "--num-prompts", "40", "--max-concurrency", "8", "--ignore-eos",
            "--save-result", "--result-filename", result, "--port", str(port), *extra]


def test_serve_answers_health_models_and_completions(
        standins: Standins, background: Register, free_port: int) -> None:
    _serve(standins, background, free_port)
    assert _get(free_port, "/health") == (200, b"")
    status, body = _get(free_port, "/v1/models")
    models = json.loads(body)
    assert status == 200
    assert [m["id"] for m in models["data"]] == [MODEL]
    request = urllib.request.Request(
        f"http://127.0.0.1:{free_port}/v1/completions",
        data=json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 4}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        completion = json.loads(response.read())
    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 4
    wrong = urllib.request.Request(
        f"http://127.0.0.1:{free_port}/v1/completions",
        data=json.dumps({"model": "other/model", "prompt": "hi"}).encode(),
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(wrong, timeout=5)
    assert error.value.code == 404


def test_serve_stops_cleanly_on_sigterm(
        standins: Standins, background: Register, free_port: int) -> None:
    server = _serve(standins, background, free_port)
    server.send_signal(signal.SIGTERM)
    out, _ = server.communicate(timeout=10)
    assert server.returncode == 0
    assert f"Uvicorn running on http://127.0.0.1:{free_port}" in out


def test_benchmark_serving_writes_vllms_result(
        standins: Standins, background: Register, free_port: int) -> None:
    _serve(standins, background, free_port)
    done = standins.run("serving", *_client_args(free_port, "serving.json"))
    assert done.returncode == 0, done.stderr
    text = (standins.root / "serving.json").read_text()
    data: dict[str, Any] = json.loads(text)
    assert "\n" not in text  # vLLM's json.dump without indent
    for key in ("date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate",
                "burstiness", "max_concurrency", "duration", "completed",
                "total_input_tokens", "total_output_tokens", "request_throughput",
                "output_throughput", "total_token_throughput", "input_lens", "output_lens",
                "ttfts", "itls", "generated_texts", "errors"):
        assert key in data, key
    for metric in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std", "p99"):
            assert isinstance(data[f"{stat}_{metric}_ms"], float), (stat, metric)
    assert data["completed"] == 40 and data["errors"] == [""] * 40
    assert data["request_rate"] == "inf" and data["max_concurrency"] == 8
    assert data["total_output_tokens"] == 40 * 128
    assert data["output_throughput"] == pytest.approx(data["total_output_tokens"]
                                                      / data["duration"])
    assert data["median_e2el_ms"] > data["median_ttft_ms"] > data["median_tpot_ms"] > 0
    assert mad_value(text, "total_token_throughput") == data["total_token_throughput"]
    assert mad_value(text, "median_itl_ms") == data["median_itl_ms"]
    assert "Serving Benchmark Result" in done.stdout
    # `vllm bench serve` is the same client.
    again = standins.run("vllm", "bench", "serve", *_client_args(free_port, "cli.json"))
    assert again.returncode == 0, again.stderr
    cli = json.loads((standins.root / "cli.json").read_text())
    assert cli["median_ttft_ms"] == data["median_ttft_ms"]


def test_serving_numbers_follow_the_hosts_factor(
        standins: Standins, background: Register, free_port: int) -> None:
    _serve(standins, background, free_port)
    assert standins.run("serving", *_client_args(free_port, "a.json")).returncode == 0
    standins.settings["factor"] = "0.5"
    assert standins.run("serving", *_client_args(free_port, "b.json")).returncode == 0
    normal = json.loads((standins.root / "a.json").read_text())
    slow = json.loads((standins.root / "b.json").read_text())
    assert slow["median_tpot_ms"] == pytest.approx(2 * normal["median_tpot_ms"])


def test_client_without_a_server_fails_like_vllm(standins: Standins, free_port: int) -> None:
    done = standins.run("serving", *_client_args(free_port, "s.json"))
    assert done.returncode == 1
    assert "ValueError: Initial test run failed" in done.stderr
    assert not (standins.root / "s.json").exists()


def test_client_fail_mode_reports_the_servers_error(
        standins: Standins, background: Register, free_port: int) -> None:
    _serve(standins, background, free_port)
    standins.settings.update(mode="fail", fail_after="0")
    done = standins.run("serving", *_client_args(free_port, "s.json"))
    assert done.returncode == 1
    assert "Initial test run failed" in done.stderr
    assert "HIP out of memory" in done.stderr


def test_server_fail_mode_dies_before_listening(standins: Standins, free_port: int) -> None:
    standins.settings.update(mode="fail", fail_after="0")
    done = standins.run("vllm", "serve", MODEL, "--port", str(free_port))
    assert done.returncode == 1
    assert "torch.OutOfMemoryError: HIP out of memory" in done.stderr


def test_server_hang_mode_never_listens(standins: Standins, background: Register,
                                       free_port: int) -> None:
    standins.settings["mode"] = "hang"
    server = background(standins.start("vllm", "serve", MODEL, "--port", str(free_port)))
    time.sleep(1.5)
    assert server.poll() is None
    with pytest.raises(OSError):
        _get(free_port, "/health")


def test_one_server_per_lab_host_and_port(
        standins: Standins, background: Register, free_port: int) -> None:
    _serve(standins, background, free_port)
    twice = standins.run("vllm", "serve", MODEL, "--port", str(free_port))
    assert twice.returncode == 1
    assert "address already in use" in twice.stderr
    # Another lab host on this machine shares the port, as separate machines would not clash.
    standins.settings["host"] = "lab02"
    _serve(standins, background, free_port)
