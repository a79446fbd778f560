"""A host's Hugging Face cache, filled from the controller (runs on the target).

Standard library only. ``stage`` is called by the model role's ``fleetbench_model_send``
action, piped to the host's Python: once to learn which blobs the host lacks (those with
the same size and SHA-256 are kept), then, after the controller sent them next to their
place, to check each one's SHA-256, move it in and lay the snapshot out as the hub client
does (``blobs/<blob>``, ``snapshots/<commit>/<path>`` as relative links, ``refs/<ref>``).
The ref is written last: until then the client does not see a half-sent snapshot.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

# Suffix of a blob the controller is sending (the hub client's own partial files end in
# .incomplete: neither touches the other's).
INCOMING = ".fleetbench-incoming"
CHUNK = 1 << 20
# Blobs hashed at once: hashlib releases the interpreter lock, NVMe serves several readers.
HASHERS = 4


def sha256_of(path):
    """SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _same(path, size, sha256):
    """Whether ``path`` is a file of ``size`` bytes whose SHA-256 is ``sha256``."""
    try:
        if os.path.islink(path) or os.path.getsize(path) != size:
            return False
        return sha256_of(path) == sha256
    except OSError:
        return False


def _link(snapshot, path, blob_path):
    """``snapshot/path`` as a relative link to ``blob_path`` (replacing what was there)."""
    pointer = os.path.join(snapshot, *path.split("/"))
    os.makedirs(os.path.dirname(pointer), exist_ok=True)
    target = os.path.relpath(blob_path, os.path.dirname(pointer))
    if os.path.islink(pointer) and os.readlink(pointer) == target:
        return False
    if os.path.lexists(pointer):
        os.unlink(pointer)
    os.symlink(target, pointer)
    return True


def _write_ref(refs, ref, commit):
    """``refs/<ref>`` holding ``commit`` (no newline, as the hub client writes it)."""
    path = os.path.join(refs, ref)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == commit:
                return False
    except OSError:
        pass
    tmp = path + INCOMING
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(commit)
    os.replace(tmp, path)
    return True


def _accept(blobs, item):
    """Move a sent blob into place when its SHA-256 is the controller's; the problem if not."""
    incoming = os.path.join(blobs, item["blob"] + INCOMING)
    if not os.path.isfile(incoming):
        return f"{item['path']} was not received"
    if not _same(incoming, item["size"], item["sha256"]):
        os.unlink(incoming)
        return f"{item['path']} arrived damaged (its SHA-256 is not the controller's)"
    os.chmod(incoming, 0o644)
    os.replace(incoming, os.path.join(blobs, item["blob"]))
    return ""


def stage(args):
    """Check and place a snapshot in the host's cache.

    ``args``: ``cache`` (the hub cache folder), ``repo_folder`` (``models--org--name``),
    ``commit``, ``ref``, ``files`` (``path``, ``blob``, ``size``, ``sha256`` each) and
    ``received`` (blobs the controller has just sent). Returns ``missing`` (blobs still
    to send, with the paths to send them to), ``complete`` (the snapshot laid out and
    ``refs/<ref>`` written) and ``problems``.
    """
    repo = os.path.join(args["cache"], args["repo_folder"])
    blobs = os.path.join(repo, "blobs")
    snapshot = os.path.join(repo, "snapshots", args["commit"])
    refs = os.path.join(repo, "refs")
    try:
        for folder in (blobs, snapshot, refs):
            os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        return {"failed": True, "msg": f"cannot write the model cache {args['cache']} "
                f"({exc.strerror or exc}) — make it writable by the SSH user, or point "
                "fleetbench_model_cache elsewhere"}
    by_blob = {}
    for item in args["files"]:
        by_blob.setdefault(item["blob"], item)
    received = set(args.get("received") or ())
    problems = [p for p in (_accept(blobs, by_blob[b]) for b in sorted(received)) if p]
    unchecked = [b for b in by_blob if b not in received]
    with ThreadPoolExecutor(max_workers=HASHERS) as pool:
        kept = list(pool.map(lambda b: _same(os.path.join(blobs, b), by_blob[b]["size"],
                                             by_blob[b]["sha256"]), unchecked))
    missing = [b for b, ok in zip(unchecked, kept) if not ok]
    missing += [b for b in sorted(received)
                if not os.path.isfile(os.path.join(blobs, b))]
    result = {"changed": bool(received), "problems": problems, "complete": False,
              "missing": [{"blob": b, "dest": os.path.join(blobs, b + INCOMING)}
                          for b in missing]}
    if missing:
        return result
    linked = [_link(snapshot, item["path"], os.path.join(blobs, item["blob"]))
              for item in args["files"]]
    ref_written = _write_ref(refs, args["ref"], args["commit"])
    result.update(complete=True, changed=bool(received) or any(linked) or ref_written)
    return result
