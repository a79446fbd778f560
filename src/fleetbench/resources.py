"""Where the Ansible content (playbooks, roles, ansible.cfg) lives.

In a wheel it ships inside the package (``fleetbench/ansible/``); in a checkout it is at
the top of the repository, so plain ``ansible-playbook`` works from there too.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fleetbench.errors import FleetbenchError

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def ansible_dir() -> Path:
    """The folder that holds ``playbooks/``, ``roles/`` and ``ansible.cfg``."""
    for candidate in (_PACKAGE_DIR / "ansible", _PACKAGE_DIR.parents[1]):
        if (candidate / "playbooks").is_dir() and (candidate / "roles").is_dir():
            return candidate
    raise FleetbenchError(f"fleetbench's playbooks and roles are missing next to {_PACKAGE_DIR}")


def playbook_path(name: str) -> Path:
    """Absolute path of ``playbooks/<name>.yml``."""
    path = ansible_dir() / "playbooks" / f"{name}.yml"
    if not path.is_file():
        raise FleetbenchError(f"playbook {path} is missing from this installation")
    return path


def roles_path() -> Path:
    """The roles folder."""
    return ansible_dir() / "roles"


def module_utils_path() -> Path:
    """Code shared by the roles' modules (``ansible.module_utils.fleetbench_host``)."""
    return ansible_dir() / "module_utils"


def ansible_config() -> Path:
    """fleetbench's ansible.cfg (tuned for fleets)."""
    return ansible_dir() / "ansible.cfg"
