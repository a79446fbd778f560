"""Implausible results in ``report build``: the gate, the page, the data files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fleetbench.cli import main
from tests.unit.report_fleet.fleet_runs import HostSpec, healthy_fleet, write_run


def build(run_dir: Path, tmp_path: Path) -> int:
    return main(["report", "build", str(run_dir), "--history", str(tmp_path / "h.sqlite"),
                 "--format", "html,csv,json,md"])


def mi300x_spx(**values: object) -> HostSpec:
    # The era D numbers are tp 1: on a whole GPU (SPX/NPS1) at half their speed every one of
    # them is within the roofline.
    return HostSpec(gpu_model="MI300X", compute="SPX", memory="NPS1", factor=0.5,
                    slot_gpus=True, **values)  # type: ignore[arg-type]


def test_plausible_fleet_shows_its_fraction_of_the_roofline(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, {h: mi300x_spx() for h in ("lab01", "lab02", "lab03")})
    assert build(run_dir, tmp_path) == 0
    data = json.loads((run_dir / "report" / "summary.json").read_text())
    assert data["roofline"]["implausible"] == []
    fractions = {(c["scenario"], c["metric"], c["batch_size"], c["input_len"], c["output_len"]):
                 c["fraction_of_median"] for c in data["roofline"]["configurations"]}
    assert len(fractions) == 64 and all(0 < f < 1 for f in fractions.values())
    # bs1 128/128 latency: 388.28 ms at least on a whole MI300X; measured 1570.32 / 0.5.
    assert abs(fractions[("latency", "latency", 1, 128, 128)] - 388.2788 / 3140.64) < 0.002
    page = (run_dir / "report" / "index.html").read_text()
    assert "of HBM roofline" in page and "of compute roofline" in page
    rows = list(csv.DictReader((run_dir / "report" / "summary.csv").open()))
    assert all(0 < float(r["roofline_fraction"]) < 1 for r in rows)
    assert {r["gpu_serials"] for r in rows if r["slot"] == "slot1"} == {
        "LAB01-GPU1", "LAB02-GPU1", "LAB03-GPU1"}


def test_planted_impossible_number_fails_the_gate(tmp_path: Path) -> None:
    hosts = {h: mi300x_spx() for h in ("lab01", "lab02", "lab03")}
    hosts["lab02"] = mi300x_spx(slot_factors={1: 100.0})  # 50x the real speed
    run_dir = write_run(tmp_path, hosts)
    assert build(run_dir, tmp_path) == 1
    data = json.loads((run_dir / "report" / "summary.json").read_text())
    bad = data["roofline"]["implausible"]
    assert bad and {(b["host"], b["slot"]) for b in bad} == {("lab02", "slot1")}
    assert all(b["fraction"] > 1 for b in bad)
    assert any(h.startswith(f"{len(bad)} implausible result") for h in data["gate"]["headlines"])
    assert any(r.startswith("implausible — lab02/slot1: ") for r in data["gate"]["reasons"])
    page = (run_dir / "report" / "index.html").read_text()
    assert "Implausible results" in page and "LAB02-GPU1" in page
    assert "LAB02-GPU1" in (run_dir / "report" / "summary.md").read_text()
    rows = list(csv.DictReader((run_dir / "report" / "summary.csv").open()))
    flagged = {(r["host"], r["slot"]) for r in rows if r["finding"] == "implausible"}
    assert flagged == {("lab02", "slot1")}


def test_unknown_device_gets_no_bound_and_says_so(tmp_path: Path) -> None:
    hosts = healthy_fleet(2, lab02=HostSpec(factor=100.0))  # preflight without gpu_model
    run_dir = write_run(tmp_path, hosts)
    build(run_dir, tmp_path)
    data = json.loads((run_dir / "report" / "summary.json").read_text())
    assert data["roofline"]["implausible"] == []
    assert any("GPU model unknown" in line for line in data["roofline"]["unbounded"])


def test_a_slow_slot_is_named_by_its_gpu_serial(tmp_path: Path) -> None:
    hosts = {h: mi300x_spx() for h in ("lab01", "lab02", "lab03", "lab04")}
    hosts["lab03"] = mi300x_spx(slot_factors={0: 0.7})
    run_dir = write_run(tmp_path, hosts)
    build(run_dir, tmp_path)
    page = (run_dir / "report" / "index.html").read_text()
    assert "<td>lab03/slot0</td><td>LAB03-GPU0</td>" in page  # the outliers table
    assert "lab03/slot0 (GPU LAB03-GPU0) — " in page  # the heat map's cell titles
