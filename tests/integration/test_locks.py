"""A run whose controller dies: its Ansible dies with it, its locks say so, unlock frees them.

Real lab hosts, the real Docker engine, fleetbench killed with SIGKILL mid-benchmark.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from fleetbench.lab.services import descendants
from fleetbench.lock import boot_id
from tests.conftest import FLEETBENCH, run_cli
from tests.integration.conftest import LabFleet
from tests.integration.test_run import (
    StartEvents,
    fleetbench_run,
    manifest,
    run_args,
    run_env,
    stop,
    summary_reports,
    wait_for_containers,
)

pytestmark = pytest.mark.lab

HOSTS = ("lab03", "lab04")
# How long after fleetbench's death nothing of its Ansible may still run.
DEADLINE_S = 15


def started(pid: int) -> str | None:
    """The start time of a living (not zombie) process, None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def lock_of(lab: LabFleet, host: str) -> Path:
    return lab.root / "hosts" / host / "work" / "lock"


def run_containers(run_id: str) -> list[str]:
    """The containers labelled with ``run_id`` (the Docker engine is shared with whatever
    else runs on this machine)."""
    client = docker.from_env()
    try:
        listed = client.api.containers(all=True, filters={"label": f"fleetbench.run={run_id}"})
        return [c["Names"][0].lstrip("/") for c in listed]
    finally:
        client.close()


def check_json(lab: LabFleet, *extra: str) -> dict[str, dict[str, Any]]:
    done = run_cli("check", "-i", lab.inventory, "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    hosts: dict[str, dict[str, Any]] = json.loads(done.stdout)["hosts"]
    return hosts


def unlock_json(lab: LabFleet, run_id: str, *extra: str) -> tuple[int, dict[str, Any]]:
    done = run_cli("unlock", "-i", lab.inventory, "--run", run_id, "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, data


def playbooks_of(lab: LabFleet) -> list[str]:
    """ansible-playbook processes acting on ``lab`` (by its inventory on their command line)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        line = cmdline(int(entry.name))
        if "ansible-playbook" in line and str(lab.inventory) in line:
            found.append(line)
    return found


def host_status(runs: Path, run_id: str, host: str) -> str:
    """The host's status in the run's manifest ("" before there is one)."""
    try:
        return str(manifest(runs / run_id)["hosts"][host]["status"]) if run_id else ""
    except (OSError, ValueError, KeyError):
        return ""


def status_json(run_dir: str) -> dict[str, Any]:
    done = run_cli("status", run_dir, "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_kill_9_mid_benchmark_then_resume_reattaches_and_starts_nothing_twice(
        run_lab: LabFleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    limit = ",".join(HOSTS)
    events = StartEvents().__enter__()
    for host in HOSTS:
        run_lab.set(host, "bench=slow", "slow_s=3")  # about 24 s of benchmark
    proc = subprocess.Popen([str(FLEETBENCH), *run_args(run_lab, runs, "--limit", limit,
                                                        "--no-report")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **run_env(runs)})
    run_id = ""

    def this_run() -> str:
        return next((d.name for d in runs.glob("2*")), "")

    try:
        # Until the manifest says the slots run on their own (start.yml is over).
        wait_for_containers(proc, lambda _: all(
            host_status(runs, this_run(), h) == "running" for h in HOSTS))
        run_id = this_run()
        supervisors = [json.loads(p.read_text())["supervisor"]["pid"] for p in
                       run_lab.root.glob(f"hosts/*/work/runs/{run_id}/slots.json")]
        below = {pid: started(pid) for pid in descendants(proc.pid)}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        while time.monotonic() - killed < DEADLINE_S:
            left = [cmdline(pid) for pid, start in below.items()
                    if start is not None and started(pid) == start] + playbooks_of(run_lab)
            if not left:
                break
            time.sleep(0.5)
        assert left == [], f"still running {DEADLINE_S} s after fleetbench was killed: {left}"

        # Another terminal sees where the run stands: slots going on without a controller.
        status = status_json(str(runs / run_id))
        for host in HOSTS:
            entry = status["hosts"][host]
            assert entry["status"] == "running"
            assert entry["on_host"]["reachable"] is True
            assert entry["on_host"]["state"] in {"running", "done"}
            assert set(entry["on_host"]["slots"]) == {"slot0", "slot1"}
            assert entry["on_host"]["controller"]["pid"] == proc.pid
        # The locks name this controller and that dead fleetbench: check calls them stale.
        checked = check_json(run_lab, "--limit", limit)
        for host in HOSTS:
            assert checked[host]["lock"]["run_id"] == run_id
            assert checked[host]["lock"]["stale"] is True
            assert checked[host]["lock"]["controller"]["pid"] == proc.pid
        # A new run never takes a stale lock over: it says so and names the fix.
        code, summary, _ = fleetbench_run(run_lab, tmp_path / "runs2", "--limit", "lab03",
                                          "--no-report")
        assert code == 1
        entry = manifest(Path(summary["run_dir"]))["hosts"]["lab03"]
        assert entry["status"] == "skipped:locked"
        assert "stale" in entry["reason"]
        assert f"fleetbench unlock -i {run_lab.inventory} --run {run_id}" in entry["reason"]

        # --resume takes the locks over, waits for what still runs, collects what ended.
        done = run_cli("run", "--resume", str(runs / run_id), "--no-report", "--json",
                       env=run_env(runs))
        assert done.returncode == 0, done.stdout + done.stderr
        hosts = json.loads(done.stdout)["hosts"]
        assert {h: e["status"] for h, e in hosts.items()} == dict.fromkeys(HOSTS, "ok")
        events.__exit__()
        started_once = events.of(run_id)
        assert len(started_once) == 4 and len(set(started_once)) == 4, started_once
        for host in HOSTS:
            assert len(summary_reports(runs / run_id / "hosts" / host)) == 2
        # Nothing of the run is left on the hosts.
        assert run_containers(run_id) == []
        assert not any(lock_of(run_lab, h).exists() for h in HOSTS)
        assert not list(run_lab.root.glob(f"hosts/*/work/runs/{run_id}*"))
        assert [pid for pid in supervisors if Path(f"/proc/{pid}").exists()
                and "python" in cmdline(pid)] == []
    finally:
        stop(proc)
        if run_id and (run_containers(run_id) or any(lock_of(run_lab, h).exists()
                                                     for h in HOSTS)):
            run_cli("unlock", "-i", run_lab.inventory, "--run", run_id, "--limit", limit)
        for host in HOSTS:
            run_lab.restore(host)
    assert not any(lock_of(run_lab, h).exists() for h in HOSTS)


def test_ctrl_c_leaves_no_process_of_its_ansible_behind(run_lab: LabFleet,
                                                         tmp_path: Path) -> None:
    """A cancel has ansible-runner SIGKILL ansible-playbook; its workers, each in a session
    of its own, must not live on (one reporting to its dead parent blocks for good)."""
    runs = tmp_path / "runs"
    run_lab.set("lab03", "bench=hang")
    proc = subprocess.Popen([str(FLEETBENCH), *run_args(run_lab, runs, "--limit", "lab03")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **run_env(runs)})

    def this_run() -> str:
        return next((d.name for d in runs.glob("2*")), "")

    try:
        wait_for_containers(proc, lambda _: bool(this_run())
                            and len(run_containers(this_run())) >= 2)
        below = {pid: started(pid) for pid in descendants(proc.pid)}
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        stop(proc)
        run_lab.restore("lab03")
    assert proc.returncode == 1, err
    assert json.loads(out)["hosts"]["lab03"]["status"] == "failed:interrupted"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # ssh's ControlPersist masters of a playbook that ended normally (start.yml may end
        # after the look above) outlive it by design for their persist time (ansible.cfg),
        # for the next playbook to reuse; everything else must be gone.
        left = {pid: cmdline(pid) for pid, start in below.items()
                if start is not None and started(pid) == start
                and not cmdline(pid).rstrip().endswith("[mux]")}
        if not left:
            break
        time.sleep(0.5)
    assert left == {}, f"still running after the interrupted run ended: {left}"
    assert run_containers(this_run()) == []
    assert not lock_of(run_lab, "lab03").exists()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _write_lock(lab: LabFleet, host: str, owner: dict[str, Any]) -> Path:
    lock = lock_of(lab, host)
    lock.mkdir(parents=True)
    (lock / "owner.json").write_text(json.dumps(owner))
    return lock


def test_check_judges_hand_made_locks_and_unlock_leaves_another_runs_alone(
        lab: LabFleet) -> None:
    dead = {"run_id": "20261127T000000Z-dead", "since": "2026-11-27T00:00:00Z",
            "controller": {"host": socket.gethostname(), "pid": _dead_pid(),
                           "boot_id": boot_id()}}
    other = {"run_id": "20261127T000000Z-else", "since": "2026-11-27T00:00:00Z",
             "controller": {"host": "another-controller", "pid": 1, "boot_id": "x"}}
    locks = [_write_lock(lab, "lab01", dead), _write_lock(lab, "lab02", other)]
    try:
        hosts = check_json(lab)
        assert hosts["lab01"]["lock"] == {"run_id": dead["run_id"],
                                          "controller": dead["controller"],
                                          "age_s": hosts["lab01"]["lock"]["age_s"],
                                          "stale": True}
        assert hosts["lab01"]["lock"]["age_s"] > 86400  # since 2026-11-27, by the host's clock
        # Another controller's run: only that controller can tell, so never stale here.
        assert hosts["lab02"]["lock"]["stale"] is False
        assert hosts["lab02"]["lock"]["controller"]["host"] == "another-controller"
        assert "lock" not in hosts["lab03"]

        code, unlocked = unlock_json(lab, dead["run_id"])
        assert code == 0, unlocked
        assert unlocked["hosts"]["lab01"]["status"] == "released"
        assert unlocked["hosts"]["lab02"] == {
            "status": "held-by-other", "containers_removed": [],
            "held_by": other["run_id"], "message": unlocked["hosts"]["lab02"]["message"]}
        assert unlocked["hosts"]["lab03"]["status"] == "not-locked"
        assert not locks[0].exists()
        assert json.loads((locks[1] / "owner.json").read_text()) == other  # left alone
        table = run_cli("unlock", "-i", lab.inventory, "--run", other["run_id"],
                        "--limit", "lab02", env={"COLUMNS": "300"})
        assert table.returncode == 0, table.stderr
        assert "lab02" in table.stdout and "released" in table.stdout
        assert not locks[1].exists()
    finally:
        for lock in locks:
            for child in lock.glob("*"):
                child.unlink()
            if lock.exists():
                lock.rmdir()
