"""The host's record of a run's slots (module_utils/fleetbench_slots.py): what a resumed
run starts, how slots read as results, the report rows a slot left."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import FIXTURES, module_util

ERA_D = FIXTURES / "mad" / "eraD_2025-06_rocm6.4.1"


@pytest.fixture(scope="module")
def slots() -> ModuleType:
    return module_util("fleetbench_slots")


def _slot(name: str) -> dict[str, object]:
    return {"name": name, "index": int(name[-1]), "hip_visible_devices": name[-1],
            "container": f"fleetbench-r-h-{name}"}


def _record(slots: ModuleType, **states: str) -> dict[str, object]:
    record = slots.new_record({}, run_id="r", host="h", controller={"pid": 1}, waves=[
        [_slot(name) for name in states]], timeout_s=600, token="/w/lock/hf_token")
    for name, state in states.items():
        record["slots"][name]["state"] = state
    return record


def test_a_resumed_run_starts_only_what_never_ran(slots: ModuleType) -> None:
    record = _record(slots, slot0="exited", slot1="running", slot2="lost", slot3="created",
                     slot4="failed-start")
    asked = [_slot(f"slot{i}") for i in range(6)]
    start, kept = slots.plan_start(record, asked)
    assert [s["name"] for s in start] == ["slot2", "slot3", "slot4", "slot5"]
    assert kept == ["slot0", "slot1"]
    # Asked for explicitly (--rerun-failed): a slot that ran is started again.
    start, kept = slots.plan_start(record, asked, {"slot0"})
    assert [s["name"] for s in start] == ["slot0", "slot2", "slot3", "slot4", "slot5"]
    assert kept == ["slot1"]
    # No record (a first run, or one pruned after collect): everything starts.
    assert slots.plan_start({}, asked) == (asked, [])


def test_a_new_supervisor_waits_for_slots_left_running_before_its_own_waves(
        slots: ModuleType) -> None:
    previous = _record(slots, slot0="exited", slot1="running")
    previous["supervisor"] = {"pid": 42}
    record = slots.new_record(previous, run_id="r", host="h", controller={"pid": 2},
                              waves=[[_slot("slot2")], [_slot("slot3")]], timeout_s=60,
                              token="")
    assert record["waves"] == [["slot1"], ["slot2"], ["slot3"]]
    assert record["slots"]["slot0"]["state"] == "exited"
    assert record["slots"]["slot2"]["state"] == "created"
    assert record["attempts"] == 2
    assert "supervisor" not in record  # the new one writes its own on start
    assert record["controller"] == {"pid": 2}


def test_slots_read_as_the_hosts_word_never_as_a_verdict(slots: ModuleType) -> None:
    record = _record(slots, slot0="exited", slot1="exited", slot2="lost", slot3="created",
                     slot4="failed-start", slot5="running")
    record["slots"]["slot0"].update(exit_code=0, report_rows=0)
    record["slots"]["slot1"].update(exit_code=137, timed_out=True, report_rows=3)
    record["slots"]["slot4"]["error"] = "Error response from daemon: no such device"
    record["slots"]["slot5"]["started"] = "2026-12-03T17:00:22Z"
    results = {r["name"]: r for r in slots.slot_results(record)}
    assert results["slot0"]["status"] == "exited"
    assert results["slot0"]["summary"] == ("slot0 exited 0; 0 report rows on the host "
                                           "(see slot0/benchmark.log)")
    assert results["slot1"]["status"] == "failed:timeout"
    assert results["slot1"]["summary"] == "slot1 killed after the 600s timeout; 3 report rows on the host"
    assert results["slot2"]["status"] == "failed:lost"
    assert results["slot3"]["status"] == "failed:interrupted"
    assert results["slot4"]["summary"] == ("slot4 did not start: Error response from daemon: "
                                           "no such device")
    assert results["slot5"]["status"] == "running"


def test_a_slot_settles_from_its_container(slots: ModuleType, tmp_path: Path) -> None:
    slot = {"state": "running", "started": "2026-12-03T17:00:22Z", "exit_code": None}
    assert not slots.settle(slot, {"status": "running"}, str(tmp_path))
    assert slot["state"] == "running"
    assert slots.settle(slot, {"status": "exited", "exit_code": 1, "oom_killed": True,
                               "started": None, "finished": "2026-12-03T17:09:02Z"},
                        str(tmp_path))
    assert (slot["state"], slot["exit_code"], slot["oom_killed"], slot["finished"],
            slot["started"], slot["report_rows"]) == (
        "exited", 1, True, "2026-12-03T17:09:02Z", "2026-12-03T17:00:22Z", 0)
    gone = {"state": "running"}
    assert slots.settle(gone, None, str(tmp_path))
    assert gone["state"] == "lost"


def test_a_record_without_its_supervisor_process_is_not_alive(slots: ModuleType) -> None:
    import os

    record = _record(slots, slot0="running")
    record["state"] = "running"
    record["supervisor"] = {"pid": os.getpid(), "boot_id": slots.boot_id(),
                            "process_start": slots.process_start(os.getpid())}
    assert slots.supervisor_alive(record)
    # The pid was reused by another process (another start time), or another boot.
    record["supervisor"]["process_start"] -= 1
    assert not slots.supervisor_alive(record)
    record["supervisor"].update(process_start=slots.process_start(os.getpid()),
                                boot_id="another-boot")
    assert not slots.supervisor_alive(record)
    record["supervisor"]["boot_id"] = slots.boot_id()
    record["state"] = "done"
    assert not slots.supervisor_alive(record)


def test_the_record_is_written_whole_and_readable(slots: ModuleType, tmp_path: Path) -> None:
    record = _record(slots, slot0="created")
    slots.write_record(str(tmp_path), record)
    assert slots.read_record(str(tmp_path))["slots"]["slot0"]["state"] == "created"
    assert oct((tmp_path / "slots.json").stat().st_mode & 0o777) == "0o644"
    assert not (tmp_path / "slots.json.part").exists()
    (tmp_path / "slots.json").write_text("{not json")
    assert slots.read_record(str(tmp_path)) == {}


def test_rows_of_the_reports_and_the_perf_file_are_counted(slots: ModuleType,
                                                           tmp_path: Path) -> None:
    scripts = tmp_path / "slot0" / "MAD" / "scripts"
    shutil.copytree(ERA_D / "reports_float16_vllm_rocm6.4.1",
                    scripts / "vllm" / "reports_float16_vllm_rocm6.4.1")
    shutil.copy(ERA_D / "perf_Llama-3.1-8B-Instruct.csv", scripts)
    (scripts / "vllm" / "config.csv").write_text("model,tp\nx,1\n")  # not a report
    (tmp_path / "slot0" / "benchmark.log").write_text("MODEL: x\n")
    # summaries: 16 latency + 4 throughput + 4 serving rows; perf: 16 + 4 + 4 x 6 rows
    assert slots.report_rows(str(tmp_path / "slot0")) == 24 + 44


def test_what_a_run_with_every_vllm_call_failed_leaves_has_no_rows(slots: ModuleType,
                                                                   tmp_path: Path) -> None:
    scripts = tmp_path / "slot0" / "MAD" / "scripts"
    (scripts / "vllm" / "reports_float16_vllm_rocm6.4.1" / "summary").mkdir(parents=True)
    (scripts / "perf_Llama-3.1-8B-Instruct.csv").write_text("\n")  # pandas' empty table
    assert slots.report_rows(str(tmp_path / "slot0")) == 0
    assert slots.report_rows(str(tmp_path / "missing")) == 0


def test_the_supervisor_waits_out_a_docker_engine_that_does_not_answer(
        slots: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Docker CLI is the boundary: an engine restarting answers nothing for two looks,
    # then shows the slot's container exited.
    answers = iter([
        (1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."),
        (1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."),
        (1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."),
        (1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."),
        (0, "/fleetbench-r-h-slot0 exited 0 false 2026-12-03T17:00:22.1Z "
            "2026-12-03T17:09:02.5Z\n", ""),
    ])
    monkeypatch.setattr(slots, "docker", lambda args, timeout=120: next(answers))
    record = _record(slots, slot0="running")
    record["slots"]["slot0"]["started"] = "2026-12-03T17:00:22Z"
    slots.write_record(str(tmp_path), record)
    seen: list[dict[str, object]] = []

    def sleep(_seconds: float) -> None:
        seen.append(dict(slots.read_record(str(tmp_path)).get("engine_error") or {}))

    supervisor = slots.Supervisor(str(tmp_path), clock=lambda: 0.0, sleep=sleep)
    supervisor.wait_wave(["slot0"])
    # Two looks without an answer (inspect, then ps to tell a missing container from a
    # silent engine): the record said why while it waited, and the slot then settled.
    assert len(seen) == 2 and all("Cannot connect" in str(e.get("error")) for e in seen)
    final = slots.read_record(str(tmp_path))
    assert "engine_error" not in final
    assert (final["slots"]["slot0"]["state"], final["slots"]["slot0"]["exit_code"]) == (
        "exited", 0)
