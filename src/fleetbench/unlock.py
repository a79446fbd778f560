"""``fleetbench unlock``: release a dead run's hosts.

A run that died without cleaning up (its controller killed or rebooted) leaves its lock,
its token file and its containers on the hosts it held; later runs skip those hosts
(``skipped:locked``) until an operator releases them. Releasing is ``playbooks/cleanup.yml``,
the same clean-up every run ends with: on each host it removes the run's containers
(labels ``fleetbench.run`` and ``fleetbench.host``), then its lock folder with the token
file inside — the lock only where that run holds it; another run's lock is left alone and
reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench import roleargs
from fleetbench.errors import BadInput
from fleetbench.inventory import Fleet
from fleetbench.role_results import role_result
from fleetbench.runner import PlaybookRun, TaskResult, run_playbook

PLAYBOOK = "cleanup"
#: The role whose result fact (``cleanup_result``) says what was removed from a host.
ROLE = "cleanup"
DEFAULT_MAX_FORKS = 100
# What fleetbench's run ids look like (20261127T041500Z-1a2b), and what a Docker label
# filter and a folder name take without surprises.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

RELEASED = "released"  # the run's lock (and token) removed
NOT_LOCKED = "not-locked"  # no lock on the host
HELD_BY_OTHER = "held-by-other"  # another run holds the host: left alone
FAILED = "failed"
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class HostUnlock:
    """What ``unlock`` did on one host."""

    name: str
    status: str  # released | not-locked | held-by-other | failed | unreachable
    removed: tuple[str, ...] = ()  # the run's containers removed (ids)
    held_by: str | None = None  # the other run holding the host
    message: str = ""

    @property
    def ok(self) -> bool:
        """True unless the host failed or could not be reached."""
        return self.status not in {FAILED, UNREACHABLE}

    def contract(self) -> dict[str, Any]:
        """The per-host object of ``fleetbench unlock --json``."""
        return {"status": self.status, "containers_removed": list(self.removed),
                "held_by": self.held_by, "message": self.message}


@dataclass(frozen=True)
class UnlockReport:
    """Every host, in inventory order."""

    run_id: str
    hosts: tuple[HostUnlock, ...]

    @property
    def ok(self) -> bool:
        """True when every host was reached and cleaned."""
        return all(h.ok for h in self.hosts)

    def contract(self) -> dict[str, Any]:
        """``{"run_id", "hosts": {NAME: {...}}}`` as ``fleetbench unlock --json`` prints it."""
        return {"run_id": self.run_id, "hosts": {h.name: h.contract() for h in self.hosts}}


def validate_run_id(run_id: str) -> str:
    """``run_id`` when it can be a fleetbench run id; BadInput (nothing started) otherwise."""
    if not _RUN_ID.fullmatch(run_id or ""):
        raise BadInput(
            f"--run {run_id!r} is not a run id — pass the id fleetbench check shows in a "
            "host's lock (like 20261127T041500Z-1a2b: letters, digits, '.', '_', '-')")
    return run_id


def deciding_result(results: Sequence[TaskResult]) -> TaskResult | None:
    """The result that decides a host: SSH's refusal, the task that set the cleanup role's
    result fact, or else the task that failed the host (with what it removed before it
    failed). Which module did it does not matter."""
    for result in results:
        if result.outcome == "unreachable":
            return result
        done = role_result(result)
        if done is not None and done.step == ROLE:
            return result
    return next((r for r in results if r.outcome == "failed" and not r.ignored), None)


def host_unlock(name: str, run_id: str, result: TaskResult | None) -> HostUnlock:
    """What the result that decides one host (:func:`deciding_result`) says (pure)."""
    if result is None:
        return HostUnlock(name, FAILED, message="the clean-up never ran on this host")
    if result.outcome == "unreachable":
        return HostUnlock(name, UNREACHABLE, message=result.message or "unreachable")
    done = role_result(result)
    res: Mapping[str, Any] = done.data if done is not None else result.result
    removed = tuple(str(c) for c in res.get("removed") or ())
    holder = res.get("holder") or {}
    other = str(holder.get("run_id") or "?") if holder and not res.get("released") else None
    if result.outcome != "ok":
        return HostUnlock(name, FAILED, removed, other,
                          result.message or "the clean-up failed on this host")
    gone = f"; {len(removed)} container(s) of run {run_id} removed" if removed else ""
    if res.get("released"):
        return HostUnlock(name, RELEASED, removed,
                          message=f"lock and token file of run {run_id} removed{gone}")
    if other is not None:
        return HostUnlock(name, HELD_BY_OTHER, removed, other,
                          message=f"held by run {other}, not {run_id}: its lock left alone{gone}")
    return HostUnlock(name, NOT_LOCKED, removed, message=f"not locked{gone}")


def report_from_run(run_id: str, hosts: tuple[str, ...], run: PlaybookRun) -> UnlockReport:
    """An UnlockReport for ``hosts`` from the results of ``cleanup.yml``."""
    return UnlockReport(run_id=run_id, hosts=tuple(
        host_unlock(name, run_id, deciding_result(run.for_host(name))) for name in hosts))


def unlock_fleet(fleet: Fleet, run_id: str, *, forks: int | None = None,
                 on_host: Callable[[HostUnlock], None] | None = None) -> UnlockReport:
    """Remove ``run_id``'s containers, token file and lock from every host of ``fleet``.

    BadInput (nothing started) for a run id fleetbench cannot have made or a host variable
    that fails the cleanup role's argument spec. Never raises for a host.
    """
    validate_run_id(run_id)
    extravars = {"fleetbench_run_id": run_id}
    roleargs.validate([PLAYBOOK], fleet.host_vars, extravars)

    def on_result(result: TaskResult) -> None:
        if on_host is not None and deciding_result((result,)) is result:
            on_host(host_unlock(result.host, run_id, result))

    run = run_playbook(PLAYBOOK, fleet.inventory, limit=fleet.limit, extravars=extravars,
                       forks=forks or min(len(fleet.hosts), DEFAULT_MAX_FORKS),
                       on_result=on_result, arguments_checked=True)
    return report_from_run(run_id, fleet.hosts, run)
