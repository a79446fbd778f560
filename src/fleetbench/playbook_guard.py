"""Runs ansible-playbook so that nothing of it outlives fleetbench.

ansible-runner starts ansible-playbook through pexpect, in a session of its own that ignores
SIGHUP, and Ansible's workers each start a session of their own (``WorkerProcess._detach``
calls ``setsid``). When fleetbench dies without running its clean-up (``kill -9``, the
OOM killer), nothing tells them: ansible-playbook and its workers go on acting on the hosts
until their tasks end, hours for a benchmark wait. fleetbench therefore starts
ansible-playbook through this small program, put in front of ansible-runner's own command
line (:func:`fleetbench.runner.run_playbook`). It

- asks the kernel for SIGTERM when its parent, fleetbench, dies (``PR_SET_PDEATHSIG``), then
  checks that fleetbench is still its parent (it may have died before the request);
- becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever is started below it and
  orphaned (Ansible's workers, their ssh clients, ssh's ControlPersist masters) stays below
  it, so it can find all of it;
- keeps ansible-playbook in its own process group, the one pexpect made: ansible-runner
  kills that group with SIGKILL on a cancel (Ctrl-C, SIGTERM, a timeout), so those work
  exactly as without the guard (a group of its own would escape that SIGKILL);
- on SIGTERM (fleetbench died, or anyone asked) sends SIGTERM to every process below it
  (ansible-playbook passes it on to its workers, a worker to its ssh clients), SIGKILL to
  whatever is left after a short grace, and exits.

Otherwise it passes ansible-playbook's exit status through. Standard library only, run as a
script with ``python -I``: it needs nothing of fleetbench on the import path.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: How long the processes below get to end on SIGTERM before SIGKILL.
GRACE_S = 3.0
_POLL_S = 0.05


def command(argv: Sequence[str], parent: int) -> list[str]:
    """``argv`` (ansible-playbook's command line) run under this guard, bound to ``parent``."""
    return [sys.executable, "-I", str(Path(__file__).resolve()), "--parent", str(parent),
            "--", *argv]


def _prctl() -> Callable[[int, int], int] | None:
    """libc's prctl (Linux), or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int, int], int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return function


def die_with_parent(prctl: Callable[[int, int], int] | None = None) -> bool:
    """Ask for SIGTERM when this process's parent dies; False where the kernel cannot."""
    prctl = prctl or _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGTERM) == 0


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every living (not zombie) process below ``pid``, parents before children."""
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in sorted(children.get(stack.pop(), [])):
            found.append(child)
            stack.append(child)
    return found


def _reap() -> None:
    """Collect the exit status of every ended child (orphans become ours as subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _wait_reaping(pid: int) -> int:
    """Wait for ``pid``'s end (its exit code, minus the signal that killed it), reaping
    the orphans that end meanwhile: as subreaper they are ours, and would stay zombies."""
    while True:
        ended, status = os.waitpid(-1, 0)
        if ended == pid:
            return os.waitstatus_to_exitcode(status)


def _signal_all(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def stop_everything_below(grace_s: float = GRACE_S) -> None:
    """SIGTERM every process below this one, SIGKILL what is left after ``grace_s``."""
    me = os.getpid()
    deadline = time.monotonic() + grace_s
    terminated: set[int] = set()
    while True:
        _reap()
        below = descendants(me)
        if not below:
            return
        if time.monotonic() >= deadline:
            _signal_all(below, signal.SIGKILL)
        else:
            # New ones too (a worker may fork an ssh client just now).
            _signal_all([pid for pid in below if pid not in terminated], signal.SIGTERM)
            terminated.update(below)
        time.sleep(_POLL_S)


class _Stop(Exception):
    """SIGTERM arrived: stop everything below and exit."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stop


def _bind_to_guard() -> None:
    """In ansible-playbook before exec: SIGTERM when the guard dies (any way it dies)."""
    die_with_parent()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command after ``--``; its exit code, or 143 when stopped by SIGTERM."""
    parser = argparse.ArgumentParser(prog="playbook_guard", description=__doc__)
    parser.add_argument("--parent", type=int, required=True,
                        help="pid of the fleetbench this command must not outlive")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARG…]")
    args = parser.parse_args(argv)
    child_argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not child_argv:
        parser.error("no command to run after --")

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        prctl = _prctl()
        if die_with_parent(prctl) and prctl is not None:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        if os.getppid() != args.parent:
            return 128 + signal.SIGTERM  # fleetbench is gone already: start nothing
        child = subprocess.Popen(child_argv, preexec_fn=_bind_to_guard)  # noqa: PLW1509 - one thread
        returncode = _wait_reaping(child.pid)
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_everything_below()
        return 128 + signal.SIGTERM
    if returncode < 0:  # pass a death by signal on as one
        signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
        return 128 - returncode
    return returncode


if __name__ == "__main__":
    sys.exit(main())
