"""Report aggregation: `build_report` on 500 hosts x 8 slots against reading the same files.

The run directory is generated the way tests/unit/report_fleet/fleet_runs.py writes them
(era D MAD files per slot, values scaled per host and slot, a manifest and preflight.json
per host). The baseline reads every byte of every file of it; the measurement is the whole
`fleetbench report build` (collect + parse + statistics + HTML/CSV/JSON + history).
Both run warm (the files are in the page cache after generation), alternating. Usage::

    /work/venv/bin/python bench/report.py [--hosts 500] [--slots 8] [--reps 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the bench folder is not a package
    REPO,
    Machine,
    Section,
    command_line,
    fmt,
    log,
    median,
    record,
    verdict,
)

GOAL = 3.0


def generate(root: Path, hosts: int, slots: int) -> Path:
    """A run directory of ``hosts`` x ``slots`` with realistic report files."""
    sys.path.insert(0, str(REPO))
    from tests.unit.report_fleet.fleet_runs import HostSpec, write_run

    specs = {f"host{i:03d}": HostSpec(slots=slots, factor=0.9 if i % 97 == 0 else 1.0)
             for i in range(1, hosts + 1)}
    return write_run(root, specs)


def read_everything(run_dir: Path) -> tuple[int, int]:
    """Read every byte of every input file (the report folder left out); (files, bytes)."""
    files = size = 0
    for folder, dirs, names in os.walk(run_dir):
        if folder == str(run_dir):
            dirs[:] = [d for d in dirs if d != "report"]
        for name in names:
            size += len((Path(folder) / name).read_bytes())
            files += 1
    return files, size


def fresh(run_dir: Path, history: Path, start_from: Path | None = None) -> None:
    """Before a build (not timed): no report yet, and a fresh history database or a copy
    of ``start_from``."""
    shutil.rmtree(run_dir / "report", ignore_errors=True)
    history.unlink(missing_ok=True)
    if start_from is not None:
        shutil.copyfile(start_from, history)


def build(run_dir: Path, history: Path) -> None:
    """The whole `fleetbench report build`."""
    from fleetbench.reports.build import build_report

    build_report(run_dir, history_db=history)


def nightly_history(run_dir: Path, db: Path) -> int:
    """A history holding as many earlier comparable runs as the page's trends show, like
    a nightly validation's after a few weeks; how many runs it holds."""
    import dataclasses

    from fleetbench import history
    from fleetbench.reports.fleet import collect_run

    run = collect_run(run_dir)
    earlier = history.TREND_RUNS - 1
    for day in range(1, earlier + 1):
        history.store_run(db, dataclasses.replace(
            run, run_id=f"20251001T0400{day:02d}Z-bench", created=f"2025-10-{day:02d}T04:00:00Z"),
            gate_failed=False)
    return earlier


def profile(run_dir: Path, history: Path, top: int = 12) -> list[str]:
    """Where a build spends its time: the top functions by cumulative time.

    Profiled without ``os.fork``, so the work of the child process (the history and the
    page, fleetbench.forked) runs inline and shows up too.
    """
    fresh(run_dir, history)
    profiler = cProfile.Profile()
    fork = os.fork
    del os.fork
    try:
        profiler.enable()
        build(run_dir, history)
        profiler.disable()
    finally:
        os.fork = fork
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative")
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for func, (_cc, _nc, tt, ct, _callers) in sorted(
            stats.stats.items(), key=lambda item: -item[1][3]):  # type: ignore[attr-defined]
        filename, line, name = func
        if "fleetbench" not in filename and "jinja2" not in filename:
            continue
        short = filename.split("site-packages/")[-1].split("src/")[-1]
        rows.append(f"{ct:6.2f} s cumulative ({100 * ct / total:4.1f} %), {tt:5.2f} s own: "
                    f"`{short}:{line} {name}`")
        if len(rows) >= top:
            break
    return rows


def run(hosts: int, slots: int, reps: int, machine: Machine, want_profile: bool) -> Section:
    """Generate, measure, profile when the goal is missed; the RESULTS.md section."""
    with tempfile.TemporaryDirectory(prefix="fb-bench-report-") as tmp:
        log(f"report: generating {hosts} hosts x {slots} slots")
        start = time.perf_counter()
        run_dir = generate(Path(tmp), hosts, slots)
        files, size = read_everything(run_dir)
        log(f"  {files} files, {size / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s")
        history = Path(tmp) / "history.sqlite"
        log("  filling a history with earlier runs")
        nightly = Path(tmp) / "nightly.sqlite"
        earlier = nightly_history(run_dir, nightly)
        times: dict[str, list[float]] = {"read": [], "build": [], "nightly": []}
        for rep in range(reps):
            steps = list(times)
            for step in steps[rep % 3:] + steps[:rep % 3]:
                if step != "read":
                    fresh(run_dir, history, nightly if step == "nightly" else None)
                start = time.perf_counter()
                if step == "read":
                    read_everything(run_dir)
                else:
                    build(run_dir, history)
                seconds = time.perf_counter() - start
                times[step].append(seconds)
                log(f"  {step}: {seconds:.2f} s")
        baseline, measured = median(times["read"]), median(times["build"])
        ratio = measured / baseline
        with_history = median(times["nightly"])
        notes = [f"{files} files, {size / 1e6:.1f} MB; median of {reps} alternating rounds, "
                 "warm page cache; the measured build starts from a fresh history database.",
                 f"with history: the same build on a copy of a history already holding "
                 f"{earlier} earlier comparable runs of this size (a nightly validation after "
                 "a few weeks): the previous run is the baseline, the trends span them all."]
        if want_profile or ratio > GOAL:
            log("  profiling one build")
            notes.append("Where a build spends its time (cProfile of one build with the "
                         "child's work inline, fleetbench and jinja2 functions by cumulative "
                         "time):")
            notes += profile(run_dir, history)
    row = (f"{hosts} x {slots}", fmt(baseline), fmt(measured), fmt(ratio, 1), f"≤ {GOAL:g}",
           verdict(ratio <= GOAL), fmt(with_history), fmt(with_history / baseline, 1),
           machine.date, machine.label, machine.commit)
    return Section(
        key="report",
        title="Report aggregation: `build_report` vs reading every byte of the run's files",
        command=command_line(),
        columns=("N (hosts x slots)", "baseline: read files (s)", "measured: build_report (s)",
                 "ratio", "goal", "met?", "with history (s)", "ratio with history",
                 "date", "machine", "commit"),
        rows=(row,),
        notes=tuple(notes),
    )


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500, help="hosts (default 500)")
    parser.add_argument("--slots", type=int, default=8, help="slots per host (default 8)")
    parser.add_argument("--reps", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--profile", action="store_true", help="profile even when the goal is met")
    args = parser.parse_args()
    record(run(args.hosts, args.slots, args.reps, Machine.here(), args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
