"""Bad input to `fleetbench check` exits 2 with one clear message and runs nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.check import host_check, report_from_run
from fleetbench.cli import main
from fleetbench.runner import PlaybookRun, TaskResult


def test_missing_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-i", str(tmp_path / "nope.yml")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_invalid_yaml_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "inv.yml"
    bad.write_text("all:\n  hosts: [unclosed\n")
    assert main(["check", "-i", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML at line" in err and err.count("\n") == 1


def test_limit_matching_no_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "inv.yml"
    # An unroutable-by-design name: if anything tried to connect, the test would hang or fail.
    inv.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n")
    assert main(["check", "-i", str(inv), "--limit", "gpu-z*"]) == 2
    err = capsys.readouterr().err
    assert "matches no host" in err and "gpu-a" in err


def _result(host: str, outcome: str, res: dict[str, object]) -> TaskResult:
    """The task that decides a host: on a host found fit, the one that sets the preflight
    role's result fact; otherwise the failed probe. Module names play no part."""
    if outcome == "ok":
        res = {"ansible_facts": {"preflight_result": {
            "step": "preflight", "status": "ok", "data": res}}}
    return TaskResult(host=host, task="Any task name", role="preflight",
                      action="any.renamed.module", outcome=outcome, ignored=False, result=res)


def test_report_from_run_maps_every_outcome() -> None:
    verdict = {"ok": True, "problems": [], "warnings": [], "compute_partition": "CPX",
               "memory_partition": "NPS4", "logical_gpus": 64}
    bad = {**verdict, "ok": False, "problems": ["compute partition is SPX, expected CPX"],
           "compute_partition": "SPX", "logical_gpus": 8}
    run = PlaybookRun(playbook="check", status="failed", rc=2, results=(
        _result("a", "ok", {"verdict": verdict}),
        _result("b", "failed", {"verdict": bad, "msg": "x"}),
        _result("c", "unreachable", {"msg": "ssh: connect to host c port 22: Connection refused"}),
        _result("d", "failed", {"msg": "MODULE FAILURE: /usr/bin/python3: not found"}),
    ))
    report = report_from_run(("a", "b", "c", "d", "e"), run)
    by_name = {h.name: h for h in report.hosts}
    assert by_name["a"].contract() == {"status": "ok", "compute_partition": "CPX",
                                       "memory_partition": "NPS4", "logical_gpus": 64,
                                       "problems": []}
    assert by_name["b"].status == "failed" and by_name["b"].compute_partition == "SPX"
    assert by_name["c"].status == "unreachable" and "Connection refused" in by_name["c"].problems[0]
    assert by_name["d"].status == "failed" and "MODULE FAILURE" in by_name["d"].problems[0]
    assert by_name["e"].status == "failed"  # no result at all is never "ok"
    assert not report.ok


def test_host_check_without_result_is_failed() -> None:
    assert host_check("x", None).status == "failed"


def test_only_the_result_fact_or_a_failure_decides_a_host() -> None:
    verdict = {"ok": True, "problems": [], "warnings": [], "compute_partition": "CPX",
               "memory_partition": "NPS4", "logical_gpus": 64}
    earlier = TaskResult(host="a", task="t", role="preflight", action="a.b.c", outcome="ok",
                         ignored=False, result={"verdict": {**verdict, "ok": False}})
    ignored = TaskResult(host="b", task="t", role="preflight", action="a.b.c",
                         outcome="failed", ignored=True, result={"msg": "ignored"})
    run = PlaybookRun(playbook="check", status="successful", rc=0, results=(
        earlier, _result("a", "ok", {"verdict": verdict}), ignored))
    hosts = report_from_run(("a", "b"), run).contract()["hosts"]
    # An ok task that is not the result fact says nothing about the host, whatever it holds.
    assert hosts["a"]["status"] == "ok" and hosts["a"]["logical_gpus"] == 64
    # An ignored failure decides nothing either: the role never said how the host was found.
    assert hosts["b"] == {"status": "failed", "compute_partition": None,
                          "memory_partition": None, "logical_gpus": None,
                          "problems": ["the probe never ran on this host"]}


def test_a_locked_host_shows_its_lock_and_a_free_one_none() -> None:
    verdict = {"ok": True, "problems": [], "warnings": ["in use by fleetbench run R"],
               "compute_partition": "CPX", "memory_partition": "NPS4", "logical_gpus": 64}
    held = {"run_id": "R", "controller": {"host": "ctl01", "pid": 7, "boot_id": "b"},
            "age_s": 90, "stale": True}
    run = PlaybookRun(playbook="check", status="successful", rc=0, results=(
        _result("a", "ok", {"verdict": {**verdict, "lock": held}}),
        _result("b", "ok", {"verdict": {**verdict, "warnings": [], "lock": None}}),
    ))
    hosts = report_from_run(("a", "b"), run).contract()["hosts"]
    assert hosts["a"] == {"status": "ok", "compute_partition": "CPX", "memory_partition": "NPS4",
                          "logical_gpus": 64, "problems": [], "lock": held}
    assert "lock" not in hosts["b"]  # the contract of a free host is unchanged
