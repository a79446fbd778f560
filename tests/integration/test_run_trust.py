"""Nothing lost, nothing leaked: relative paths from another directory, and the token
scanned for on the controller while the run runs and after it."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fleetbench.lab.services import descendants
from tests.conftest import FLEETBENCH
from tests.integration.conftest import LabFleet
from tests.integration.test_run import (
    MODEL,
    fleetbench_containers,
    manifest,
    scan_for,
    stop,
    summary_reports,
)

pytestmark = pytest.mark.lab

CANARY = "hf_CANARY_trust_41c7d2_do_not_leak"


def fleetbench(cwd: Path, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FLEETBENCH), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, check=False)


def test_defaults_from_another_directory_lose_nothing(run_lab: LabFleet, tmp_path: Path) -> None:
    """The README's cron line: cd somewhere, relative inventory, relative --runs-dir."""
    work = tmp_path / "srv"
    work.mkdir()
    inventory = os.path.relpath(run_lab.inventory, work)
    env = {"HF_TOKEN": CANARY, "FLEETBENCH_HISTORY": str(tmp_path / "history.sqlite")}
    run_lab.set("lab02", "bench=fail")
    try:
        done = fleetbench(work, "run", "-i", inventory, "--model", MODEL, "--gpus", "8",
                          "--scenario", "latency", "--slots", "1", "--limit", "lab01,lab02",
                          "--no-report", "--json", env=env)
    finally:
        run_lab.restore("lab02")
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    run_dir = Path(summary["run_dir"])
    assert run_dir.is_absolute() and run_dir.parent == work / "runs"
    assert summary["hosts"]["lab01"]["status"] == "ok"
    assert summary["hosts"]["lab02"]["status"] != "ok"
    assert len(summary_reports(run_dir / "hosts" / "lab01")) == 1
    assert (run_dir / "hosts" / "lab02" / "slot0" / "benchmark.log").exists()

    # --resume with a relative run directory, from yet another directory.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = os.path.relpath(run_dir, elsewhere)
    done = fleetbench(elsewhere, "run", "--resume", relative, "--rerun-failed", "--no-report",
                      "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {e["status"] for e in manifest(run_dir)["hosts"].values()} == {"ok"}
    assert len(summary_reports(run_dir / "hosts" / "lab02")) == 1
    assert not list(elsewhere.iterdir())  # nothing written where it was started
    assert fleetbench_containers() == []


def _controller_places() -> list[Path]:
    """Where fleetbench and ansible-runner could leave files on the controller."""
    tmp = Path(tempfile.gettempdir())
    return [*tmp.glob("fleetbench-*"), Path("/dev/shm"), Path.home() / ".ansible"]


def _scan_while_running(*roots: Path) -> list[str]:
    """The files under ``roots`` that hold the canary; files and folders that Ansible and
    the runner remove while we look are passed over."""
    hits = []
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                try:
                    if CANARY.encode() in (Path(folder) / name).read_bytes():
                        hits.append(str(Path(folder) / name))
                except OSError:
                    continue
    return hits


def _restarted(pid: int) -> bool:
    """True once fleetbench has started itself again without its secrets (until then its
    environment block is the one the user gave it)."""
    try:
        return b"\0-m\0fleetbench\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _leaks_in_processes(root_pid: int) -> tuple[list[str], int]:
    """fleetbench (``root_pid``, once restarted) and its descendants whose environment or
    command line holds the canary."""
    leaks, seen = [], 0
    for pid in [root_pid, *descendants(root_pid)] if _restarted(root_pid) else []:
        for what in ("environ", "cmdline"):
            try:
                data = Path(f"/proc/{pid}/{what}").read_bytes()
            except OSError:
                continue  # ended meanwhile
            seen += 1
            if CANARY.encode() in data:
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    command = b"?"
                leaks.append(f"{pid} {what}: {command.decode(errors='replace')[:200]}")
    return leaks, seen


def test_token_never_reaches_the_controllers_disk_or_children(
        run_lab: LabFleet, tmp_path: Path) -> None:
    for host in ("lab01", "lab02"):
        run_lab.set(host, "bench=slow", "slow_s=1")
    runs = tmp_path / "runs"
    env = {**os.environ, "HF_TOKEN": CANARY, "HUGGING_FACE_HUB_TOKEN": CANARY,
           "FLEETBENCH_HISTORY": str(tmp_path / "history.sqlite")}
    proc = subprocess.Popen(
        [str(FLEETBENCH), "run", "-i", str(run_lab.inventory), "--model", MODEL, "--gpus", "8",
         "--scenario", "latency", "--slots", "2", "--limit", "lab01,lab02",
         "--runs-dir", str(runs), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    leaks: list[str] = []
    scans = processes = 0
    try:
        while proc.poll() is None:
            found, seen = _leaks_in_processes(proc.pid)
            leaks += found
            processes = max(processes, seen)
            leaks += _scan_while_running(*_controller_places())
            scans += 1
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
        for host in ("lab01", "lab02"):
            run_lab.restore(host)
    assert proc.returncode == 0, err
    assert scans >= 5 and processes > 0  # the scans really ran while the run did
    assert leaks == []
    run_dir = Path(json.loads(out)["run_dir"])
    assert {e["status"] for e in manifest(run_dir)["hosts"].values()} == {"ok"}
    # The container did get the token (the lab's MAD refuses gated models without one) ...
    assert len(summary_reports(run_dir / "hosts" / "lab01")) == 2
    # ... and nothing is left anywhere afterwards, on the controller or the hosts.
    assert scan_for(CANARY, run_dir, run_lab.root, *_controller_places()) == []
    assert CANARY not in out + err


def test_a_host_goes_from_a_mad_snapshot_back_to_git(run_lab: LabFleet, tmp_path: Path) -> None:
    """An offline run leaves no snapshot behind that would block the next run's clone."""
    env = {"HF_TOKEN": CANARY, "FLEETBENCH_HISTORY": str(tmp_path / "history.sqlite")}
    common = ["run", "-i", str(run_lab.inventory), "--model", MODEL, "--gpus", "8",
              "--scenario", "latency", "--slots", "1", "--limit", "lab02", "--no-report",
              "--json", "--runs-dir", str(tmp_path / "runs")]
    synced = fleetbench(tmp_path, *common, "--mad-sync", str(run_lab.root / "mad"),
                        "--mad-ref", "v-era-d", env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert not (run_lab.root / "hosts" / "lab02" / "work" / "mad").exists()
    cloned = fleetbench(tmp_path, *common, env=env)
    assert cloned.returncode == 0, cloned.stdout + cloned.stderr
    assert json.loads(cloned.stdout)["hosts"]["lab02"]["status"] == "ok"
