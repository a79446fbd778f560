"""``fleetbench check``: read-only probes of a fleet, one remote call per host."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench import roleargs
from fleetbench.hostkeys import unreachable_status
from fleetbench.inventory import Fleet
from fleetbench.role_results import role_result
from fleetbench.runner import PlaybookRun, TaskResult, run_playbook

PLAYBOOK = "check"
#: The role whose result fact (``preflight_result``) says how a host was found.
ROLE = "preflight"
DEFAULT_MAX_FORKS = 100


@dataclass(frozen=True)
class HostCheck:
    """The outcome of checking one host."""

    name: str
    status: str  # ok | failed | unreachable | failed:hostkey
    compute_partition: str | None = None
    memory_partition: str | None = None
    logical_gpus: int | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    docker_version: str | None = None
    rocm_version: str | None = None
    free_disk_gb: float | None = None
    #: Everything the preflight judged (``fleetbench.preflight.judge_probe``): the full
    #: partition verdict with each source's reading, driver version… (None: no verdict).
    verdict: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def lock(self) -> Mapping[str, Any] | None:
        """Another run's lock on the host: ``{run_id, controller, age_s, stale}`` (None: free)."""
        return (self.verdict or {}).get("lock")

    def contract(self) -> dict[str, Any]:
        """The per-host object of ``fleetbench check --json`` (DESIGN.md §6), exactly;
        ``lock`` only on a host another run holds."""
        contract: dict[str, Any] = {
            "status": self.status,
            "compute_partition": self.compute_partition,
            "memory_partition": self.memory_partition,
            "logical_gpus": self.logical_gpus,
            "problems": list(self.problems),
        }
        if self.lock is not None:
            contract["lock"] = dict(self.lock)
        return contract


@dataclass(frozen=True)
class CheckReport:
    """Every checked host, in inventory order."""

    hosts: tuple[HostCheck, ...]

    @property
    def ok(self) -> bool:
        """True when every host is ok."""
        return all(h.status == "ok" for h in self.hosts)

    def contract(self) -> dict[str, Any]:
        """``{"hosts": {NAME: {...}}}`` as ``fleetbench check --json`` prints it."""
        return {"hosts": {h.name: h.contract() for h in self.hosts}}


def deciding_result(results: Sequence[TaskResult]) -> TaskResult | None:
    """The result that decides a host: SSH's refusal, the task that set the preflight
    role's result fact, or else the task that failed the host (the probe fails a host it
    finds unfit, with its verdict in the result). Which module did it does not matter."""
    for result in results:
        if result.outcome == "unreachable":
            return result
        done = role_result(result)
        if done is not None and done.step == ROLE:
            return result
    return next((r for r in results if r.outcome == "failed" and not r.ignored), None)


def host_check(name: str, result: TaskResult | None) -> HostCheck:
    """Turn the result that decides one host (:func:`deciding_result`) into a HostCheck."""
    if result is None:
        return HostCheck(name, "failed", problems=("the probe never ran on this host",))
    if result.outcome == "unreachable":
        # A host key SSH refused is failed:hostkey with one line, not SSH's whole banner.
        status, problem = unreachable_status(name, result.message or "unreachable")
        return HostCheck(name, status, problems=(problem,))
    done = role_result(result)
    verdict: Mapping[str, Any] | None = (
        done.data.get("verdict") if done is not None else result.result.get("verdict")) or None
    if verdict is None:  # the module itself failed (Python missing, permission, crash…)
        return HostCheck(name, "failed", problems=(result.message or "the probe failed",))
    return HostCheck(
        name=name,
        status="ok" if verdict["ok"] and result.outcome == "ok" else "failed",
        compute_partition=verdict.get("compute_partition"),
        memory_partition=verdict.get("memory_partition"),
        logical_gpus=verdict.get("logical_gpus"),
        problems=tuple(verdict.get("problems", ())),
        warnings=tuple(verdict.get("warnings", ())),
        docker_version=verdict.get("docker_version"),
        rocm_version=verdict.get("rocm_version"),
        free_disk_gb=verdict.get("free_disk_gb"),
        verdict=verdict,
    )


def report_from_run(hosts: tuple[str, ...], run: PlaybookRun) -> CheckReport:
    """A CheckReport for ``hosts`` from the results of ``check.yml``."""
    return CheckReport(hosts=tuple(host_check(name, deciding_result(run.for_host(name)))
                                   for name in hosts))


def check_fleet(
    fleet: Fleet,
    *,
    forks: int | None = None,
    on_host: Callable[[HostCheck], None] | None = None,
    arguments_checked: bool = False,
) -> CheckReport:
    """Check every host of ``fleet`` (see :func:`fleetbench.inventory.load_fleet`);
    never raises for a host.

    BadInput (nothing started) when a host's variables fail the preflight role's argument
    spec, unless the caller already ran :func:`validate_inputs` (``arguments_checked``).
    """
    if not arguments_checked:
        validate_inputs(fleet)

    def on_result(result: TaskResult) -> None:
        if on_host is not None and deciding_result((result,)) is result:
            on_host(host_check(result.host, result))

    # Probes are independent and light: one fork per host, up to a bound for the controller.
    forks = forks or min(len(fleet.hosts), DEFAULT_MAX_FORKS)
    run = run_playbook(PLAYBOOK, fleet.inventory, limit=fleet.limit, forks=forks,
                       on_result=on_result, arguments_checked=True)
    return report_from_run(fleet.hosts, run)


def validate_inputs(fleet: Fleet) -> None:
    """BadInput when a host's variables fail the argument spec of check.yml's roles."""
    roleargs.validate([PLAYBOOK], fleet.host_vars)
