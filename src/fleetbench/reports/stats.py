"""Fleet statistics, outliers, missing results, baseline comparison and drift of a run.

The unit of comparison is one GPU slot of one host (``host/slot``): every slot ran the
same configurations, so every slot is one measurement of the fleet.

**Direction.** Throughput metrics are better when higher; every other metric
(``latency``, ``latency_per_token``, ``ttft``/``tpot``/``itl``/``e2el`` medians) is a time
and better when lower. "Worse" below always follows that direction.

**Outliers** (robust statistics): per configuration with at least three measured slots,
a slot is an outlier when its value is worse than the fleet median by more than
``k x MAD x 1.4826`` (the median absolute deviation scaled to a standard deviation;
``k`` = 3 by default) *and* by more than a minimum relative gap (5 % by default), so a
very tight fleet does not flag noise.

**Baseline.** A configuration regresses when its fleet median is worse than the
baseline's by more than the tolerance (5 % by default).

**Planned results.** Every host of the manifest was planned to measure, on each of its
slots, every configuration the fleet measured: a result a planned slot lacks is missing,
also when its host was unreachable or skipped and ran nothing.

Thresholds are in :mod:`fleetbench.reports.thresholds`, the gate in
:mod:`fleetbench.reports.gate`, and :func:`fleetbench.reports.analysis.analyse` puts
them all together.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.reports.fleet import (
    HOST_LEVEL_SLOT,
    FleetRun,
    HostInfo,
    HostRecord,
)
from fleetbench.reports.records import (
    CONFIGURATION_KEYS,
    METRIC_UNITS,
    METRICS,
    SCENARIOS,
    Configuration,
)

#: Scale from the median absolute deviation to a standard deviation (normal data).
MAD_SCALE = 1.4826
#: Fewest measured slots for an outlier verdict: with two, nobody can say which is off.
MIN_OUTLIER_SAMPLE = 3

_INDEX = {key: i for i, key in enumerate(CONFIGURATION_KEYS)}


def higher_is_better(metric: str) -> bool:
    """True for throughput metrics; times (latency, ttft, tpot, itl, e2el) are lower-better."""
    return metric.startswith("throughput")


def worse_by(value: float, reference: float, metric: str) -> float:
    """How much worse ``value`` is than ``reference``, relative to it (negative = better)."""
    if reference == 0:
        return 0.0 if value == reference else math.inf
    change = (value - reference) / abs(reference)
    return -change if higher_is_better(metric) else change


def describe(configuration: Configuration) -> str:
    """A short human name: ``<model> latency tp1 bs8 in128 out128 float16 latency``."""
    model, scenario, tp, batch, prompts, concurrency, inp, out, dtype, metric = configuration
    parts = [model, scenario, f"tp{tp}"]
    if batch is not None:
        parts.append(f"bs{batch}")
    if prompts is not None:
        parts.append(f"n{prompts}")
    if concurrency is not None:
        parts.append(f"c{concurrency}")
    parts += [f"in{inp}", f"out{out}", dtype, metric]
    return " ".join(parts)


def short_label(configuration: Configuration) -> str:
    """The configuration without the model and dtype (for chart axes)."""
    _, scenario, tp, batch, prompts, concurrency, inp, out, _, metric = configuration
    count = f"bs{batch}" if batch is not None else f"n{prompts}" if prompts is not None else ""
    conc = f" c{concurrency}" if concurrency is not None else ""
    return f"{scenario} tp{tp} {count}{conc} {inp}/{out} {metric}".replace("  ", " ")


def configuration_dict(configuration: Configuration) -> dict[str, Any]:
    """The configuration as a mapping of :data:`CONFIGURATION_KEYS`."""
    return dict(zip(CONFIGURATION_KEYS, configuration, strict=True))


def _sort_key(configuration: Configuration) -> tuple[Any, ...]:
    model, scenario, tp, batch, prompts, concurrency, inp, out, dtype, metric = configuration
    return (model, dtype, SCENARIOS.index(scenario), tp, METRICS.index(metric),
            batch or 0, prompts or 0, concurrency or 0, inp, out)


# --- fleet statistics --------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigurationStats:
    """The fleet's view of one configuration and metric."""

    configuration: Configuration
    unit: str
    count: int
    failed: int
    median: float | None
    minimum: float | None
    maximum: float | None
    spread: float | None
    mad: float | None

    @property
    def metric(self) -> str:
        """The metric measured."""
        return self.configuration[-1]

    @property
    def higher_is_better(self) -> bool:
        """True for throughput."""
        return higher_is_better(self.metric)

    @property
    def label(self) -> str:
        """A short name of the configuration."""
        return describe(self.configuration)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            **configuration_dict(self.configuration),
            "unit": self.unit,
            "better": "higher" if self.higher_is_better else "lower",
            "count": self.count,
            "failed": self.failed,
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "spread": self.spread,
            "mad": self.mad,
        }


def group_by_configuration(rows: Iterable[HostRecord]) -> dict[Configuration, list[HostRecord]]:
    """Rows per configuration, configurations in a stable, readable order."""
    groups: dict[Configuration, list[HostRecord]] = defaultdict(list)
    for row in rows:
        groups[row.record.configuration].append(row)
    return {key: groups[key] for key in sorted(groups, key=_sort_key)}


def fleet_statistics(rows: Iterable[HostRecord]) -> list[ConfigurationStats]:
    """Median, min, max, spread ((max-min)/median), MAD and count per configuration.

    Failed measurements (value None) are counted in ``failed`` and left out of the numbers.
    """
    return statistics_of_groups(configuration_groups(rows))


@dataclass(frozen=True)
class ConfigurationGroup:
    """One configuration's rows, their values (None = failed) and host slots, in row order."""

    rows: list[HostRecord]
    values: list[float | None]
    members: set[tuple[str, str]]


def configuration_groups(rows: Iterable[HostRecord]) -> dict[Configuration, ConfigurationGroup]:
    """:func:`group_by_configuration` with each group's values and host slots: one pass
    over a large run's rows for statistics, outliers and missing results."""
    groups: dict[Configuration, ConfigurationGroup] = {}
    for row in rows:
        record = row.record
        configuration = record.configuration
        group = groups.get(configuration)
        if group is None:
            group = groups[configuration] = ConfigurationGroup([], [], set())
        group.rows.append(row)
        group.values.append(record.value)
        group.members.add((row.host, row.slot))
    return {key: groups[key] for key in sorted(groups, key=_sort_key)}


def statistics_of_groups(
        groups: Mapping[Configuration, ConfigurationGroup]) -> list[ConfigurationStats]:
    """:func:`fleet_statistics` of rows already grouped by :func:`configuration_groups`."""
    result: list[ConfigurationStats] = []
    for configuration, group in groups.items():
        values = [value for value in group.values if value is not None]
        failed = len(group.values) - len(values)
        unit = METRIC_UNITS[configuration[-1]]
        if not values:
            result.append(ConfigurationStats(configuration, unit, 0, failed, None, None, None,
                                              None, None))
            continue
        median = statistics.median(values)
        low, high = min(values), max(values)
        spread = (high - low) / abs(median) if median else None
        mad = statistics.median(abs(v - median) for v in values)
        result.append(ConfigurationStats(configuration, unit, len(values), failed, median, low,
                                          high, spread, mad))
    return result


# --- outliers, missing results, failures ---------------------------------------------------


@dataclass(frozen=True)
class Outlier:
    """A slot whose value is robustly worse than the fleet median of a configuration."""

    host: str
    slot: str
    configuration: Configuration
    value: float
    median: float
    worse_by: float
    mad_scores: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"host": self.host, "slot": self.slot, **configuration_dict(self.configuration),
                "value": self.value, "median": self.median, "worse_by": self.worse_by,
                "mad_scores": self.mad_scores}


def find_outliers(
    rows: Iterable[HostRecord],
    stats: Sequence[ConfigurationStats],
    *,
    mads: float = 3.0,
    min_gap: float = 0.05,
) -> list[Outlier]:
    """Slots worse than the median by more than ``mads``·MAD·1.4826 and by ``min_gap``."""
    return outliers_of_groups(configuration_groups(rows), stats, mads=mads, min_gap=min_gap)


def outliers_of_groups(
    groups: Mapping[Configuration, ConfigurationGroup],
    stats: Sequence[ConfigurationStats],
    *,
    mads: float,
    min_gap: float,
) -> list[Outlier]:
    """:func:`find_outliers` of rows already grouped by :func:`configuration_groups`."""
    by_configuration = {s.configuration: s for s in stats}
    outliers: list[Outlier] = []
    for configuration, group in groups.items():
        stat = by_configuration.get(configuration)
        if stat is None or stat.median is None or stat.mad is None:
            continue
        if stat.count < MIN_OUTLIER_SAMPLE:
            continue
        median, metric = stat.median, stat.metric
        sigma = stat.mad * MAD_SCALE
        limit = mads * sigma
        rows = group.rows
        for index, value in enumerate(group.values):
            # Most slots are near the median: the distance test alone rules them out.
            if value is None or not abs(value - median) > limit:
                continue
            row = rows[index]
            gap = worse_by(value, median, metric)
            distance = abs(value - median)
            if gap > min_gap:
                outliers.append(Outlier(
                    row.host, row.slot, configuration, value, median, gap,
                    distance / sigma if sigma else None,
                ))
    return outliers


@dataclass(frozen=True)
class MissingResult:
    """A planned slot without a result for a configuration other slots measured."""

    host: str
    slot: str
    configuration: Configuration

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"host": self.host, "slot": self.slot, **configuration_dict(self.configuration)}


def planned_slots(host: HostInfo) -> tuple[str, ...]:
    """The slots ``host`` was planned to run, as the manifest names them.

    ``planned_slots`` (written by ``fleetbench run``) and the slots it reports whatever
    their status (``skipped:gpus`` too). A host the manifest says nothing more about
    (it never got that far, or an older manifest) counts as one slot, ``host``.
    """
    names = dict.fromkeys([*host.planned_slots, *(slot.name for slot in host.slots)])
    return tuple(names) or (HOST_LEVEL_SLOT,)


def expected_slots(run: FleetRun) -> list[tuple[str, str]]:
    """``(host, slot)`` pairs that should hold results: every planned slot of every host
    (:func:`planned_slots`), whether or not it ran, and every slot with records on disk."""
    seen: dict[tuple[str, str], None] = {}
    with_rows = {(row.host, row.slot) for row in run.rows}
    hosts_with_rows = {host for host, _ in with_rows}
    for host in run.hosts:
        slots = planned_slots(host)
        if slots == (HOST_LEVEL_SLOT,) and host.name in hosts_with_rows:
            continue  # its records name its slots
        for slot in slots:
            seen[(host.name, slot)] = None
    for member in sorted(with_rows, key=lambda m: (m[0], _slot_key(m[1]))):
        seen[member] = None
    return list(seen)


def _slot_key(slot: str) -> tuple[int, str]:
    digits = slot.removeprefix("slot")
    return (int(digits), slot) if digits.isdigit() else (1 << 30, slot)


def find_missing(run: FleetRun) -> list[MissingResult]:
    """Configurations some slot measured that a planned slot lacks (:func:`expected_slots`)."""
    have: dict[Configuration, set[tuple[str, str]]] = defaultdict(set)
    for row in run.rows:
        have[row.record.configuration].add((row.host, row.slot))
    return missing_of_groups(run, {key: have[key] for key in sorted(have, key=_sort_key)})


def missing_of_groups(run: FleetRun, have: Mapping[Configuration, set[tuple[str, str]]],
                      ) -> list[MissingResult]:
    """:func:`find_missing` from the host slots of each configuration (in statistics order)."""
    slots = expected_slots(run)
    expected = set(slots)
    missing: list[MissingResult] = []
    for configuration, members in have.items():
        if expected <= members:
            continue  # every expected slot has it (the usual case)
        missing.extend(
            MissingResult(host, slot, configuration)
            for host, slot in slots
            if (host, slot) not in members
        )
    return missing


def failed_measurements(rows: Iterable[HostRecord]) -> list[HostRecord]:
    """Records whose value is null: the measurement failed (never a zero)."""
    return [row for row in rows if row.record.value is None]


# --- baseline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineRef:
    """Which run the comparison is against and where it came from."""

    run_id: str
    source: str


@dataclass(frozen=True)
class Comparison:
    """One configuration's fleet median against the baseline's."""

    configuration: Configuration
    baseline_median: float
    median: float
    worse_by: float
    regression: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**configuration_dict(self.configuration), "baseline_median": self.baseline_median,
                "median": self.median, "worse_by": self.worse_by, "regression": self.regression}


def compare_with_baseline(
    stats: Sequence[ConfigurationStats],
    baseline_stats: Sequence[ConfigurationStats],
    *,
    tolerance: float = 0.05,
) -> list[Comparison]:
    """Per configuration both runs measured: regression when worse by more than ``tolerance``."""
    return compare_with_medians(
        stats, {s.configuration: s.median for s in baseline_stats if s.median is not None},
        tolerance=tolerance)


def compare_with_medians(
    stats: Sequence[ConfigurationStats],
    base: Mapping[Configuration, float],
    *,
    tolerance: float = 0.05,
) -> list[Comparison]:
    """:func:`compare_with_baseline` against the baseline's fleet median per configuration
    (what the history keeps of a run)."""
    comparisons: list[Comparison] = []
    for stat in stats:
        reference = base.get(stat.configuration)
        if stat.median is None or reference is None:
            continue
        gap = worse_by(stat.median, reference, stat.metric)
        comparisons.append(Comparison(stat.configuration, reference, stat.median, gap,
                                      gap > tolerance))
    return comparisons


#: Names listed in one headline before "…".
HEADLINE_NAMES = 5


def names_shown(names: Sequence[str]) -> str:
    """The first :data:`HEADLINE_NAMES` of ``names``, then "…" when there are more."""
    shown = ", ".join(names[:HEADLINE_NAMES])
    return shown + (" …" if len(names) > HEADLINE_NAMES else "")


# --- what changed since the baseline ---------------------------------------------------------

#: Facts of a host that explain a change of its numbers, as the history keeps them.
ATTRIBUTION_FACTS = (("image digest", "image_digest"), ("MAD commit", "mad_commit"),
                     ("compute partition", "compute_partition"),
                     ("memory partition", "memory_partition"), ("ROCm", "rocm_version"),
                     ("driver", "driver_version"), ("vLLM", "vllm_version"),
                     ("GPU model", "gpu_model"))


def host_facts(run: FleetRun) -> dict[str, dict[str, str | None]]:
    """Per host of ``run``: its :data:`ATTRIBUTION_FACTS`, keyed by their history names."""
    return {host.name: {key: _text(getattr(host, key)) for _, key in ATTRIBUTION_FACTS}
            for host in run.hosts}


def what_changed(baseline: Mapping[str, Mapping[str, str | None]],
                 current: Mapping[str, Mapping[str, str | None]]) -> list[str]:
    """One line per fact whose values differ between the baseline's hosts and the run's,
    e.g. ``ROCm: 6.3.1 → 6.4.1 (lab01, lab02)``; hosts that do not say are left out."""
    lines = []
    for label, key in ATTRIBUTION_FACTS:
        before = {v for facts in baseline.values() if (v := facts.get(key)) is not None}
        after = {v for facts in current.values() if (v := facts.get(key)) is not None}
        if not before or not after or before == after:
            continue
        moved = [host for host, facts in current.items()
                 if facts.get(key) is not None and facts.get(key) not in before]
        where = f" ({names_shown(sorted(moved))})" if moved else ""
        lines.append(f"{label}: {', '.join(sorted(before))} → {', '.join(sorted(after))}{where}")
    return lines


# --- drift ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """One fact that should be equal on every host (image digest, partition mode…)."""

    name: str
    values: Mapping[str, str | None]

    @property
    def drifted(self) -> bool:
        """True when hosts that report the fact disagree."""
        return len({v for v in self.values.values() if v is not None}) > 1

    @property
    def usual(self) -> str | None:
        """The value most hosts report (the odd ones out are the others)."""
        known = [v for v in self.values.values() if v is not None]
        return Counter(known).most_common(1)[0][0] if known else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"name": self.name, "drifted": self.drifted, "usual": self.usual,
                "values": dict(self.values)}


def find_drift(run: FleetRun) -> list[Drift]:
    """Image digest, MAD commit, partition modes, GPU count, ROCm and driver per host."""
    facts: list[tuple[str, str]] = [
        ("image digest", "image_digest"),
        ("MAD commit", "mad_commit"),
        ("compute partition", "compute_partition"),
        ("memory partition", "memory_partition"),
        ("logical GPUs", "logical_gpus"),
        ("ROCm version", "rocm_version"),
        ("driver version", "driver_version"),
    ]
    drift: list[Drift] = []
    for name, attribute in facts:
        values = {host.name: _text(getattr(host, attribute)) for host in run.hosts}
        if any(v is not None for v in values.values()):
            drift.append(Drift(name, values))
    return drift


def _text(value: object) -> str | None:
    return None if value is None else str(value)
