"""``fleetbench_mad_era``: which MAD layout a host's checkout has, told by fleetbench's Python."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def fleetbench_mad_era(found: dict[str, Any], checkout: str, where: str, dtype: str
                       ) -> dict[str, str]:
    """``{"era", "problem"}`` of the checkout at ``checkout`` from ``ansible.builtin.find``'s
    result ``found`` (its files in ``scripts/vllm``); ``problem`` is empty when fleetbench
    can run the run's ``dtype`` there."""
    try:
        from fleetbench.plugin_api import mad_era
    except ImportError as exc:
        raise AnsibleFilterError(
            "fleetbench is not importable on this controller: install it in the Python "
            "that runs ansible-playbook"
        ) from exc
    prefix = checkout.rstrip("/") + "/"
    present = [str(f["path"]).removeprefix(prefix) for f in found.get("files", [])]
    detected = mad_era.detect_era(present, where)
    if detected.era is None:
        return {"era": "", "problem": detected.problem}
    problem = mad_era.run_yaml_dtype_problem(str(dtype)) if detected.era == "run-yaml" else ""
    return {"era": detected.era, "problem": f"{where}: {problem}" if problem else ""}


class FilterModule:
    """fleetbench's MAD filters."""

    def filters(self) -> dict[str, Any]:
        """The filters this plugin provides."""
        return {"fleetbench_mad_era": fleetbench_mad_era}
