"""--image-from-controller on the lab: the image comes from the controller's Docker engine
(exported with the Docker SDK), never from a registry; every host ends with the
controller's image id.

The lab's hosts share this machine's engine, so in a whole run they already hold the
controller's image and are skipped (nothing sent); the role's send-and-load path is run
on its own with plain ansible-playbook after the tag is removed from the engine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

from fleetbench.imagestage import controller_image, export_image
from tests.conftest import REPO, run_cli
from tests.integration.conftest import LabFleet, closed_port
from tests.integration.test_run import MODEL, run_env

pytestmark = pytest.mark.lab


def test_every_host_ends_ok_with_the_controllers_image_and_no_registry(
        run_lab: LabFleet, offline_ref: str, tmp_path: Path) -> None:
    expected = controller_image(offline_ref).id
    runs = tmp_path / "runs"
    done = run_cli("run", "-i", run_lab.inventory, "--model", MODEL, "--gpus", "8",
                   "--scenario", "latency", "--slots", "1", "--limit", "lab01,lab02",
                   "--image", offline_ref, "--image-from-controller", "--no-report", "--json",
                   "--runs-dir", runs, env=run_env(runs))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((Path(json.loads(done.stdout)["run_dir"]) / "manifest.json")
                          .read_text())
    assert manifest["plan"]["image_from_controller"] is True
    (need,) = manifest["plan"]["disk"]["needs"]
    assert (need["image_source"], need["image_digest"]) == ("controller", expected)
    for host in ("lab01", "lab02"):
        entry = manifest["hosts"][host]
        assert entry["status"] == "ok", entry
        assert entry["image_digest"] == expected
        assert entry["slots"]["slot0"]["status"] == "ok"
    assert manifest["image"]["drift"] is False


def test_the_image_role_sends_loads_and_checks_the_controllers_image(
        run_lab: LabFleet, offline_ref: str, tmp_path: Path) -> None:
    """The host lacks the image: the archive is sent, loaded, removed; the id checked."""
    staged = controller_image(offline_ref)
    archive = export_image(staged, tmp_path)
    assert archive.stat().st_mode & 0o777 == 0o600
    client = docker.from_env()
    try:
        client.images.remove(offline_ref)  # the tag only: the lab image keeps its layers
        playbook = tmp_path / "image.yml"
        playbook.write_text(yaml.safe_dump([{
            "name": "Image from the controller", "hosts": "all", "gather_facts": False,
            "roles": [{"role": "image"}]}]))
        extra = tmp_path / "extra.json"
        extra.write_text(json.dumps({
            "fleetbench_image": offline_ref, "image_from_controller": True,
            "image_archive": str(archive), "image_id": staged.id}))

        def play() -> dict[str, bool]:
            done = subprocess.run(
                [str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" /
                     "ansible-playbook"), "-i", str(run_lab.inventory), "--limit", "lab03",
                 "-e", f"@{extra}", str(playbook)],
                env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                     "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
                capture_output=True, text=True, timeout=600, check=False)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr
            tasks = json.loads(done.stdout)["plays"][0]["tasks"]
            # Named "image : <task>" by the callback.
            by_name = {t["task"]["name"].split(" : ")[-1]: t["hosts"].get("lab03", {})
                       for t in tasks}
            fact = by_name["Say which image the host has"]["ansible_facts"]["image_result"]
            assert fact["data"]["id"] == staged.id and fact["data"]["source"] == "controller"
            return {"sent": fact["data"]["sent"],
                    "send_ran": not by_name["Send the image archive from the controller"]
                    .get("skipped", False)}

        assert play() == {"sent": True, "send_ran": True}
        assert client.images.get(offline_ref).id == staged.id  # loaded, under its name
        staging = run_lab.root / "hosts" / "lab03" / "work" / "image"
        assert list(staging.iterdir()) == []  # the archive is removed once loaded
        # A second time the host has it: nothing is sent.
        assert play() == {"sent": False, "send_ran": False}
    finally:
        client.close()


def test_an_image_the_controller_lacks_is_bad_input(run_lab: LabFleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    ref = f"127.0.0.1:{closed_port()}/offline/none:x"
    done = run_cli("run", "-i", run_lab.inventory, "--model", MODEL, "--gpus", "8",
                   "--image", ref, "--image-from-controller", "--runs-dir", runs,
                   env=run_env(runs))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (f"fleetbench: error: --image-from-controller: this controller's "
                           f"Docker engine has no image {ref} — docker pull or docker load it "
                           "here first\n")
    assert not runs.exists()
