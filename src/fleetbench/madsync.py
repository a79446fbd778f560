"""MAD for offline fleets: a snapshot of a controller-side checkout, sent to every host.

Hosts that cannot reach a git server get ``git archive`` of a pinned ref of a MAD checkout
on the controller. Because the controller has the files, a ref without the vLLM script is
refused before anything starts.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fleetbench.errors import BadInput

SCRIPT = "scripts/vllm/vllm_benchmark_report.sh"


@dataclass(frozen=True)
class MadSnapshot:
    """A pinned commit of a controller-side MAD checkout."""

    source: Path
    ref: str
    commit: str
    # Whether the commit's script can run the serving scenario (MAD's scripts before
    # mid-2025 run latency and throughput only, and take `-s serving` silently).
    runs_serving: bool = True


def _git(source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def resolve_snapshot(source: Path, ref: str | None) -> MadSnapshot:
    """Check that ``source`` is a MAD git checkout whose ``ref`` has the vLLM script."""
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise BadInput(f"--mad-sync {source} is not a folder — pass a MAD git checkout")
    wanted = ref or "HEAD"
    commit = _git(source, "rev-parse", "--verify", f"{wanted}^{{commit}}")
    if commit.returncode != 0:
        raise BadInput(
            f"--mad-sync {source}: {wanted!r} is not a commit there "
            f"({commit.stderr.strip() or 'not a git checkout'}) — pass --mad-ref with a "
            "branch, tag or commit of that checkout"
        )
    sha = commit.stdout.strip()
    if _git(source, "cat-file", "-e", f"{sha}:{SCRIPT}").returncode != 0:
        raise BadInput(
            f"MAD at {wanted} ({sha[:12]}) has no {SCRIPT}: from 2025-08 MAD runs vLLM through "
            "run.sh with config files instead — pass --mad-ref with a commit that still has "
            "the script"
        )
    script = _git(source, "show", f"{sha}:{SCRIPT}").stdout
    return MadSnapshot(source=source, ref=wanted, commit=sha,
                       runs_serving="serving" in script.lower())


def check_scenario(snapshot: MadSnapshot, scenario: str) -> None:
    """BadInput when ``scenario`` asks for serving and the snapshot's script has none."""
    if scenario == "serving" and not snapshot.runs_serving:
        raise BadInput(
            f"MAD at {snapshot.ref} ({snapshot.commit[:12]}) has no serving benchmark: its "
            f"{SCRIPT} runs latency and throughput only (serving came in mid-2025) — use "
            "--scenario latency, throughput or all, or a --mad-ref with serving"
        )


def write_archive(snapshot: MadSnapshot, folder: Path) -> Path:
    """``git archive`` of the snapshot's commit as ``folder/mad-<commit>.tar.gz``."""
    target = folder / f"mad-{snapshot.commit[:12]}.tar.gz"
    done = _git(snapshot.source, "archive", "--format=tar.gz", "-o", str(target),
                snapshot.commit)
    if done.returncode != 0:
        raise BadInput(f"git archive of {snapshot.source} failed: {done.stderr.strip()}")
    return target
