"""``fleetbench lab up|set|status|down``: a simulated MI300X fleet on this machine."""

from __future__ import annotations

import argparse
import json
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table

from fleetbench.commands import user_path
from fleetbench.lab import DEFAULT_FIRST_ADDRESS, DEFAULT_PORT


def _fleet() -> ModuleType:
    """fleetbench.lab.fleet, imported when a lab action runs: it pulls in the Docker SDK
    and paramiko, which no other command needs (every command builds the whole parser)."""
    from fleetbench.lab import fleet

    return fleet


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lab`` sub-command and its actions."""
    parser = sub.add_parser(
        "lab",
        help="a simulated MI300X fleet on this machine (real SSH, Docker, registry)",
        description="Hosts are sshd processes on 127.0.0.11 and up with simulated "
        "rocm-smi/amd-smi and sysfs; the Docker engine and registry are real.",
    )
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="create or complete a lab")
    up.add_argument("--dir", type=user_path, required=True, help="lab directory")
    up.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    up.add_argument("--first-address", default=DEFAULT_FIRST_ADDRESS,
                    help="loopback address of the first host (default %(default)s)")
    up.add_argument("--port", type=int, default=DEFAULT_PORT,
                    help="SSH port of every host (default %(default)s)")
    up.set_defaults(handler=_up)

    setter = actions.add_parser(
        "set", help="change a host: compute= memory= gpus= partitions= rocm= busy= bench= "
                    "factor= slow_s= fail_after= perf_csv= garbage= sshd= disk_free_gb=")
    setter.add_argument("--dir", type=user_path, required=True, help="lab directory")
    setter.add_argument("host", help="host name, e.g. lab02")
    setter.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    setter.set_defaults(handler=_set)

    status = actions.add_parser("status", help="show the lab")
    status.add_argument("--dir", type=user_path, required=True, help="lab directory")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    down = actions.add_parser("down", help="stop and remove everything `up` created")
    down.add_argument("--dir", type=user_path, required=True, help="lab directory")
    down.set_defaults(handler=_down)


def _up(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    with console.status(f"bringing up {args.hosts} lab hosts in {args.dir}"):
        lab = _fleet().up(args.dir, hosts=args.hosts, first_address=args.first_address,
                       port=args.port)
    print(f"lab ready: {len(lab.hosts)} hosts; inventory {lab.inventory}")
    return 0


def _set(args: argparse.Namespace) -> int:
    print(json.dumps(_fleet().set_host(args.dir, args.host, args.settings), indent=2))
    return 0


def _status(args: argparse.Namespace) -> int:
    data = _fleet().status(args.dir)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    table = Table(title=f"lab {data['dir']} (docker {data['docker']}, registry {data['registry']})")
    for column in ("host", "address", "sshd", "compute", "memory", "GPUs", "ROCm", "bench"):
        table.add_column(column)
    for host in data["hosts"]:
        gpu: dict[str, Any] = host["gpu"]
        table.add_row(host["name"], host["address"], host["sshd"], str(gpu.get("compute")),
                      str(gpu.get("memory")), str(gpu.get("gpus")), str(gpu.get("rocm")),
                      host["bench"].get("mode", "ok"))
    Console().print(table)
    return 0


def _down(args: argparse.Namespace) -> int:
    _fleet().down(args.dir)
    print(f"lab in {args.dir} removed")
    return 0
