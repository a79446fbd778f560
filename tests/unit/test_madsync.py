"""Offline MAD: a snapshot of a controller-side checkout, checked before anything starts."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.lab.mad import create_mad_repo
from fleetbench.madsync import SCRIPT, check_scenario, resolve_snapshot, write_archive


@pytest.fixture(scope="module")
def mad_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_mad_repo(tmp_path_factory.mktemp("mad") / "MAD").path


def test_snapshot_of_a_ref_with_the_script(mad_checkout: Path, tmp_path: Path) -> None:
    snapshot = resolve_snapshot(mad_checkout, "v-era-d")
    assert len(snapshot.commit) == 40
    archive = write_archive(snapshot, tmp_path)
    with tarfile.open(archive) as tar:
        assert SCRIPT in tar.getnames()


def test_a_ref_without_the_script_is_bad_input(mad_checkout: Path) -> None:
    # The lab's 2025-08 commit: run.sh with CSV configs, no run_vllm.py.
    with pytest.raises(BadInput, match=r"run\.sh with CSV configs .*vllm_benchmark_report\.sh"):
        resolve_snapshot(mad_checkout, "v-era-ef")


@pytest.mark.parametrize(("ref", "words"), [("no-such-ref", "is not a commit")])
def test_unknown_ref(mad_checkout: Path, ref: str, words: str) -> None:
    with pytest.raises(BadInput, match=words):
        resolve_snapshot(mad_checkout, ref)


def test_not_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is not a commit there"):
        resolve_snapshot(tmp_path, None)
    with pytest.raises(BadInput, match="is not a folder"):
        resolve_snapshot(tmp_path / "missing", None)


LATENCY_AND_THROUGHPUT_ONLY = """#!/bin/bash
# A report script of MAD's 2024 shape: -s latency|throughput|all, nothing else.
while getopts s:m:g:d: flag; do
  case "${flag}" in s) scenario=${OPTARG};; m) model=${OPTARG};; g) tp=${OPTARG};; d) dt=${OPTARG};; esac
done
echo "$scenario $model $tp $dt"
"""


@pytest.fixture(scope="module")
def checkout_without_serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("mad2024") / "MAD"
    script = repo / SCRIPT
    script.parent.mkdir(parents=True)
    script.write_text(LATENCY_AND_THROUGHPUT_ONLY)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "PATH": "/usr/bin:/bin"}
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "2024 layout"]):
        subprocess.run(["git", "-C", str(repo), *argv], env=env, check=True)
    return repo


def test_serving_support_is_read_from_the_script(mad_checkout: Path,
                                                  checkout_without_serving: Path) -> None:
    assert resolve_snapshot(mad_checkout, "v-era-d").runs_serving
    old = resolve_snapshot(checkout_without_serving, None)
    assert not old.runs_serving
    check_scenario(old, "all")  # latency and throughput: fine
    with pytest.raises(BadInput, match="has no serving benchmark"):
        check_scenario(old, "serving")


def test_run_refuses_serving_on_a_checkout_without_it(
        checkout_without_serving: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n")
    runs = tmp_path / "runs"
    assert main(["run", "-i", str(inventory), "--model", "Qwen/Qwen2-7B-Instruct",
                 "--gpus", "8", "--scenario", "serving", "--mad-sync",
                 str(checkout_without_serving), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "has no serving benchmark" in err and "--scenario" in err
    assert not runs.exists()
