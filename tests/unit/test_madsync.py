"""Offline MAD: a snapshot of a controller-side checkout, checked before anything starts."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from fleetbench.errors import BadInput
from fleetbench.lab.mad import create_mad_repo
from fleetbench.madsync import SCRIPT, resolve_snapshot, write_archive


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
    with pytest.raises(BadInput, match=r"has no scripts/vllm/vllm_benchmark_report\.sh"):
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
