"""Load and validate an Ansible inventory on the controller, before anything touches a host."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
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

    Raises BadInput when the file is missing, unreadable or unparsable, has no hosts, the
    limit matches none of them, or a selected host has no usable address or shares its
    address with another (:func:`address_problems`).
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
    problems = address_problems(host_vars, render=_renderer(loader))
    if problems:
        raise BadInput(f"inventory {path}: {'; '.join(problems)}")
    planned = {name: planned_partitions(host_vars[name]) for name in selected}
    return Fleet(inventory=path.resolve(), limit=limit, hosts=tuple(selected),
                 planned_gpus={h: p[0] for h, p in planned.items()},
                 planned_partition_bytes={h: p[1] for h, p in planned.items()},
                 host_vars=host_vars)


# --- host addresses ------------------------------------------------------------------------

# Connections that reach a host over SSH by its address (ansible_connection, default ssh).
_SSH_CONNECTIONS = frozenset({"ssh", "smart", "paramiko", "paramiko_ssh",
                              "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh"})
# One label of a host name: letters, digits, hyphens (not at either end); underscores too,
# which resolvers and /etc/hosts accept in practice.
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_FIX = "set ansible_host to each host's address (a DNS name or an IP address)"


def is_address(text: str) -> bool:
    """True for an IP address or a valid host name (no lookup: the text alone decides)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return True
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return False
    # "10.0.0" or "1234" is no name, and no valid IP address either (resolvers would
    # read it as a number); a name's last label is never all digits.
    return not labels[-1].isdigit()


@dataclass(frozen=True)
class HostAddress:
    """Where SSH reaches a host: address and port, plus the SSH arguments that can route
    the same address elsewhere (a bastion per cluster) or pick another port."""

    address: str
    port: int
    route: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


def _first(variables: Mapping[str, Any], *names: str) -> tuple[str | None, Any]:
    """The variable that wins among ``names`` (Ansible's later aliases win) and its value."""
    for name in reversed(names):
        if name in variables:
            return name, variables[name]
    return None, None


def address_problems(
    host_vars: Mapping[str, Mapping[str, Any]],
    render: Callable[[Any, Mapping[str, Any]], Any] = lambda value, variables: value,
) -> list[str]:
    """What is wrong with the hosts' addresses, one text per kind of problem with the
    hosts it concerns and the fix (empty: all fine).

    A host reached over SSH needs an address: its ``ansible_host`` (set, not empty) or
    else its inventory name, which must then be a host name or IP address (Ansible would
    hand anything to SSH, which then tries to resolve it). Two hosts with the same
    address, port and SSH arguments are one machine listed twice. ``render`` templates a
    value with the host's variables (inventory values may be Jinja2). No name is resolved.
    """
    empty: list[str] = []
    unnamed: list[str] = []
    invalid: list[str] = []
    ports: list[str] = []
    by_address: dict[HostAddress, list[str]] = defaultdict(list)
    for name, variables in host_vars.items():
        connection = render(variables.get("ansible_connection") or "ssh", variables)
        if str(connection) not in _SSH_CONNECTIONS:
            continue
        key, value = _first(variables, "ansible_host", "ansible_ssh_host")
        if key is None:
            if not is_address(name):
                unnamed.append(repr(name))
                continue
            address = name
        else:
            address = str(render(value, variables) if value is not None else "").strip()
            if not address:
                empty.append(name if key == "ansible_host" else f"{name} ({key})")
                continue
            if not is_address(address):
                invalid.append(f"{name} ({key} {address!r})")
                continue
        port_key, port_value = _first(variables, "ansible_port", "ansible_ssh_port")
        port = _port(render(port_value, variables) if port_key else 22)
        if port is None:
            ports.append(f"{name} ({port_key} {port_value!r})")
            continue
        route = tuple(str(render(variables.get(arg) or "", variables))
                      for arg in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
        by_address[HostAddress(_canonical(address), port, route)].append(name)
    problems = []
    if empty:
        problems.append(f"{_hosts(empty)} an empty ansible_host — {_FIX}")
    if unnamed:
        problems.append(f"{_hosts(unnamed)} no ansible_host, and a name that is not a host "
                        f"name or IP address — {_FIX}")
    if invalid:
        problems.append(f"{_hosts(invalid)} an address that is not a host name or IP address "
                        f"— {_FIX}; the port goes in ansible_port")
    if ports:
        problems.append(f"{_hosts(ports)} a port that is not a number from 1 to 65535 — set "
                        "ansible_port")
    problems += [f"hosts {', '.join(names[:-1])} and {names[-1]} have the same address "
                 f"{where} — give each its own ansible_host (or ansible_port), or list it once"
                 for where, names in by_address.items() if len(names) > 1]
    return problems


def _hosts(names: list[str]) -> str:
    """``host a has`` / ``hosts a, b have`` (at most 10 named)."""
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"host {shown} has" if len(names) == 1 else f"hosts {shown} have"


def _port(value: object) -> int | None:
    try:
        port = int(str(value).strip())
    except ValueError:
        return None
    return port if 1 <= port <= 65535 else None


def _canonical(address: str) -> str:
    """One spelling per address: IP addresses normalised, names lower case, no final dot."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(address))
    return address.lower().removesuffix(".")


def _renderer(loader: Any) -> Callable[[Any, Mapping[str, Any]], Any]:
    """Template an inventory value with its host's variables, as Ansible will."""
    from ansible.template import Templar

    def render(value: Any, variables: Mapping[str, Any]) -> Any:
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return value
        try:
            return Templar(loader=loader, variables=dict(variables)).template(value)
        except Exception:  # roleargs reports templates that do not render
            return value
    return render


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
