"""A lab host's disk: where its Docker data root stands in, and how much of it is free.

Lab hosts share this machine's disk and Docker engine. Each host's inventory points
``fleetbench_disk_path`` (Docker's data root, for preflight's disk planning) at
``DIR/hosts/<name>/disk``: a plain folder on this machine's disk, until ``lab set HOST
disk_free_gb=N`` mounts a tmpfs of N GB there. The host's probe then really measures N GB
free with ``statvfs`` (a tmpfs takes memory only for what is written into it, and nothing
is), so a host short of disk is as real as the probe can see. ``disk_free_gb=machine``
unmounts it. Mounting needs root (or CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fleetbench.errors import LabError

DISK_KEY = "disk_free_gb"
#: The value that gives the host this machine's disk back.
MACHINE = "machine"
FOLDER = "disk"
GB = 10**9


def disk_dir(host_dir: Path) -> Path:
    """The host's stand-in for Docker's data root."""
    return host_dir / FOLDER


def _run(argv: list[str]) -> None:
    binary = shutil.which(argv[0])
    if binary is None:
        raise LabError(f"{DISK_KEY} needs {argv[0]} (util-linux) on this machine")
    done = subprocess.run([binary, *argv[1:]], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(
            f"{' '.join(argv[:3])} failed ({detail[-1] if detail else done.returncode}) — "
            f"{DISK_KEY}=N mounts a tmpfs of N GB and needs root (or CAP_SYS_ADMIN)")


def unmount(host_dir: Path) -> None:
    """Give the host this machine's disk back (no-op when nothing is mounted)."""
    folder = disk_dir(host_dir)
    if os.path.ismount(folder):
        _run(["umount", str(folder)])


def set_free(host_dir: Path, value: str) -> None:
    """``disk_free_gb=N``: N GB free (a tmpfs of that size); ``machine``: this machine's disk."""
    folder = disk_dir(host_dir)
    if value == MACHINE:
        unmount(host_dir)
        return
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:  # a tmpfs of size 0 has no limit at all
        raise LabError(f"{DISK_KEY}={value} — use a size in GB above 0 (e.g. {DISK_KEY}=2.5) "
                       f"or {DISK_KEY}={MACHINE}")
    folder.mkdir(parents=True, exist_ok=True)
    unmount(host_dir)
    stat = folder.stat()
    _run(["mount", "-t", "tmpfs", "-o",
          f"size={int(number * GB)},mode=0755,uid={stat.st_uid},gid={stat.st_gid}",
          "fleetbench-lab-disk", str(folder)])


def status(host_dir: Path) -> dict[str, Any]:
    """What the host's probe sees there: free GB, and whether it is simulated."""
    folder = disk_dir(host_dir)
    probe = folder if folder.exists() else host_dir
    stat = os.statvfs(probe)
    return {"path": str(folder), "simulated": os.path.ismount(folder),
            "free_gb": round(stat.f_bavail * stat.f_frsize / GB, 2)}
