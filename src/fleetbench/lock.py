"""Who holds a host's run lock, and whether that run is dead: judged on the controller.

``fleetbench run`` takes a lock on every host in its preflight call (``owner.json`` in
``<work_dir>/lock``, module_utils/fleetbench_run.py) naming the run and the controller
that runs it: its host name, fleetbench's pid there and the controller's boot id. A lock
is never taken over by age. Its run is *stale* when its controller says so — this
controller is the one in the lock (same host name and boot id) and that pid is gone, or
the boot id differs (the controller rebooted since) — or when the operator says so with
``fleetbench unlock``. A lock of another controller is not judged here: only that
controller, or an operator, knows whether its run still lives.
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.scratch import alive

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Controller:
    """The fleetbench process that holds (or reads) a lock, and the machine it runs on."""

    host: str
    pid: int
    boot_id: str  # "" when the system does not say

    def to_dict(self) -> dict[str, Any]:
        """As it is written into the lock (and shown by ``check --json``)."""
        return {"host": self.host, "pid": self.pid, "boot_id": self.boot_id}

    @classmethod
    def from_dict(cls, data: object) -> Controller | None:
        """The controller named in a lock; None when the lock does not name one."""
        if not isinstance(data, Mapping):
            return None
        host, pid, boot_id = data.get("host"), data.get("pid"), data.get("boot_id")
        if not isinstance(host, str) or not host or isinstance(pid, bool) \
                or not isinstance(pid, int):
            return None
        return cls(host=host, pid=pid, boot_id=boot_id if isinstance(boot_id, str) else "")

    def describe(self) -> str:
        """``controller ctl01, pid 4242``."""
        return f"controller {self.host}, pid {self.pid}"


def boot_id(path: Path = BOOT_ID) -> str:
    """This machine's boot id ("" where there is none): it changes with every boot."""
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def this_controller() -> Controller:
    """This fleetbench process on this machine."""
    return Controller(host=socket.gethostname(), pid=os.getpid(), boot_id=boot_id())


@dataclass(frozen=True)
class HostLock:
    """A host's lock as the controller judges it."""

    run_id: str
    since: str
    controller: Controller | None
    age_s: int | None
    stale: bool
    #: Why the run is stale, or why it cannot be judged here ("" when it is alive here).
    why: str

    def contract(self) -> dict[str, Any]:
        """``lock`` of a host in ``fleetbench check --json``."""
        return {"run_id": self.run_id,
                "controller": self.controller.to_dict() if self.controller else None,
                "age_s": self.age_s, "stale": self.stale}


def judge_lock(owner: Mapping[str, Any], here: Controller,
               pid_alive: Callable[[int], bool] = alive) -> HostLock | None:
    """The lock described by ``owner`` (what the host reports: ``owner.json`` plus
    ``age_s``) judged by the controller ``here``; None when the host is not locked."""
    if not owner:
        return None
    holder = Controller.from_dict(owner.get("controller"))
    age = owner.get("age_s")
    stale, why = is_stale(holder, here, pid_alive)
    return HostLock(run_id=str(owner.get("run_id") or "?"), since=str(owner.get("since") or "?"),
                    controller=holder,
                    age_s=int(age) if isinstance(age, int | float) else None,
                    stale=stale, why=why)


def is_stale(holder: Controller | None, here: Controller,
             pid_alive: Callable[[int], bool] = alive) -> tuple[bool, str]:
    """(stale, why) for a lock held by ``holder``, judged on the controller ``here``."""
    if holder is None:
        return False, "the lock does not say which controller holds it"
    if holder.host != here.host:
        return False, f"only {holder.host} can tell whether that run still runs"
    if holder.boot_id and here.boot_id and holder.boot_id != here.boot_id:
        return True, f"{holder.host} has rebooted since that run took the host"
    if not pid_alive(holder.pid):
        return True, "that fleetbench is no longer running"
    return False, ""


def unlock_command(run_id: str, inventory: str | None) -> str:
    """The command that releases ``run_id``'s locks: ``fleetbench unlock -i INV --run ID``."""
    return (f"fleetbench unlock -i {shlex.quote(inventory) if inventory else 'INV'} "
            f"--run {shlex.quote(run_id)}")


def describe(lock: HostLock, inventory: str | None = None) -> str:
    """One sentence for a person: who holds the host, whether that run is dead, the fix."""
    held = f"in use by fleetbench run {lock.run_id} (since {lock.since}"
    held += f", {lock.controller.describe()})" if lock.controller else ")"
    fix = unlock_command(lock.run_id, inventory)
    if lock.stale:
        return f"{held}, which is stale: {lock.why}; `{fix}` removes its containers and lock"
    if lock.why:
        return f"{held}; {lock.why}: wait for it, or if it is dead, `{fix}`"
    return f"{held}, which is running on this controller: wait for it to end"


def inventory_of(sources: object) -> str | None:
    """The inventory to name in a fix, from Ansible's ``ansible_inventory_sources``."""
    if isinstance(sources, str):
        return sources
    if isinstance(sources, Sequence) and len(sources) == 1 and isinstance(sources[0], str):
        return sources[0]
    return None
