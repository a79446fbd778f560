"""The fleet report's HTML page renders in a real headless Chromium, offline and error-free."""

from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.reports import page as html_page
from tests.unit.report_fleet.fleet_runs import Edit, HostSpec, healthy_fleet, write_run

CHROMIUM = Path("/usr/bin/chromium")
# One report for the whole module: its tests stay on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("report_html")

HOSTS = ("lab01", "lab02", "lab03", "lab04", "lab05")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM.exists(), "Debian's chromium is needed at /usr/bin/chromium"
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         *args],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report with every section filled: outlier, regression, drift, failures, trends."""
    root = tmp_path_factory.mktemp("report-html")
    db = root / "history.sqlite"
    first = write_run(root / "a", healthy_fleet(5), run_id="20261126T040000Z-0001",
                      created="2026-11-26T04:00:00Z")
    assert main(["report", "build", str(first), "--history", str(db)]) == 0
    hosts = healthy_fleet(
        5,
        lab02=HostSpec(factor=0.93, digest="sha256:" + "b2" * 32),
        lab03=HostSpec(factor=0.75),
        lab04=HostSpec(factor=0.93, edits=(Edit("throughput", 1, slots=(1,)),
                                           Edit("serving", 0, "median_ttft (ms)"))),
        lab05=HostSpec(status="unreachable", reason="ssh: connect to host lab05 port 22: "
                       "Connection refused", reports=False),
    )
    hosts["lab01"] = HostSpec(factor=0.93)
    second = write_run(root / "b", hosts, run_id="20261127T040000Z-0002",
                       created="2026-11-27T04:00:00Z")
    assert main(["report", "build", str(second), "--history", str(db)]) == 1
    page = second / "report" / "index.html"
    assert page.is_file()
    return page


def test_the_page_is_self_contained(report_page: Path) -> None:
    html = report_page.read_text()
    assert "http://" not in html and "https://" not in html
    references = re.findall(r"""(?:src|href|xlink:href)\s*=\s*["']?([^"'\s>]*)""", html)
    assert all(not ref.startswith("//") and ":" not in ref for ref in references), references
    assert "<script" not in html and "@import" not in html and "url(" not in html


def test_dom_has_hosts_and_charts(report_page: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, "--dump-dom", report_page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    for host in HOSTS:
        assert host in dom
    assert dom.count("<svg") > 64  # heat map, legend, 64 bar charts, trend lines
    assert 'class="heat"' in dom and 'class="bars"' in dom and 'class="spark"' in dom
    assert "Gate failed" in dom and "regressions against the baseline" in dom
    assert "image digest — differs" in dom
    # lab04's two, and every result of the unreachable lab05's two planned slots.
    assert "Failed measurements (2)" in dom and f"Missing results ({2 + 2 * 64})" in dom
    assert "1 host not ok: lab05 unreachable" in dom
    assert "lab03/slot0" in dom  # the planted slow host among the outliers


def test_screenshot_renders_without_console_errors(report_page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000",
                    report_page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Uncaught" not in done.stderr
    assert not [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2000)
    # A blank page compresses to a few kB; tables, heat map and charts do not.
    assert len(data) > 50_000


def test_summarised_page_of_a_large_fleet_renders(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The limits lowered so that a small run gets the large-fleet page.
    monkeypatch.setattr(html_page, "PAGE_LIMITS", html_page.PageLimits(hosts=3, slots=4, rows=2))
    hosts = healthy_fleet(6, lab02=HostSpec(factor=0.75), lab04=HostSpec(factor=0.75),
                          lab05=HostSpec(status="unreachable", reports=False))
    run_dir = write_run(tmp_path / "run", hosts)
    assert main(["report", "build", str(run_dir), "--no-history"]) == 1  # lab05 not ok
    page = run_dir / "report" / "index.html"
    done = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "Large fleet: this page is summarised." in dom
    assert 'class="heat"' in dom and "other 3 hosts" in dom
    assert "left out of this page" in dom
    shot = tmp_path / "large.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert len(shot.read_bytes()) > 50_000
