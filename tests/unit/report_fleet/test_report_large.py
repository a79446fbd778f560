"""The HTML page of a large fleet: summarised above PAGE_LIMITS, exact below; data files whole."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from fleetbench.reports import page
from fleetbench.reports.analysis import analyse
from fleetbench.reports.build import build_report
from fleetbench.reports.fleet import collect_run
from fleetbench.reports.fleet_report import FleetReport
from fleetbench.reports.page import PageLimits, summarised
from tests.unit.report_fleet.fleet_runs import (
    CONFIGURATIONS,
    Edit,
    HostSpec,
    healthy_fleet,
    write_run,
)

NOTICE = 'id="summarised"'


def page_of(run_dir: Path) -> str:
    build_report(run_dir, formats=("html", "csv", "json"), history_db=None)
    return (run_dir / "report" / "index.html").read_text()


def heat_rows(html: str) -> list[str]:
    """The row labels of the heat map, in order."""
    heat = html[html.index('<svg class="heat"'):]
    heat = heat[:heat.index("</svg>")]
    return re.findall(r'text-anchor="end" class="label">([^<]*)</text>', heat)


def one_slot_fleet(count: int) -> dict[str, HostSpec]:
    return {f"lab{i:02d}": HostSpec(slots=1) for i in range(1, count + 1)}


@pytest.mark.parametrize(("hosts", "large"), [(PageLimits().hosts, False),
                                              (PageLimits().hosts + 1, True)])
def test_host_count_threshold(tmp_path: Path, hosts: int, large: bool) -> None:
    run_dir = write_run(tmp_path, one_slot_fleet(hosts))
    run = collect_run(run_dir)
    assert summarised(FleetReport(run=run, analysis=analyse(run))) is large
    html = page_of(run_dir)
    assert (NOTICE in html) is large
    if large:
        # No host has a finding: one heat-map row stands for all of them.
        assert heat_rows(html) == [f"other {hosts} hosts"]
        assert "Heat map: hosts with findings against the fleet median" in html
    else:
        assert heat_rows(html) == [f"lab{i:02d}/slot0" for i in range(1, hosts + 1)]
        assert "Heat map: every slot against the fleet median" in html
        assert "summarised" not in html and "left out" not in html


@pytest.mark.parametrize(("hosts", "large"), [(3, False), (4, True)])
def test_host_slot_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hosts: int,
                             large: bool) -> None:
    # 2 slots per host against a limit of 6 host slots: 3 hosts fit, 4 do not.
    monkeypatch.setattr(page, "PAGE_LIMITS", PageLimits(hosts=64, slots=6))
    html = page_of(write_run(tmp_path, healthy_fleet(hosts)))
    assert (NOTICE in html) is large
    assert len(heat_rows(html)) == (1 if large else 2 * hosts)


def test_summarised_page_says_what_it_left_out(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    limits = PageLimits(hosts=3, slots=4, rows=2, chart_hosts=1, chart_extremes=1)
    monkeypatch.setattr(page, "PAGE_LIMITS", limits)
    hosts = healthy_fleet(
        6,
        lab02=HostSpec(factor=0.8),  # every result of both slots an outlier
        lab04=HostSpec(factor=0.8),
        lab05=HostSpec(edits=(Edit("latency", 0, "latency (ms)", slots=(0,)),)),
    )
    hosts["lab07"] = HostSpec(status="unreachable", reason="ssh: no route", reports=False)
    run_dir = write_run(tmp_path, hosts)
    html = page_of(run_dir)

    # The notice at the top names every aggregation and where the full data is.
    notice = html[html.index(NOTICE):html.index("</section>", html.index(NOTICE))]
    assert "Large fleet: this page is summarised." in notice
    # lab07's two planned slots count: they are missing every result.
    assert "7 hosts and 14 host slots" in notice
    assert "up to 3 hosts and 4 host slots" in notice
    assert "one row per host (the median of its slots)" in notice
    assert "at most 2 rows each" in notice
    assert f"Every one of the {6 * 2 * CONFIGURATIONS:,} results" in notice
    assert '<a href="summary.csv">summary.csv</a> and <a href="summary.json">' in notice

    # Hosts: the four that need attention, two in the table (the unreachable one first),
    # the others named only.
    hosts_section = html[html.index('<section id="hosts">'):html.index('<section id="heatmap">')]
    assert "2 of 4 hosts that are not ok or have a finding shown; the other 2 are left out" \
        in hosts_section
    assert re.findall(r"<td>(lab\d\d)</td>", hosts_section) == ["lab07", "lab02"]
    assert "3 hosts ended ok without any finding" in hosts_section
    assert "lab01, lab03, lab06" in hosts_section

    # Heat map: the first 2 of the 4 hosts with findings (lab07 misses every result), then
    # the other hosts in one row.
    assert heat_rows(html) == ["lab02", "lab04", "other 3 hosts"]
    assert "2 of 4 hosts with findings shown; the other 2 are left out" in html

    # Findings tables are capped and say so.
    assert "2 of 4 host slots with outliers shown; the other 2 are left out" in html
    assert f"2 of {4 * CONFIGURATIONS} outlier results shown" in html

    # Bar charts: one host with findings, the best and the worst of the others.
    assert "3 of 7 hosts: 1 host with findings (of 3) and the 1 best and worst of the others" \
        in html

    # The full data stays complete.
    with (run_dir / "report" / "summary.csv").open(newline="") as stream:
        assert len(list(csv.reader(stream))) == 1 + 6 * 2 * CONFIGURATIONS
    data = json.loads((run_dir / "report" / "summary.json").read_text())
    assert len(data["records"]) == 6 * 2 * CONFIGURATIONS
    assert len(data["outliers"]) == 4 * CONFIGURATIONS
    assert len(data["hosts"]) == 7


def test_summarised_page_drift_lists_only_the_hosts_that_differ(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "PAGE_LIMITS", PageLimits(hosts=2, slots=64))
    hosts = healthy_fleet(4, lab03=HostSpec(digest="sha256:" + "ee" * 32, memory="NPS1"))
    html = page_of(write_run(tmp_path, hosts))
    drift = html[html.index('<section id="drift">'):html.index("</section>",
                                                               html.index('<section id="drift">'))]
    assert "image digest — differs" in drift
    assert 'lab03 <code class="bad">eeeeeeeeeeee</code>' in drift
    assert "<th>lab01</th>" not in drift  # no column per host
    assert "<code>a1a1a1a1a1a1</code></td><td class=\"num\">3</td>" in drift


def test_without_data_files_the_page_says_how_to_get_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "PAGE_LIMITS", PageLimits(hosts=1, slots=64))
    run_dir = write_run(tmp_path, healthy_fleet(2))
    build_report(run_dir, formats=("html",), history_db=None)
    html = (run_dir / "report" / "index.html").read_text()
    assert NOTICE in html and "<code>--format html,csv,json</code>" in html
