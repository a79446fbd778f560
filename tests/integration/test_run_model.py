"""The model step on the lab: one download per host from the lab's hub into the host's
cache, the slots offline on it, and nothing downloaded the second time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetbench.lab.hub import read_downloads, repo_commit, repo_files
from tests.conftest import run_cli
from tests.integration.conftest import LabFleet

pytestmark = pytest.mark.lab

CANARY = "hf_CANARY_7f3a9c1e5b_never_leak_me"
# Gated (the token must reach the download) and used by no other lab test: its counts on
# the hub are this test's alone.
MODEL = "meta-llama/Llama-3.1-8B"
HOSTS = ("lab03", "lab04")


def _run(lab: LabFleet, runs: Path) -> dict[str, Any]:
    done = run_cli("run", "-i", lab.inventory, "--model", MODEL, "--gpus", "8",
                   "--scenario", "latency", "--slots", "8", "--limit", ",".join(HOSTS),
                   "--runs-dir", runs, "--json",
                   env={"HF_TOKEN": CANARY, "FLEETBENCH_HISTORY": str(runs / "h.sqlite")})
    assert CANARY not in done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = Path(json.loads(done.stdout)["run_dir"])
    manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    return manifest


def _downloads(lab: LabFleet) -> dict[str, dict[str, int]]:
    counts = read_downloads(lab.root / "hub")
    return {h: counts.get(h, {}).get(MODEL, {"files": 0, "bytes": 0}) for h in HOSTS}


def test_each_host_downloads_the_model_once_and_its_slots_run_offline_on_it(
        run_lab: LabFleet, tmp_path: Path) -> None:
    files = repo_files(MODEL)
    size = sum(len(f.data) for f in files)
    revision = repo_commit(MODEL, files)

    first = _run(run_lab, tmp_path / "runs")
    # One download per host, not one per slot: 8 slots each, 2 files fetched once.
    assert _downloads(run_lab) == {h: {"files": 2, "bytes": size} for h in HOSTS}
    for host in HOSTS:
        entry = first["hosts"][host]
        assert entry["status"] == "ok", entry
        assert entry["model"] == {"revision": revision, "downloaded_bytes": size}
        assert entry["steps"]["model"]["status"] == "ok"
        # The slots ran offline (the lab's vLLM refuses a model the cache lacks then).
        assert {s["status"] for s in entry["slots"].values()} == {"ok"}, entry["slots"]
        cache = run_lab.root / "hosts" / host / "work" / "hf-cache" / "hub"
        snapshot = cache / "models--meta-llama--Llama-3.1-8B" / "snapshots" / revision
        assert (snapshot / "config.json").is_file()
        # The token went with the run (the supervisor, then collect removed it).
        assert not (run_lab.root / "hosts" / host / "work" / "lock" / "hf_token").exists()
    assert first["model"] == {"revisions": dict.fromkeys(HOSTS, revision), "drift": False}

    second = _run(run_lab, tmp_path / "runs")
    assert _downloads(run_lab) == {h: {"files": 2, "bytes": size} for h in HOSTS}
    for host in HOSTS:
        assert second["hosts"][host]["status"] == "ok"
        assert second["hosts"][host]["model"] == {"revision": revision, "downloaded_bytes": 0}
