"""``fleetbench_waves``: which slots run together, planned by fleetbench's Python."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError


def _planning() -> ModuleType:
    """fleetbench's planning module, or the error that says how to get it."""
    try:
        from fleetbench import plan
    except ImportError as exc:
        raise AnsibleFilterError(
            "fleetbench is not importable on this controller: install it in the Python "
            "that runs ansible-playbook"
        ) from exc
    return plan


def fleetbench_waves(slots: list[dict[str, Any]], scenario: str, available_gpus: int,
                     container_prefix: str, serving: bool = True) -> dict[str, Any]:
    """Group ``slots`` into waves and drop slots needing GPUs the host lacks."""
    result: dict[str, Any] = _planning().plan_waves(slots, scenario, available_gpus,
                                                    container_prefix, bool(serving))
    return result


def fleetbench_slot_env(env: dict[str, Any], overrides: dict[str, Any],
                        hip_visible_devices: str) -> dict[str, str]:
    """A slot container's environment: ``env``, ``overrides`` over it, the slot's GPUs.

    Checked as fleetbench checks it before a run (no secret-looking names, plain values),
    and as strings, which is what a container's environment holds.
    """
    plan = _planning()
    try:
        merged: dict[str, str] = plan.check_container_env({**env, **overrides}, "benchmark_env")
    except plan.BadInput as exc:
        raise AnsibleFilterError(str(exc)) from None
    return {**merged, "HIP_VISIBLE_DEVICES": str(hip_visible_devices)}


class FilterModule:
    """fleetbench's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        """Name → filter."""
        return {"fleetbench_waves": fleetbench_waves, "fleetbench_slot_env": fleetbench_slot_env}
