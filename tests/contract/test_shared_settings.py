"""The fleet-wide settings (work folder, image, partition mode, …) are defined once, in the
fleetbench_defaults role, which every play lists first: no other role repeats them as a
`| default()` or a literal, and the places that document or mirror them agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetbench.plan import DEFAULT_IMAGE
from fleetbench.sshpoll import DEFAULT_WORK_DIR

REPO = Path(__file__).resolve().parents[2]
SHARED = "fleetbench_defaults"
ROLES = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir() and p.name != SHARED)
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


SETTINGS: dict[str, Any] = _yaml(REPO / "roles" / SHARED / "defaults" / "main.yml")
SPEC: dict[str, Any] = _yaml(REPO / "roles" / SHARED / "meta" / "argument_specs.yml")[
    "argument_specs"]["main"]["options"]
# Values distinctive enough that seeing one in a role means it was copied there.
LITERALS = sorted(v for v in SETTINGS.values()
                  if isinstance(v, str) and len(v) > 3 and "{{" not in v)


def _content(role: Path) -> list[Path]:
    """What a role does with its values (its argument spec only documents them)."""
    return [p for folder in ("defaults", "vars", "tasks", "templates", "handlers")
            for p in sorted((role / folder).rglob("*")) if p.is_file()]


def test_the_shared_role_holds_settings_and_nothing_else() -> None:
    assert {"fleetbench_work_dir", "fleetbench_image", "fleetbench_expected_compute",
            "fleetbench_expected_memory", "fleetbench_sysfs_root"} <= set(SETTINGS)
    assert sorted(p.name for p in (REPO / "roles" / SHARED).iterdir()) == [
        "README.md", "defaults", "meta"]
    assert LITERALS  # the check below has something to look for


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_role_repeats_a_shared_setting(role: Path) -> None:
    for path in _content(role):
        text = path.read_text()
        for name in SETTINGS:
            assert not re.search(rf"\b{name}\s*\|\s*default\b", text), (
                f"{path.relative_to(REPO)} repeats the default of {name}: it is defined once, "
                f"in roles/{SHARED}/defaults/main.yml")
        for value in LITERALS:
            assert value not in text, (
                f"{path.relative_to(REPO)} repeats the shared value {value!r}: refer to the "
                f"setting in roles/{SHARED}/defaults/main.yml")


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_every_play_lists_the_shared_settings_first(playbook: Path) -> None:
    for play in _yaml(playbook):
        first = play["roles"][0]
        assert (first["role"] if isinstance(first, dict) else first) == SHARED, (
            f"{playbook.name}: play {play.get('name')!r} must list {SHARED} first, or its "
            "roles see no fleetbench_* defaults")


def test_role_options_document_the_shared_default_they_take() -> None:
    """A role option whose default is a shared setting documents that setting's default."""
    checked = 0
    for role in ROLES:
        defaults = _yaml(role / "defaults" / "main.yml") or {}
        options = _yaml(role / "meta" / "argument_specs.yml")["argument_specs"]["main"][
            "options"]
        for option, raw in defaults.items():
            taken = re.fullmatch(r"\{\{ (fleetbench_\w+) \}\}", str(raw))
            if taken and taken.group(1) in SETTINGS:
                assert options[option].get("default") == SPEC[taken.group(1)].get("default"), (
                    f"{role.name}.{option} documents another default than {taken.group(1)}")
                checked += 1
    assert checked >= 10


def test_the_spec_documents_each_setting_as_defined() -> None:
    for name, value in SETTINGS.items():
        if "{{" not in str(value):
            assert SPEC[name].get("default") == value, name


def test_python_falls_back_to_the_same_values() -> None:
    # Where the controller needs a value before any play runs (the watch's SSH polls, the
    # run plan), it uses the same default.
    assert SETTINGS["fleetbench_work_dir"] == DEFAULT_WORK_DIR
    assert SETTINGS["fleetbench_image"] == DEFAULT_IMAGE
