"""House rules of the Ansible content, checked on every role and playbook."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))


def _yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def test_there_are_roles_and_playbooks() -> None:
    assert ROLES and PLAYBOOKS


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_mirror_argument_specs(role: Path) -> None:
    defaults = _yaml(role / "defaults" / "main.yml") or {}
    specs = _yaml(role / "meta" / "argument_specs.yml")
    assert isinstance(defaults, dict) and isinstance(specs, dict)
    options = specs["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options), f"{role.name}: defaults and argument specs differ"
    for name, spec in options.items():
        assert spec.get("description"), f"{role.name}.{name} has no description"
        assert spec.get("type"), f"{role.name}.{name} has no type"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_public_variables_carry_the_role_prefix(role: Path) -> None:
    defaults = _yaml(role / "defaults" / "main.yml") or {}
    assert isinstance(defaults, dict)
    # The shared settings' role holds the fleet-wide fleetbench_* variables of inventories.
    prefix = "fleetbench" if role.name == "fleetbench_defaults" else role.name
    for name in defaults:
        assert name.startswith(f"{prefix}_"), f"{name} lacks the {prefix}_ prefix"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_registered_names_are_internal(role: Path) -> None:
    for tasks in (role / "tasks").glob("*.yml"):
        for task in _yaml(tasks) or []:
            assert isinstance(task, dict)
            if "register" in task:
                assert task["register"].startswith(f"__{role.name}_"), (tasks, task["register"])


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_playbooks_only_compose(playbook: Path) -> None:
    plays = _yaml(playbook)
    assert isinstance(plays, list)
    for play in plays:
        assert not {"tasks", "pre_tasks", "post_tasks", "handlers"} & set(play), playbook
        assert play.get("gather_facts") is False, f"{playbook.name}: facts are never needed"
        for role in play.get("roles", []):
            name = role["role"] if isinstance(role, dict) else role
            assert (REPO / "roles" / name).is_dir(), f"{playbook.name} uses unknown role {name}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_meta_dependencies(role: Path) -> None:
    meta = role / "meta" / "main.yml"
    if meta.exists():
        data = _yaml(meta) or {}
        assert isinstance(data, dict)
        assert not data.get("dependencies"), "compose roles in playbooks, not meta"
