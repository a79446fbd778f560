"""Thresholds per partition mode, and scaled from an SPX baseline by the partition's share."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.errors import BadInput
from fleetbench.reports.fleet import HostRecord
from fleetbench.reports.records import Record
from fleetbench.reports.stats import fleet_statistics
from fleetbench.reports.thresholds import check_thresholds, load_thresholds

MODES = {"cpx1": ("CPX", "NPS4"), "cpx2": ("CPX", "NPS4"), "spx1": ("SPX", "NPS1")}


def rows(values: dict[str, float], metric: str = "throughput_total") -> list[HostRecord]:
    unit = "tok/s" if metric.startswith("throughput") else "ms"
    scenario = "throughput" if metric.startswith("throughput") else "latency"
    batch, prompts = (None, 1000) if scenario == "throughput" else (1, None)
    return [HostRecord(host, "slot0", Record("Llama-3.1-8B-Instruct", scenario, 1, batch,
                                             prompts, None, 128, 128, "float16", metric,
                                             value, unit))
            for host, value in values.items()]


def rules(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "thresholds.yml"
    path.write_text(text)
    return load_thresholds(path)


def check(found_rows: list[HostRecord], thresholds):  # type: ignore[no-untyped-def]
    return check_thresholds(found_rows, fleet_statistics(found_rows), thresholds, MODES)


def test_scaled_from_spx_serves_both_fleets(tmp_path: Path) -> None:
    thresholds = rules(tmp_path, "- metric: throughput_total\n  min: 8000\n  scale_from: SPX\n")
    # SPX needs 8000; a CPX partition 8000 / 8 = 1000.
    violations, unmatched = check(rows({"cpx1": 1100.0, "cpx2": 900.0, "spx1": 8100.0}),
                                  thresholds)
    assert unmatched == []
    assert [(v.host, v.value, v.threshold.minimum) for v in violations] == [
        ("cpx2", 900.0, 1000.0)]
    assert "scaled SPX→CPX x0.125" in violations[0].threshold.name
    violations, _ = check(rows({"cpx1": 1100.0, "spx1": 7000.0}), thresholds)
    assert [(v.host, v.threshold.minimum) for v in violations] == [("spx1", 8000.0)]


def test_scaled_time_bounds_grow_with_a_smaller_share(tmp_path: Path) -> None:
    thresholds = rules(tmp_path, "- metric: latency\n  max: 500\n  scale_from: SPX\n")
    violations, _ = check(rows({"cpx1": 3900.0, "cpx2": 4100.0, "spx1": 450.0}, "latency"),
                          thresholds)
    assert [(v.host, v.threshold.maximum) for v in violations] == [("cpx2", 4000.0)]


def test_rules_per_mode_and_median_per_mode(tmp_path: Path) -> None:
    thresholds = rules(tmp_path, (
        "- metric: throughput_total\n  compute_partition: CPX\n  min: 1000\n  of: median\n"
        "- metric: throughput_total\n  compute_partition: SPX\n  memory_partition: NPS1\n"
        "  min: 8000\n"))
    violations, unmatched = check(rows({"cpx1": 950.0, "cpx2": 990.0, "spx1": 7900.0}),
                                  thresholds)
    assert unmatched == []
    assert [(v.host, v.value) for v in violations] == [(None, 970.0), ("spx1", 7900.0)]
    # A CPX-only rule on an SPX-only fleet matched nothing: said, not passed silently.
    _, unmatched = check(rows({"spx1": 9000.0}), thresholds[:1])
    assert unmatched == list(thresholds[:1])


def test_bad_mode_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="compute_partition: 'XPX' — use one of SPX"):
        rules(tmp_path, "- metric: latency\n  max: 1\n  compute_partition: XPX\n")


def test_regression_names_what_changed(tmp_path: Path) -> None:
    from fleetbench.cli import main
    from tests.unit.report_fleet.fleet_runs import HostSpec, write_run

    base = write_run(tmp_path / "a", {h: HostSpec() for h in ("lab01", "lab02")},
                     run_id="20261101T040000Z-0001")
    slower = {h: HostSpec(factor=0.8, digest="sha256:" + "b2" * 32) for h in ("lab01", "lab02")}
    run = write_run(tmp_path / "b", slower, run_id="20261102T040000Z-0002")
    assert main(["report", "build", str(run), "--baseline", str(base), "--no-history",
                 "--format", "json,md"]) == 1
    import json
    data = json.loads((run / "report" / "summary.json").read_text())
    assert data["baseline"]["changes"] == [
        f"image digest: sha256:{'a1' * 32} → sha256:{'b2' * 32} (lab01, lab02)"]
    assert any("changed since the baseline: image digest" in h
               for h in data["gate"]["headlines"])
    assert "Changed since the baseline: image digest" in (run / "report" / "summary.md"
                                                           ).read_text()
