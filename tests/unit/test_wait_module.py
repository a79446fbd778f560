"""fleetbench_wait counts the report rows a slot left on the host (for benchmark_verdict)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
ERA_D = REPO / "tests" / "fixtures" / "mad" / "eraD_2025-06_rocm6.4.1"


@pytest.fixture(scope="module")
def wait_module() -> ModuleType:
    path = REPO / "roles" / "benchmark" / "library" / "fleetbench_wait.py"
    spec = importlib.util.spec_from_file_location("fleetbench_wait", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_of_the_reports_and_the_perf_file_are_counted(wait_module: ModuleType,
                                                           tmp_path: Path) -> None:
    scripts = tmp_path / "slot0" / "MAD" / "scripts"
    shutil.copytree(ERA_D / "reports_float16_vllm_rocm6.4.1",
                    scripts / "vllm" / "reports_float16_vllm_rocm6.4.1")
    shutil.copy(ERA_D / "perf_Llama-3.1-8B-Instruct.csv", scripts)
    (scripts / "vllm" / "config.csv").write_text("model,tp\nx,1\n")  # not a report
    (tmp_path / "slot0" / "benchmark.log").write_text("MODEL: x\n")
    # summaries: 16 latency + 4 throughput + 4 serving rows; perf: 16 + 4 + 4 x 6 rows
    assert wait_module.report_rows(str(tmp_path / "slot0")) == 24 + 44


def test_what_a_run_with_every_vllm_call_failed_leaves_has_no_rows(wait_module: ModuleType,
                                                                   tmp_path: Path) -> None:
    scripts = tmp_path / "slot0" / "MAD" / "scripts"
    (scripts / "vllm" / "reports_float16_vllm_rocm6.4.1" / "summary").mkdir(parents=True)
    (scripts / "perf_Llama-3.1-8B-Instruct.csv").write_text("\n")  # pandas' empty table
    assert wait_module.report_rows(str(tmp_path / "slot0")) == 0
    assert wait_module.report_rows(str(tmp_path / "missing")) == 0
