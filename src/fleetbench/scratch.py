"""Controller-side scratch folders named after the controller that made them.

kill -9 skips every clean-up: a folder named ``<prefix><pid>-…`` tells a later run whether
the controller that made it is still alive, so the next run (or ``--resume``) can remove
what a dead one left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def make(prefix: str, root: Path | None = None) -> Path:
    """A new private (0700) folder ``<root>/<prefix><pid>-<random>``."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))
    folder.chmod(0o700)
    return folder


@contextlib.contextmanager
def folder(prefix: str, root: Path | None = None) -> Iterator[Path]:
    """A private folder (:func:`make`) for the block's length, after sweeping what dead
    controllers left under ``prefix``; removed at the end."""
    sweep(prefix, root)
    made = make(prefix, root)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def sweep(prefix: str, root: Path | None = None) -> list[Path]:
    """Remove this user's ``<prefix><pid>-…`` folders in ``root`` (default: the temporary
    folder) whose controller is no longer alive; returns what was removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{prefix}*"):
        pid, dash, _ = folder.name[len(prefix):].partition("-")
        try:
            ours = folder.is_dir() and folder.stat().st_uid == os.getuid()
        except OSError:
            continue  # gone meanwhile
        if ours and dash and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def alive(pid: int) -> bool:
    """True while process ``pid`` exists (whoever owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
