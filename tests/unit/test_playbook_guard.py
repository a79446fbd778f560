"""The guard that keeps ansible-playbook and its workers from outliving fleetbench.

Real processes: a stand-in controller starts the guard the way ansible-runner does, the
guarded command starts what Ansible starts (workers in sessions of their own, one that
ignores SIGTERM, a daemon like ssh's ControlPersist master), and the controller is killed
with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbench import playbook_guard

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the guard relies on Linux's prctl")

# What ansible-playbook starts: a worker in a session of its own (Ansible's workers call
# setsid), one that ignores SIGTERM, and a double-forked daemon (ssh's ControlPersist
# master), each writing its pid; then it waits like a playbook waiting for a benchmark.
PLAYBOOK = textwrap.dedent("""
    import os, signal, sys, time
    out = sys.argv[1]

    def record(name):
        with open(os.path.join(out, name), "w") as handle:
            handle.write(str(os.getpid()))

    def detach():  # as Ansible's workers and ssh's daemon do: no terminal, no stdio
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)

    if os.fork() == 0:
        detach()
        record("worker")
        time.sleep(600)
        os._exit(0)
    if os.fork() == 0:
        detach()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record("stubborn")
        time.sleep(600)
        os._exit(0)
    if os.fork() == 0:
        detach()
        if os.fork() == 0:
            record("daemon")
            time.sleep(600)
        os._exit(0)
    if os.fork() == 0:
        detach()
        if os.fork() == 0:
            time.sleep(0.3)  # an orphan that ends while the playbook runs
            record("brief")
            os._exit(0)
        os._exit(0)
    # Slow to end on SIGTERM (ansible-playbook first passes it on to its workers).
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(2.5), os._exit(143)))
    record("playbook")
    print("playbook running", flush=True)
    time.sleep(600)
""")

# fleetbench's part: start the guard (bound to itself) and wait for it.
CONTROLLER = textwrap.dedent("""
    import json, os, subprocess, sys
    argv = [a.replace("PARENT", str(os.getpid())) for a in json.loads(sys.argv[1])]
    child = subprocess.Popen(argv)
    with open(sys.argv[2], "w") as handle:
        handle.write(str(child.pid))
    child.wait()
""")

NAMES = ("playbook", "worker", "stubborn", "daemon")


def zombie_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], object], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def pids(folder: Path) -> dict[str, int]:
    return {name: int((folder / name).read_text()) for name in NAMES
            if (folder / name).is_file() and (folder / name).read_text()}


def kill_all(found: dict[str, int]) -> None:
    for pid in found.values():
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def guarded(tmp_path: Path, parent: int) -> list[str]:
    script = tmp_path / "playbook.py"
    script.write_text(PLAYBOOK)
    return playbook_guard.command([sys.executable, str(script), str(tmp_path)], parent)


def test_a_controller_killed_with_sigkill_takes_everything_below_it(tmp_path: Path) -> None:
    guard_pid_file = tmp_path / "guard.pid"
    argv = guarded(tmp_path, 0)
    argv[argv.index("--parent") + 1] = "PARENT"  # the stand-in controller puts its pid there
    controller = subprocess.Popen([sys.executable, "-c", CONTROLLER, json.dumps(argv),
                                   str(guard_pid_file)])
    found: dict[str, int] = {}
    try:
        assert wait_for(lambda: len(pids(tmp_path)) == len(NAMES)), pids(tmp_path)
        found = pids(tmp_path)
        guard = int(guard_pid_file.read_text())
        assert set(found.values()) <= set(playbook_guard.descendants(guard))
        controller.kill()
        controller.wait()
        # The stubborn one needs the SIGKILL after the grace.
        assert wait_for(lambda: not any(alive(p) for p in found.values()),
                        timeout=playbook_guard.GRACE_S + 5), {
            n: p for n, p in found.items() if alive(p)}
        assert wait_for(lambda: not alive(guard))
    finally:
        controller.kill()
        kill_all(found)


def test_exit_code_passes_through(tmp_path: Path) -> None:
    argv = playbook_guard.command([sys.executable, "-c", "import sys; sys.exit(4)"],
                                  os.getpid())
    assert subprocess.run(argv, check=False).returncode == 4
    argv = playbook_guard.command([sys.executable, "-c", "print('through the guard')"],
                                  os.getpid())
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "through the guard\n"


def test_a_death_by_signal_passes_through(tmp_path: Path) -> None:
    argv = playbook_guard.command(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGUSR1)"],
        os.getpid())
    assert subprocess.run(argv, check=False).returncode == -signal.SIGUSR1


def test_nothing_starts_when_the_parent_is_already_gone(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    # Not our pid: as if fleetbench had died before the guard asked to die with it.
    argv = playbook_guard.command(
        [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"], os.getpid() + 10**6)
    done = subprocess.run(argv, check=False)
    assert done.returncode == 128 + signal.SIGTERM
    assert not marker.exists()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


def test_sigterm_to_the_guard_stops_everything_below(tmp_path: Path) -> None:
    guard = subprocess.Popen(guarded(tmp_path, os.getpid()), stdout=subprocess.DEVNULL)
    found: dict[str, int] = {}
    try:
        assert wait_for(lambda: len(pids(tmp_path)) == len(NAMES))
        found = pids(tmp_path)
        (keeper,) = children(guard.pid)
        assert wait_for((tmp_path / "brief").is_file)
        time.sleep(0.5)
        # The orphan that ended was reaped: no zombies pile up over a long run.
        assert zombie_children(keeper) == []
        guard.send_signal(signal.SIGTERM)
        assert guard.wait(timeout=5) == -signal.SIGTERM
        assert wait_for(lambda: not any(alive(p) for p in [*found.values(), keeper]),
                        timeout=playbook_guard.GRACE_S + 5)
    finally:
        guard.kill()
        kill_all(found)


def test_a_cancel_kills_the_playbook_at_once_and_its_orphans_soon(tmp_path: Path) -> None:
    """What ansible-runner does on Ctrl-C, SIGTERM or a timeout: SIGKILL to the process group
    of the process it started through pexpect, then wait for the end of the output."""
    import pexpect

    argv = guarded(tmp_path, os.getpid())
    child = pexpect.spawn(argv[0], argv[1:], ignore_sighup=True, encoding="utf-8")
    found: dict[str, int] = {}
    try:
        child.expect("playbook running", timeout=20)
        assert wait_for(lambda: len(pids(tmp_path)) == len(NAMES))
        found = pids(tmp_path)
        (keeper,) = children(child.pid)
        os.killpg(os.getpgid(child.pid), signal.SIGKILL)
        started = time.monotonic()
        child.expect(pexpect.EOF, timeout=5)  # nothing else holds the terminal
        # The playbook was killed with the group at once, as without the guard (SIGTERM
        # would take it 2.5 s).
        assert wait_for(lambda: not alive(found["playbook"]), timeout=1)
        assert time.monotonic() - started < 2
        assert wait_for(lambda: not any(alive(p) for p in [*found.values(), keeper]),
                        timeout=playbook_guard.GRACE_S + 5), {
            n: p for n, p in found.items() if alive(p)}
    finally:
        child.close(force=True)
        kill_all(found)


def test_descendants_reads_the_process_tree(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, ppid, state in ((10, 1, "S"), (11, 10, "S"), (12, 11, "R"), (13, 10, "Z"),
                             (14, 1, "S")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(f"{pid} (a) b)) {state} {ppid} 0 0\n")
    assert playbook_guard.descendants(10, proc) == [11, 12]
    assert playbook_guard.descendants(14, proc) == []


def test_a_missing_command_is_named() -> None:
    argv = playbook_guard.command(["/nonexistent/ansible-playbook", "x.yml"], os.getpid())
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert done.returncode == 127
    assert "cannot run /nonexistent/ansible-playbook: No such file" in done.stderr
