"""``fleetbench report …``: work with MAD benchmark reports.

``report`` is a group: each action is one sub-command added by its own ``_add_<action>``
function listed in :data:`ACTIONS`: ``parse`` (MAD files to canonical records) and
``build`` (the fleet report of a run directory, :func:`fleetbench.reports.build.build_report`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetbench.commands import user_path
from fleetbench.errors import BadInput
from fleetbench.reports import FORMATS, latest_per_configuration, parse_file
from fleetbench.reports.build import DEFAULT, HistoryChoice, build_report
from fleetbench.reports.fleet_report import DEFAULT_FORMATS, OUTPUT_FILES, FleetReport, host_rows
from fleetbench.reports.gate import GateOptions
from fleetbench.reports.outputs import parse_formats, report_data
from fleetbench.reports.records import Record

_ERAS = ", ".join(FORMATS)
_REASONS_SHOWN = 5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` command and its actions to the top-level sub-command parsers."""
    parser = sub.add_parser(
        "report",
        help="parse and summarise MAD benchmark reports",
        description="Work with the report files the MAD vLLM benchmark writes.",
    )
    actions = parser.add_subparsers(dest="report_action", metavar="ACTION", required=True)
    for add_action in ACTIONS:
        add_action(actions)


def _add_parse(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "parse",
        help="print the canonical records of MAD report files (JSON lines)",
        description=(
            "Print one canonical record per line (JSON: model, scenario, tp, batch_size, "
            "num_prompts, max_concurrency, input_len, output_len, dtype, metric, value, unit "
            "in that order) "
            "for every result in the given MAD report files. The format is detected from "
            f"each file's content ({_ERAS}). A file that cannot be read, is empty, is of "
            "no known format or is damaged is bad input (exit 2, one message per such "
            "file); then nothing is printed at all, because records do not say which file "
            "they came from."
        ),
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a MAD report file")
    parser.add_argument(
        "--latest",
        action="store_true",
        help="keep only the last row of each configuration per file (re-runs append rows)",
    )
    parser.set_defaults(handler=run_parse)


def run_parse(args: argparse.Namespace) -> int:
    """Print the records of ``args.files`` as JSON lines; exit 2 and one message per bad
    file (nothing printed) when any file cannot be used."""
    # Parse everything first: records carry no file name, so output with one file's
    # records missing could not be told from a complete one.
    parsed: list[list[Record]] = []
    problems: list[str] = []
    for path in args.files:
        try:
            parsed.append(parse_file(path))
        except BadInput as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"fleetbench: error: {problem}", file=sys.stderr)
        return BadInput.exit_code
    for records in parsed:
        for record in latest_per_configuration(records) if args.latest else records:
            sys.stdout.write(json.dumps(record.to_dict()) + "\n")
    return 0


def _add_build(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "build",
        help="build the fleet report of a run directory (HTML, CSV, JSON, Markdown)",
        description=(
            "Compare every host and slot of a run: fleet median, min, max and spread per\n"
            "configuration; outliers (worse than the median by more than k x MAD x 1.4826\n"
            "and by a minimum gap); missing results; failed measurements; thresholds;\n"
            "regressions against a baseline (--baseline, else the previous comparable run\n"
            "in the history database); partition and image-digest drift.\n"
            "Writes RUN/report/index.html, summary.csv and summary.json and stores the run\n"
            "in the history database. Several RUN_DIRs (slices of one run on disjoint\n"
            "hosts, e.g. AWX job slices or fleetbench run --limit runs side by side) are\n"
            "merged into one fleet report under --out DIR/report/.\n\n"
            "Exit 1 when the gate fails (a host of the run not ok, a planned result\n"
            "missing, a threshold violated, a regression, no result at all; outliers only\n"
            "with --fail-on-outliers), 2 on bad input. The gate lists the hosts not ok\n"
            "(status and reason) and the host slots missing results; --json has them under\n"
            "gate.hosts_not_ok and gate.missing_slots."
        ),
        epilog=(
            "thresholds file (YAML): a list of rules, e.g.\n"
            "  - model: Llama-3.1-8B-Instruct   # optional; report name or HF id\n"
            "    scenario: throughput           # optional\n"
            "    metric: throughput_total       # required\n"
            "    input_len: 128                 # optional filters: tp, batch_size,\n"
            "    output_len: 2048               #   num_prompts, max_concurrency, dtype\n"
            "    min: 9000                      # and/or max: (e.g. for latency)\n"
            "    of: each                       # each slot (default) or median (fleet)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=user_path, metavar="RUN_DIR", nargs="+",
                        help="a fleetbench run directory; several (the slices of one run, "
                        "on disjoint hosts) make one fleet report, written under --out")
    parser.add_argument("--out", type=user_path, metavar="DIR",
                        help="where the merged report of several run directories goes "
                        "(DIR/report/); required with more than one")
    parser.add_argument("--baseline", type=user_path, metavar="RUN_DIR",
                        help="compare with this run (default: previous comparable run in history)")
    parser.add_argument("--thresholds", type=user_path, metavar="FILE", help="thresholds YAML file")
    parser.add_argument("--format", default=",".join(DEFAULT_FORMATS), metavar="LIST",
                        help=f"comma-separated outputs among {','.join(OUTPUT_FILES)} "
                        f"(default {','.join(DEFAULT_FORMATS)})")
    history = parser.add_mutually_exclusive_group()
    history.add_argument("--history", type=user_path, metavar="DB",
                         help="history database (default $FLEETBENCH_HISTORY, else "
                         "$XDG_STATE_HOME/fleetbench/history.sqlite)")
    history.add_argument("--no-history", action="store_true",
                         help="neither read nor write the history database")
    parser.add_argument("--prometheus", type=user_path, metavar="FILE",
                        help="also write node_exporter textfile metrics (atomically)")
    parser.add_argument("--fail-on-outliers", action="store_true",
                        help="outliers fail the gate too (default: they are findings)")
    parser.add_argument("--regression-tolerance", default="5", metavar="PERCENT",
                        help="a fleet median this much worse than the baseline's fails (default 5)")
    parser.add_argument("--outlier-mads", default="3", metavar="K",
                        help="outlier distance in scaled MADs (default 3)")
    parser.add_argument("--outlier-min-gap", default="5", metavar="PERCENT",
                        help="an outlier is also this much worse than the median (default 5)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.set_defaults(handler=run_build)


def _number(text: str, flag: str, *, percent: bool) -> float:
    cleaned = text.strip().removesuffix("%").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise BadInput(f"{flag} {text!r} is not a number — e.g. {flag} 5") from None
    if not math.isfinite(value) or value < 0:
        raise BadInput(f"{flag} {text!r} must be a number >= 0")
    return value / 100 if percent else value


def run_build(args: argparse.Namespace) -> int:
    """Build the fleet report; print the verdict; 1 when the gate fails."""
    options = GateOptions(
        regression_tolerance=_number(args.regression_tolerance, "--regression-tolerance",
                                     percent=True),
        outlier_mads=_number(args.outlier_mads, "--outlier-mads", percent=False),
        outlier_min_gap=_number(args.outlier_min_gap, "--outlier-min-gap", percent=True),
        fail_on_outliers=args.fail_on_outliers,
    )
    history_db: HistoryChoice = (
        None if args.no_history else args.history if args.history is not None else DEFAULT
    )
    report = build_report(
        args.run_dir, out=args.out, baseline=args.baseline, thresholds=args.thresholds,
        formats=parse_formats(args.format), history_db=history_db,
        prometheus=args.prometheus, options=options,
    )
    if args.json:
        data = report_data(report)
        del data["records"]
        data["outputs"] = {name: str(path) for name, path in report.outputs.items()}
        print(json.dumps(data, indent=2))
    else:
        _print_verdict(report)
    return 1 if report.gate_failed else 0


def _print_verdict(report: FleetReport) -> None:
    console = Console()
    analysis = report.analysis
    table = Table(title=f"fleetbench report {report.run.run_id}")
    for column in ("host", "status", "slots ok", "outliers", "missing", "failed", "reason"):
        table.add_column(column, overflow="fold")
    for host in host_rows(report):
        colour = "green" if host["ok"] else "red"
        table.add_row(
            host["host"], f"[{colour}]{escape(host['status'])}[/]",
            f"{host['slots_ok']}/{len(host['slots'])}", str(host["outliers"]),
            str(host["missing"]), str(host["failed"]),
            escape(host["reason"].splitlines()[0]) if host["reason"] else "",
        )
    console.print(table)
    baseline = analysis.baseline.run_id if analysis.baseline else "none"
    console.print(
        f"{len(analysis.stats)} configurations · outliers {len(analysis.outliers)} · "
        f"missing results {len(analysis.missing)} · failed measurements "
        f"{len(analysis.failures)} · drift: "
        f"{', '.join(d.name for d in analysis.drifted) or 'none'} · baseline: {baseline}",
        markup=False, highlight=False,
    )
    if analysis.gate.failed:
        console.print("[bold red]gate failed[/]")
        for headline in analysis.gate.headlines:
            console.print(f"  {headline}", markup=False, highlight=False)
        shown = analysis.gate.reasons[:_REASONS_SHOWN]
        for reason in shown:
            console.print(f"  - {reason}", markup=False, highlight=False)
        if len(analysis.gate.reasons) > len(shown):
            console.print(f"  … and {len(analysis.gate.reasons) - len(shown)} more "
                          "(see the report)", markup=False, highlight=False)
    else:
        console.print("[bold green]gate passed[/]")
    for name, path in report.outputs.items():
        console.print(f"{name}: {path}", markup=False, highlight=False)


#: One function per ``report`` action; each adds its sub-command parser.
ACTIONS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_parse,
    _add_build,
)
