"""Wheel build hook: ship the Ansible content inside the package, tracked files only.

A static force-include copies whole folders, so whatever lies in a checkout's roles/
(a gitignored leftover, __pycache__) would land in the wheel. In a git checkout the files
are those git tracks (and new ones it does not ignore); from an sdist, which hatch already
built from those, every file there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

CONTENT = ("playbooks", "roles", "module_utils", "ansible.cfg")
DEST = "fleetbench/ansible"


def content_files(root: Path) -> list[str]:
    """The Ansible content's files under ``root``, relative to it."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard",
         "--", *CONTENT],
        capture_output=True, text=True, check=False,
    )
    if listed.returncode == 0 and (root / ".git").exists():
        names = listed.stdout.splitlines()
    else:
        names = [str(p.relative_to(root)) for name in CONTENT
                 for p in sorted((root / name).rglob("*") if (root / name).is_dir()
                                 else [root / name])
                 if p.is_file()]
    return sorted(n for n in names if (root / n).is_file() and "__pycache__" not in n)


class AnsibleContentHook(BuildHookInterface):  # type: ignore[type-arg]
    """Adds playbooks/, roles/, module_utils/ and ansible.cfg under fleetbench/ansible/."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Force-include each content file (an editable install finds the checkout's)."""
        if version == "editable":
            return
        root = Path(self.root)
        for name in content_files(root):
            build_data["force_include"][str(root / name)] = f"{DEST}/{name}"
