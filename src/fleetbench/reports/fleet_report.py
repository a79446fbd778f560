"""The fleet report of a run and the data every output of it shares.

:class:`FleetReport` is what ``fleetbench report build`` produced: the collected run
(:mod:`fleetbench.reports.fleet`), its analysis (:mod:`fleetbench.reports.analysis`) and the
files written. The functions here derive what several outputs show alike: the hosts
table, the missing and outlier groups, a slot's GPU serials, the roofline note, and what
the HTML and Markdown templates both receive.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Final

from fleetbench import __version__
from fleetbench.history import TrendPoint
from fleetbench.reports.analysis import FleetAnalysis
from fleetbench.reports.fleet import FleetRun, HostRecord
from fleetbench.reports.plausibility import describe_fraction
from fleetbench.reports.records import METRIC_UNITS, Configuration
from fleetbench.reports.stats import configuration_dict, describe

REPORT_DIR = "report"
#: Output formats of ``report build`` and the file each writes under ``RUN/report/``.
OUTPUT_FILES: Final = {
    "html": "index.html",
    "csv": "summary.csv",
    "json": "summary.json",
    "md": "summary.md",
}
DEFAULT_FORMATS = ("html", "csv", "json")


@dataclass(frozen=True)
class FleetReport:
    """What ``report build`` produced: the run, its analysis and the files written."""

    run: FleetRun
    analysis: FleetAnalysis
    trends: tuple[TrendPoint, ...] = ()
    history_db: Path | None = None
    outputs: Mapping[str, Path] = field(default_factory=dict)

    @property
    def gate_failed(self) -> bool:
        """True when a gate failed (the CLI exits 1)."""
        return self.analysis.gate.failed

    @cached_property
    def members(self) -> tuple[tuple[str, str], ...]:
        """Every host/slot with a result or expected to have one, hosts in run order.

        Computed once: the charts, tables and data files all walk the fleet by it.
        """
        order = {host.name: i for i, host in enumerate(self.run.hosts)}
        seen: dict[tuple[str, str], None] = {}
        for row in self.run.rows:
            seen[(row.host, row.slot)] = None
        for item in self.analysis.missing:
            seen[(item.host, item.slot)] = None

        def key(member: tuple[str, str]) -> tuple[int, int, str]:
            digits = member[1].removeprefix("slot")
            return (order.get(member[0], len(order)),
                    int(digits) if digits.isdigit() else 0, member[1])

        return tuple(sorted(seen, key=key))

    @cached_property
    def table(self) -> tuple[HostRecord, ...]:
        """The canonical table by host (run order), slot, then configuration (statistics
        order): the rows of ``summary.csv`` and ``summary.json``, sorted once for both."""
        hosts = {host.name: i for i, host in enumerate(self.run.hosts)}
        slots = {member: i for i, member in enumerate(self.members)}
        position = {s.configuration: i for i, s in enumerate(self.analysis.stats)}.get
        # sorted(rows, key=(host, slot, configuration)), a slot's rows sorted on their own:
        # every host slot has its own (host, slot) position, and its rows come together.
        blocks: dict[tuple[int, int], list[HostRecord]] = {}
        host: str | None = None
        slot: str | None = None
        block: list[HostRecord] = []
        for row in self.run.rows:
            if row.slot != slot or row.host != host:
                host, slot = row.host, row.slot
                block = blocks.setdefault(
                    (hosts.get(host, len(hosts)), slots.get((host, slot), 0)), [])
            block.append(row)
        ordered: list[HostRecord] = []
        for key in sorted(blocks):
            ordered.extend(sorted(blocks[key],
                                  key=lambda r: position(r.record.configuration, 0)))
        return tuple(ordered)


def median_of(values: Sequence[float]) -> float | None:
    """The median of sorted ``values`` (None when there are none)."""
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def host_rows(report: FleetReport) -> list[dict[str, Any]]:
    """Per host: status, slots, facts and finding counts (the hosts table)."""
    analysis = report.analysis
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for outlier in analysis.outliers:
        counts[outlier.host]["outliers"] += 1
    for item in analysis.missing:
        counts[item.host]["missing"] += 1
    for row in analysis.failures:
        counts[row.host]["failed"] += 1
    for violation in analysis.violations:
        if violation.host:
            counts[violation.host]["violations"] += 1
    rows = []
    for host in report.run.hosts:
        ran = [s for s in host.slots if s.ran]
        rows.append({
            "host": host.name,
            "status": host.status,
            "ok": host.ok,
            "reason": host.reason,
            "slots": {s.name: s.status for s in host.slots},
            "slots_ok": sum(1 for s in host.slots if s.status == "ok"),
            "slots_ran": len(ran),
            "slots_not_ok": [f"{s.name}: {s.status}" for s in host.slots if s.status != "ok"],
            "image_digest": host.image_digest,
            "mad_commit": host.mad_commit,
            "compute_partition": host.compute_partition,
            "memory_partition": host.memory_partition,
            "logical_gpus": host.logical_gpus,
            "rocm_version": host.rocm_version,
            "driver_version": host.driver_version,
            "gpu_model": host.gpu_model,
            "slot_gpus": {s.name: [{"serial": g.serial, "bdf": g.bdf, "unique_id": g.unique_id,
                                    "partition": g.partition} for g in s.gpus]
                          for s in host.slots if s.gpus},
            "preflight_problems": list(host.preflight_problems),
            "preflight_warnings": list(host.preflight_warnings),
            "outliers": counts[host.name]["outliers"],
            "missing": counts[host.name]["missing"],
            "failed": counts[host.name]["failed"],
            "violations": counts[host.name]["violations"],
        })
    return rows


def roofline_text(report: FleetReport, configuration: Configuration) -> str:
    """``61 % of HBM roofline`` for the fleet median of ``configuration``, else a dash."""
    plausibility = report.analysis.plausibility
    found = None if plausibility is None else plausibility.median_fraction.get(configuration)
    return "–" if found is None else describe_fraction(*found)


def slot_serials(report: FleetReport, host: str, slot: str) -> str:
    """The GPU serials a host slot used (``S1, S2``), ``?`` when not recorded."""
    info = report.run.host(host)
    found = None if info is None else info.slot(slot)
    return ", ".join(found.serials) if found is not None and found.serials else "?"


@dataclass(frozen=True)
class MissingGroup:
    """The configurations one host/slot lacks; ``every``: all of them (it measured nothing,
    e.g. its host was unreachable), so the page need not list them."""

    member: str
    configurations: tuple[str, ...]
    every: bool = False


def missing_groups(report: FleetReport) -> list[MissingGroup]:
    """Missing results grouped per host/slot (one line per slot instead of per result), in
    the fleet's host and slot order."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in report.analysis.missing:
        groups[(item.host, item.slot)].append(describe(item.configuration))
    position = {member: index for index, member in enumerate(report.members)}
    configurations = len(report.analysis.stats)
    return [MissingGroup(f"{host}/{slot}", tuple(groups[(host, slot)]),
                         every=len(groups[(host, slot)]) == configurations)
            for host, slot in sorted(groups, key=lambda m: position.get(m, len(position)))]


@dataclass(frozen=True)
class OutlierGroup:
    """The outliers of one host/slot: how many and how far off."""

    member: str
    count: int
    typical: float
    worst: float
    worst_configuration: str
    serials: str = "?"


def outlier_groups(report: FleetReport) -> list[OutlierGroup]:
    """Outliers per host/slot: a slow slot is one line, not one per configuration."""
    groups: dict[tuple[str, str], list[tuple[float, Configuration]]] = defaultdict(list)
    for outlier in report.analysis.outliers:
        groups[(outlier.host, outlier.slot)].append((outlier.worse_by, outlier.configuration))
    result = []
    for (host, slot), items in groups.items():
        gaps = sorted(gap for gap, _ in items)
        worst_gap, worst = max(items, key=lambda item: item[0])
        result.append(OutlierGroup(f"{host}/{slot}", len(items), median_of(gaps) or 0.0,
                                   worst_gap, describe(worst), slot_serials(report, host, slot)))
    return result


def template_context(report: FleetReport, formats: Sequence[str]) -> dict[str, Any]:
    """What both templates, the HTML page and the Markdown summary, use (the Markdown
    summary draws no chart)."""
    analysis = report.analysis
    return {
        "report": report,
        "run": report.run,
        "analysis": analysis,
        "hosts": host_rows(report),
        "stats": analysis.stats,
        "describe": describe,
        "config": configuration_dict,
        "unit_of": lambda c: METRIC_UNITS[c[-1]],
        "missing_groups": missing_groups(report),
        "roofline_text": functools.partial(roofline_text, report),
        "serials": functools.partial(slot_serials, report),
        "outlier_groups": outlier_groups(report),
        "files": {name: OUTPUT_FILES[name] for name in formats if name != "html"},
        "version": __version__,
        "generated": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
    }
