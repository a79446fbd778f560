"""Thresholds: the limits a thresholds file sets on results, and their violations.

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
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetbench.errors import BadInput
from fleetbench.reports.fleet import HostRecord, model_name
from fleetbench.reports.records import (
    CONFIGURATION_KEYS,
    METRIC_UNITS,
    METRICS,
    SCENARIOS,
    Configuration,
)
from fleetbench.reports.stats import (
    ConfigurationStats,
    configuration_dict,
    describe,
    higher_is_better,
)
from fleetbench.roofline import partition_share

_FILTER_KEYS = ("tp", "batch_size", "num_prompts", "max_concurrency", "input_len",
                "output_len", "dtype")
_INT_FILTERS = frozenset(_FILTER_KEYS) - {"dtype"}
_MODE_KEYS = ("compute_partition", "memory_partition")
_RULE_KEYS = frozenset({"model", "scenario", "metric", "min", "max", "of", "scale_from",
                        *_FILTER_KEYS, *_MODE_KEYS})
_COMPUTE_MODES = ("SPX", "DPX", "QPX", "CPX")
_MEMORY_MODES = ("NPS1", "NPS4")
_INDEX = {key: i for i, key in enumerate(CONFIGURATION_KEYS)}


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
