"""`fleetbench unlock`: what cleanup.yml's results say per host, and bad input (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.runner import PlaybookRun, TaskResult
from fleetbench.unlock import report_from_run, validate_run_id

RUN = "20261127T041500Z-1a2b"


def _result(host: str, outcome: str, res: dict[str, object]) -> TaskResult:
    """The task that decides a host: the one setting the cleanup role's result fact, or
    the failed clean-up. Module names play no part."""
    if outcome == "ok":
        res = {"ansible_facts": {"cleanup_result": {
            "step": "cleanup", "status": "ok", "data": res}}}
    return TaskResult(host=host, task="Any task name", role="cleanup",
                      action="any.renamed.module", outcome=outcome, ignored=False, result=res)


def test_every_outcome_is_reported() -> None:
    run = PlaybookRun(playbook="cleanup", status="failed", rc=2, results=(
        _result("a", "ok", {"removed": ["c1", "c2"], "released": True,
                            "holder": {"run_id": RUN, "age_s": 60}}),
        _result("b", "ok", {"removed": [], "released": False, "holder": {}}),
        _result("c", "ok", {"removed": ["c3"], "released": False,
                            "holder": {"run_id": "20261127T050000Z-ffff"}}),
        _result("d", "unreachable", {"msg": "ssh: connect to host d port 22: No route"}),
        _result("e", "failed", {"msg": "cannot list containers: permission denied",
                                "removed": [], "released": False, "holder": {}}),
    ))
    report = report_from_run(RUN, ("a", "b", "c", "d", "e", "f"), run)
    hosts = report.contract()["hosts"]
    assert report.contract()["run_id"] == RUN
    assert hosts["a"] == {"status": "released", "containers_removed": ["c1", "c2"],
                          "held_by": None,
                          "message": f"lock and token file of run {RUN} removed; 2 "
                                     f"container(s) of run {RUN} removed"}
    assert hosts["b"]["status"] == "not-locked" and hosts["b"]["message"] == "not locked"
    # Another run's host: its lock stays, this run's own leftover container goes.
    assert hosts["c"]["status"] == "held-by-other"
    assert hosts["c"]["held_by"] == "20261127T050000Z-ffff"
    assert hosts["c"]["containers_removed"] == ["c3"] and "left alone" in hosts["c"]["message"]
    assert hosts["d"]["status"] == "unreachable" and "No route" in hosts["d"]["message"]
    assert hosts["e"]["status"] == "failed" and "permission denied" in hosts["e"]["message"]
    assert hosts["f"]["status"] == "failed"  # no result at all is never done
    assert not report.ok
    assert report_from_run(RUN, ("a", "b", "c"), run).ok  # another run's host is no failure


def test_a_task_that_is_not_the_result_fact_decides_nothing() -> None:
    module = TaskResult(host="a", task="t", role="cleanup", action="a.b.c", outcome="ok",
                        ignored=False, result={"removed": ["c1"], "released": True})
    run = PlaybookRun(playbook="cleanup", status="successful", rc=0, results=(module,))
    assert report_from_run(RUN, ("a",), run).contract()["hosts"]["a"]["status"] == "failed"
    done = _result("a", "ok", {"removed": ["c1"], "released": True, "holder": {}})
    run = PlaybookRun(playbook="cleanup", status="successful", rc=0, results=(module, done))
    assert report_from_run(RUN, ("a",), run).contract()["hosts"]["a"]["status"] == "released"


@pytest.mark.parametrize("run_id", ["", "a b", "-rf", "../x", "x;y", "é"])
def test_bad_run_ids(run_id: str) -> None:
    with pytest.raises(BadInput, match="not a run id"):
        validate_run_id(run_id)


def test_run_ids_fleetbench_makes() -> None:
    assert validate_run_id(RUN) == RUN


@pytest.mark.parametrize(("args", "says"), [
    (["--run", "not a run"], "is not a run id"),
    (["--run", RUN], "does not exist"),
    (["--run", RUN, "--limit", "gpu-z*"], "matches no host"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], says: str) -> None:
    inventory = tmp_path / "inv.yml"
    if "does not exist" not in says:
        # An unroutable-by-design name: were anything to connect, the test would hang or fail.
        inventory.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n")
    assert main(["unlock", "-i", str(inventory), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
