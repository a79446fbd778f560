"""Controller half of ``fleetbench_probe``: run the read-only probe, judge it with fleetbench.

The probe (module_utils/fleetbench_probe.py) gathers raw text on the host in one call:
piped straight to the host's Python in one SSH exec (:mod:`fleetbench.remote`), or run
as the module of the same name on connections without pipelining. This plugin hands the
result to :func:`fleetbench.preflight.judge_probe`, the tested Python verdict, and fails
the host when it is not fit (so it drops out of the play and is reported, never
benchmarked).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# Imported with the plugin, not in run(): the strategy loads the plugin in ansible-playbook's
# own process before it forks a worker per host, so every worker inherits the modules
# instead of importing them again (bench/RESULTS.md, tuning log).
try:
    from fleetbench.plugin_api import judge_probe, lock, remote
except ImportError as exc:
    FLEETBENCH_MISSING: ImportError | None = exc
else:
    FLEETBENCH_MISSING = None

MODULE_ARGS = ("sysfs_root", "rocm_path", "disk_path", "model_cache", "command_timeout",
               "lock_path", "lock_run_id", "lock_controller")
JUDGE_ARGS = (
    "expected_compute",
    "expected_memory",
    "logical_per_physical",
    "missing_partition_is_error",
    "disk_need",
    "disk_margin_gb",
)


class ActionModule(ActionBase):  # type: ignore[misc]
    """Probe on the host, verdict on the controller."""

    TRANSFERS_FILES = False
    _VALID_ARGS: ClassVar[frozenset[str]] = frozenset(MODULE_ARGS + JUDGE_ARGS)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Execute the probe module, then attach fleetbench's verdict."""
        if FLEETBENCH_MISSING is not None:  # plain ansible-playbook without fleetbench
            raise AnsibleActionFail(
                "fleetbench is not importable on this controller: install it "
                "(pip install fleetbench) in the Python that runs ansible-playbook"
            ) from FLEETBENCH_MISSING
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = self._task.args
        module_args = {key: args[key] for key in MODULE_ARGS if key in args}
        need = args.get("disk_need") or {}
        if need:  # what of the run the host already has counts against the need
            module_args.update({"image": need.get("image"), "model": need.get("model")})
        probe = remote.run_probe(self, task_vars or {}, "probe", "fleetbench_probe", module_args)
        result.update(probe)
        inventory = lock.inventory_of((task_vars or {}).get("ansible_inventory_sources"))
        if probe.get("locked"):
            # Another run holds the host: say who, whether that run is dead, and the fix.
            held = lock.judge_lock((probe.get("lock") or {}).get("owner") or {},
                                   lock.this_controller())
            if held is not None:
                result["msg"] = f"host is {lock.describe(held, inventory)}"
                result["lock"] = {**probe["lock"], "judged": held.contract()}
        if probe.get("failed") or probe.get("unreachable"):
            return result
        verdict = judge_probe(probe, {key: args[key] for key in JUDGE_ARGS if key in args},
                              inventory=inventory)
        result["verdict"] = verdict
        result["changed"] = False
        if not verdict["ok"]:
            result["failed"] = True
            result["msg"] = "; ".join(verdict["problems"])
        elif verdict["warnings"]:
            result["msg"] = "; ".join(verdict["warnings"])
        return result
