"""Every role fleetbench reads ends by setting its result fact, the one thing fleetbench reads
of it (fleetbench.role_results): a module renamed in YAML cannot silently empty the manifest,
a check, an unlock or a partition roll."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetbench.role_results import RESULT_FACT

REPO = Path(__file__).resolve().parents[2]
# The roles fleetbench run reads (benchmark_verdict only speaks for plain ansible-playbook).
READ_BY_FLEETBENCH = ("preflight", "image", "mad", "model", "benchmark", "collect")
# Read by fleetbench unlock (and run's clean-up).
READ_BY_UNLOCK = ("cleanup",)


@pytest.mark.parametrize("role", READ_BY_FLEETBENCH + READ_BY_UNLOCK)
def test_the_role_ends_with_its_result_fact(role: str) -> None:
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
    last = tasks[-1]
    name = RESULT_FACT.format(step=role)
    assert "ansible.builtin.set_fact" in last, f"{role}'s last task must set {name}"
    fact = last["ansible.builtin.set_fact"][name]
    assert fact["step"] == role
    assert fact["status"] == "ok"
    assert isinstance(fact["data"], dict) and fact["data"]
    assert not last.get("when"), "the result is set whenever the role got to its end"


@pytest.mark.parametrize("playbook", ["start", "collect", "run"])
def test_the_run_playbooks_hold_only_roles_that_say_their_result(playbook: str) -> None:
    plays = yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())
    roles = [entry["role"] for play in plays for entry in play["roles"]]
    assert roles
    # fleetbench_defaults holds settings; plan validates plain ansible-playbook runs of run.yml.
    assert set(roles) <= {*READ_BY_FLEETBENCH, "benchmark_verdict", "fleetbench_defaults", "plan"}


def _sets_result(task: dict[str, object], status: str) -> dict[str, object]:
    assert "ansible.builtin.set_fact" in task, task
    fact = task["ansible.builtin.set_fact"]["partition_result"]  # type: ignore[index]
    assert fact["step"] == "partition" and fact["status"] == status
    assert not task.get("when")
    return fact["data"]  # type: ignore[no-any-return]


def test_the_partition_role_says_its_result_also_when_it_fails() -> None:
    # partition apply reads what was found before a failure (the plan, the steps that went
    # through) from the fact, so the rescue sets it too before it fails the host.
    (block,) = yaml.safe_load((REPO / "roles" / "partition" / "tasks" / "main.yml").read_text())
    done = _sets_result(block["block"][-1], "ok")
    failed = _sets_result(block["rescue"][0], "failed")
    assert set(done) == set(failed) >= {"before", "applied", "verified", "failure"}
    assert "ansible.builtin.fail" in block["rescue"][-1], "the host must still fail the roll"
    assert not block.get("when") and not block.get("ignore_errors")
