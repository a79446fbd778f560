"""The report's fast paths write exactly what the plain ones did (json, dataclasses)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from fleetbench.reports.analysis import analyse
from fleetbench.reports.fleet import collect_run
from fleetbench.reports.fleet_report import FleetReport
from fleetbench.reports.outputs import render_json, report_data
from fleetbench.reports.records import Record
from tests.unit.report_fleet.fleet_runs import Edit, HostSpec, healthy_fleet, write_run


def test_record_to_dict_and_configuration_match_the_dataclass() -> None:
    record = Record("m", "serving", 1, None, 8, 4, 128, 2048, "float16", "ttft_median",
                    None, "ms")
    assert record.to_dict() == asdict(record)
    assert list(record.to_dict()) == [f.name for f in fields(Record)]
    assert record.configuration == tuple(asdict(record).values())[:-2]
    changed = replace(record, model="other")
    assert changed.configuration[0] == "other" and changed != record


def test_summary_json_is_plain_indented_json(tmp_path: Path) -> None:
    hosts = healthy_fleet(3, lab02=HostSpec(edits=(Edit("serving", 0, "median_ttft (ms)"),
                                                   Edit("latency", 1))))
    run = collect_run(write_run(tmp_path, hosts))
    report = FleetReport(run=run, analysis=analyse(run))
    text = render_json(report)
    assert text == json.dumps(report_data(report), indent=2) + "\n"
    assert any(r["value"] is None for r in json.loads(text)["records"])


def test_summary_json_without_records(tmp_path: Path) -> None:
    run = collect_run(write_run(tmp_path, healthy_fleet(2, lab02=HostSpec(reports=False),
                                                         lab01=HostSpec(reports=False))))
    report = FleetReport(run=run, analysis=analyse(run))
    assert render_json(report) == json.dumps(report_data(report), indent=2) + "\n"
