"""How ``partition apply`` reads each host: the partition role's result fact alone decides,
never which module ran (a module renamed in YAML cannot change a host's status)."""

from __future__ import annotations

from typing import Any

from fleetbench.partition.rollout import host_apply
from fleetbench.runner import TaskResult

VERDICT = {"ok": True, "problems": [], "warnings": [], "compute_partition": "CPX",
           "memory_partition": "NPS4", "logical_gpus": 64, "partition_memory_bytes": 24}
BEFORE = {"changed": False, "purpose": "apply", "verdict": {**VERDICT, "ok": False,
          "compute_partition": "SPX", "logical_gpus": 8},
          "plan": {"steps": [{"kind": "compute", "mode": "CPX"}], "tools": []},
          "processes": [], "containers": [], "refused": False, "refusal": "",
          "warnings": ["before"]}
STEPS = [{"step": "compute", "mode": "CPX", "tool": "amd-smi", "outcome": "ok"}]
APPLIED = {"changed": True, "ok": True, "failed_step": None, "steps": STEPS,
           "warnings": ["applied"]}
VERIFIED = {"changed": False, "purpose": "verify", "verdict": {**VERDICT, "warnings": ["after"]}}
SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}


def _fact(status: str = "ok", **data: Any) -> TaskResult:
    fact = {"step": "partition", "status": status, "data": {
        "action": "apply", "before": {}, "applied": {}, "verified": {}, "failure": {},
        **data}}
    return TaskResult(host="h", task="any name", role="partition", action="any.module",
                      outcome="ok", ignored=False,
                      result={"ansible_facts": {"partition_result": fact}})


def _task(outcome: str, **result: Any) -> TaskResult:
    return TaskResult(host="h", task="any name", role="partition", action="any.module",
                      outcome=outcome, ignored=False, result=result)


def test_a_host_set_and_verified_is_ok() -> None:
    host = host_apply("h", [_fact(before=BEFORE, applied=APPLIED, verified=VERIFIED)], False)
    assert host.status == "ok" and host.changed and host.steps == tuple(STEPS)
    assert host.before["compute_partition"] == "SPX" and host.before["planned"] == [
        "compute CPX"]
    assert host.after["compute_partition"] == "CPX"
    assert host.warnings == ("before", "applied", "after")


def test_a_host_in_use_is_skipped_busy_and_untouched() -> None:
    busy = {**BEFORE, "refused": True, "refusal": "left untouched: GPU process 7 (python)",
            "processes": [{"pid": 7, "name": "python"}]}
    host = host_apply("h", [_fact(before=busy, applied=SKIPPED, verified=SKIPPED)], False)
    assert host.status == "skipped:busy" and not host.changed and not host.touched
    assert host.problems == ("left untouched: GPU process 7 (python)",)
    assert host.processes == ({"pid": 7, "name": "python"},) and host.after == {}


def test_a_failed_step_names_itself_and_keeps_what_was_found() -> None:
    failed = {**APPLIED, "failed": True, "ok": False, "failed_step": "compute",
              "msg": "setting compute partition CPX failed: AMDSMI_STATUS_BUSY"}
    host = host_apply("h", [
        _task("failed", **failed),  # the rescued task itself: the fact speaks for it
        _fact("failed", before=BEFORE, applied=failed,
              failure={"task": "Set the partition", "msg": failed["msg"]}),
        _task("failed", msg=failed["msg"]),  # the rescue fails the host
    ], True)
    assert host.status == "failed:compute" and "AMDSMI_STATUS_BUSY" in host.problems[0]
    assert host.before["compute_partition"] == "SPX" and host.steps == tuple(STEPS)


def test_a_failed_probe_or_verify() -> None:
    probe = {"failed": True, "purpose": "apply", "msg": "no GPU found"}
    host = host_apply("h", [_fact("failed", before=probe,
                                  failure={"msg": "no GPU found"})], True)
    assert (host.status, host.problems, host.before) == ("failed:probe", ("no GPU found",), {})
    verify = {**VERIFIED, "failed": True, "msg": "compute partition is SPX, expected CPX"}
    host = host_apply("h", [_fact("failed", before=BEFORE, applied=APPLIED, verified=verify,
                                  failure={"msg": verify["msg"]})], True)
    assert host.status == "failed:verify" and host.changed


def test_results_without_the_fact_decide_nothing_but_how_the_host_was_cut_short() -> None:
    # An ok probe result is no verdict: only the fact is read.
    assert host_apply("h", [_task("ok", **BEFORE)], stopped=True).status == (
        "skipped:roll-stopped")
    assert host_apply("h", [], stopped=False).status == "failed:probe"
    cut = host_apply("h", [_task("ok", **BEFORE), _task("ok", **APPLIED)], stopped=True)
    assert cut.status == "failed:unverified" and "partition show" in cut.problems[0]
    early = host_apply("h", [_task("failed", msg="partition_compute: value must be one of")],
                       stopped=True)
    assert early.status == "failed:task" and "must be one of" in early.problems[0]
