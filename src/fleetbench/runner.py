"""The one module that imports ansible_runner.

It runs a playbook of ours in a private data directory (0700, removed afterwards unless
asked to keep it), streams per-host task results to a callback, and returns small frozen
result objects; nothing of ansible-runner leaks to callers.

Secrets never go through here, not even in our own environment: ansible-runner writes
extravars, envvars and the whole inherited environment (artifacts/*/command) to disk.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import ansible_runner.interface

from fleetbench import playbook_guard, scratch
from fleetbench.errors import RunnerError
from fleetbench.resources import ansible_config, module_utils_path, playbook_path, roles_path
from fleetbench.roleargs import SKIP_VALIDATION_TAGS
from fleetbench.secrets import Secret, child_environment

# Private data folders (fleetbench.scratch: named after the controller's pid, swept by a
# later run when the controller died).
PRIVATE_DIR_PREFIX = "fleetbench-runner-"

# Runner event names → the host outcome they report.
_OUTCOMES = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
    "runner_item_on_failed": None,  # per-item noise; the task result follows
}


# ansible-playbook's exit code is a bit set; these bits mean "some hosts failed or were
# unreachable", which are results. Any other bit means Ansible itself failed.
_HOST_FAILURE_BITS = 2 | 4 | 8


@dataclass(frozen=True)
class TaskResult:
    """One task's result on one host."""

    host: str
    task: str
    role: str
    action: str
    outcome: str  # ok | failed | unreachable | skipped
    ignored: bool
    result: Mapping[str, Any] = field(repr=False)
    start: str = ""
    end: str = ""

    @property
    def message(self) -> str:
        """The task's message, the way Ansible would show it.

        For a loop, the first failed or unreachable item's: the loop's own msg says only
        "All items completed".
        """
        for item in self.result.get("results") or ():
            if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
                text = item.get("msg") or item.get("stderr")
                if text:
                    return str(text).strip()
        msg = self.result.get("msg") or self.result.get("stderr") or ""
        return str(msg).strip()


@dataclass(frozen=True)
class PlaybookRun:
    """What one playbook run did: its status and every task result per host."""

    playbook: str
    status: str
    rc: int
    results: tuple[TaskResult, ...]

    def for_host(self, host: str) -> tuple[TaskResult, ...]:
        """Every task result of ``host`` in order."""
        return tuple(r for r in self.results if r.host == host)


def _task_result(event: Mapping[str, Any]) -> TaskResult | None:
    name = str(event.get("event", ""))
    outcome = _OUTCOMES.get(name)
    if outcome is None:
        return None
    data = event.get("event_data") or {}
    return TaskResult(
        host=str(data.get("host", "")),
        task=str(data.get("task", "")),
        role=str(data.get("role", "")),
        action=str(data.get("task_action", "")),
        outcome=outcome,
        ignored=bool(data.get("ignore_errors")),
        result=dict(data.get("res") or {}),
        start=str(data.get("start") or ""),
        end=str(data.get("end") or event.get("created") or ""),
    )


def run_playbook(
    playbook: str,
    inventory: Path,
    *,
    limit: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    forks: int | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    on_task_start: Callable[[str, str], None] | None = None,
    keep_private_dir: bool = False,
    timeout: int | None = None,
    cancel: Callable[[], bool] | None = None,
    arguments_checked: bool = False,
    secrets: tuple[Secret, ...] = (),
) -> PlaybookRun:
    """Run ``playbooks/<playbook>.yml`` against ``inventory``.

    ``on_result`` is called for every per-host task result as it happens (for progress);
    ``on_task_start(host, task)`` when a host starts a task. Host failures are results,
    not exceptions; RunnerError means Ansible itself could not run.
    ``arguments_checked``: the caller checked the roles' arguments for every host
    (:func:`fleetbench.roleargs.validate`), so Ansible's per-host check task is skipped.
    ``secrets``: values that must not reach ansible-playbook's environment even under a
    harmless name (secret-looking variables are always left out).
    """
    scratch.sweep(PRIVATE_DIR_PREFIX)
    private_dir = scratch.make(PRIVATE_DIR_PREFIX)
    results: list[TaskResult] = []

    def handle(event: Mapping[str, Any]) -> bool:
        if event.get("event") == "runner_on_start" and on_task_start is not None:
            data = event.get("event_data") or {}
            on_task_start(str(data.get("host", "")), str(data.get("task", "")))
        result = _task_result(event)
        if result is not None:
            results.append(result)
            if on_result is not None:
                on_result(result)
        # ansible-runner's own copy of each event (job_events/*.json) only matters when the
        # private folder is kept for debugging; otherwise it is written just to be deleted.
        return keep_private_dir

    # The ansible-playbook next to our interpreter (a venv need not be on PATH), so the
    # roles' plugins import this same fleetbench.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    try:
        runner = ansible_runner.interface.init_runner(
            private_data_dir=str(private_dir),
            playbook=str(playbook_path(playbook)),
            inventory=str(inventory.resolve()),
            limit=limit,
            extravars=dict(extravars or {}),
            forks=forks,
            skip_tags=SKIP_VALIDATION_TAGS if arguments_checked else None,
            envvars={
                "ANSIBLE_CONFIG": str(ansible_config()),
                "ANSIBLE_ROLES_PATH": str(roles_path()),
                "ANSIBLE_MODULE_UTILS": str(module_utils_path()),
                "ANSIBLE_NOCOLOR": "1",
                # ansible-runner turns host key checking off unless told otherwise.
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                "PATH": path,
            },
            event_handler=handle,
            cancel_callback=cancel,
            quiet=True,
            timeout=timeout,
            settings={"suppress_ansible_output": True},
        )
        # ansible-runner seeds the child's environment with ours and writes it to
        # artifacts/<id>/command when it starts: no secret may be in it.
        runner.config.env = child_environment(runner.config.env, secrets)
        # ansible-playbook and its workers must outlive neither us (even killed by SIGKILL)
        # nor a cancel: the guard in front of ansible-runner's own command line sees to it.
        runner.config.command = playbook_guard.command(runner.config.command, os.getpid())
        runner.run()
        status, rc = str(runner.status), int(runner.rc if runner.rc is not None else -1)
        if status != "canceled" and rc & ~_HOST_FAILURE_BITS:
            tail = "\n".join(runner.stdout.read().strip().splitlines()[-15:])
            raise RunnerError(f"ansible-playbook {playbook}.yml failed (rc {rc}):\n{tail}")
    except RunnerError:
        raise
    except Exception as exc:  # ansible-runner raises bare exceptions on setup problems
        raise RunnerError(f"could not run {playbook}.yml through ansible-runner: {exc}") from exc
    finally:
        if not keep_private_dir:
            shutil.rmtree(private_dir, ignore_errors=True)
    if status not in {"successful", "failed", "canceled"}:
        raise RunnerError(f"{playbook}.yml ended with runner status {status!r} (rc {rc})")
    return PlaybookRun(playbook=playbook, status=status, rc=rc, results=tuple(results))
