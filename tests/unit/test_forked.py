"""fleetbench.forked: a step in a child process, its outcome back in the parent."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from fleetbench.errors import BadInput
from fleetbench.forked import ChildFailed, Forked


def test_the_step_runs_in_another_process(tmp_path: Path) -> None:
    out = tmp_path / "pid"
    with Forked(lambda: out.write_text(str(os.getpid())), "writing") as child:
        pass
    assert int(out.read_text()) != os.getpid()
    child.wait()  # a second wait is a no-op


def test_parent_and_child_overlap(tmp_path: Path) -> None:
    """The child runs while the parent works: it sees a file the parent writes later."""
    flag = tmp_path / "parent-was-here"
    seen = tmp_path / "seen"

    def step() -> None:
        for _ in range(500):
            if flag.exists():
                seen.write_text("yes")
                return
            threading.Event().wait(0.01)

    with Forked(step, "waiting"):
        flag.write_text("1")
    assert seen.read_text() == "yes"


def test_the_childs_exception_is_raised_in_the_parent_with_its_type() -> None:
    def step() -> None:
        raise BadInput("cannot open the history database — pass --db")

    with pytest.raises(BadInput, match="pass --db"), Forked(step, "storing"):
        pass


def test_an_exception_that_cannot_travel_keeps_its_type_and_text() -> None:
    class Local(Exception):  # a local class cannot be pickled
        pass

    def step() -> None:
        raise Local("disk full")

    with pytest.raises(ChildFailed, match="Local: disk full"), Forked(step, "storing"):
        pass


def test_a_killed_child_is_named() -> None:
    with pytest.raises(ChildFailed, match=r"storing ended without a result \(signal SIGKILL\)"):
        Forked(lambda: os.kill(os.getpid(), signal.SIGKILL), "storing").wait()


def test_the_blocks_exception_wins_and_the_child_is_reaped() -> None:
    def step() -> None:
        raise BadInput("child")

    child = Forked(step, "storing")
    pid = child._pid
    with pytest.raises(RuntimeError, match="parent"), child:
        raise RuntimeError("parent")
    assert pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left


def test_without_fork_the_step_runs_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "fork")
    ran: list[int] = []

    def step() -> None:
        ran.append(os.getpid())
        raise BadInput("inline")

    child = Forked(step, "storing")
    assert ran == [os.getpid()]
    with pytest.raises(BadInput, match="inline"):
        child.wait()
