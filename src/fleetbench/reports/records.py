"""The canonical benchmark record every MAD era is turned into.

One :class:`Record` is one measured metric of one benchmark configuration. Records carry
no host, run or file: whoever collects them (the fleet report, the history database)
keeps that context beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

SCENARIOS = ("latency", "throughput", "serving")

#: Canonical metric name → its unit. ``throughput`` is the one metric whose meaning is
#: open: a lone era B/C ``perf_<name>.csv`` cannot say whether it holds total or
#: generated tokens per second.
METRIC_UNITS: dict[str, str] = {
    "latency": "ms",
    "latency_per_token": "ms",
    "throughput_total": "tok/s",
    "throughput_gen": "tok/s",
    "ttft_median": "ms",
    "tpot_median": "ms",
    "itl_median": "ms",
    "e2el_median": "ms",
    "throughput": "tok/s",
}
METRICS = tuple(METRIC_UNITS)

#: What identifies one benchmark configuration and metric: every key but the measurement.
CONFIGURATION_KEYS = (
    "model",
    "scenario",
    "tp",
    "batch_size",
    "num_prompts",
    "max_concurrency",
    "input_len",
    "output_len",
    "dtype",
    "metric",
)

Configuration = tuple[str, str, int, int | None, int | None, int | None, int, int, str, str]


@dataclass(frozen=True)
class Record:
    """One metric of one benchmark configuration, in the true unit; ``value`` None = failed."""

    model: str
    scenario: str
    tp: int
    batch_size: int | None
    num_prompts: int | None
    max_concurrency: int | None
    input_len: int
    output_len: int
    dtype: str
    metric: str
    value: float | None
    unit: str

    def __post_init__(self) -> None:
        # A record that breaks §4 is a bug in a parser, not bad user input.
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario {self.scenario!r} is not one of {SCENARIOS}")
        if self.metric not in METRIC_UNITS:
            raise ValueError(f"metric {self.metric!r} is not one of {METRICS}")
        if self.unit != METRIC_UNITS[self.metric]:
            raise ValueError(f"unit {self.unit!r} is wrong for metric {self.metric!r}")
        # Computed once: grouping a large fleet asks for it millions of times. Not a field,
        # so equality, hashing, repr and to_dict are unchanged.
        object.__setattr__(self, "_configuration", (
            self.model, self.scenario, self.tp, self.batch_size, self.num_prompts,
            self.max_concurrency, self.input_len, self.output_len, self.dtype, self.metric,
        ))

    def to_dict(self) -> dict[str, str | int | float | None]:
        """The record as the §4 mapping, keys in §4 order (what ``report parse`` prints)."""
        # What dataclasses.asdict gives for these scalar fields, without its deep copies.
        return {
            "model": self.model,
            "scenario": self.scenario,
            "tp": self.tp,
            "batch_size": self.batch_size,
            "num_prompts": self.num_prompts,
            "max_concurrency": self.max_concurrency,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "dtype": self.dtype,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
        }

    @classmethod
    def trusted(
        cls,
        configuration: tuple[str, str, int, int | None, int | None, int | None, int, int, str],
        metric: str,
        value: float | None,
    ) -> Record:
        """The record ``Record(*configuration, metric, value, METRIC_UNITS[metric])``.

        For the parsers' hot path only: the caller guarantees the scenario is one of
        :data:`SCENARIOS` and ``metric`` one of :data:`METRIC_UNITS`, so the checks of
        ``__post_init__`` (a quarter of a large fleet's parsing time) are skipped.
        """
        record = object.__new__(cls)
        # A frozen dataclass without slots keeps its fields in __dict__; this is what
        # __init__ and __post_init__ store, in the same order.
        fields_of = record.__dict__
        (fields_of["model"], fields_of["scenario"], fields_of["tp"], fields_of["batch_size"],
         fields_of["num_prompts"], fields_of["max_concurrency"], fields_of["input_len"],
         fields_of["output_len"], fields_of["dtype"]) = configuration
        fields_of["metric"] = metric
        fields_of["value"] = value
        fields_of["unit"] = METRIC_UNITS[metric]
        fields_of["_configuration"] = (*configuration, metric)
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Record:
        """Rebuild a record from :meth:`to_dict` output (e.g. a JSON line); extra keys ignored."""
        values = {f.name: data[f.name] for f in fields(cls)}
        return cls(**values)  # type: ignore[arg-type]

    @property
    def configuration(self) -> Configuration:
        """The configuration and metric this record measures (everything but value and unit)."""
        configuration: Configuration = self._configuration  # type: ignore[attr-defined]
        return configuration


def latest_per_configuration(records: Iterable[Record]) -> list[Record]:
    """Keep the last record of each configuration and metric.

    MAD appends a re-run's rows to the same report file instead of replacing them, so
    one file can hold several measurements of one configuration; the last one written
    is the latest run. The result keeps the order in which configurations first appear.
    """
    latest: dict[Configuration, Record] = {}
    for record in records:
        # Assigning to an existing key keeps its first position in the dict.
        latest[record.configuration] = record
    return list(latest.values())
