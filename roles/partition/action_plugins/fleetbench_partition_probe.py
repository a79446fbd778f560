"""Controller half of ``fleetbench_partition_probe``: read the host, judge it with fleetbench.

``purpose: apply`` — the state before a change: the verdict against the target, the GPU
users and the ordered plan (:func:`fleetbench.partition.apply.judge_host`). The host
fails only when it cannot be planned; GPUs in use give ``refused`` (the role then leaves
the host untouched).

``purpose: verify`` — the same probe and verdict after a change; polls for up to
``settle_timeout`` seconds (the driver reloads after an NPS change) and fails the host
when the partition still does not match.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# Imported with the plugin, not in run(): the strategy loads the plugin in ansible-playbook's
# own process before it forks a worker per host, so every worker inherits the modules
# instead of importing them again (bench/RESULTS.md, tuning log).
try:
    from fleetbench.plugin_api import FleetbenchError, judge_host, remote
except ImportError as exc:
    FLEETBENCH_MISSING: ImportError | None = exc
else:
    FLEETBENCH_MISSING = None

MODULE = "fleetbench_partition_probe"
MODULE_ARGS = ("sysfs_root", "rocm_path", "container_filters", "command_timeout")
TARGET_ARGS = ("compute", "memory", "logical_per_physical", "missing_partition_is_error")
OWN_ARGS = ("purpose", "settle_timeout", "settle_interval")


class ActionModule(ActionBase):  # type: ignore[misc]
    """Probe on the host, decisions on the controller."""

    TRANSFERS_FILES = False
    _VALID_ARGS: ClassVar[frozenset[str]] = frozenset(MODULE_ARGS + TARGET_ARGS + OWN_ARGS)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Probe (and for ``verify``, poll until settled), then attach fleetbench's judgement."""
        if FLEETBENCH_MISSING is not None:  # plain ansible-playbook without fleetbench
            raise AnsibleActionFail(
                "fleetbench is not importable on this controller: install it "
                "(pip install fleetbench) in the Python that runs ansible-playbook"
            ) from FLEETBENCH_MISSING
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = self._task.args
        purpose = str(args.get("purpose", "apply"))
        if purpose not in ("apply", "verify"):
            raise AnsibleActionFail(f"purpose must be apply or verify, not {purpose!r}")
        module_args = {key: args[key] for key in MODULE_ARGS if key in args}
        target = {key: args[key] for key in TARGET_ARGS if key in args}
        settle = float(args.get("settle_timeout") or 0) if purpose == "verify" else 0.0
        interval = max(float(args.get("settle_interval") or 5), 0.1)
        deadline = time.monotonic() + settle
        attempts = 0
        while True:
            attempts += 1
            probe = remote.run_probe(self, task_vars or {}, "partition_probe", MODULE,
                                     module_args)
            if probe.get("failed") or probe.get("unreachable"):
                result.update(probe)
                result["purpose"] = purpose  # fleetbench tells the two probes apart by it
                return result
            try:
                judged = judge_host(probe, target)
            except FleetbenchError as exc:
                return {**result, "failed": True, "msg": str(exc), "purpose": purpose}
            if purpose == "apply" or judged["verdict"]["ok"] or time.monotonic() >= deadline:
                break
            time.sleep(interval)
        result.update(judged)
        result.update({"changed": False, "purpose": purpose, "attempts": attempts,
                       "hostname": probe.get("hostname")})
        if purpose == "verify":
            verdict = judged["verdict"]
            if not verdict["ok"]:
                result["failed"] = True
                waited = f" (after {attempts} reads over {settle:g} s)" if settle else ""
                result["msg"] = "; ".join(verdict["problems"]) + waited
            elif verdict["warnings"]:
                result["msg"] = "; ".join(verdict["warnings"])
            return result
        if judged["problems"]:
            result["failed"] = True
            result["msg"] = "; ".join(judged["problems"])
        elif judged["refused"]:
            result["msg"] = judged["refusal"]
            # Shown by ansible-playbook too (an ok result's msg is not); `warnings` is not
            # used for it, as fleetbench reports judged["warnings"] as the host's warnings.
            self._display.warning(f"{task_vars.get('inventory_hostname', '') if task_vars else ''}"
                                  f": {judged['refusal']}")
        return result
