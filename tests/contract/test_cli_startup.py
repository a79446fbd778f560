"""Every command builds the whole parser: it must not pull in what only one command needs."""

from __future__ import annotations

import subprocess
import sys

HEAVY_FOR_ONE_COMMAND = ("docker", "paramiko", "fleetbench.lab.fleet")


def test_building_the_parser_leaves_the_lab_machinery_alone() -> None:
    code = ("import sys; from fleetbench.cli import build_parser; build_parser(); "
            f"print(sorted(m for m in {HEAVY_FOR_ONE_COMMAND!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"
