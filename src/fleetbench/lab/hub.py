"""The lab's stand-in Hugging Face hub, for the real ``huggingface_hub`` client.

It serves what ``snapshot_download`` asks for, in the hub's shapes:

- ``GET /api/models/<repo>[/revision/<rev>]``: the model's info with its commit ``sha``;
- ``GET /api/models/<repo>/tree/<rev>``: the file listing (``lfs`` entry for the weights);
- ``HEAD|GET /<repo>/resolve/<rev>/<file>``: the file, with ``ETag``, ``X-Repo-Commit``
  and ``Content-Length``, and ``Range`` requests (206) so an interrupted download resumes.

Every repository ``org/name`` exists and holds the same small fake model (``config.json``
and ``model.safetensors``); ``meta-llama/*`` and ``mistralai/*`` are gated: a request
without a bearer token gets the hub's 401 (``X-Error-Code: GatedRepo``).

Clients are told apart by a path prefix: the lab gives each host
``HF_ENDPOINT=http://127.0.0.1:<port>/lab/<host>`` (all lab hosts connect from 127.0.0.1).
Downloads are counted per client and repository, and the counts are kept in
``<state dir>/downloads.json`` and answered at ``GET /_lab/downloads``.

Run as ``python -m fleetbench.lab.hub STATE_DIR``: it listens on a free port of 127.0.0.1
and writes the port to ``STATE_DIR/port`` once it accepts connections.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

GATED_ORGS = ("meta-llama/", "mistralai/")
ADDRESS = "127.0.0.1"
PORT_FILE = "port"
DOWNLOADS_FILE = "downloads.json"
# A fault on demand: when this file holds N, the next whole-file download of the weights
# stops after N bytes (the connection drops), once, so a client has to resume it.
DROP_FILE = "drop-after"
WEIGHTS_FILE = "model.safetensors"
# Size of the fake weights: big enough to be read in several chunks (a resumed download
# has something to resume), small enough for the lab.
WEIGHTS_BYTES = 3 * 1024 * 1024

_REPO = r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*"
_CLIENT = re.compile(r"^/lab/([\w.-]+)(/.*)$")
_INFO = re.compile(rf"^/api/models/({_REPO})(?:/revision/([^/]+))?/?$")
_TREE = re.compile(rf"^/api/models/({_REPO})/tree/([^/]+)(?:/.*)?$")
_RESOLVE = re.compile(rf"^/({_REPO})/resolve/([^/]+)/(.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class RepoFile:
    """One file of a stand-in repository."""

    path: str
    data: bytes
    lfs: bool

    @property
    def git_oid(self) -> str:
        """git's blob id of the content (what the hub's tree calls ``oid``)."""
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()  # noqa: S324

    @property
    def sha256(self) -> str:
        """The LFS object id (sha256 of the content)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        """The hub's ETag: the sha256 for LFS files, the git blob id otherwise."""
        return self.sha256 if self.lfs else self.git_oid


def repo_files(repo: str, weights_bytes: int = WEIGHTS_BYTES) -> list[RepoFile]:
    """The fake model every repository holds (its weights differ per repository)."""
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "_name_or_path": repo, "hidden_size": 4096, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 8, "torch_dtype": "bfloat16"}
    seed = hashlib.sha256(repo.encode()).digest()
    weights = (seed * (weights_bytes // len(seed) + 1))[:weights_bytes]
    return [RepoFile("config.json", (json.dumps(config, indent=2) + "\n").encode(), lfs=False),
            RepoFile(WEIGHTS_FILE, weights, lfs=True)]


def repo_commit(repo: str, files: list[RepoFile]) -> str:
    """The repository's commit sha: 40 hex digits that change with its content."""
    digest = hashlib.sha1(repo.encode())  # noqa: S324 (a git-shaped id, not security)
    for item in files:
        digest.update(item.path.encode() + item.git_oid.encode())
    return digest.hexdigest()


def is_gated(repo: str) -> bool:
    """Whether the hub asks for a token before serving ``repo``."""
    return repo.startswith(GATED_ORGS)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` bytes of a ``Range: bytes=a-[b]`` header, None for the whole file.

    ValueError for a range that starts past the end (the hub's 416).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else size - 1
    if first >= size or last < first:
        raise ValueError(header)
    return first, min(last, size - 1)


class DownloadCounter:
    """File downloads (GET bodies served) per client and repository, saved on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, dict[str, int]]] = {}
        if path.exists():
            self.counts = json.loads(path.read_text())

    def add(self, client: str, repo: str, nbytes: int) -> None:
        """Count one file (or part of one) served to ``client``."""
        with self._lock:
            entry = self.counts.setdefault(client, {}).setdefault(repo, {"files": 0,
                                                                         "bytes": 0})
            entry["files"] += 1
            entry["bytes"] += nbytes
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.counts, indent=2, sort_keys=True) + "\n")
            tmp.replace(self.path)

    def snapshot(self) -> dict[str, Any]:
        """A copy of the counts."""
        with self._lock:
            copy: dict[str, Any] = json.loads(json.dumps(self.counts))
        return copy


def read_downloads(state_dir: Path) -> dict[str, Any]:
    """The hub's download counts: ``{client: {repo: {"files", "bytes"}}}``."""
    path = state_dir / DOWNLOADS_FILE
    counts: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return counts


class HubHandler(BaseHTTPRequestHandler):
    """One request to the stand-in hub."""

    server_version = "fleetbench-lab-hub"
    protocol_version = "HTTP/1.1"
    counter: DownloadCounter  # set on the subclass made by make_server
    weights_bytes: int = WEIGHTS_BYTES

    def files(self, repo: str) -> list[RepoFile]:
        """``repo``'s files as this hub serves them."""
        return repo_files(repo, self.weights_bytes)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request in the hub's log; never a header (no token is ever logged).
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    # --- routing ---------------------------------------------------------------------------

    def _answer(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        client = "-"
        prefixed = _CLIENT.match(path)
        if prefixed:
            client, path = prefixed.group(1), prefixed.group(2)
        if path == "/_lab/downloads":
            self._json(HTTPStatus.OK, self.counter.snapshot(), body)
            return
        for pattern, route in ((_TREE, self._tree), (_INFO, self._info),
                               (_RESOLVE, self._resolve)):
            match = pattern.match(path)
            if match:
                repo = match.group(1)
                if is_gated(repo) and not self._has_token():
                    self._refuse_gated(repo, body)
                    return
                route(match, client, body)
                return
        self._error(HTTPStatus.NOT_FOUND, "EntryNotFound", f"{path} is not served here", body)

    def _has_token(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and len(auth) > len("Bearer ")

    def _revision_ok(self, repo: str, revision: str, body: bool) -> str | None:
        commit = repo_commit(repo, self.files(repo))
        if revision in ("main", commit):
            return commit
        self._error(HTTPStatus.NOT_FOUND, "RevisionNotFound",
                    f"Invalid rev id: {revision}", body)
        return None

    def _info(self, match: re.Match[str], client: str, body: bool) -> None:
        repo, revision = match.group(1), match.group(2) or "main"
        commit = self._revision_ok(repo, revision, body)
        if commit is None:
            return
        self._json(HTTPStatus.OK, {
            "_id": commit[:24], "id": repo, "modelId": repo, "sha": commit,
            "private": False, "gated": "manual" if is_gated(repo) else False,
            "disabled": False, "tags": ["safetensors", "llama"],
            "siblings": [{"rfilename": f.path} for f in self.files(repo)],
        }, body)

    def _tree(self, match: re.Match[str], client: str, body: bool) -> None:
        repo, revision = match.group(1), match.group(2)
        if self._revision_ok(repo, revision, body) is None:
            return
        entries = []
        for item in self.files(repo):
            entry: dict[str, Any] = {"type": "file", "oid": item.git_oid,
                                     "size": len(item.data), "path": item.path}
            if item.lfs:
                entry["lfs"] = {"oid": item.sha256, "size": len(item.data),
                                "pointerSize": 134}
            entries.append(entry)
        self._json(HTTPStatus.OK, entries, body)

    def _resolve(self, match: re.Match[str], client: str, body: bool) -> None:
        repo, revision, filename = match.groups()
        commit = self._revision_ok(repo, revision, body)
        if commit is None:
            return
        files = {f.path: f for f in self.files(repo)}
        if filename not in files:
            self._error(HTTPStatus.NOT_FOUND, "EntryNotFound",
                        f"{filename} does not exist in {repo}", body)
            return
        item = files[filename]
        size = len(item.data)
        try:
            wanted = parse_range(self.headers.get("Range"), size)
        except ValueError:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first, last = wanted if wanted else (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if wanted else HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", f'"{item.etag}"')
        self.send_header("X-Repo-Commit", commit)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if wanted:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not body:
            return
        drop = self._planted_drop() if item.lfs and not wanted else None
        if drop is not None:
            self.wfile.write(item.data[:drop])
            self.wfile.flush()
            self.counter.add(client, repo, drop)
            self.close_connection = True
            return
        self.wfile.write(item.data[first:last + 1])
        self.counter.add(client, repo, last - first + 1)

    def _planted_drop(self) -> int | None:
        path = self.counter.path.parent / DROP_FILE
        try:
            after = int(path.read_text())
            path.unlink()
        except (OSError, ValueError):
            return None
        return after

    # --- answers -----------------------------------------------------------------------------

    def _json(self, status: HTTPStatus, data: Any, body: bool) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def _error(self, status: HTTPStatus, code: str, message: str, body: bool) -> None:
        payload = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def _refuse_gated(self, repo: str, body: bool) -> None:
        self._error(HTTPStatus.UNAUTHORIZED, "GatedRepo",
                    f"Access to model {repo} is restricted. You must have access to it and "
                    "be authenticated to access it. Please log in.", body)


def make_server(state_dir: Path, port: int = 0,
                weights_bytes: int = WEIGHTS_BYTES) -> ThreadingHTTPServer:
    """A hub server on 127.0.0.1 (``port`` 0: a free one) counting into ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = type("LabHubHandler", (HubHandler,),
                   {"counter": DownloadCounter(state_dir / DOWNLOADS_FILE),
                    "weights_bytes": weights_bytes})
    server = ThreadingHTTPServer((ADDRESS, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    """``python -m fleetbench.lab.hub STATE_DIR``: serve until killed."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m fleetbench.lab.hub STATE_DIR")
    state_dir = Path(args[0])
    server = make_server(state_dir)
    tmp = state_dir / (PORT_FILE + ".tmp")
    tmp.write_text(f"{server.server_address[1]}\n")
    tmp.replace(state_dir / PORT_FILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
