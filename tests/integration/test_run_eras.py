"""`fleetbench run` on MAD's run.sh + run_vllm.py + YAML layout (the lab's era F), and a
pinned ref the hosts' MAD repository lacks."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import LabFleet
from tests.integration.test_run import CANARY, MODEL, fleetbench_run, manifest

pytestmark = pytest.mark.lab


def test_run_yaml_layout_runs_run_sh_and_a_failing_vllm_fails_the_slot(
        run_lab: LabFleet, tmp_path: Path) -> None:
    run_lab.set("lab02", "bench=fail")
    try:
        code, summary, output = fleetbench_run(run_lab, tmp_path / "runs", "--mad-ref", "v-era-f",
                                               "--limit", "lab01,lab02")
    finally:
        run_lab.restore("lab02")
    assert code == 1, output
    run_dir = Path(summary["run_dir"])
    hosts = manifest(run_dir)["hosts"]
    assert (hosts["lab01"]["status"], hosts["lab02"]["status"]) == ("ok", "failed:benchmark")
    slots = hosts["lab01"]["slots"]
    assert {s["status"] for s in slots.values()} == {"ok"}, slots
    # run_vllm.py printed 8 `vllm bench latency` commands; each measured.
    assert all(s["summary"].startswith("latency: 8 of 8 points") for s in slots.values()), slots
    slot0 = run_dir / "hosts" / "lab01" / "slot0"
    # The config fleetbench wrote for run.sh, and what MAD made of it.
    config = yaml.safe_load((slot0 / "MAD/scripts/vllm/configs/fleetbench.yaml").read_text())
    assert config == [{"benchmark": "latency", "model": MODEL, "tp": 8, "dtype": "float16",
                       "inp": "128 2048", "out": "128 2048", "bs": "1 8"}]
    with (slot0 / "MAD/scripts/perf_Llama-3.1-8B-Instruct.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 8
    assert {(r["benchmark"], r["tp"], r["dtype"], r["metric"]) for r in rows} == {
        ("latency", "8", "float16", "latency")}
    assert all(float(r["performance"]) > 0 for r in rows)
    assert len(list((slot0 / "MAD/scripts/vllm").glob("Llama-3.1-8B-Instruct_latency_8_*.json"))) == 8
    log = (slot0 / "benchmark.log").read_text()
    # the gated model was downloaded with the token run_vllm.py took from MAD_SECRETS_HFTOKEN
    assert "hf download meta-llama/Llama-3.1-8B-Instruct" in log
    assert "MAD_SECRETS_HFTOKEN is not set" not in log
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    # vLLM fails on lab02: run_vllm.py stops at its first failed call, run.sh exits 1.
    for slot in hosts["lab02"]["slots"].values():
        assert slot["status"] == "failed:no-results", slot
        assert slot["exit_code"] == 1
        assert "log shows: torch.OutOfMemoryError" in slot["summary"], slot
    assert summary["hosts"]["lab01"]["status"] == "ok"


def test_a_pinned_ref_the_repository_lacks_fails_the_host_clearly(
        run_lab: LabFleet, tmp_path: Path) -> None:
    code, summary, _ = fleetbench_run(run_lab, tmp_path / "runs", "--mad-ref",
                                      "2a2180ee87f305c821475903abef85b57c576d0a",
                                      "--limit", "lab01")
    assert code == 1
    entry = manifest(Path(summary["run_dir"]))["hosts"]["lab01"]
    assert entry["status"] == "failed:mad"
    assert entry["reason"].startswith("MAD at 2a2180ee87f305c821475903abef85b57c576d0a could "
                                      "not be checked out from file://"), entry["reason"]
    assert "pass --mad-ref with a branch, tag or commit that repository has" in entry["reason"]
