"""The collection's plugins import fleetbench through fleetbench.plugin_api alone, and the
code that runs on the hosts (modules, module_utils) never imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import fleetbench.plugin_api as api
from tests.conftest import REPO

PLUGIN_DIRS = ("filter_plugins", "action_plugins")


def fleetbench_imports(source: str) -> set[str]:
    """The fleetbench modules a file imports: import statements and import_module("…")."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fleetbench"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "fleetbench":
                found.add(node.module)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant | ast.JoinedStr)):
            text = node.args[0].value if isinstance(node.args[0], ast.Constant) else "fleetbench.?"
            if str(text).split(".")[0] == "fleetbench":
                found.add(str(text))
    return found


def test_the_check_sees_every_way_in() -> None:
    assert fleetbench_imports("import fleetbench.run\nfrom fleetbench import lock\n"
                              "importlib.import_module('fleetbench.plan')\n"
                              "importlib.import_module(f'fleetbench.{name}')\n") == {
        "fleetbench.run", "fleetbench", "fleetbench.plan", "fleetbench.?"}


def test_plugins_import_only_the_plugin_api() -> None:
    plugins = [p for d in PLUGIN_DIRS for p in (REPO / "roles").glob(f"*/{d}/*.py")]
    assert len(plugins) >= 8
    for path in plugins:
        assert fleetbench_imports(path.read_text()) <= {"fleetbench.plugin_api"}, path


def test_host_side_code_never_imports_fleetbench() -> None:
    host_side = [*(REPO / "roles").glob("*/library/*.py"), *(REPO / "module_utils").glob("*.py")]
    assert host_side
    for path in host_side:
        assert fleetbench_imports(path.read_text()) == set(), path


def test_the_api_holds_what_it_lists() -> None:
    assert all(hasattr(api, name) for name in api.__all__)
    assert {"judge_probe", "judge_host", "plan", "remote", "mad_era"} <= set(api.__all__)


def test_the_api_is_only_imports() -> None:
    tree = ast.parse(Path(api.__file__).read_text())
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Import", "Assign"}, kinds
