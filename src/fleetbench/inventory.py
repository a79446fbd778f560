"""Load and validate an Ansible inventory on the controller, before anything touches a host."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetbench.errors import BadInput
from fleetbench.partition.modes import LOGICAL_PER_PHYSICAL


@dataclass(frozen=True)
class Fleet:
    """The hosts an action will run on, resolved from an inventory and a limit."""

    inventory: Path
    limit: str | None
    hosts: tuple[str, ...]
    # Logical GPUs each selected host should have, from its group's expected partition
    # mode (fleetbench_expected_compute x fleetbench_physical_gpus): 64 for 8 GPUs in CPX.
    planned_gpus: Mapping[str, int] = field(default_factory=dict)
    # Memory of one logical GPU in that mode (MI300X: 192 GB split by the compute mode).
    planned_partition_bytes: Mapping[str, int] = field(default_factory=dict)
    # Each selected host's inventory variables as Ansible resolves them (group_vars,
    # host_vars, magic variables): what the roles' arguments are checked on
    # (fleetbench.roleargs) before a playbook starts.
    host_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False,
                                                       compare=False)


def load_fleet(inventory: Path, limit: str | None = None) -> Fleet:
    """Parse ``inventory`` with Ansible's own loader and apply ``limit``.

    Raises BadInput when the file is missing, unreadable or unparsable, has no hosts, or
    the limit matches none of them.
    """
    path = Path(inventory).expanduser()
    if not path.exists():
        raise BadInput(f"inventory {path} does not exist — pass -i with an inventory file")
    if not os.access(path, os.R_OK):
        raise BadInput(f"inventory {path} is not readable — check its permissions")

    # Imported here: loading Ansible costs a second that `fleetbench --help` need not pay.
    from ansible import constants
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    # An unparsable inventory must be an error, not a warning and an empty fleet.
    constants.INVENTORY_UNPARSED_IS_FAILED = True
    if path.suffix in {".yml", ".yaml"}:
        _check_yaml(path)
    loader = DataLoader()
    chatter = io.StringIO()  # Ansible warns once per plugin it tried; we say it once
    try:
        with contextlib.redirect_stderr(chatter):
            manager = InventoryManager(loader=loader, sources=[str(path)])
    except AnsibleError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BadInput(
            f"inventory {path} could not be parsed: {reason} — fix the file (YAML or INI "
            "inventory, see inventory/sample/)"
        ) from None
    everything = [h.name for h in manager.get_hosts("all")]
    if not everything:
        raise BadInput(f"inventory {path} lists no hosts — add hosts under a group")
    if limit:
        manager.subset(limit)
    with contextlib.redirect_stderr(chatter):
        selected = [h.name for h in manager.get_hosts("all")]
    if not selected:
        raise BadInput(
            f"--limit {limit!r} matches no host of {path} — hosts are: "
            f"{', '.join(everything[:10])}{' …' if len(everything) > 10 else ''}"
        )
    variables = VariableManager(loader=loader, inventory=manager)
    host_vars = {name: variables.get_vars(host=manager.get_host(name)) for name in selected}
    planned = {name: planned_partitions(host_vars[name]) for name in selected}
    return Fleet(inventory=path.resolve(), limit=limit, hosts=tuple(selected),
                 planned_gpus={h: p[0] for h, p in planned.items()},
                 planned_partition_bytes={h: p[1] for h, p in planned.items()},
                 host_vars=host_vars)


MI300X_MEMORY_BYTES = 192 * 10**9


def planned_partitions(host_vars: Mapping[str, Any]) -> tuple[int, int]:
    """(logical GPUs, bytes per logical GPU) a host should have, from its inventory vars."""
    compute = str(host_vars.get("fleetbench_expected_compute", "CPX")).upper()
    if compute not in LOGICAL_PER_PHYSICAL:
        raise BadInput(
            f"fleetbench_expected_compute {compute!r} in the inventory is not a compute mode — "
            f"use one of {', '.join(LOGICAL_PER_PHYSICAL)}"
        )
    try:
        per_physical = int(host_vars.get("fleetbench_logical_per_physical") or 0)
        physical = int(host_vars.get("fleetbench_physical_gpus", 8))
    except (TypeError, ValueError):
        raise BadInput(
            "fleetbench_logical_per_physical and fleetbench_physical_gpus in the inventory "
            "must be numbers"
        ) from None
    per_physical = per_physical or LOGICAL_PER_PHYSICAL[compute]
    memory = int(host_vars.get("fleetbench_gpu_memory_bytes", MI300X_MEMORY_BYTES))
    return per_physical * physical, memory // per_physical


def _check_yaml(path: Path) -> None:
    """Name the line of a YAML syntax error instead of Ansible's per-plugin warnings."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise BadInput(
            f"inventory {path} is not valid YAML{where}: {problem} — fix the file"
        ) from None
    except UnicodeDecodeError:
        raise BadInput(f"inventory {path} is not UTF-8 text — pass an inventory file") from None
    if not isinstance(data, dict):
        raise BadInput(
            f"inventory {path} is not a YAML inventory (expected a mapping of groups, e.g. "
            "all: {hosts: …}) — see inventory/sample/"
        )
