"""``fleetbench status RUN_DIR [--json]``: where a run stands, from its manifest and hosts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetbench.commands import user_path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` sub-command."""
    parser = sub.add_parser(
        "status",
        help="where a run stands: each host's status and what runs there now",
        description="Reads the run's manifest and asks every host what its slots are doing "
        "(running, ended, out of reach). Works from another terminal during a run and after "
        "its controller died (then: fleetbench run --resume RUN_DIR). Exit 0, or 2 when "
        "RUN_DIR is not a run directory.",
    )
    parser.add_argument("run_dir", type=user_path, metavar="RUN_DIR", help="a run directory")
    parser.add_argument("-i", "--inventory", type=user_path,
                        help="inventory to reach the hosts (default: the run's own)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the run's status (table or JSON)."""
    from fleetbench.status import run_status

    status = run_status(args.run_dir, inventory=args.inventory)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        Console().print(_table(status))
    return 0


def _table(status: dict[str, Any]) -> Table:
    table = Table(title=f"fleetbench run {status['run_id']}"
                  + ("" if status.get("finished") else " (not finished)"))
    for column in ("host", "status", "on the host", "slots", "elapsed", "detail"):
        table.add_column(column, overflow="fold")
    for host, entry in status["hosts"].items():
        seen = entry["on_host"]
        slots = (f"{seen['ended']}/{seen['ended'] + seen['running'] + seen['waiting']} ended, "
                 f"{seen['running']} running") if seen.get("slots") else ""
        elapsed = seen.get("elapsed_s")
        clock = (f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
                 if isinstance(elapsed, int) else "")
        where = seen["state"] if seen["reachable"] else "unreachable"
        detail = seen.get("error") or (entry.get("reason") or "").splitlines()[0:1]
        table.add_row(escape(host), escape(str(entry["status"])), where, slots, clock,
                      escape(detail if isinstance(detail, str) else "".join(detail)))
    return table
