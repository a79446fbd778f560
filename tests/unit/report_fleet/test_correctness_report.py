"""The correctness probe in the fleet report: its findings in summary.json, one line on the
page naming the slot, its GPU and the diverging text, and no numbers of a wrong slot."""

from __future__ import annotations

import json
from pathlib import Path

from fleetbench.reports.build import build_report
from tests.unit.report_fleet.fleet_runs import HostSpec, healthy_fleet, write_run

FINDINGS = {
    "probed": 6, "passed": 5, "groups": 1, "no_majority": [], "unknown_expected": [],
    "failed": [{"host": "lab02", "slot": "slot1",
                "reason": "4 of 4 answers wrong; capital: not text (only 0 of 32 characters "
                          "are letters or digits): '!!!!!!!!' (fleet: 'Paris.')",
                "divergences": []}],
}


def _run_with_a_wrong_slot(root: Path) -> Path:
    run_dir = write_run(root, healthy_fleet(3, lab02=HostSpec(
        status="failed:benchmark", reason="1 of 2 slots not ok", slot_gpus=True)))
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["hosts"]["lab02"]["slots"]["slot0"]["status"] = "ok"
    manifest["hosts"]["lab02"]["slots"]["slot1"]["status"] = "failed:correctness"
    manifest["correctness"] = FINDINGS
    manifest_path.write_text(json.dumps(manifest))
    return run_dir


def test_a_wrong_slot_is_a_finding_and_its_numbers_do_not_count(tmp_path: Path) -> None:
    run_dir = _run_with_a_wrong_slot(tmp_path)
    report = build_report(run_dir, history_db=None)
    assert report.gate_failed
    data = json.loads((run_dir / "report" / "summary.json").read_text())
    assert data["correctness"] == FINDINGS
    slots = {(r["host"], r["slot"]) for r in data["records"]}
    assert ("lab02", "slot1") not in slots and ("lab02", "slot0") in slots
    assert len(slots) == 5
    page = (run_dir / "report" / "index.html").read_text()
    line = page[page.index('<p id="correctness" class="bad">'):]
    line = line[:line.index("</p>")]
    assert "5 of 6 slots answered" in line
    assert "<b>lab02/slot1</b> (GPU LAB02-GPU1) failed:" in line
    assert "&#39;!!!!!!!!&#39; (fleet: &#39;Paris.&#39;)" in line


def test_a_run_without_the_probe_has_no_line(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(2))
    build_report(run_dir, history_db=None)
    assert json.loads((run_dir / "report" / "summary.json").read_text())["correctness"] is None
    assert 'id="correctness"' not in (run_dir / "report" / "index.html").read_text()
