"""Run one CPU-bound step in a forked child while the parent goes on with another.

The report build is pure Python: threads would share one interpreter lock (and SQLite's
``executemany`` gives it up and takes it back once per row, so a busy second thread
starves it). A forked child shares the parsed run copy-on-write, needs nothing pickled
but its outcome, and runs on the other core. Without ``os.fork`` the step runs inline.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
from collections.abc import Callable
from types import TracebackType

from fleetbench.errors import FleetbenchError


class ChildFailed(FleetbenchError):
    """The child ended without saying how (killed, or its error could not be sent)."""


class Forked:
    """``step()`` in a child process from construction on; :meth:`wait` for its end.

    As a context manager the child is always waited for, so it never outlives the block;
    an exception of the block wins over the child's.
    """

    def __init__(self, step: Callable[[], None], what: str) -> None:
        self.what = what
        self._pid: int | None = None
        self._read: int | None = None
        self._inline_error: BaseException | None = None
        if not hasattr(os, "fork"):
            try:
                step()
            except Exception as exc:  # raised by wait(), like the child's
                self._inline_error = exc
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child's exit would print the parent's buffers again
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, report, leave without running the parent's atexit
            os.close(read)
            code = 0
            try:
                step()
                outcome = pickle.dumps(None)
            except BaseException as exc:
                code = 1
                outcome = _pickled(exc)
            try:
                with os.fdopen(write, "wb") as out:
                    out.write(outcome)
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._read = pid, read

    def wait(self) -> None:
        """Block until the child ends; raise its exception if it failed."""
        if self._pid is None:
            error, self._inline_error = self._inline_error, None
            if error is not None:
                raise error
            return
        assert self._read is not None
        with os.fdopen(self._read, "rb") as stream:
            data = stream.read()
        _, status = os.waitpid(self._pid, 0)
        self._pid = self._read = None
        if data:
            error = pickle.loads(data)  # noqa: S301 - written by our own child
            if error is not None:
                raise error
            return
        how = (f"signal {signal.Signals(-os.waitstatus_to_exitcode(status)).name}"
               if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}")
        raise ChildFailed(f"{self.what} ended without a result ({how})")

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None:
            self.wait()
            return
        with contextlib.suppress(Exception):  # the block's own exception is the one to raise
            self.wait()


def _pickled(exc: BaseException) -> bytes:
    """``exc`` for the parent; its type and text when it cannot be pickled."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)  # noqa: S301 - our own bytes; some exceptions pickle but not load
    except Exception:
        return pickle.dumps(ChildFailed(f"{type(exc).__name__}: {exc}"))
    return data
