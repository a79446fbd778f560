"""The Python side and the roles' argument specs offer the same choices: a mode, dtype or
scenario fleetbench accepts is one the roles accept, and the other way round."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetbench.isolation import ISOLATIONS
from fleetbench.mad_era import ERAS
from fleetbench.partition.modes import COMPUTE_MODES, MEMORY_MODES
from fleetbench.plan import DTYPES, SCENARIOS

REPO = Path(__file__).resolve().parents[2]

# (role, variable) -> the Python tuple its choices must equal, in the same order.
CHOICES = {
    ("preflight", "preflight_expected_compute"): COMPUTE_MODES,
    ("preflight", "preflight_expected_memory"): MEMORY_MODES,
    ("fleetbench_defaults", "fleetbench_expected_compute"): COMPUTE_MODES,
    ("fleetbench_defaults", "fleetbench_expected_memory"): MEMORY_MODES,
    ("partition", "partition_compute"): COMPUTE_MODES,
    ("partition", "partition_memory"): MEMORY_MODES,
    ("benchmark", "benchmark_dtype"): DTYPES,
    ("benchmark", "benchmark_scenario"): SCENARIOS,
    ("benchmark", "benchmark_mad_era"): ERAS,
    ("benchmark", "benchmark_gpu_isolation"): ISOLATIONS,
    ("fleetbench_defaults", "fleetbench_gpu_isolation"): ISOLATIONS,
    ("mad", "mad_dtype"): DTYPES,
    ("plan", "plan_dtype"): DTYPES,
    ("plan", "plan_scenario"): SCENARIOS,
}
# Choices with no Python counterpart: the partition role's verify/apply switch is the role's
# own, set by the playbook that includes it.
ROLE_ONLY = {("partition", "partition_action")}


def _options(role: str) -> dict[str, dict[str, object]]:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options: dict[str, dict[str, object]] = {}
    for entry in spec["argument_specs"].values():
        options.update(entry.get("options") or {})
    return options


@pytest.mark.parametrize(("role", "variable"), sorted(CHOICES))
def test_argument_spec_choices_are_the_python_ones(role: str, variable: str) -> None:
    option = _options(role)[variable]
    assert tuple(option["choices"]) == CHOICES[(role, variable)]  # type: ignore[arg-type]


def test_every_choice_list_in_the_roles_is_tied_to_python() -> None:
    """A new `choices` in a spec needs its Python counterpart in CHOICES above."""
    found = {(role.name, name) for role in (REPO / "roles").iterdir()
             if (role / "meta" / "argument_specs.yml").exists()
             for name, option in _options(role.name).items()
             if "choices" in option}
    assert found == set(CHOICES) | ROLE_ONLY
