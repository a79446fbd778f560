"""Carry out a partition plan on one host; the steps and their outcomes are fleetbench's.

The plan comes from ``fleetbench_partition_probe`` (``purpose: apply``). Every command runs
on the host through the ``fleetbench_partition_command`` module (with the task's become
and a time limit); :func:`fleetbench.partition.apply.execute_plan` picks the tool, reads
each outcome from the output (never from the exit code alone) and stops at the first
refusal. In check mode nothing runs: the result lists what would.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# Imported with the plugin, not in run(): the strategy loads the plugin in ansible-playbook's
# own process before it forks a worker per host, so every worker inherits the modules
# instead of importing them again (bench/RESULTS.md, tuning log).
try:
    from fleetbench.plugin_api import (
        Command,
        CommandRun,
        Plan,
        execute_plan,
        set_command,
    )
except ImportError as exc:
    FLEETBENCH_MISSING: ImportError | None = exc
else:
    FLEETBENCH_MISSING = None

MODULE = "fleetbench_partition_command"


class ActionModule(ActionBase):  # type: ignore[misc]
    """Run a plan step by step."""

    TRANSFERS_FILES = False
    _VALID_ARGS: ClassVar[frozenset[str]] = frozenset(("plan", "timeout"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Execute the plan's commands on the host and report each step."""
        if FLEETBENCH_MISSING is not None:  # plain ansible-playbook without fleetbench
            raise AnsibleActionFail(
                "fleetbench is not importable on this controller: install it "
                "(pip install fleetbench) in the Python that runs ansible-playbook"
            ) from FLEETBENCH_MISSING
        result: dict[str, Any] = super().run(tmp, task_vars)
        try:
            plan = Plan.from_dict(self._task.args.get("plan") or {})
        except ValueError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        timeout = int(self._task.args.get("timeout") or 600)

        if self._task.check_mode:
            tool, path = plan.tools[0] if plan.tools else ("amd-smi", "amd-smi")
            would = [" ".join(set_command(tool, path, s).argv) for s in plan.steps]
            result.update(changed=bool(plan.steps), would_run=would,
                          msg="check mode: nothing was run")
            return result

        def run_on_host(command: Command) -> CommandRun:
            done = self._execute_module(
                module_name=MODULE,
                module_args={"argv": list(command.argv), "stdin": command.stdin,
                             "timeout": timeout},
                task_vars=task_vars,
            )
            if "rc" not in done:  # the module itself failed (become, Python…)
                return CommandRun(rc=126, stderr=str(done.get("msg") or done))
            return CommandRun(
                rc=int(done["rc"]),
                stdout=str(done.get("stdout") or ""),
                stderr=str(done.get("stderr") or ""),
                timed_out=bool(done.get("timed_out")),
            )

        outcome = execute_plan(plan, run_on_host)
        details = outcome.to_dict()
        details.pop("message")  # it is the msg below
        result.update(details)
        result["changed"] = bool(outcome.records)
        if outcome.warnings:
            result["warnings"] = list(outcome.warnings)
        if not outcome.ok:
            result["failed"] = True
            result["msg"] = outcome.message
        return result
