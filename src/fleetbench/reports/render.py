"""Build and write the fleet report of a run: HTML, Markdown, CSV, JSON, Prometheus.

:func:`build_report` is the whole ``fleetbench report build``: collect the run
(:mod:`fleetbench.reports.fleet`), compare (:mod:`fleetbench.reports.stats`), store it in
the history database (:mod:`fleetbench.history`) and write the outputs under
``RUN/report/``.

The HTML page is one self-contained file (inline CSS, inline SVG charts drawn by our own
Jinja2 templates, no JavaScript, no external URL), so it can be mailed, archived or
served from anywhere. Chart geometry is computed here; the templates only place it.

**Large fleets.** Per slot, 500 hosts x 8 slots made a 100 MB page nobody could open. Above
:data:`PAGE_LIMITS` (64 hosts or 256 host slots) the page is summarised: a box at its top
says what it aggregates (hosts without findings named only, a heat-map row per host with
findings plus one for all others, bar charts with those hosts and the best and worst of
the rest, drift as the odd hosts out, tables capped with a note of what is left out). The
CSV and JSON files always hold every result; smaller runs get the page unchanged.
"""

from __future__ import annotations

import calendar
import csv
import functools
import gc
import io
import json
import math
import os
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Final, Literal

import jinja2
import markupsafe

from fleetbench import __version__, history
from fleetbench.errors import BadInput
from fleetbench.forked import Forked
from fleetbench.history import TrendPoint
from fleetbench.reports.fleet import FleetRun, HostRecord, collect_run
from fleetbench.reports.plausibility import describe_fraction
from fleetbench.reports.records import METRIC_UNITS, Configuration
from fleetbench.reports.stats import (
    BaselineRef,
    ConfigurationStats,
    FleetAnalysis,
    GateOptions,
    analyse,
    configuration_dict,
    describe,
    host_facts,
    load_thresholds,
    short_label,
    worse_by,
)

REPORT_DIR = "report"
#: Output formats of ``report build`` and the file each writes under ``RUN/report/``.
OUTPUT_FILES: Final = {
    "html": "index.html",
    "csv": "summary.csv",
    "json": "summary.json",
    "md": "summary.md",
}
DEFAULT_FORMATS = ("html", "csv", "json")


class DefaultHistory(Enum):
    """The type of :data:`DEFAULT`."""

    PATH = "default"


#: ``history_db`` default of :func:`build_report`: the default history database.
DEFAULT: Final = DefaultHistory.PATH
#: What ``history_db`` takes: a database path, None (no history) or :data:`DEFAULT`.
HistoryChoice = Path | None | Literal[DefaultHistory.PATH]


@dataclass(frozen=True)
class FleetReport:
    """What ``report build`` produced: the run, its analysis and the files written."""

    run: FleetRun
    analysis: FleetAnalysis
    trends: tuple[TrendPoint, ...] = ()
    history_db: Path | None = None
    outputs: Mapping[str, Path] = field(default_factory=dict)

    @property
    def gate_failed(self) -> bool:
        """True when a gate failed (the CLI exits 1)."""
        return self.analysis.gate.failed

    @cached_property
    def members(self) -> tuple[tuple[str, str], ...]:
        """Every host/slot with a result or expected to have one, hosts in run order.

        Computed once: the charts, tables and data files all walk the fleet by it.
        """
        order = {host.name: i for i, host in enumerate(self.run.hosts)}
        seen: dict[tuple[str, str], None] = {}
        for row in self.run.rows:
            seen[(row.host, row.slot)] = None
        for item in self.analysis.missing:
            seen[(item.host, item.slot)] = None

        def key(member: tuple[str, str]) -> tuple[int, int, str]:
            digits = member[1].removeprefix("slot")
            return (order.get(member[0], len(order)),
                    int(digits) if digits.isdigit() else 0, member[1])

        return tuple(sorted(seen, key=key))

    @cached_property
    def table(self) -> tuple[HostRecord, ...]:
        """The canonical table by host (run order), slot, then configuration (statistics
        order): the rows of ``summary.csv`` and ``summary.json``, sorted once for both."""
        hosts = {host.name: i for i, host in enumerate(self.run.hosts)}
        slots = {member: i for i, member in enumerate(self.members)}
        position = {s.configuration: i for i, s in enumerate(self.analysis.stats)}.get
        # sorted(rows, key=(host, slot, configuration)), a slot's rows sorted on their own:
        # every host slot has its own (host, slot) position, and its rows come together.
        blocks: dict[tuple[int, int], list[HostRecord]] = {}
        host: str | None = None
        slot: str | None = None
        block: list[HostRecord] = []
        for row in self.run.rows:
            if row.slot != slot or row.host != host:
                host, slot = row.host, row.slot
                block = blocks.setdefault(
                    (hosts.get(host, len(hosts)), slots.get((host, slot), 0)), [])
            block.append(row)
        ordered: list[HostRecord] = []
        for key in sorted(blocks):
            ordered.extend(sorted(blocks[key],
                                  key=lambda r: position(r.record.configuration, 0)))
        return tuple(ordered)


#: Columns of ``summary.csv``: one row per host x slot x configuration record.
CSV_COLUMNS = (
    "run_id", "host", "slot", "model", "scenario", "tp", "batch_size", "num_prompts",
    "max_concurrency", "input_len", "output_len", "dtype", "metric", "value", "unit",
    "fleet_median", "vs_median", "finding", "roofline_fraction", "gpu_serials",
)
# Heat-map colours saturate at this relative distance from the median.
HEAT_RANGE = 0.2

@cache
def _environment() -> jinja2.Environment:
    # One per process: compiling the templates took longer than rendering a small page.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fleetbench.reports", "templates"),
        # HTML templates escape everything they print; the Markdown one escapes by hand.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.filters["pct"] = format_percent
    env.filters["short_digest"] = short_digest
    env.filters["md"] = markdown_cell
    return env


def format_number(value: float | None) -> str:
    """A measurement for people: ``15,152``, ``1,570``, ``36.4``, ``12.3``; ``—`` when None."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_percent(value: float | None, signed: bool = False) -> str:
    """``5.3 %``; ``+5.3 %`` when ``signed``; ``—`` when None."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value * 100:+.1f} %" if signed else f"{value * 100:.1f} %"


def short_digest(value: str | None) -> str:
    """The first 12 hex digits of an image digest or commit (``?`` when unknown)."""
    if not value:
        return "?"
    return value.removeprefix("sha256:")[:12]


def markdown_cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


# --- chart geometry ---------------------------------------------------------------------


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

    @property
    def bars_html(self) -> markupsafe.Markup:
        """The bars as SVG, exactly what a Jinja loop over them wrote, built in Python."""
        left, unit, row = self.left, _html(self.unit), self.row_height
        parts: list[str] = []
        for bar in self.bars:
            dots = "".join(f"; {_html(slot)} {_html(format_number(value))}"
                           for _, slot, value in bar.dots)
            outlier = " — outlier" if bar.outlier else ""
            note = f" — {bar.note}" if bar.note else ""
            parts.append(
                f'    <g class="bar{" outlier" if bar.outlier else ""}">\n'
                f"      <title>{_html(bar.host)}: {_html(format_number(bar.value))} {unit}"
                f"{dots}{outlier}{_html(note)}</title>\n"
                f'      <text x="{left - 6}" y="{bar.y + row - 6}" text-anchor="end"'
                f' class="label">{_html(bar.host)}</text>\n')
            if bar.width is not None:
                parts.append(f'      <rect x="{left}" y="{bar.y + 2}" width="{bar.width}"'
                             f' height="{row - 5}" class="fill"/>\n')
                cy = bar.y + (row - 1) / 2
                parts.extend(f'      <circle cx="{left + x}" cy="{cy}" r="2.5" class="dot"/>\n'
                             for x, _, _ in bar.dots)
                value_note = f" ({bar.note})" if bar.note else ""
                parts.append(f'      <text x="{left + bar.width + 4}" y="{bar.y + row - 6}"'
                             f' class="value">{_html(format_number(bar.value))}'
                             f"{_html(value_note)}</text>\n")
            else:
                parts.append(f'      <text x="{left + 4}" y="{bar.y + row - 6}"'
                             f' class="value bad">{_html(bar.note or "no result")}</text>\n')
            parts.append("    </g>\n")
        return _markup("".join(parts))


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

    @property
    def cells_html(self) -> markupsafe.Markup:
        """The cells as SVG, exactly what a Jinja loop over them wrote, built in Python.

        A large fleet has hundreds of thousands of cells: per-cell template logic and
        escaping dominated the page's rendering.
        """
        side = self.cell - 1
        half = side / 2
        size = f'" width="{side}" height="{side}" fill="'
        parts: list[str] = []
        for cell in self.cells:
            parts.append(f'  <g>\n    <title>{_html(cell.title)}</title>\n'
                         f'    <rect x="{cell.x}" y="{cell.y}{size}{_html(cell.fill)}"'
                         ' class="cell"/>\n')
            if cell.mark:
                light = " light" if cell.mark == "×" else ""
                parts.append(f'    <text x="{cell.x + half}" y="{cell.y + self.cell - 4}"'
                             f' text-anchor="middle" class="mark{light}">{_html(cell.mark)}'
                             '</text>\n')
            parts.append("  </g>\n")
        return _markup("".join(parts))


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


def _html(value: object) -> str:
    """``value`` as Jinja's autoescape prints it (markupsafe's escaping), as a plain str."""
    return (str(value).replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
            .replace("'", "&#39;").replace('"', "&#34;"))


def _markup(html: str) -> markupsafe.Markup:
    """Mark SVG/HTML built by the ``*_html`` properties as safe: they escape every value."""
    return markupsafe.Markup(html)  # noqa: S704 - each interpolated value went through _html


def heat_colour(gap: float) -> str:
    """Red for worse than the median, blue for better, pale near it (``gap`` > 0 = worse)."""
    strength = min(abs(gap) / HEAT_RANGE, 1.0)
    target = (198, 40, 40) if gap > 0 else (21, 101, 192)
    base = (245, 245, 245)
    mixed = (round(b + (t - b) * strength) for b, t in zip(base, target, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*mixed)


def _text_width(text: str, size: float = 11) -> int:
    # A rough width of sans-serif text; SVG has no layout, so margins are estimated.
    return math.ceil(len(text) * size * 0.6)


def _members(report: FleetReport) -> list[tuple[str, str]]:
    """Every host/slot with a result or expected to have one, hosts in run order."""
    return list(report.members)


def _labels(stats: Sequence[ConfigurationStats]) -> dict[Configuration, str]:
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
    hosts = list(dict.fromkeys(member[0] for member in _members(report)))
    row_height, width = 18, 460
    left = max((_text_width(h) for h in hosts), default=40) + 12
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
            value = _median(host_values)
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


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def heat_map(report: FleetReport) -> HeatMap:
    """Host/slot rows x configuration columns; colour = distance from the fleet median."""
    stats = report.analysis.stats
    labels = _labels(stats)
    members = _members(report)
    values = {(r.host, r.slot, r.configuration): r.record.value for r in report.run.rows}
    present = {(r.host, r.slot, r.configuration) for r in report.run.rows}
    outliers = {(o.host, o.slot, o.configuration) for o in report.analysis.outliers}
    cell = 16
    left = max((_text_width(f"{h}/{s}") for h, s in members), default=40) + 10
    # Column labels are rotated by -60°: their height is about sin(60°) of their width.
    top = max((_text_width(label, 10) for label in labels.values()), default=40) * 0.87 + 14
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


@dataclass(frozen=True)
class MissingGroup:
    """The configurations one host/slot lacks; ``every``: all of them (it measured nothing,
    e.g. its host was unreachable), so the page need not list them."""

    member: str
    configurations: tuple[str, ...]
    every: bool = False


def missing_groups(report: FleetReport) -> list[MissingGroup]:
    """Missing results grouped per host/slot (one line per slot instead of per result), in
    the fleet's host and slot order."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in report.analysis.missing:
        groups[(item.host, item.slot)].append(describe(item.configuration))
    position = {member: index for index, member in enumerate(report.members)}
    configurations = len(report.analysis.stats)
    return [MissingGroup(f"{host}/{slot}", tuple(groups[(host, slot)]),
                         every=len(groups[(host, slot)]) == configurations)
            for host, slot in sorted(groups, key=lambda m: position.get(m, len(position)))]


@dataclass(frozen=True)
class OutlierGroup:
    """The outliers of one host/slot: how many and how far off."""

    member: str
    count: int
    typical: float
    worst: float
    worst_configuration: str
    serials: str = "?"


def outlier_groups(report: FleetReport) -> list[OutlierGroup]:
    """Outliers per host/slot: a slow slot is one line, not one per configuration."""
    groups: dict[tuple[str, str], list[tuple[float, Configuration]]] = defaultdict(list)
    for outlier in report.analysis.outliers:
        groups[(outlier.host, outlier.slot)].append((outlier.worse_by, outlier.configuration))
    result = []
    for (host, slot), items in groups.items():
        gaps = sorted(gap for gap, _ in items)
        worst_gap, worst = max(items, key=lambda item: item[0])
        result.append(OutlierGroup(f"{host}/{slot}", len(items), _median(gaps) or 0.0,
                                   worst_gap, describe(worst), slot_serials(report, host, slot)))
    return result


@dataclass(frozen=True)
class PivotRow:
    """One configuration across every host/slot."""

    label: str
    unit: str
    cells: tuple[tuple[str, str], ...]

    @property
    def cells_html(self) -> markupsafe.Markup:
        """The row's ``<td>`` cells, built in Python (a large fleet has thousands per row)."""
        return _markup("".join(f'<td class="num {_html(css)}">{_html(text)}</td>'
                                for text, css in self.cells))


@dataclass(frozen=True)
class Pivot:
    """The canonical table as configurations x host/slot (the HTML's "all results")."""

    members: tuple[str, ...]
    rows: tuple[PivotRow, ...]


def pivot_table(report: FleetReport,
                members: Sequence[tuple[str, str]] | None = None) -> Pivot:
    """Every result: one row per configuration, one column per host/slot (``members``)."""
    if members is None:
        members = _members(report)
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


# --- large fleets: the summarised page ------------------------------------------------------


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
    return len(report.run.hosts) > limits.hosts or len(_members(report)) > limits.slots


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
        return _median(self.values)

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
    labels = _labels(stats)
    names = [describe(stat.configuration) for stat in stats]
    hosts = list(dict.fromkeys(member[0] for member in _members(report)))
    flagged = [host for host in hosts
               if any(by_host.get(host) is not None and by_host[host].findings
                      for by_host in cells.values())]
    shown = flagged[:limits.rows]
    others = [host for host in hosts if host not in set(flagged)]
    rows = [*shown, *([f"other {len(others):,} hosts"] if others else [])]
    cell = 16
    left = max((_text_width(label) for label in rows), default=40) + 10
    top = max((_text_width(label, 10) for label in labels.values()), default=40) * 0.87 + 14
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
        dict.fromkeys(member[0] for member in _members(report)))}
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
        left = max((_text_width(h) for h in shown), default=40) + 12
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
        slots=len(_members(report)),
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
    return [member for member in _members(report) if member in flagged]


# --- the data every output shares ---------------------------------------------------------


def host_rows(report: FleetReport) -> list[dict[str, Any]]:
    """Per host: status, slots, facts and finding counts (the hosts table)."""
    analysis = report.analysis
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for outlier in analysis.outliers:
        counts[outlier.host]["outliers"] += 1
    for item in analysis.missing:
        counts[item.host]["missing"] += 1
    for row in analysis.failures:
        counts[row.host]["failed"] += 1
    for violation in analysis.violations:
        if violation.host:
            counts[violation.host]["violations"] += 1
    rows = []
    for host in report.run.hosts:
        ran = [s for s in host.slots if s.ran]
        rows.append({
            "host": host.name,
            "status": host.status,
            "ok": host.ok,
            "reason": host.reason,
            "slots": {s.name: s.status for s in host.slots},
            "slots_ok": sum(1 for s in host.slots if s.status == "ok"),
            "slots_ran": len(ran),
            "slots_not_ok": [f"{s.name}: {s.status}" for s in host.slots if s.status != "ok"],
            "image_digest": host.image_digest,
            "mad_commit": host.mad_commit,
            "compute_partition": host.compute_partition,
            "memory_partition": host.memory_partition,
            "logical_gpus": host.logical_gpus,
            "rocm_version": host.rocm_version,
            "driver_version": host.driver_version,
            "gpu_model": host.gpu_model,
            "slot_gpus": {s.name: [{"serial": g.serial, "bdf": g.bdf, "unique_id": g.unique_id,
                                    "partition": g.partition} for g in s.gpus]
                          for s in host.slots if s.gpus},
            "preflight_problems": list(host.preflight_problems),
            "preflight_warnings": list(host.preflight_warnings),
            "outliers": counts[host.name]["outliers"],
            "missing": counts[host.name]["missing"],
            "failed": counts[host.name]["failed"],
            "violations": counts[host.name]["violations"],
        })
    return rows


def roofline_text(report: FleetReport, configuration: Configuration) -> str:
    """``61 % of HBM roofline`` for the fleet median of ``configuration``, else a dash."""
    plausibility = report.analysis.plausibility
    found = None if plausibility is None else plausibility.median_fraction.get(configuration)
    return "–" if found is None else describe_fraction(*found)


def slot_serials(report: FleetReport, host: str, slot: str) -> str:
    """The GPU serials a host slot used (``S1, S2``), ``?`` when not recorded."""
    info = report.run.host(host)
    found = None if info is None else info.slot(slot)
    return ", ".join(found.serials) if found is not None and found.serials else "?"


def report_data(report: FleetReport) -> dict[str, Any]:
    """The JSON form of a report (``summary.json``, ``report build --json``)."""
    return {**_report_head(report),
            "records": [r.to_dict() for r in _table_order(report)]}


def _report_head(report: FleetReport) -> dict[str, Any]:
    """:func:`report_data` without its last key, ``records`` (the bulk of a large run)."""
    run, analysis = report.run, report.analysis
    return {
        "run_id": run.run_id,
        "run_dir": str(run.run_dir),
        "created": run.created,
        "finished": run.finished,
        "model": run.model,
        "dtype": run.dtype,
        "scenario": run.scenario,
        "plan": dict(run.plan),
        "fleetbench_version": __version__,
        "gate": analysis.gate.to_dict(),
        "options": {
            "regression_tolerance": analysis.options.regression_tolerance,
            "outlier_mads": analysis.options.outlier_mads,
            "outlier_min_gap": analysis.options.outlier_min_gap,
            "fail_on_outliers": analysis.options.fail_on_outliers,
        },
        "hosts": host_rows(report),
        "configurations": [s.to_dict() for s in analysis.stats],
        "outliers": [o.to_dict() for o in analysis.outliers],
        "missing_results": [m.to_dict() for m in analysis.missing],
        "failed_measurements": [r.to_dict() for r in analysis.failures],
        "thresholds": {
            "rules": [t.to_dict() for t in analysis.thresholds],
            "violations": [v.to_dict() for v in analysis.violations],
            "unmatched": [t.to_dict() for t in analysis.unmatched_thresholds],
        },
        "baseline": None if analysis.baseline is None else {
            "run_id": analysis.baseline.run_id,
            "source": analysis.baseline.source,
            "comparisons": [c.to_dict() for c in analysis.comparisons],
            "regressions": [c.to_dict() for c in analysis.regressions],
            "changes": list(analysis.baseline_changes),
        },
        "drift": [d.to_dict() for d in analysis.drift],
        "roofline": None if analysis.plausibility is None else analysis.plausibility.to_dict(),
        "correctness": None if run.correctness is None else dict(run.correctness),
        "unreadable_reports": [
            {"host": p.host, "slot": p.slot, "message": p.message} for p in analysis.problems
        ],
        "history": None if report.history_db is None else str(report.history_db),
    }


# Stands for the records array in the head of summary.json until it is spliced in.
_RECORDS_SLOT = "\x00fleetbench-records\x00"


def render_json(report: FleetReport) -> str:
    """``summary.json``: exactly ``json.dumps(report_data(report), indent=2) + "\\n"``.

    json's indenting encoder is pure Python and dominated a large fleet's report, so the
    records array (flat objects of scalars, one per host x slot x configuration) is
    written here with each configuration's lines encoded once; the rest goes through json.
    """
    head = _report_head(report)
    head["records"] = _RECORDS_SLOT
    text = json.dumps(head, indent=2)
    slot = json.dumps(_RECORDS_SLOT)
    if text.count(slot) != 1:  # the placeholder text inside the data itself: no shortcut
        return json.dumps(report_data(report), indent=2) + "\n"
    return text.replace(slot, _records_json(_table_order(report), level=1)) + "\n"


def _json_scalar(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value)


def _records_json(rows: Sequence[HostRecord], level: int) -> str:
    """``json.dumps([r.to_dict() for r in rows], indent=2)`` nested ``level`` deep."""
    if not rows:
        return "[]"
    outer = "  " * (level + 1)
    inner = "  " * (level + 2)
    # A record's unit follows from its metric (Record checks it), so the configuration
    # decides every line but the value's.
    bodies: dict[Configuration, tuple[str, str]] = {}
    # One flat list of pieces joined once: no string per record.
    parts = ["[\n"]
    add = parts.append
    host: str | None = None
    slot: str | None = None
    member = separator = ""
    isfinite = math.isfinite
    for row in rows:
        record = row.record
        if row.slot != slot or row.host != host:  # the table keeps a slot's rows together
            host, slot = row.host, row.slot
            member = (f'{outer}{{\n{inner}"host": {json.dumps(host)},\n'
                      f'{inner}"slot": {json.dumps(slot)},\n')
        configuration = record.configuration
        cached = bodies.get(configuration)
        if cached is None:
            fields = record.to_dict()
            del fields["value"], fields["unit"]
            body = "".join(f"{inner}{json.dumps(key)}: {json.dumps(value)},\n"
                           for key, value in fields.items())
            cached = bodies[configuration] = (
                f'{body}{inner}"value": ',
                f',\n{inner}"unit": {json.dumps(record.unit)}\n{outer}}}')
        value = record.value
        # _json_scalar, inline: this runs once per result.
        text = ("null" if value is None
                else float.__repr__(value) if type(value) is float and isfinite(value)
                else json.dumps(value))
        add(separator)
        add(member)
        add(cached[0])
        add(text)
        add(cached[1])
        separator = ",\n"
    add("\n" + "  " * level + "]")
    return "".join(parts)


def _context(report: FleetReport, formats: Sequence[str]) -> dict[str, Any]:
    """What both templates use (the Markdown summary draws no chart)."""
    analysis = report.analysis
    return {
        "report": report,
        "run": report.run,
        "analysis": analysis,
        "hosts": host_rows(report),
        "stats": analysis.stats,
        "describe": describe,
        "config": configuration_dict,
        "unit_of": lambda c: METRIC_UNITS[c[-1]],
        "missing_groups": missing_groups(report),
        "roofline_text": functools.partial(roofline_text, report),
        "serials": functools.partial(slot_serials, report),
        "outlier_groups": outlier_groups(report),
        "files": {name: OUTPUT_FILES[name] for name in formats if name != "html"},
        "version": __version__,
        "generated": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
    }


def _html_context(report: FleetReport, formats: Sequence[str]) -> dict[str, Any]:
    """:func:`_context` plus the charts, and what a summarised page aggregates."""
    context = _context(report, formats)
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
    return _environment().get_template("index.html.j2").render(
        _html_context(report, formats))


def render_markdown(report: FleetReport) -> str:
    """A Markdown summary (for a ticket, a chat message or a PR)."""
    context = _context(report, ())
    return _environment().get_template("summary.md.j2").render(context)


def render_csv(report: FleetReport) -> str:
    """``summary.csv``: a header, then one row per host x slot x configuration record.

    Written as csv.writer writes each row; the fields a row shares with others (run,
    host and slot; configuration and unit) are formatted once, not once per row.
    """
    medians = {s.configuration: s.median for s in report.analysis.stats}
    outliers: dict[tuple[str, str], set[Configuration]] = defaultdict(set)
    for outlier in report.analysis.outliers:
        outliers[(outlier.host, outlier.slot)].add(outlier.configuration)
    run_id = report.run.run_id
    plausibility = report.analysis.plausibility
    implausible = {(i.host, i.slot, i.configuration) for i in report.analysis.implausible}
    # A record's unit follows from its metric (Record checks it).
    configurations: dict[Configuration, tuple[str, float | None, str]] = {}
    # One flat list of pieces joined once: no string per row.
    parts = [_csv_fields(CSV_COLUMNS), "\n"]
    add = parts.append
    host: str | None = None
    slot: str | None = None
    member = serials = ""
    slot_outliers: set[Configuration] = set()
    for row in _table_order(report):
        record = row.record
        if row.slot != slot or row.host != host:  # the table keeps a slot's rows together
            host, slot = row.host, row.slot
            member = _csv_fields((run_id, host, slot)) + ","
            slot_outliers = outliers.get((host, slot), set())
            found = slot_serials(report, host, slot)
            serials = "," + _csv_fields(("" if found == "?" else found,)) + "\n"
        configuration = record.configuration
        shared = configurations.get(configuration)
        if shared is None:
            median = medians.get(configuration)
            shared = configurations[configuration] = (
                _csv_fields(configuration) + ",", median,
                f",{_csv_fields((record.unit,))},{_csv_number(median)},")
        text, median, unit_and_median = shared
        add(member)
        add(text)
        value = record.value
        if value is None:
            add(unit_and_median)
            add(",failed,")
            add(serials)
            continue
        add(_csv_number(value))
        add(unit_and_median)
        add(_csv_number((value - median) / median) if median else "")
        if (host, slot, configuration) in implausible:
            add(",implausible,")
        else:
            add(",outlier," if configuration in slot_outliers else ",,")
        limit = None if plausibility is None else plausibility.bound_for(row.host, configuration)
        add(_csv_number(limit.fraction(value)) if limit is not None else "")
        add(serials)
    return "".join(parts)


def _csv_fields(values: Iterable[object]) -> str:
    """``values`` as csv.writer writes them in a row (quoted where needed), no line end."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def _table_order(report: FleetReport) -> Sequence[HostRecord]:
    """The canonical table by host (run order), slot, then configuration (statistics order)."""
    return report.table


def _csv_number(value: float | int | None) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def write_outputs(report: FleetReport, folder: Path, formats: Iterable[str], *,
                  only: Iterable[str] | None = None) -> dict[str, Path]:
    """Write the asked formats into ``folder`` (``only`` those of them, when given: the page
    still links all of them); returns format → path."""
    formats = tuple(formats)
    keep = set(formats if only is None else only)
    chosen = tuple(f for f in formats if f in keep)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create {folder} ({exc.strerror}) — check its permissions") \
            from None
    writers = {
        "html": lambda: render_html(report, formats),
        "csv": lambda: render_csv(report),
        "json": lambda: render_json(report),
        "md": lambda: render_markdown(report),
    }
    written: dict[str, Path] = {}
    for name in chosen:
        path = folder / OUTPUT_FILES[name]
        _write_atomically(path, writers[name]())
        written[name] = path
    return written


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                            suffix=".tmp")
    except OSError as exc:
        raise BadInput(f"cannot write {path} ({exc.strerror}) — check the folder") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        tmp.chmod(mode)  # mkstemp makes it 0600; readers (node_exporter, a web server) need more
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- Prometheus -----------------------------------------------------------------------------

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
    _write_atomically(path, render_prometheus(report))


# --- building the report -------------------------------------------------------------


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """Validate output formats (``"html,csv"`` or a sequence) in :data:`OUTPUT_FILES` order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - OUTPUT_FILES.keys())
    if unknown or not wanted:
        raise BadInput(
            f"unknown report format {', '.join(unknown) or '(none)'} — "
            f"choose from {','.join(OUTPUT_FILES)}"
        )
    return tuple(name for name in OUTPUT_FILES if name in wanted)


def build_report(
    run_dir: Path,
    *,
    baseline: Path | None = None,
    thresholds: Path | None = None,
    formats: Iterable[str] = DEFAULT_FORMATS,
    history_db: HistoryChoice = DEFAULT,
    prometheus: Path | None = None,
    options: GateOptions | None = None,
) -> FleetReport:
    """Build the fleet report of ``run_dir`` and write it under ``RUN/report/``.

    ``baseline`` is another run directory to compare with; without it the previous
    comparable run of the history database is the baseline. ``thresholds`` is a YAML
    file (see :func:`fleetbench.reports.stats.load_thresholds`). ``history_db`` is the
    SQLite history (``DEFAULT``: :func:`fleetbench.history.default_history_path`; None:
    no history at all). ``prometheus`` is a node_exporter textfile to write. Bad input
    (not a run directory, a bad thresholds file, an unknown format) raises BadInput
    before anything is written. The gate verdict is ``report.gate_failed``.
    """
    with _cycle_collector_paused():
        return _build_report(run_dir, baseline=baseline, thresholds=thresholds,
                             formats=formats, history_db=history_db, prometheus=prometheus,
                             options=options)


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a report is built.

    A large run allocates millions of small objects that form no cycles (records, rows,
    tuples, strings); the collector, triggered every few hundred allocations, walked
    them over and over (a third of the parsing time of 500 hosts x 8 slots). Reference
    counting frees them as before; cycles made meanwhile wait for the collector's return.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: Written after the run is in the history: the page shows the trends.
PAGE_FORMATS = ("html",)


def _store_and_write_page(report: FleetReport, folder: Path, formats: Sequence[str]) -> None:
    """Store ``report``'s run in its history (if any), then write the page (when one of
    ``formats``) with the trends."""
    db = report.history_db
    if db is not None:
        history.store_run(db, report.run, gate_failed=report.analysis.gate.failed)
        trends = tuple(history.trends(db, comparable_to=report.run, limit=history.TREND_RUNS))
        report = FleetReport(run=report.run, analysis=report.analysis, trends=trends,
                             history_db=db)
    write_outputs(report, folder, formats, only=PAGE_FORMATS)


def _build_report(
    run_dir: Path,
    *,
    baseline: Path | None,
    thresholds: Path | None,
    formats: Iterable[str],
    history_db: HistoryChoice,
    prometheus: Path | None,
    options: GateOptions | None,
) -> FleetReport:
    wanted = parse_formats(formats)
    rules = load_thresholds(thresholds) if thresholds is not None else ()
    run = collect_run(Path(run_dir))
    db = history.default_history_path() if history_db is DEFAULT else history_db

    baseline_rows: tuple[HostRecord, ...] | None = None
    baseline_medians: dict[Configuration, float] | None = None
    baseline_ref: BaselineRef | None = None
    baseline_facts: dict[str, dict[str, str | None]] | None = None
    if baseline is not None:
        base = collect_run(Path(baseline))
        baseline_rows = base.rows
        baseline_ref = BaselineRef(run_id=base.run_id, source=f"run directory {baseline}")
        baseline_facts = host_facts(base)
    elif db is not None and db.exists():
        previous = history.previous_comparable_run(db, run)
        if previous is not None:
            baseline_medians = history.fleet_medians(db, previous)
            baseline_ref = BaselineRef(run_id=previous, source=f"history {db}")
            baseline_facts = history.run_attribution(db, previous)

    analysis = analyse(
        run,
        thresholds=rules,
        baseline_rows=baseline_rows,
        baseline_medians=baseline_medians,
        baseline=baseline_ref,
        options=options or GateOptions(),
        baseline_facts=baseline_facts,
    )
    folder = run.run_dir / REPORT_DIR
    report = FleetReport(run=run, analysis=analysis, history_db=db)
    # The history and the page (whose sparklines read the history) are done in a child
    # process, on the other core, while this one writes the other files.
    with Forked(functools.partial(_store_and_write_page, report, folder, wanted),
                "storing the run in the history and writing the page"):
        write_outputs(report, folder, wanted, only=[f for f in wanted if f not in PAGE_FORMATS])
    outputs = {name: folder / OUTPUT_FILES[name] for name in wanted}
    trends: tuple[TrendPoint, ...] = ()
    if db is not None:
        trends = tuple(history.trends(db, comparable_to=run, limit=history.TREND_RUNS))
        report = FleetReport(run=run, analysis=analysis, trends=trends, history_db=db)
    if prometheus is not None:
        write_prometheus(report, Path(prometheus))
        outputs = {**outputs, "prometheus": Path(prometheus)}
    return FleetReport(run=run, analysis=analysis, trends=trends, history_db=db,
                       outputs=outputs)
