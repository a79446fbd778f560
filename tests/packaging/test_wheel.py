"""The wheel, built through the sdist as a user's pip would, ships roles and playbooks."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_built_from_sdist_contains_ansible_content(tmp_path: Path) -> None:
    # `python -m build` builds the sdist first and the wheel from it.
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sdist = next(tmp_path.glob("fleetbench-*.tar.gz"))
    wheel = next(tmp_path.glob("fleetbench-*.whl"))
    with tarfile.open(sdist) as archive:
        sdist_names = archive.getnames()
    assert any(n.endswith("/roles/preflight/tasks/main.yml") for n in sdist_names)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {
        "fleetbench/ansible/ansible.cfg",
        "fleetbench/ansible/playbooks/check.yml",
        "fleetbench/ansible/roles/preflight/tasks/main.yml",
        "fleetbench/ansible/roles/preflight/library/fleetbench_probe.py",
        "fleetbench/ansible/roles/preflight/action_plugins/fleetbench_probe.py",
        "fleetbench/ansible/module_utils/fleetbench_host.py",
        "fleetbench/cli.py",
    }
    assert expected <= names, expected - names
    for playbook in (REPO / "playbooks").glob("*.yml"):
        assert f"fleetbench/ansible/playbooks/{playbook.name}" in names
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_holds_only_tracked_ansible_content(tmp_path: Path) -> None:
    """A leftover in a checkout's roles/ (gitignored, or a stray __pycache__) stays out."""
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
    leftovers = [checkout / "roles" / "preflight" / "runs" / "leftover.txt",
                 checkout / "roles" / "collect" / "library" / "__pycache__" / "x.pyc"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not content")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir",
         str(tmp_path / "dist"), str(checkout)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("fleetbench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n.removeprefix("fleetbench/ansible/") for n in archive.namelist()
                   if n.startswith("fleetbench/ansible/")}
    tracked = subprocess.run(
        ["git", "-C", str(checkout), "ls-files", "playbooks", "roles", "module_utils",
         "ansible.cfg"], capture_output=True, text=True, check=True).stdout.split()
    assert shipped == set(tracked)
