"""The benchmark role's filters: which slots run together, each slot's environment, the
run.sh layout's config — all computed by fleetbench's Python."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError


def _fleetbench(name: str) -> ModuleType:
    """fleetbench's module ``name``, or the error that says how to get it."""
    try:
        module: ModuleType = getattr(importlib.import_module("fleetbench.plugin_api"), name)
        return module
    except ImportError as exc:
        raise AnsibleFilterError(
            "fleetbench is not importable on this controller: install it in the Python "
            "that runs ansible-playbook"
        ) from exc


def _planning() -> ModuleType:
    return _fleetbench("plan")


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


def fleetbench_mad_config(model: str, gpus: int, dtype: str, scenario: str) -> str:
    """run_vllm.py's config for ``model`` at TP ``gpus`` in ``dtype``, ``scenario``'s points
    (MAD's run.sh layout)."""
    try:
        # Plain str: Ansible hands over its own string types, which YAML cannot represent.
        config: str = _fleetbench("mad_era").run_config(str(model), int(gpus), str(dtype),
                                                        str(scenario))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    return config


def fleetbench_slot_devices(hip_visible_devices: Any, isolation: str,
                            kfd_nodes: list[dict[str, Any]], devices: list[str],
                            device_root: str = "/") -> dict[str, Any]:
    """A slot container's ``devices`` and ``HIP_VISIBLE_DEVICES`` under ``isolation``
    (``all`` or ``render-nodes``), from the host's KFD topology."""
    isolation_module = _fleetbench("isolation")
    try:
        chosen = isolation_module.slot_devices(
            str(isolation), str(hip_visible_devices), list(kfd_nodes or []),
            [str(d) for d in devices or []], str(device_root))
    except isolation_module.IsolationError as exc:
        raise AnsibleFilterError(str(exc)) from None
    result: dict[str, Any] = chosen.to_dict()
    return result


def fleetbench_seconds(duration: Any, name: str = "the duration") -> int:
    """Seconds in ``duration`` as fleetbench's options take it (``90``, ``90s``, ``20m``,
    ``6h``); a bad value is an error naming ``name``."""
    plan = _planning()
    try:
        seconds: int = plan.parse_duration(str(duration), name)
    except plan.BadInput as exc:
        raise AnsibleFilterError(str(exc)) from None
    return seconds


class FilterModule:
    """fleetbench's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        """Name → filter."""
        return {"fleetbench_waves": fleetbench_waves, "fleetbench_slot_env": fleetbench_slot_env,
                "fleetbench_mad_config": fleetbench_mad_config,
                "fleetbench_seconds": fleetbench_seconds,
                "fleetbench_slot_devices": fleetbench_slot_devices}
