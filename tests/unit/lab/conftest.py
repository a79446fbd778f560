"""Fixtures for the simulated MI300X hosts: host directories, tool runs, real fixture files."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetbench.lab import gpu, smi


@dataclass(frozen=True)
class ToolResult:
    """One simulated tool run."""

    code: int
    out: str
    err: str


@pytest.fixture
def smi_fixture(fixtures_dir: Path) -> Callable[[str], str]:
    """Read a real capture from tests/fixtures/smi (read-only)."""

    def read(name: str) -> str:
        return (fixtures_dir / "smi" / name).read_text()

    return read


@pytest.fixture
def kfd_fixture_nodes(fixtures_dir: Path) -> Path:
    """The real 8x MI300X CPX KFD topology's nodes directory."""
    return fixtures_dir / "kfd" / "mi300x-8gpu-cpx" / "topology" / "nodes"


@pytest.fixture
def make_host(tmp_path: Path) -> Callable[..., Path]:
    """Create a lab host directory with the given lab settings (set_delay defaults to 0)."""
    counter = iter(range(1000))

    def make(**settings: str) -> Path:
        host_dir = tmp_path / f"lab{next(counter):02d}"
        values = {"set_delay": "0", **settings}
        state = gpu.GpuState().with_settings(values)
        state.save(host_dir / gpu.STATE_FILE)
        smi.render_host(host_dir, state)
        return host_dir

    return make


@pytest.fixture
def run_tool() -> Callable[..., ToolResult]:
    """Run a simulated tool in-process: run_tool(host_dir, "amd-smi", "list", stdin="y\\n")."""

    def run(host_dir: Path, tool: str, *argv: str, stdin: str = "") -> ToolResult:
        out, err = io.StringIO(), io.StringIO()
        console = smi.Console(out=out, err=err, inp=io.StringIO(stdin))
        code = smi.run(tool, list(argv), host_dir, console)
        return ToolResult(code, out.getvalue(), err.getvalue())

    return run
