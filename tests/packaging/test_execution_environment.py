"""execution-environment.yml makes a build context with ansible-builder (v3), as the AWX /
Automation Platform instructions in it say: the image would get fleetbench (whose package
the roles' controller plugins import), the ansible-core and ansible-runner fleetbench
pins, community.docker and the system packages. Nothing is built or pulled here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_ansible_builder_creates_the_build_context(tmp_path: Path) -> None:
    builder = Path(sys.executable).with_name("ansible-builder")
    assert builder.exists(), "ansible-builder is part of the test extras: pip install -e '.[test]'"
    context = tmp_path / "context"
    done = subprocess.run(
        [str(builder), "create", "-f", str(REPO / "execution-environment.yml"),
         "-c", str(context), "--output-filename", "Containerfile"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    build = context / "_build"
    python = (build / "requirements.txt").read_text().split()
    assert "fleetbench" in python
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    assert [c["name"] for c in galaxy["collections"]] == ["community.docker"]
    bindep = (build / "bindep.txt").read_text()
    assert "openssh-clients" in bindep and "git-core" in bindep

    containerfile = (context / "Containerfile").read_text()
    spec = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert f'ARG EE_BASE_IMAGE="{spec["images"]["base_image"]["name"]}"' in containerfile
    # The versions fleetbench itself is tested with (pyproject.toml).
    pins = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile)
    assert pins is not None
    assert pins.group(1).split() == [spec["dependencies"]["ansible_core"]["package_pip"],
                                     spec["dependencies"]["ansible_runner"]["package_pip"]]
    pyproject = (REPO / "pyproject.toml").read_text()
    for pin in pins.group(1).split():
        assert f'"{pin}"' in pyproject, f"{pin} is not what pyproject.toml pins"
