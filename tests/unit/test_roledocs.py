"""The role README generator: spec → table rows, marked-section rewrite, staleness."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from fleetbench import roledocs
from fleetbench.errors import FleetbenchError

REPO = Path(__file__).resolve().parents[2]


def test_ansible_markup_becomes_markdown() -> None:
    text = "C(verify) reads; I(only) B(this) V(x) O(partition_action) L(docs,https://x.y/z) U(u)"
    assert roledocs.markdown(text) == (
        "`verify` reads; *only* **this** `x` `partition_action` [docs](https://x.y/z) u")
    assert roledocs.markdown("GPU(s) of AMD(R)") == "GPU(s) of AMD(R)"


def test_rows_show_type_choices_default_and_expression() -> None:
    row = roledocs.variable(
        "partition_memory",
        {"type": "str", "default": "NPS4", "choices": ["NPS1", "NPS4"],
         "description": ["Memory mode,", "C(a|b)."]},
        "{{ fleetbench_expected_memory | default('NPS4') }}")
    assert row.type == "str: `NPS1`, `NPS4`"
    assert row.default == ("`NPS4`<br>set from "
                           "`{{ fleetbench_expected_memory \\| default('NPS4') }}`")
    assert row.description == "Memory mode, `a\\|b`."
    required = roledocs.variable("x_slots", {"type": "list", "elements": "dict",
                                             "required": True, "description": "d"})
    assert (required.type, required.default) == ("list of dict", "required")
    empty = roledocs.variable("x_file", {"type": "str", "default": "", "description": "d"}, "")
    assert empty.default == '`""`'


def test_update_keeps_prose_and_needs_one_pair_of_markers() -> None:
    text = f"# r\n\nprose\n\n{roledocs.BEGIN}\nold\n{roledocs.END}\n\nmore prose\n"
    assert roledocs.updated(text, "NEW") == "# r\n\nprose\n\nNEW\n\nmore prose\n"
    with pytest.raises(FleetbenchError, match=re.escape(roledocs.COMMAND)):
        roledocs.updated("# r\n\nno markers\n", "NEW")
    with pytest.raises(FleetbenchError):
        roledocs.updated(f"{roledocs.END}\n{roledocs.BEGIN}\n", "NEW")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of two real roles and the playbooks, to edit freely."""
    for name in ("image", "partition"):
        shutil.copytree(REPO / "roles" / name, tmp_path / "roles" / name)
    shutil.copytree(REPO / "playbooks", tmp_path / "playbooks")
    return tmp_path


def test_a_changed_spec_makes_the_readme_stale_until_regenerated(
        checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roles = checkout / "roles"
    args = ["--roles", str(roles)]
    assert roledocs.main([*args, "--check"]) == 0
    spec = roles / "partition" / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text().replace(
        "Seconds any one read-only probe command may take.", "Seconds per probe command."))
    prose_before = (roles / "partition" / "README.md").read_text().split(roledocs.BEGIN)[0]

    assert roledocs.main([*args, "--check"]) == 1
    assert "out of date: " + str(roles / "partition" / "README.md") in capsys.readouterr().out
    assert roledocs.main(args) == 0
    readme = (roles / "partition" / "README.md").read_text()
    assert "| `partition_command_timeout` | int | `60` | Seconds per probe command. |" in readme
    assert readme.startswith(prose_before)
    assert roledocs.main([*args, "--check"]) == 0


def test_a_role_without_readme_gets_one(checkout: Path) -> None:
    (checkout / "roles" / "image" / "README.md").unlink()
    assert roledocs.main(["--roles", str(checkout / "roles")]) == 0
    readme = (checkout / "roles" / "image" / "README.md").read_text()
    assert readme.startswith("# image\n\nPull the benchmark image (or load it from the controller), "
                             "throttled across the fleet.")
    assert "Used by `playbooks/run.yml`, `playbooks/start.yml`." in readme
    assert "| `image_pull_throttle` | int | `8` | Hosts pulling at the same time. |" in readme


def test_entry_points_with_different_options_get_a_table_each(checkout: Path) -> None:
    spec = checkout / "roles" / "image" / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text() + (
        "  check:\n    short_description: Only check the image\n    options:\n"
        "      image_check_timeout:\n        type: int\n        default: 120\n"
        "        description: Seconds.\n"))
    section = roledocs.render_section(roledocs.load_role(checkout / "roles" / "image"))
    assert "| `check` | Only check the image |" in section
    assert "### `main`" in section and "### `check`" in section
    assert section.count("| `image_check_timeout` |") == 2


def test_a_broken_spec_is_one_clear_error(checkout: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "roles" / "image" / "meta" / "argument_specs.yml").write_text("[: nope")
    assert roledocs.main(["--roles", str(checkout / "roles")]) == 2
    assert "argument_specs.yml" in capsys.readouterr().err
