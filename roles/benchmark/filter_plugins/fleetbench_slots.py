"""``fleetbench_waves``: which slots run together, planned by fleetbench's Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError


def fleetbench_waves(slots: list[dict[str, Any]], scenario: str, available_gpus: int,
                     container_prefix: str) -> dict[str, Any]:
    """Group ``slots`` into waves and drop slots needing GPUs the host lacks."""
    try:
        from fleetbench.plan import plan_waves
    except ImportError as exc:
        raise AnsibleFilterError(
            "fleetbench is not importable on this controller: install it in the Python "
            "that runs ansible-playbook"
        ) from exc
    return plan_waves(slots, scenario, available_gpus, container_prefix)


class FilterModule:
    """fleetbench's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        """Name → filter."""
        return {"fleetbench_waves": fleetbench_waves}
