"""An air-gapped fleet on the lab: hosts that reach no hub, no registry and no git server
run the whole guide with --model-from (the model from a cache on the controller, laid out
so that their slots' offline client finds it), --image-from-controller and --mad-sync; a
second run sends no model bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import snapshot_download

from fleetbench.lab.hub import read_downloads, repo_commit, repo_files
from fleetbench.modelsync import repo_folder_name
from tests.conftest import run_cli
from tests.integration.conftest import LabFleet, closed_port

pytestmark = pytest.mark.lab

CANARY = "hf_CANARY_5d1e8b2a4c_never_leak_me"
# Gated (the slots still get the token) and used by no other lab test.
MODEL = "meta-llama/Llama-3.2-3B"
HOSTS = ("lab01", "lab02")


def _offline_inventory(lab: LabFleet, folder: Path) -> Path:
    """The lab's inventory with every host's hub, and the MAD repository, at ports nobody
    listens on."""
    inventory = yaml.safe_load(lab.inventory.read_text())
    port = closed_port()
    inventory["all"]["vars"]["fleetbench_mad_repo"] = f"http://127.0.0.1:{port}/ROCm/MAD.git"
    for group in inventory["all"]["children"].values():
        for name, host in group.get("hosts", {}).items():
            host["fleetbench_hf_endpoint"] = f"http://127.0.0.1:{port}/lab/{name}"
    path = folder / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def _run(inventory: Path, runs: Path, hosts: tuple[str, ...], *extra: str) -> dict[str, Any]:
    done = run_cli("run", "-i", inventory, "--model", MODEL, "--gpus", "8",
                   "--scenario", "latency", "--slots", "2", "--limit", ",".join(hosts),
                   "--runs-dir", runs, "--no-report", "--json", *extra,
                   env={"HF_TOKEN": CANARY})
    assert CANARY not in done.stdout + done.stderr
    run_dir = Path(json.loads(done.stdout)["run_dir"])
    manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    return manifest


def test_an_air_gapped_fleet_runs_the_guide_with_everything_from_the_controller(
        run_lab: LabFleet, offline_ref: str, tmp_path: Path) -> None:
    files = repo_files(MODEL)
    size = sum(len(f.data) for f in files)
    commit = repo_commit(MODEL, files)
    # The controller's cache, filled where the hub is reachable, by the real client.
    controller = tmp_path / "controller-cache"
    port = (run_lab.root / "hub" / "port").read_text().strip()
    snapshot_download(MODEL, cache_dir=controller, token=CANARY,
                      endpoint=f"http://127.0.0.1:{port}/lab/controller")
    inventory = _offline_inventory(run_lab, tmp_path)
    runs = tmp_path / "runs"
    # The image from the controller's engine, MAD from its checkout: nothing else reachable.
    staged = ("--image", offline_ref, "--image-from-controller",
              "--mad-sync", str(run_lab.root / "mad"), "--mad-ref", "v-era-d")

    # Without --model-from the hosts cannot get the model: the hub is out of reach.
    cut_off = _run(inventory, runs, ("lab03",), *staged)
    assert cut_off["hosts"]["lab03"]["status"] == "failed:model", cut_off["hosts"]["lab03"]

    first = _run(inventory, runs, HOSTS, "--model-from", str(controller), *staged)
    for host in HOSTS:
        entry = first["hosts"][host]
        assert entry["status"] == "ok", entry
        assert entry["model"] == {"revision": commit, "downloaded_bytes": size}
        # The slots ran offline on the cache (the lab's vLLM refuses a model it lacks).
        assert {s["status"] for s in entry["slots"].values()} == {"ok"}, entry["slots"]
        cache = run_lab.root / "hosts" / host / "work" / "hf-cache" / "hub"
        found = Path(snapshot_download(MODEL, cache_dir=cache, local_files_only=True))
        assert found == cache / repo_folder_name(MODEL) / "snapshots" / commit
        assert {f.path: f.data for f in files} == {
            f.path: (found / f.path).read_bytes() for f in files}
        assert not list((cache / repo_folder_name(MODEL) / "blobs").glob("*incoming*"))
    assert first["model"] == {"revisions": dict.fromkeys(HOSTS, commit), "drift": False}
    assert first["image"]["drift"] is False and first["mad"]["drift"] is False
    # Nothing the model step (or any other) left on the hosts holds the token.
    for host in HOSTS:
        for path in (run_lab.root / "hosts" / host / "work").rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert CANARY.encode() not in path.read_bytes(), path
    assert first["plan"]["overrides"]["model_from"] == str(controller)
    # No host asked any hub for the model.
    counts = read_downloads(run_lab.root / "hub")
    assert {h: counts.get(h, {}).get(MODEL) for h in (*HOSTS, "lab03")} == dict.fromkeys(
        (*HOSTS, "lab03"))

    second = _run(inventory, runs, HOSTS, "--model-from", str(controller), *staged)
    for host in HOSTS:
        assert second["hosts"][host]["status"] == "ok", second["hosts"][host]
        assert second["hosts"][host]["model"] == {"revision": commit, "downloaded_bytes": 0}
