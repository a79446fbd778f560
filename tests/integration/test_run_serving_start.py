"""A vLLM server that never comes up fails its serving slot after --serving-start-timeout,
not after the slot's --timeout, with the server's last lines; the host's other slots and the
other hosts go on. In both MAD layouts the lab runs: the report script (whose readiness loop
would wait for ever) and run.sh + run_vllm.py (30 minutes per point)."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from tests.integration.conftest import LabFleet
from tests.integration.test_run import CANARY, fleetbench_run, manifest, scan_for

pytestmark = pytest.mark.lab

LIMIT_S = 20


def _epoch(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


# run_vllm.py's healthy serving points take minutes in the lab (it polls the server every
# 30 s): its run has only the hanging host.
@pytest.mark.parametrize(("ref", "hosts"), [("v-era-d", "lab01,lab02"), ("v-era-f", "lab02")])
def test_a_server_that_never_comes_up_fails_its_slot_and_the_run_goes_on(
        run_lab: LabFleet, tmp_path: Path, ref: str, hosts: str) -> None:
    # The hanging host's engine never finishes loading: `vllm serve` never answers.
    run_lab.set("lab02", "bench=hang")
    try:
        code, summary, output = fleetbench_run(
            run_lab, tmp_path / "runs", "--scenario", "serving", "--slots", "2",
            "--limit", hosts, "--mad-ref", ref,
            "--serving-start-timeout", f"{LIMIT_S}s", "--timeout", "30m")
    finally:
        run_lab.restore("lab02")
    assert code == 1, output
    run_dir = Path(summary["run_dir"])
    entries = manifest(run_dir)["hosts"]
    assert set(entries) == set(hosts.split(","))
    if "lab01" in entries:  # the healthy host's serving slots ran as usual
        assert entries["lab01"]["status"] == "ok", entries["lab01"]
        assert {s["status"] for s in entries["lab01"]["slots"].values()} == {"ok"}
    assert entries["lab02"]["status"] == "failed:benchmark", entries["lab02"]
    slots = entries["lab02"]["slots"]
    assert set(slots) == {"slot0", "slot1"}
    for slot in slots.values():
        assert slot["status"] == "failed:server-start", slot
        assert slot["server_start_timed_out"] is True and slot["timed_out"] is False
        summary_text = slot["summary"]
        assert summary_text.startswith(
            f"the vLLM server was not up within {LIMIT_S}s, the slot was killed; serving: "
        ), summary_text
        tail = summary_text.split("last lines of its log: ", 1)[1]
        # the server's own lines: its start, and where the engine hangs
        assert "vLLM API server version" in tail
        assert "Registering CUDA graph addresses" in tail
        # killed at the serving start timeout, minutes before the slot's 30 min
        ran = _epoch(slot["finished"]) - _epoch(slot["started"])
        assert LIMIT_S <= ran < LIMIT_S + 90, slot
    # Serving slots of a host run one after another: the second started once the first
    # was killed, not after the first one's --timeout.
    gap = _epoch(slots["slot1"]["started"]) - _epoch(slots["slot0"]["finished"])
    assert 0 <= gap < 60, slots
    assert "failed:server-start" in entries["lab02"]["reason"]
    assert not scan_for(CANARY, run_dir)
