"""``fleetbench unlock -i INVENTORY --run RUN_ID [--limit PATTERN] [--json]``."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from fleetbench.commands import user_path
from fleetbench.progress import FleetProgress
from fleetbench.unlock import UnlockReport, unlock_fleet, validate_run_id


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``unlock`` sub-command."""
    parser = sub.add_parser(
        "unlock",
        help="release the hosts a dead run left locked: its containers, token file and lock",
        description="On every host, remove the run's containers, then its token file and "
        "lock where that run holds the lock (another run's lock is left alone and reported). "
        "For a run whose controller died: fleetbench check shows each host's lock and "
        "whether its run is stale. Exit 0 when done everywhere, 1 when a host failed or was "
        "unreachable, 2 on bad input.",
    )
    parser.add_argument("-i", "--inventory", type=user_path, required=True,
                        help="Ansible inventory")
    parser.add_argument("--run", required=True, metavar="RUN_ID",
                        help="the run whose locks to release (as check shows it)")
    parser.add_argument("--limit", help="host pattern, as ansible-playbook --limit")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def render_table(report: UnlockReport) -> Table:
    """The human table of an unlock."""
    table = Table(title=f"fleetbench unlock {report.run_id}")
    for column in ("host", "result", "detail"):
        table.add_column(column, overflow="fold")
    for host in report.hosts:
        colour = "green" if host.ok else "red"
        table.add_row(host.name, f"[{colour}]{host.status}[/]", host.message)
    return table


def run(args: argparse.Namespace) -> int:
    """Release the run's hosts; print a table (or JSON); 0 when done everywhere."""
    run_id = validate_run_id(args.run)  # bad input fails before the inventory is read
    from fleetbench.inventory import load_fleet

    fleet = load_fleet(args.inventory, args.limit)
    console = Console(stderr=True)
    with FleetProgress(len(fleet.hosts), "unlock", console) as progress:
        report = unlock_fleet(
            fleet, run_id,
            on_host=lambda h: progress.host_done(h.name, "ok" if h.ok else h.status, h.message),
        )
    if args.json:
        print(json.dumps(report.contract(), indent=2))
    else:
        Console().print(render_table(report))
    return 0 if report.ok else 1
