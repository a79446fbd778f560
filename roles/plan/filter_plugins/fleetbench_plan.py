"""The plan role's filter: a run planned and validated by fleetbench's own Python."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# What a host's planned slots depend on: the inventory's partition settings.
HOST_SETTINGS = ("fleetbench_expected_compute", "fleetbench_logical_per_physical",
                 "fleetbench_physical_gpus", "fleetbench_gpu_memory_bytes")


def fleetbench_run_plan(hosts: list[str], hostvars: Mapping[str, Any],
                        run: Mapping[str, Any]) -> dict[str, Any]:
    """``{"problem"}`` (one message naming the variable and the fix) for bad input, else
    ``{"problem": "", "run_id", "slots_by_host", "collect_dest"}``.

    ``run``: model, gpus, dtype, scenario, slots, token_file, run_id, collect_dest (the
    plan role's variables).
    """
    try:
        api = importlib.import_module("fleetbench.plugin_api")
    except ImportError as exc:
        raise AnsibleFilterError(
            "fleetbench is not importable on this controller: install it in the Python "
            "that runs ansible-playbook") from exc
    host_vars = {host: {name: hostvars[host][name] for name in HOST_SETTINGS
                        if name in hostvars[host]} for host in hosts}
    try:
        slots_by_host = api.plan.plan_fleet(
            str(run.get("model") or ""), run.get("gpus"), str(run.get("dtype")),
            str(run.get("scenario")), host_vars, slots=str(run.get("slots") or "auto"),
            token_file=str(run.get("token_file") or ""))
    except api.BadInput as exc:
        return {"problem": str(exc)}
    run_id = str(run.get("run_id") or "") or api.new_run_id()
    # Relative to the folder ansible-playbook was started in, as its other paths are.
    dest = Path(str(run.get("collect_dest") or "") or f"runs/{run_id}/hosts").absolute()
    return {"problem": "", "run_id": run_id, "slots_by_host": slots_by_host,
            "collect_dest": str(dest)}


class FilterModule:
    """fleetbench_run_plan."""

    def filters(self) -> dict[str, Any]:
        """The filters of this file."""
        return {"fleetbench_run_plan": fleetbench_run_plan}
