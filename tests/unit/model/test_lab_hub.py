"""The lab's stand-in Hugging Face hub, spoken to by the real huggingface_hub client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import snapshot_download
from huggingface_hub.errors import GatedRepoError

from fleetbench.lab import hub

OPEN = "NousResearch/Meta-Llama-3-8B"
GATED = "meta-llama/Llama-3.1-8B-Instruct"


class Hub:
    def __init__(self, state: Path, port: int) -> None:
        self.state = state
        self.port = port

    def endpoint(self, client: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/{client}"

    def downloads(self, client: str, repo: str) -> dict[str, int]:
        counts: dict[str, int] = hub.read_downloads(self.state).get(client, {}).get(
            repo, {"files": 0, "bytes": 0})
        return counts


@pytest.fixture
def lab_hub(tmp_path: Path) -> Iterator[Hub]:
    server = hub.make_server(tmp_path / "hub")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Hub(tmp_path / "hub", server.server_address[1])
    server.shutdown()
    server.server_close()


def _weights(repo: str) -> bytes:
    return next(f.data for f in hub.repo_files(repo) if f.path == hub.WEIGHTS_FILE)


def test_range_headers_as_the_hub_reads_them() -> None:
    assert hub.parse_range(None, 100) is None
    assert hub.parse_range("bytes=0-", 100) == (0, 99)
    assert hub.parse_range("bytes=40-", 100) == (40, 99)
    assert hub.parse_range("bytes=10-19", 100) == (10, 19)
    assert hub.parse_range("bytes=10-500", 100) == (10, 99)
    with pytest.raises(ValueError, match="bytes=100-"):
        hub.parse_range("bytes=100-", 100)


def test_a_repository_has_a_git_shaped_commit_of_its_own() -> None:
    commit = hub.repo_commit(OPEN, hub.repo_files(OPEN))
    assert len(commit) == 40 and int(commit, 16) >= 0
    assert commit == hub.repo_commit(OPEN, hub.repo_files(OPEN))
    assert commit != hub.repo_commit(GATED, hub.repo_files(GATED))
    assert hub.is_gated(GATED) and not hub.is_gated(OPEN)


def test_the_real_client_downloads_once_and_the_hub_counts_it(lab_hub: Hub,
                                                               tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = Path(snapshot_download(OPEN, endpoint=lab_hub.endpoint("h1"), cache_dir=cache))
    assert folder.name == hub.repo_commit(OPEN, hub.repo_files(OPEN))
    assert (folder / hub.WEIGHTS_FILE).read_bytes() == _weights(OPEN)
    assert (folder / "config.json").is_file()
    total = sum(len(f.data) for f in hub.repo_files(OPEN))
    assert lab_hub.downloads("h1", OPEN) == {"files": 2, "bytes": total}
    # Cached: the client asks for the commit, downloads nothing.
    snapshot_download(OPEN, endpoint=lab_hub.endpoint("h1"), cache_dir=cache)
    assert lab_hub.downloads("h1", OPEN) == {"files": 2, "bytes": total}
    # Another client is counted apart.
    snapshot_download(OPEN, endpoint=lab_hub.endpoint("h2"), cache_dir=tmp_path / "other")
    assert lab_hub.downloads("h2", OPEN)["files"] == 2


def test_a_gated_repository_refuses_a_client_without_a_token(lab_hub: Hub,
                                                             tmp_path: Path) -> None:
    with pytest.raises(GatedRepoError):
        snapshot_download(GATED, endpoint=lab_hub.endpoint("h1"), cache_dir=tmp_path / "c",
                          token=False)
    assert lab_hub.downloads("h1", GATED)["files"] == 0
    snapshot_download(GATED, endpoint=lab_hub.endpoint("h1"), cache_dir=tmp_path / "c",
                      token="hf_lab_token")
    assert lab_hub.downloads("h1", GATED)["files"] == 2


def test_an_interrupted_download_resumes_where_it_stopped(tmp_path: Path) -> None:
    # Weights bigger than the client's 10 MiB chunks: it resumes from its last whole chunk.
    size, drop = 24 * 1024 * 1024, 16 * 1024 * 1024
    server = hub.make_server(tmp_path / "hub", weights_bytes=size)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    big = Hub(tmp_path / "hub", server.server_address[1])
    try:
        (big.state / hub.DROP_FILE).write_text(str(drop))
        folder = Path(snapshot_download(OPEN, endpoint=big.endpoint("h1"),
                                        cache_dir=tmp_path / "cache"))
    finally:
        server.shutdown()
        server.server_close()
    files = {f.path: f.data for f in hub.repo_files(OPEN, size)}
    assert (folder / hub.WEIGHTS_FILE).read_bytes() == files[hub.WEIGHTS_FILE]
    assert not (big.state / hub.DROP_FILE).exists()  # the connection did drop
    counted = big.downloads("h1", OPEN)
    whole = len(files["config.json"]) + size
    # Three transfers (config, the cut one, the rest); the rest asked with Range, so less
    # than the whole file crossed again.
    assert counted["files"] == 3
    assert whole < counted["bytes"] < whole + drop, counted
