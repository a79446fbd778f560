"""Running the lab image's stand-in vLLM entry points with this Python, as subprocesses.

In the image they run under Debian's python3 with the ``vllm`` package in dist-packages;
here the package folder goes on PYTHONPATH and the host's settings file, the point counter
and the working folder are the test's own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO

STANDINS = REPO / "src" / "fleetbench" / "lab" / "vllm_image"
BENCHMARKS = STANDINS / "app" / "vllm" / "benchmarks"
VLLM = STANDINS / "bin" / "vllm"
MODEL = "NousResearch/Meta-Llama-3-8B"


@dataclass
class Standins:
    """A host's settings and a folder to run the entry points in."""

    root: Path
    settings: dict[str, str] = field(default_factory=lambda: {"host": "lab01", "mode": "ok"})
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def settings_file(self) -> Path:
        return self.root / "bench.env"

    @property
    def points_file(self) -> Path:
        return self.root / "points"

    def env(self) -> dict[str, str]:
        self.settings_file.write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "PYTHONPATH": str(STANDINS),
            "FLEETBENCH_LAB_ENV": str(self.settings_file),
            "FLEETBENCH_LAB_POINTS": str(self.points_file),
        }
        return {**env, **self.extra_env}

    def command(self, entry: str, *args: str) -> list[str]:
        program = VLLM if entry == "vllm" else BENCHMARKS / f"benchmark_{entry}.py"
        return [sys.executable, str(program), *args]

    def run(self, entry: str, *args: str, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        """Run ``benchmark_<entry>.py`` (or the ``vllm`` command) to completion."""
        return subprocess.run(self.command(entry, *args), cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, entry: str, *args: str) -> subprocess.Popen[str]:
        """Start an entry point in the background (a server, a hang)."""
        return subprocess.Popen(self.command(entry, *args), cwd=self.root, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def standins(tmp_path: Path) -> Standins:
    """A healthy host lab01 with no HIP_VISIBLE_DEVICES."""
    return Standins(tmp_path)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def background() -> Iterator[Callable[[subprocess.Popen[str]], subprocess.Popen[str]]]:
    """Registers processes to stop (SIGTERM, then SIGKILL) when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def register(process: subprocess.Popen[str]) -> subprocess.Popen[str]:
        started.append(process)
        return process

    yield register
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def mad_tokens(text: str) -> list[str]:
    """A result JSON as ROCm/MAD's report tool reads it: punctuation dropped, split on
    whitespace; a value is the token after its key."""
    return text.replace(",", "").replace(":", "").replace('"', "").split()


def mad_value(text: str, key: str) -> float:
    """The value MAD's report tool finds after ``key`` (fails if it finds none)."""
    tokens = mad_tokens(text)
    assert key in tokens, f"{key} is not a token of {text[:200]!r}"
    return float(tokens[tokens.index(key) + 1])


def latency_args(output_json: str, *extra: str, batch: int = 8, inp: int = 128,
                 out: int = 128, tp: int = 1) -> Sequence[str]:
    """The arguments MAD's 2024-11 script passes to benchmark_latency.py."""
    return ("--model", MODEL, "--batch-size", str(batch), "-tp", str(tp), "--input-len",
            str(inp), "--output-len", str(out), "--num-iters-warmup", "3", "--num-iters", "5",
            "--trust-remote-code", "--output-json", output_json, "--dtype", "float16",
            "--enforce-eager", "--gpu-memory-utilization", "0.9", *extra)
