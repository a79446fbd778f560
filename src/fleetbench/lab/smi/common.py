"""What the simulated ``rocm-smi`` and ``amd-smi`` share: streams, argument parsing, the
driver's answers to a partition change, state changes under the host's lock, and running
a tool by name (:func:`main`, :func:`run`).

A state change re-renders the host's sysfs/KFD tree and the answers the bin/ wrappers
print for both tools (:func:`render_host`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from fleetbench.errors import LabError
from fleetbench.lab import gpu
from fleetbench.lab.gpu import GpuState

TOOLS = ("rocm-smi", "amd-smi")
#: Each tool's simulator by name: ``fleetbench.lab.smi`` fills it with
#: :func:`fleetbench.lab.smi.rocm.rocm_smi` and :func:`fleetbench.lab.smi.amd.amd_smi`
#: (they re-render the answers of both tools after a change, so they run through here).
SIMULATORS: dict[str, Callable[[list[str], Path, Console], int]] = {}


# --- plumbing shared by both tools -----------------------------------------------------


@dataclass(frozen=True)
class Console:
    """Where a simulated tool reads and writes (sys.* for the wrappers, buffers in tests)."""

    out: TextIO
    err: TextIO
    inp: TextIO

    def print(self, text: str = "", end: str = "\n") -> None:
        """Write to stdout and flush (progress bars must show while a set waits)."""
        self.out.write(text + end)
        self.out.flush()

    def error(self, text: str, end: str = "\n") -> None:
        """Write to stderr."""
        self.err.write(text + end)
        self.err.flush()


class CliExitError(Exception):
    """argparse wanted to exit (usage error, --help): the tool returns ``status``."""

    def __init__(self, status: int, stdout: str = "", stderr: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.stdout = stdout
        self.stderr = stderr


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of calling sys.exit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._help_text = ""

    def _print_message(self, message: str, file: object = None) -> None:
        self._help_text += message  # --help and --version: handed back through CliExitError

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Raise CliExitError carrying what argparse would have printed."""
        raise CliExitError(status, stdout=self._help_text, stderr=message or "")

    def error(self, message: str) -> NoReturn:
        """Raise CliExitError(2) with argparse's usage + error text."""
        raise CliExitError(2, stderr=f"{self.format_usage()}{self.prog}: error: {message}\n")


class SetStatus(enum.Enum):
    """What the driver answers to a partition change."""

    OK = "ok"
    NO_PERM = "no_perm"
    BUSY = "busy"
    UNAVAILABLE = "setting_unavailable"
    INVALID = "invalid"


def compute_status(state: GpuState, mode: str) -> SetStatus:
    """The driver's answer to ``current_compute_partition <- mode``."""
    if state.noperm:
        return SetStatus.NO_PERM
    if state.busy:
        return SetStatus.BUSY
    if mode not in gpu.COMPUTE_MODES or state.memory not in gpu.MEMORY_CAPS[mode]:
        return SetStatus.UNAVAILABLE
    return SetStatus.OK


def memory_status(state: GpuState, mode: str) -> SetStatus:
    """The driver's answer to an NPS change request."""
    if state.noperm:
        return SetStatus.NO_PERM
    if state.busy:
        return SetStatus.BUSY
    if mode not in gpu.MEMORY_MODES:
        return SetStatus.INVALID
    # SPX is switched to CPX by the driver (AMD docs); DPX cannot hold NPS4 at all.
    if mode not in gpu.MEMORY_CAPS[state.compute] and state.compute != "SPX":
        return SetStatus.UNAVAILABLE
    return SetStatus.OK


def with_memory(state: GpuState, mode: str) -> GpuState:
    """The state after the driver reloads in NPS ``mode`` (SPX becomes CPX under NPS4)."""
    compute = state.compute if mode in gpu.MEMORY_CAPS[state.compute] else "CPX"
    return dataclasses.replace(state, compute=compute, memory=mode, pending_memory=None)


def change_state(
    host_dir: Path,
    check: Callable[[GpuState], SetStatus],
    change: Callable[[GpuState], GpuState],
    wait: Callable[[GpuState], None],
) -> tuple[SetStatus, GpuState]:
    """Check, wait and apply one state change under the host's lock; re-render on success."""
    path = host_dir / gpu.STATE_FILE
    with gpu.state_lock(host_dir):
        state = GpuState.load(path)
        status = check(state)
        if status is SetStatus.OK:
            wait(state)
            state = change(state)
            state.save(path)
            render_host(host_dir, state)
        return status, state


def sleep(seconds: float) -> None:
    """Wait ``seconds`` (none when not positive), as a set operation's delay."""
    if seconds > 0:
        time.sleep(seconds)


def progress(
    console: Console, prefix: str, total: int, seconds: float, *, filled: str = "█"
) -> None:
    """Show the tools' 40-wide ``[███....] j/total secs remain`` bar while ``seconds`` pass."""

    def show(j: int) -> None:
        x = int(40 * min(j, total) / total)
        console.print(f"{prefix}[{filled * x}{'.' * (40 - x)}] {j}/{total} secs remain", end="\r")

    show(0)
    whole = int(seconds)
    for j in range(whole):
        sleep(1.0)
        show(j + 1)
    sleep(seconds - whole)


def main(tool: str, argv: Sequence[str], host_dir: Path) -> int:
    """Run simulated ``tool`` (rocm-smi | amd-smi) with ``argv`` on the lab host in ``host_dir``.

    Prints to sys.stdout/sys.stderr like the real tool for the host's ROCm version and
    returns its exit code.
    """
    console = Console(out=sys.stdout, err=sys.stderr, inp=sys.stdin)
    try:
        return run(tool, argv, host_dir, console)
    except BrokenPipeError:
        # Like the real tools piped into `head`: stop quietly with 1, no traceback at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def run(tool: str, argv: Sequence[str], host_dir: Path, console: Console) -> int:
    """:func:`main` with explicit streams."""
    try:
        simulator = SIMULATORS.get(tool)
        if simulator is not None:
            return simulator(list(argv), host_dir, console)
        console.error(f"fleetbench lab: no simulated tool {tool!r} — use one of {TOOLS}")
        return 2
    except CliExitError as exc:
        console.out.write(exc.stdout)
        console.err.write(exc.stderr)
        return exc.status
    except LabError as exc:
        console.error(f"fleetbench lab ({tool}): {exc}")
        return 1


def answer_queries(host_dir: Path, state: GpuState) -> dict[str, gpu.SmiAnswer] | None:
    """What the tools print for each of ``gpu.ANSWERED_QUERIES``, by ``gpu.answer_name``.

    The simulator runs in-process on the saved state; None when ``state`` is not the saved
    one (or none is saved): the wrappers then run the simulator rather than print answers
    that differ from it.
    """
    try:
        saved = GpuState.load(host_dir / gpu.STATE_FILE)
    except LabError:
        return None
    if saved != state:
        return None
    answers = {}
    for tool, argv in gpu.ANSWERED_QUERIES:
        out, err = io.StringIO(), io.StringIO()
        code = run(tool, argv, host_dir, Console(out=out, err=err, inp=io.StringIO()))
        answers[gpu.answer_name(tool, argv)] = gpu.SmiAnswer(out.getvalue(), err.getvalue(), code)
    return answers


def render_host(host_dir: Path, state: GpuState) -> None:
    """(Re)write ``host_dir/root`` and the answers of ANSWERED_QUERIES for ``state``.

    ``root`` holds the sysfs partition files, DRM nodes, KFD topology and ROCm version
    (:func:`fleetbench.lab.gpu.render_tree`). Call it after saving ``state``, under
    :func:`~fleetbench.lab.gpu.state_lock`: the answers are only kept when ``state`` is the
    saved one.
    """
    gpu.write_answers(host_dir, answer_queries(host_dir, state))
    gpu.render_tree(host_dir, state)


def not_simulated(console: Console, what: str, supported: str) -> int:
    """Say ``what`` is not simulated and what is; the exit code of a usage error."""
    console.error(f"fleetbench lab: {what} is not simulated — supported: {supported}")
    return 2
