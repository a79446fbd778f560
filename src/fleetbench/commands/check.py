"""``fleetbench check -i INVENTORY [--limit PATTERN] [--json]``."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetbench.check import CheckReport, HostCheck, check_fleet, validate_inputs
from fleetbench.commands import user_path
from fleetbench.progress import FleetProgress


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` sub-command."""
    parser = sub.add_parser(
        "check",
        help="check hosts: reachable, Docker, ROCm, partition mode, GPUs, disk",
        description="Read-only checks of every host, one remote call per host. Exit 0 when "
        "every host is ok, 1 when any is not, 2 on bad input.",
    )
    parser.add_argument("-i", "--inventory", type=user_path, required=True,
                        help="Ansible inventory")
    parser.add_argument("--limit", help="host pattern, as ansible-playbook --limit")
    parser.add_argument("--forks", type=int, help="parallel hosts (default: all, up to 100)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def render_table(report: CheckReport) -> Table:
    """The human table of a check."""
    table = Table(title="fleetbench check", show_lines=False)
    for column in ("host", "status", "compute", "memory", "GPUs", "ROCm", "Docker",
                   "free GB", "problems / warnings"):
        table.add_column(column, overflow="fold")
    for host in report.hosts:
        table.add_row(*_row(host))
    return table


def _row(host: HostCheck) -> list[str]:
    colour = "green" if host.status == "ok" else "red"
    notes = [*host.problems, *(f"warning: {w}" for w in host.warnings)]
    # Problems are text ("[192.0.2.15]:2222" from SSH), not markup.
    return [
        escape(host.name),
        f"[{colour}]{host.status}[/]",
        host.compute_partition or "?",
        host.memory_partition or "?",
        str(host.logical_gpus) if host.logical_gpus is not None else "?",
        host.rocm_version or "?",
        host.docker_version or "?",
        f"{host.free_disk_gb:g}" if host.free_disk_gb is not None else "?",
        escape("\n".join(notes)),
    ]


def run(args: argparse.Namespace) -> int:
    """Check the fleet; print a table (or JSON); 0 when all ok, 1 otherwise."""
    console = Console(stderr=True)
    from fleetbench.inventory import load_fleet

    fleet = load_fleet(args.inventory, args.limit)  # bad input fails here, before any SSH
    validate_inputs(fleet)
    with FleetProgress(len(fleet.hosts), "check", console) as progress:
        report = check_fleet(
            fleet,
            forks=args.forks,
            arguments_checked=True,
            on_host=lambda h: progress.host_done(h.name, h.status, "; ".join(h.problems)),
        )
    if args.json:
        print(json.dumps(report.contract(), indent=2))
    else:
        Console().print(render_table(report))
    return 0 if report.ok else 1
