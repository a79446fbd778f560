"""Load and validate an Ansible inventory on the controller, before anything touches a host."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetbench.errors import BadInput


@dataclass(frozen=True)
class Fleet:
    """The hosts an action will run on, resolved from an inventory and a limit."""

    inventory: Path
    limit: str | None
    hosts: tuple[str, ...]


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
    return Fleet(inventory=path.resolve(), limit=limit, hosts=tuple(selected))


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
