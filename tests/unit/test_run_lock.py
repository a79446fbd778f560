"""The per-host run lock the probe takes and collect/cleanup release (module_utils)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from fleetbench.lock import Controller
from fleetbench.preflight import judge_probe
from tests.conftest import module_util


@pytest.fixture(scope="module")
def lock() -> types.ModuleType:
    return module_util("fleetbench_run")


CONTROLLER = {"host": "ctl01", "pid": 4242, "boot_id": "b00t-1"}


@pytest.fixture(scope="module")
def probe_module(lock: types.ModuleType) -> types.ModuleType:
    module_util("fleetbench_host")  # what the probe imports, as on a host
    return module_util("fleetbench_probe")


def test_one_run_at_a_time(lock: types.ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "work" / "lock")
    taken, owner, message = lock.take_lock(path, "run-a", CONTROLLER)
    assert taken and message is None
    assert owner == {"run_id": "run-a", "since": owner["since"], "controller": CONTROLLER}
    assert json.loads((Path(path) / "owner.json").read_text()) == owner
    assert os.stat(path).st_mode & 0o777 == 0o700  # the token file goes in here
    refused, holder, message = lock.take_lock(path, "run-b", {**CONTROLLER, "pid": 7})
    assert not refused and holder["run_id"] == "run-a"
    assert holder["controller"] == CONTROLLER and isinstance(holder["age_s"], int)
    assert "in use by fleetbench run run-a" in message
    assert lock.held_by(path)["run_id"] == "run-a"
    assert json.loads((Path(path) / "owner.json").read_text()) == owner  # left as it was


def test_resume_takes_its_own_lock_over_with_the_new_controller(lock: types.ModuleType,
                                                               tmp_path: Path) -> None:
    path = str(tmp_path / "lock")
    _, first, _ = lock.take_lock(path, "run-a", CONTROLLER)
    (Path(path) / "hf_token").write_text("x")
    resumer = {"host": "ctl02", "pid": 99, "boot_id": "b00t-2"}
    taken, owner, message = lock.take_lock(path, "run-a", resumer)
    assert taken and message is None
    assert owner == {"run_id": "run-a", "since": first["since"], "controller": resumer}
    assert json.loads((Path(path) / "owner.json").read_text()) == owner
    assert sorted(p.name for p in Path(path).iterdir()) == ["hf_token", "owner.json"]


def test_release_only_by_the_holder(lock: types.ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "lock")
    lock.take_lock(path, "run-a", CONTROLLER)
    (Path(path) / "hf_token").write_text("x")
    assert not lock.release_lock(path, "run-b")
    assert Path(path, "hf_token").exists()
    assert lock.release_lock(path, "run-a")
    assert not Path(path).exists() and lock.held_by(path) == {}
    assert not lock.release_lock(path, "run-a")  # nothing left to release


def test_a_lock_is_never_taken_over_by_age(lock: types.ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.mkdir()
    dead = {"run_id": "dead", "since": "2020-01-01T00:00:00Z", "controller": CONTROLLER}
    (path / "owner.json").write_text(json.dumps(dead))
    old = time.time() - 5 * 365 * 86400
    os.utime(path, (old, old))
    taken, owner, message = lock.take_lock(str(path), "run-b", CONTROLLER)
    assert not taken and owner["run_id"] == "dead" and "dead" in message
    assert owner["age_s"] > 5 * 365 * 86400  # from "since", by the host's clock
    assert json.loads((path / "owner.json").read_text()) == dead
    # A lock folder without a readable owner blocks too; its age is the folder's.
    broken = tmp_path / "broken"
    broken.mkdir()
    os.utime(broken, (time.time() - 60, time.time() - 60))
    taken, owner, message = lock.take_lock(str(broken), "run-c", CONTROLLER)
    assert not taken and "run ?" in message and 59 <= owner["age_s"] <= 120


def test_the_probe_takes_the_lock_with_the_controller_it_is_given(
        probe_module: types.ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "work" / "lock")
    params = {"lock_path": path, "lock_run_id": "run-a", "lock_controller": CONTROLLER,
              "sysfs_root": str(tmp_path), "disk_path": str(tmp_path), "command_timeout": 5}
    result = probe_module.probe(params)
    assert result["lock"]["taken"] and result["lock"]["owner"]["controller"] == CONTROLLER
    held = probe_module.probe({**params, "lock_run_id": "run-b",
                               "lock_controller": {**CONTROLLER, "pid": 1}})
    assert held["failed"] and held["locked"] and not held["lock"]["taken"]
    assert held["lock"]["owner"]["run_id"] == "run-a"
    assert held["lock"]["owner"]["controller"] == CONTROLLER
    # fleetbench check only reads who holds it.
    read = probe_module.probe({k: v for k, v in params.items()
                               if k not in {"lock_run_id", "lock_controller"}})
    assert not read["lock"]["taken"] and read["lock"]["owner"]["run_id"] == "run-a"
    assert json.loads((Path(path) / "owner.json").read_text())["controller"] == CONTROLLER


def _probe_held_by(owner: dict[str, object]) -> dict[str, object]:
    return {"docker": {"rc": 0, "server_version": "28"}, "rocm_version": "6.4.1", "raw": {},
            "lock": {"taken": False, "owner": owner}}


def test_check_names_the_holder_of_a_live_run() -> None:
    here = Controller(host="ctl01", pid=os.getpid(), boot_id="b00t-1")
    live = {"run_id": "20261127-0101-ab", "since": "T", "age_s": 30,
            "controller": {"host": "ctl01", "pid": os.getpid(), "boot_id": "b00t-1"}}
    verdict = judge_probe(_probe_held_by(live), {}, controller=here, inventory="inv.yml")
    assert verdict["lock"] == {"run_id": "20261127-0101-ab", "controller": live["controller"],
                               "age_s": 30, "stale": False}
    warnings = verdict["warnings"]
    assert any("in use by fleetbench run 20261127-0101-ab" in w and "skipped:locked" in w
               and "running on this controller" in w for w in warnings), warnings
    probe = _probe_held_by({"run_id": "mine"})
    probe["lock"] = {"taken": True, "owner": {"run_id": "mine"}}  # fleetbench run's own
    verdict = judge_probe(probe, {}, controller=here)
    assert verdict["lock"] is None and not any("in use" in w for w in verdict["warnings"])
    verdict = judge_probe(_probe_held_by({}), {}, controller=here)
    assert verdict["lock"] is None and not any("in use" in w for w in verdict["warnings"])


def test_check_says_a_dead_runs_lock_is_stale_and_how_to_release_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(done.stdout)  # ended: no process has that pid now (until reused)
    here = Controller(host="ctl01", pid=os.getpid(), boot_id="b00t-1")
    owner = {"run_id": "20261127-dead", "since": "T", "age_s": 7200,
             "controller": {"host": "ctl01", "pid": dead_pid, "boot_id": "b00t-1"}}
    verdict = judge_probe(_probe_held_by(owner), {}, controller=here,
                          inventory="/srv/fleet/inv.yml")
    assert verdict["lock"]["stale"] is True and verdict["lock"]["age_s"] == 7200
    warning = next(w for w in verdict["warnings"] if "in use" in w)
    assert "stale" in warning
    assert "`fleetbench unlock -i /srv/fleet/inv.yml --run 20261127-dead`" in warning
