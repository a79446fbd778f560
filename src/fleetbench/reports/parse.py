"""Read every era of ROCm/MAD vLLM benchmark output into canonical :class:`Record` objects.

Example files of the eras are in ``tests/fixtures/mad/``. The format of a file is detected from its
header (the first non-blank CSV row), never from its name; columns are found by header
name, so reordered, extra or missing columns, CRLF or LF line endings and a UTF-8 BOM
are all fine. The formats (:data:`FORMATS`):

``summary-report``
    Eras A-D ``<name>_{latency,throughput,serving}_report.csv``: one row per
    configuration, one ``<metric> (<unit>)`` column per metric. The scenario comes from
    the era D ``mode`` column, else from which columns exist.
``benchmark-csv``
    Era E per-benchmark ``<mad_model>_{latency,throughput,serving}.csv``: the same wide
    shape with ``in``/``out`` for the lengths; read by the same code.
``perf-packed``
    Eras B-D ``perf_<name>.csv`` (``model,performance,metric``): the configuration is
    packed into the model string and split off from the right, so model names may
    contain ``_`` and ``-``. Era D names the scenario in the string; eras B/C do not,
    and their throughput value is total tokens/s in era B but generated tokens/s in era
    C, so it becomes the metric ``throughput``. Era D's throughput value is generated
    tokens/s (MAD's era D summary and perf files agree on it), so it is ``throughput_gen``.
``perf-columns``
    Era F 13-column ``perf_<name>.csv`` (one row per metric). The ``latency`` value is
    vLLM's ``avg_latency`` in seconds although the unit column says ``ms``: it is
    converted to ms. An empty ``performance`` (the server never started) is a failed
    measurement: ``value`` None, never 0.
``mad-perf`` / ``madengine-perf``
    The MAD runner's and madengine's ``perf.csv``: one row per result, any model MAD
    ran. The MAD model name prefixed to the model string (``pyt_vllm_llama-3.1-8b_…``)
    is stripped, preferring the ``--model_repo org/name`` of the ``args`` column. The
    rest is read as ``perf-packed`` (old scripts) or ``perf-columns`` (madengine with
    the era F columns). A row whose ``status`` is not ``SUCCESS`` has ``value`` None.
    Rows that are not vLLM results (another MAD model, or a failed run's single row that
    names no configuration) are skipped: they hold nothing a record could carry.

The file name is used only as a fallback where the content lacks something: the model
name when there is no ``model`` column (``perf_<name>.csv``, ``<name>_<scenario>_report.csv``)
and the dtype when there is no ``dtype`` column (a ``reports_<dtype>…`` folder).

Metrics outside §4 (e.g. a future ``mean_ttft``) are skipped; a value that is empty, NaN
or infinite is a failed measurement (``value`` None).

Re-runs append rows to the same file: every row is kept, in file order, and records carry
no de-duplication; :func:`~fleetbench.reports.records.latest_per_configuration` keeps the
last row of each configuration when only the latest run matters. A header row repeated
inside a file (files concatenated by hand) is skipped.

A row that belongs to a recognised report but cannot be read (a damaged number, a row
with a different number of fields than the header, a configuration that does not unpack)
raises :class:`MalformedReport` naming the file and line: a half-read report would
silently change a fleet comparison.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path, PurePath
from typing import NoReturn

from fleetbench.errors import BadInput
from fleetbench.reports.records import METRIC_UNITS, SCENARIOS, Record

SUMMARY_REPORT = "summary-report"
BENCHMARK_CSV = "benchmark-csv"
PERF_PACKED = "perf-packed"
PERF_COLUMNS = "perf-columns"
MAD_PERF = "mad-perf"
MADENGINE_PERF = "madengine-perf"

#: Every format :func:`detect_format` can return, with what it is.
FORMATS: dict[str, str] = {
    SUMMARY_REPORT: "eras A-D <name>_{latency,throughput,serving}_report.csv",
    BENCHMARK_CSV: "era E per-benchmark <mad_model>_{latency,throughput,serving}.csv",
    PERF_PACKED: "eras B-D perf_<name>.csv (configuration packed in the model string)",
    PERF_COLUMNS: "era F 13-column perf_<name>.csv",
    MAD_PERF: "MAD runner perf.csv",
    MADENGINE_PERF: "madengine perf.csv",
}


class UnknownReportFormat(BadInput):
    """The text is not a MAD vLLM report fleetbench knows (wrong file, or empty)."""


class MalformedReport(BadInput):
    """A recognised MAD report whose content cannot be read (damaged or truncated)."""


# MAD's metric names (column stems, era F ``metric`` values, era D perf suffixes) → §4.
_MAD_METRICS = {
    "latency": "latency",
    "latency_per_tkn": "latency_per_token",
    "latency_per_token": "latency_per_token",
    "throughput_tot": "throughput_total",
    "throughput_gen": "throughput_gen",
    "median_ttft": "ttft_median",
    "median_tpot": "tpot_median",
    "median_itl": "itl_median",
    "median_e2el": "e2el_median",
}
_SECONDS = frozenset({"s", "sec", "secs", "second", "seconds"})

# Configuration field → the header names MAD used for it across eras.
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    "scenario": ("mode", "benchmark", "scenario"),
    "tp": ("tp",),
    "batch_size": ("batch_size", "bs"),
    "num_prompts": ("num_prompts", "requests"),
    "max_concurrency": ("max_concurrency",),
    "input_len": ("input_len", "inp", "in"),
    "output_len": ("output_len", "out"),
    "dtype": ("dtype",),
}
_MADENGINE_COLUMNS = frozenset(
    {"nnodes", "gpus_per_node", "deployment_type", "launcher", "build_number", "dataname"}
)
_METRIC_COLUMN = re.compile(r"^(?P<name>[a-z0-9_]+)\s*\((?P<unit>[^()]*)\)$")
_MISSING = frozenset({"", "nan", "none", "null", "n/a", "na"})

# Packed configurations, split from the right: the name is whatever is left over.
_DTYPE = r"(?P<dtype>[A-Za-z][A-Za-z0-9]*)"
_NUMBERS = r"(?P<tp>\d+)_(?P<count>\d+)_(?P<input_len>\d+)_(?P<output_len>\d+)"
_PACKED_SERVING = re.compile(
    rf"^(?P<name>.*)_serving_{_NUMBERS}_(?P<max_concurrency>\d+)_{_DTYPE}_(?P<metric>[a-z0-9_]+)$"
)
_PACKED_NAMED = re.compile(rf"^(?P<name>.*)_(?P<scenario>latency|throughput)_{_NUMBERS}_{_DTYPE}$")
_PACKED_PLAIN = re.compile(rf"^(?P<name>.*)_{_NUMBERS}_{_DTYPE}$")

_REPORT_FILE = re.compile(r"^(?P<name>.+?)_(?:latency|throughput|serving)(?:_report)?\.csv$", re.I)
_PERF_FILE = re.compile(r"^perf_(?P<name>.+)\.csv$", re.I)
_REPORTS_DIR = re.compile(r"^reports_(?P<dtype>[A-Za-z][A-Za-z0-9]*)")


@dataclass(frozen=True)
class _Table:
    """A CSV file as normalised header names and ``(line number, row)`` pairs."""

    source: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, Mapping[str, str]], ...]


@dataclass(frozen=True)
class _Opened:
    """A report whose header has been read and format detected; ``rows`` is the rest.

    ``rows`` continues the iterator the header came from, so every file is split into
    rows once; it can be consumed once.
    """

    source: str
    header: tuple[str, ...]
    format: str
    rows: Iterator[tuple[int, list[str]]]


def detect_format(text: str) -> str:
    """Name the MAD report format of ``text`` from its header (one of :data:`FORMATS`).

    Raises :class:`UnknownReportFormat` when the text is empty or not a MAD report.
    """
    return _open(text, "<text>").format


def parse_text(text: str, *, source_name: str | None = None) -> list[Record]:
    """Parse the content of one MAD report file into records, in file order.

    ``source_name`` (a path or file name) only names the file in error messages and
    supplies the fallbacks described in the module docstring.
    """
    return _parse_opened(_open(text, source_name or "<text>"))


def parse_file(path: Path) -> list[Record]:
    """Read and parse one MAD report file; format detected from the content."""
    return parse_text(_read_text(path), source_name=str(path))


def parse_tree(root: Path) -> list[tuple[Path, list[Record]]]:
    """Parse every MAD report among the ``*.csv`` files under ``root`` (e.g. a host folder).

    Files are visited in sorted path order. A CSV file that is not a MAD report is
    skipped; a MAD report that cannot be read raises :class:`MalformedReport`.
    Reports with no rows yet are listed with an empty record list.
    """
    return [(path, records) for path, _, records in parse_tree_formats(root)]


def parse_tree_formats(root: Path) -> list[tuple[Path, str, list[Record]]]:
    """:func:`parse_tree` with each file's format (one of :data:`FORMATS`) beside it."""
    return [(Path(source), fmt, records)
            for source, fmt, records in _parse_folder(root, prefer_summaries=False)]


def slot_reports(root: Path) -> list[tuple[str, list[Record]]]:
    """The format and records of every MAD report under one slot folder; summaries win.

    :func:`parse_tree_formats` without the paths, except that records of the other files
    (``perf_<name>.csv`` and the like) whose scenario a summary-report or per-benchmark
    CSV (:data:`WIDE_FORMATS`) of the folder covers are left out: they measure the same
    thing again and a slot keeps the summary's (see
    :func:`fleetbench.reports.fleet.collect_run`). Every row of every file is still read
    and checked, so a damaged file raises exactly as with :func:`parse_tree_formats`.
    """
    return [(fmt, records)
            for _, fmt, records in _parse_folder(root, prefer_summaries=True)]


def _parse_folder(root: Path, *, prefer_summaries: bool) -> list[tuple[str, str, list[Record]]]:
    """(path, format, records) per MAD report under ``root``, paths as ``str(Path)``."""
    if not root.is_dir():
        raise BadInput(f"{root}: not a folder — give the folder collected from a host")
    opened: list[tuple[str, _Opened]] = []
    undecodable: MalformedReport | None = None
    for source in _csv_files(root):
        try:
            text = _read_text(source)
        except MalformedReport as exc:
            # Undecodable bytes matter only in a file whose header says it is a MAD report.
            with open(source, "rb") as stream:  # noqa: PTH123 - a str path, no Path per file
                loose = stream.read().decode("utf-8", errors="replace")
            if _format_or_none(loose, source) is not None:
                undecodable = exc
                break  # files after it were never reached
            continue
        try:
            opened.append((source, _open(text, source)))
        except UnknownReportFormat:
            continue
    # Summary reports first (they decide which scenarios the others may add); the first
    # damaged file in path order is the one reported, whatever order they were read in.
    order = sorted(range(len(opened)), key=lambda i: (
        not prefer_summaries or opened[i][1].format not in WIDE_FORMATS, i))
    parsed: dict[int, list[Record]] = {}
    failures: dict[int, MalformedReport] = {}
    covered: set[str] = set()
    for index in order:
        report = opened[index][1]
        skip = frozenset(covered) if report.format not in WIDE_FORMATS else frozenset()
        try:
            parsed[index] = _parse_opened(report, skip)
        except MalformedReport as exc:
            failures[index] = exc
            continue
        if prefer_summaries and report.format in WIDE_FORMATS:
            covered.update(record.scenario for record in parsed[index])
    if failures:
        raise failures[min(failures)]
    if undecodable is not None:
        raise undecodable
    return [(source, report.format, parsed[i]) for i, (source, report) in enumerate(opened)]


def _csv_files(root: Path) -> list[str]:
    """The ``*.csv`` files under ``root`` in ``sorted(root.rglob("*"))`` order, as ``str(path)``.

    os.scandir, not rglob (much slower per file); like rglob (and os.walk) it does not
    descend into symlinked folders, and paths sort by their parts as Path objects do.
    Strings, not Path objects: a fleet has tens of thousands of these files.
    """
    top = str(root)  # normalised by Path, so joining names onto it stays normalised
    found: list[tuple[tuple[str, ...], str]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(top, ())]
    while pending:
        folder, parts = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            continue  # an unreadable folder, as os.walk and rglob skip it
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            name = entry.name
            if is_dir:
                if not entry.is_symlink():
                    pending.append((entry.path, (*parts, name)))
            elif name.lower().endswith(".csv") and name.lower() != ".csv" and entry.is_file():
                found.append(((*parts, name), entry.path))
    found.sort(key=lambda item: item[0])
    if top == ".":  # scandir(".") names "./x", which Path writes as "x"
        return [path.removeprefix("./") for _, path in found]
    return [path for _, path in found]


def _format_or_none(text: str, source: str) -> str | None:
    try:
        return _open(text, source).format
    except UnknownReportFormat:
        return None


def _read_text(path: Path | str) -> str:
    try:
        with open(path, "rb") as stream:  # noqa: PTH123 - also takes a str path (see _csv_files)
            data = stream.read()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror}) — check the path") from exc
    try:
        # utf-8-sig: a BOM left by a spreadsheet must not become part of the first column.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedReport(
            f"{path}: not UTF-8 text (byte {exc.start}) — re-collect the file from the host"
        ) from exc


# --- reading the CSV -----------------------------------------------------------------


def _normalise(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of a CSV text with csv.reader's line numbers."""
    # newline="" lets csv see CRLF and newlines inside quoted fields (the era F cmd).
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as exc:
        raise MalformedReport(
            f"{source} line {reader.line_num}: not readable as CSV ({exc}) — "
            "re-collect the file from the host"
        ) from exc


def _open(text: str, source: str) -> _Opened:
    """Read the header of ``text`` and detect its format; UnknownReportFormat if none."""
    rows = _csv_rows(text, source)
    try:
        first = next(rows, None)
    except MalformedReport as exc:
        raise UnknownReportFormat(f"{source}: not a CSV file — {_WHAT_TO_GIVE}") from exc
    if first is None:
        raise UnknownReportFormat(f"{source}: empty file — {_WHAT_TO_GIVE}")
    header = _header(tuple(first[1]))
    return _Opened(source, header, _detect(header, source), rows)


@functools.lru_cache(maxsize=256)
def _header(cells: tuple[str, ...]) -> tuple[str, ...]:
    # A fleet's files share a handful of headers: each is normalised once.
    return tuple(_normalise(cell) for cell in cells)


def _is_header(cells: Sequence[str], header: tuple[str, ...]) -> bool:
    """True for a header repeated inside the file (files concatenated by hand)."""
    # Normalise the whole row only when it may be the header (cheap checks first).
    return (len(cells) == len(header) and _normalise(cells[0]) == header[0]
            and tuple(_normalise(cell) for cell in cells) == header)


def _width_error(source: str, line: int, cells: Sequence[str], header: Sequence[str]) -> None:
    if len(cells) != len(header):
        raise MalformedReport(
            f"{source} line {line}: {len(cells)} fields where the header has "
            f"{len(header)} — the row is damaged or truncated; re-collect the file"
        )


def _raise_first(opened: _Opened, error: MalformedReport) -> NoReturn:
    """Raise what reading the whole table first raises first: a later row of the wrong
    width (or a later CSV error) before ``error``, a bad value found on the way."""
    for line, cells in opened.rows:
        if not _is_header(cells, opened.header):
            _width_error(opened.source, line, cells, opened.header)
    raise error


def _read_table(opened: _Opened) -> _Table:
    header = opened.header
    rows: list[tuple[int, Mapping[str, str]]] = []
    for line, cells in opened.rows:
        if _is_header(cells, header):
            continue
        _width_error(opened.source, line, cells, header)
        rows.append((line, dict(zip(header, cells, strict=True))))
    return _Table(opened.source, header, tuple(rows))


# --- detection -----------------------------------------------------------------------

_WHAT_TO_GIVE = (
    "give a MAD *_report.csv, perf_<name>.csv, per-benchmark CSV or MAD/madengine perf.csv"
)


def _metric_columns(header: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Canonical metric → (column, unit) for the ``name (unit)`` columns of a wide table."""
    found: dict[str, tuple[str, str]] = {}
    for column in header:
        match = _METRIC_COLUMN.match(column)
        if match and match["name"] in _MAD_METRICS:
            found.setdefault(_MAD_METRICS[match["name"]], (column, match["unit"].strip()))
    return found


def _has(header: Sequence[str], field: str) -> bool:
    return any(alias in header for alias in _COLUMN_ALIASES[field])


@functools.lru_cache(maxsize=256)
def _format_of(header: tuple[str, ...]) -> str | None:
    # A fleet's files share a handful of headers: each is looked at once.
    columns = set(header)
    if {"performance", "metric"} <= columns:
        if {"model", "status"} <= columns:
            return MADENGINE_PERF if columns & _MADENGINE_COLUMNS else MAD_PERF
        if "benchmark" in columns:
            return PERF_COLUMNS
        if "model" in columns:
            return PERF_PACKED
    if _metric_columns(header) and (_has(header, "tp") or _has(header, "input_len")):
        return SUMMARY_REPORT if "input_len" in columns else BENCHMARK_CSV
    return None


def _detect(header: tuple[str, ...], source: str) -> str:
    fmt = _format_of(header)
    if fmt is not None:
        return fmt
    shown = ",".join(header)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    raise UnknownReportFormat(
        f"{source}: not a MAD vLLM report (header: {shown}) — {_WHAT_TO_GIVE}"
    )


# --- values --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One CSV row with the context needed to explain a bad value."""

    source: str
    line: int
    cells: Mapping[str, str]

    def bad(self, problem: str) -> MalformedReport:
        return MalformedReport(
            f"{self.source} line {self.line}: {problem} — the report is damaged; "
            "re-collect it from the host or remove the row"
        )

    def text(self, field: str) -> str | None:
        """The first non-missing value among the aliases of ``field``."""
        for alias in _COLUMN_ALIASES.get(field, (field,)):
            value = self.cells.get(alias, "").strip()
            if value.lower() not in _MISSING:
                return value
        return None

    def optional_int(self, field: str) -> int | None:
        value = self.text(field)
        return None if value is None else self.to_int(value, field)

    def required_int(self, field: str) -> int:
        value = self.optional_int(field)
        if value is None:
            raise self.bad(f"no {field} value")
        return value

    def to_int(self, value: str, field: str) -> int:
        try:
            return int(value)
        except ValueError:
            pass
        try:
            # pandas writes an int column holding any NaN as floats ("8.0").
            number = float(value)
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise self.bad(f"{field} {value!r} is not a whole number")
        return int(number)

    def measurement(self, column: str, label: str) -> float | None:
        value = self.cells.get(column, "").strip()
        if value.lower() in _MISSING:
            return None
        try:
            number = float(value)
        except ValueError:
            raise self.bad(f"{label} {value!r} is not a number") from None
        # NaN/inf mean the benchmark produced no usable number: a failed measurement.
        return number if math.isfinite(number) else None


def _to_unit(metric: str, value: float | None, unit: str) -> float | None:
    """Convert a value given in ``unit`` to the §4 unit of ``metric``."""
    if value is not None and METRIC_UNITS[metric] == "ms" and unit.strip().lower() in _SECONDS:
        return value * 1000.0
    return value


def _model_hint(source: str) -> str | None:
    name = PurePath(source).name
    match = _PERF_FILE.match(name) or _REPORT_FILE.match(name)
    return match["name"] if match else None


def _dtype_hint(source: str) -> str | None:
    for part in reversed(PurePath(source).parts[:-1]):
        match = _REPORTS_DIR.match(part)
        if match:
            return match["dtype"]
    return None


def _model(row: _Row, value: str | None) -> str:
    model = value or _model_hint(row.source)
    if not model:
        raise row.bad("no model name (no model column and no perf_<name>.csv file name)")
    return model


def _dtype(row: _Row) -> str:
    dtype = row.text("dtype") or _dtype_hint(row.source)
    if not dtype:
        raise row.bad("no dtype (no dtype column and no reports_<dtype> folder)")
    return dtype


def _scenario(row: _Row, value: str) -> str:
    scenario = value.strip().lower()
    if scenario not in SCENARIOS:
        raise row.bad(f"scenario {value!r} is not one of {', '.join(SCENARIOS)}")
    return scenario


# --- the formats ---------------------------------------------------------------------

#: The wide formats (one row per configuration, one column per metric): a slot's summary.
WIDE_FORMATS = frozenset({SUMMARY_REPORT, BENCHMARK_CSV})

_Configuration9 = tuple[str, str, int, int | None, int | None, int | None, int, int, str]


def _parse_opened(report: _Opened, skip: frozenset[str] = frozenset()) -> list[Record]:
    """The records of an opened report, leaving out those of a scenario in ``skip``.

    The rows of a skipped scenario are still read and checked.
    """
    if report.format in WIDE_FORMATS:
        records = _parse_wide(report)
    elif report.format == PERF_PACKED:
        return _parse_perf_packed(report, skip)
    else:
        records = _PARSERS[report.format](_read_table(report))
    return [r for r in records if r.scenario not in skip] if skip else records


def _wide_scenario(header: Sequence[str], metrics: Mapping[str, object]) -> str:
    """The scenario of a wide table without a ``mode`` column, from the columns it has."""
    if "max_concurrency" in header or {"ttft_median", "tpot_median", "itl_median"} & set(metrics):
        return "serving"
    if "latency" in metrics or "latency_per_token" in metrics:
        return "latency"
    return "throughput"


def _last_index(header: Sequence[str], column: str) -> int:
    # A row is read as dict(zip(header, cells)): a repeated column name means its last cell.
    return len(header) - 1 - header[::-1].index(column)


@dataclass(frozen=True)
class _WideLayout:
    """Where a wide table's header keeps each field (the cells the slow path would read)."""

    metrics: tuple[tuple[str, str, str], ...]  # metric, column, unit — §4 order
    default_scenario: str
    # Per configuration field: the index of the first of its aliases the header has.
    at: Mapping[str, int | None]
    # Per metric: index of its column and the factor to its §4 unit.
    values: tuple[tuple[str, int, float], ...]


@functools.lru_cache(maxsize=256)
def _wide_layout(header: tuple[str, ...]) -> _WideLayout:
    columns = _metric_columns(header)
    # §4 order, whatever order the columns are in.
    metrics = tuple((metric, *columns[metric]) for metric in METRIC_UNITS if metric in columns)
    at: dict[str, int | None] = {}
    for field, aliases in _COLUMN_ALIASES.items():
        present = [alias for alias in aliases if alias in header]
        at[field] = _last_index(header, present[0]) if present else None
    values = tuple((metric, _last_index(header, column), 1000.0 if _to_unit(metric, 1.0, unit)
                    == 1000.0 else 1.0) for metric, column, unit in metrics)
    return _WideLayout(metrics, _wide_scenario(header, columns), at, values)


def _wide_row(row: _Row, layout: _WideLayout) -> list[Record]:
    """The records of one wide row, every value checked (any row the fast path declines)."""
    mode = row.text("scenario")
    model, dtype = _model(row, row.text("model")), _dtype(row)
    scenario = _scenario(row, mode) if mode else layout.default_scenario
    tp, input_len, output_len = (row.required_int(f) for f in ("tp", "input_len", "output_len"))
    batch_size, num_prompts, max_concurrency = (
        row.optional_int(f) for f in ("batch_size", "num_prompts", "max_concurrency")
    )
    return [
        Record(
            model=model,
            scenario=scenario,
            tp=tp,
            batch_size=batch_size,
            num_prompts=num_prompts,
            max_concurrency=max_concurrency,
            input_len=input_len,
            output_len=output_len,
            dtype=dtype,
            metric=metric,
            value=_to_unit(metric, row.measurement(column, column), unit),
            unit=METRIC_UNITS[metric],
        )
        for metric, column, unit in layout.metrics
    ]


def _parse_wide(report: _Opened) -> list[Record]:
    """Eras A-E: one row per configuration, one column per metric.

    A row whose cells are all plain (model, dtype and scenario present, whole numbers,
    numeric or NaN values) takes a fast path that reads them by position; any other row
    (a blank or damaged cell, an alias to fall back to, a repeated header: none of them
    has a whole number under ``tp``) is read by :func:`_wide_row`, cell by cell, as
    before, so both give the same records and the same errors.
    """
    header, source = report.header, report.source
    layout = _wide_layout(header)
    at = layout.at
    model_at, scenario_at, dtype_at = at["model"], at["scenario"], at["dtype"]
    tp_at, in_at, out_at = at["tp"], at["input_len"], at["output_len"]
    batch_at, prompts_at, concurrency_at = (
        at["batch_size"], at["num_prompts"], at["max_concurrency"])
    hints: dict[str, str | None] = {}  # file-name fallbacks, worked out when first needed
    texts: dict[str, str] = {}  # cell → stripped text, "" when it is a missing value
    scenarios: dict[str, str | None] = {}  # mode cell → scenario, None when not one
    width = len(header)
    plain = tp_at is not None and in_at is not None and out_at is not None
    isfinite, trusted = math.isfinite, Record.trusted

    def text(cell: str) -> str:
        known = texts.get(cell)
        if known is None:
            stripped = cell.strip()
            known = texts[cell] = "" if stripped.lower() in _MISSING else stripped
        return known

    def hint(field: str) -> str:
        if field not in hints:
            hints[field] = (_model_hint if field == "model" else _dtype_hint)(source)
        return hints[field] or ""

    def fast(cells: list[str]) -> list[Record] | None:
        model = (text(cells[model_at]) if model_at is not None else "") or hint("model")
        dtype = (text(cells[dtype_at]) if dtype_at is not None else "") or hint("dtype")
        if not model or not dtype:
            return None
        scenario = layout.default_scenario
        if scenario_at is not None:
            mode = cells[scenario_at]
            if mode not in scenarios:
                value = mode.strip().lower()
                scenarios[mode] = value if value in SCENARIOS else None
            named = scenarios[mode]
            if named is None:
                return None  # blank (another alias may say) or not a scenario: slow path
            scenario = named
        try:
            configuration: _Configuration9 = (
                model, scenario, int(cells[tp_at]),  # type: ignore[index]
                None if batch_at is None else int(cells[batch_at]),
                None if prompts_at is None else int(cells[prompts_at]),
                None if concurrency_at is None else int(cells[concurrency_at]),
                int(cells[in_at]), int(cells[out_at]), dtype,  # type: ignore[index]
            )
            numbers = [(metric, float(cells[index]), factor)
                       for metric, index, factor in layout.values]
        except ValueError:
            return None
        return [trusted(configuration, metric,
                        (number * factor if factor != 1.0 else number)
                        if isfinite(number) else None)
                for metric, number, factor in numbers]

    records: list[Record] = []
    for line, cells in report.rows:
        found = fast(cells) if plain and len(cells) == width else None
        if found is None:
            if _is_header(cells, header):
                continue  # a header repeated by concatenated files
            _width_error(source, line, cells, header)
            try:
                found = _wide_row(_Row(source, line, dict(zip(header, cells, strict=True))),
                                  layout)
            except MalformedReport as exc:
                _raise_first(report, exc)
        records.extend(found)
    return records


@functools.lru_cache(maxsize=4096)
def _unpacked(
    packed: str, unit: str,
) -> tuple[str, _Configuration9, str, float] | None:
    """``(name, configuration, metric, factor)`` of an era B-D packed model string.

    None when the string is no vLLM result. ``name`` (also the configuration's model) is
    what is left once the configuration is split off; it may be empty. ``factor``
    converts the value to the metric's §4 unit. A fleet's perf files repeat the same
    strings in every slot, so each is split once.
    """
    unit = unit.strip().lower()
    serving = _PACKED_SERVING.match(packed)
    named = None if serving else _PACKED_NAMED.match(packed)
    plain = None if serving or named else _PACKED_PLAIN.match(packed)
    match = serving or named or plain
    if match is None:
        return None
    # The groups are \d+: int() always reads them.
    count = int(match["count"])
    batch_size = num_prompts = max_concurrency = None
    if serving:
        scenario = "serving"
        metric = _MAD_METRICS.get(serving["metric"])
        if metric is None:
            return None  # a metric outside §4
        num_prompts = count
        max_concurrency = int(serving["max_concurrency"])
    else:
        if named:
            scenario = named["scenario"]
        elif unit in {"ms", *_SECONDS}:
            scenario = "latency"
        elif unit.startswith("tok"):
            scenario = "throughput"
        else:
            return None  # not a vLLM unit: another model's result
        if scenario == "latency":
            metric = "latency"
            batch_size = count
        else:
            # Era D wrote generated tok/s; eras B/C do not say which (see module docstring).
            metric = "throughput_gen" if named else "throughput"
            num_prompts = count
    factor = 1000.0 if _to_unit(metric, 1.0, unit) == 1000.0 else 1.0
    configuration: _Configuration9 = (
        match["name"], scenario, int(match["tp"]), batch_size, num_prompts, max_concurrency,
        int(match["input_len"]), int(match["output_len"]), match["dtype"])
    return match["name"], configuration, metric, factor


def _unpack(row: _Row, packed: str, unit: str, value: float | None) -> Record | None:
    """A record from an era B-D packed model string; None when the string is no vLLM result.

    The record's model is what is left of the string once the configuration is split off.
    """
    unpacked = _unpacked(packed, unit)
    if unpacked is None:
        return None
    name, configuration, metric, factor = unpacked
    model = _model(row, name)
    return Record(model, *configuration[1:], metric=metric,
                  value=value * factor if value is not None and factor != 1.0 else value,
                  unit=METRIC_UNITS[metric])


def _parse_perf_packed(report: _Opened, skip: frozenset[str] = frozenset()) -> list[Record]:
    """Eras B-D ``perf_<name>.csv``: ``model,performance,metric``.

    Records of a scenario in ``skip`` are left out, their rows still checked. A row with
    a number (or NaN) and a configuration that unpacks with a name is read by position;
    any other (a blank or damaged value, a repeated header) cell by cell.
    """
    header, source = report.header, report.source
    model_at, value_at, metric_at = (_last_index(header, column)
                                     for column in ("model", "performance", "metric"))
    width = len(header)
    isfinite, trusted = math.isfinite, Record.trusted
    records: list[Record] = []
    for line, cells in report.rows:
        if len(cells) == width:
            try:
                number = float(cells[value_at])
            except ValueError:
                pass
            else:
                unpacked = _unpacked(cells[model_at].strip(), cells[metric_at])
                if unpacked is not None and unpacked[0]:
                    _, configuration, metric, factor = unpacked
                    if configuration[1] not in skip:
                        value = (number * factor if factor != 1.0 else number) \
                            if isfinite(number) else None
                        records.append(trusted(configuration, metric, value))
                    continue
        if _is_header(cells, header):
            continue  # a header repeated by concatenated files
        _width_error(source, line, cells, header)
        row = _Row(source, line, dict(zip(header, cells, strict=True)))
        packed = row.cells["model"].strip()
        try:
            measured = row.measurement("performance", "performance")
            record = _unpack(row, packed, row.cells["metric"], measured)
        except MalformedReport as exc:
            _raise_first(report, exc)
        if record is None:
            _raise_first(report, row.bad(
                f"model {packed!r} (metric {row.cells['metric']!r}) is not a MAD vLLM "
                "configuration such as <name>_<tp>_<batch>_<in>_<out>_<dtype>"
            ))
        if record.scenario not in skip:
            records.append(record)
    return records


def _columns_record(row: _Row, model: str, value: float | None) -> Record | None:
    """A record from an era F row (``benchmark,tp,inp,…,metric,unit``); None off §4."""
    metric = _MAD_METRICS.get(row.cells.get("metric", "").strip().lower())
    if metric is None:
        return None
    scenario = _scenario(row, row.text("scenario") or "")
    # Era F's latency is vLLM's avg_latency in seconds whatever the unit column says.
    unit = "s" if metric == "latency" else row.cells.get("unit", "")
    return Record(
        model=model,
        scenario=scenario,
        tp=row.required_int("tp"),
        batch_size=row.optional_int("batch_size"),
        num_prompts=row.optional_int("num_prompts"),
        max_concurrency=row.optional_int("max_concurrency"),
        input_len=row.required_int("input_len"),
        output_len=row.required_int("output_len"),
        dtype=_dtype(row),
        metric=metric,
        value=_to_unit(metric, value, unit),
        unit=METRIC_UNITS[metric],
    )


def _parse_perf_columns(table: _Table) -> list[Record]:
    """Era F 13-column ``perf_<name>.csv``: one row per metric."""
    records: list[Record] = []
    for line, cells in table.rows:
        row = _Row(table.source, line, cells)
        value = row.measurement("performance", "performance")
        record = _columns_record(row, _model(row, row.text("model")), value)
        if record is not None:
            records.append(record)
    return records


def _repo_names(row: _Row) -> list[str]:
    """Report names (``org/name`` → ``name``) of the models the row's command lines name."""
    names: list[str] = []
    for column in ("args", "cmd"):
        try:
            words = shlex.split(row.cells.get(column, ""))
        except ValueError:
            continue  # an unbalanced quote: this hint is simply unavailable
        for word, following in pairwise([*words, ""]):
            flag, _, inline = word.partition("=")
            if flag in {"--model_repo", "--model", "-m"}:
                repo = (inline or following).rstrip("/")
                if repo:
                    names.append(repo.rsplit("/", 1)[-1])
    return names


def _mad_model_names(row: _Row) -> list[str]:
    """MAD model names the row's ``docker_image`` (``ci-<model>[_<dockerfile>]``) implies."""
    image = row.cells.get("docker_image", "").strip()
    if not image.startswith("ci-"):
        return []
    image = image.removeprefix("ci-")
    dockerfile = PurePath(row.cells.get("docker_file", "").strip()).name
    stem = dockerfile.removesuffix(".Dockerfile")
    names = [image]
    if stem and image.endswith("_" + stem):
        names.insert(0, image.removesuffix("_" + stem))
    return names


def _strip_mad_prefix(row: _Row, name: str) -> str:
    """The report's model name from a MAD model string (``pyt_vllm_llama-3.1-8b_Llama-…``)."""
    for repo_name in _repo_names(row):
        if name == repo_name or name.endswith("_" + repo_name):
            return repo_name
    for mad_name in _mad_model_names(row):
        if name.startswith(mad_name + "_"):
            return name.removeprefix(mad_name + "_")
    # Last resort, MAD's naming convention: pyt_vllm_<one token>_<report name>.
    parts = name.split("_", 3)
    if len(parts) == 4 and parts[:2] == ["pyt", "vllm"] and parts[3]:
        return parts[3]
    return name


def _parse_mad_perf(table: _Table) -> list[Record]:
    """The MAD runner's and madengine's ``perf.csv``: every model MAD ran, one row per result."""
    records: list[Record] = []
    for line, cells in table.rows:
        row = _Row(table.source, line, cells)
        status = cells.get("status", "").strip()
        failed = bool(status) and status.upper() != "SUCCESS"
        value = None if failed else row.measurement("performance", "performance")
        model = cells["model"].strip()
        record: Record | None
        if row.text("scenario"):
            if failed and not cells["metric"].strip():
                continue  # a failed run's row names no metric
            record = _columns_record(row, _strip_mad_prefix(row, model), value)
        else:
            record = _unpack(row, model, cells["metric"], value)
            if record is not None:
                record = replace(record, model=_strip_mad_prefix(row, record.model))
        if record is not None:
            records.append(record)
    return records


# The formats read from a _Table of dicts (the wide and packed ones have their own paths).
_PARSERS: dict[str, Callable[[_Table], list[Record]]] = {
    PERF_COLUMNS: _parse_perf_columns,
    MAD_PERF: _parse_mad_perf,
    MADENGINE_PERF: _parse_mad_perf,
}
