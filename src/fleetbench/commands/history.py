"""``fleetbench history [--db DB] [--model M] [--host H] [--metric M] [--limit N] [--json]``."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetbench.commands import user_path
from fleetbench.history import (
    StoredRun,
    TrendPoint,
    default_history_path,
    list_runs,
    prune_records,
    trends,
)
from fleetbench.reports.formatting import format_number
from fleetbench.reports.records import METRIC_UNITS, METRICS, SCENARIOS, Configuration
from fleetbench.reports.stats import describe, short_label


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``history`` sub-command."""
    parser = sub.add_parser(
        "history",
        help="trends across reported runs (from the history database)",
        description="Per run (the latest --limit runs, oldest first) the fleet median of every "
        "configuration, or with --host the median of that host's slots. Runs enter the "
        "database when `fleetbench report build` (or `fleetbench run`) builds their report.",
    )
    parser.add_argument("--db", type=user_path,
                        help=f"history database (default {default_history_path()})")
    parser.add_argument("--model", help="only this model (report name or Hugging Face id)")
    parser.add_argument("--host", help="medians of this host's slots instead of the fleet's")
    parser.add_argument("--gpu", metavar="SERIAL",
                        help="one physical GPU over time: the medians of the slots that used "
                        "the GPU with this serial (in whichever host it was), with what that "
                        "host ran with")
    parser.add_argument("--metric", choices=METRICS, metavar="METRIC",
                        help=f"only this metric ({', '.join(METRICS)})")
    parser.add_argument("--scenario", choices=SCENARIOS, help="only this scenario")
    parser.add_argument("--limit", type=int, default=10, metavar="N",
                        help="how many of the latest runs (default 10)")
    parser.add_argument("--json", action="store_true", help="print the trend points as JSON")
    parser.add_argument(
        "--keep-records", type=int, metavar="N",
        help="instead of printing trends: delete the per-host records of all but the N newest "
        "runs of each model/dtype/scenario and compact the database (they are most of it: "
        "about 40 MB per run of 500 hosts x 8 slots); fleet medians, hosts and runs stay, so "
        "fleet trends and baselines still cover every run, --host trends the kept ones")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the trends; 0 (an empty selection is not an error), 2 on a bad database."""
    db = args.db or default_history_path()
    if args.keep_records is not None:
        return _prune(db, args.keep_records)
    points = trends(db, model=args.model, host=args.host, metric=args.metric,
                    scenario=args.scenario, limit=args.limit, gpu=args.gpu)
    runs = {r.run_id: r for r in list_runs(db, model=args.model)}
    if args.json:
        run_ids = list(dict.fromkeys(p.run_id for p in points))
        print(json.dumps({
            "db": str(db),
            "host": args.host,
            "gpu": args.gpu,
            "runs": [_run_dict(runs[r]) for r in run_ids if r in runs],
            "points": [p.to_dict() for p in points],
        }, indent=2))
        return 0
    console = Console()
    if not points:
        console.print(f"no stored results match in {db}", markup=False, highlight=False)
        return 0
    console.print(render_table(points, runs, args.host, args.gpu))
    return 0


def _prune(db: Path, keep: int) -> int:
    pruned = prune_records(db, keep)
    print(f"{db}: per-host records of {len(pruned.runs)} run(s) deleted ({pruned.records} rows), "
          f"{pruned.bytes_before / 1e6:.1f} MB -> {pruned.bytes_after / 1e6:.1f} MB; the "
          f"newest {keep} run(s) of each model/dtype/scenario keep theirs")
    return 0


def _run_dict(stored: StoredRun) -> dict[str, object]:
    return {"run_id": stored.run_id, "created": stored.created, "model": stored.model,
            "dtype": stored.dtype, "scenario": stored.scenario,
            "gate_failed": stored.gate_failed, "run_dir": stored.run_dir}


def render_table(points: list[TrendPoint], runs: dict[str, StoredRun], host: str | None,
                 gpu: str | None = None) -> Table:
    """Configurations down, runs across (oldest first), medians in the cells; with a host
    or GPU, a last row says what the host ran with in each run."""
    run_ids = list(dict.fromkeys(p.run_id for p in points))
    whose = (f"median of the slots on GPU {gpu}" if gpu else
             f"median of {host}'s slots" if host else "fleet median")
    models = {(p.configuration[0], p.configuration[8]) for p in points}
    # One model and dtype (the usual case): name them once, in the title.
    label = short_label if len(models) == 1 else describe
    about = " ".join(next(iter(models))) + " — " if len(models) == 1 else ""
    table = Table(title=f"fleetbench history — {escape(about)}{whose} per configuration")
    table.add_column("configuration", overflow="fold", min_width=16)
    table.add_column("unit", no_wrap=True)
    for run_id in run_ids:
        stored = runs.get(run_id)
        gate = "" if stored is None else "\n[red]gate failed[/]" if stored.gate_failed else \
            "\n[green]gate ok[/]"
        # The id's "-" lets a narrow terminal fold it onto two lines.
        table.add_column(f"{escape(run_id)}{gate}", justify="right", overflow="fold")
    cells: dict[Configuration, dict[str, str]] = defaultdict(dict)
    for point in points:
        cells[point.configuration][point.run_id] = (
            format_number(point.median) if point.median is not None else "[red]failed[/]")
    for configuration, by_run in cells.items():
        table.add_row(escape(label(configuration)), METRIC_UNITS[configuration[-1]],
                      *(by_run.get(run_id, "–") for run_id in run_ids))
    facts = {p.run_id: (p.host, p.attribution) for p in points if p.attribution is not None}
    if facts:
        table.add_row("[dim]ran with[/]", "", *(
            escape(attribution_text(*facts[run_id])) if run_id in facts else "–"
            for run_id in run_ids))
    return table


def attribution_text(host: str | None, facts: Mapping[str, str | None] | None) -> str:
    """``lab02 · MI300X CPX/NPS4 · ROCm 6.4.1 · …`` for a history column."""
    facts = facts or {}
    digest = facts.get("image_digest")
    commit = facts.get("mad_commit")
    parts = [host or "?",
             f"{facts.get('gpu_model') or '?'} {facts.get('compute_partition') or '?'}/"
             f"{facts.get('memory_partition') or '?'}",
             f"ROCm {facts.get('rocm_version') or '?'}",
             f"driver {facts.get('driver_version') or '?'}",
             f"vLLM {facts.get('vllm_version') or '?'}",
             f"image {digest.removeprefix('sha256:')[:12] if digest else '?'}",
             f"MAD {commit[:10] if commit else '?'}"]
    return " · ".join(parts)
