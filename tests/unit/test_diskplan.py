"""Disk planning: the need worked out on the controller, the probe's view of a host's
disks, and the verdict that skips a host short of space (skipped:disk)."""

from __future__ import annotations

import json
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fleetbench import diskplan
from fleetbench.errors import BadInput
from fleetbench.run import host_outcome
from fleetbench.runner import TaskResult
from tests.conftest import module_util

GB = 10**9
NEED = {"image": "rocm/vllm:x", "image_bytes": 20 * GB, "image_digest": "sha256:feed",
        "model": "org/model", "model_bytes": 16 * GB, "margin_bytes": 1 * GB}


# --- the verdict -------------------------------------------------------------------------------


def test_docker_root_and_cache_on_two_disks_are_judged_apart() -> None:
    disk = {"free_bytes": 30 * GB, "measured_at": "/var/lib/docker", "device": 1,
            "model_cache": {"free_bytes": 10 * GB, "measured_at": "/nvme", "device": 2}}
    problems, checked = diskplan.judge_disk(NEED, disk)
    assert [c["path"] for c in checked] == ["/var/lib/docker", "/nvme"]
    assert [c["needed_bytes"] for c in checked] == [21 * GB, 17 * GB]
    assert problems == ["not enough disk at /nvme: 17.0 GB needed (model 16.0 GB + margin "
                        "1.0 GB), 10.0 GB free — free space there, or point "
                        "fleetbench_model_cache at a larger disk"]


def test_what_the_host_already_has_needs_no_room() -> None:
    # The same image (by registry digest) and half the model's files already there.
    disk = {"free_bytes": 9 * GB, "measured_at": "/d", "device": 1,
            "image": {"id": "sha256:other", "repo_digests": ["reg/rocm/vllm@sha256:feed"]},
            "model_cache": {"free_bytes": 9 * GB, "measured_at": "/d", "device": 1,
                            "cached_bytes": 8 * GB}}
    problems, checked = diskplan.judge_disk(NEED, disk)
    assert problems == []
    assert checked[0]["image_bytes"] == 0 and checked[0]["model_bytes"] == 8 * GB
    # Another image under the tag: it needs its room.
    other = {**disk, "image": {"id": "sha256:old", "repo_digests": ["reg/rocm/vllm@sha256:0"]}}
    assert diskplan.judge_disk(NEED, other)[1][0]["image_bytes"] == 20 * GB
    # Staged from the controller: matched by image id.
    staged = {**NEED, "image_digest": "sha256:other"}
    assert diskplan.judge_disk(staged, disk)[1][0]["image_bytes"] == 0


def test_no_need_judges_nothing() -> None:
    assert diskplan.judge_disk({}, {"free_bytes": 0, "measured_at": "/"}) == ([], [])


def test_a_host_short_of_disk_ends_skipped_disk_with_the_numbers() -> None:
    message = "not enough disk at /d: 46.0 GB needed (…), 5.0 GB free — free space there"
    result = TaskResult(host="gpu01", task="Probe the host and judge it", role="preflight",
                        action="fleetbench_probe", outcome="failed", ignored=False,
                        result={"verdict": {"skip": "disk", "ok": False}, "msg": message},
                        start="t0", end="t1")
    outcome = host_outcome("gpu01", (result,), fetched=False)
    assert (outcome.status, outcome.reason) == ("skipped:disk", message)
    assert "image" not in outcome.steps


# --- the plan ----------------------------------------------------------------------------------


def test_plan_takes_the_inventory_size_over_the_registry_and_each_hosts_margin() -> None:
    options = diskplan.disk_options({"a": {"fleetbench_image_size_gb": 42},
                                     "b": {"fleetbench_disk_margin_gb": "2.5"},
                                     "c": {"fleetbench_disk_margin_gb": "{{ m }}"}})
    assert options == {"a": (42.0, 10.0), "b": (None, 2.5), "c": (None, 10.0)}
    sizes = {"img": diskplan.ImageSize(bytes=7 * GB, source="registry", detail="d",
                                       digest="sha256:1")}
    needs = diskplan.plan_disk({"a": "img", "b": "img"}, "org/m", 3 * GB, options, sizes)
    assert (needs["a"].image_bytes, needs["a"].image_source) == (42 * GB, "inventory")
    assert (needs["b"].image_bytes, needs["b"].margin_bytes) == (7 * GB, int(2.5 * GB))
    assert needs["b"].total_bytes == 7 * GB + 3 * GB + int(2.5 * GB)
    summary = diskplan.summary({h: n.to_dict() for h, n in needs.items()})
    assert [need["hosts"] for need in summary["needs"]] == [["a"], ["b"]]
    assert diskplan.describe(summary["needs"][1]).startswith(
        "12.5 GB free per host at most: image 7.0 GB (d), model 3.0 GB, margin 2.5 GB")


@pytest.mark.parametrize("value", ["lots", -1, "nan"])
def test_an_image_size_that_is_no_size_is_bad_input(value: object) -> None:
    with pytest.raises(BadInput, match="fleetbench_image_size_gb of a is"):
        diskplan.disk_options({"a": {"fleetbench_image_size_gb": value}})


def test_model_bytes_are_the_checkpoints_weights() -> None:
    # Llama 3.1 8B ships bf16: a float8 run still downloads 2 bytes per parameter.
    size = diskplan.model_bytes("meta-llama/Llama-3.1-8B-Instruct", "float8")
    assert 15 * GB < size < 17 * GB


@pytest.mark.parametrize(("ref", "registry", "repository", "reference"), [
    ("rocm/vllm:instinct_main", "docker.io", "rocm/vllm", "instinct_main"),
    ("ubuntu", "docker.io", "library/ubuntu", "latest"),
    ("127.0.0.1:5000/lab-1/rocm/vllm:x", "127.0.0.1:5000", "lab-1/rocm/vllm", "x"),
    ("reg.example:443/a/b@sha256:abc", "reg.example:443", "a/b", "sha256:abc"),
    ("localhost/a", "localhost", "a", "latest"),
])
def test_image_references_split_as_docker_reads_them(ref: str, registry: str,
                                                     repository: str, reference: str) -> None:
    parsed = diskplan.parse_image_ref(ref)
    assert (parsed.registry, parsed.repository, parsed.reference) == (
        registry, repository, reference)


def test_only_loopback_registries_are_spoken_to_over_plain_http() -> None:
    assert diskplan.parse_image_ref("127.0.0.1:5000/a:b").api == "http://127.0.0.1:5000/v2"
    assert diskplan.parse_image_ref("rocm/vllm").api == "https://registry-1.docker.io/v2"
    assert diskplan.parse_image_ref("reg.example/a").api == "https://reg.example/v2"


# --- the registry (a small registry on 127.0.0.1: index, token challenge, manifests) --------


class _Registry(BaseHTTPRequestHandler):
    """Answers like Docker Hub: 401 with a Bearer challenge, a multi-platform index."""

    documents: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        if self.path.startswith("/token"):
            self._send(200, {"token": "pull-token"})
            return
        if self.headers.get("Authorization") != "Bearer pull-token":
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:'
                             f'{self.server.server_port}/token",service="reg",'
                             'scope="repository:rocm/vllm:pull"')
            self.end_headers()
            return
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.documents:
            self._send(404, {"errors": []})
            return
        self._send(200, self.documents[name], digest=f"sha256:{name}")

    def _send(self, code: int, body: dict[str, Any], digest: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    _Registry.documents = {
        "latest": {"manifests": [
            {"digest": "arm", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "amd", "platform": {"os": "linux", "architecture": "amd64"}}]},
        "amd": {"layers": [{"size": 2 * GB}, {"size": GB}], "config": {"size": 100}},
        "empty": {"layers": []},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_registry_size_follows_the_token_challenge_and_the_amd64_image(registry: str) -> None:
    size = diskplan.registry_image_size(f"{registry}/rocm/vllm:latest", timeout=5)
    assert size.bytes == int(3 * GB * diskplan.UNPACK_FACTOR)
    assert (size.source, size.digest) == ("registry", "sha256:latest")
    assert "3.0 GB compressed in 2 layers" in size.detail


def test_a_registry_that_does_not_tell_leaves_the_estimate(registry: str) -> None:
    missing = diskplan.image_size(f"{registry}/rocm/vllm:nope", timeout=5)
    assert (missing.source, missing.bytes) == ("estimate", 60 * GB)
    assert "HTTP 404" in missing.detail and "fleetbench_image_size_gb" in missing.detail
    assert "lists no layers" in diskplan.image_size(f"{registry}/rocm/vllm:empty").detail
    # Port 9 on loopback: nothing listens (the controller cannot reach the registry).
    closed = diskplan.image_size("127.0.0.1:9/rocm/vllm:x", timeout=5)
    assert closed.source == "estimate" and "not reachable from the controller" in closed.detail
    sizes = diskplan.lookup_sizes({"{{ img }}", "127.0.0.1:9/a:b"}, timeout=5)
    assert {s.source for s in sizes.values()} == {"estimate"}


# --- the probe on the host -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_utils() -> types.ModuleType:
    return module_util("fleetbench_probe")


def test_probe_measures_both_places_and_the_cached_model(probe_utils: types.ModuleType,
                                                         tmp_path: Path) -> None:
    blobs = tmp_path / "cache" / "hub" / "models--org--model" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "a").write_bytes(b"x" * 1000)
    (blobs / "b.incomplete").write_bytes(b"x" * 24)
    disk = probe_utils.disk_probe(
        {"disk_path": str(tmp_path / "docker" / "not-yet"), "model_cache": str(tmp_path / "cache"),
         "model": "org/model", "image": None}, 10)
    assert disk["measured_at"] == str(tmp_path)  # the nearest folder that exists
    assert disk["model_cache"]["cached_bytes"] == 1024
    assert disk["model_cache"]["device"] == disk["device"]
    assert disk["free_bytes"] > 0 and "image" not in disk
    assert probe_utils.cached_model_bytes(str(tmp_path / "cache"), "org/other") == 0


@pytest.mark.parametrize(("ref", "tags", "found"), [
    ("rocm/vllm:x", ["rocm/vllm:x"], "rocm/vllm:x"),
    ("rocm/vllm", ["rocm/vllm:latest"], "rocm/vllm:latest"),
    ("127.0.0.1:5000/a/b", ["127.0.0.1:5000/a/b:latest"], "127.0.0.1:5000/a/b:latest"),
    ("rocm/vllm:y", ["rocm/vllm:x"], None),
])
def test_the_controllers_image_is_sent_by_the_tag_the_hosts_use(
        ref: str, tags: list[str], found: str | None) -> None:
    from fleetbench.imagestage import tag_of

    assert tag_of(ref, tags) == found
