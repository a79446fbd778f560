"""A run's footprint on a host: its lock (with the token inside) and its containers.

Shared by the modules that take, inspect and release it (runs on the target, standard
library only). The lock is a folder made with one atomic ``mkdir``; ``owner.json`` inside
names the run and the controller that runs it (see fleetbench.lock, which judges on the
controller whether that run is dead). The Hugging Face token file lives in that folder, so
releasing the lock removes the token too.
"""

from __future__ import annotations

import calendar
import json
import os
import shutil
import subprocess
import time

from ansible.module_utils.fleetbench_slots import stop_supervisor

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def lock_owner(path):
    """``owner.json`` of the lock at ``path``: {} when there is no lock or it is unreadable."""
    try:
        with open(os.path.join(path, "owner.json"), encoding="utf-8") as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def lock_age_s(path, owner):
    """Seconds since the lock was taken, by this host's clock: from ``since``, else from the
    folder's time (a lock without a readable owner)."""
    try:
        taken = calendar.timegm(time.strptime(owner.get("since", ""), TIME_FORMAT))
    except (TypeError, ValueError):
        taken = os.stat(path).st_mtime
    return max(0, int(time.time() - taken))


def held_by(path):
    """Who holds the lock at ``path`` ({} when free): its ``owner.json`` and ``age_s``."""
    if not os.path.isdir(path):
        return {}
    owner = dict(lock_owner(path))
    try:
        owner["age_s"] = lock_age_s(path, owner)
    except OSError:
        return {}  # released meanwhile
    owner.setdefault("run_id", "?")
    return owner


def write_owner(path, owner):
    """Write ``owner.json`` whole or not at all (a reader never sees half of it)."""
    part = os.path.join(path, "owner.json.part")
    with open(part, "w", encoding="utf-8") as handle:
        json.dump(owner, handle)
    os.replace(part, os.path.join(path, "owner.json"))


def take_lock(path, run_id, controller):
    """Take the lock for ``run_id`` of ``controller`` ({host, pid, boot_id} of the
    fleetbench that runs it): (taken, owner, message when not taken).

    Taking it again for the same run succeeds (``--resume``) and records the controller
    that resumes it. A lock is never taken over by age: whether its run is dead is judged
    on the controller, and a dead run's lock is released by ``fleetbench unlock``.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        owner = held_by(path)
        if owner.get("run_id") != run_id:
            return False, owner, (
                "host is in use by fleetbench run {} (since {})".format(
                    owner.get("run_id", "?"), owner.get("since", "?")))
        owner = {"run_id": run_id, "since": owner.get("since") or now(),
                 "controller": controller or {}}
        write_owner(path, owner)
        return True, owner, None
    owner = {"run_id": run_id, "since": now(), "controller": controller or {}}
    write_owner(path, owner)
    return True, owner, None


def now():
    """The current time as the lock records it (UTC)."""
    return time.strftime(TIME_FORMAT, time.gmtime())


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
    then a MAD snapshot of the run (only when the lock was this run's).

    ``holder`` says who held the lock before ({} when nobody): another run's lock is left.
    """
    holder = held_by(lock)
    # First, or it would start the next wave of containers just removed.
    stop_supervisor(os.path.join(os.path.dirname(lock), "runs", run_id))
    containers, error = remove_containers(run_id, host)
    released = release_lock(lock, run_id)
    snapshot = remove_mad_snapshot(os.path.dirname(lock)) if released else False
    return {"removed": containers, "released": released, "error": error, "holder": holder,
            "mad_snapshot_removed": snapshot}
