"""Variables for the slot containers reach every slot: the inventory's
fleetbench_container_env, with `--env` over it, and HIP_VISIBLE_DEVICES per slot."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import docker
import pytest
import yaml

from tests.conftest import FLEETBENCH
from tests.integration.conftest import LabFleet, of_this_session
from tests.integration.test_run import MODEL, run_env, stop

pytestmark = pytest.mark.lab


def test_container_env_from_inventory_and_cli(run_lab: LabFleet, tmp_path: Path) -> None:
    inventory = yaml.safe_load(run_lab.inventory.read_text())
    inventory["all"]["vars"]["fleetbench_container_env"] = {"HF_HUB_OFFLINE": 1,
                                                            "VLLM_USE_V1": "0"}
    own = tmp_path / "inventory.yml"
    own.write_text(yaml.safe_dump(inventory))
    run_lab.set("lab01", "bench=slow", "slow_s=1")
    proc = subprocess.Popen(
        [str(FLEETBENCH), "run", "-i", str(own), "--model", MODEL, "--gpus", "8",
         "--scenario", "latency", "--slots", "2", "--limit", "lab01", "--no-report",
         "--env", "VLLM_USE_V1=1", "--env", "HF_ENDPOINT=http://127.0.0.1:9",
         "--runs-dir", str(tmp_path / "runs"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **run_env(tmp_path / "runs")})
    seen: dict[str, dict[str, str]] = {}
    client = docker.from_env()
    try:
        deadline = time.monotonic() + 180
        while len(seen) < 2 and proc.poll() is None and time.monotonic() < deadline:
            for container in client.containers.list(
                    filters={"label": ["fleetbench.host=lab01", "fleetbench.slot"]}):
                if not of_this_session(container.attrs.get("Mounts")):
                    continue  # another session's lab01
                env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
                seen[container.labels["fleetbench.slot"]] = env
            time.sleep(0.2)
        out, err = proc.communicate(timeout=300)
    finally:
        client.close()
        stop(proc)
        run_lab.restore("lab01")
    assert proc.returncode == 0, out + err
    assert set(seen) == {"slot0", "slot1"}
    for slot, devices in (("slot0", "0,1,2,3,4,5,6,7"), ("slot1", "8,9,10,11,12,13,14,15")):
        env = seen[slot]
        assert env["HF_HUB_OFFLINE"] == "1"
        assert env["VLLM_USE_V1"] == "1"  # --env over the inventory
        assert env["HF_ENDPOINT"] == "http://127.0.0.1:9"
        assert env["HIP_VISIBLE_DEVICES"] == devices
        assert not any("TOKEN" in name for name in env)
