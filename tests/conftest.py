"""Test helpers for every suite: where the test data is, how to run the real CLI."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The test data (real tool outputs and report files) kept in the repository; see its README.
FIXTURES = REPO / "tests" / "fixtures"
FLEETBENCH = Path(sys.executable).with_name("fleetbench")


def module_util(name: str) -> ModuleType:
    """``module_utils/<name>.py``, imported as ``ansible.module_utils.<name>``: the name the
    roles' modules import it by (it runs on hosts, so it is not part of the package)."""
    full = f"ansible.module_utils.{name}"
    path = REPO / "module_utils" / f"{name}.py"
    # Ours that it imports first, as Ansible bundles them.
    for needed in re.findall(r"^from ansible\.module_utils\.(\w+) import", path.read_text(),
                             re.MULTILINE):
        if (REPO / "module_utils" / f"{needed}.py").exists() and (
                f"ansible.module_utils.{needed}" not in sys.modules):
            module_util(needed)
    spec = importlib.util.spec_from_file_location(full, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str | os.PathLike[str], env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``fleetbench`` command as an admin would."""
    return subprocess.run(
        [str(FLEETBENCH), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The test data folder ``tests/fixtures`` (read-only: copy into ``tmp_path`` to change)."""
    assert FIXTURES.is_dir(), f"missing {FIXTURES}"
    return FIXTURES
