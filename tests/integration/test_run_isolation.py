"""fleetbench_gpu_isolation: render-nodes gives each slot container /dev/kfd and only its
own GPUs' render nodes (from the host's KFD topology), with HIP_VISIBLE_DEVICES renumbered;
the stand-in vLLM, which sees only the render nodes it was given, runs on them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import docker
import pytest
import yaml

from fleetbench.isolation import render_minors
from fleetbench.partition.kfd import topology_from_raw
from tests.conftest import FLEETBENCH
from tests.integration.conftest import LabFleet, mounted_from
from tests.integration.test_run import MODEL, manifest, run_env, stop

pytestmark = pytest.mark.lab


def _host_render_minors(lab: LabFleet, host: str) -> list[int]:
    nodes = lab.root / "hosts" / host / "root" / "sys/class/kfd/kfd/topology/nodes"
    return render_minors(topology_from_raw(
        [{"id": int(p.name), "properties": (p / "properties").read_text()}
         for p in nodes.iterdir()]))


def test_render_nodes_isolation_passes_only_the_slots_nodes(
        run_lab: LabFleet, tmp_path: Path) -> None:
    inventory = yaml.safe_load(run_lab.inventory.read_text())
    inventory["all"]["vars"]["fleetbench_gpu_isolation"] = "render-nodes"
    own = tmp_path / "inventory.yml"
    own.write_text(yaml.safe_dump(inventory))
    run_lab.set("lab01", "bench=slow", "slow_s=1")
    proc = subprocess.Popen(
        [str(FLEETBENCH), "run", "-i", str(own), "--model", MODEL, "--gpus", "8",
         "--scenario", "latency", "--slots", "2", "--limit", "lab01", "--no-report",
         "--runs-dir", str(tmp_path / "runs"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **run_env(tmp_path / "runs")})
    seen: dict[str, tuple[list[str], str, list[str]]] = {}
    client = docker.from_env()
    try:
        deadline = time.monotonic() + 300
        while len(seen) < 2 and proc.poll() is None and time.monotonic() < deadline:
            for container in client.containers.list(
                    filters={"label": ["fleetbench.host=lab01", "fleetbench.slot"]}):
                slot = container.labels["fleetbench.slot"]
                # Other sessions' labs name their hosts lab01 too: this lab's mount its files.
                mine = mounted_from(container.attrs.get("Mounts"), run_lab.root)
                if slot in seen or not mine:
                    continue
                env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
                devices = [f"{d['PathOnHost']}:{d['PathInContainer']}"
                           for d in container.attrs["HostConfig"]["Devices"] or []]
                listed = container.exec_run(["ls", "/dev/dri"])
                seen[slot] = (devices, env["HIP_VISIBLE_DEVICES"],
                              listed.output.decode().split() if listed.exit_code == 0 else [])
            time.sleep(0.2)
        out, err = proc.communicate(timeout=600)
    finally:
        client.close()
        stop(proc)
        run_lab.restore("lab01")
    assert proc.returncode == 0, out + err
    minors = _host_render_minors(run_lab, "lab01")
    root = run_lab.root / "hosts" / "lab01" / "root" / "dev"
    assert set(seen) == {"slot0", "slot1"}
    for slot, first in (("slot0", 0), ("slot1", 8)):
        devices, hip, listed = seen[slot]
        mine = [minors[i] for i in range(first, first + 8)]
        assert devices == [f"{root}/kfd:/dev/kfd"] + [
            f"{root}/dri/renderD{m}:/dev/dri/renderD{m}" for m in mine], devices
        assert listed == [f"renderD{m}" for m in mine]  # nothing of the other slot's
        assert hip == "0,1,2,3,4,5,6,7"
    # The manifest keeps the host's numbering: the slots' physical GPUs stay named.
    run_dir = Path(next((tmp_path / "runs").glob("*/manifest.json")).parent)
    slots = manifest(run_dir)["hosts"]["lab01"]["slots"]
    assert slots["slot1"]["hip_visible_devices"] == "8,9,10,11,12,13,14,15"
    assert {s["status"] for s in slots.values()} == {"ok"}, slots
