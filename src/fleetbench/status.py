"""``fleetbench status RUN_DIR``: where a run stands, from its manifest and its hosts.

Works from another terminal while the run goes on, and after its controller died: the
manifest says how each host ended (or that its slots were left running), and one look at
each host's record (:mod:`fleetbench.sshpoll`) says what its supervisor is doing now.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fleetbench.inventory import load_fleet
from fleetbench.run import read_manifest
from fleetbench.watch import POLL_WORKERS, Observation, host_state, slot_counts

#: Manifest statuses of hosts that did not end: their hosts are asked.
UNFINISHED = frozenset({"pending", "running"})


def on_host(seen: Observation) -> dict[str, Any]:
    """What one look at a host says, for ``status --json``'s ``on_host``."""
    if not seen.reachable or seen.error:
        return {"reachable": seen.reachable, "state": "unknown",
                "error": seen.error or "unreachable"}
    record = seen.record or {}
    counts = slot_counts(record)
    created = record.get("created")
    elapsed = None
    if created and seen.host_clock is not None:
        started = calendar.timegm(time.strptime(str(created), "%Y-%m-%dT%H:%M:%SZ"))
        elapsed = max(0, int(seen.host_clock - started))
    return {
        "reachable": True, "state": host_state(seen), "error": "",
        "slots": {name: slot.get("state") for name, slot in
                  sorted((record.get("slots") or {}).items())},
        **counts, "elapsed_s": elapsed,
        "controller": record.get("controller"),
    }


def run_status(run_dir: Path, *, inventory: Path | None = None,
               look: Callable[[str], Observation] | None = None) -> dict[str, Any]:
    """The run's status: the manifest's word per host, and the host's own (asked in
    parallel). BadInput when ``run_dir`` is not a run directory or the inventory is bad."""
    manifest = read_manifest(run_dir)
    hosts: Mapping[str, Mapping[str, Any]] = manifest.get("hosts") or {}
    if look is None:
        fleet = load_fleet(Path(inventory or manifest["inventory"]), ",".join(hosts) or None)
        from fleetbench.sshpoll import RecordPoller  # paramiko only when asking hosts

        look = RecordPoller(manifest["run_id"], fleet.host_vars)
    names = list(hosts)
    with ThreadPoolExecutor(max_workers=max(1, min(POLL_WORKERS, len(names)))) as pool:
        seen = dict(zip(names, pool.map(look, names), strict=True))
    return {
        "run_id": manifest["run_id"], "run_dir": str(run_dir),
        "finished": manifest.get("finished"),
        "hosts": {name: {"status": entry.get("status"), "reason": entry.get("reason", ""),
                         "on_host": on_host(seen[name])}
                  for name, entry in hosts.items()},
    }
