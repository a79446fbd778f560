"""MAD for offline fleets: a snapshot of a controller-side checkout, sent to every host.

Hosts that cannot reach a git server get ``git archive`` of a pinned ref of a MAD checkout
on the controller. Because the controller has the files, it knows the checkout's layout
(:mod:`fleetbench.mad_era`) and refuses, before anything starts, a layout fleetbench does
not drive and a run the layout cannot do: serving where the script has none, a dtype the
script does not pass on, a model its config table lacks.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fleetbench import mad_era
from fleetbench.errors import BadInput

SCRIPT = mad_era.REPORT_SCRIPT


@dataclass(frozen=True)
class MadSnapshot:
    """A pinned commit of a controller-side MAD checkout."""

    source: Path
    ref: str
    commit: str
    # Whether the commit's script can run the serving scenario (MAD's scripts before
    # mid-2025 run latency and throughput only, and take `-s serving` silently).
    runs_serving: bool = True
    era: mad_era.Era = "report-script"
    # The report script's text and its config.csv ("" when the commit has none).
    script: str = ""
    config_table: str = ""


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
    present = [path for path in mad_era.MARKERS
               if _git(source, "cat-file", "-e", f"{sha}:{path}").returncode == 0]
    detected = mad_era.detect_era(present, f"MAD at {wanted} ({sha[:12]})")
    if detected.era is None:
        raise BadInput(detected.problem)
    if detected.era == "run-yaml":
        # run_vllm.py runs serving; fleetbench writes the config, so every scenario is there.
        return MadSnapshot(source=source, ref=wanted, commit=sha, era="run-yaml")
    script = _git(source, "show", f"{sha}:{SCRIPT}").stdout
    table = _git(source, "show", f"{sha}:{mad_era.CONFIG_CSV}")
    return MadSnapshot(source=source, ref=wanted, commit=sha,
                       runs_serving="serving" in script.lower(), script=script,
                       config_table=table.stdout if table.returncode == 0 else "")


def check_scenario(snapshot: MadSnapshot, scenario: str, *, dtype: str | None = None,
                   model: str | None = None) -> None:
    """BadInput when the snapshot's layout cannot run ``scenario`` (serving without a
    serving benchmark), pass ``dtype`` on, or has no config-table rows for ``model``."""
    where = f"MAD at {snapshot.ref} ({snapshot.commit[:12]}, layout {snapshot.era})"
    if snapshot.era == "run-yaml":
        problem = mad_era.run_yaml_dtype_problem(dtype) if dtype else ""
        if problem:
            raise BadInput(f"{where}: {problem}")
        return
    if scenario == "serving" and not snapshot.runs_serving:
        raise BadInput(
            f"{where} has no serving benchmark: its "
            f"{SCRIPT} runs latency and throughput only (serving came in mid-2025) — use "
            "--scenario latency, throughput or all, or a --mad-ref with serving"
        )
    if dtype and snapshot.script:
        problem = mad_era.report_script_dtype_problem(snapshot.script, dtype)
        if problem:
            raise BadInput(f"{where}: {problem} — use a --dtype the script names, or a "
                           "--mad-ref whose script passes it")
    if (model and scenario in {"throughput", "all"} and snapshot.script
            and mad_era.reads_config_table(snapshot.script)):
        name = model.rstrip("/").split("/")[-1]
        if name not in mad_era.config_table_models(snapshot.config_table):
            raise BadInput(
                f"{where}: {model} is not in its scripts/vllm/config.csv, so its "
                "throughput benchmark would run no point — use a model the table lists, "
                "--scenario latency, or a --mad-ref whose script does not need the table"
            )


def write_archive(snapshot: MadSnapshot, folder: Path) -> Path:
    """``git archive`` of the snapshot's commit as ``folder/mad-<commit>.tar.gz``."""
    target = folder / f"mad-{snapshot.commit[:12]}.tar.gz"
    done = _git(snapshot.source, "archive", "--format=tar.gz", "-o", str(target),
                snapshot.commit)
    if done.returncode != 0:
        raise BadInput(f"git archive of {snapshot.source} failed: {done.stderr.strip()}")
    return target
