"""Runs ansible-playbook so that nothing of it outlives fleetbench, or a cancel.

ansible-runner starts ansible-playbook through pexpect, in a session of its own that ignores
SIGHUP, and Ansible's workers each start a session of their own (``WorkerProcess._detach``
calls ``setsid``). Nothing tells them when fleetbench dies without its clean-up
(``kill -9``, the OOM killer): they go on acting on the hosts until their tasks end, hours
for a benchmark wait. A cancel (Ctrl-C, SIGTERM, a timeout) has ansible-runner SIGKILL
ansible-playbook's process group, which holds no worker either: a worker busy with a task
is orphaned, and one that then reports to its dead parent blocks on the full pipe for good.

fleetbench therefore starts ansible-playbook through this program, put in front of
ansible-runner's own command line (:func:`fleetbench.runner.run_playbook`). It is two
processes:

- the *front*, the process ansible-runner starts: it dies with fleetbench
  (``PR_SET_PDEATHSIG``, then a check that fleetbench is still its parent: it may have died
  before the request), and passes the keeper's exit status on;
- the *keeper*, the front's child, in a process group of its own, so that a cancel's
  SIGKILL misses it. It is a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever is
  started below it and orphaned (Ansible's workers, their ssh clients, ssh's ControlPersist
  masters) stays below it, and is reaped as it ends. It starts ansible-playbook in the
  front's process group — the one a cancel kills, exactly as without the guard — and waits
  for it. When the front dies (fleetbench died, or the cancel killed it) or on SIGTERM, it
  sends SIGTERM to every process below it, SIGKILL to what is left after a short grace,
  and exits.

Standard library only, run as a script with ``python -I``: it needs nothing of fleetbench
on the import path.
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
STOPPED = 128 + signal.SIGTERM


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


def bind_to_parent(parent: int, signum: int) -> bool:
    """Ask for ``signum`` when this process's parent dies; False when ``parent`` is no longer
    the parent (it died before the request took effect). Where the kernel has no such
    request, only the check is made."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signum)
    return os.getppid() == parent


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


def _detach_stdio() -> None:
    """Let go of the terminal pexpect gave us: once ansible-playbook is gone, ansible-runner
    waits for the end of its output, which comes when no process holds the terminal."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def keeper(argv: Sequence[str], front: int) -> int:
    """The keeper's life (see the module's docstring); its exit status (minus a signal)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    status = STOPPED
    try:
        group = os.getpgrp()  # the front's: the one a cancel SIGKILLs
        os.setpgid(0, 0)  # out of it
        prctl = _prctl()
        if prctl is not None:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        if not bind_to_parent(front, signal.SIGTERM):
            return STOPPED  # the front is gone already: start nothing

        def into_the_fronts_group() -> None:
            os.setpgid(0, group)
            bind_to_parent(os.getppid(), signal.SIGTERM)  # and die with the keeper

        try:
            child = subprocess.Popen(argv, preexec_fn=into_the_fronts_group)  # noqa: PLW1509 - one thread
        except OSError as exc:
            print(f"playbook_guard: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
            return 127
        except subprocess.SubprocessError:
            return STOPPED  # the front's group is gone: it was killed meanwhile
        _detach_stdio()
        status = _wait_reaping(child.pid)
        # Killed (a cancel SIGKILLs ansible-playbook with the front), or the front is gone:
        # its workers may live on, orphaned (below us). A normal end leaves only ssh's
        # ControlPersist masters, which the next playbook reuses.
        if status < 0 or os.getppid() != front:
            raise _Stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return status
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_everything_below()
        return status


def _exit_like(status: int) -> int:
    """``status`` (an exit code, or minus a signal) as this process's own end."""
    if status < 0:  # pass a death by signal on as one
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command after ``--``; its exit code (or death by signal), or 143 when stopped."""
    parser = argparse.ArgumentParser(prog="playbook_guard", description=__doc__)
    parser.add_argument("--parent", type=int, required=True,
                        help="pid of the fleetbench this command must not outlive")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARG…]")
    args = parser.parse_args(argv)
    child_argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not child_argv:
        parser.error("no command to run after --")

    # The front has nothing to clean up: it just dies with fleetbench; the keeper notices.
    if not bind_to_parent(args.parent, signal.SIGKILL):
        return STOPPED  # fleetbench is gone already: start nothing
    front = os.getpid()
    pid = os.fork()
    if pid == 0:
        os._exit(_exit_like(keeper(child_argv, front)))
    _, status = os.waitpid(pid, 0)
    return _exit_like(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    sys.exit(main())
