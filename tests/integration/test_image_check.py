"""The image is checked once per host after the pull: an image that lacks what MAD's
scripts need ends the host failed:image, naming the piece, before any slot starts. What is
needed follows the layout of the host's MAD checkout."""

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


# The image's Hugging Face CLI, which MAD's run_vllm.py downloads the model with.
REMOVE_HF = "rm -f /usr/local/bin/hf"


def _lab_image_without(lab: LabFleet, command: str, tag: str) -> Iterator[str]:
    """The lab's image after ``command``, pushed to the lab registry beside it as ``tag``."""
    inventory = yaml.safe_load(lab.inventory.read_text())
    lab_image = inventory["all"]["vars"]["fleetbench_image"]
    repository = lab_image.rsplit(":", 1)[0]
    ref = f"{repository}:{tag}"
    client = docker.from_env()
    try:
        container = client.containers.run(lab_image, ["/bin/sh", "-c", command],
                                          network_mode="none", detach=True)
        assert container.wait(timeout=60)["StatusCode"] == 0
        container.commit(repository=repository, tag=tag)
        container.remove()
        for line in client.api.push(repository, tag=tag, stream=True, decode=True):
            assert "error" not in line, line
        yield ref
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)
        client.close()


@pytest.fixture
def image_without_pandas(run_lab: LabFleet) -> Iterator[str]:
    """The lab's image with pandas removed, pushed to the lab registry beside it."""
    yield from _lab_image_without(run_lab, REMOVE_PANDAS, "no-pandas")


@pytest.fixture
def image_without_hf(run_lab: LabFleet) -> Iterator[str]:
    """The lab's image without the hf command."""
    yield from _lab_image_without(run_lab, REMOVE_HF, "no-hf")


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


def test_the_check_follows_the_layout_of_the_hosts_mad(
        run_lab: LabFleet, image_without_hf: str, tmp_path: Path) -> None:
    def run(ref: str) -> dict[str, object]:
        done = run_cli("run", "-i", run_lab.inventory, "--model", MODEL, "--gpus", "8",
                       "--scenario", "latency", "--slots", "1", "--limit", "lab01",
                       "--image", image_without_hf, "--mad-ref", ref, "--no-report", "--json",
                       "--runs-dir", tmp_path / ref, env=run_env(tmp_path / ref))
        assert done.returncode in (0, 1), done.stdout + done.stderr
        summary = json.loads(done.stdout)
        hosts = json.loads((Path(summary["run_dir"]) / "manifest.json").read_text())["hosts"]
        host: dict[str, object] = hosts["lab01"]
        return host

    # run.sh + run_vllm.py downloads the model with `hf download`: refused before any slot
    host = run("v-era-f")
    assert host["status"] == "failed:image", host
    assert host["reason"] == (
        f"{image_without_hf} lacks the hf command (MAD's run_vllm.py downloads the model with "
        "hf download) — use an image that has it (rocm/vllm images do), or set image_check "
        "to false")
    assert "benchmark" not in host["steps"]  # type: ignore[operator]
    # the report script never calls hf: the same image passes its check
    host = run("v-era-d")
    assert "image" in host["steps"] and host["status"] != "failed:image", host  # type: ignore[operator]
