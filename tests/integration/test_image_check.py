"""The image is checked once per host after the pull: an image that lacks what MAD's
scripts need ends the host failed:image, naming the piece, before any slot starts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from tests.conftest import run_cli
from tests.integration.conftest import LabFleet
from tests.integration.test_run import MODEL, run_env

pytestmark = pytest.mark.lab

# Where Debian's pandas lives in the lab image; removing it leaves python3 working.
REMOVE_PANDAS = "rm -rf /usr/lib/python3/dist-packages/pandas"


@pytest.fixture
def image_without_pandas(run_lab: LabFleet) -> Iterator[str]:
    """The lab's image with pandas removed, pushed to the lab registry beside it."""
    inventory = yaml.safe_load(run_lab.inventory.read_text())
    lab_image = inventory["all"]["vars"]["fleetbench_image"]
    repository = lab_image.rsplit(":", 1)[0]
    ref = f"{repository}:no-pandas"
    client = docker.from_env()
    try:
        container = client.containers.run(lab_image, ["/bin/sh", "-c", REMOVE_PANDAS],
                                          network_mode="none", detach=True)
        assert container.wait(timeout=60)["StatusCode"] == 0
        container.commit(repository=repository, tag="no-pandas")
        container.remove()
        for line in client.api.push(repository, tag="no-pandas", stream=True, decode=True):
            assert "error" not in line, line
        yield ref
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)
        client.close()


def test_an_image_without_pandas_fails_the_host_before_any_slot(
        run_lab: LabFleet, image_without_pandas: str, tmp_path: Path) -> None:
    done = run_cli("run", "-i", run_lab.inventory, "--model", MODEL, "--gpus", "8",
                   "--scenario", "latency", "--slots", "1", "--limit", "lab01",
                   "--image", image_without_pandas, "--no-report", "--json",
                   "--runs-dir", tmp_path / "runs", env=run_env(tmp_path / "runs"))
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    host = json.loads((Path(summary["run_dir"]) / "manifest.json").read_text())["hosts"]["lab01"]
    assert host["status"] == "failed:image"
    assert host["reason"] == (
        f"{image_without_pandas} lacks pandas (python3 -c 'import pandas' fails) — use an "
        "image that has it (rocm/vllm images do), or set image_check to false")
    assert "benchmark" not in host["steps"]  # no slot was started
    assert host["cleanup"] == "ok"
