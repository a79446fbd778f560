"""A MAD snapshot the controller sent is the run's footprint: clean-up removes it, so that a
later run cloning MAD into the same folder does not find it taken. A git checkout stays."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from tests.conftest import module_util


@pytest.fixture(scope="module")
def footprint() -> types.ModuleType:
    return module_util("fleetbench_run")


def _held(work: Path, run_id: str) -> str:
    lock = work / "lock"
    lock.mkdir(parents=True)
    (lock / "owner.json").write_text(json.dumps({"run_id": run_id}))
    return str(lock)


def test_snapshot_goes_with_the_runs_lock(footprint: types.ModuleType, tmp_path: Path) -> None:
    (tmp_path / "mad" / "scripts").mkdir(parents=True)
    lock = _held(tmp_path, "run-snapshot-test-a")
    cleaned = footprint.clean_up("run-snapshot-test-a", "nohost", lock)
    assert cleaned["released"] and cleaned["mad_snapshot_removed"]
    assert not (tmp_path / "mad").exists() and not (tmp_path / "lock").exists()


def test_a_git_checkout_stays(footprint: types.ModuleType, tmp_path: Path) -> None:
    (tmp_path / "mad" / ".git").mkdir(parents=True)
    lock = _held(tmp_path, "run-snapshot-test-b")
    assert not footprint.clean_up("run-snapshot-test-b", "nohost", lock)["mad_snapshot_removed"]
    assert (tmp_path / "mad" / ".git").is_dir()


def test_another_runs_snapshot_stays(footprint: types.ModuleType, tmp_path: Path) -> None:
    (tmp_path / "mad").mkdir()
    lock = _held(tmp_path, "run-snapshot-test-other")
    cleaned = footprint.clean_up("run-snapshot-test-c", "nohost", lock)
    assert not cleaned["released"] and not cleaned["mad_snapshot_removed"]
    assert (tmp_path / "mad").is_dir()
