"""Each result against its roofline (:mod:`fleetbench.roofline`) on the host it ran on.

The GPU model comes from the host's ``preflight.json`` (``gpu_model``, what the probe saw
in the KFD topology and sysfs), the partition modes from the same file, the slot's width
from the record's ``tp``, the model's bytes from :mod:`fleetbench.fit`. A host whose device
or modes are unknown, or a model fleetbench has no config of, gets no bound (said once per
reason in the report), never a guessed one.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetbench.reports.fleet import FleetRun, HostRecord
from fleetbench.reports.records import CONFIGURATION_KEYS, Configuration
from fleetbench.roofline import GPU_SPECS, Bound, ModelBytes, NoBound, Slot, bound, lookup_model

#: (GPU model, compute mode, memory mode) of a host.
Hardware = tuple[str, str, str]


@dataclass(frozen=True)
class Implausible:
    """A result beyond its roofline: it cannot have been measured on that hardware."""

    host: str
    slot: str
    configuration: Configuration
    value: float
    bound: Bound
    hardware: Hardware

    @property
    def fraction(self) -> float:
        """How far beyond the bound (> 1)."""
        return self.bound.fraction(self.value) or 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"host": self.host, "slot": self.slot,
                **dict(zip(CONFIGURATION_KEYS, self.configuration, strict=True)),
                "value": self.value, **_bound_dict(self.bound), "fraction": self.fraction,
                "gpu_model": self.hardware[0], "compute_partition": self.hardware[1],
                "memory_partition": self.hardware[2]}


def _bound_dict(item: Bound) -> dict[str, Any]:
    return {"bound": item.value, "bound_kind": item.kind, "roof": item.roof}


@dataclass(frozen=True)
class Plausibility:
    """Bounds per host and configuration, the implausible results, and what had no bound."""

    hardware: Mapping[str, Hardware]
    bounds: Mapping[tuple[Hardware, Configuration], Bound]
    implausible: tuple[Implausible, ...]
    #: Why some results have no bound: one line per distinct reason.
    unbounded: tuple[str, ...]
    #: Per configuration: the fleet median's fraction of the bound (hosts of one hardware
    #: kind: the most common one).
    median_fraction: Mapping[Configuration, tuple[float, Bound]]

    def bound_for(self, host: str, configuration: Configuration) -> Bound | None:
        """The roofline of ``configuration`` on ``host``, None when there is none."""
        hardware = self.hardware.get(host)
        return None if hardware is None else self.bounds.get((hardware, configuration))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``summary.json``'s ``roofline``)."""
        return {
            "implausible": [item.to_dict() for item in self.implausible],
            "unbounded": list(self.unbounded),
            "configurations": [
                {**dict(zip(CONFIGURATION_KEYS, configuration, strict=True)),
                 **_bound_dict(item), "fraction_of_median": fraction}
                for configuration, (fraction, item) in self.median_fraction.items()
            ],
            "hosts": {host: {"gpu_model": hw[0], "compute_partition": hw[1],
                             "memory_partition": hw[2]} for host, hw in self.hardware.items()},
        }


def describe_fraction(fraction: float, item: Bound) -> str:
    """``61 % of HBM roofline`` (``decode``/``prefill`` is the reader's configuration)."""
    return f"{fraction:.0%} of {item.roof} roofline".replace("%", " %", 1)


def assess(run: FleetRun, rows: Iterable[HostRecord] | None = None) -> Plausibility:
    """Bound every result of ``run`` and find the implausible ones."""
    hardware: dict[str, Hardware] = {}
    unbounded: dict[str, None] = {}
    for host in run.hosts:
        if host.gpu_model is None or host.gpu_model not in GPU_SPECS:
            if host.ran:
                unbounded[f"{host.name}: GPU model unknown (preflight saw "
                          f"{host.gpu_model or 'no device'}): no roofline"] = None
            continue
        if host.compute_partition is None or host.memory_partition is None:
            unbounded[f"{host.name}: partition mode unknown: no roofline"] = None
            continue
        hardware[host.name] = (host.gpu_model, host.compute_partition, host.memory_partition)

    bounds: dict[tuple[Hardware, Configuration], Bound] = {}
    tried: set[tuple[Hardware, Configuration]] = set()
    implausible: list[Implausible] = []
    values: dict[Configuration, dict[Hardware, list[float]]] = {}
    models = functools.cache(_model)
    for row in run.rows if rows is None else rows:
        hw = hardware.get(row.host)
        record = row.record
        if hw is None or record.value is None:
            continue
        configuration = record.configuration
        key = (hw, configuration)
        if key not in tried:
            tried.add(key)
            try:
                bounds[key] = _bound(hw, configuration, models(record.model, record.dtype))
            except NoBound as exc:
                unbounded[str(exc)] = None
        item = bounds.get(key)
        if item is None:
            continue
        values.setdefault(configuration, {}).setdefault(hw, []).append(record.value)
        if item.implausible(record.value):
            implausible.append(Implausible(row.host, row.slot, configuration, record.value,
                                           item, hw))
    median_fraction: dict[Configuration, tuple[float, Bound]] = {}
    for configuration, by_hardware in values.items():
        hw = max(by_hardware, key=lambda h: len(by_hardware[h]))
        item = bounds[(hw, configuration)]
        fraction = item.fraction(statistics.median(by_hardware[hw]))
        if fraction is not None:
            median_fraction[configuration] = (fraction, item)
    return Plausibility(hardware=hardware, bounds=bounds, implausible=tuple(implausible),
                        unbounded=tuple(unbounded), median_fraction=median_fraction)


def _model(model: str, dtype: str) -> ModelBytes | NoBound:
    try:
        return lookup_model(model, dtype)
    except NoBound as exc:
        return exc


def _bound(hw: Hardware, configuration: Configuration, model: ModelBytes | NoBound) -> Bound:
    if isinstance(model, NoBound):
        raise model
    (_, scenario, tp, batch, prompts, concurrency, inp, out, dtype, metric) = configuration
    try:
        slot = Slot(GPU_SPECS[hw[0]], hw[1], hw[2], tp)
        return bound(slot, model, scenario=scenario, metric=metric, dtype=dtype,
                     batch_size=batch, num_prompts=prompts, max_concurrency=concurrency,
                     input_len=inp, output_len=out)
    except ValueError as exc:
        raise NoBound(f"no roofline for tp {tp} on {hw[1]}/{hw[2]}: {exc}") from None
