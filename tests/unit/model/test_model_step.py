"""The model step's pure parts: the download script, the manifest entry, the stand-in
vLLM's offline check, what the lab image takes of the client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbench.lab import hub, image
from fleetbench.run import drifted, host_outcome, model_entry
from fleetbench.runner import TaskResult
from tests.conftest import REPO
from tests.unit.lab_vllm.conftest import MODEL, Standins, latency_args

SCRIPT = REPO / "roles" / "model" / "files" / "model-download.py"
OPEN = "NousResearch/Meta-Llama-3-8B"


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    server = hub.make_server(tmp_path / "hub")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/lab/h1"
    server.shutdown()
    server.server_close()


def _download(endpoint: str, home: Path, repo: str = OPEN) -> subprocess.CompletedProcess[str]:
    env = {"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_ENDPOINT": endpoint,
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", SCRIPT.read_text(), repo, "main",
                           json.dumps(["original/*"])], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_download_script_reports_the_commit_and_only_new_bytes(endpoint: str,
                                                                   tmp_path: Path) -> None:
    first = _download(endpoint, tmp_path / "cache")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    files = hub.repo_files(OPEN)
    assert result["revision"] == hub.repo_commit(OPEN, files)
    assert result["downloaded_bytes"] == sum(len(f.data) for f in files)
    second = _download(endpoint, tmp_path / "cache")
    assert json.loads(second.stdout)["downloaded_bytes"] == 0
    assert json.loads(second.stdout)["revision"] == result["revision"]


def test_the_download_script_fails_in_one_line_for_a_gated_model(endpoint: str,
                                                                 tmp_path: Path) -> None:
    done = _download(endpoint, tmp_path / "cache", "meta-llama/Llama-3.1-8B-Instruct")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("GatedRepoError: 401"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _model_fact(revision: str, downloaded: int) -> TaskResult:
    return TaskResult(host="h", task="Say what the host's cache holds", role="model",
                      action="ansible.builtin.set_fact", outcome="ok", ignored=False,
                      result={"ansible_facts": {"model_result": {
                          "step": "model", "status": "ok", "data": {
                              "revision": revision, "downloaded_bytes": downloaded,
                              "cache": "/c"}}}})


def test_the_manifest_takes_revision_and_bytes_from_the_roles_result() -> None:
    assert model_entry({"revision": "ab" * 20, "downloaded_bytes": "12"}) \
        == {"revision": "ab" * 20, "downloaded_bytes": 12}
    assert model_entry({}) is None
    outcome = host_outcome("h", (_model_fact("cd" * 20, 0),), fetched=False)
    assert outcome.model == {"revision": "cd" * 20, "downloaded_bytes": 0}
    assert outcome.to_dict()["model"] == outcome.model
    assert outcome.steps["model"]["status"] == "ok"
    assert host_outcome("h", (), fetched=False).to_dict()["model"] is None


def test_a_failed_download_fails_the_host_at_the_model_step() -> None:
    failed = TaskResult(host="h", task="Fail the host with the reason the model did not "
                        "download", role="model", action="ansible.builtin.fail",
                        outcome="failed", ignored=False, result={"msg": "x could not be "
                                                                 "downloaded"})
    outcome = host_outcome("h", (failed,), fetched=False)
    assert outcome.status == "failed:model"
    assert outcome.model is None
    # The download task failed first and the block's rescue explained it: the host's
    # reason is the explanation, not the command's "non-zero return code".
    download = TaskResult(host="h", task="Download the model into the host's cache",
                          role="model", action="ansible.builtin.command", outcome="failed",
                          ignored=False, result={"msg": "non-zero return code"})
    outcome = host_outcome("h", (download, failed), fetched=False)
    assert (outcome.status, outcome.reason) == ("failed:model", "x could not be downloaded")


def test_revisions_that_differ_between_hosts_are_drift() -> None:
    assert drifted({"a": "1" * 40, "b": "1" * 40, "c": None}) is False
    assert drifted({"a": "1" * 40, "b": "2" * 40}) is True


@pytest.fixture
def standins(tmp_path: Path) -> Standins:
    """A healthy lab host to run the stand-in vLLM for (tests/unit/lab_vllm's)."""
    (tmp_path / "run").mkdir()
    return Standins(tmp_path / "run")


def _offline(standins: Standins, cache: Path) -> None:
    standins.extra_env.update({"HF_HUB_OFFLINE": "1", "HF_HOME": str(cache),
                               "HF_HUB_CACHE": str(cache / "hub")})


def test_standin_vllm_refuses_offline_a_model_the_cache_lacks(standins: Standins,
                                                              tmp_path: Path) -> None:
    _offline(standins, tmp_path / "empty")
    done = standins.run("latency", *latency_args("lat.json"))
    assert done.returncode == 1
    assert "couldn't find them in the cached files" in done.stderr
    assert not (standins.root / "lat.json").exists()


def test_standin_vllm_runs_offline_from_the_cache(standins: Standins, endpoint: str,
                                                  tmp_path: Path) -> None:
    assert _download(endpoint, tmp_path / "cache", MODEL).returncode == 0
    _offline(standins, tmp_path / "cache")
    done = standins.run("latency", *latency_args("lat.json"))
    assert done.returncode == 0, done.stderr
    assert json.loads((standins.root / "lat.json").read_text())["avg_latency"] > 0


def test_the_lab_image_takes_the_client_and_its_pure_python_dependencies() -> None:
    names = {d.metadata["Name"].lower().replace("_", "-")
             for d in image.python_distributions(image.HUB_CLIENT)}
    assert {"huggingface-hub", "filelock", "fsspec", "packaging", "tqdm"} <= names
    assert "hf-xet" not in names  # native, and only for Xet storage
    assert "pyyaml" not in names  # Debian's is in the image
    assert not any(n.startswith(("pytest", "fastapi", "torch")) for n in names)  # extras
