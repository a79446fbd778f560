"""Build and write the fleet report of a run: HTML, Markdown, CSV, JSON, Prometheus.

:func:`build_report` is the whole ``fleetbench report build``: collect the run
(:mod:`fleetbench.reports.fleet`), compare (:mod:`fleetbench.reports.analysis`), store it in
the history database (:mod:`fleetbench.history`) and write the outputs under
``RUN/report/`` (:mod:`fleetbench.reports.page`, :mod:`fleetbench.reports.outputs`,
:mod:`fleetbench.reports.prometheus`).
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Final, Literal

from fleetbench import history
from fleetbench.errors import BadInput
from fleetbench.forked import Forked
from fleetbench.history import TrendPoint
from fleetbench.reports.analysis import analyse
from fleetbench.reports.fleet import FleetRun, HostRecord, collect_run, merge_runs
from fleetbench.reports.fleet_report import DEFAULT_FORMATS, OUTPUT_FILES, REPORT_DIR, FleetReport
from fleetbench.reports.gate import GateOptions
from fleetbench.reports.outputs import parse_formats, write_outputs
from fleetbench.reports.prometheus import write_prometheus
from fleetbench.reports.records import Configuration
from fleetbench.reports.stats import BaselineRef, host_facts
from fleetbench.reports.thresholds import load_thresholds


class DefaultHistory(Enum):
    """The type of :data:`DEFAULT`."""

    PATH = "default"


#: ``history_db`` default of :func:`build_report`: the default history database.
DEFAULT: Final = DefaultHistory.PATH
#: What ``history_db`` takes: a database path, None (no history) or :data:`DEFAULT`.
HistoryChoice = Path | None | Literal[DefaultHistory.PATH]


def build_report(
    run_dir: Path | Sequence[Path],
    *,
    out: Path | None = None,
    baseline: Path | None = None,
    thresholds: Path | None = None,
    formats: Iterable[str] = DEFAULT_FORMATS,
    history_db: HistoryChoice = DEFAULT,
    prometheus: Path | None = None,
    options: GateOptions | None = None,
) -> FleetReport:
    """Build the fleet report of ``run_dir`` and write it under ``RUN/report/``.

    Several run directories (the slices of one run, see
    :func:`fleetbench.reports.fleet.merge_runs`) make one fleet report, written under
    ``out/report/``; ``out`` is required then.

    ``baseline`` is another run directory to compare with; without it the previous
    comparable run of the history database is the baseline. ``thresholds`` is a YAML
    file (see :func:`fleetbench.reports.thresholds.load_thresholds`). ``history_db`` is the
    SQLite history (``DEFAULT``: :func:`fleetbench.history.default_history_path`; None:
    no history at all). ``prometheus`` is a node_exporter textfile to write. Bad input
    (not a run directory, a bad thresholds file, an unknown format) raises BadInput
    before anything is written. The gate verdict is ``report.gate_failed``.
    """
    with _cycle_collector_paused():
        return _build_report(run_dir, out=out, baseline=baseline, thresholds=thresholds,
                             formats=formats, history_db=history_db, prometheus=prometheus,
                             options=options)


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a report is built.

    A large run allocates millions of small objects that form no cycles (records, rows,
    tuples, strings); the collector, triggered every few hundred allocations, walked
    them over and over (a third of the parsing time of 500 hosts x 8 slots). Reference
    counting frees them as before; cycles made meanwhile wait for the collector's return.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: Written after the run is in the history: the page shows the trends.
PAGE_FORMATS = ("html",)


def _store_and_write_page(report: FleetReport, folder: Path, formats: Sequence[str]) -> None:
    """Store ``report``'s run in its history (if any), then write the page (when one of
    ``formats``) with the trends."""
    db = report.history_db
    if db is not None:
        history.store_run(db, report.run, gate_failed=report.analysis.gate.failed)
        trends = tuple(history.trends(db, comparable_to=report.run, limit=history.TREND_RUNS))
        report = FleetReport(run=report.run, analysis=report.analysis, trends=trends,
                             history_db=db)
    write_outputs(report, folder, formats, only=PAGE_FORMATS)


def _collect_runs(run_dir: Path | Sequence[Path], out: Path | None) -> FleetRun:
    """One run directory as it is, or several merged into one fleet run at ``out``."""
    dirs = [Path(run_dir)] if isinstance(run_dir, (str, Path)) else [Path(d) for d in run_dir]
    if len(dirs) == 1 and out is None:
        return collect_run(dirs[0])
    if out is None:
        raise BadInput(f"{len(dirs)} run directories make one fleet report: pass --out DIR, "
                       "the folder it is written to")
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise BadInput("a run directory is given twice — pass each slice once")
    runs = [collect_run(d) for d in dirs]
    out = Path(out)
    if any(out.resolve() == d.resolve() for d in dirs):
        raise BadInput(f"--out {out} is one of the slices — give a folder of its own")
    out.mkdir(parents=True, exist_ok=True)
    return merge_runs(runs, out)


def _build_report(
    run_dir: Path | Sequence[Path],
    *,
    out: Path | None,
    baseline: Path | None,
    thresholds: Path | None,
    formats: Iterable[str],
    history_db: HistoryChoice,
    prometheus: Path | None,
    options: GateOptions | None,
) -> FleetReport:
    wanted = parse_formats(formats)
    rules = load_thresholds(thresholds) if thresholds is not None else ()
    run = _collect_runs(run_dir, out)
    db = history.default_history_path() if history_db is DEFAULT else history_db

    baseline_rows: tuple[HostRecord, ...] | None = None
    baseline_medians: dict[Configuration, float] | None = None
    baseline_ref: BaselineRef | None = None
    baseline_facts: dict[str, dict[str, str | None]] | None = None
    if baseline is not None:
        base = collect_run(Path(baseline))
        baseline_rows = base.rows
        baseline_ref = BaselineRef(run_id=base.run_id, source=f"run directory {baseline}")
        baseline_facts = host_facts(base)
    elif db is not None and db.exists():
        previous = history.previous_comparable_run(db, run)
        if previous is not None:
            baseline_medians = history.fleet_medians(db, previous)
            baseline_ref = BaselineRef(run_id=previous, source=f"history {db}")
            baseline_facts = history.run_attribution(db, previous)

    analysis = analyse(
        run,
        thresholds=rules,
        baseline_rows=baseline_rows,
        baseline_medians=baseline_medians,
        baseline=baseline_ref,
        options=options or GateOptions(),
        baseline_facts=baseline_facts,
    )
    folder = run.run_dir / REPORT_DIR
    report = FleetReport(run=run, analysis=analysis, history_db=db)
    # The history and the page (whose sparklines read the history) are done in a child
    # process, on the other core, while this one writes the other files.
    with Forked(functools.partial(_store_and_write_page, report, folder, wanted),
                "storing the run in the history and writing the page"):
        write_outputs(report, folder, wanted, only=[f for f in wanted if f not in PAGE_FORMATS])
    outputs = {name: folder / OUTPUT_FILES[name] for name in wanted}
    trends: tuple[TrendPoint, ...] = ()
    if db is not None:
        trends = tuple(history.trends(db, comparable_to=run, limit=history.TREND_RUNS))
        report = FleetReport(run=run, analysis=analysis, trends=trends, history_db=db)
    if prometheus is not None:
        write_prometheus(report, Path(prometheus))
        outputs = {**outputs, "prometheus": Path(prometheus)}
    return FleetReport(run=run, analysis=analysis, trends=trends, history_db=db,
                       outputs=outputs)
