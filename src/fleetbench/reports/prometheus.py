"""The fleet report as node_exporter textfile-collector metrics (``report build --prometheus``)."""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path

from fleetbench.reports.fleet_report import FleetReport
from fleetbench.reports.outputs import write_atomically
from fleetbench.reports.records import METRIC_UNITS, Configuration

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label(value: str) -> str:
    """A label value in the Prometheus text format: ``\\``, ``"`` and newlines escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    inner = ",".join(f'{key}="{escape_label(text)}"' for key, text in labels.items()
                     if _LABEL_NAME.match(key))
    number = "NaN" if math.isnan(value) else repr(float(value))
    return f"{name}{{{inner}}} {number}" if inner else f"{name} {number}"


def config_label(configuration: Configuration) -> str:
    """The configuration without model, scenario and metric: ``tp1_bs8_in128_out128_float16``."""
    _, _, tp, batch, prompts, concurrency, inp, out, dtype, _ = configuration
    parts = [f"tp{tp}"]
    parts += [f"bs{batch}"] if batch is not None else []
    parts += [f"n{prompts}"] if prompts is not None else []
    parts += [f"c{concurrency}"] if concurrency is not None else []
    return "_".join([*parts, f"in{inp}", f"out{out}", dtype])


def _timestamp(report: FleetReport) -> float:
    for text in (report.run.finished, report.run.created):
        if text:
            try:
                return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
            except ValueError:
                continue
    return time.time()


def render_prometheus(report: FleetReport) -> str:
    """node_exporter textfile-collector metrics of the run."""
    run, analysis = report.run, report.analysis
    families: list[tuple[str, str, list[str]]] = []

    def family(name: str, help_text: str, samples: list[str]) -> None:
        families.append((name, help_text, samples))

    def labels_of(configuration: Configuration) -> dict[str, str]:
        return {"model": configuration[0], "scenario": configuration[1],
                "metric": configuration[-1], "unit": METRIC_UNITS[configuration[-1]],
                "config": config_label(configuration)}

    family("fleetbench_benchmark_value",
           "Benchmark result of one GPU slot of one host (unit in the unit label).",
           [_sample("fleetbench_benchmark_value",
                    {"host": r.host, "slot": r.slot, **labels_of(r.configuration)},
                    r.record.value)
            for r in run.rows if r.record.value is not None])
    family("fleetbench_fleet_median", "Fleet median of one configuration and metric.",
           [_sample("fleetbench_fleet_median", labels_of(s.configuration), s.median)
            for s in analysis.stats if s.median is not None])
    family("fleetbench_host_ok", "1 when the host ended the run ok, else 0.",
           [_sample("fleetbench_host_ok", {"host": h.name, "status": h.status}, float(h.ok))
            for h in run.hosts])
    family("fleetbench_gate_failed", "1 when the report's gate failed (hosts not ok, missing "
           "results, thresholds, regressions).",
           [_sample("fleetbench_gate_failed", {}, float(analysis.gate.failed))])
    family("fleetbench_outliers", "Results robustly worse than the fleet median.",
           [_sample("fleetbench_outliers", {}, float(len(analysis.outliers)))])
    family("fleetbench_missing_results", "Results a planned slot lacks but others have.",
           [_sample("fleetbench_missing_results", {}, float(len(analysis.missing)))])
    family("fleetbench_failed_measurements", "Results whose measurement failed (no value).",
           [_sample("fleetbench_failed_measurements", {}, float(len(analysis.failures)))])
    family("fleetbench_regressions", "Configurations worse than the baseline beyond tolerance.",
           [_sample("fleetbench_regressions", {}, float(len(analysis.regressions)))])
    family("fleetbench_drift", "1 when hosts disagree on a fact (image digest, partition…).",
           [_sample("fleetbench_drift", {"fact": d.name}, float(d.drifted))
            for d in analysis.drift])
    family("fleetbench_run_info", "The run these metrics describe.",
           [_sample("fleetbench_run_info", {"run_id": run.run_id, "model": run.model,
                                            "dtype": run.dtype, "scenario": run.scenario},
                    1.0)])
    family("fleetbench_run_timestamp_seconds", "When the run finished (Unix time).",
           [_sample("fleetbench_run_timestamp_seconds", {}, _timestamp(report))])
    lines: list[str] = []
    for name, help_text, samples in families:
        if not samples:
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]
    return "\n".join(lines) + "\n"


def write_prometheus(report: FleetReport, path: Path) -> None:
    """Write the metrics for node_exporter's textfile collector, atomically (tmp + rename)."""
    write_atomically(path, render_prometheus(report))
