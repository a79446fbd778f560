"""The gate of a run: whether ``report build`` (and ``fleetbench run``) exits 1, and why.

**Gate** (exit 1 when it fails): a host that did not end ``ok``, a planned result
missing, a threshold violated, a regression against the baseline, or no benchmark result
at all; outliers only with ``fail_on_outliers``. Failed measurements (value null) and
drift are findings shown in the report. So ``report build`` on its own (a nightly job, an
AWX workflow) fails exactly where ``fleetbench run`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.errors import BadInput
from fleetbench.reports.fleet import HOST_LEVEL_SLOT, FleetRun
from fleetbench.reports.plausibility import Implausible
from fleetbench.reports.records import METRIC_UNITS, Configuration
from fleetbench.reports.stats import (
    Comparison,
    MissingResult,
    Outlier,
    describe,
    expected_slots,
    names_shown,
    short_label,
)
from fleetbench.reports.thresholds import ThresholdViolation


@dataclass(frozen=True)
class GateOptions:
    """Knobs of the comparison and of what fails the gate."""

    regression_tolerance: float = 0.05
    outlier_mads: float = 3.0
    outlier_min_gap: float = 0.05
    fail_on_outliers: bool = False

    def __post_init__(self) -> None:
        for name in ("regression_tolerance", "outlier_mads", "outlier_min_gap"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise BadInput(f"{name.replace('_', ' ')} {value!r} must be a number ≥ 0")


@dataclass(frozen=True)
class HostNotOk:
    """A host of the run that did not end ``ok``: it fails the gate."""

    host: str
    status: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"host": self.host, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class MissingSlot:
    """How many planned results one host slot lacks (of how many the fleet measured)."""

    host: str
    slot: str
    missing: int
    of: int
    configurations: tuple[str, ...] = ()

    @property
    def member(self) -> str:
        """``host/slot``, or the host alone when no slot of it is known."""
        return self.host if self.slot == HOST_LEVEL_SLOT else f"{self.host}/{self.slot}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"host": self.host, "slot": self.slot, "missing": self.missing, "of": self.of}


@dataclass(frozen=True)
class Gate:
    """The verdict: failed or not, a headline per kind of failure, and every reason.

    ``hosts_not_ok`` and ``missing_slots`` say which hosts and planned results failed it.
    """

    failed: bool
    reasons: tuple[str, ...]
    headlines: tuple[str, ...] = ()
    hosts_not_ok: tuple[HostNotOk, ...] = ()
    missing_slots: tuple[MissingSlot, ...] = ()

    @property
    def missing_results(self) -> int:
        """Planned results missing, over every host slot."""
        return sum(slot.missing for slot in self.missing_slots)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"failed": self.failed, "headlines": list(self.headlines),
                "reasons": list(self.reasons),
                "hosts_not_ok": [h.to_dict() for h in self.hosts_not_ok],
                "missing_results": self.missing_results,
                "missing_slots": [m.to_dict() for m in self.missing_slots]}


#: Configurations named per host slot in a missing-results reason.
_CONFIGURATIONS_NAMED = 3


def hosts_not_ok(run: FleetRun) -> list[HostNotOk]:
    """Hosts that did not end ``ok``, in run order, with the first line of their reason."""
    return [HostNotOk(host.name, host.status,
                      host.reason.splitlines()[0].strip() if host.reason.strip() else "")
            for host in run.hosts if not host.ok]


def missing_slots(missing: Sequence[MissingResult], configurations: int,
                  order: Sequence[tuple[str, str]] = ()) -> list[MissingSlot]:
    """Missing results per host slot, in ``order`` (host slots), else as they first appear."""
    groups: dict[tuple[str, str], list[Configuration]] = {}
    for item in missing:
        groups.setdefault((item.host, item.slot), []).append(item.configuration)
    position = {member: index for index, member in enumerate(order)}
    ordered = sorted(groups, key=lambda member: position.get(member, len(position)))
    return [MissingSlot(host, slot, len(groups[(host, slot)]), configurations,
                        tuple(short_label(c)
                              for c in groups[(host, slot)][:_CONFIGURATIONS_NAMED]))
            for host, slot in ordered]


def gate(
    run: FleetRun,
    violations: Sequence[ThresholdViolation],
    regressions: Sequence[Comparison],
    outliers: Sequence[Outlier],
    tolerance: float,
    *,
    fail_on_outliers: bool,
    missing: Sequence[MissingResult] = (),
    configurations: int = 0,
    implausible: Sequence[Implausible] = (),
    changes: Sequence[str] = (),
) -> Gate:
    """The gate: hosts not ok, planned results missing (of ``configurations`` per slot),
    thresholds, regressions, implausible results, no results at all, outliers when asked."""
    not_ok = hosts_not_ok(run)
    reasons = [f"host not ok — {h.host}: {h.status}" + (f" ({h.reason})" if h.reason else "")
               for h in not_ok]
    headlines = []
    if not_ok:
        headlines.append(f"{_count(len(not_ok), 'host')} not ok: "
                         f"{names_shown([f'{h.host} {h.status}' for h in not_ok])}")
    lacking = missing_slots(missing, configurations, expected_slots(run) if missing else ())
    for slot in lacking:
        named = "; ".join(slot.configurations)
        more = " …" if slot.missing > len(slot.configurations) else ""
        reasons.append(f"missing results — {slot.member}: {slot.missing} of {slot.of} "
                       f"planned results ({named}{more})")
    if lacking:
        headlines.append(f"{_count(len(missing), 'planned result')} missing on "
                         f"{_count(len(lacking), 'host slot')} "
                         f"({names_shown([slot.member for slot in lacking])})")
    reasons += [f"threshold violated — {v.text}" for v in violations]
    if violations:
        rules = len({v.threshold for v in violations})
        headlines.append(f"{_count(len(violations), 'threshold violation')} "
                         f"({_count(rules, 'rule')} broken)")
    reasons += [
        f"regression — {describe(c.configuration)}: fleet median {c.median:g} vs baseline "
        f"{c.baseline_median:g} ({c.worse_by:.1%} worse, tolerance {tolerance:.0%})"
        for c in regressions
    ]
    if regressions:
        worst = max(regressions, key=lambda c: c.worse_by)
        headlines.append(
            f"{_count(len(regressions), 'regression')} against the baseline: fleet medians "
            f"up to {worst.worse_by:.1%} worse (tolerance {tolerance:.0%}; worst "
            f"{describe(worst.configuration)})"
            + (f"; changed since the baseline: {'; '.join(changes)}" if changes else
               "; nothing recorded changed since the baseline")
        )
    reasons += [
        f"implausible — {i.host}/{i.slot}: {describe(i.configuration)} = {i.value:g} "
        f"{METRIC_UNITS[i.configuration[-1]]}, {i.fraction:.0%} of the {i.bound.roof} roofline "
        f"of {i.hardware[0]} {i.hardware[1]}/{i.hardware[2]} tp{i.configuration[2]} "
        f"({'at least' if i.bound.kind == 'lower' else 'at most'} {i.bound.value:.4g}): "
        "misconfigured host or misread report"
        for i in implausible
    ]
    if implausible:
        members = sorted({f"{i.host}/{i.slot}" for i in implausible})
        headlines.append(f"{_count(len(implausible), 'implausible result')} beyond the "
                         f"roofline on {_count(len(members), 'host slot')} "
                         f"({names_shown(members)})")
    if not any(row.record.value is not None for row in run.rows):
        reasons.append("no benchmark results in the run — see the host statuses")
        headlines.append(reasons[-1])
    if fail_on_outliers and outliers:
        reasons += [
            f"outlier — {o.host}/{o.slot}: {describe(o.configuration)} = {o.value:g} "
            f"({o.worse_by:.1%} worse than the fleet median {o.median:g})"
            for o in outliers
        ]
        members = sorted({f"{o.host}/{o.slot}" for o in outliers})
        shown = ", ".join(members[:5]) + (" …" if len(members) > 5 else "")
        headlines.append(f"{_count(len(outliers), 'outlier')} on "
                         f"{_count(len(members), 'host slot')} ({shown})")
    return Gate(failed=bool(reasons), reasons=tuple(reasons), headlines=tuple(headlines),
                hosts_not_ok=tuple(not_ok), missing_slots=tuple(lacking))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
