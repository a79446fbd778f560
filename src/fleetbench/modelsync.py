"""The model for offline fleets: a snapshot of a controller-side Hugging Face cache.

``fleetbench run --model-from DIR`` takes the model from ``DIR``, a Hugging Face hub cache
(``HF_HUB_CACHE``, e.g. ``~/.cache/huggingface/hub``, filled on a machine that can reach
the hub), instead of letting every host download it. The model role sends the snapshot's
blobs to each host's cache, skipping blobs already there with the same SHA-256, and lays
them out as the hub client does (``blobs/``, ``snapshots/<commit>/`` links, ``refs/main``)
so that the slots' offline client finds the model there.

Everything the send needs is known here, before any host is touched: the snapshot that
``refs/main`` names, each of its files, and each blob's size and SHA-256.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.errors import BadInput

#: The ref the slots resolve: they name the model only, so the offline client reads
#: ``refs/main`` (the download step fetches ``main`` too, by default).
REF = "main"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SnapshotFile:
    """One file of a cached snapshot and the blob that holds its content."""

    #: Path inside the snapshot (POSIX form), e.g. ``config.json``.
    path: str
    #: The blob's file name in ``blobs/`` (the hub's ETag: SHA-256 for LFS files).
    blob: str
    #: Controller path of the blob.
    source: Path
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as the model role takes it."""
        return {"path": self.path, "blob": self.blob, "source": str(self.source),
                "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class ModelSnapshot:
    """The snapshot of one model in a controller-side Hugging Face cache."""

    repo_id: str
    #: The commit ``refs/main`` names.
    commit: str
    #: The repository's folder in the cache (``…/models--org--name``).
    folder: Path
    files: tuple[SnapshotFile, ...]

    @property
    def total_bytes(self) -> int:
        """Bytes of the blobs a host with an empty cache is sent."""
        return sum(item.size for item in unique_blobs(self.files))

    def to_extravar(self) -> dict[str, Any]:
        """The model role's ``model_from``."""
        return {"repo_id": self.repo_id, "commit": self.commit, "ref": REF,
                "files": [item.to_dict() for item in self.files]}


def repo_folder_name(repo_id: str) -> str:
    """The cache's folder name of a model repository: ``models--org--name``."""
    return "models--" + repo_id.replace("/", "--")


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def unique_blobs(files: tuple[SnapshotFile, ...]) -> list[SnapshotFile]:
    """One file per blob (two paths of a snapshot may share a blob), in snapshot order."""
    seen: dict[str, SnapshotFile] = {}
    for item in files:
        seen.setdefault(item.blob, item)
    return list(seen.values())


def _fill_hint(folder: Path, repo_id: str) -> str:
    return (f"fill it where the hub is reachable (HF_HUB_CACHE={folder} hf download "
            f"{repo_id}) and copy that folder to the controller")


def find_repo_folder(folder: Path, repo_id: str) -> Path:
    """The repository's folder in the cache ``folder``; BadInput naming what is missing.

    ``folder`` may also be an ``HF_HOME`` (whose cache is its ``hub/``).
    """
    name = repo_folder_name(repo_id)
    if not folder.is_dir():
        raise BadInput(f"--model-from {folder} is not a folder — pass a Hugging Face cache "
                       "folder (HF_HUB_CACHE, e.g. ~/.cache/huggingface/hub)")
    for candidate in (folder / name, folder / "hub" / name):
        if candidate.is_dir():
            return candidate
    raise BadInput(f"--model-from {folder} has no {name}/ (the cache of {repo_id}) — "
                   + _fill_hint(folder, repo_id))


def _snapshot_entries(snapshot: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(snapshot):
        dirs.sort()
        for name in sorted(names):
            yield Path(root) / name
        # A linked folder is not the hub client's layout: refused below, never skipped.
        for name in [d for d in dirs if (Path(root) / d).is_symlink()]:
            yield Path(root) / name


def _snapshot_file(entry: Path, snapshot: Path, blobs: Path, where: str) -> SnapshotFile:
    relative = entry.relative_to(snapshot).as_posix()
    if entry.is_symlink():
        target = entry.resolve()
        if target.parent != blobs.resolve():
            raise BadInput(f"{where}: {relative} links outside the cache's blobs/ "
                           f"({entry.readlink()}) — pass a cache the hub client filled")
        if not target.is_file():
            raise BadInput(f"{where}: the blob of {relative} is missing (blobs/{target.name}: "
                           "an interrupted download?) — download the model into it again")
        sha256 = sha256_of(target)
        return SnapshotFile(relative, target.name, target, target.stat().st_size, sha256)
    if entry.is_file():
        # Caches on file systems without links hold copies; the host gets the hub layout,
        # the content's SHA-256 naming the blob.
        sha256 = sha256_of(entry)
        return SnapshotFile(relative, sha256, entry, entry.stat().st_size, sha256)
    raise BadInput(f"{where}: {relative} is not a file — pass a cache the hub client filled")


def resolve_model_snapshot(folder: Path, repo_id: str) -> ModelSnapshot:
    """Find ``repo_id``'s ``main`` snapshot in the cache ``folder`` and checksum its files.

    BadInput names what is missing (the repository, ``refs/main``, the snapshot, a blob)
    and how to fill the cache.
    """
    folder = Path(folder).expanduser().absolute()
    repo = find_repo_folder(folder, repo_id)
    where = f"--model-from {folder}: {repo.name}"
    ref = repo / "refs" / REF
    if not ref.is_file():
        raise BadInput(f"{where} has no refs/{REF} (which commit the slots run) — "
                       + _fill_hint(folder, repo_id))
    commit = ref.read_text(encoding="utf-8").strip()
    snapshot = repo / "snapshots" / commit
    if not commit or not snapshot.is_dir():
        raise BadInput(f"{where}: refs/{REF} names {commit or 'no commit'}, but "
                       f"snapshots/{commit or '…'}/ is missing — " + _fill_hint(folder, repo_id))
    blobs = repo / "blobs"
    files = tuple(_snapshot_file(entry, snapshot, blobs, f"{where} at {commit[:12]}")
                  for entry in _snapshot_entries(snapshot))
    if not files:
        raise BadInput(f"{where}: snapshots/{commit}/ is empty — "
                       + _fill_hint(folder, repo_id))
    if not any(item.path == "config.json" for item in files):
        raise BadInput(f"{where}: snapshots/{commit}/ has no config.json, so vLLM could not "
                       "load the model — " + _fill_hint(folder, repo_id))
    return ModelSnapshot(repo_id=repo_id, commit=commit, folder=repo, files=files)
