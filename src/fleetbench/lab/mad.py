"""The lab's stand-in ROCm/MAD git repository.

fleetbench clones MAD on every host at a pinned ref and runs
``scripts/vllm/vllm_benchmark_report.sh`` from it. The lab builds a real git repository
from the template shipped in ``mad_repo/`` (era D: the report script, which writes MAD's
report files with synthetic per-host, per-slot numbers) plus a later commit in which MAD
has moved on to era E/F (``run.sh`` + ``configs/``, no report script), so that a fleet
pinned to a ref without the script can be tested too.

Commits use a fixed author, committer and dates: the same template gives the same shas.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Literal, get_args

from fleetbench.errors import LabError

MadEra = Literal["D", "EF", "F"]
"""A MAD era the lab can check out (their files: ``tests/fixtures/mad/``)."""

REPORT_SCRIPT = "scripts/vllm/vllm_benchmark_report.sh"
"""Path of the benchmark script inside a MAD checkout (eras A-D)."""

DEFAULT_BRANCH = "main"

ERA_TAGS: Mapping[MadEra, str] = MappingProxyType(
    {"D": "v-era-d", "EF": "v-era-ef", "F": "v-era-f"})
"""The tag each era's commit carries."""

_ERA_BRANCHES: Mapping[MadEra, str] = MappingProxyType(
    {"D": DEFAULT_BRANCH, "EF": "era-ef", "F": "era-f"})
# Oldest first: later eras are committed on top of earlier ones, as in MAD's history.
_ERA_ORDER: tuple[MadEra, ...] = get_args(MadEra)
_ERA_DATES: Mapping[MadEra, str] = MappingProxyType(
    {"D": "2025-06-16T12:00:00+00:00", "EF": "2025-08-20T12:00:00+00:00",
     "F": "2025-11-10T12:00:00+00:00"}
)
_ERA_MESSAGES: Mapping[MadEra, str] = MappingProxyType(
    {
        "D": "vLLM: era D benchmark script (rocm6.4.1, long options, serving)",
        "EF": "vLLM: replace vllm_benchmark_report.sh with run.sh and configs",
        "F": "vLLM: run.sh drives run_vllm.py with YAML configs",
    }
)
_AUTHOR_NAME = "fleetbench lab"
_AUTHOR_EMAIL = "lab@fleetbench.invalid"
_TEMPLATE_PACKAGE = "fleetbench.lab"
_TEMPLATE_DIR = "mad_repo"
# Era F: the lab's own re-creation of MAD's run.sh + run_vllm.py + YAML layout, which runs
# the image's stand-in vLLM for real (``mad_era_f/``).
_ERA_F_DIR = "mad_era_f"

# Era E/F replaces the report script; these few files are all the lab needs to show it.
_ERA_EF_REMOVED = (REPORT_SCRIPT,)
_ERA_EF_FILES: Mapping[str, str] = MappingProxyType(
    {
        "scripts/vllm/run.sh": """#!/bin/bash
# fleetbench lab: stand-in for ROCm/MAD scripts/vllm/run.sh (eras E/F).
# MAD replaced vllm_benchmark_report.sh with this config-driven runner:
#   ./run.sh --model_repo <org/name> --config configs/default.yaml
# The lab does not simulate it: a fleet pinned to this ref must be caught before it runs.
echo "run.sh: the fleetbench lab does not simulate MAD era E/F (use tag v-era-d)" >&2
exit 1
""",
        "scripts/vllm/configs/default.yaml": """# fleetbench lab: stand-in for MAD's era F config.
benchmarks:
  latency:
    tp: [1]
    inp: [128, 2048]
    out: [128, 2048]
    bs: [1, 8]
  throughput:
    tp: [1]
    inp: [128, 2048]
    out: [128, 2048]
    num_prompts: [1000]
  serving:
    tp: [1]
    inp: [128, 2048]
    out: [128, 2048]
    num_prompts: [252]
    max_concurrency: [128]
""",
        "scripts/vllm/README.md": """# vLLM benchmark (fleetbench lab stand-in, MAD era E/F)

`vllm_benchmark_report.sh` is gone. MAD now runs

    ./run.sh --model_repo <org/name> --config configs/default.yaml

and writes `perf_<name>.csv` (13 columns). The lab does not simulate this runner.
""",
    }
)


@dataclass(frozen=True)
class MadRepo:
    """A stand-in MAD repository created by :func:`create_mad_repo`.

    ``commit`` is the tip of the default branch (``main``); ``tags`` and ``branches`` map
    every tag and branch the repository has to the commit it names.
    """

    path: Path
    commit: str
    tags: Mapping[str, str]
    branches: Mapping[str, str]
    default_branch: str = DEFAULT_BRANCH

    @property
    def refs(self) -> Mapping[str, str]:
        """Every branch and tag (each a ref fleetbench may pin) -> its commit."""
        return MappingProxyType({**self.branches, **self.tags})

    def commit_of(self, era: MadEra) -> str:
        """The commit of ``era``'s tag (KeyError if the repository was made without it)."""
        return self.tags[ERA_TAGS[era]]


def template_files() -> dict[str, bytes]:
    """The era D template tree shipped with fleetbench: repository path -> content."""
    root = resources.files(_TEMPLATE_PACKAGE).joinpath(_TEMPLATE_DIR)
    files: dict[str, bytes] = {}
    _collect(root, "", files)
    if REPORT_SCRIPT not in files:
        raise LabError(f"the MAD template in {root} has no {REPORT_SCRIPT}: broken install")
    return dict(sorted(files.items()))


def _collect(node: Traversable, prefix: str, files: dict[str, bytes]) -> None:
    for child in node.iterdir():
        if child.name == "__pycache__":
            continue
        relative = f"{prefix}{child.name}"
        if child.is_dir():
            _collect(child, f"{relative}/", files)
        else:
            files[relative] = child.read_bytes()


def era_files(era: MadEra) -> dict[str, bytes]:
    """The complete tree of ``era``'s commit: repository path -> content."""
    files = template_files()
    if era in ("EF", "F"):
        for path in _ERA_EF_REMOVED:
            del files[path]
    if era == "EF":
        files.update({path: text.encode() for path, text in _ERA_EF_FILES.items()})
    if era == "F":
        _collect(resources.files(_TEMPLATE_PACKAGE).joinpath(_ERA_F_DIR), "", files)
    return dict(sorted(files.items()))


def create_mad_repo(dest: Path, *, eras: Sequence[MadEra] = _ERA_ORDER) -> MadRepo:
    """Create a stand-in MAD git repository at ``dest`` (absent or empty).

    One commit per era, oldest first, each tagged (``v-era-d``, ``v-era-ef``, ``v-era-f``).
    The oldest era is the tip of ``main``, later ones get a branch of their own
    (``era-ef``, ``era-f``), so a plain clone checks out the era D tree while the later
    trees (no report script; era F runs ``run.sh`` + ``run_vllm.py`` + YAML) stay
    reachable by tag. Raises :class:`LabError` for an unknown or repeated era, a non-empty
    ``dest`` or a git failure.
    """
    wanted = _ordered(eras)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LabError(f"cannot create the MAD repository in {dest}: not an empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    # No template: no sample hooks, nothing from the machine's git installation.
    _git(dest, "init", "-q", "--template=", "-b", DEFAULT_BRANCH, date=_ERA_DATES[wanted[0]])
    tags: dict[str, str] = {}
    branches: dict[str, str] = {}
    for index, era in enumerate(wanted):
        date = _ERA_DATES[era]
        branch = DEFAULT_BRANCH if index == 0 else _ERA_BRANCHES[era]
        if index > 0:
            _git(dest, "checkout", "-q", "-b", branch, date=date)
        _replace_tree(dest, era_files(era))
        _git(dest, "add", "-A", date=date)
        _git(dest, "commit", "-q", "-m", _ERA_MESSAGES[era], date=date)
        _git(dest, "tag", ERA_TAGS[era], date=date)
        tags[ERA_TAGS[era]] = branches[branch] = _git(dest, "rev-parse", "HEAD", date=date)
    if len(wanted) > 1:
        _git(dest, "checkout", "-q", DEFAULT_BRANCH, date=_ERA_DATES[wanted[0]])
    return MadRepo(
        path=dest,
        commit=branches[DEFAULT_BRANCH],
        tags=MappingProxyType(tags),
        branches=MappingProxyType(branches),
    )


def _ordered(eras: Sequence[MadEra]) -> list[MadEra]:
    unknown = [era for era in eras if era not in _ERA_ORDER]
    if unknown or not eras or len(set(eras)) != len(eras):
        raise LabError(
            f"MAD eras must be distinct values of {', '.join(_ERA_ORDER)}; got {list(eras)}"
        )
    return [era for era in _ERA_ORDER if era in eras]


def _replace_tree(dest: Path, files: Mapping[str, bytes]) -> None:
    for child in dest.iterdir():
        if child.name == ".git":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for relative, content in files.items():
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        # The mode is part of the commit: set it, never inherit it from the install.
        target.chmod(0o755 if relative.endswith(".sh") else 0o644)


def _git(repo: Path, *args: str, date: str) -> str:
    # Only what git needs: no user or system config, fixed identity and dates.
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": _AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": _AUTHOR_EMAIL,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": _AUTHOR_NAME,
        "GIT_COMMITTER_EMAIL": _AUTHOR_EMAIL,
        "GIT_COMMITTER_DATE": date,
        "LC_ALL": "C",
        "TZ": "UTC",
    }
    command = [
        "git",
        "-c", "core.autocrlf=false",
        "-c", "core.fileMode=true",
        "-c", "commit.gpgSign=false",
        "-c", "tag.gpgSign=false",
        *args,
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as error:
        raise LabError("git is not installed (Debian package: git)") from error
    if done.returncode != 0:
        raise LabError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()
