"""SSH host key failures in an unreachable host's message: one line and failed:hostkey.

The messages in data/hostkeys/ssh_messages.json are real: Ansible's unreachable messages
as ``fleetbench check --json`` printed them on the lab after a host's line in the lab's
known_hosts was replaced by another host's key (or removed), and ssh's own stderr for a key
of another type and a revoked key (how each was made is in the file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.check import host_check, report_from_run
from fleetbench.hostkeys import (
    CHANGED,
    HOSTKEY_STATUS,
    REVOKED,
    UNKNOWN,
    UNVERIFIED,
    host_key_failure,
    host_key_problem,
    unreachable_status,
)
from fleetbench.partition.rollout import host_apply
from fleetbench.partition.show import fleet_drift, host_partition
from fleetbench.run import cleanup_status, host_outcome
from fleetbench.runner import PlaybookRun, TaskResult

MESSAGES: dict[str, str] = {
    name: case["message"] for name, case in json.loads(
        (Path(__file__).parent / "data" / "hostkeys" / "ssh_messages.json").read_text()).items()
}


def unreachable(host: str, message: str, *, action: str = "fleetbench_probe",
                role: str = "preflight") -> TaskResult:
    return TaskResult(host=host, task="Probe the host and judge it", role=role, action=action,
                      outcome="unreachable", ignored=False,
                      result={"msg": message, "unreachable": True})


def test_the_fixtures_are_what_ssh_says() -> None:
    assert "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!" in MESSAGES["changed_port_2222"]
    assert MESSAGES["changed_port_2222"].count("\r\n") > 10  # the banner, lines and all
    assert MESSAGES["unknown_port_22"].endswith("Host key verification failed.")


@pytest.mark.parametrize(("case", "kind", "address", "file"), [
    ("changed_port_2222", CHANGED, "[127.7.9.12]:2222", "/tmp/exitcodes-lab/known_hosts"),
    ("changed_port_22", CHANGED, "127.7.9.31", "/tmp/exitcodes-lab22/known_hosts"),
    ("changed_key_type_ssh", CHANGED, "[127.7.9.13]:2222", "/tmp/exitcodes-kh-othertype"),
    ("unknown_port_2222", UNKNOWN, "[127.7.9.13]:2222", None),
    ("unknown_port_22", UNKNOWN, "127.7.9.31", None),
    ("revoked_ssh", REVOKED, None, "/tmp/exitcodes-revoked"),
])
def test_host_key_failures_are_recognised(case: str, kind: str, address: str | None,
                                          file: str | None) -> None:
    failure = host_key_failure(MESSAGES[case])
    assert failure is not None
    assert (failure.kind, failure.address, failure.file) == (kind, address, file)


def test_a_changed_key_is_one_line_with_the_fix() -> None:
    assert host_key_problem("gpu01", MESSAGES["changed_port_2222"]) == (
        "host key of gpu01 ([127.7.9.12]:2222) changed — if the host was reinstalled: "
        "ssh-keygen -f /tmp/exitcodes-lab/known_hosts -R '[127.7.9.12]:2222', then add the new "
        "key from your provisioning source")
    # On port 22 the address is as the inventory gives it, no brackets.
    assert host_key_problem("gpu01", MESSAGES["changed_port_22"]) == (
        "host key of gpu01 (127.7.9.31) changed — if the host was reinstalled: ssh-keygen -f "
        "/tmp/exitcodes-lab22/known_hosts -R 127.7.9.31, then add the new key from your "
        "provisioning source")


def test_the_users_own_known_hosts_needs_no_file_option() -> None:
    message = MESSAGES["changed_port_22"].replace("/tmp/exitcodes-lab22/known_hosts",
                                                  str(Path.home() / ".ssh" / "known_hosts"))
    assert "ssh-keygen -R 127.7.9.31, then" in (host_key_problem("gpu01", message) or "")


def test_an_unknown_key_is_one_line_that_never_suggests_accepting_it() -> None:
    line = host_key_problem("gpu01", MESSAGES["unknown_port_2222"])
    assert line == ("host key of gpu01 ([127.7.9.13]:2222) is not in known_hosts — add the "
                    "host's key from your provisioning source (host key checking stays on)")
    for message in MESSAGES.values():
        text = host_key_problem("gpu01", message) or ""
        assert "StrictHostKeyChecking" not in text and "accept-new" not in text
        assert "ssh-keyscan" not in text
        assert "\n" not in text and "\r" not in text and "@@@" not in text


def test_a_bare_verification_failure_still_names_the_host() -> None:
    message = ('Task failed: Data could not be sent to remote host "192.0.2.15". Make sure this '
               "host can be reached over ssh: Host key verification failed.")
    failure = host_key_failure(message)
    assert failure is not None and (failure.kind, failure.address) == (UNVERIFIED, "192.0.2.15")
    assert host_key_problem("gpu01", message) == (
        "host key of gpu01 (192.0.2.15) could not be verified — compare its known_hosts entry "
        "with your provisioning source")


@pytest.mark.parametrize("message", [
    MESSAGES["refused"],
    "ssh: Could not resolve hostname gpu01: Name or service not known",
    "Task failed: Data could not be sent to remote host \"127.0.0.253\". Make sure this host "
    "can be reached over ssh: ssh: connect to host 127.0.0.253 port 22: Connection timed out",
    "Permission denied (publickey).",
    "",
])
def test_other_unreachable_hosts_stay_unreachable(message: str) -> None:
    assert host_key_failure(message) is None
    assert unreachable_status("gpu01", message) == ("unreachable", message)


# --- every command that reports unreachable hosts says failed:hostkey -----------------------


def test_check_shows_failed_hostkey_with_the_line() -> None:
    check = host_check("lab02", unreachable("lab02", MESSAGES["changed_port_2222"]))
    assert check.contract() == {
        "status": HOSTKEY_STATUS, "compute_partition": None, "memory_partition": None,
        "logical_gpus": None, "problems": [host_key_problem("lab02",
                                                            MESSAGES["changed_port_2222"])]}
    run = PlaybookRun("check", "failed", 4, (unreachable("lab02", MESSAGES["refused"]),))
    assert report_from_run(("lab02",), run).hosts[0].status == "unreachable"


def test_run_ends_the_host_failed_hostkey_with_the_line() -> None:
    outcome = host_outcome("lab02", (unreachable("lab02", MESSAGES["unknown_port_2222"]),),
                           fetched=False)
    assert outcome.status == HOSTKEY_STATUS
    assert outcome.reason == host_key_problem("lab02", MESSAGES["unknown_port_2222"])
    assert outcome.steps["preflight"]["status"] == "unreachable"
    refused = host_outcome("lab03", (unreachable("lab03", MESSAGES["refused"]),), fetched=False)
    assert (refused.status, refused.reason) == ("unreachable", MESSAGES["refused"])


def test_cleanup_status_names_the_host_key_in_one_line() -> None:
    result = unreachable("lab02", MESSAGES["changed_port_2222"], action="fleetbench_cleanup",
                         role="cleanup")
    status = cleanup_status((result,))
    assert status.startswith("failed:hostkey: host key of lab02 ([127.7.9.12]:2222) changed — ")
    assert "@@@" not in status and "\n" not in status


def test_partition_show_and_apply_say_failed_hostkey() -> None:
    check = host_check("lab02", unreachable("lab02", MESSAGES["changed_port_2222"]))
    shown = host_partition(check)
    assert (shown.status, shown.problems) == (HOSTKEY_STATUS, check.problems)
    refused = host_partition(host_check("lab03", unreachable("lab03", MESSAGES["refused"])))
    assert fleet_drift([shown, refused]).unreachable == 2  # neither was reached
    applied = host_apply("lab02", [unreachable("lab02", MESSAGES["changed_port_2222"],
                                               action="fleetbench_partition_probe",
                                               role="partition")], stopped=True)
    assert (applied.status, applied.problems) == (HOSTKEY_STATUS, check.problems)


def test_every_table_prints_the_line_as_it_is() -> None:
    # A DNS name on another port is "[name]:port", which rich would take for a style tag.
    from rich.console import Console

    from fleetbench.check import CheckReport
    from fleetbench.commands.check import render_table
    from fleetbench.commands.partition import render_apply, render_show
    from fleetbench.commands.run import _table
    from fleetbench.partition.rollout import ApplyReport
    from fleetbench.partition.show import show_report
    from fleetbench.partition.verdict import ExpectedPartition

    message = MESSAGES["changed_port_2222"].replace("127.7.9.12", "gpu02.example.internal")
    check = host_check("gpu02", unreachable("gpu02", message))
    line = check.problems[0]
    assert "([gpu02.example.internal]:2222)" in line
    applied = host_apply("gpu02", [unreachable("gpu02", message,
                                               action="fleetbench_partition_probe",
                                               role="partition")], stopped=True)
    manifest = {"run_id": "r1", "hosts": {"gpu02": {"status": HOSTKEY_STATUS, "reason": line,
                                                    "slots": {}}}}
    console = Console(width=400, record=True)
    console.print(render_table(CheckReport((check,))))
    console.print(_table(manifest))
    console.print(render_show(show_report(CheckReport((check,)))))
    console.print(render_apply(ApplyReport(ExpectedPartition("CPX", "NPS4"), 1, (applied,))))
    assert console.export_text().count(line) == 4
