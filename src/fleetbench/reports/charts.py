"""The geometry of the fleet report's inline SVG charts: bar charts, heat map, sparklines.

Chart geometry is computed here; the templates (``templates/charts.html.j2``) only place
it. These are the charts of a page that shows every host slot; a large fleet's summarised
page draws its own per-host variants (:mod:`fleetbench.reports.page`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from fleetbench.reports.fleet import HostRecord
from fleetbench.reports.fleet_report import FleetReport, median_of, slot_serials
from fleetbench.reports.formatting import format_number, format_percent
from fleetbench.reports.records import Configuration
from fleetbench.reports.stats import ConfigurationStats, describe, short_label, worse_by

# Heat-map colours saturate at this relative distance from the median.
HEAT_RANGE = 0.2


@dataclass(frozen=True)
class Bar:
    """One host's bar (median of its slots) with a dot per slot."""

    host: str
    y: float
    width: float | None
    value: float | None
    dots: tuple[tuple[float, str, float], ...]
    outlier: bool
    note: str


@dataclass(frozen=True)
class BarChart:
    """A configuration's host bar chart with the fleet median line."""

    title: str
    unit: str
    better: str
    width: int
    height: int
    left: int
    plot_width: int
    median_x: float | None
    median: float | None
    bars: tuple[Bar, ...]
    row_height: int
    flagged: bool
    #: Which hosts a chart of the summarised page shows ("" when it shows every host).
    note: str = ""


@dataclass(frozen=True)
class HeatCell:
    """One host/slot x configuration cell of the heat map."""

    x: int
    y: int
    fill: str
    title: str
    mark: str


@dataclass(frozen=True)
class HeatMap:
    """Hosts/slots x configurations, coloured by distance from the fleet median."""

    width: int
    height: int
    left: int
    top: int
    cell: int
    rows: tuple[tuple[int, str], ...]
    columns: tuple[tuple[int, str], ...]
    cells: tuple[HeatCell, ...]


@dataclass(frozen=True)
class Sparkline:
    """A configuration's fleet median over the stored runs."""

    label: str
    unit: str
    points: str
    last: tuple[float, float]
    first_value: float | None
    last_value: float | None
    change: float | None
    titles: tuple[tuple[float, float, str], ...]


def heat_colour(gap: float) -> str:
    """Red for worse than the median, blue for better, pale near it (``gap`` > 0 = worse)."""
    strength = min(abs(gap) / HEAT_RANGE, 1.0)
    target = (198, 40, 40) if gap > 0 else (21, 101, 192)
    base = (245, 245, 245)
    mixed = (round(b + (t - b) * strength) for b, t in zip(base, target, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*mixed)


def text_width(text: str, size: float = 11) -> int:
    """A rough width in pixels of ``text`` at font ``size``."""
    # A rough width of sans-serif text; SVG has no layout, so margins are estimated.
    return math.ceil(len(text) * size * 0.6)


def axis_labels(stats: Sequence[ConfigurationStats]) -> dict[Configuration, str]:
    """The axis label of each configuration of ``stats``."""
    models = {(s.configuration[0], s.configuration[8]) for s in stats}
    # One model and dtype (the usual run): leave them out of axis labels.
    return {s.configuration: short_label(s.configuration) if len(models) == 1
            else describe(s.configuration) for s in stats}


def bar_charts(report: FleetReport) -> list[BarChart]:
    """One chart per configuration: a bar per host (median of its slots), dots per slot."""
    # configuration -> host -> rows, in run order (one pass instead of a scan per host).
    rows_by_configuration: dict[Configuration, dict[str, list[HostRecord]]] = defaultdict(
        lambda: defaultdict(list))
    for row in report.run.rows:
        rows_by_configuration[row.record.configuration][row.host].append(row)
    missing: dict[tuple[str, Configuration], int] = defaultdict(int)
    for item in report.analysis.missing:
        missing[(item.host, item.configuration)] += 1
    outliers = {(o.host, o.configuration) for o in report.analysis.outliers}
    hosts = list(dict.fromkeys(member[0] for member in report.members))
    row_height, width = 18, 460
    left = max((text_width(h) for h in hosts), default=40) + 12
    right = 64
    plot_width = width - left - right
    charts: list[BarChart] = []
    for stat in report.analysis.stats:
        by_host = rows_by_configuration[stat.configuration]
        values = [r.record.value for group in by_host.values() for r in group
                  if r.record.value is not None]
        top_value = max(values, default=0.0) * 1.08 or 1.0

        def x_of(value: float, top: float = top_value) -> float:
            return round(max(value, 0.0) / top * plot_width, 1)

        bars: list[Bar] = []
        for i, host in enumerate(hosts):
            host_rows = by_host.get(host, ())
            host_values = sorted(r.record.value for r in host_rows if r.record.value is not None)
            y = 24 + i * row_height
            value = median_of(host_values)
            failed = sum(1 for r in host_rows if r.record.value is None)
            lacking = missing.get((host, stat.configuration), 0)
            notes = [f"{failed} failed"] if failed else []
            notes += [f"{lacking} missing"] if lacking else []
            note = ", ".join(notes)
            if not host_rows and not note:
                continue  # a host that never ran this configuration (e.g. skipped)
            dots = tuple(
                (x_of(r.record.value), r.slot, r.record.value)
                for r in host_rows if r.record.value is not None
            )
            bars.append(Bar(host, y, x_of(value) if value is not None else None, value, dots,
                            (host, stat.configuration) in outliers, note))
        height = 24 + len(bars) * row_height + 10
        # Re-pack rows so skipped hosts leave no gaps.
        bars = [Bar(b.host, 24 + i * row_height, b.width, b.value, b.dots, b.outlier, b.note)
                for i, b in enumerate(bars)]
        charts.append(BarChart(
            title=describe(stat.configuration), unit=stat.unit,
            better="higher is better" if stat.higher_is_better else "lower is better",
            width=width, height=height, left=left, plot_width=plot_width,
            median_x=x_of(stat.median) if stat.median is not None else None,
            median=stat.median, bars=tuple(bars), row_height=row_height,
            flagged=any(b.outlier or b.note for b in bars),
        ))
    return charts


def heat_map(report: FleetReport) -> HeatMap:
    """Host/slot rows x configuration columns; colour = distance from the fleet median."""
    stats = report.analysis.stats
    labels = axis_labels(stats)
    members = report.members
    values = {(r.host, r.slot, r.configuration): r.record.value for r in report.run.rows}
    present = {(r.host, r.slot, r.configuration) for r in report.run.rows}
    outliers = {(o.host, o.slot, o.configuration) for o in report.analysis.outliers}
    cell = 16
    left = max((text_width(f"{h}/{s}") for h, s in members), default=40) + 10
    # Column labels are rotated by -60°: their height is about sin(60°) of their width.
    top = max((text_width(label, 10) for label in labels.values()), default=40) * 0.87 + 14
    top_px = math.ceil(top)
    cells: list[HeatCell] = []
    names = [describe(stat.configuration) for stat in stats]
    for row_index, (host, slot) in enumerate(members):
        serials = slot_serials(report, host, slot)
        gpu = "" if serials == "?" else f" (GPU {serials})"
        for column, stat in enumerate(stats):
            key = (host, slot, stat.configuration)
            x, y = left + column * cell, top_px + row_index * cell
            name = f"{host}/{slot}{gpu} — {names[column]}"
            if key not in present:
                cells.append(HeatCell(x, y, "#ffffff", f"{name}: no result", "–"))
                continue
            value = values[key]
            if value is None:
                cells.append(HeatCell(x, y, "#424242", f"{name}: failed measurement", "×"))
                continue
            gap = worse_by(value, stat.median, stat.metric) if stat.median else 0.0
            mark = "!" if key in outliers else ""
            cells.append(HeatCell(
                x, y, heat_colour(gap),
                f"{name}: {format_number(value)} {stat.unit} "
                f"({format_percent(-gap, signed=True)} vs median {format_number(stat.median)})"
                f"{' — outlier' if mark else ''}",
                mark,
            ))
    return HeatMap(
        width=left + len(stats) * cell + 200,
        height=top_px + len(members) * cell + 10,
        left=left, top=top_px, cell=cell,
        rows=tuple((top_px + i * cell, f"{h}/{s}") for i, (h, s) in enumerate(members)),
        columns=tuple((left + i * cell, labels[s.configuration]) for i, s in enumerate(stats)),
        cells=tuple(cells),
    )


def sparklines(report: FleetReport) -> list[Sparkline]:
    """Fleet median per configuration over the stored comparable runs (≥ 2 runs)."""
    by_configuration: dict[Configuration, list[tuple[str, float | None]]] = defaultdict(list)
    for point in report.trends:
        if point.host is None:
            by_configuration[point.configuration].append((point.run_id, point.median))
    width, height, pad = 180, 32, 3
    lines: list[Sparkline] = []
    for stat in report.analysis.stats:
        series = [(run, v) for run, v in by_configuration.get(stat.configuration, [])
                  if v is not None]
        if len(series) < 2:
            continue
        values = [v for _, v in series]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        step = (width - 2 * pad) / (len(series) - 1)
        coords = [(round(pad + i * step, 1),
                   round(height - pad - (v - low) / span * (height - 2 * pad), 1))
                  for i, v in enumerate(values)]
        first, last = values[0], values[-1]
        change = -worse_by(last, first, stat.metric) if first else None
        lines.append(Sparkline(
            label=describe(stat.configuration), unit=stat.unit,
            points=" ".join(f"{x},{y}" for x, y in coords), last=coords[-1],
            first_value=first, last_value=last, change=change,
            titles=tuple((x, y, f"{run}: {format_number(v)} {stat.unit}")
                         for (x, y), (run, v) in zip(coords, series, strict=True)),
        ))
    return lines


def heat_legend() -> list[tuple[int, str, str]]:
    """Swatches of the heat map: x, fill, caption."""
    steps = (-HEAT_RANGE, -HEAT_RANGE / 2, 0.0, HEAT_RANGE / 2, HEAT_RANGE)
    swatches = [(i * 76, heat_colour(gap),
                 "median" if gap == 0 else f"{abs(gap):.0%} {'worse' if gap > 0 else 'better'}")
                for i, gap in enumerate(steps)]
    swatches += [(5 * 76 + 24, "#424242", "failed"), (6 * 76 + 24, "#ffffff", "no result")]
    return swatches
