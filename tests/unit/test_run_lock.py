"""The per-host run lock the probe takes and collect/cleanup release (module_utils)."""

from __future__ import annotations

import json
import os
import time
import types
from pathlib import Path

import pytest

from fleetbench.preflight import judge_probe
from tests.conftest import module_util


@pytest.fixture(scope="module")
def lock() -> types.ModuleType:
    return module_util("fleetbench_run")


def test_one_run_at_a_time(lock: types.ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "work" / "lock")
    taken, owner, message = lock.take_lock(path, "run-a", 48)
    assert taken and owner["run_id"] == "run-a" and message is None
    assert os.stat(path).st_mode & 0o777 == 0o700  # the token file goes in here
    again, _, _ = lock.take_lock(path, "run-a", 48)  # --resume of the same run
    assert again
    refused, holder, message = lock.take_lock(path, "run-b", 48)
    assert not refused and holder["run_id"] == "run-a"
    assert "in use by fleetbench run run-a" in message and path in message
    assert lock.held_by(path)["run_id"] == "run-a"


def test_release_only_by_the_holder(lock: types.ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "lock")
    lock.take_lock(path, "run-a", 48)
    (Path(path) / "hf_token").write_text("x")
    assert not lock.release_lock(path, "run-b")
    assert Path(path, "hf_token").exists()
    assert lock.release_lock(path, "run-a")
    assert not Path(path).exists() and lock.held_by(path) == {}
    assert not lock.release_lock(path, "run-a")  # nothing left to release


def test_a_dead_runs_lock_is_taken_over_after_the_stale_age(lock: types.ModuleType,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.mkdir()
    (path / "owner.json").write_text(json.dumps({"run_id": "dead", "since": "long ago"}))
    old = time.time() - 3 * 3600
    os.utime(path, (old, old))
    assert not lock.take_lock(str(path), "run-b", 4)[0]
    taken, owner, _ = lock.take_lock(str(path), "run-b", 2)
    assert taken and owner["run_id"] == "run-b"
    # A lock folder without a readable owner still blocks until it is stale.
    broken = tmp_path / "broken"
    broken.mkdir()
    taken, _, message = lock.take_lock(str(broken), "run-c", 48)
    assert not taken and "run ?" in message


def test_check_warns_about_a_host_in_use() -> None:
    probe = {"docker": {"rc": 0, "server_version": "28"}, "rocm_version": "6.4.1",
             "raw": {}, "lock": {"taken": False,
                                 "owner": {"run_id": "20261127-0101-ab", "since": "T"}}}
    warnings = judge_probe(probe, {})["warnings"]
    assert any("in use by fleetbench run 20261127-0101-ab" in w and "skipped:locked" in w
               for w in warnings), warnings
    probe["lock"] = {"taken": True, "owner": {"run_id": "mine"}}  # fleetbench run's own
    assert not any("in use" in w for w in judge_probe(probe, {})["warnings"])
    probe["lock"] = {"taken": False, "owner": {}}
    assert not any("in use" in w for w in judge_probe(probe, {})["warnings"])
