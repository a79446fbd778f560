"""Every role has a README whose variable section matches its argument spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.roledocs import BEGIN, COMMAND, END, expected_readme

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_readme_is_generated_from_its_argument_spec(role: Path) -> None:
    readme = role / "README.md"
    assert readme.is_file(), f"{role.name} has no README.md: run `{COMMAND}`"
    text = readme.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{readme}: markers missing"
    assert text == expected_readme(role, REPO / "playbooks"), (
        f"{readme.relative_to(REPO)} is out of date with meta/argument_specs.yml: "
        f"run `{COMMAND}`")


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_variable_is_documented(role: Path) -> None:
    """The section names every option of every entry point (not only main's)."""
    import yaml

    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    text = (role / "README.md").read_text(encoding="utf-8")
    section = text[text.index(BEGIN):text.index(END)]
    for entry in specs["argument_specs"].values():
        for name in entry.get("options") or {}:
            assert f"| `{name}` |" in section, f"{role.name}: {name} is not in its README"
