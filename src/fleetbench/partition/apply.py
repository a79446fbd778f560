"""Setting partition modes on one host: the order of the steps, the commands, their outcomes.

Pure functions the ``partition`` role's action plugins call on the controller
(the tools' set outputs: ``tests/fixtures/smi/``):

- :func:`order_steps`: compute and memory changes in the order the hardware accepts (the
  number of memory partitions may never exceed the number of compute partitions, so
  SPX/NPS1 -> CPX/NPS4 sets CPX first and CPX/NPS4 -> SPX/NPS1 sets NPS1 first);
- :func:`judge_host`: the host's verdict against the target, who uses its GPUs (KFD
  ``proc/<pid>`` entries, containers) and the plan, from what the probe module gathered;
- :func:`parse_set_output`: what an ``amd-smi set`` / ``rocm-smi --set…`` / ``amd-smi
  reset -r`` run really did. Exit codes are not trusted: rocm-smi exits 0 on failure unless
  ``--loglevel`` is given, amd-smi ``set -M`` exits 0 with per-GPU error lines;
- :func:`execute_plan`: run the plan through amd-smi, falling back to rocm-smi when amd-smi
  is missing or rejects its own arguments, reloading the driver where ROCm 7 needs it, and
  stopping at the first step the driver refuses.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench.partition.modes import (
    LOGICAL_PER_PHYSICAL,
    MEMORY_PARTITIONS,
    MIXED,
    normalize_compute,
    normalize_memory,
)
from fleetbench.partition.sysfs import devices_from_raw
from fleetbench.partition.verdict import ExpectedPartition, evaluate_host

COMPUTE = "compute"
MEMORY = "memory"
RELOAD = "reload"
AMD_SMI = "amd-smi"
ROCM_SMI = "rocm-smi"
#: Tried in this order: amd-smi is the current tool, rocm-smi the fallback.
TOOLS = (AMD_SMI, ROCM_SMI)


# ----------------------------------------------------------------------------- ordering


@dataclass(frozen=True)
class Step:
    """One partition change: ``kind`` is ``compute`` or ``memory``, ``mode`` the new mode."""

    kind: str
    mode: str

    def to_dict(self) -> dict[str, str]:
        """JSON-able form."""
        return {"kind": self.kind, "mode": self.mode}


def holds(compute: str, memory: str) -> bool:
    """True when compute mode ``compute`` can hold memory mode ``memory`` (FORMATS §1)."""
    return MEMORY_PARTITIONS[memory] <= LOGICAL_PER_PHYSICAL[compute]


def _modes(value: str | Iterable[str], normalize: Callable[[str], str]) -> frozenset[str]:
    values = [value] if isinstance(value, str) else list(value)
    return frozenset(normalize(v) for v in values)


def order_steps(
    compute: str | Iterable[str],
    memory: str | Iterable[str],
    target_compute: str,
    target_memory: str,
) -> tuple[Step, ...]:
    """The steps from the current modes to the target, in an order the driver accepts.

    ``compute``/``memory`` are the current modes: one name, or every mode the GPUs show
    when they disagree. What already matches is skipped. Compute goes first unless the
    target compute mode cannot hold a current memory mode (CPX/NPS4 -> SPX/NPS1 sets
    NPS1 first). Raises ValueError when a current mode is unknown (empty) and BadInput
    for a name that is not a mode.
    """
    computes = _modes(compute, normalize_compute)
    memories = _modes(memory, normalize_memory)
    if not computes or not memories:
        raise ValueError("the current compute and memory partitions must be known to plan")
    target_compute = normalize_compute(target_compute)
    target_memory = normalize_memory(target_memory)
    set_compute = Step(COMPUTE, target_compute)
    set_memory = Step(MEMORY, target_memory)
    need_compute = computes != {target_compute}
    need_memory = memories != {target_memory}
    if not need_memory:
        return (set_compute,) if need_compute else ()
    if not need_compute:
        return (set_memory,)
    if all(holds(target_compute, m) for m in memories):
        return (set_compute, set_memory)
    if all(holds(c, target_memory) for c in computes):
        return (set_memory, set_compute)
    # GPUs in disagreeing modes that allow neither order: every compute mode holds NPS1.
    return (Step(MEMORY, "NPS1"), set_compute, set_memory)


# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """One command line to run on the host, and what to feed its standard input."""

    argv: tuple[str, ...]
    stdin: str = ""


def set_command(tool: str, path: str, step: Step) -> Command:
    """The command that makes ``step`` with ``tool`` (installed at ``path``), per FORMATS §5."""
    if tool == AMD_SMI:
        if step.kind == COMPUTE:
            return Command((path, "set", "--gpu", "all", "--compute-partition", step.mode))
        # amd-smi asks "Do you accept these terms? [Y/N]" before an NPS change.
        return Command((path, "set", "--memory-partition", step.mode), stdin="y\n")
    if tool == ROCM_SMI:
        if step.kind == COMPUTE:
            return Command((path, "--setcomputepartition", step.mode))
        return Command((path, "--setmemorypartition", step.mode, "--autorespond", "y"))
    raise ValueError(f"no set command for tool {tool!r}")


def reload_command(path: str) -> Command:
    """``amd-smi reset -r``: reload amdgpu so that a requested NPS mode takes effect (ROCm 7)."""
    return Command((path, "reset", "-r"), stdin="y\n")


def rocm_major(version: str | None) -> int | None:
    """The major number of a ROCm version such as ``7.0.2-56``; None when unknown."""
    found = re.match(r"\s*(\d+)\.", version or "")
    return int(found.group(1)) if found else None


_RELOAD_HINT = re.compile(r"reload (?:the )?(?:amdgpu |gpu )?driver|modprobe -r amdgpu", re.I)


def needs_reload(tool: str, rocm_version: str | None, output: str) -> bool:
    """True when an NPS change made with ``tool`` waits for ``amd-smi reset -r``.

    From ROCm 7 amd-smi no longer reloads the driver after ``set -M`` (FORMATS §3); when
    the version is unknown, amd-smi's own advice to reload decides. rocm-smi (through
    rocm_smi_lib) always reloads the driver itself.
    """
    if tool != AMD_SMI:
        return False
    major = rocm_major(rocm_version)
    if major is not None:
        return major >= 7
    return bool(_RELOAD_HINT.search(output))


# ----------------------------------------------------------------------------- outcomes


class SetOutcome(enum.Enum):
    """What a set (or reload) command did, read from its output."""

    OK = "ok"
    BUSY = "busy"
    NO_PERM = "no_perm"
    UNAVAILABLE = "setting_unavailable"
    #: the tool is missing or rejected its own arguments: another tool may do it
    TOOL_ERROR = "tool_error"
    #: the command says it did part of it (amd-smi's "Too many open files" after GPU 14):
    #: FORMATS §3 says the mode is still applied, so re-verification decides
    UNCERTAIN = "uncertain"
    FAILED = "failed"


@dataclass(frozen=True)
class SetResult:
    """The outcome of one command and the sentence that explains it."""

    outcome: SetOutcome
    message: str
    confirmed_gpus: int = 0

    @property
    def proceed(self) -> bool:
        """True when the next step may run (re-verification still decides in the end)."""
        return self.outcome in (SetOutcome.OK, SetOutcome.UNCERTAIN)


_SUCCESS = re.compile(r"successfully set (?:accelerator|compute|memory) partition to\s+(\w+)", re.I)
_RELOADED = re.compile(r"successfully (?:reloaded|restarted)\b", re.I)
# Driver answers, strongest first: they are the same whichever tool asks.
_DRIVER_ERRORS: tuple[tuple[SetOutcome, re.Pattern[str], str], ...] = (
    (
        SetOutcome.NO_PERM,
        re.compile(r"AMDSMI_STATUS_NO_PERM|Permission denied|requires elevation", re.I),
        "the driver refused the change for lack of privileges (run it as root: set "
        "partition_become / fleetbench_become to true)",
    ),
    (
        SetOutcome.BUSY,
        re.compile(r"AMDSMI_STATUS_BUSY|Device is currently busy|Device busy", re.I),
        "the GPUs are busy: a process still holds them (stop every GPU workload, the metrics "
        "exporter and the device plugin, then re-run)",
    ),
    (
        SetOutcome.UNAVAILABLE,
        re.compile(
            r"AMDSMI_STATUS_SETTING_UNAVAILABLE|is unavailable for current device|"
            r"does not support setting to",
            re.I,
        ),
        "the driver does not offer this mode in the current state (see `amd-smi partition "
        "--memory --accelerator`)",
    ),
)
_RELOAD_ERROR = re.compile(
    r"AMDGPU_RESTART_ERR|Issue reloading driver|could not successfully restart", re.I
)
_TOOL_REJECTED = re.compile(r"invalid choice|unrecognized arguments|^usage:", re.I | re.M)
_PARTIAL = re.compile(r"Too many open files", re.I)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _clean(text: str) -> str:
    # Progress bars redraw with \r: keep what the last redraw left on each line.
    lines = [line.rsplit("\r", 1)[-1] for line in _ANSI.sub("", text).split("\n")]
    return "\n".join(lines)


def _first_line(text: str, pattern: re.Pattern[str]) -> str:
    for line in text.splitlines():
        if pattern.search(line):
            return line.strip()
    return ""


def _last_lines(text: str, count: int = 2) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-count:]) if lines else "no output"


def parse_set_output(
    kind: str,
    mode: str,
    rc: int,
    stdout: str,
    stderr: str,
    *,
    timed_out: bool = False,
) -> SetResult:
    """What one ``kind`` (compute | memory | reload) command did, from everything it printed.

    ``rc`` 127 (not installed) and argument errors are TOOL_ERROR; driver answers (NO_PERM,
    BUSY, SETTING_UNAVAILABLE) win over success lines and over the exit code; success
    needs a ``Successfully set … to MODE`` line for the asked mode (or, for a reload, a
    ``Successfully reloaded`` line) and no error.
    """
    out, err = _clean(stdout), _clean(stderr)
    both = f"{out}\n{err}"
    if timed_out:
        return SetResult(SetOutcome.FAILED, f"did not finish in time ({_last_lines(both)})")
    if rc == 127:
        return SetResult(SetOutcome.TOOL_ERROR, "the tool is not installed")
    for outcome, pattern, why in _DRIVER_ERRORS:
        line = _first_line(both, pattern)
        if line:
            return SetResult(outcome, f"{why}: {line}")
    if kind == RELOAD:
        line = _first_line(both, _RELOAD_ERROR)
        if line:
            return SetResult(SetOutcome.FAILED, f"the driver did not reload: {line}")
        if rc == 0 and _RELOADED.search(both):
            return SetResult(SetOutcome.OK, "the driver reloaded")
        return SetResult(
            SetOutcome.FAILED, f"no confirmation that the driver reloaded (exit {rc}): "
            f"{_last_lines(both)}"
        )
    if rc != 0 and _TOOL_REJECTED.search(err or out):
        return SetResult(
            SetOutcome.TOOL_ERROR,
            f"the tool rejected its arguments: {_first_line(both, _TOOL_REJECTED) or 'usage'} "
            f"{_last_lines(err, 1)}".strip(),
        )
    successes = [m.group(1).upper() for m in _SUCCESS.finditer(both)]
    wrong = sorted({m for m in successes if m != mode})
    if wrong:
        return SetResult(
            SetOutcome.FAILED, f"the tool set {', '.join(wrong)} instead of {mode}"
        )
    if successes and _PARTIAL.search(both):
        return SetResult(
            SetOutcome.UNCERTAIN,
            f"confirmed on {len(successes)} GPU(s), then: {_first_line(both, _PARTIAL)} (a "
            "known amd-smi failure after the mode is applied; re-verification decides)",
            confirmed_gpus=len(successes),
        )
    if successes and rc == 0:
        return SetResult(
            SetOutcome.OK,
            f"{kind} partition set to {mode} on {len(successes)} GPU(s)",
            confirmed_gpus=len(successes),
        )
    return SetResult(
        SetOutcome.FAILED,
        f"no GPU confirmed the {kind} partition {mode} (exit {rc}): {_last_lines(both)}",
        confirmed_gpus=len(successes),
    )


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """What to do on one host: the steps, the tools found there (in preference order)."""

    steps: tuple[Step, ...]
    tools: tuple[tuple[str, str], ...]  # (tool, absolute path)
    rocm_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (it travels through Ansible between the two action plugins)."""
        return {
            "steps": [s.to_dict() for s in self.steps],
            "tools": [{"tool": t, "path": p} for t, p in self.tools],
            "rocm_version": self.rocm_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict`; ValueError when ``data`` is not a plan."""
        try:
            steps = tuple(Step(str(s["kind"]), str(s["mode"])) for s in data["steps"])
            tools = tuple((str(t["tool"]), str(t["path"])) for t in data["tools"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a partition plan: {exc}") from None
        for step in steps:
            if step.kind not in (COMPUTE, MEMORY):
                raise ValueError(f"not a partition step: {step.kind!r}")
        version = data.get("rocm_version")
        return cls(steps, tools, str(version) if version else None)


@dataclass(frozen=True)
class CommandRun:
    """What a command did on the host."""

    rc: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False


#: Runs one command on the host (the action plugin's remote call; the lab in tests).
CommandRunner = Callable[[Command], CommandRun]


@dataclass(frozen=True)
class StepRecord:
    """One command fleetbench ran and what came of it."""

    kind: str
    mode: str | None
    tool: str
    argv: tuple[str, ...]
    outcome: SetOutcome
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "step": self.kind,
            "mode": self.mode,
            "tool": self.tool,
            "command": " ".join(self.argv),
            "outcome": self.outcome.value,
            "message": self.message,
        }


@dataclass(frozen=True)
class ApplyResult:
    """How a plan went: ``failed_step`` is None when every step went through."""

    records: tuple[StepRecord, ...]
    failed_step: str | None = None
    message: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every step went through (re-verification still has the last word)."""
        return self.failed_step is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "ok": self.ok,
            "failed_step": self.failed_step,
            "message": self.message,
            "warnings": list(self.warnings),
            "steps": [r.to_dict() for r in self.records],
        }


def _run(kind: str, mode: str | None, tool: str, command: Command, run: CommandRunner
         ) -> tuple[StepRecord, CommandRun]:
    done = run(command)
    result = parse_set_output(
        kind, mode or "", done.rc, done.stdout, done.stderr, timed_out=done.timed_out
    )
    return StepRecord(kind, mode, tool, command.argv, result.outcome, result.message), done


def execute_plan(plan: Plan, run: CommandRunner) -> ApplyResult:
    """Run ``plan``'s steps in order and stop at the first one that did not go through.

    Each step tries amd-smi, then rocm-smi when amd-smi is missing or rejects its
    arguments (never after a driver answer such as BUSY: the other tool would get the
    same). An NPS change made with amd-smi on ROCm 7 is followed by ``amd-smi reset -r``.
    """
    records: list[StepRecord] = []
    warnings: list[str] = []
    if plan.steps and not plan.tools:
        return ApplyResult((), plan.steps[0].kind, "neither amd-smi nor rocm-smi is installed")
    for step in plan.steps:
        record: StepRecord | None = None
        done = CommandRun(rc=127)
        for tool, path in plan.tools:
            record, done = _run(step.kind, step.mode, tool, set_command(tool, path, step), run)
            records.append(record)
            if record.outcome is not SetOutcome.TOOL_ERROR:
                break
        assert record is not None
        if record.outcome is SetOutcome.UNCERTAIN:
            warnings.append(f"{step.kind} {step.mode}: {record.message}")
        if record.outcome not in (SetOutcome.OK, SetOutcome.UNCERTAIN):
            why = record.message
            if record.outcome is SetOutcome.TOOL_ERROR:
                why = "; ".join(f"{r.tool}: {r.message}" for r in records if r.kind == step.kind)
            return ApplyResult(
                tuple(records), step.kind, f"setting {step.kind} partition {step.mode} "
                f"failed: {why}", tuple(warnings)
            )
        if step.kind == MEMORY and needs_reload(record.tool, plan.rocm_version, done.stdout):
            reload, _ = _run(RELOAD, None, record.tool, reload_command(dict(plan.tools)[
                record.tool]), run)
            records.append(reload)
            if reload.outcome is not SetOutcome.OK:
                return ApplyResult(
                    tuple(records), RELOAD, f"reloading the driver after {step.mode} failed: "
                    f"{reload.message}", tuple(warnings)
                )
    return ApplyResult(tuple(records), None, "", tuple(warnings))


# ----------------------------------------------------------------------------- the host


@dataclass(frozen=True)
class GpuProcess:
    """A process KFD lists under ``proc/<pid>``: it holds the GPUs open."""

    pid: int
    name: str
    command: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"pid": self.pid, "name": self.name, "command": self.command}

    def __str__(self) -> str:
        return f"{self.name or '?'} (pid {self.pid})"


@dataclass(frozen=True)
class Container:
    """A running container ``docker ps`` lists on the host."""

    id: str
    name: str
    image: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"id": self.id, "name": self.name, "image": self.image, "status": self.status}

    def __str__(self) -> str:
        return f"{self.name or self.id} ({self.image})"


def gpu_processes(entries: Sequence[Mapping[str, Any]]) -> tuple[GpuProcess, ...]:
    """The probe's ``kfd_processes`` (pid, comm and cmdline texts) as processes."""
    found: list[GpuProcess] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        try:
            pid = int(entry.get("pid"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        name = str(entry.get("comm") or "").strip()
        command = " ".join(p for p in str(entry.get("cmdline") or "").split("\0") if p)
        found.append(GpuProcess(pid, name, command))
    return tuple(sorted(found, key=lambda p: p.pid))


def containers(docker_ps: Mapping[str, Any]) -> tuple[tuple[Container, ...], str | None, str]:
    """Containers from ``docker ps --format '{{json .}}'``: (containers, problem, note).

    A missing docker (exit 127) means no container can run: a note, not a problem. Any
    other failure is a problem: fleetbench cannot tell that no container uses the GPUs.
    """
    rc = docker_ps.get("rc")
    if rc == 127:
        return (), None, "docker is not installed: no container can hold the GPUs"
    if rc != 0:
        said = str(docker_ps.get("stderr") or docker_ps.get("stdout") or "").strip()
        first = said.splitlines()[0] if said else f"exit {rc}"
        return (), (
            f"cannot list the running containers (`docker ps` failed: {first}); start the "
            "Docker engine or make sure the SSH user may use it"
        ), ""
    found: list[Container] = []
    for line in str(docker_ps.get("stdout") or "").splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, Mapping):
            found.append(
                Container(
                    id=str(data.get("ID", "")),
                    name=str(data.get("Names", "")),
                    image=str(data.get("Image", "")),
                    status=str(data.get("Status", "")),
                )
            )
    return tuple(found), None, ""


def _names(items: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "yes", "on", "1"}


def target_from_args(args: Mapping[str, Any]) -> ExpectedPartition:
    """The target partition from the role's arguments (BadInput on a bad name or pair)."""
    per = int(args.get("logical_per_physical") or 0)
    return ExpectedPartition(
        compute=str(args.get("compute", "CPX")),
        memory=str(args.get("memory", "NPS4")),
        logical_per_physical=per or None,
        missing_partition_is_error=_as_bool(args.get("missing_partition_is_error", False)),
    )


def _current(raw: Mapping[str, Any], verdict_compute: str | None, verdict_memory: str | None
             ) -> tuple[frozenset[str], frozenset[str]]:
    """The current modes: every PCI device's own when sysfs tells, else the verdict's."""
    devices = devices_from_raw([d for d in raw.get("sysfs_devices") or [] if isinstance(d, dict)])
    computes = {d.compute for d in devices}
    memories = {d.memory for d in devices}
    if devices and None not in computes and None not in memories:
        return (frozenset(c for c in computes if c), frozenset(m for m in memories if m))
    compute = frozenset({verdict_compute}) if verdict_compute not in (None, MIXED) else frozenset()
    memory = frozenset({verdict_memory}) if verdict_memory not in (None, MIXED) else frozenset()
    return frozenset(c for c in compute if c), frozenset(m for m in memory if m)


def judge_host(probe: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """Everything ``partition apply`` decides about one host before it touches it.

    ``probe`` is the ``fleetbench_partition_probe`` module's result, ``args`` the target
    (``compute``, ``memory``, ``logical_per_physical``, ``missing_partition_is_error``).
    Returns JSON-able data: ``verdict`` (against the target), ``current``, ``plan``,
    ``processes``, ``containers``, ``refused`` (a change is needed while the GPUs are in
    use), ``problems`` (the host cannot be planned: it must fail) and ``warnings``.
    """
    target = target_from_args(args)
    raw = probe.get("raw") or {}
    verdict = evaluate_host(raw, target)
    problems: list[str] = []
    warnings: list[str] = []
    processes = gpu_processes(probe.get("kfd_processes") or [])
    running, docker_problem, docker_note = containers(probe.get("docker_ps") or {"rc": 127})
    if docker_problem:
        problems.append(docker_problem)
    if docker_note:
        warnings.append(docker_note)

    computes, memories = _current(raw, verdict.compute_partition, verdict.memory_partition)
    steps: tuple[Step, ...] = ()
    if not computes or not memories:
        unknown = " and ".join(
            kind for kind, modes in (("compute", computes), ("memory", memories)) if not modes
        )
        problems.append(
            f"The current {unknown} partition is unknown, so no safe order of changes can be "
            f"planned ({'; '.join(verdict.problems[:2]) or 'no source tells it'})."
        )
    else:
        steps = order_steps(computes, memories, target.compute, target.memory)
    offered = devices_from_raw([d for d in raw.get("sysfs_devices") or [] if isinstance(d, dict)])
    for kind, wanted in ((COMPUTE, target.compute), (MEMORY, target.memory)):
        lacking = [
            d.name for d in offered
            if (d.available_compute if kind == COMPUTE else d.available_memory)
            and wanted not in (d.available_compute if kind == COMPUTE else d.available_memory)
        ]
        if lacking and any(s.kind == kind for s in steps):
            problems.append(
                f"{_names(lacking)} do(es) not offer {kind} partition {wanted} (sysfs "
                f"available_{kind}_partition); this hardware cannot be set to {target.label}."
            )
    tools = tuple(
        (tool, str(path)) for tool in TOOLS
        if isinstance(path := (probe.get("tools") or {}).get(tool), str) and path
    )
    if steps and not tools:
        problems.append(
            "Neither amd-smi nor rocm-smi was found (on PATH or under the ROCm path); install "
            "ROCm's amd-smi or set partition_rocm_path."
        )
    if target.caution:
        warnings.append(target.caution)
    in_use = bool(steps) and bool(processes or running)
    plan = Plan(steps, tools, probe.get("rocm_version"))
    message = ""
    if in_use:
        users = [f"GPU process {p}" for p in processes] + [f"container {c}" for c in running]
        message = (
            f"left untouched: the GPUs are in use by {_names(users)}; stop them (and the "
            f"metrics exporter / device plugin), then re-run to set {target.label}"
        )
    return {
        "target": {"compute": target.compute, "memory": target.memory},
        "verdict": verdict.to_dict(),
        "current": {"compute": sorted(computes), "memory": sorted(memories)},
        "plan": plan.to_dict(),
        "processes": [p.to_dict() for p in processes],
        "containers": [c.to_dict() for c in running],
        "refused": in_use and not problems,
        "refusal": message,
        "problems": problems,
        "warnings": warnings,
        "rocm_version": probe.get("rocm_version"),
        "driver_version": probe.get("driver_version"),
    }
