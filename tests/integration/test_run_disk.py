"""Disk planning on the lab: a host whose disk is short of what the run needs (a real tmpfs
of `lab set HOST disk_free_gb=N`) ends skipped:disk with the numbers, before any pull."""

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

GB = 10**9


@pytest.fixture
def unpulled_tag(run_lab: LabFleet) -> Iterator[str]:
    """The lab image under a tag of this test's own: in the registry, not in the engine."""
    inventory = yaml.safe_load(run_lab.inventory.read_text())
    repository = inventory["all"]["vars"]["fleetbench_image"].rsplit(":", 1)[0]
    ref = f"{repository}:disk-test"
    client = docker.from_env()
    try:
        image = client.images.get(inventory["all"]["vars"]["fleetbench_image"])
        image.tag(repository, "disk-test")
        for line in client.api.push(repository, tag="disk-test", stream=True, decode=True):
            assert "error" not in line, line
        client.images.remove(ref)  # only the tag: the lab image keeps its layers
        yield ref
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref)
        client.close()


def test_a_host_short_of_disk_is_skipped_before_the_pull(
        run_lab: LabFleet, unpulled_tag: str, tmp_path: Path) -> None:
    run_lab.set("lab04", "disk_free_gb=0.5")
    try:
        seen = run_lab.status()["hosts"][3]["disk"]  # type: ignore[index]
        assert seen["simulated"] and seen["free_gb"] == 0.5
        runs = tmp_path / "runs"
        done = run_cli("run", "-i", run_lab.inventory, "--model", MODEL, "--gpus", "8",
                       "--scenario", "latency", "--slots", "1", "--limit", "lab04",
                       "--image", unpulled_tag, "--no-report", "--json", "--runs-dir", runs,
                       env=run_env(runs))
    finally:
        run_lab.set("lab04", "disk_free_gb=machine")
    assert done.returncode == 1, done.stdout + done.stderr
    # The plan, shown before any host is touched: the image's size from the registry.
    assert "disk: " in done.stderr and "from the registry's manifest" in done.stderr
    manifest = json.loads((Path(json.loads(done.stdout)["run_dir"]) / "manifest.json")
                          .read_text())
    (need,) = manifest["plan"]["disk"]["needs"]
    assert need["hosts"] == ["lab04"] and need["image"] == unpulled_tag
    assert need["image_source"] == "registry" and 0 < need["image_bytes"] < GB
    assert 15 * GB < need["model_bytes"] < 17 * GB and need["margin_bytes"] == GB
    host = manifest["hosts"]["lab04"]
    assert host["status"] == "skipped:disk"
    disk_root = run_lab.root / "hosts" / "lab04" / "disk"
    image_gb = f"{need['image_bytes'] / GB:.1f}"
    needed_gb = f"{(need['image_bytes'] + GB) / GB:.1f}"
    assert host["reason"] == (
        f"not enough disk at {disk_root}: {needed_gb} GB needed (image {image_gb} GB + "
        "margin 1.0 GB), 0.5 GB free — free space there (docker image prune removes unused "
        "images)")
    # Nothing was pulled there: the image step never ran and the engine lacks the tag.
    assert list(host["steps"]) == ["preflight"] and host["image_digest"] is None
    client = docker.from_env()
    try:
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(unpulled_tag)
    finally:
        client.close()
    preflight = json.loads((runs / manifest["run_id"] / "hosts" / "lab04" / "preflight.json")
                           .read_text())
    # What the probe measured: the tmpfs, rounded up to whole pages.
    assert GB // 2 <= preflight["disk"][0]["free_bytes"] < GB // 2 + 65536
