"""``fleetbench partition …``: GPU partition modes (CPX/NPS4 by default).

``partition`` is a group: each action is one sub-command added by its own ``_add_<action>``
function listed in :data:`ACTIONS`, so ``show`` and ``apply`` can join ``parse`` without
touching it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from fleetbench.partition.parse import parse_text, read_file


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``partition`` command and its actions to the top-level sub-command parsers."""
    parser = sub.add_parser(
        "partition",
        help="GPU partition modes: parse tool output, check hosts",
        description="Work with AMD Instinct compute (SPX..CPX) and memory (NPS1/NPS4) partitions.",
    )
    actions = parser.add_subparsers(dest="partition_action", metavar="ACTION", required=True)
    for add_action in ACTIONS:
        add_action(actions)


def _add_parse(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "parse",
        help="say what partition amd-smi/rocm-smi/sysfs/KFD outputs report (JSON lines)",
        description=(
            "Print one JSON object per file: file, format, compute_partition, "
            "memory_partition, devices, unknown_devices. Modes are upper case (CPX, NPS4), "
            "MIXED when the listed GPUs disagree, null when the file does not say or says "
            "N/A for every GPU; devices is the number of logical GPUs the file lists (null "
            "if none) and unknown_devices how many of them show N/A. The format is detected "
            "from the content; a file of no known format is printed with format 'unknown' "
            "and nulls (exit 0). A file that cannot be read is an error (exit 2) and then "
            "nothing is printed. Use - for standard input."
        ),
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a saved tool output")
    parser.set_defaults(handler=run_parse)


def run_parse(args: argparse.Namespace) -> int:
    """Print the reading of every file in ``args.files``; an unreadable file raises BadInput."""
    # Read everything first: an unreadable file must not leave half the output printed.
    texts = [(str(path), read_file(path)) for path in args.files]
    for name, text in texts:
        line = {"file": name, **parse_text(text).to_dict()}
        sys.stdout.write(json.dumps(line) + "\n")
    return 0


#: One function per ``partition`` action; each adds its sub-command parser.
ACTIONS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_parse,
)
