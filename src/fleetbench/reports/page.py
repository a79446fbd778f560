"""The fleet report's HTML page, one self-contained file.

The page has inline CSS, inline SVG charts drawn by our own Jinja2 templates
(:mod:`fleetbench.reports.charts` computes their geometry), no JavaScript and no external
URL, so it can be mailed, archived or served from anywhere.

**Large fleets.** Per slot, 500 hosts x 8 slots made a 100 MB page nobody could open. Above
:data:`PAGE_LIMITS` (64 hosts or 256 host slots) the page is summarised: a box at its top
says what it aggregates (hosts without findings named only, a heat-map row per host with
findings plus one for all others, bar charts with those hosts and the best and worst of
the rest, drift as the odd hosts out, tables capped with a note of what is left out). The
CSV and JSON files always hold every result; smaller runs get the page unchanged.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.reports.charts import (
    Bar,
    BarChart,
    HeatCell,
    HeatMap,
    axis_labels,
    bar_charts,
    heat_colour,
    heat_legend,
    heat_map,
    sparklines,
    text_width,
)
from fleetbench.reports.fleet import HostRecord
from fleetbench.reports.fleet_report import (
    OUTPUT_FILES,
    FleetReport,
    median_of,
    template_context,
)
from fleetbench.reports.formatting import environment, format_number, format_percent, short_digest
from fleetbench.reports.records import Configuration
from fleetbench.reports.stats import ConfigurationStats, describe, worse_by


@dataclass(frozen=True)
class PivotRow:
    """One configuration across every host/slot."""

    label: str
    unit: str
    cells: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Pivot:
    """The canonical table as configurations x host/slot (the HTML's "all results")."""

    members: tuple[str, ...]
    rows: tuple[PivotRow, ...]


def pivot_table(report: FleetReport,
                members: Sequence[tuple[str, str]] | None = None) -> Pivot:
    """Every result: one row per configuration, one column per host/slot (``members``)."""
    if members is None:
        members = report.members
        results: Iterable[HostRecord] = report.run.rows
    else:
        wanted = set(members)
        results = (r for r in report.run.rows if (r.host, r.slot) in wanted)
    values = {(r.host, r.slot, r.configuration): r.record.value for r in results}
    outliers = {(o.host, o.slot, o.configuration) for o in report.analysis.outliers}
    rows = []
    for stat in report.analysis.stats:
        cells = []
        for host, slot in members:
            key = (host, slot, stat.configuration)
            if key not in values:
                cells.append(("–", "warn"))
            elif values[key] is None:
                cells.append(("failed", "bad"))
            else:
                cells.append((format_number(values[key]), "warn" if key in outliers else ""))
        rows.append(PivotRow(stat.label, stat.unit, tuple(cells)))
    return Pivot(tuple(f"{h}/{s}" for h, s in members), tuple(rows))


@dataclass(frozen=True)
class PageLimits:
    """Up to which fleet size the HTML page shows every host slot, and what it shows beyond.

    A run with more than ``hosts`` hosts or more than ``slots`` host slots gets the
    summarised page (:class:`SummarisedPage`); smaller runs get every slot in full.
    """

    hosts: int = 64
    slots: int = 256
    #: Rows a table of the summarised page shows before it says how many it left out
    #: (also the most host rows of its heat map and host-slot columns of "All results").
    rows: int = 100
    #: Hosts with findings a bar chart of the summarised page shows at most.
    chart_hosts: int = 20
    #: Best and worst hosts without findings each bar chart shows beside those.
    chart_extremes: int = 3


#: The limits :func:`render_html` applies (a page of 64 hosts x 4 slots, 64 configurations
#: is about 4 MB; 500 x 8 in full was about 100 MB).
PAGE_LIMITS = PageLimits()


@dataclass(frozen=True)
class DriftSummary:
    """One fact of the drift table on a summarised page: the usual value and the others."""

    name: str
    drifted: bool
    usual: str | None
    usual_hosts: int
    others: tuple[tuple[str, str], ...]
    others_left_out: int
    unknown_hosts: int


@dataclass(frozen=True)
class SummarisedPage:
    """What the HTML page of a large run aggregates, and what it leaves to the data files."""

    limits: PageLimits
    hosts: int
    slots: int
    results: int
    #: Hosts not ok (first) or with a finding (outlier, missing, failed, violation,
    #: preflight problem): shown in full in the hosts table, up to ``limits.rows``.
    attention: tuple[dict[str, Any], ...]
    attention_total: int
    #: Hosts that ended ok without a finding: named only.
    quiet: tuple[str, ...]
    heat_hosts: int
    heat_hosts_total: int
    heat_others: int
    drift: tuple[DriftSummary, ...]
    pivot_members_total: int
    data_files: tuple[str, ...]


def summarised(report: FleetReport, limits: PageLimits = PAGE_LIMITS) -> bool:
    """True when the run has more hosts or host slots than the page shows one by one."""
    return len(report.run.hosts) > limits.hosts or len(report.members) > limits.slots


@dataclass(frozen=True)
class _HostCell:
    """One host's results of one configuration, over its slots."""

    values: tuple[float, ...]  # sorted
    slots: tuple[tuple[str, float], ...]  # slot, value: the dots of a bar chart
    failed: int = 0
    missing: int = 0
    outliers: int = 0

    @property
    def median(self) -> float | None:
        return median_of(self.values)

    @property
    def findings(self) -> int:
        return self.failed + self.missing + self.outliers


def _host_cells(report: FleetReport) -> dict[Configuration, dict[str, _HostCell]]:
    """Per configuration and host (run order): the host's slot values and findings."""
    # host → configuration → ([(slot, value)], failed); a host's rows come one after another.
    per_host: dict[str, dict[Configuration, tuple[list[tuple[str, float]], list[int]]]] = {}
    host: str | None = None
    mine: dict[Configuration, tuple[list[tuple[str, float]], list[int]]] = {}
    for row in report.run.rows:
        if row.host != host:
            host = row.host
            mine = per_host.setdefault(host, {})
        record = row.record
        entry = mine.get(record.configuration)
        if entry is None:
            entry = mine[record.configuration] = ([], [0])
        if record.value is None:
            entry[1][0] += 1
        else:
            entry[0].append((row.slot, record.value))
    missing: dict[tuple[Configuration, str], int] = defaultdict(int)
    for item in report.analysis.missing:
        missing[(item.configuration, item.host)] += 1
        per_host.setdefault(item.host, {}).setdefault(item.configuration, ([], [0]))
    outliers: dict[tuple[Configuration, str], int] = defaultdict(int)
    for outlier in report.analysis.outliers:
        outliers[(outlier.configuration, outlier.host)] += 1
    order = {host.name: i for i, host in enumerate(report.run.hosts)}
    cells: dict[Configuration, dict[str, _HostCell]] = {}
    for name in sorted(per_host, key=lambda name: order.get(name, len(order))):
        for configuration, (found, failed) in per_host[name].items():
            key = (configuration, name)
            cells.setdefault(configuration, {})[name] = _HostCell(
                tuple(sorted(value for _, value in found)), tuple(found), failed[0],
                missing.get(key, 0) if missing else 0,
                outliers.get(key, 0) if outliers else 0)
    return cells


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _findings_text(cell: _HostCell) -> str:
    parts = [_plural(cell.outliers, "outlier")] if cell.outliers else []
    parts += [f"{cell.failed} failed"] if cell.failed else []
    parts += [f"{cell.missing} missing"] if cell.missing else []
    return "; ".join(parts)


def _heat_cell(x: int, y: int, name: str, cell: _HostCell | None,
               stat: ConfigurationStats) -> HeatCell:
    """A heat-map cell for one host (the median of its slots) of one configuration."""
    if cell is None or (not cell.values and not cell.failed):
        return HeatCell(x, y, "#ffffff", f"{name}: no result", "–")
    findings = _findings_text(cell)
    if not cell.values:
        return HeatCell(x, y, "#424242", f"{name}: failed measurement ({findings})", "×")
    value = cell.median or 0.0
    gap = worse_by(value, stat.median, stat.metric) if stat.median else 0.0
    mark = "!" if cell.outliers else "×" if cell.failed else "–" if cell.missing else ""
    return HeatCell(
        x, y, heat_colour(gap),
        f"{name}: median of {_plural(len(cell.values), 'slot')} {format_number(value)} "
        f"{stat.unit} ({format_percent(-gap, signed=True)} vs fleet median "
        f"{format_number(stat.median)}){' — ' + findings if findings else ''}",
        mark,
    )


def heat_map_by_host(report: FleetReport, limits: PageLimits = PAGE_LIMITS,
                     cells: Mapping[Configuration, Mapping[str, _HostCell]] | None = None,
                     ) -> tuple[HeatMap, int, int]:
    """The summarised page's heat map: a row per host with findings, one for the others.

    A host's cell is the median of its slots, marked ! when any slot is an outlier,
    x when one failed, a dash when one lacks the result. The last row ("other hosts") shows,
    per configuration, the worst host median among the hosts without findings. Returns
    the map, the number of hosts with findings and the number of other hosts.
    """
    stats = report.analysis.stats
    cells = _host_cells(report) if cells is None else cells
    labels = axis_labels(stats)
    names = [describe(stat.configuration) for stat in stats]
    hosts = list(dict.fromkeys(member[0] for member in report.members))
    flagged = [host for host in hosts
               if any(by_host.get(host) is not None and by_host[host].findings
                      for by_host in cells.values())]
    shown = flagged[:limits.rows]
    others = [host for host in hosts if host not in set(flagged)]
    rows = [*shown, *([f"other {len(others):,} hosts"] if others else [])]
    cell = 16
    left = max((text_width(label) for label in rows), default=40) + 10
    top = max((text_width(label, 10) for label in labels.values()), default=40) * 0.87 + 14
    top_px = math.ceil(top)
    heat_cells: list[HeatCell] = []
    for row_index, host in enumerate(shown):
        for column, stat in enumerate(stats):
            found = cells.get(stat.configuration, {}).get(host)
            slots = f" ({_plural(len(found.slots) + found.failed, 'slot')})" if found else ""
            heat_cells.append(_heat_cell(left + column * cell, top_px + row_index * cell,
                                         f"{host}{slots} — {names[column]}", found, stat))
    if others:
        y = top_px + len(shown) * cell
        quiet = set(others)
        for column, stat in enumerate(stats):
            x = left + column * cell
            medians = [(worse_by(median, stat.median, stat.metric) if stat.median else 0.0,
                        host, median)
                       for host, found in cells.get(stat.configuration, {}).items()
                       if host in quiet and (median := found.median) is not None]
            name = f"other {len(others):,} hosts — {names[column]}"
            if not medians:
                heat_cells.append(HeatCell(x, y, "#ffffff", f"{name}: no result", "–"))
                continue
            worst, best = max(medians), min(medians)
            heat_cells.append(HeatCell(
                x, y, heat_colour(worst[0]),
                f"{name}: host medians from {format_number(best[2])} ({best[1]}) to "
                f"{format_number(worst[2])} ({worst[1]}) {stat.unit}; the worst is "
                f"{format_percent(-worst[0], signed=True)} vs the fleet median "
                f"{format_number(stat.median)}", ""))
    heat = HeatMap(
        width=left + len(stats) * cell + 200,
        height=top_px + len(rows) * cell + 10,
        left=left, top=top_px, cell=cell,
        rows=tuple((top_px + i * cell, label) for i, label in enumerate(rows)),
        columns=tuple((left + i * cell, labels[s.configuration]) for i, s in enumerate(stats)),
        cells=tuple(heat_cells),
    )
    return heat, len(flagged), len(others)


def bar_charts_by_host(report: FleetReport, limits: PageLimits = PAGE_LIMITS,
                       cells: Mapping[Configuration, Mapping[str, _HostCell]] | None = None,
                       ) -> list[BarChart]:
    """The summarised page's bar charts: per configuration, only some hosts.

    The hosts with a finding for the configuration (up to ``limits.chart_hosts``) and the
    ``limits.chart_extremes`` best and worst of the others, in run order; each chart's
    note says how many hosts it shows.
    """
    cells = _host_cells(report) if cells is None else cells
    order = {host: i for i, host in enumerate(
        dict.fromkeys(member[0] for member in report.members))}
    row_height, width, right = 18, 460, 64
    charts: list[BarChart] = []
    for stat in report.analysis.stats:
        by_host = cells.get(stat.configuration, {})
        flagged = [host for host, found in by_host.items() if found.findings]
        quiet = sorted(
            ((worse_by(median, stat.median, stat.metric) if stat.median else 0.0, host)
             for host, found in by_host.items()
             if not found.findings and (median := found.median) is not None),
        )
        extremes = limits.chart_extremes
        picked = {host for _, host in quiet[:extremes]} | {host for _, host in quiet[-extremes:]}
        shown = sorted({*flagged[:limits.chart_hosts], *picked},
                       key=lambda host: order.get(host, len(order)))
        left = max((text_width(h) for h in shown), default=40) + 12
        plot_width = width - left - right
        values = [value for found in by_host.values() for value in found.values]
        top_value = max(values, default=0.0) * 1.08 or 1.0

        def x_of(value: float, top: float = top_value, plot: int = plot_width) -> float:
            return round(max(value, 0.0) / top * plot, 1)

        bars: list[Bar] = []
        for i, host in enumerate(shown):
            found = by_host[host]
            value = found.median
            notes = [f"{found.failed} failed"] if found.failed else []
            notes += [f"{found.missing} missing"] if found.missing else []
            bars.append(Bar(host, 24 + i * row_height,
                            x_of(value) if value is not None else None, value,
                            tuple((x_of(v), slot, v) for slot, v in found.slots),
                            found.outliers > 0, ", ".join(notes)))
        left_out = len(by_host) - len(shown)
        note = ""
        if left_out:
            note = (f"{len(shown)} of {_plural(len(by_host), 'host')}: "
                    f"{_plural(min(len(flagged), limits.chart_hosts), 'host')} with findings"
                    f"{f' (of {len(flagged)})' if len(flagged) > limits.chart_hosts else ''}"
                    f" and the {extremes} best and worst of the others")
        charts.append(BarChart(
            title=describe(stat.configuration), unit=stat.unit,
            better="higher is better" if stat.higher_is_better else "lower is better",
            width=width, height=24 + len(bars) * row_height + 10, left=left,
            plot_width=plot_width,
            median_x=x_of(stat.median) if stat.median is not None else None,
            median=stat.median, bars=tuple(bars), row_height=row_height,
            flagged=any(b.outlier or b.note for b in bars), note=note,
        ))
    return charts


def drift_summaries(report: FleetReport, limits: PageLimits = PAGE_LIMITS,
                    ) -> list[DriftSummary]:
    """Per fact: the usual value, how many hosts report it, and the hosts that differ."""
    result: list[DriftSummary] = []
    for drift in report.analysis.drift:
        usual = drift.usual
        others = [(host, value) for host, value in drift.values.items()
                  if value is not None and value != usual]
        unknown = sum(1 for value in drift.values.values() if value is None)
        with_usual = len(drift.values) - len(others) - unknown
        if drift.name in ("image digest", "MAD commit"):
            others = [(host, short_digest(value)) for host, value in others]
            usual = short_digest(usual) if usual is not None else None
        result.append(DriftSummary(
            drift.name, drift.drifted, usual, with_usual,
            tuple(others[:limits.rows]), max(len(others) - limits.rows, 0), unknown))
    return result


def _needs_attention(host: Mapping[str, Any]) -> bool:
    return bool(not host["ok"] or host["outliers"] or host["missing"] or host["failed"]
                or host["violations"] or host["preflight_problems"])


def summarised_page(report: FleetReport, hosts: Sequence[dict[str, Any]],
                    formats: Sequence[str], heat: tuple[int, int], *,
                    pivot_members: int, limits: PageLimits = PAGE_LIMITS) -> SummarisedPage:
    """The facts the summarised page states about what it aggregated."""
    # Hosts that did not end ok come first: a cap must not hide an unreachable host.
    attention = [*(host for host in hosts if not host["ok"]),
                 *(host for host in hosts if host["ok"] and _needs_attention(host))]
    return SummarisedPage(
        limits=limits,
        hosts=len(report.run.hosts),
        slots=len(report.members),
        results=len(report.run.rows),
        attention=tuple(attention[:limits.rows]),
        attention_total=len(attention),
        quiet=tuple(host["host"] for host in hosts if not _needs_attention(host)),
        heat_hosts=min(heat[0], limits.rows),
        heat_hosts_total=heat[0],
        heat_others=heat[1],
        drift=tuple(drift_summaries(report, limits)),
        pivot_members_total=pivot_members,
        data_files=tuple(OUTPUT_FILES[name] for name in ("csv", "json") if name in formats),
    )


def _members_with_findings(report: FleetReport) -> list[tuple[str, str]]:
    """Host slots with an outlier, a failed measurement or a missing result, in table order."""
    analysis = report.analysis
    flagged = {(o.host, o.slot) for o in analysis.outliers}
    flagged.update((r.host, r.slot) for r in analysis.failures)
    flagged.update((m.host, m.slot) for m in analysis.missing)
    return [member for member in report.members if member in flagged]


def _html_context(report: FleetReport, formats: Sequence[str]) -> dict[str, Any]:
    """:func:`~fleetbench.reports.fleet_report.template_context` plus the charts, and what a
    summarised page aggregates."""
    context = template_context(report, formats)
    limits = PAGE_LIMITS
    context.update(legend=heat_legend(), sparklines=sparklines(report), page=None,
                   shown=lambda items: items)
    if not summarised(report, limits):
        context.update(charts_data=bar_charts(report), heat=heat_map(report),
                       pivot=pivot_table(report))
        return context
    cells = _host_cells(report)
    heat, flagged_hosts, other_hosts = heat_map_by_host(report, limits, cells)
    members = _members_with_findings(report)
    context.update(
        charts_data=bar_charts_by_host(report, limits, cells),
        heat=heat,
        pivot=pivot_table(report, members[:limits.rows]),
        page=summarised_page(report, context["hosts"], formats, (flagged_hosts, other_hosts),
                             pivot_members=len(members), limits=limits),
        shown=lambda items: list(items)[:limits.rows],
    )
    return context


def render_html(report: FleetReport, formats: Sequence[str] = ("html",)) -> str:
    """The self-contained HTML page (``formats`` = sibling files to link to).

    A run with more hosts or host slots than :data:`PAGE_LIMITS` allows gets the
    summarised page: it says at the top what it aggregates; the CSV/JSON keep everything.
    """
    return environment().get_template("index.html.j2").render(
        _html_context(report, formats))
