"""``fleetbench_mad_config``: the YAML config MAD's run.sh layout runs for one slot."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def fleetbench_mad_config(model: str, gpus: int, dtype: str, scenario: str) -> str:
    """run_vllm.py's config for ``model`` at TP ``gpus`` in ``dtype``, ``scenario``'s points."""
    try:
        from fleetbench import mad_era
    except ImportError as exc:
        raise AnsibleFilterError(
            "fleetbench is not importable on this controller: install it in the Python "
            "that runs ansible-playbook"
        ) from exc
    try:
        # Plain str: Ansible hands over its own string types, which YAML cannot represent.
        return mad_era.run_config(str(model), int(gpus), str(dtype), str(scenario))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """fleetbench's MAD config filter."""

    def filters(self) -> dict[str, Any]:
        """The filters this plugin provides."""
        return {"fleetbench_mad_config": fleetbench_mad_config}
