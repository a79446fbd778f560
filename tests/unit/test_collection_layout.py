"""Where checkout files go in the collection, and the names qualified on the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench import collection
from fleetbench.errors import BadInput

COLL = collection.Collection("fleetbench", "mi300x")


@pytest.mark.parametrize(("name", "target"), [
    ("module_utils/fleetbench_run.py", "plugins/module_utils/fleetbench_run.py"),
    ("roles/preflight/library/fleetbench_probe.py", "plugins/modules/fleetbench_probe.py"),
    ("roles/preflight/action_plugins/fleetbench_probe.py", "plugins/action/fleetbench_probe.py"),
    ("roles/mad/filter_plugins/fleetbench_mad.py", "plugins/filter/fleetbench_mad.py"),
    ("roles/benchmark/lookup_plugins/fleetbench_token.py", "plugins/lookup/fleetbench_token.py"),
    ("roles/benchmark/files/container-command.sh", "roles/benchmark/files/container-command.sh"),
    ("roles/library/tasks/main.yml", "roles/library/tasks/main.yml"),
    ("playbooks/run.yml", "playbooks/run.yml"),
])
def test_destination(name: str, target: str) -> None:
    assert collection.destination(name) == target


def test_filter_names_are_read_from_the_plugin() -> None:
    source = ('class FilterModule:\n    def filters(self):\n'
              '        return {"fleetbench_waves": w, "fleetbench_slot_env": e}\n')
    assert collection.filter_names(source) == ["fleetbench_waves", "fleetbench_slot_env"]


def test_jinja_names_are_qualified_only_where_used_as_filter_or_lookup() -> None:
    text = ("a: \"{{ x | fleetbench_waves(1) }} {{ y |fleetbench_waves }}\"\n"
            "b: \"{{ lookup('fleetbench_token', s) }} {{ query(\"fleetbench_token\") }}\"\n"
            "c: fleetbench_waves_count\n"
            "d: \"{{ x | fleetbench_waves_more }}\"\n")
    assert collection.qualify_jinja(text, ["fleetbench_waves"], ["fleetbench_token"], COLL) == (
        "a: \"{{ x | fleetbench.mi300x.fleetbench_waves(1) }} "
        "{{ y |fleetbench.mi300x.fleetbench_waves }}\"\n"
        "b: \"{{ lookup('fleetbench.mi300x.fleetbench_token', s) }} "
        "{{ query(\"fleetbench.mi300x.fleetbench_token\") }}\"\n"
        "c: fleetbench_waves_count\n"
        "d: \"{{ x | fleetbench_waves_more }}\"\n")


def test_module_utils_imports_come_from_the_collection() -> None:
    text = ("from ansible.module_utils.basic import AnsibleModule\n"
            "from ansible.module_utils.fleetbench_run import clean_up\n")
    assert collection.qualify_imports(text, ["fleetbench_run"], COLL) == (
        "from ansible.module_utils.basic import AnsibleModule\n"
        "from ansible_collections.fleetbench.mi300x.plugins.module_utils.fleetbench_run "
        "import clean_up\n")


def _checkout(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_two_files_landing_on_one_plugin_name_are_refused(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "c", {
        "galaxy.yml": "namespace: fleetbench\nname: mi300x\nversion: 0.1.0\n",
        "roles/a/library/fleetbench_x.py": "", "roles/b/library/fleetbench_x.py": ""})
    with pytest.raises(BadInput, match="give one of them another name"):
        collection.stage(root, tmp_path / "stage")


def test_stage_without_galaxy_yml_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"galaxy\.yml is missing"):
        collection.stage(_checkout(tmp_path / "c", {"roles/a/tasks/main.yml": "---\n"}),
                         tmp_path / "stage")
