"""``fleetbench report …``: work with MAD benchmark reports.

``report`` is a group: each action is one sub-command added by its own ``_add_<action>``
function listed in :data:`ACTIONS`, so that building the fleet report of a run directory
can join ``parse`` without touching it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from fleetbench.reports import FORMATS, latest_per_configuration, parse_file

_ERAS = ", ".join(FORMATS)


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
            "Print one canonical record per line (JSON, keys in FORMATS.md section 4 order) "
            "for every result in the given MAD report files. The format is detected from "
            f"each file's content ({_ERAS}). Nothing is printed unless every file parses."
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
    """Print the records of ``args.files`` as JSON lines; bad files raise BadInput (exit 2)."""
    # Parse everything first: a bad file must not leave half the output printed.
    parsed = [parse_file(path) for path in args.files]
    for records in parsed:
        for record in latest_per_configuration(records) if args.latest else records:
            sys.stdout.write(json.dumps(record.to_dict()) + "\n")
    return 0


#: One function per ``report`` action; each adds its sub-command parser.
ACTIONS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_parse,
)
