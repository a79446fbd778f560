"""The fleet report's data files and where they go: CSV, JSON, Markdown, writing them.

``summary.csv`` and ``summary.json`` always hold every result of the run, whatever the
size of the fleet; ``summary.md`` is a summary for a ticket, a chat message or a PR.
:func:`write_outputs` writes the asked formats (the HTML page included,
:mod:`fleetbench.reports.page`), each atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fleetbench import __version__
from fleetbench.errors import BadInput
from fleetbench.reports.fleet import HostRecord
from fleetbench.reports.fleet_report import (
    OUTPUT_FILES,
    FleetReport,
    host_rows,
    slot_serials,
    template_context,
)
from fleetbench.reports.formatting import environment
from fleetbench.reports.page import render_html
from fleetbench.reports.records import Configuration

#: Columns of ``summary.csv``: one row per host x slot x configuration record.
CSV_COLUMNS = (
    "run_id", "host", "slot", "model", "scenario", "tp", "batch_size", "num_prompts",
    "max_concurrency", "input_len", "output_len", "dtype", "metric", "value", "unit",
    "fleet_median", "vs_median", "finding", "roofline_fraction", "gpu_serials",
)


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


def render_markdown(report: FleetReport) -> str:
    """A Markdown summary (for a ticket, a chat message or a PR)."""
    context = template_context(report, ())
    return environment().get_template("summary.md.j2").render(context)


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
        write_atomically(path, writers[name]())
        written[name] = path
    return written


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
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
