"""A run's footprint on a host: its lock (with the token inside) and its containers.

Shared by the modules that take, inspect and release it (runs on the target, standard
library only). The lock is a folder made with one atomic ``mkdir``; ``owner.json`` inside
names the run. The Hugging Face token file lives in that folder, so releasing the lock
removes the token too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time


def lock_owner(path):
    """``owner.json`` of the lock at ``path``: {} when there is no lock or it is unreadable."""
    try:
        with open(os.path.join(path, "owner.json"), encoding="utf-8") as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def held_by(path):
    """Who holds the lock at ``path`` ({} when free), with its age in hours."""
    if not os.path.isdir(path):
        return {}
    owner = dict(lock_owner(path))
    try:
        owner["age_hours"] = round((time.time() - os.stat(path).st_mtime) / 3600, 2)
    except OSError:
        return {}
    owner.setdefault("run_id", "?")
    return owner


def take_lock(path, run_id, stale_hours):
    """Take the lock for ``run_id``: (taken, owner, message when not taken).

    Taking it again for the same run succeeds (``--resume``); a lock older than
    ``stale_hours`` is taken over, since its run died without cleaning up.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            owner = lock_owner(path)
            if owner.get("run_id") == run_id:
                return True, owner, None
            age_h = (time.time() - os.stat(path).st_mtime) / 3600
            if age_h < stale_hours:
                return False, owner, (
                    "host is in use by fleetbench run %s (since %s); wait for it, or "
                    "remove %s if that run is dead" % (
                        owner.get("run_id", "?"), owner.get("since", "?"), path))
            shutil.rmtree(path, ignore_errors=True)  # stale: its run died long ago
            continue
        owner = {"run_id": run_id, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "pid": os.getpid()}
        with open(os.path.join(path, "owner.json"), "w", encoding="utf-8") as handle:
            json.dump(owner, handle)
        return True, owner, None
    return False, {}, "could not take the lock at %s" % path


def release_lock(path, run_id):
    """Remove the lock folder (and the token file inside) when ``run_id`` holds it."""
    if lock_owner(path).get("run_id") != run_id:
        return False  # none, or someone else's: leave it
    shutil.rmtree(path, ignore_errors=True)
    return True


def remove_containers(run_id, host):
    """Remove this host's containers of the run; returns (removed, error or None)."""
    listing = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=fleetbench.run=" + run_id,
         "--filter", "label=fleetbench.host=" + host],
        capture_output=True, text=True, timeout=120, check=False)
    if listing.returncode != 0:
        return [], "cannot list containers: " + listing.stderr.strip()
    containers = listing.stdout.split()
    errors = []
    if containers:
        removed = subprocess.run(["docker", "rm", "-f", *containers], capture_output=True,
                                 text=True, timeout=300, check=False)
        # Already gone is what we wanted.
        errors = [line for line in removed.stderr.splitlines()
                  if line.strip() and "No such container" not in line]
    return containers, "; ".join(errors) or None


def remove_mad_snapshot(work_dir):
    """Remove ``<work_dir>/mad`` when it is a snapshot the controller sent (no ``.git``):
    it is the run's footprint, and a later run that clones MAD there would find the folder
    taken. A git checkout stays, to be updated in place by the next run."""
    mad = os.path.join(work_dir, "mad")
    if os.path.isdir(mad) and not os.path.exists(os.path.join(mad, ".git")):
        shutil.rmtree(mad, ignore_errors=True)
        return True
    return False


def clean_up(run_id, host, lock):
    """Containers first, then the token and lock (those go even when a container stays),
    then a MAD snapshot of the run (only when the lock was this run's)."""
    containers, error = remove_containers(run_id, host)
    released = release_lock(lock, run_id)
    snapshot = remove_mad_snapshot(os.path.dirname(lock)) if released else False
    return {"removed": containers, "released": released, "error": error,
            "mad_snapshot_removed": snapshot}
