"""The correctness probe on the lab: a slot planted to answer garbage fails while the
others pass, with the diverging text in the manifest and the report; vLLM's version from
the image lands on every host and history row."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.conftest import LabFleet
from tests.integration.test_run import CANARY, MODEL, fleetbench_containers, run_env

pytestmark = pytest.mark.lab

LAB_VLLM = "0.9.1+fleetbench.lab"


def _run(lab: LabFleet, runs: Path, *extra: str) -> tuple[int, dict[str, object]]:
    done = run_cli("run", "-i", str(lab.inventory), "--model", MODEL, "--gpus", "8",
                   "--scenario", "latency", "--slots", "2", "--runs-dir", str(runs), "--json",
                   *extra, env=run_env(runs))
    assert done.returncode in (0, 1), done.stderr
    assert CANARY not in done.stdout + done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    return done.returncode, summary


def test_a_garbage_slot_fails_correctness_while_the_others_pass(
        run_lab: LabFleet, tmp_path: Path) -> None:
    run_lab.set("lab03", "garbage=slot1")
    expected = tmp_path / "expected.yml"
    expected.write_text(f"{MODEL}:\n  capital: Paris\n  arithmetic: '42'\n")
    runs = tmp_path / "runs"
    try:
        code, summary = _run(run_lab, runs, "--expected-answers", str(expected))
    finally:
        run_lab.restore("lab03")
    assert code == 1
    run_dir = Path(str(summary["run_dir"]))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    hosts = manifest["hosts"]
    assert {h: e["status"] for h, e in hosts.items()} == {
        "lab01": "ok", "lab02": "ok", "lab03": "failed:benchmark", "lab04": "ok"}
    slots = {(h, s): e["status"] for h, entry in hosts.items()
             for s, e in entry["slots"].items()}
    assert slots.pop(("lab03", "slot1")) == "failed:correctness"
    assert set(slots.values()) == {"ok"} and len(slots) == 7
    wrong = hosts["lab03"]["slots"]["slot1"]
    assert wrong["summary"].startswith("4 of 4 answers wrong; capital: not text")
    assert "'!!!!!!!!!!" in wrong["summary"] and "(fleet: 'Paris." in wrong["summary"]
    assert hosts["lab03"]["reason"].startswith("1 of 2 slots not ok: slot1 failed:correctness")
    assert manifest["plan"]["expected_answers"] == {MODEL: {"capital": "Paris",
                                                            "arithmetic": "42"}}

    # Every slot answered, in its own container, and the answers were collected.
    for host in hosts:
        for slot in ("slot0", "slot1"):
            probe = json.loads((run_dir / "hosts" / host / slot / "correctness.json")
                               .read_text())
            assert probe["method"] == "offline"  # latency slots run at once: no port
            assert probe["tp"] == 8 and probe["dtype"] == "float16" and probe["seed"] == 0
            texts = [a["text"] for a in probe["answers"]]
            assert len(texts) == 4
            if (host, slot) == ("lab03", "slot1"):
                assert set(texts) == {"!" * 32}
            else:
                assert texts[0].startswith(" Paris.") and texts[1] == " 42"
    findings = manifest["correctness"]
    assert findings["probed"] == 8 and findings["passed"] == 7 and findings["groups"] == 1
    (failed,) = findings["failed"]
    assert (failed["host"], failed["slot"]) == ("lab03", "slot1")
    assert [d["prompt_id"] for d in failed["divergences"]] == [
        "capital", "arithmetic", "counting", "translation"]
    assert failed["divergences"][0]["got"] == "!" * 32
    assert failed["divergences"][0]["majority"].startswith("Paris.")

    # The report: the findings, the line on the page, and no numbers of the wrong slot.
    report = json.loads((run_dir / "report" / "summary.json").read_text())
    assert report["gate"]["failed"] is True
    assert report["correctness"] == findings
    assert {(r["host"], r["slot"]) for r in report["records"]} == {
        (h, s) for h in hosts for s in ("slot0", "slot1")} - {("lab03", "slot1")}
    page = (run_dir / "report" / "index.html").read_text()
    line = page[page.index('<p id="correctness"'):]
    line = line[:line.index("</p>")]
    assert "7 of 8 slots answered" in line
    assert "<b>lab03/slot1</b>" in line and "!!!!!!!!" in line

    # vLLM's version, read from the image, on every host of the manifest and history.
    assert {e["vllm_version"] for e in hosts.values()} == {LAB_VLLM}
    with sqlite3.connect(runs / "history.sqlite") as db:
        stored = db.execute("SELECT host, vllm_version FROM hosts WHERE run_id = ?",
                            (manifest["run_id"],)).fetchall()
    assert sorted(stored) == [(h, LAB_VLLM) for h in sorted(hosts)]
    assert fleetbench_containers() == []


def test_no_correctness_runs_no_probe(run_lab: LabFleet, tmp_path: Path) -> None:
    run_lab.set("lab03", "garbage=slot1")
    try:
        code, summary = _run(run_lab, tmp_path / "runs", "--limit", "lab03",
                             "--no-correctness")
    finally:
        run_lab.restore("lab03")
    assert code == 0
    run_dir = Path(str(summary["run_dir"]))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["plan"]["correctness"] is False
    assert "correctness" not in manifest
    assert manifest["hosts"]["lab03"]["status"] == "ok"
    assert not list(run_dir.glob("hosts/*/slot*/correctness.json"))
    assert list(run_dir.glob("hosts/lab03/slot1/benchmark.log"))
