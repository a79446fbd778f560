"""Build fleetbench's Ansible content as the collection ``fleetbench.mi300x``.

The checkout keeps the layout fleetbench and plain ``ansible-playbook`` use: roles with
their own ``library/``, ``action_plugins/``, ``filter_plugins/``, ``lookup_plugins/``, and
the shared ``module_utils/`` found through ansible.cfg. A collection's roles load none of
those: their plugins live in the collection's ``plugins/`` tree, Jinja filters and lookups
are found by their fully qualified names only, and modules import shared code as
``ansible_collections.<namespace>.<name>.plugins.module_utils.<x>``. So the build copies the
tracked content into a staging folder in the collection's layout, qualifies those names
there, and runs ``ansible-galaxy collection build`` on it; the checkout is never changed.

``python -m fleetbench.collection --out dist/`` writes
``dist/fleetbench-mi300x-<version>.tar.gz``.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetbench import __version__
from fleetbench.errors import BadInput, FleetbenchError
from fleetbench.resources import ansible_dir

#: Content that goes into the collection (anything else in the checkout stays out).
CONTENT = ("README.md", "CHANGELOG.md", "galaxy.yml", "meta", "playbooks", "roles",
           "module_utils")
#: A role's plugin folder → the collection's plugins/ subfolder for it.
PLUGIN_DIRS = {
    "library": "modules",
    "action_plugins": "action",
    "filter_plugins": "filter",
    "lookup_plugins": "lookup",
    "module_utils": "module_utils",
}


@dataclass(frozen=True)
class Collection:
    """The collection's name as galaxy.yml gives it."""

    namespace: str
    name: str

    @property
    def prefix(self) -> str:
        """``namespace.name.``, the start of every fully qualified name in it."""
        return f"{self.namespace}.{self.name}."

    @property
    def module_utils(self) -> str:
        """The Python package its modules import shared code from."""
        return f"ansible_collections.{self.namespace}.{self.name}.plugins.module_utils"


def tracked_files(root: Path, names: Iterable[str] = CONTENT) -> list[str]:
    """Files under ``names`` in ``root``, relative: those git tracks (or does not ignore),
    every file when ``root`` is not a git checkout."""
    names = list(names)
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard",
             "--", *names], capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            return sorted({n for n in listed.stdout.splitlines()
                           if (root / n).is_file() and "__pycache__" not in n})
    found = [p for name in names
             for p in ((root / name).rglob("*") if (root / name).is_dir() else [root / name])]
    return sorted(str(p.relative_to(root)) for p in found
                  if p.is_file() and "__pycache__" not in p.parts)


def destination(name: str) -> str:
    """Where checkout file ``name`` goes in the collection."""
    parts = Path(name).parts
    if parts[0] == "module_utils":
        return str(Path("plugins", "module_utils", *parts[1:]))
    if parts[0] == "roles" and len(parts) > 3 and parts[2] in PLUGIN_DIRS:
        return str(Path("plugins", PLUGIN_DIRS[parts[2]], *parts[3:]))
    return name


def filter_names(source: str) -> list[str]:
    """The filter names a filter plugin's ``FilterModule.filters()`` returns (a literal)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "filters":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                    names += [k.value for k in ret.value.keys
                              if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return names


def qualify_jinja(text: str, filters: Iterable[str], lookups: Iterable[str],
                  collection: Collection) -> str:
    """``text`` (role YAML) with the collection's filters and lookups fully qualified."""
    for name in filters:
        text = re.sub(rf"(\|\s*){re.escape(name)}\b", rf"\g<1>{collection.prefix}{name}", text)
    for name in lookups:
        text = re.sub(rf"""(\b(?:lookup|query|q)\(\s*['"]){re.escape(name)}(['"])""",
                      rf"\g<1>{collection.prefix}{name}\g<2>", text)
    return text


def qualify_imports(text: str, module_utils: Iterable[str], collection: Collection) -> str:
    """``text`` (a plugin's Python) importing the shared code from the collection."""
    for name in module_utils:
        text = re.sub(rf"\bansible\.module_utils\.{re.escape(name)}\b",
                      f"{collection.module_utils}.{name}", text)
    return text


def _read_galaxy(root: Path) -> dict[str, Any]:
    path = root / "galaxy.yml"
    if not path.is_file():
        raise BadInput(f"{path} is missing: build the collection from a fleetbench checkout "
                       "(--root DIR)")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not data.get("namespace") or not data.get("name"):
        raise BadInput(f"{path} needs a namespace and a name")
    return data


def stage(root: Path, dest: Path) -> Collection:
    """Copy ``root``'s Ansible content into ``dest`` in a collection's layout."""
    galaxy = _read_galaxy(root)
    collection = Collection(str(galaxy["namespace"]), str(galaxy["name"]))
    files = tracked_files(root)
    placed: dict[str, str] = {}
    for name in files:
        target = destination(name)
        if target in placed:
            raise BadInput(f"{name} and {placed[target]} would both be {target} in the "
                           "collection: give one of them another name")
        placed[target] = name
    filters = [f for target, name in placed.items() if target.startswith("plugins/filter/")
               for f in filter_names((root / name).read_text(encoding="utf-8"))]
    lookups = [Path(t).stem for t in placed if t.startswith("plugins/lookup/")]
    shared = [Path(t).stem for t in placed if t.startswith("plugins/module_utils/")]
    for target, name in placed.items():
        out = dest / target
        out.parent.mkdir(parents=True, exist_ok=True)
        source = root / name
        if target == "galaxy.yml":
            out.write_text(yaml.safe_dump({**galaxy, "version": __version__}, sort_keys=False),
                           encoding="utf-8")
        elif target.startswith("plugins/") and target.endswith(".py"):
            out.write_text(qualify_imports(source.read_text(encoding="utf-8"), shared,
                                           collection), encoding="utf-8")
        elif target.startswith("roles/") and target.endswith((".yml", ".yaml", ".j2")):
            out.write_text(qualify_jinja(source.read_text(encoding="utf-8"), filters, lookups,
                                         collection), encoding="utf-8")
        else:
            shutil.copy2(source, out)
    return collection


def build(root: Path, out: Path, *, keep_stage: Path | None = None) -> Path:
    """Build the collection tarball of ``root`` into ``out``; returns its path."""
    galaxy_cli = Path(sys.executable).with_name("ansible-galaxy")
    command = str(galaxy_cli) if galaxy_cli.exists() else shutil.which("ansible-galaxy")
    if command is None:
        raise FleetbenchError("ansible-galaxy is missing: install ansible-core")
    with tempfile.TemporaryDirectory(prefix="fleetbench-collection-") as scratch:
        staging = keep_stage or Path(scratch) / "collection"
        if staging.exists() and any(staging.iterdir()):
            raise BadInput(f"{staging} is not empty: give an empty or new folder")
        collection = stage(root, staging)
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [command, "collection", "build", str(staging), "--output-path", str(out),
             "--force"], capture_output=True, text=True, check=False)
    tarball = out / f"{collection.namespace}-{collection.name}-{__version__}.tar.gz"
    if done.returncode != 0 or not tarball.is_file():
        raise FleetbenchError(f"ansible-galaxy collection build failed: "
                              f"{(done.stderr or done.stdout).strip()}")
    return tarball


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fleetbench.collection [--out DIR] [--root DIR] [--keep-stage DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m fleetbench.collection",
        description="Build the Ansible content as a collection tarball.")
    parser.add_argument("--out", type=Path, default=Path("dist"),
                        help="folder for the tarball (default: dist)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the checkout (default: the one fleetbench runs from)")
    parser.add_argument("--keep-stage", type=Path, default=None,
                        help="lay the collection out in this (new or empty) folder and keep it")
    args = parser.parse_args(argv)
    try:
        tarball = build(args.root or ansible_dir(), args.out, keep_stage=args.keep_stage)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FleetbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())
