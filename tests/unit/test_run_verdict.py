"""A host's slots are judged on the controller from the archive collected from it."""

from __future__ import annotations

import tarfile
from pathlib import Path

from fleetbench.plan import RunPlan
from fleetbench.run import HostOutcome, Played, _record_host, host_outcome, with_slot_verdicts
from fleetbench.runner import PlaybookRun, TaskResult

MAD = Path(__file__).resolve().parents[1] / "fixtures" / "mad"
ERA_D = MAD / "eraD_2025-06_rocm6.4.1"
NAME = "Llama-3.1-8B-Instruct"
MODEL = f"meta-llama/{NAME}"
SUMMARY = "MAD/scripts/vllm/reports_float16_vllm_rocm6.4.1/summary"
LATENCY_POINTS = [f"{b} 1 {i} {o}" for o in (128, 2048) for i in (128, 2048)
                  for b in (1, 8, 32, 128)]
OOM = ("Traceback (most recent call last):\n"
       '  File "/app/vllm/benchmarks/benchmark_latency.py", line 173, in <module>\n'
       "    main(args)\n"
       "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 3.50 GiB.\n")
PLAN = RunPlan(model=MODEL, gpus=8, dtype="float16", scenario="latency", slots="2",
               timeout_s=600)


def log(failing: bool) -> str:
    lines = [f"MODEL: {MODEL} ", "[INFO] LATENCY"]
    for point in LATENCY_POINTS:
        lines.append(f"{MODEL} latency {point}")
        if failing:
            lines.append(OOM.rstrip("\n"))
    return "\n".join([*lines, "Generate report of multiple results", ""])


def slot_files(root: Path, name: str, *, measured: bool) -> None:
    """A slot folder as the host leaves it: the latency report when ``measured``, the log."""
    slot = root / name
    (slot / SUMMARY).mkdir(parents=True)
    if measured:
        report = f"{NAME}_latency_report.csv"
        (slot / SUMMARY / report).write_bytes(
            (ERA_D / "reports_float16_vllm_rocm6.4.1" / "summary" / report).read_bytes())
    else:
        (slot / "MAD" / "scripts" / f"perf_{NAME}.csv").write_text("\n")
    (slot / "benchmark.log").write_text(log(failing=not measured))


def archive(hosts_dir: Path, host: str, source: Path) -> None:
    with tarfile.open(hosts_dir / f"{host}.tar.gz", "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(source)))


def task(role: str, action: str, outcome: str, result: dict[str, object]) -> TaskResult:
    return TaskResult(host="lab01", task="t", role=role, action=action, outcome=outcome,
                      ignored=False, result=result, start="s", end="e")


def waited(exit_codes: dict[str, int]) -> TaskResult:
    """collect's result: the files packed, the host cleaned up, how each slot ended there
    (the supervisor's record)."""
    return task("collect", "ansible.builtin.set_fact", "ok", {"ansible_facts": {
        "collect_result": {"step": "collect", "status": "ok", "data": {
            "cleaned": {"error": None}, "slots": [
                {"name": name, "hip_visible_devices": f"{8 * i}", "status": "exited",
                 "exit_code": code, "oom_killed": False, "timed_out": False,
                 "summary": f"{name} exited {code}"}
                for i, (name, code) in enumerate(exit_codes.items())]}}}})


def playbook(collected: TaskResult, *results: TaskResult) -> Played:
    start = PlaybookRun(playbook="start", status="successful", rc=0, results=())
    return Played(start=start, collected={"lab01": (collected, *results)}, ends={},
                  cleanup=None, canceled=False)


def test_exit_codes_decide_nothing_the_files_do(tmp_path: Path) -> None:
    host_side = tmp_path / "host"
    slot_files(host_side, "slot0", measured=True)
    slot_files(host_side, "slot1", measured=False)
    hosts_dir = tmp_path / "run" / "hosts"
    hosts_dir.mkdir(parents=True)
    archive(hosts_dir, "lab01", host_side)
    # The Ansible verdict (plain ansible-playbook runs) says slot0 failed: it exited 1.
    ansible_verdict = task("benchmark_verdict", "ansible.builtin.fail", "failed",
                           {"msg": "1 slot(s) failed: slot0 exited 1"})
    run = playbook(waited({"slot0": 1, "slot1": 0}), ansible_verdict)

    outcome = _record_host("lab01", run, hosts_dir, {}, PLAN)

    slot0, slot1 = outcome.slots["slot0"], outcome.slots["slot1"]
    assert slot0["status"] == "ok" and slot0["exit_code"] == 1
    assert slot0["summary"] == ("latency: 16 of 16 points; the script exited 1 with every "
                                "report written")
    assert slot1["status"] == "failed:no-results" and slot1["exit_code"] == 0
    assert slot1["summary"] == ("latency: 0 of 16 points; the script exited 0; log shows: "
                                "torch.OutOfMemoryError: HIP out of memory. Tried to allocate "
                                "3.50 GiB.")
    assert outcome.status == "failed:benchmark"
    assert outcome.reason == f"1 of 2 slots not ok: slot1 failed:no-results ({slot1['summary']})"
    assert outcome.steps["benchmark"]["status"] == "failed"
    assert (hosts_dir / "lab01" / "slot1" / "benchmark.log").exists()


def test_a_slot_run_again_is_judged_by_its_new_files_only(tmp_path: Path) -> None:
    hosts_dir = tmp_path / "run" / "hosts"
    # The first attempt's files of slot1 (complete) are still in the run directory...
    slot_files(hosts_dir / "lab01", "slot1", measured=True)
    previous = {"status": "failed:benchmark", "slots": {
        "slot0": {"status": "ok", "summary": "latency: 16 of 16 points"},
        "slot1": {"status": "failed:timeout", "summary": "killed after the 600s timeout"}}}
    # ... and the second attempt, run on slot1 only, measured nothing.
    host_side = tmp_path / "host"
    slot_files(host_side, "slot0", measured=True)
    slot_files(host_side, "slot1", measured=False)
    archive(hosts_dir, "lab01", host_side)

    outcome = _record_host("lab01", playbook(waited({"slot1": 0})), hosts_dir, previous, PLAN)

    assert outcome.slots["slot0"] == previous["slots"]["slot0"]
    assert outcome.slots["slot1"]["status"] == "failed:no-results"
    assert not list((hosts_dir / "lab01" / "slot1").rglob("*_report.csv"))
    assert outcome.status == "failed:benchmark"


def test_every_slot_with_complete_results_makes_the_host_ok(tmp_path: Path) -> None:
    host_side = tmp_path / "host"
    for name in ("slot0", "slot1"):
        slot_files(host_side, name, measured=True)
    hosts_dir = tmp_path / "hosts"
    hosts_dir.mkdir()
    archive(hosts_dir, "lab01", host_side)
    outcome = _record_host("lab01", playbook(waited({"slot0": 0, "slot1": 0})), hosts_dir, {},
                           PLAN)
    assert outcome.status == "ok" and outcome.reason == ""
    assert {s["status"] for s in outcome.slots.values()} == {"ok"}


def test_a_host_that_failed_a_step_keeps_that_status() -> None:
    failed = HostOutcome(name="h", status="failed:collect", reason="disk full",
                         slots={"slot0": {"status": "failed:no-results", "summary": ""}})
    assert with_slot_verdicts(failed) == failed
    fine = HostOutcome(name="h", status="ok", slots={"slot0": {"status": "ok"}})
    assert with_slot_verdicts(fine) == fine


def test_the_images_vllm_version_is_the_hosts() -> None:
    image = task("image", "ansible.builtin.set_fact", "ok", {"ansible_facts": {
        "image_result": {"step": "image", "status": "ok", "data": {
            "ref": "r", "repo_digests": ["r@sha256:abc"], "id": "sha256:def",
            "vllm_version": " 0.9.2rc2.dev6+g1a2b3c.rocm700 "}}}})
    outcome = host_outcome("lab01", (image,), fetched=False)
    assert outcome.vllm_version == "0.9.2rc2.dev6+g1a2b3c.rocm700"
    assert outcome.to_dict()["vllm_version"] == "0.9.2rc2.dev6+g1a2b3c.rocm700"
    unread = task("image", "ansible.builtin.set_fact", "ok", {"ansible_facts": {
        "image_result": {"step": "image", "status": "ok", "data": {"vllm_version": ""}}}})
    assert host_outcome("lab01", (unread,), fetched=False).vllm_version is None
