"""``fleetbench report build`` end to end: outputs, gate exit codes, history, Prometheus."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.reports.build import build_report
from fleetbench.reports.outputs import CSV_COLUMNS
from fleetbench.reports.prometheus import escape_label
from tests.conftest import run_cli
from tests.unit.report_fleet.fleet_runs import (
    CONFIGURATIONS,
    NAME,
    Edit,
    HostSpec,
    healthy_fleet,
    write_run,
)

SLOWER = {h: HostSpec(factor=0.9) for h in ("lab01", "lab02", "lab03")}


def build(*args: str | Path) -> int:
    return main(["report", "build", *map(str, args)])


def summary(run_dir: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((run_dir / "report" / "summary.json").read_text())
    return data


# --- outputs ---------------------------------------------------------------------------------


def test_outputs_and_canonical_csv(tmp_path: Path) -> None:
    edit = Edit("serving", 1, "median_itl (ms)", slots=(0,))
    run_dir = write_run(tmp_path, healthy_fleet(3, lab02=HostSpec(edits=(edit,))))
    report = build_report(run_dir, formats=("html", "csv", "json", "md"), history_db=None)
    folder = run_dir / "report"
    assert report.outputs == {"html": folder / "index.html", "csv": folder / "summary.csv",
                              "json": folder / "summary.json", "md": folder / "summary.md"}
    assert not report.gate_failed
    with (folder / "summary.csv").open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(body) == 3 * 2 * CONFIGURATIONS
    keys = {(r["host"], r["slot"], *(r[k] for k in CSV_COLUMNS[3:13])) for r in body}
    assert len(keys) == len(body)
    failed = [r for r in body if r["finding"] == "failed"]
    assert [(r["host"], r["slot"], r["metric"], r["value"]) for r in failed] == [
        ("lab02", "slot0", "itl_median", "")]
    # The heat map marks the failed cell with the legend's multiplication sign, drawn light on its dark fill.
    page = (folder / "index.html").read_text()
    assert page.count('class="mark light">×</text>') == 1
    assert 'class="mark">x</text>' not in page
    first = body[0]
    assert (first["host"], first["slot"], first["scenario"], first["metric"]) == (
        "lab01", "slot0", "latency", "latency")
    assert float(first["vs_median"]) == pytest.approx(
        float(first["value"]) / float(first["fleet_median"]) - 1)
    data = summary(run_dir)
    assert data["gate"] == {"failed": False, "headlines": [], "reasons": [], "hosts_not_ok": [],
                            "missing_results": 0, "missing_slots": []}
    assert len(data["records"]) == len(body)  # type: ignore[arg-type]
    assert len(data["configurations"]) == CONFIGURATIONS  # type: ignore[arg-type]
    markdown = (folder / "summary.md").read_text()
    assert "## Verdict: PASS" in markdown and "lab02/slot0" in markdown


def test_default_formats_and_history(tmp_path: Path, private_history: Path) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(3))
    assert build(run_dir) == 0
    assert sorted(p.name for p in (run_dir / "report").iterdir()) == [
        "index.html", "summary.csv", "summary.json"]
    assert private_history.is_file()  # $FLEETBENCH_HISTORY, set by conftest


def test_no_history_touches_no_database(tmp_path: Path, private_history: Path) -> None:
    assert build(write_run(tmp_path, healthy_fleet(3)), "--no-history", "--format", "json") == 0
    assert not private_history.exists()


# --- findings and gates ----------------------------------------------------------------------


def test_planted_slow_host_is_an_outlier_finding(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(5, lab04=HostSpec(factor=0.8)))
    assert build(run_dir, "--no-history") == 0
    outliers = summary(run_dir)["outliers"]
    assert {(o["host"], o["slot"]) for o in outliers} == {  # type: ignore[attr-defined]
        ("lab04", "slot0"), ("lab04", "slot1")}
    assert "outliers 128" in capsys.readouterr().out
    assert build(run_dir, "--no-history", "--fail-on-outliers") == 1
    assert "outlier" in summary(run_dir)["gate"]["headlines"][0]  # type: ignore[index]


def test_planted_regression_against_a_baseline_fails(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    baseline = write_run(tmp_path / "base", healthy_fleet(3))
    slower = write_run(tmp_path / "now", healthy_fleet(3, **SLOWER),
                       run_id="20261128T041747Z-0001")
    assert build(slower, "--baseline", baseline, "--no-history") == 1
    out = capsys.readouterr().out
    assert "gate failed" in out and "64 regressions against the baseline" in out
    data = summary(slower)
    assert data["baseline"]["run_id"] == "20261127T041747Z-309a"  # type: ignore[index]
    assert len(data["baseline"]["regressions"]) == CONFIGURATIONS  # type: ignore[index]
    # A generous tolerance lets the same 10 % drop pass.
    assert build(slower, "--baseline", baseline, "--no-history",
                 "--regression-tolerance", "15%") == 0


def test_previous_comparable_run_from_history_is_the_default_baseline(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    first = write_run(tmp_path / "a", healthy_fleet(3), run_id="20261126T040000Z-0001",
                      created="2026-11-26T04:00:00Z")
    second = write_run(tmp_path / "b", healthy_fleet(3, **SLOWER),
                       run_id="20261127T040000Z-0002", created="2026-11-27T04:00:00Z")
    assert build(first, "--history", db) == 0
    assert summary(first)["baseline"] is None
    assert build(second, "--history", db) == 1
    baseline = summary(second)["baseline"]
    assert baseline["run_id"] == "20261126T040000Z-0001"  # type: ignore[index]
    assert str(db) in baseline["source"]  # type: ignore[index]
    # Rebuilding the first run's report does not compare it with the later one.
    assert build(first, "--history", db) == 0
    html = (second / "report" / "index.html").read_text()
    assert 'class="trend"' in html  # two comparable runs: trend lines


def write_thresholds(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yml"
    path.write_text(text)
    return path


def test_thresholds_violated_fail_the_gate(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(3, lab02=HostSpec(factor=0.9)))
    # Fixture: 9434 tok/s for 128/2048; lab02 delivers ~8490.
    rules = write_thresholds(tmp_path, f"""
- model: meta-llama/{NAME}
  scenario: throughput
  metric: throughput_total
  input_len: 128
  output_len: 2048
  min: 9000
""")
    assert build(run_dir, "--thresholds", rules, "--no-history") == 1
    violations = summary(run_dir)["thresholds"]["violations"]  # type: ignore[index]
    assert {(v["host"], v["slot"]) for v in violations} == {("lab02", "slot0"),
                                                            ("lab02", "slot1")}
    relaxed = write_thresholds(tmp_path, rules.read_text().replace("9000", "8000"))
    assert build(run_dir, "--thresholds", relaxed, "--no-history") == 0


def test_bad_thresholds_file_is_bad_input(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(3))
    rules = write_thresholds(tmp_path, "- metric: throughput_total\n  minimum: 9000\n")
    assert build(run_dir, "--thresholds", rules, "--no-history") == 2
    err = capsys.readouterr().err
    assert "thresholds.yml: rule 1: unknown key minimum" in err
    assert not (run_dir / "report").exists()  # nothing written on bad input


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "html,pdf"], "unknown report format pdf"),
    (["--regression-tolerance", "five"], "--regression-tolerance 'five' is not a number"),
    (["--outlier-mads", "-1"], "must be a number >= 0"),
])
def test_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                     message: str) -> None:
    assert build(write_run(tmp_path, healthy_fleet(3)), "--no-history", *args) == 2
    assert message in capsys.readouterr().err


def test_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build(tmp_path, "--no-history") == 2
    assert "not a fleetbench run directory" in capsys.readouterr().err


def test_missing_results_failures_and_host_status_are_reported(tmp_path: Path) -> None:
    hosts = healthy_fleet(
        2,
        lab03=HostSpec(edits=(Edit("throughput", 3, slots=(1,)),
                              Edit("latency", 0, "latency (ms)", slots=(0,)))),
        lab04=HostSpec(status="unreachable", reason="ssh: <timeout> & gone", reports=False),
    )
    run_dir = write_run(tmp_path, hosts)
    assert build(run_dir, "--no-history", "--format", "html,json,md") == 1
    data = summary(run_dir)
    missing = data["missing_results"]
    lab03 = {(m["host"], m["slot"], m["metric"]) for m in missing  # type: ignore[attr-defined]
             if m["host"] == "lab03"}
    assert lab03 == {("lab03", "slot1", "throughput_total"), ("lab03", "slot1", "throughput_gen")}
    lab04 = [m for m in missing if m["host"] == "lab04"]  # type: ignore[attr-defined]
    assert len(lab04) == 2 * CONFIGURATIONS  # the unreachable host lacks everything
    failed = data["failed_measurements"]
    assert [(f["host"], f["slot"], f["metric"], f["value"]) for f in failed] == [  # type: ignore[attr-defined]
        ("lab03", "slot0", "latency", None)]
    host = next(h for h in data["hosts"] if h["host"] == "lab04")  # type: ignore[attr-defined]
    assert (host["status"], host["reason"], host["missing"]) == (
        "unreachable", "ssh: <timeout> & gone", 2 * CONFIGURATIONS)
    html = (run_dir / "report" / "index.html").read_text()
    assert f"Missing results ({2 + 2 * CONFIGURATIONS})" in html
    assert "Failed measurements (1)" in html
    assert "ssh: &lt;timeout&gt; &amp; gone" in html  # autoescaped
    markdown = (run_dir / "report" / "summary.md").read_text()
    assert "## Missing results" in markdown and "## Failed measurements" in markdown


def _hosts_failed_run(tmp_path: Path) -> Path:
    """lab03 unreachable (nothing collected), lab04 skipped by preflight, lab02 short of one
    throughput row on slot1: what a nightly `report build` must not call a pass."""
    return write_run(tmp_path, healthy_fleet(
        2,
        lab02=HostSpec(edits=(Edit("throughput", 3, slots=(1,)),)),
        lab03=HostSpec(status="unreachable", reports=False,
                       reason='Data could not be sent to remote host "127.0.0.253": ssh: '
                              "connect to host 127.0.0.253 port 22: Connection refused"),
        lab04=HostSpec(status="skipped:preflight", reports=False,
                       reason="compute partition SPX, expected CPX"),
    ))


def test_report_build_of_a_run_with_failed_hosts_exits_1_and_lists_them(
        tmp_path: Path) -> None:
    run_dir = _hosts_failed_run(tmp_path)
    done = run_cli("report", "build", run_dir, "--no-history", "--format", "html,json,md")
    assert done.returncode == 1, done.stderr
    out = " ".join(done.stdout.split())  # the console wraps long lines
    assert "gate passed" not in out
    assert "gate failed" in out
    assert "2 hosts not ok: lab03 unreachable, lab04 skipped:preflight" in out
    missing = 2 + 2 * 2 * CONFIGURATIONS
    assert f"{missing} planned results missing on 5 host slots (lab02/slot1, lab03/slot0, " \
           "lab03/slot1, lab04/slot0, lab04/slot1)" in out
    assert "- host not ok — lab03: unreachable (Data could not be sent to remote host " \
           '"127.0.0.253": ssh: connect to host 127.0.0.253 port 22: Connection refused)' in out
    assert "- host not ok — lab04: skipped:preflight (compute partition SPX, expected CPX)" in out
    assert f"- missing results — lab02/slot1: 2 of {CONFIGURATIONS} planned results " \
           "(throughput tp1 n" in out

    gate = summary(run_dir)["gate"]
    assert gate["failed"] is True  # type: ignore[index]
    assert gate["hosts_not_ok"] == [  # type: ignore[index]
        {"host": "lab03", "status": "unreachable",
         "reason": 'Data could not be sent to remote host "127.0.0.253": ssh: connect to host '
                   "127.0.0.253 port 22: Connection refused"},
        {"host": "lab04", "status": "skipped:preflight",
         "reason": "compute partition SPX, expected CPX"}]
    assert gate["missing_results"] == missing  # type: ignore[index]
    assert gate["missing_slots"] == [  # type: ignore[index]
        {"host": "lab02", "slot": "slot1", "missing": 2, "of": CONFIGURATIONS},
        *({"host": host, "slot": slot, "missing": CONFIGURATIONS, "of": CONFIGURATIONS}
          for host in ("lab03", "lab04") for slot in ("slot0", "slot1"))]

    html = (run_dir / "report" / "index.html").read_text()
    assert "<title>fleetbench report 20261127T041747Z-309a — FAIL</title>" in html
    assert "<li>2 hosts not ok: lab03 unreachable, lab04 skipped:preflight</li>" in html
    assert "<li>host not ok — lab04: skipped:preflight (compute partition SPX, expected " \
           "CPX)</li>" in html
    # The missing-results table: the short slot names what it lacks, a slot that measured
    # nothing says so instead of listing every configuration.
    table = html[html.index("Missing results ("):]
    table = table[:table.index("</table>")]
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == [
        "lab02/slot1", "lab03/slot0", "lab03/slot1", "lab04/slot0", "lab04/slot1"]
    assert table.count("every configuration: nothing measured") == 4
    markdown = (run_dir / "report" / "summary.md").read_text()
    assert "## Verdict: FAIL" in markdown
    assert "- 2 hosts not ok: lab03 unreachable, lab04 skipped:preflight" in markdown
    assert f"- lab03/slot0: {CONFIGURATIONS} missing (every configuration: nothing measured)" \
        in markdown


def test_report_build_json_verdict_lists_the_hosts(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert build(_hosts_failed_run(tmp_path), "--no-history", "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["gate"]["failed"] is True
    assert [h["host"] for h in data["gate"]["hosts_not_ok"]] == ["lab03", "lab04"]
    assert data["gate"]["headlines"][0] == ("2 hosts not ok: lab03 unreachable, "
                                            "lab04 skipped:preflight")


def test_drift_is_reported(tmp_path: Path) -> None:
    hosts = healthy_fleet(2, lab03=HostSpec(digest="sha256:" + "ee" * 32, memory="NPS1"))
    run_dir = write_run(tmp_path, hosts)
    assert build(run_dir, "--no-history", "--format", "json,html") == 0
    drifted = {d["name"] for d in summary(run_dir)["drift"] if d["drifted"]}  # type: ignore[attr-defined]
    assert drifted == {"image digest", "memory partition"}
    html = (run_dir / "report" / "index.html").read_text()
    assert "image digest — differs" in html and "eeeeeeeeeeee" in html


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(3))
    assert build(run_dir, "--no-history", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gate"]["failed"] is False
    assert data["outputs"]["html"] == str(run_dir / "report" / "index.html")
    assert "records" not in data


# --- Prometheus ----------------------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>.*)\}})? (?P<value>\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """A strict reader of the text exposition format (what node_exporter accepts)."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    helped: set[str] = set()
    finished: set[str] = set()
    current = ""
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    samples = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name) and name not in helped
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"gauge", "counter", "untyped"} and name not in typed
            typed[name] = kind
            continue
        assert not line.startswith("#") and line.strip(), line
        match = _SAMPLE.match(line)
        assert match, line
        name = match["name"]
        assert name in typed, f"sample before its TYPE: {line}"
        if name != current:
            assert name not in finished, f"family {name} is not contiguous"
            finished.add(current)
            current = name
        labels: dict[str, str] = {}
        rest = match["labels"] or ""
        while rest:
            label = _LABEL.match(rest)
            assert label, f"bad labels in {line}"
            assert label[1] not in labels
            labels[label[1]] = label[2].replace('\\"', '"').replace("\\n", "\n").replace(
                "\\\\", "\\")
            rest = rest[label.end():]
        value = float(match["value"])
        key = (name, tuple(sorted(labels.items())))
        assert key not in series, f"duplicate series {line}"
        series.add(key)
        samples.append((name, labels, value))
    assert helped == set(typed)
    return samples


def test_prometheus_textfile(tmp_path: Path) -> None:
    hosts = healthy_fleet(2, lab03=HostSpec(status="failed:benchmark", reason="exit 1"),
                          lab04=HostSpec(status="unreachable", reports=False))
    run_dir = write_run(tmp_path, hosts)
    prom = tmp_path / "textfile" / "fleetbench.prom"
    prom.parent.mkdir()
    assert build(run_dir, "--no-history", "--format", "json", "--prometheus", prom) == 1
    samples = parse_prometheus(prom.read_text())
    values = [s for s in samples if s[0] == "fleetbench_benchmark_value"]
    assert len(values) == 3 * 2 * CONFIGURATIONS
    assert set(values[0][1]) == {"host", "slot", "model", "scenario", "metric", "unit", "config"}
    assert values[0][1]["config"] == "tp1_bs1_in128_out128_float16"
    host_ok = {s[1]["host"]: s[2] for s in samples if s[0] == "fleetbench_host_ok"}
    assert host_ok == {"lab01": 1.0, "lab02": 1.0, "lab03": 0.0, "lab04": 0.0}
    (gate,) = [s for s in samples if s[0] == "fleetbench_gate_failed"]
    assert gate[2] == 1.0  # two hosts not ok
    (missing,) = [s for s in samples if s[0] == "fleetbench_missing_results"]
    assert missing[2] == 2 * CONFIGURATIONS  # the unreachable lab04's two planned slots
    (stamp,) = [s for s in samples if s[0] == "fleetbench_run_timestamp_seconds"]
    assert stamp[2] == 1795753067.0  # 2026-11-27T04:17:47Z
    assert all(math.isfinite(s[2]) for s in samples)
    assert [p.name for p in prom.parent.iterdir()] == ["fleetbench.prom"]  # no temp left
    assert oct(prom.stat().st_mode & 0o777) == "0o644"


def test_prometheus_label_escaping() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    escaped = escape_label('q"\n\\')
    line = f'm{{x="{escaped}"}} 1'
    (sample,) = parse_prometheus(f"# HELP m h\n# TYPE m gauge\n{line}\n")
    assert sample[1] == {"x": 'q"\n\\'}
