"""The roles' argument specs checked on the controller (fleetbench.roleargs).

The inventories are real files parsed by Ansible's own loader (load_fleet); the hosts
point at 127.0.0.254, .253, … (one address each), where nothing listens: a command that
started anything would report them unreachable (exit 1), never exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleetbench import roleargs
from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.inventory import load_fleet
from fleetbench.resources import ansible_config, module_utils_path, playbook_path, roles_path

from ..conftest import REPO

GOOD = {"fleetbench_expected_compute": "CPX", "fleetbench_expected_memory": "NPS4"}


def _inventory(tmp_path: Path, group_vars: dict[str, object],
               host_vars: dict[str, dict[str, object]] | None = None, hosts: int = 3) -> Path:
    names = [f"gpu{i:02d}" for i in range(1, hosts + 1)]
    inventory = {"all": {"children": {"cluster": {
        "vars": dict(group_vars),
        "hosts": {n: {"ansible_host": f"127.0.0.{254 - i}", **(host_vars or {}).get(n, {})}
                  for i, n in enumerate(names)},
    }}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def _problems(tmp_path: Path, group_vars: dict[str, object],
              host_vars: dict[str, dict[str, object]] | None = None,
              playbooks: tuple[str, ...] = ("check",)) -> list[roleargs.Problem]:
    fleet = load_fleet(_inventory(tmp_path, group_vars, host_vars))
    return roleargs.problems(playbooks, fleet.host_vars)


def test_defaults_and_good_inventory_pass_every_playbook(tmp_path: Path) -> None:
    fleet = load_fleet(_inventory(tmp_path, GOOD))
    slots = {h: [{"name": "slot0", "gpus": list(range(8))}] for h in fleet.hosts}
    extravars = {"fleetbench_run_id": "r1", "fleetbench_slots_by_host": slots,
                 "fleetbench_collect_dest": str(tmp_path)}
    assert roleargs.problems(["check"], fleet.host_vars) == []
    assert roleargs.problems(["run", "cleanup"], fleet.host_vars, extravars) == []
    assert roleargs.problems(["partition"], fleet.host_vars, {"partition_serial": 2}) == []


def test_sample_inventory_passes(tmp_path: Path) -> None:
    fleet = load_fleet(REPO / "inventory" / "sample" / "hosts.yml")
    assert roleargs.problems(["check"], fleet.host_vars) == []


def test_a_bad_group_variable_names_the_variable_the_admin_set(tmp_path: Path) -> None:
    found = _problems(tmp_path, {**GOOD, "fleetbench_disk_margin_gb": "lots"})
    # Once, by the role that defines the shared setting, not again by each role using it.
    assert len(found) == 1
    problem = found[0]
    assert (problem.role, problem.option, problem.source) == (
        "fleetbench_defaults", "fleetbench_disk_margin_gb", "fleetbench_disk_margin_gb")
    assert problem.hosts == ("gpu01", "gpu02", "gpu03")
    assert "float" in problem.message and "_AnsibleTagged" not in problem.message


def test_choices_are_enforced_per_host(tmp_path: Path) -> None:
    found = _problems(tmp_path, GOOD, {"gpu02": {"fleetbench_expected_memory": "NPS3"}})
    assert [(p.option, p.source, p.hosts) for p in found] == [
        ("fleetbench_expected_memory", "fleetbench_expected_memory", ("gpu02",))]
    assert "NPS1, NPS2, NPS4" in found[0].message


def test_role_variable_set_directly_is_its_own_source(tmp_path: Path) -> None:
    found = _problems(tmp_path, {**GOOD, "preflight_command_timeout": "soon"})
    assert [(p.option, p.source) for p in found] == [
        ("preflight_command_timeout", "preflight_command_timeout")]


def test_templated_inventory_values_are_resolved_per_host(tmp_path: Path) -> None:
    group = {**GOOD, "fleetbench_disk_margin_gb": "{{ disk_gb }}"}
    ok = _problems(tmp_path, {**group, "disk_gb": 80})
    assert ok == []
    # One host's value of the variable the template reads is bad: only that host fails,
    # although the template text is the same everywhere.
    bad = _problems(tmp_path, {**group, "disk_gb": 80}, {"gpu03": {"disk_gb": "many"}})
    assert [(p.source, p.hosts) for p in bad] == [("fleetbench_disk_margin_gb", ("gpu03",))]


def test_undefined_variable_in_a_template_is_a_problem(tmp_path: Path) -> None:
    found = _problems(tmp_path, {**GOOD, "preflight_work_dir": "{{ nowhere }}/fb"})
    assert len(found) == 1
    assert found[0].option == "preflight_work_dir" and "nowhere" in found[0].message
    # A shared setting's template too, named once (not again in each role that uses it).
    found = _problems(tmp_path, {**GOOD, "fleetbench_work_dir": "{{ nowhere }}/fb"})
    assert [p.source for p in found] == ["fleetbench_work_dir"]
    assert "nowhere" in found[0].message


def test_extravars_win_over_the_inventory(tmp_path: Path) -> None:
    fleet = load_fleet(_inventory(tmp_path, {**GOOD, "fleetbench_expected_memory": "NPS1"}))
    assert roleargs.problems(["partition"], fleet.host_vars,
                             {"partition_memory": "NPS4"}) == []
    found = roleargs.problems(["partition"], fleet.host_vars, {"partition_memory": "NPS7"})
    assert [p.option for p in found] == ["partition_memory"]
    # The setting itself stays the inventory's: a value no mode is, is named as such.
    found = roleargs.problems(["partition"], fleet.host_vars,
                              {"fleetbench_expected_memory": "NPS9", "partition_memory": "NPS4"})
    assert [p.option for p in found] == ["fleetbench_expected_memory"]


def test_validate_raises_one_message_with_the_fix(tmp_path: Path) -> None:
    hosts = {f"gpu{i:02d}": {"fleetbench_expected_memory": "NPS0"} for i in range(1, 10)}
    fleet = load_fleet(_inventory(tmp_path, GOOD, hosts, hosts=9))
    with pytest.raises(BadInput) as caught:
        roleargs.validate(["check"], fleet.host_vars)
    message = str(caught.value)
    assert "fleetbench_expected_memory" in message and "(+4 more)" in message
    assert "fix the variable in the inventory" in message and "\n" not in message


def test_check_exits_2_before_starting_anything(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    inv = _inventory(tmp_path, {**GOOD, "preflight_command_timeout": "a while"})
    assert main(["check", "-i", str(inv)]) == 2
    err = capsys.readouterr().err
    assert "preflight_command_timeout" in err and err.count("\n") == 1


def test_run_exits_2_and_creates_no_run_directory(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token_for_this_test")
    inv = _inventory(tmp_path, {**GOOD, "fleetbench_container_volumes": {"data": "/data"}})
    runs = tmp_path / "runs"
    code = main(["run", "-i", str(inv), "--model", "meta-llama/Llama-3.1-8B-Instruct",
                 "--gpus", "1", "--dtype", "float16", "--scenario", "latency",
                 "--runs-dir", str(runs)])
    assert code == 2
    err = capsys.readouterr().err
    # Named once, as the admin wrote it (not again for each role option taken from it).
    assert "fleetbench_container_volumes on gpu01" in err and "benchmark_volumes" not in err
    assert not runs.exists()


def test_partition_apply_checks_before_asking_to_confirm(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = _inventory(tmp_path, {**GOOD, "fleetbench_become": "sometimes"})
    # No --yes and no terminal: had it got to the question, it would say "not confirmed".
    assert main(["partition", "apply", "-i", str(inv), "--compute", "CPX",
                 "--memory", "NPS4"]) == 2
    err = capsys.readouterr().err
    assert "fleetbench_become on gpu01" in err and "not confirmed" not in err


def test_partition_show_exits_2_before_starting_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = _inventory(tmp_path, {**GOOD, "fleetbench_missing_partition_is_error": "sometimes"})
    assert main(["partition", "show", "-i", str(inv)]) == 2
    err = capsys.readouterr().err
    assert "fleetbench_missing_partition_is_error on gpu01" in err


# --- the controller's verdict is Ansible's verdict -------------------------------------

def _ansible_verdicts(inventory: Path, playbook: str) -> dict[str, bool]:
    """Run only Ansible's own argument-check tasks of ``playbook`` (they are tagged
    ``always``; no task has the tag asked for) and say which hosts failed them. The check
    needs no connection, so the unreachable hosts do not matter."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ansible_config()),
           "ANSIBLE_ROLES_PATH": str(roles_path()),
           "ANSIBLE_MODULE_UTILS": str(module_utils_path()),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
         str(playbook_path(playbook)), "--tags", "no-such-tag"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    stats = json.loads(done.stdout)["stats"]
    return {host: bool(s["failures"]) for host, s in stats.items()}


def test_same_hosts_fail_as_with_ansibles_own_check(tmp_path: Path) -> None:
    host_vars = {
        "gpu01": {},
        "gpu02": {"fleetbench_disk_margin_gb": "lots"},
        "gpu03": {"fleetbench_expected_compute": "XPX", "fleetbench_logical_per_physical": 8},
        "gpu04": {"preflight_command_timeout": "60"},  # a numeric string converts: fine
        "gpu05": {"preflight_missing_partition_is_error": "maybe"},
        "gpu06": {"fleetbench_missing_partition_is_error": "yes"},  # YAML-ish bool: fine
    }
    inv = _inventory(tmp_path, GOOD, host_vars, hosts=6)
    # planned_partitions refuses XPX already; the comparison is about the argument specs.
    inventory = yaml.safe_load(inv.read_text())
    fleet_vars = inventory["all"]["children"]["cluster"]["hosts"]
    fleet_vars["gpu03"]["fleetbench_expected_compute"] = "CPX"
    fleet_vars["gpu03"]["preflight_expected_compute"] = "XPX"
    inv.write_text(yaml.safe_dump(inventory))
    fleet = load_fleet(inv)
    ours = dict.fromkeys(fleet.hosts, False)
    for problem in roleargs.problems(["check"], fleet.host_vars):
        for host in problem.hosts:
            ours[host] = True
    assert ours == _ansible_verdicts(inv, "check")
    assert ours == {"gpu01": False, "gpu02": True, "gpu03": True, "gpu04": False,
                    "gpu05": True, "gpu06": False}


# --- skipping Ansible's own check only skips that ---------------------------------------

def _tagged_always(node: object) -> bool:
    if isinstance(node, dict):
        tags = node.get("tags")
        tags = [tags] if isinstance(tags, str) else (tags or [])
        return "always" in tags or any(_tagged_always(v) for v in node.values())
    if isinstance(node, list):
        return any(_tagged_always(v) for v in node)
    return False


def _mentions(node: object, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_mentions(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, key) for v in node)
    return False


def test_no_task_of_ours_is_tagged_always_and_no_handler_waits_for_a_flush() -> None:
    """``--skip-tags always`` also skips Ansible's implicit ``flush_handlers`` tasks (tagged
    ``always`` too), so fleetbench's roles must not rely on handlers either."""
    files = [*(REPO / "playbooks").glob("*.yml"), *(REPO / "roles").glob("*/tasks/*.yml")]
    assert files
    loaded = {f: yaml.safe_load(f.read_text()) for f in files}
    assert roleargs.SKIP_VALIDATION_TAGS == "always"
    assert [f.name for f, data in loaded.items() if _tagged_always(data)] == []
    assert [f.name for f, data in loaded.items()
            if _mentions(data, "notify") or _mentions(data, "handlers")] == []
    assert list((REPO / "roles").glob("*/handlers")) == []


@pytest.mark.parametrize("checked", [True, False])
def test_runs_skip_ansibles_check_only_when_fleetbench_did_it(tmp_path: Path,
                                                              checked: bool) -> None:
    from fleetbench.runner import run_playbook

    # No SSH retries: the host is refused at once.
    fleet = load_fleet(_inventory(tmp_path, {**GOOD, "ansible_ssh_retries": 0}, hosts=1))
    run = run_playbook("check", fleet.inventory, arguments_checked=checked)
    actions = [r.action for r in run.results]
    assert actions[-1] == "fleetbench_probe" and run.results[-1].outcome == "unreachable"
    assert ("ansible.builtin.validate_argument_spec" in actions) is not checked
