"""`fleetbench check` on a 3-host lab over real SSH."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.integration.conftest import LabFleet

pytestmark = pytest.mark.lab


def check_json(lab: LabFleet, *extra: str) -> tuple[int, dict[str, dict[str, object]]]:
    done = run_cli("check", "-i", lab.inventory, "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)["hosts"]


def test_healthy_lab_is_all_ok(lab: LabFleet) -> None:
    code, hosts = check_json(lab)
    assert code == 0
    assert set(hosts) == {"lab01", "lab02", "lab03"}
    for host in hosts.values():
        assert host == {
            "status": "ok",
            "compute_partition": "CPX",
            "memory_partition": "NPS4",
            "logical_gpus": 64,
            "problems": [],
        }


def test_spx_nps1_host_fails_and_others_stay_ok(lab: LabFleet) -> None:
    lab.set("lab02", "compute=SPX", "memory=NPS1")
    try:
        code, hosts = check_json(lab)
    finally:
        lab.restore("lab02")
    assert code == 1
    assert hosts["lab02"]["status"] == "failed"
    assert hosts["lab02"]["compute_partition"] == "SPX"
    assert hosts["lab02"]["memory_partition"] == "NPS1"
    assert hosts["lab02"]["logical_gpus"] == 8
    assert any("CPX" in p for p in hosts["lab02"]["problems"])  # type: ignore[union-attr]
    assert hosts["lab01"]["status"] == hosts["lab03"]["status"] == "ok"


def test_stopped_sshd_is_unreachable_and_the_rest_checked(lab: LabFleet) -> None:
    lab.set("lab03", "sshd=stopped")
    try:
        code, hosts = check_json(lab)
    finally:
        lab.restore("lab03")
    assert code == 1
    assert hosts["lab03"]["status"] == "unreachable"
    assert hosts["lab03"]["problems"]
    assert hosts["lab01"]["status"] == hosts["lab02"]["status"] == "ok"


def test_limit_narrows_the_fleet(lab: LabFleet) -> None:
    code, hosts = check_json(lab, "--limit", "lab01")
    assert code == 0
    assert list(hosts) == ["lab01"]


def test_table_output_names_every_host(lab: LabFleet) -> None:
    done = run_cli("check", "-i", lab.inventory)
    assert done.returncode == 0, done.stderr
    for name in ("lab01", "lab02", "lab03"):
        assert name in done.stdout
    assert "CPX" in done.stdout


def test_a_host_in_use_by_a_run_is_named_and_left_locked(lab: LabFleet) -> None:
    lock = lab.root / "hosts" / "lab02" / "work" / "lock"
    lock.mkdir(parents=True)
    (lock / "owner.json").write_text(json.dumps({"run_id": "20261127-0000-busy",
                                                 "since": "2026-11-27T00:00:00Z"}))
    try:
        done = run_cli("check", "-i", lab.inventory, env={"COLUMNS": "400"})
        held = json.loads((lock / "owner.json").read_text())
    finally:
        (lock / "owner.json").unlink()
        lock.rmdir()
    assert done.returncode == 0, done.stderr  # a warning, not a failure
    text = " ".join(done.stdout.split())
    assert "in use by fleetbench run 20261127-0000-busy" in text
    assert held["run_id"] == "20261127-0000-busy"  # check only reads the lock


def test_plain_ansible_playbook_runs_the_same_playbook(lab: LabFleet) -> None:
    """Playbooks stay runnable without fleetbench's runner (AWX, ansible-playbook)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(lab.inventory),
         "playbooks/check.yml"],
        cwd=repo, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "lab01" in done.stdout and "failed=0" in done.stdout
