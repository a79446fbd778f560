"""Job slicing and plain ansible-playbook on the lab: two slices of one fleet run at once
(each its own --limit, run directory and folder) merge into one fleet report, and
playbooks/run.yml runs without fleetbench given only the run's variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import FLEETBENCH, REPO, run_cli
from tests.integration.conftest import LabFleet
from tests.integration.test_run import CANARY, MODEL, fleetbench_containers, manifest, run_env

pytestmark = pytest.mark.lab

SLICES = ("lab01,lab02", "lab03,lab04")


def test_two_slices_at_once_merge_into_one_fleet_report(run_lab: LabFleet,
                                                        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {**os.environ, **run_env(runs)}
    procs = [subprocess.Popen(
        [str(FLEETBENCH), "run", "-i", str(run_lab.inventory), "--model", MODEL, "--gpus", "8",
         "--scenario", "latency", "--slots", "2", "--runs-dir", str(runs), "--limit", limit,
         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for limit in SLICES]
    outputs = [proc.communicate(timeout=1200) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:] + err[-3000:]
        assert CANARY not in out + err
    run_dirs = [Path(json.loads(out)["run_dir"]) for out, _ in outputs]
    # Each slice is a run of its own: its own folder, its own hosts.
    assert len(set(run_dirs)) == 2
    assert [sorted(manifest(d)["hosts"]) for d in run_dirs] == [
        s.split(",") for s in SLICES]
    for run_dir in run_dirs:
        for host in manifest(run_dir)["hosts"]:
            assert sorted(p.name for p in (run_dir / "hosts" / host).glob("slot*")
                          if p.is_dir()) == ["slot0", "slot1"]

    out = tmp_path / "fleet"
    done = run_cli("report", "build", *run_dirs, "--out", out, "--json",
                   env={"FLEETBENCH_HISTORY": str(runs / "history.sqlite")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report" / "summary.json").read_text())
    assert [h["host"] for h in report["hosts"]] == ["lab01", "lab02", "lab03", "lab04"]
    assert all(h["status"] == "ok" and h["slots_ok"] == 2 for h in report["hosts"])
    assert report["gate"]["failed"] is False
    # One fleet: every configuration is compared over all four hosts' eight slots.
    assert report["configurations"]
    assert {r["host"] for r in report["records"]} == {"lab01", "lab02", "lab03", "lab04"}
    assert not fleetbench_containers()


def _ansible_playbook(lab: LabFleet, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Plain ansible-playbook from the checkout, as the README shows it."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(lab.inventory),
         str(REPO / "playbooks" / "run.yml"), *extra],
        cwd=cwd, capture_output=True, text=True, timeout=1200, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})


def _lock_dirs(lab: LabFleet) -> list[Path]:
    return sorted(lab.root.glob("hosts/*/work/lock"))


@pytest.mark.parametrize(("variables", "says"), [
    ((), "benchmark_model is not set"),
    (("-e", f"benchmark_model={MODEL}", "-e", "benchmark_gpus=8"), "is a gated model"),
    (("-e", "benchmark_model=Qwen/Qwen2.5-14B-Instruct", "-e", "benchmark_gpus=128"),
     "logical GPUs"),
])
def test_plain_run_yml_stops_on_bad_input_before_any_host(
        run_lab: LabFleet, tmp_path: Path, variables: tuple[str, ...], says: str) -> None:
    done = _ansible_playbook(run_lab, tmp_path, *variables)
    assert done.returncode != 0
    assert says in done.stdout, done.stdout[-3000:]
    # One message, from the validation play; the hosts were never touched.
    assert "Benchmark vLLM on MI300X hosts" not in done.stdout
    assert not _lock_dirs(run_lab) and not fleetbench_containers()
    assert not (tmp_path / "runs").exists()


def test_plain_run_yml_runs_with_only_the_run_variables(run_lab: LabFleet,
                                                         tmp_path: Path) -> None:
    token = tmp_path / "hf_token"
    token.write_text(CANARY + "\n")
    token.chmod(0o600)
    done = _ansible_playbook(
        run_lab, tmp_path, "--limit", "lab01",
        "-e", f"benchmark_model={MODEL}", "-e", "benchmark_gpus=8",
        "-e", "benchmark_scenario=latency", "-e", f"benchmark_hf_token_file={token}",
        "-e", "plan_slots=2", "-e", "benchmark_wait_delay=2")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "lab01" in done.stdout and "failed=0" in done.stdout
    assert CANARY not in done.stdout + done.stderr
    # The validation play made the run id and the folder the archive went to.
    (archive,) = tmp_path.glob("runs/*/hosts/lab01.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    for slot in ("slot0", "slot1"):
        assert any(n.startswith(f"{slot}/") and n.endswith("_report.csv") for n in names), names
    assert not _lock_dirs(run_lab) and not fleetbench_containers()
