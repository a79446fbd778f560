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

MODULE_ARGS = ("sysfs_root", "rocm_path", "disk_path", "command_timeout",
               "lock_path", "lock_run_id", "lock_stale_hours")
JUDGE_ARGS = (
    "expected_compute",
    "expected_memory",
    "logical_per_physical",
    "missing_partition_is_error",
    "min_free_disk_gb",
)


class ActionModule(ActionBase):  # type: ignore[misc]
    """Probe on the host, verdict on the controller."""

    TRANSFERS_FILES = False
    _VALID_ARGS: ClassVar[frozenset[str]] = frozenset(MODULE_ARGS + JUDGE_ARGS)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Execute the probe module, then attach fleetbench's verdict."""
        result: dict[str, Any] = super().run(tmp, task_vars)
        try:
            from fleetbench import remote
            from fleetbench.preflight import judge_probe
        except ImportError as exc:  # plain ansible-playbook without fleetbench installed
            raise AnsibleActionFail(
                "fleetbench is not importable on this controller: install it "
                "(pip install fleetbench) in the Python that runs ansible-playbook"
            ) from exc
        args = self._task.args
        module_args = {key: args[key] for key in MODULE_ARGS if key in args}
        probe = self._probe(remote, module_args, task_vars or {})
        result.update(probe)
        if probe.get("failed") or probe.get("unreachable"):
            return result
        verdict = judge_probe(probe, {key: args[key] for key in JUDGE_ARGS if key in args})
        result["verdict"] = verdict
        result["changed"] = False
        if not verdict["ok"]:
            result["failed"] = True
            result["msg"] = "; ".join(verdict["problems"])
        elif verdict["warnings"]:
            result["msg"] = "; ".join(verdict["warnings"])
        return result

    def _probe(self, remote: Any, module_args: dict[str, Any],
               task_vars: dict[str, Any]) -> dict[str, Any]:
        if not self._connection.has_pipelining:
            return dict(self._execute_module(module_name="fleetbench_probe",
                                             module_args=module_args, task_vars=task_vars))
        python = remote.interpreter(
            {"ansible_python_interpreter": self._templar.template(
                task_vars.get("ansible_python_interpreter"))})
        done = self._low_level_execute_command(
            remote.command(python), sudoable=True,
            in_data=remote.payload(("fleetbench_host", "fleetbench_run", "fleetbench_probe"),
                                   "probe", module_args))
        return dict(remote.answer(done, "the preflight probe", python))
