"""``fleetbench report build A B --out DIR``: the slices of one run (AWX job slices, or
``fleetbench run --limit`` runs side by side) merge into one fleet report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.reports.fleet import collect_run, merge_runs
from tests.unit.report_fleet.fleet_runs import HostSpec, write_run


def _slices(tmp_path: Path, **b: str) -> tuple[Path, Path]:
    first = write_run(tmp_path / "runs", {"lab01": HostSpec(), "lab02": HostSpec()},
                      run_id="20261127T041747Z-aaaa")
    second = write_run(tmp_path / "runs", {"lab03": HostSpec(factor=0.5),
                                           "lab04": HostSpec()},
                       run_id="20261127T041801Z-bbbb", **b)  # type: ignore[arg-type]
    return first, second


def test_slices_merge_into_one_fleet_report(tmp_path: Path) -> None:
    first, second = _slices(tmp_path)
    out = tmp_path / "fleet"
    assert main(["report", "build", str(first), str(second), "--out", str(out),
                 "--no-history", "--format", "json,csv"]) == 0
    data = json.loads((out / "report" / "summary.json").read_text())
    assert data["run_id"] == "20261127T041747Z-aaaa+20261127T041801Z-bbbb"
    assert [h["host"] for h in data["hosts"]] == ["lab01", "lab02", "lab03", "lab04"]
    assert all(h["status"] == "ok" for h in data["hosts"])
    # Compared as one fleet: lab03, at half the speed of the others, is an outlier.
    assert {o["host"] for o in data["outliers"]} == {"lab03"}
    rows = list(csv.DictReader((out / "report" / "summary.csv").open()))
    assert {r["host"] for r in rows} == {"lab01", "lab02", "lab03", "lab04"}
    one = collect_run(first)
    assert len(rows) == 2 * len(one.rows)  # every record of both slices, once
    # The slices' own folders are left as they were.
    assert not (first / "report").exists() and not (second / "report").exists()


def test_a_merged_gate_fails_where_a_slice_did(tmp_path: Path) -> None:
    first = write_run(tmp_path / "runs", {"lab01": HostSpec()}, run_id="A")
    second = write_run(tmp_path / "runs", {"lab02": HostSpec(status="unreachable",
                                                             reports=False)}, run_id="B")
    assert main(["report", "build", str(first), str(second), "--out", str(tmp_path / "o"),
                 "--no-history", "--format", "json"]) == 1
    gate = json.loads((tmp_path / "o" / "report" / "summary.json").read_text())["gate"]
    assert [h["host"] for h in gate["hosts_not_ok"]] == ["lab02"]


def test_slices_of_different_runs_or_sharing_a_host_are_refused(tmp_path: Path) -> None:
    first, second = _slices(tmp_path, dtype="bfloat16")
    with pytest.raises(BadInput, match=r"ran different plans .*dtype 'float16' vs 'bfloat16'"):
        merge_runs([collect_run(first), collect_run(second)], tmp_path / "o")
    again = write_run(tmp_path / "more", {"lab02": HostSpec()}, run_id="C")
    with pytest.raises(BadInput, match="host lab02 is in both"):
        merge_runs([collect_run(first), collect_run(again)], tmp_path / "o")


@pytest.mark.parametrize(("extra", "says"), [
    ((), "pass --out DIR"),
    (("--out", "{first}"), "is one of the slices"),
    (("{first}", "--out", "{o}"), "given twice"),
])
def test_bad_merges_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             extra: tuple[str, ...], says: str) -> None:
    first, second = _slices(tmp_path)
    args = [a.format(first=first, o=tmp_path / "o") for a in extra]
    assert main(["report", "build", str(first), str(second), *args, "--no-history"]) == 2
    assert says in capsys.readouterr().err
    assert not (first / "report").exists() and not (tmp_path / "o" / "report").exists()
