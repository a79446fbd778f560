"""The stand-in MAD git repository: refs, trees, determinism."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from fleetbench.errors import LabError
from fleetbench.lab.mad import (
    DEFAULT_BRANCH,
    ERA_TAGS,
    REPORT_SCRIPT,
    MadRepo,
    create_mad_repo,
    era_files,
    template_files,
)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def tree(repo: Path, ref: str) -> dict[str, str]:
    """path -> git mode of every file at ``ref``."""
    listing = git(repo, "ls-tree", "-r", ref)
    entries: dict[str, str] = {}
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        entries[path] = meta.split()[0]
    return entries


def test_both_refs_exist_and_main_is_era_d(mad_repo: MadRepo) -> None:
    repo = mad_repo.path
    assert set(mad_repo.tags) == {"v-era-d", "v-era-ef", "v-era-f"}
    assert mad_repo.commit == mad_repo.commit_of("D") == git(repo, "rev-parse", "main")
    assert mad_repo.default_branch == DEFAULT_BRANCH == "main"
    assert set(mad_repo.branches) == {"main", "era-ef", "era-f"}
    assert dict(mad_repo.refs) == {**mad_repo.branches, **mad_repo.tags}
    for ref, commit in mad_repo.refs.items():
        assert git(repo, "rev-parse", f"{ref}^{{commit}}") == commit
    assert mad_repo.branches["era-ef"] == mad_repo.commit_of("EF")
    # Era E/F is MAD's later history: a child of the era D commit.
    assert git(repo, "rev-parse", f"{ERA_TAGS['EF']}^") == mad_repo.commit_of("D")
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "status", "--porcelain") == ""


def test_era_d_tree_holds_the_executable_report_script(mad_repo: MadRepo) -> None:
    files = tree(mad_repo.path, ERA_TAGS["D"])
    assert files[REPORT_SCRIPT] == "100755"
    assert {"README.md", "requirements.txt", "scripts/vllm/README.md"} <= set(files)
    assert "scripts/vllm/run.sh" not in files
    committed = subprocess.run(
        ["git", "show", f"{ERA_TAGS['D']}:{REPORT_SCRIPT}"],
        cwd=mad_repo.path,
        capture_output=True,
        check=True,
    ).stdout
    assert committed == template_files()[REPORT_SCRIPT]
    checked_out = mad_repo.path / REPORT_SCRIPT
    assert checked_out.stat().st_mode & stat.S_IXUSR


def test_era_ef_ref_has_no_report_script(mad_repo: MadRepo, tmp_path: Path) -> None:
    files = tree(mad_repo.path, ERA_TAGS["EF"])
    assert REPORT_SCRIPT not in files
    assert files["scripts/vllm/run.sh"] == "100755"
    assert any(path.startswith("scripts/vllm/configs/") for path in files)
    clone = tmp_path / "MAD"
    git(tmp_path, "clone", "-q", "--branch", ERA_TAGS["EF"], str(mad_repo.path), str(clone))
    assert not (clone / REPORT_SCRIPT).exists()
    assert (clone / "scripts" / "vllm" / "run.sh").is_file()


def test_same_template_gives_the_same_commits(mad_repo: MadRepo, tmp_path: Path) -> None:
    again = create_mad_repo(tmp_path / "again")
    assert again.commit == mad_repo.commit
    assert dict(again.tags) == dict(mad_repo.tags)
    author = git(again.path, "log", "-1", "--format=%an <%ae> %aI", ERA_TAGS["D"])
    assert author == "fleetbench lab <lab@fleetbench.invalid> 2025-06-16T12:00:00+00:00"


def test_single_era_repositories(tmp_path: Path) -> None:
    only_d = create_mad_repo(tmp_path / "d", eras=("D",))
    assert set(only_d.tags) == {"v-era-d"}
    assert set(only_d.branches) == {"main"}
    assert only_d.commit == only_d.tags["v-era-d"]
    assert (only_d.path / REPORT_SCRIPT).is_file()

    only_ef = create_mad_repo(tmp_path / "ef", eras=["EF"])
    assert set(only_ef.tags) == {"v-era-ef"}
    assert only_ef.commit == only_ef.tags["v-era-ef"]
    assert not (only_ef.path / REPORT_SCRIPT).exists()
    assert set(tree(only_ef.path, "main")) == set(era_files("EF"))


def test_eras_are_committed_oldest_first_whatever_the_order_given(tmp_path: Path) -> None:
    repo = create_mad_repo(tmp_path / "mad", eras=("EF", "D"))
    assert repo.commit == repo.commit_of("D")
    assert git(repo.path, "rev-parse", f"{ERA_TAGS['EF']}^") == repo.commit_of("D")


@pytest.mark.parametrize("eras", [(), ("C",), ("D", "D")])
def test_bad_eras_are_refused(tmp_path: Path, eras: tuple[str, ...]) -> None:
    with pytest.raises(LabError, match="eras"):
        create_mad_repo(tmp_path / "mad", eras=eras)  # type: ignore[arg-type]
    assert not (tmp_path / "mad").exists()


def test_non_empty_destination_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "mad"
    dest.mkdir()
    (dest / "something").write_text("mine\n")
    with pytest.raises(LabError, match="not an empty directory"):
        create_mad_repo(dest)
    assert (dest / "something").read_text() == "mine\n"


def test_empty_destination_is_used(tmp_path: Path) -> None:
    dest = tmp_path / "mad"
    dest.mkdir()
    repo = create_mad_repo(dest, eras=("D",))
    assert repo.path == dest
    assert (dest / ".git").is_dir()
