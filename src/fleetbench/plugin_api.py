"""What the collection's plugins use of fleetbench: the one module they import.

The filter and action plugins under ``roles/*/filter_plugins`` and ``roles/*/action_plugins``
run inside ansible-playbook on the controller. They import fleetbench's Python through this
module alone (tests/contract/test_plugin_api.py holds them to it), so that everything the
Ansible content depends on is listed here, and a change to anything below is a change to
the contract between the roles and the package. Keep it to imports.

- preflight: :func:`judge_probe`, the run lock (``lock``), the probe transport (``remote``);
- mad: the checkout's layout (``mad_era``);
- model: :func:`repo_folder_name` (``--model-from``), ``remote``;
- benchmark: the waves (``plan.plan_waves``), the run.sh layout's config
  (``mad_era.run_config``), render-nodes isolation (``isolation``), durations
  (``plan.parse_duration``), the container environment (``plan.check_container_env``);
- partition: :func:`judge_host` and the apply plan (:class:`Plan`, :class:`Command`,
  :class:`CommandRun`, :func:`execute_plan`, :func:`set_command`);
- plan (run.yml's validation play): ``plan.plan_fleet``, :func:`new_run_id`.
"""

from __future__ import annotations

from fleetbench import isolation, lock, mad_era, plan, remote
from fleetbench.errors import BadInput, FleetbenchError
from fleetbench.modelsync import repo_folder_name
from fleetbench.partition.apply import (
    Command,
    CommandRun,
    Plan,
    execute_plan,
    judge_host,
    set_command,
)
from fleetbench.plan import new_run_id
from fleetbench.preflight import judge_probe

__all__ = [
    "BadInput",
    "Command",
    "CommandRun",
    "FleetbenchError",
    "Plan",
    "execute_plan",
    "isolation",
    "judge_host",
    "judge_probe",
    "lock",
    "mad_era",
    "new_run_id",
    "plan",
    "remote",
    "repo_folder_name",
    "set_command",
]
