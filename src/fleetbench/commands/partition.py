"""``fleetbench partition …``: GPU partition modes (CPX/NPS4 by default).

``partition`` is a group: each action is one sub-command added by its own ``_add_<action>``
function listed in :data:`ACTIONS`, so ``show`` and ``apply`` can join ``parse`` without
touching it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table

from fleetbench.commands import user_path
from fleetbench.errors import BadInput
from fleetbench.partition.parse import parse_text, read_file, unusable

if TYPE_CHECKING:  # the runner (ansible-runner) loads only when a host is contacted
    from fleetbench.partition.rollout import ApplyReport, HostApply
    from fleetbench.partition.show import PartitionShow

GIB = 2**30


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``partition`` command and its actions to the top-level sub-command parsers."""
    parser = sub.add_parser(
        "partition",
        help="GPU partition modes: parse tool output, show and set them on hosts",
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
            "from the content. A file that cannot be read, is empty or is of no known "
            "format is bad input: it is not printed, one message per such file goes to "
            "stderr, the other files are still printed, and the exit code is 2. Use - for "
            "standard input."
        ),
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a saved tool output")
    parser.set_defaults(handler=run_parse)


def run_parse(args: argparse.Namespace) -> int:
    """Print the reading of every usable file in ``args.files`` (one JSON line each, in
    order); name each file that cannot be read, is empty or of no known format on stderr.

    Exit 2 when any file was not usable: its line is missing, and a nightly job must not
    take the output for complete.
    """
    problems: list[str] = []
    for path in args.files:
        name = str(path)
        try:
            reading = parse_text(read_file(path))
        except BadInput as exc:
            problems.append(str(exc))
            continue
        problem = unusable(name, reading)
        if problem is not None:
            problems.append(problem)
            continue
        sys.stdout.write(json.dumps({"file": name, **reading.to_dict()}) + "\n")
    sys.stdout.flush()
    for problem in problems:
        print(f"fleetbench: error: {problem}", file=sys.stderr)
    return BadInput.exit_code if problems else 0


# ----------------------------------------------------------------------------- show


def _add_show(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "show",
        help="show every host's partition verdict and the fleet's drift (read-only)",
        description=(
            "Run the read-only check probes (one remote call per host) and print, per host, "
            "the partition verdict against the mode its inventory group expects "
            "(fleetbench_expected_compute/_memory): compute and memory partition, logical "
            "and physical GPUs, partition memory from KFD, what each source (sysfs, KFD, "
            "amd-smi, rocm-smi) said, problems and warnings; then the fleet's drift: how many "
            "hosts show each ROCm version, driver version and mode. Exit 0 when every host "
            "matches its expected partition, 1 otherwise, 2 on bad input."
        ),
    )
    parser.add_argument("-i", "--inventory", type=user_path, required=True,
                        help="Ansible inventory")
    parser.add_argument("--limit", help="host pattern, as ansible-playbook --limit")
    parser.add_argument("--forks", type=int, help="parallel hosts (default: all, up to 100)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_show)


def _gib(value: int | None) -> str:
    return f"{value / GIB:.1f} GiB" if value else "?"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _colour(status: str) -> str:
    colour = "green" if status == "ok" else "yellow" if status.startswith("skipped") else "red"
    return f"[{colour}]{status}[/]"


def _notes(name: str, problems: Sequence[str], warnings: Sequence[str]) -> list[str]:
    # Problems are text ("[192.0.2.15]:2222" from SSH), not markup.
    return [f"[red]{escape(name)}[/]: {escape(p)}" for p in problems] + [
        f"[yellow]{escape(name)}[/] (warning): {escape(w)}" for w in warnings
    ]


def render_show(report: PartitionShow) -> Group:
    """The human view of ``partition show``: hosts, what each source said, notes, drift."""
    hosts = Table(title="fleetbench partition show")
    for column in ("host", "status", "expected", "compute", "memory", "GPUs (logical/physical)",
                   "per partition", "ROCm", "driver"):
        hosts.add_column(column, overflow="fold")
    sources = Table(title="what each source said")
    for column in ("host", "source", "compute", "memory", "GPUs", "detail"):
        sources.add_column(column, overflow="fold")
    notes: list[str] = []
    for host in report.hosts:
        hosts.add_row(
            host.name, _colour(host.status), host.expected or "?",
            host.compute_partition or "?", host.memory_partition or "?",
            f"{_count(host.logical_gpus)}/{_count(host.physical_gpus)}",
            _gib(host.partition_memory_bytes), host.rocm_version or "?",
            host.driver_version or "?",
        )
        for name, said in host.sources.items():
            sources.add_row(
                host.name, name,
                (said.get("compute_partition") or "-") if said.get("available") else "n/a",
                said.get("memory_partition") or "-",
                f"{_count(said.get('logical_gpus'))}/{_count(said.get('physical_gpus'))}",
                str(said.get("detail") or ""),
            )
        notes += _notes(host.name, host.problems, host.warnings)
    drift = Table(title="fleet drift (hosts that answered)")
    drift.add_column("fact")
    drift.add_column("hosts per value", overflow="fold")
    facts: Mapping[str, Mapping[str, int]] = {
        "ROCm version": report.drift.rocm_version,
        "driver version": report.drift.driver_version,
        "compute partition": report.drift.compute_partition,
        "memory partition": report.drift.memory_partition,
    }
    for fact, counts in facts.items():
        mark = " [yellow](drift)[/]" if len(counts) > 1 else ""
        drift.add_row(fact + mark, ", ".join(f"{value}: {n}" for value, n in counts.items()))
    if report.drift.unreachable:
        drift.add_row("unreachable", str(report.drift.unreachable))
    return Group(hosts, sources, *notes, drift)


def run_show(args: argparse.Namespace) -> int:
    """Show every host's partition; 0 when all match their expected mode, 1 otherwise."""
    from fleetbench.check import validate_inputs
    from fleetbench.inventory import load_fleet
    from fleetbench.partition.show import show_partitions
    from fleetbench.progress import FleetProgress

    fleet = load_fleet(args.inventory, args.limit)  # bad input fails here, before any SSH
    validate_inputs(fleet)
    with FleetProgress(len(fleet.hosts), "partition show", Console(stderr=True)) as progress:
        report = show_partitions(
            fleet, forks=args.forks, arguments_checked=True,
            on_host=lambda h: progress.host_done(h.name, h.status, h.partition),
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        Console().print(render_show(report))
    return 0 if report.ok else 1


# ----------------------------------------------------------------------------- apply


def _add_apply(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "apply",
        help="set a compute/memory partition on hosts, batch by batch (changes hosts)",
        description=(
            "Set the GPU partition on every host that differs, through amd-smi (rocm-smi as "
            "fallback), in the order the hardware requires (CPX before NPS4, NPS1 before "
            "SPX), reloading the driver where ROCm 7 needs it, then verify with the same "
            "probe and verdict as `fleetbench check`. A host whose GPUs are in use (KFD "
            "process list, running containers) is left untouched and listed. Hosts go in "
            "batches of --serial; a batch with a failed host stops the roll and later hosts "
            "are not touched. Asks for confirmation on a terminal; without one, --yes is "
            "required. Exit 0 when every host ends with the target partition, 1 otherwise, "
            "2 on bad input or when the confirmation is declined (nothing changed)."
        ),
    )
    parser.add_argument("-i", "--inventory", type=user_path, required=True,
                        help="Ansible inventory")
    parser.add_argument("--compute", required=True, metavar="MODE",
                        help="compute partition: SPX, DPX, QPX, CPX (TPX on MI300A)")
    parser.add_argument("--memory", required=True, metavar="MODE",
                        help="memory partition: NPS1, NPS4 (NPS2/NPS8 where offered)")
    parser.add_argument("--serial", default="1", metavar="N",
                        help="hosts per batch, a number or a percentage such as 25%% "
                        "(default: 1)")
    parser.add_argument("--limit", help="host pattern, as ansible-playbook --limit")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation (needed when stdin is not a terminal)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_apply)


def _steps(host: HostApply) -> str:
    lines = []
    for step in host.steps:
        what = f"{step['step']} {step['mode']}" if step.get("mode") else str(step["step"])
        lines.append(f"{what} via {step['tool']}: {step['outcome']}")
    if not lines and host.before.get("planned") == [] and host.status == "ok":
        lines.append("already matched")
    return "\n".join(lines)


def render_apply(report: ApplyReport) -> Group:
    """The human view of ``partition apply``: a row per host, then what stopped or blocked it."""
    table = Table(title=f"fleetbench partition apply → {report.target.label}")
    for column in ("host", "status", "before", "after", "steps"):
        table.add_column(column, overflow="fold")
    notes: list[str] = []
    for host in report.hosts:
        before, after = host.before, host.after
        table.add_row(
            host.name, _colour(host.status),
            f"{before.get('compute_partition') or '?'}/{before.get('memory_partition') or '?'}"
            if before else "",
            f"{after.get('compute_partition') or '?'}/{after.get('memory_partition') or '?'} "
            f"({_count(after.get('logical_gpus'))} GPUs)" if after else "",
            _steps(host),
        )
        users = [f"GPU process {p['name'] or '?'} (pid {p['pid']})" for p in host.processes]
        users += [f"container {c['name'] or c['id']} ({c['image']})" for c in host.containers]
        if host.status == "skipped:busy":
            notes += [f"[yellow]{host.name}[/] in use by: {u}" for u in users]
        notes += _notes(host.name, host.problems, host.warnings)
    if report.roll_stopped:
        notes.append("[red]The roll stopped after a failed batch: hosts marked "
                     "skipped:roll-stopped were not touched.[/]")
    return Group(table, *notes)


def confirm_apply(hosts: int, label: str, serial: object, assume_yes: bool) -> None:
    """Ask the admin to confirm; BadInput (exit 2, nothing started) when not confirmed.

    Without a terminal on stdin there is nobody to ask: ``--yes`` is then required.
    """
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(
            "partition apply changes GPU partitions and stdin is not a terminal to confirm "
            "it — pass --yes to apply without asking"
        )
    question = (
        f"Set GPU partition {label} on {hosts} host(s), {serial} at a time? Hosts whose GPUs "
        "are in use are left alone"
    )
    try:
        agreed = Confirm.ask(question, default=False, console=Console(stderr=True))
    except EOFError:
        agreed = False
    if not agreed:
        raise BadInput("not confirmed: nothing was changed on any host — answer y to apply")


def run_apply(args: argparse.Namespace) -> int:
    """Set the partition on the fleet; 0 when every host ends with it, 1 otherwise."""
    from fleetbench.inventory import load_fleet
    from fleetbench.partition.rollout import apply_partitions, parse_serial, validate_inputs
    from fleetbench.partition.verdict import ExpectedPartition
    from fleetbench.progress import FleetProgress

    # Every check on the controller first: nothing starts on a host before all pass.
    target = ExpectedPartition(args.compute, args.memory)
    serial = parse_serial(args.serial)
    fleet = load_fleet(args.inventory, args.limit)
    validate_inputs(fleet, target, serial)
    console = Console(stderr=True)
    if target.caution:
        console.print(f"[yellow]warning:[/] {target.caution}", highlight=False)
    confirm_apply(len(fleet.hosts), target.label, serial, args.yes)
    with FleetProgress(len(fleet.hosts), "partition apply", console) as progress:
        report = apply_partitions(
            fleet, target, serial=serial, arguments_checked=True,
            on_host=lambda h: progress.host_done(h.name, h.status, "; ".join(h.problems)),
            on_step=progress.step,
        )
        for host in report.hosts:  # hosts the roll never reached finish here
            progress.host_done(host.name, host.status)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        Console().print(render_apply(report))
    return 0 if report.ok else 1


#: One function per ``partition`` action; each adds its sub-command parser.
ACTIONS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_parse,
    _add_show,
    _add_apply,
)
