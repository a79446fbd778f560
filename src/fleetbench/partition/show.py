"""``fleetbench partition show``: the partition verdict of every host and the fleet's drift.

It runs the same read-only probes as ``fleetbench check`` (``playbooks/check.yml``) and
keeps the partition part of each verdict: what each source said, logical and physical GPU
counts, the partition memory KFD reports, problems and warnings. A host is ``ok`` when its
partition matches the mode its inventory group expects; Docker and disk findings belong
to ``fleetbench check``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fleetbench.check import CheckReport, HostCheck, check_fleet
from fleetbench.hostkeys import HOSTKEY_STATUS, UNREACHABLE
from fleetbench.inventory import Fleet

UNKNOWN = "unknown"
# Hosts that were never probed: SSH did not get through, or refused the host's key.
_NOT_REACHED = frozenset({UNREACHABLE, HOSTKEY_STATUS})


@dataclass(frozen=True)
class HostPartition:
    """One host's partition as ``partition show`` reports it.

    ``status``: ``ok`` (matches its expected mode), ``failed`` (does not, or the sources
    cannot tell), ``unreachable`` or ``failed:hostkey`` (SSH refused its host key).
    """

    name: str
    status: str
    expected: str | None = None
    compute_partition: str | None = None
    memory_partition: str | None = None
    logical_gpus: int | None = None
    physical_gpus: int | None = None
    partition_memory_bytes: int | None = None
    rocm_version: str | None = None
    driver_version: str | None = None
    sources: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def partition(self) -> str:
        """``CPX/NPS4`` (``?`` for what is unknown)."""
        return f"{self.compute_partition or '?'}/{self.memory_partition or '?'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the per-host object of ``partition show --json``)."""
        return {
            "status": self.status,
            "expected": self.expected,
            "compute_partition": self.compute_partition,
            "memory_partition": self.memory_partition,
            "logical_gpus": self.logical_gpus,
            "physical_gpus": self.physical_gpus,
            "partition_memory_bytes": self.partition_memory_bytes,
            "rocm_version": self.rocm_version,
            "driver_version": self.driver_version,
            "sources": {name: dict(source) for name, source in self.sources.items()},
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class FleetDrift:
    """How many reachable hosts show each ROCm version, driver version and mode."""

    rocm_version: Mapping[str, int]
    driver_version: Mapping[str, int]
    compute_partition: Mapping[str, int]
    memory_partition: Mapping[str, int]
    unreachable: int = 0

    @property
    def drifted(self) -> tuple[str, ...]:
        """The facts on which the reachable hosts do not all agree."""
        facts = {
            "rocm_version": self.rocm_version,
            "driver_version": self.driver_version,
            "compute_partition": self.compute_partition,
            "memory_partition": self.memory_partition,
        }
        return tuple(name for name, counts in facts.items() if len(counts) > 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "rocm_version": dict(self.rocm_version),
            "driver_version": dict(self.driver_version),
            "compute_partition": dict(self.compute_partition),
            "memory_partition": dict(self.memory_partition),
            "unreachable": self.unreachable,
            "drifted": list(self.drifted),
        }


@dataclass(frozen=True)
class PartitionShow:
    """Every host's partition, in inventory order, and the fleet's drift."""

    hosts: tuple[HostPartition, ...]
    drift: FleetDrift

    @property
    def ok(self) -> bool:
        """True when every host matches its expected partition."""
        return all(h.status == "ok" for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "hosts": {NAME: {...}}, "drift": {...}}`` as ``--json`` prints it."""
        return {
            "ok": self.ok,
            "hosts": {h.name: h.to_dict() for h in self.hosts},
            "drift": self.drift.to_dict(),
        }


def host_partition(check: HostCheck) -> HostPartition:
    """The partition part of one host's check."""
    judged = check.verdict
    if judged is None or not isinstance(judged.get("partition"), Mapping):
        status = check.status if check.status in _NOT_REACHED else "failed"
        return HostPartition(check.name, status, problems=check.problems)
    verdict: Mapping[str, Any] = judged["partition"]
    expected = verdict.get("expected") or {}
    return HostPartition(
        name=check.name,
        status="ok" if verdict.get("ok") else "failed",
        expected=f"{expected.get('compute')}/{expected.get('memory')}" if expected else None,
        compute_partition=verdict.get("compute_partition"),
        memory_partition=verdict.get("memory_partition"),
        logical_gpus=verdict.get("logical_gpus"),
        physical_gpus=verdict.get("physical_gpus"),
        partition_memory_bytes=verdict.get("partition_memory_bytes"),
        rocm_version=judged.get("rocm_version"),
        driver_version=judged.get("driver_version"),
        sources=MappingProxyType(dict(verdict.get("sources") or {})),
        problems=tuple(verdict.get("problems") or ()),
        warnings=tuple(verdict.get("warnings") or ()),
    )


def _count(values: Iterable[str | None]) -> Mapping[str, int]:
    counts = Counter(value or UNKNOWN for value in values)
    # Most common first, so the odd ones out come last.
    return MappingProxyType(dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))


def fleet_drift(hosts: Iterable[HostPartition]) -> FleetDrift:
    """Counts per ROCm version, driver version and mode over the hosts that answered."""
    every = list(hosts)
    seen = [h for h in every if h.status not in _NOT_REACHED]
    return FleetDrift(
        rocm_version=_count(h.rocm_version for h in seen),
        driver_version=_count(h.driver_version for h in seen),
        compute_partition=_count(h.compute_partition for h in seen),
        memory_partition=_count(h.memory_partition for h in seen),
        unreachable=len(every) - len(seen),
    )


def show_report(report: CheckReport) -> PartitionShow:
    """A :class:`PartitionShow` from a check of the fleet."""
    hosts = tuple(host_partition(h) for h in report.hosts)
    return PartitionShow(hosts=hosts, drift=fleet_drift(hosts))


def show_partitions(
    fleet: Fleet,
    *,
    forks: int | None = None,
    on_host: Callable[[HostPartition], None] | None = None,
    arguments_checked: bool = False,
) -> PartitionShow:
    """Probe every host of ``fleet`` and report its partition (``arguments_checked``: see
    :func:`fleetbench.check.check_fleet`)."""

    def on_check(check: HostCheck) -> None:
        if on_host is not None:
            on_host(host_partition(check))

    return show_report(check_fleet(fleet, forks=forks, on_host=on_check,
                                   arguments_checked=arguments_checked))
