"""The contract between the roles and fleetbench: each role ends by setting one fact.

A role's result is its ``<role>_result`` fact, ``{step, status, data}``, set by its last
task (or by its rescue, with ``status: failed``, where a role keeps what it found before
it failed). fleetbench reads what a role did from this fact alone, never from task or
module names: renaming a module in YAML cannot silently change what fleetbench reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetbench.runner import TaskResult

#: The fact each role ends by setting, ``<role>_result``: {step, status, data}.
RESULT_FACT = "{step}_result"


@dataclass(frozen=True)
class RoleResult:
    """What a role says it did on a host (its ``<role>_result`` fact)."""

    step: str
    status: str
    data: Mapping[str, Any]


def role_result(result: TaskResult) -> RoleResult | None:
    """The result fact a role ended with, when ``result`` is the task that set it."""
    if result.outcome != "ok":
        return None
    for name, fact in (result.result.get("ansible_facts") or {}).items():
        if (isinstance(fact, Mapping) and isinstance(fact.get("step"), str)
                and name == RESULT_FACT.format(step=fact["step"])):
            data = fact.get("data")
            return RoleResult(step=fact["step"], status=str(fact.get("status") or "ok"),
                              data=data if isinstance(data, Mapping) else {})
    return None


def role_results(results: Iterable[TaskResult]) -> dict[str, RoleResult]:
    """Each role's result fact among ``results`` (the last one per step)."""
    found: dict[str, RoleResult] = {}
    for result in results:
        done = role_result(result)
        if done is not None:
            found[done.step] = done
    return found
