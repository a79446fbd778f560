"""Fleet statistics, outliers, thresholds, baseline comparison and the gate of a run.

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

**Thresholds** come from a YAML file, a list of rules (or a mapping with a
``thresholds:`` list)::

    - model: Llama-3.1-8B-Instruct    # report name or Hugging Face id; omit = any model
      scenario: throughput            # latency | throughput | serving; omit = any
      metric: throughput_total        # required: a FORMATS.md §4 metric name
      input_len: 128                  # optional filters: tp, batch_size, num_prompts,
      output_len: 2048                #   max_concurrency, input_len, output_len, dtype
      min: 9000                       # lowest acceptable value (tok/s here)
    - metric: latency
      batch_size: 1
      max: 2000                       # highest acceptable value (ms)
      of: median                      # each (default): every slot; median: the fleet median

Per partition mode, so one file serves CPX and SPX fleets: ``compute_partition: CPX``
and/or ``memory_partition: NPS4`` limit a rule to hosts in that mode; ``scale_from: SPX``
says the bounds were measured on whole GPUs and scales them to each host's mode by the
partition's share of a GPU (1/8 in CPX: a ``min`` throughput x 1/8, a ``max`` latency x 8).
A median rule of either kind takes the median of each mode's hosts::

    - scenario: throughput
      metric: throughput_total
      input_len: 128
      output_len: 128
      min: 9000                       # on an SPX GPU; 1125 on a CPX partition
      scale_from: SPX

A rule needs ``metric`` and ``min`` and/or ``max``. Unknown keys, metrics or scenarios
are bad input (exit 2). A rule that matches no result is reported, not failed.

**Baseline.** A configuration regresses when its fleet median is worse than the
baseline's by more than the tolerance (5 % by default).

**Planned results.** Every host of the manifest was planned to measure, on each of its
slots, every configuration the fleet measured: a result a planned slot lacks is missing,
also when its host was unreachable or skipped and ran nothing.

**Gate** (exit 1 when it fails): a host that did not end ``ok``, a planned result
missing, a threshold violated, a regression against the baseline, or no benchmark result
at all; outliers only with ``fail_on_outliers``. Failed measurements (value null) and
drift are findings shown in the report. So ``report build`` on its own (a nightly job, an
AWX workflow) fails exactly where ``fleetbench run`` does.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetbench.errors import BadInput
from fleetbench.reports.fleet import (
    HOST_LEVEL_SLOT,
    FleetRun,
    HostInfo,
    HostRecord,
    ReadProblem,
    model_name,
)
from fleetbench.reports.plausibility import Implausible, Plausibility, assess
from fleetbench.reports.records import (
    CONFIGURATION_KEYS,
    METRIC_UNITS,
    METRICS,
    SCENARIOS,
    Configuration,
)
from fleetbench.roofline import partition_share

#: Scale from the median absolute deviation to a standard deviation (normal data).
MAD_SCALE = 1.4826
#: Fewest measured slots for an outlier verdict: with two, nobody can say which is off.
MIN_OUTLIER_SAMPLE = 3

_FILTER_KEYS = ("tp", "batch_size", "num_prompts", "max_concurrency", "input_len",
                "output_len", "dtype")
_INT_FILTERS = frozenset(_FILTER_KEYS) - {"dtype"}
_MODE_KEYS = ("compute_partition", "memory_partition")
_RULE_KEYS = frozenset({"model", "scenario", "metric", "min", "max", "of", "scale_from",
                        *_FILTER_KEYS, *_MODE_KEYS})
_COMPUTE_MODES = ("SPX", "DPX", "QPX", "CPX")
_MEMORY_MODES = ("NPS1", "NPS4")
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
    return _statistics(_groups(rows))


@dataclass(frozen=True)
class _Group:
    """One configuration's rows, their values (None = failed) and host slots, in row order."""

    rows: list[HostRecord]
    values: list[float | None]
    members: set[tuple[str, str]]


def _groups(rows: Iterable[HostRecord]) -> dict[Configuration, _Group]:
    """:func:`group_by_configuration` with each group's values and host slots: one pass
    over a large run's rows for statistics, outliers and missing results."""
    groups: dict[Configuration, _Group] = {}
    for row in rows:
        record = row.record
        configuration = record.configuration
        group = groups.get(configuration)
        if group is None:
            group = groups[configuration] = _Group([], [], set())
        group.rows.append(row)
        group.values.append(record.value)
        group.members.add((row.host, row.slot))
    return {key: groups[key] for key in sorted(groups, key=_sort_key)}


def _statistics(groups: Mapping[Configuration, _Group]) -> list[ConfigurationStats]:
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
    return _outliers(_groups(rows), stats, mads=mads, min_gap=min_gap)


def _outliers(
    groups: Mapping[Configuration, _Group],
    stats: Sequence[ConfigurationStats],
    *,
    mads: float,
    min_gap: float,
) -> list[Outlier]:
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
    return _missing(run, {key: have[key] for key in sorted(have, key=_sort_key)})


def _missing(run: FleetRun, have: Mapping[Configuration, set[tuple[str, str]]],
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


# --- thresholds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """One rule of a thresholds file: which results it applies to and the bounds."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None
    model: str | None = None
    scenario: str | None = None
    filters: tuple[tuple[str, int | str], ...] = ()
    of: str = "each"
    name: str = ""
    #: Only hosts in these partition modes (None: any).
    compute_partition: str | None = None
    memory_partition: str | None = None
    #: The bounds were measured in this compute mode (e.g. SPX): for a host in another
    #: mode they scale by the partition's share (throughput x share, times / share).
    scale_from: str | None = None

    @property
    def mode_aware(self) -> bool:
        """True when the host's partition mode matters to the rule."""
        return bool(self.compute_partition or self.memory_partition or self.scale_from)

    def applies_to_mode(self, mode: tuple[str | None, str | None]) -> bool:
        """True when a host in ``mode`` (compute, memory) is one the rule covers."""
        compute, memory = mode
        if self.compute_partition is not None and compute != self.compute_partition:
            return False
        if self.memory_partition is not None and memory != self.memory_partition:
            return False
        return not (self.scale_from is not None and compute not in _COMPUTE_MODES)

    def for_mode(self, compute: str | None) -> Threshold:
        """The rule with its bounds scaled from ``scale_from`` to ``compute`` mode."""
        if self.scale_from is None or compute is None or compute == self.scale_from:
            return self
        share = partition_share(compute) / partition_share(self.scale_from)
        factor = share if higher_is_better(self.metric) else 1 / share
        return dataclasses.replace(
            self,
            minimum=None if self.minimum is None else self.minimum * factor,
            maximum=None if self.maximum is None else self.maximum * factor,
            name=f"{self.name} (scaled {self.scale_from}→{compute} x{factor:g})")

    def matches(self, configuration: Configuration) -> bool:
        """True when the rule applies to ``configuration``."""
        if configuration[_INDEX["metric"]] != self.metric:
            return False
        if self.model is not None and configuration[_INDEX["model"]] != self.model:
            return False
        if self.scenario is not None and configuration[_INDEX["scenario"]] != self.scenario:
            return False
        return all(configuration[_INDEX[key]] == value for key, value in self.filters)

    def violated_by(self, value: float) -> bool:
        """True when ``value`` lies outside the bounds."""
        return (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        )

    def bounds(self) -> str:
        """``min 9000``, ``max 2000`` or both."""
        parts = []
        if self.minimum is not None:
            parts.append(f"min {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"max {self.maximum:g}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        modes = {key: getattr(self, key) for key in (*_MODE_KEYS, "scale_from")
                 if getattr(self, key) is not None}
        return {"name": self.name, "model": self.model, "scenario": self.scenario,
                "metric": self.metric, **dict(self.filters), **modes, "min": self.minimum,
                "max": self.maximum, "of": self.of}


def load_thresholds(path: Path) -> tuple[Threshold, ...]:
    """Read a thresholds YAML file (schema in the module docstring); BadInput when wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the thresholds file ({exc}) — check the path") \
            from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML ({exc}) — fix the thresholds file") from None
    if isinstance(data, dict) and set(data) == {"thresholds"}:
        data = data["thresholds"]
    if data is None:
        return ()
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected a list of threshold rules — see `report build --help`")
    return tuple(_threshold(path, i, item) for i, item in enumerate(data, 1))


def _threshold(path: Path, index: int, item: object) -> Threshold:
    where = f"{path}: rule {index}"
    if not isinstance(item, dict):
        raise BadInput(f"{where} is not a mapping — write `- metric: …` with min/max")
    unknown = sorted(map(str, set(item) - _RULE_KEYS))
    if unknown:
        raise BadInput(f"{where}: unknown key {', '.join(unknown)} — "
                       f"use {', '.join(sorted(_RULE_KEYS))}")
    metric = item.get("metric")
    if metric not in METRIC_UNITS:
        raise BadInput(f"{where}: metric {metric!r} is not one of {', '.join(METRICS)} — "
                       "name a canonical metric")
    scenario = item.get("scenario")
    if scenario is not None and scenario not in SCENARIOS:
        raise BadInput(f"{where}: scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    low, high = _bound(where, item, "min"), _bound(where, item, "max")
    if low is None and high is None:
        raise BadInput(f"{where}: give min and/or max for {metric}")
    if low is not None and high is not None and low > high:
        raise BadInput(f"{where}: min {low:g} is above max {high:g} — swap them")
    of = item.get("of", "each")
    if of not in ("each", "median"):
        raise BadInput(f"{where}: of: {of!r} — use each (every slot) or median (fleet median)")
    filters: list[tuple[str, int | str]] = []
    for key in _FILTER_KEYS:
        if key not in item:
            continue
        value = item[key]
        if key in _INT_FILTERS and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadInput(f"{where}: {key} must be a whole number, not {value!r}")
        filters.append((key, value if key in _INT_FILTERS else str(value)))
    modes: dict[str, str | None] = {}
    for key, choices in (("compute_partition", _COMPUTE_MODES),
                         ("memory_partition", _MEMORY_MODES), ("scale_from", _COMPUTE_MODES)):
        value = item.get(key)
        if value is not None and str(value).upper() not in choices:
            raise BadInput(f"{where}: {key}: {value!r} — use one of {', '.join(choices)}")
        modes[key] = None if value is None else str(value).upper()
    model = item.get("model")
    name = ", ".join(f"{k}={item[k]}" for k in ("model", "scenario", "metric", *_FILTER_KEYS,
                                                 *_MODE_KEYS) if k in item)
    return Threshold(
        metric=str(metric), minimum=low, maximum=high,
        model=model_name(str(model)) if model is not None else None,
        scenario=scenario, filters=tuple(filters), of=str(of), name=name, **modes,
    )


def _bound(where: str, item: Mapping[str, Any], key: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(f"{where}: {key} must be a number, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class ThresholdViolation:
    """A slot's value (or the fleet median, ``host`` None) outside a threshold's bounds."""

    threshold: Threshold
    configuration: Configuration
    value: float
    host: str | None = None
    slot: str | None = None

    @property
    def text(self) -> str:
        """One line for people."""
        who = f"{self.host}/{self.slot}" if self.host else "fleet median"
        return (f"{who}: {describe(self.configuration)} = {self.value:g} "
                f"{METRIC_UNITS[self.configuration[-1]]} (threshold {self.threshold.bounds()})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"host": self.host, "slot": self.slot, **configuration_dict(self.configuration),
                "value": self.value, "min": self.threshold.minimum,
                "max": self.threshold.maximum, "rule": self.threshold.name}


def check_thresholds(
    rows: Iterable[HostRecord],
    stats: Sequence[ConfigurationStats],
    thresholds: Sequence[Threshold],
    modes: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> tuple[list[ThresholdViolation], list[Threshold]]:
    """Violations, and the rules that matched no result (a typo would otherwise pass).

    ``modes`` maps a host to its (compute, memory) partition mode, for rules that filter on
    it or scale from a mode (:meth:`Threshold.for_mode`); a median rule of that kind takes
    the median of each mode's hosts on their own.
    """
    rows = list(rows)
    modes = modes or {}
    violations: list[ThresholdViolation] = []
    unmatched: list[Threshold] = []
    for rule in thresholds:
        matched = False
        if rule.mode_aware:
            found, matched = _check_mode_rule(rule, rows, modes)
            violations.extend(found)
        elif rule.of == "median":
            for stat in stats:
                if rule.matches(stat.configuration) and stat.median is not None:
                    matched = True
                    if rule.violated_by(stat.median):
                        violations.append(ThresholdViolation(rule, stat.configuration,
                                                             stat.median))
        else:
            for row in rows:
                value = row.record.value
                if rule.matches(row.configuration) and value is not None:
                    matched = True
                    if rule.violated_by(value):
                        violations.append(ThresholdViolation(rule, row.configuration, value,
                                                             row.host, row.slot))
        if not matched:
            unmatched.append(rule)
    return violations, unmatched


def _check_mode_rule(rule: Threshold, rows: Sequence[HostRecord],
                     modes: Mapping[str, tuple[str | None, str | None]],
                     ) -> tuple[list[ThresholdViolation], bool]:
    """Violations of a mode-aware rule, and whether it matched any result."""
    violations: list[ThresholdViolation] = []
    groups: dict[tuple[Configuration, str | None], list[float]] = defaultdict(list)
    matched = False
    for row in rows:
        value = row.record.value
        mode = modes.get(row.host, (None, None))
        if value is None or not rule.matches(row.configuration) or \
                not rule.applies_to_mode(mode):
            continue
        matched = True
        if rule.of == "median":
            groups[(row.configuration, mode[0])].append(value)
            continue
        scaled = rule.for_mode(mode[0])
        if scaled.violated_by(value):
            violations.append(ThresholdViolation(scaled, row.configuration, value, row.host,
                                                 row.slot))
    for (configuration, compute), values in groups.items():
        scaled = rule.for_mode(compute)
        median = statistics.median(values)
        if scaled.violated_by(median):
            violations.append(ThresholdViolation(scaled, configuration, median))
    return violations, matched


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
        where = f" ({_names(sorted(moved))})" if moved else ""
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


# --- the gate ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class FleetAnalysis:
    """Everything the report says about a run."""

    stats: tuple[ConfigurationStats, ...]
    outliers: tuple[Outlier, ...]
    missing: tuple[MissingResult, ...]
    failures: tuple[HostRecord, ...]
    violations: tuple[ThresholdViolation, ...]
    unmatched_thresholds: tuple[Threshold, ...]
    thresholds: tuple[Threshold, ...]
    comparisons: tuple[Comparison, ...]
    baseline: BaselineRef | None
    drift: tuple[Drift, ...]
    problems: tuple[ReadProblem, ...]
    gate: Gate
    options: GateOptions
    plausibility: Plausibility | None = None
    #: What differs between the baseline's hosts and this run's (image, MAD, ROCm…).
    baseline_changes: tuple[str, ...] = ()

    @property
    def implausible(self) -> tuple[Implausible, ...]:
        """Results beyond their roofline."""
        return () if self.plausibility is None else self.plausibility.implausible

    @property
    def regressions(self) -> tuple[Comparison, ...]:
        """Comparisons beyond the tolerance."""
        return tuple(c for c in self.comparisons if c.regression)

    @property
    def drifted(self) -> tuple[Drift, ...]:
        """Facts on which hosts disagree."""
        return tuple(d for d in self.drift if d.drifted)


#: Names listed in one headline before "…".
_HEADLINE_NAMES = 5
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


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_HEADLINE_NAMES])
    return shown + (" …" if len(names) > _HEADLINE_NAMES else "")


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
                         f"{_names([f'{h.host} {h.status}' for h in not_ok])}")
    lacking = missing_slots(missing, configurations, expected_slots(run) if missing else ())
    for slot in lacking:
        named = "; ".join(slot.configurations)
        more = " …" if slot.missing > len(slot.configurations) else ""
        reasons.append(f"missing results — {slot.member}: {slot.missing} of {slot.of} "
                       f"planned results ({named}{more})")
    if lacking:
        headlines.append(f"{_count(len(missing), 'planned result')} missing on "
                         f"{_count(len(lacking), 'host slot')} "
                         f"({_names([slot.member for slot in lacking])})")
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
                         f"roofline on {_count(len(members), 'host slot')} ({_names(members)})")
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


def analyse(
    run: FleetRun,
    *,
    thresholds: Sequence[Threshold] = (),
    baseline_rows: Iterable[HostRecord] | None = None,
    baseline_medians: Mapping[Configuration, float] | None = None,
    baseline: BaselineRef | None = None,
    options: GateOptions | None = None,
    baseline_facts: Mapping[str, Mapping[str, str | None]] | None = None,
) -> FleetAnalysis:
    """Statistics, findings and the gate of ``run``.

    Compared with a baseline when one is given: its rows (a run directory) or its fleet
    median per configuration (a run in the history).
    """
    options = options or GateOptions()
    groups = _groups(run.rows)  # one pass for statistics, outliers and missing results
    stats = _statistics(groups)
    outliers = _outliers(groups, stats, mads=options.outlier_mads,
                         min_gap=options.outlier_min_gap)
    modes = {host.name: (host.compute_partition, host.memory_partition) for host in run.hosts}
    violations, unmatched = check_thresholds(run.rows, stats, thresholds, modes)
    comparisons: list[Comparison] = []
    if baseline_rows is not None:
        comparisons = compare_with_baseline(stats, fleet_statistics(baseline_rows),
                                            tolerance=options.regression_tolerance)
    elif baseline_medians is not None:
        comparisons = compare_with_medians(stats, baseline_medians,
                                           tolerance=options.regression_tolerance)
    missing = _missing(run, {key: group.members for key, group in groups.items()})
    plausibility = assess(run)
    changes = what_changed(baseline_facts, host_facts(run)) if baseline_facts else []
    verdict = gate(run, violations, [c for c in comparisons if c.regression], outliers,
                   options.regression_tolerance, fail_on_outliers=options.fail_on_outliers,
                   missing=missing, configurations=len(stats),
                   implausible=plausibility.implausible, changes=changes)
    return FleetAnalysis(
        stats=tuple(stats),
        outliers=tuple(outliers),
        missing=tuple(missing),
        failures=tuple(failed_measurements(run.rows)),
        violations=tuple(violations),
        unmatched_thresholds=tuple(unmatched),
        thresholds=tuple(thresholds),
        comparisons=tuple(comparisons),
        baseline=baseline if baseline_rows is not None or baseline_medians is not None
        else None,
        drift=tuple(find_drift(run)),
        problems=run.problems,
        gate=verdict,
        options=options,
        plausibility=plausibility,
        baseline_changes=tuple(changes),
    )
