"""--model-from: a controller-side Hugging Face cache, found and checksummed on the
controller, and laid out in a host's cache by the host-side half so that the real client
finds it offline. The caches are filled by the real huggingface_hub client from the lab's
stand-in hub; the send itself (sftp) is the one step replaced, by a file copy."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import snapshot_download

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.lab import hub
from fleetbench.modelsync import repo_folder_name, resolve_model_snapshot
from tests.conftest import module_util

REPO_ID = "Qwen/Qwen2.5-7B"
FILES = hub.repo_files(REPO_ID)
COMMIT = hub.repo_commit(REPO_ID, FILES)
cache_util = module_util("fleetbench_model_cache")


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache the real client filled (read-only for the tests: copy it to change it)."""
    root = tmp_path_factory.mktemp("controller")
    server = hub.make_server(root / "hub-state")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        snapshot_download(REPO_ID, cache_dir=root / "cache",
                          endpoint=f"http://127.0.0.1:{server.server_address[1]}/lab/c")
    finally:
        server.shutdown()
        server.server_close()
    return root / "cache"


@pytest.fixture
def cache(filled: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(filled, copy, symlinks=True)
    return copy


def test_the_main_snapshot_is_found_and_every_file_checksummed(filled: Path) -> None:
    snapshot = resolve_model_snapshot(filled, REPO_ID)
    assert snapshot.commit == COMMIT
    assert snapshot.folder == filled / repo_folder_name(REPO_ID)
    by_path = {f.path: f for f in snapshot.files}
    assert set(by_path) == {f.path for f in FILES}
    for item in FILES:
        got = by_path[item.path]
        assert got.sha256 == hashlib.sha256(item.data).hexdigest()
        assert got.size == len(item.data)
        # The blob keeps the hub client's name (its ETag) and is the controller's file.
        assert got.blob == item.etag
        assert got.source == snapshot.folder / "blobs" / item.etag
    assert snapshot.total_bytes == sum(len(f.data) for f in FILES)
    extravar = snapshot.to_extravar()
    assert extravar["repo_id"] == REPO_ID and extravar["commit"] == COMMIT
    assert extravar["ref"] == "main" and len(extravar["files"]) == len(FILES)


def test_an_hf_home_is_taken_for_its_hub_cache(cache: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cache.rename(home / "hub")
    assert resolve_model_snapshot(home, REPO_ID).commit == COMMIT


def _break(cache: Path, what: str) -> None:
    repo = cache / repo_folder_name(REPO_ID)
    if what == "repo":
        shutil.rmtree(repo)
    elif what == "ref":
        (repo / "refs" / "main").unlink()
    elif what == "snapshot":
        shutil.rmtree(repo / "snapshots" / COMMIT)
    elif what == "blob":
        (repo / "blobs" / FILES[1].etag).unlink()
    elif what == "empty":
        for link in (repo / "snapshots" / COMMIT).iterdir():
            link.unlink()
    elif what == "config":
        (repo / "snapshots" / COMMIT / "config.json").unlink()
    elif what == "outside":
        link = repo / "snapshots" / COMMIT / "config.json"
        link.unlink()
        (cache / "elsewhere.json").write_text("{}")
        link.symlink_to(cache / "elsewhere.json")


@pytest.mark.parametrize(("what", "words"), [
    ("repo", r"has no models--Qwen--Qwen2\.5-7B/ \(the cache of Qwen/Qwen2\.5-7B\) — fill it"),
    ("ref", r"has no refs/main .* — fill it"),
    ("snapshot", rf"refs/main names {COMMIT}, but snapshots/{COMMIT}/ is missing"),
    ("blob", r"the blob of model\.safetensors is missing .* download the model into it again"),
    ("empty", rf"snapshots/{COMMIT}/ is empty"),
    ("config", r"has no config\.json"),
    ("outside", r"config\.json links outside the cache's blobs/"),
])
def test_what_is_missing_is_named_with_the_fix(cache: Path, what: str, words: str) -> None:
    _break(cache, what)
    with pytest.raises(BadInput, match=words):
        resolve_model_snapshot(cache, REPO_ID)


def test_a_folder_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is not a folder — pass a Hugging Face cache"):
        resolve_model_snapshot(tmp_path / "nowhere", REPO_ID)


def test_a_cache_without_links_is_sent_in_the_hub_layout(cache: Path) -> None:
    # Caches on file systems without links hold copies in the snapshot.
    snapshot_dir = cache / repo_folder_name(REPO_ID) / "snapshots" / COMMIT
    for link in snapshot_dir.iterdir():
        content = link.read_bytes()
        link.unlink()
        link.write_bytes(content)
    snapshot = resolve_model_snapshot(cache, REPO_ID)
    for item in snapshot.files:
        assert item.blob == item.sha256
        assert item.source == snapshot_dir / item.path


def _stage(host: Path, snapshot: dict[str, Any], received: list[str]) -> dict[str, Any]:
    args = {"cache": str(host), "repo_folder": repo_folder_name(snapshot["repo_id"]),
            "commit": snapshot["commit"], "ref": snapshot["ref"], "received": received,
            "files": [{k: f[k] for k in ("path", "blob", "size", "sha256")}
                      for f in snapshot["files"]]}
    result: dict[str, Any] = cache_util.stage(args)
    return result


def _send(snapshot: dict[str, Any], missing: list[dict[str, str]]) -> list[str]:
    """The controller's half, a copy standing in for sftp."""
    sources = {f["blob"]: f["source"] for f in snapshot["files"]}
    for wanted in missing:
        shutil.copyfile(sources[wanted["blob"]], wanted["dest"])
    return [wanted["blob"] for wanted in missing]


def test_a_host_gets_the_hub_layout_and_the_offline_client_finds_it(filled: Path,
                                                                    tmp_path: Path) -> None:
    snapshot = resolve_model_snapshot(filled, REPO_ID).to_extravar()
    host = tmp_path / "host" / "hub"
    first = _stage(host, snapshot, [])
    assert not first["complete"]
    assert {m["blob"] for m in first["missing"]} == {f.etag for f in FILES}
    repo = host / repo_folder_name(REPO_ID)
    assert not (repo / "refs" / "main").exists()  # nothing visible before it is whole
    second = _stage(host, snapshot, _send(snapshot, first["missing"]))
    assert second == {"changed": True, "problems": [], "complete": True, "missing": []}
    assert (repo / "refs" / "main").read_text() == COMMIT
    link = repo / "snapshots" / COMMIT / "model.safetensors"
    assert link.is_symlink() and not Path(str(link.readlink())).is_absolute()
    found = snapshot_download(REPO_ID, cache_dir=host, local_files_only=True)
    assert Path(found) == repo / "snapshots" / COMMIT
    for item in FILES:
        assert (Path(found) / item.path).read_bytes() == item.data
    # The next run: every blob there with the same hash, nothing to send, nothing changed.
    assert _stage(host, snapshot, []) == {"changed": False, "problems": [], "complete": True,
                                          "missing": []}


def test_a_blob_damaged_on_the_way_is_refused_and_asked_for_again(filled: Path,
                                                                  tmp_path: Path) -> None:
    snapshot = resolve_model_snapshot(filled, REPO_ID).to_extravar()
    host = tmp_path / "hub"
    missing = _stage(host, snapshot, [])["missing"]
    received = _send(snapshot, missing)
    weights = next(m for m in missing if m["blob"] == FILES[1].etag)
    Path(weights["dest"]).write_bytes(b"\0" * len(FILES[1].data))  # same size, other bytes
    done = _stage(host, snapshot, received)
    assert not done["complete"]
    assert done["problems"] == ["model.safetensors arrived damaged (its SHA-256 is not the "
                                "controller's)"]
    assert done["missing"] == [weights]
    assert not Path(weights["dest"]).exists()
    assert not (host / repo_folder_name(REPO_ID) / "refs" / "main").exists()


def test_a_host_blob_with_other_content_is_sent_again(filled: Path, tmp_path: Path) -> None:
    snapshot = resolve_model_snapshot(filled, REPO_ID).to_extravar()
    host = tmp_path / "hub"
    _stage(host, snapshot, _send(snapshot, _stage(host, snapshot, [])["missing"]))
    blob = host / repo_folder_name(REPO_ID) / "blobs" / FILES[1].etag
    blob.write_bytes(b"\1" * len(FILES[1].data))
    assert [m["blob"] for m in _stage(host, snapshot, [])["missing"]] == [FILES[1].etag]


def test_a_cache_the_host_cannot_write_fails_with_the_fix(filled: Path, tmp_path: Path) -> None:
    snapshot = resolve_model_snapshot(filled, REPO_ID).to_extravar()
    (tmp_path / "file").write_text("")
    done = _stage(tmp_path / "file" / "hub", snapshot, [])
    assert done["failed"] is True
    assert "cannot write the model cache" in done["msg"]
    assert "fleetbench_model_cache" in done["msg"]


def test_run_with_a_cache_lacking_the_model_is_bad_input(
        filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n")
    runs = tmp_path / "runs"
    assert main(["run", "-i", str(inventory), "--model", "Qwen/Qwen2.5-14B", "--gpus", "8",
                 "--model-from", str(filled), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "has no models--Qwen--Qwen2.5-14B/" in err and "hf download Qwen/Qwen2.5-14B" in err
    assert len(err.strip().splitlines()) == 1
    assert not runs.exists()


def test_a_resumed_run_sends_from_the_same_cache(filled: Path, tmp_path: Path) -> None:
    from fleetbench.commands.run import _resume_request

    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n")
    run_dir = tmp_path / "runs" / "20261203T000000Z-abcd"
    run_dir.mkdir(parents=True)
    plan = {"model": REPO_ID, "gpus": 1, "dtype": "float16", "scenario": "latency",
            "slots": "1", "timeout_s": 600, "limit": None,
            "overrides": {"model_from": str(filled)}, "container_env": {}}
    (run_dir / "manifest.json").write_text(json.dumps(
        {"run_id": run_dir.name, "plan": plan, "inventory": str(inventory), "hosts": {}}))
    request = _resume_request(argparse.Namespace(resume=run_dir, inventory=None,
                                                 reconnect_window=None,
                                                 serving_start_timeout=None), None)
    assert request.model_snapshot is not None
    assert request.model_snapshot.commit == COMMIT
    assert request.plan.overrides["model_from"] == str(filled)
