"""``fleetbench partition apply``: set a partition on a fleet, batch by batch (partition.yml).

Every host ends with one status:

- ``ok`` — the host shows the target partition (``changed`` says whether anything was set);
- ``skipped:busy`` — a change was needed but GPU processes or containers run: untouched;
- ``skipped:roll-stopped`` — an earlier host failed, so the roll stopped before anything
  changed here;
- ``failed:<step>`` — ``probe`` (cannot be planned), ``compute``, ``memory``, ``reload``
  (the driver or the tool refused; later steps were not run), ``verify`` (set, but the
  partition does not show), ``unverified`` (set, but the roll stopped before it was read
  back: run ``fleetbench partition show``);
- ``unreachable``, or ``failed:hostkey`` when SSH refused the host's key (one line with
  the fix instead of SSH's banner).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench import roleargs
from fleetbench.errors import BadInput
from fleetbench.hostkeys import unreachable_status
from fleetbench.inventory import Fleet
from fleetbench.partition.verdict import ExpectedPartition
from fleetbench.role_results import RoleResult, role_results
from fleetbench.runner import PlaybookRun, TaskResult, run_playbook

PLAYBOOK = "partition"
#: The role whose result fact (``partition_result``) says what it found and did on a host:
#: ``data.before`` (the probe before any change), ``data.applied`` (the set commands),
#: ``data.verified`` (the probe after), ``data.failure`` (the failed task, when one did).
ROLE = "partition"
MAX_FORKS = 100

Serial = int | str


def parse_serial(text: str | int) -> Serial:
    """``--serial``: a whole number of hosts per batch (>= 1) or a percentage ``"25%"``."""
    value = str(text).strip()
    if re.fullmatch(r"\d+", value) and int(value) >= 1:
        return int(value)
    percent = re.fullmatch(r"(\d+(?:\.\d+)?)%", value)
    if percent and 0 < float(percent.group(1)) <= 100:
        return value
    raise BadInput(
        f"--serial {text!r} is not a batch size — give a number of hosts (1 or more) or a "
        "percentage of the fleet such as 25%"
    )


def batch_size(serial: Serial, hosts: int) -> int:
    """Hosts in the first batch, as Ansible computes it (a percentage rounds down, min 1)."""
    if isinstance(serial, int):
        return max(1, min(serial, hosts))
    share = float(serial.rstrip("%")) / 100
    return max(1, min(hosts, math.floor(hosts * share)))


@dataclass(frozen=True)
class HostApply:
    """What ``partition apply`` did on one host."""

    name: str
    status: str
    changed: bool = False
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    steps: tuple[Mapping[str, Any], ...] = ()
    processes: tuple[Mapping[str, Any], ...] = ()
    containers: tuple[Mapping[str, Any], ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def touched(self) -> bool:
        """True when fleetbench ran a set or reload command on the host."""
        return bool(self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the per-host object of ``partition apply --json``)."""
        return {
            "status": self.status,
            "changed": self.changed,
            "before": dict(self.before),
            "after": dict(self.after),
            "steps": [dict(s) for s in self.steps],
            "processes": [dict(p) for p in self.processes],
            "containers": [dict(c) for c in self.containers],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ApplyReport:
    """The roll: its target, batch size, every host in inventory order."""

    target: ExpectedPartition
    serial: Serial
    hosts: tuple[HostApply, ...]

    @property
    def ok(self) -> bool:
        """True when every host ended ``ok``."""
        return all(h.status == "ok" for h in self.hosts)

    @property
    def roll_stopped(self) -> bool:
        """True when a failure stopped the roll before every host had its turn."""
        return any(h.status in ("skipped:roll-stopped", "failed:unverified") for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        """``partition apply --json``."""
        return {
            "ok": self.ok,
            "target": self.target.label,
            "serial": self.serial,
            "roll_stopped": self.roll_stopped,
            "hosts": {h.name: h.to_dict() for h in self.hosts},
        }


def _before(probe: Mapping[str, Any]) -> dict[str, Any]:
    verdict = probe.get("verdict") or {}
    return {
        "compute_partition": verdict.get("compute_partition"),
        "memory_partition": verdict.get("memory_partition"),
        "logical_gpus": verdict.get("logical_gpus"),
        "planned": [f"{s['kind']} {s['mode']}" for s in (probe.get("plan") or {}).get("steps", [])],
    }


def _after(probe: Mapping[str, Any]) -> dict[str, Any]:
    verdict = probe.get("verdict") or {}
    return {
        "compute_partition": verdict.get("compute_partition"),
        "memory_partition": verdict.get("memory_partition"),
        "logical_gpus": verdict.get("logical_gpus"),
        "partition_memory_bytes": verdict.get("partition_memory_bytes"),
    }


def _ran(result: Mapping[str, Any]) -> bool:
    """True when a registered task result in the role's fact is from a task that ran."""
    return bool(result) and not result.get("skipped")


def host_apply(name: str, results: Sequence[TaskResult], stopped: bool) -> HostApply:
    """Turn one host's results in ``partition.yml`` into its status: the role's result
    fact decides (see :data:`ROLE`); a host without one was cut short.

    ``stopped``: the roll stopped (some host failed), so a host without a result fact was
    cut short by it rather than lost.
    """
    done: RoleResult | None = role_results(results).get(ROLE)
    data: Mapping[str, Any] = done.data if done is not None else {}
    probe: Mapping[str, Any] = data.get("before") or {}
    applied: Mapping[str, Any] = data.get("applied") or {}
    verified: Mapping[str, Any] = data.get("verified") or {}
    steps = tuple(applied.get("steps") or ()) if _ran(applied) else ()
    warnings = [*(probe.get("warnings") or ())]
    if _ran(applied):
        warnings += applied.get("warnings") or ()
    if _ran(verified):
        warnings += (verified.get("verdict") or {}).get("warnings") or ()

    def host(status: str, *problems: str) -> HostApply:
        return HostApply(
            name,
            status,
            changed=bool(steps),
            before=_before(probe) if _ran(probe) and not probe.get("failed") else {},
            after=_after(verified) if _ran(verified) else {},
            steps=steps,
            processes=tuple(probe.get("processes") or ()),
            containers=tuple(probe.get("containers") or ()),
            problems=tuple(p for p in problems if p),
            warnings=tuple(dict.fromkeys(str(w) for w in warnings)),
        )

    unreachable = [r for r in results if r.outcome == "unreachable"]
    if unreachable:
        return host(*unreachable_status(name, unreachable[-1].message or "unreachable"))
    if done is None:
        return _cut_short(name, results, stopped)
    if done.status != "ok":
        failure: Mapping[str, Any] = data.get("failure") or {}
        message = str(failure.get("msg") or "")
        if probe.get("failed") or not _ran(probe):
            return host("failed:probe", message or "the partition probe failed")
        if applied.get("failed"):
            return host(f"failed:{applied.get('failed_step') or 'apply'}", message)
        if verified.get("failed"):
            return host("failed:verify", message)
        return host("failed:task", message)  # a task of the role besides those three
    if probe.get("refused"):
        return host("skipped:busy", str(probe.get("refusal") or "the GPUs are in use"))
    if not _ran(verified):
        return host("failed:verify", "the partition was never read back")
    return host("ok")


def _cut_short(name: str, results: Sequence[TaskResult], stopped: bool) -> HostApply:
    """A host whose role never said how it ended: the roll stopped first, or it never ran."""
    failed = [r for r in results if r.outcome == "failed" and not r.ignored]
    if failed:  # before the role could say anything (its arguments, say)
        return HostApply(name, "failed:task", problems=(failed[0].message or "failed",))
    if any(r.outcome == "ok" and r.result.get("changed") for r in results):
        return HostApply(name, "failed:unverified", changed=True, problems=(
            "the partition was set, but the roll stopped before it was read back — run "
            "`fleetbench partition show`",))
    if stopped:
        return HostApply(name, "skipped:roll-stopped", problems=(
            "the roll stopped before this host's turn: nothing was changed",))
    return HostApply(name, "failed:probe",
                     problems=("the partition probe never ran on this host",))


def report_from_run(hosts: Sequence[str], target: ExpectedPartition, serial: Serial,
                    run: PlaybookRun) -> ApplyReport:
    """An :class:`ApplyReport` for ``hosts`` from the results of ``partition.yml``."""
    stopped = any(r.outcome in ("failed", "unreachable") and not r.ignored for r in run.results)
    return ApplyReport(
        target=target,
        serial=serial,
        hosts=tuple(host_apply(h, run.for_host(h), stopped) for h in hosts),
    )


def apply_partitions(
    fleet: Fleet,
    target: ExpectedPartition,
    *,
    serial: Serial = 1,
    on_host: Callable[[HostApply], None] | None = None,
    on_step: Callable[[str, str], None] | None = None,
    arguments_checked: bool = False,
) -> ApplyReport:
    """Set ``target`` on every host of ``fleet``, batch by batch.

    Nothing is confirmed here: the caller asks the admin first. BadInput (nothing started)
    for a bad serial or a host variable that fails the partition role's argument spec,
    unless the caller already ran :func:`validate_inputs` (``arguments_checked``); host
    failures are results.
    """
    serial = parse_serial(serial)
    seen: dict[str, list[TaskResult]] = {}
    finished: set[str] = set()

    def on_result(result: TaskResult) -> None:
        # Progress only: a host is final once its role says how it ended, or unreachable.
        seen.setdefault(result.host, []).append(result)
        if on_host is None or result.host in finished:
            return
        if result.outcome == "unreachable" or ROLE in role_results((result,)):
            finished.add(result.host)
            on_host(host_apply(result.host, seen[result.host], stopped=False))

    if not arguments_checked:
        validate_inputs(fleet, target, serial)
    run = run_playbook(
        PLAYBOOK,
        fleet.inventory,
        limit=fleet.limit,
        extravars=_extravars(target, serial),
        arguments_checked=True,
        forks=min(batch_size(serial, len(fleet.hosts)), MAX_FORKS),
        on_result=on_result,
        on_task_start=on_step,
    )
    return report_from_run(fleet.hosts, target, serial, run)


def validate_inputs(fleet: Fleet, target: ExpectedPartition, serial: Serial) -> None:
    """BadInput when a host's variables fail the partition role's argument spec with the
    values an apply of ``target`` gives it (the command checks before it asks to confirm)."""
    roleargs.validate([PLAYBOOK], fleet.host_vars, _extravars(target, serial))


def _extravars(target: ExpectedPartition, serial: Serial) -> dict[str, Any]:
    return {
        "partition_compute": target.compute,
        "partition_memory": target.memory,
        "partition_logical_per_physical": target.logical_per_physical or 0,
        "partition_missing_partition_is_error": target.missing_partition_is_error,
        "partition_serial": serial,
    }
