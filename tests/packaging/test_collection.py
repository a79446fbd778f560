"""The collection fleetbench.mi300x: built offline from the checkout, it holds the roles
(meta/main.yml, README.md), the playbooks and the plugins in a collection's layout and
nothing of the Python package; installed on its own, its playbooks, modules, module_utils
and filters resolve from the collection alone."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

import fleetbench

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("collection")
    done = subprocess.run(
        [sys.executable, "-m", "fleetbench.collection", "--out", str(out), "--root", str(REPO)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    path = Path(done.stdout.strip())
    assert path == out / f"fleetbench-mi300x-{fleetbench.__version__}.tar.gz"
    return path


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of an ansible-* command that sees the installed collection only."""
    home = tmp_path_factory.mktemp("install")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home),
           "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),
           "ANSIBLE_LOCAL_TEMP": str(home / "tmp"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "--no-deps",
         "--offline", "-p", str(home / "collections")],
        capture_output=True, text=True, timeout=300, check=False, cwd=home, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def test_galaxy_version_is_the_package_version() -> None:
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("fleetbench", "mi300x")
    assert galaxy["version"] == fleetbench.__version__


def test_tarball_holds_the_content_in_a_collection_layout(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = {n.removeprefix("./") for n in archive.getnames()}
        manifest = json.load(archive.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert manifest["collection_info"]["version"] == fleetbench.__version__
    assert manifest["collection_info"]["dependencies"] == {"community.docker": ">=3.6.0"}
    assert {"README.md", "CHANGELOG.md", "meta/runtime.yml"} <= names
    for role in ROLES:
        # fleetbench_defaults holds the shared settings only: it has no tasks.
        tasks = () if role == "fleetbench_defaults" else ("tasks/main.yml",)
        for part in ("meta/main.yml", "meta/argument_specs.yml", "README.md",
                     "defaults/main.yml", *tasks):
            assert f"roles/{role}/{part}" in names, f"{role}: {part} missing"
    for playbook in (REPO / "playbooks").glob("*.yml"):
        assert f"playbooks/{playbook.name}" in names
    for path in (REPO / "module_utils").glob("*.py"):
        assert f"plugins/module_utils/{path.name}" in names
    expected_plugins = {
        f"plugins/{kind}/{path.name}"
        for folder, kind in (("library", "modules"), ("action_plugins", "action"),
                             ("filter_plugins", "filter"), ("lookup_plugins", "lookup"))
        for path in (REPO / "roles").glob(f"*/{folder}/*.py")}
    assert expected_plugins and expected_plugins <= names
    # The roles' own plugin folders are not loaded in a collection: none may remain.
    assert not [n for n in names if n.startswith("roles/") and set(n.split("/")[2:3]) &
                {"library", "action_plugins", "filter_plugins", "lookup_plugins"}]
    # Nothing of the Python package, its tests or tooling.
    top = {n.split("/")[0] for n in names}
    assert top <= {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "meta", "roles", "playbooks",
                   "plugins", "galaxy.yml"}, top
    assert not [n for n in names if n.endswith((".pyc", "pyproject.toml", "ansible.cfg"))]
    assert not [n for n in names if "/tests/" in n or "__pycache__" in n]


def test_installed_playbooks_resolve_every_role_module_and_action(
        installed: dict[str, str], tmp_path: Path) -> None:
    for playbook in sorted((REPO / "playbooks").glob("*.yml")):
        done = subprocess.run(
            [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
             f"fleetbench.mi300x.{playbook.stem}"],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
            env=installed)
        assert done.returncode == 0, f"{playbook.name}: {done.stdout}{done.stderr}"


def test_installed_module_runs_with_the_collection_module_utils(
        installed: dict[str, str], tmp_path: Path) -> None:
    """cleanup's module imports fleetbench_run, which imports fleetbench_slots: both from
    the collection. A run id nobody uses: nothing to remove, no lock to release."""
    run_id = f"packaging-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"fleetbench_run_id={run_id}", "-e", f"fleetbench_work_dir={tmp_path / 'w'}",
         "-e", f"ansible_python_interpreter={sys.executable}",
         "fleetbench.mi300x.cleanup"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**installed, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tasks = json.loads(done.stdout)["plays"][0]["tasks"]
    result = next(t["hosts"]["localhost"] for t in tasks
                  if t["task"]["name"]
                  == "fleetbench.mi300x.cleanup : Remove the run's containers, token file and lock")
    assert (result["removed"], result["released"], result["holder"]) == ([], False, {})


def test_installed_filters_resolve_by_their_full_names(
        installed: dict[str, str], tmp_path: Path) -> None:
    expression = ("{{ {'files': [{'path': '/m/scripts/vllm/vllm_benchmark_report.sh'}]}"
                  " | fleetbench.mi300x.fleetbench_mad_era('/m', 'MAD here', 'float16') }}")
    done = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-m", "ansible.builtin.debug", "-a", f"msg={expression}"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**installed, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
             "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["msg"] == {"era": "report-script", "problem": ""}
