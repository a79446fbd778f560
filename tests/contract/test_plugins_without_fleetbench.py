"""The controller plugins load under plain ansible-playbook even where fleetbench is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = sorted((REPO / "roles").glob("*/action_plugins/*.py"))

# fleetbench hidden (None in sys.modules makes every import of it fail), the plugin loaded
# as Ansible's plugin loader would, then its run() called: the guard is its first step.
PROBE = """
import importlib.util, sys
sys.modules["fleetbench"] = None
spec = importlib.util.spec_from_file_location("plugin", sys.argv[1])
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
missing = getattr(plugin, "FLEETBENCH_MISSING", "no guard")
print("guard" if isinstance(missing, ImportError) else f"no guard: {missing!r}")
if isinstance(missing, ImportError):
    action = plugin.ActionModule.__new__(plugin.ActionModule)  # the guard comes first
    try:
        plugin.ActionModule.run(action, task_vars={})
    except Exception as exc:
        print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize("plugin", [p for p in PLUGINS if "fleetbench" in p.read_text()
                                    and "FLEETBENCH_MISSING" in p.read_text()],
                         ids=lambda p: p.name)
def test_a_plugin_without_fleetbench_fails_its_task_with_the_fix(plugin: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, str(plugin)], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("guard"), done.stdout
    assert "fleetbench is not importable on this controller" in done.stdout, done.stdout
    assert "pip install fleetbench" in done.stdout


def test_every_plugin_that_imports_fleetbench_has_the_guard() -> None:
    for plugin in PLUGINS:
        text = plugin.read_text()
        if "from fleetbench" in text:
            assert "FLEETBENCH_MISSING" in text, plugin
