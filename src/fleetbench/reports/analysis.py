"""Everything the fleet report says about a run: statistics, findings, thresholds, baseline
comparison, drift, plausibility and the gate, computed by :func:`analyse`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleetbench.reports.fleet import FleetRun, HostRecord, ReadProblem
from fleetbench.reports.gate import Gate, GateOptions, gate
from fleetbench.reports.plausibility import Implausible, Plausibility, assess
from fleetbench.reports.records import Configuration
from fleetbench.reports.stats import (
    BaselineRef,
    Comparison,
    ConfigurationStats,
    Drift,
    MissingResult,
    Outlier,
    compare_with_baseline,
    compare_with_medians,
    configuration_groups,
    failed_measurements,
    find_drift,
    fleet_statistics,
    host_facts,
    missing_of_groups,
    outliers_of_groups,
    statistics_of_groups,
    what_changed,
)
from fleetbench.reports.thresholds import Threshold, ThresholdViolation, check_thresholds


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
    groups = configuration_groups(run.rows)  # one pass for statistics, outliers and missing results
    stats = statistics_of_groups(groups)
    outliers = outliers_of_groups(groups, stats, mads=options.outlier_mads,
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
    missing = missing_of_groups(run, {key: group.members for key, group in groups.items()})
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
