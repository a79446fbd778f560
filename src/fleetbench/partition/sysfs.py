"""The amdgpu sysfs partition files (examples: ``tests/fixtures/smi/``).

They live on the PCI device only: ``current_compute_partition`` (``CPX\\n`` or
``UNKNOWN``), ``available_compute_partition`` (``SPX, DPX, QPX, CPX\\n`` or
``Not supported\\n``), ``current_memory_partition``, ``available_memory_partition``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.partition.modes import compute_mode, memory_mode
from fleetbench.partition.reading import PartitionReading

CURRENT_COMPUTE = "current_compute_partition"
CURRENT_MEMORY = "current_memory_partition"
AVAILABLE_COMPUTE = "available_compute_partition"
AVAILABLE_MEMORY = "available_memory_partition"


@dataclass(frozen=True)
class SysfsDevice:
    """One PCI amdgpu device (one physical GPU) and its partition files.

    ``compute``/``memory`` are None when the file is absent or says ``UNKNOWN``;
    ``has_*_file`` tells the two apart.
    """

    path: str
    compute: str | None
    memory: str | None
    has_compute_file: bool
    has_memory_file: bool
    available_compute: tuple[str, ...] = ()
    available_memory: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The PCI address (last path component), e.g. ``0000:05:00.0``."""
        return self.path.rstrip("/").rsplit("/", 1)[-1] or self.path


def parse_available(text: str) -> tuple[str, ...]:
    """``"SPX, DPX, QPX, CPX\\n"`` -> ``("SPX", "DPX", "QPX", "CPX")``; ``Not supported`` -> ()."""
    names = [part.strip().upper() for part in re.split(r"[,\s]+", text) if part.strip()]
    return tuple(n for n in names if re.fullmatch(r"[A-Z]PX|NPS\d+", n))


def devices_from_raw(entries: Sequence[Mapping[str, Any]]) -> tuple[SysfsDevice, ...]:
    """The probe's ``sysfs_devices`` list as typed devices (malformed entries skipped)."""
    devices: list[SysfsDevice] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        files = entry.get("files") or {}
        if not isinstance(files, Mapping):
            files = {}
        compute_text = files.get(CURRENT_COMPUTE)
        memory_text = files.get(CURRENT_MEMORY)
        devices.append(
            SysfsDevice(
                path=str(entry.get("path", "?")),
                compute=compute_mode(compute_text),
                memory=memory_mode(memory_text),
                has_compute_file=isinstance(compute_text, str),
                has_memory_file=isinstance(memory_text, str),
                available_compute=parse_available(str(files.get(AVAILABLE_COMPUTE) or "")),
                available_memory=parse_available(str(files.get(AVAILABLE_MEMORY) or "")),
            )
        )
    return tuple(devices)


def parse_single_file(text: str) -> PartitionReading | None:
    """A whole file that is one sysfs value, or None when ``text`` is something else.

    These files describe one physical GPU, not logical ones: ``devices`` stays None.
    """
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) != 1:
        return None
    value = lines[0].strip()
    upper = value.upper()
    if re.fullmatch(r"[A-Z]PX", upper):
        return PartitionReading("sysfs-current-compute-partition", compute_partition=upper)
    if re.fullmatch(r"NPS\d+", upper):
        return PartitionReading("sysfs-current-memory-partition", memory_partition=upper)
    if upper == "UNKNOWN":
        return PartitionReading("sysfs-current-partition")
    if upper == "NOT SUPPORTED":
        return PartitionReading("sysfs-available-compute-partition")
    if re.fullmatch(r"[A-Z]PX(\s*,\s*[A-Z]PX)+", upper):
        return PartitionReading("sysfs-available-compute-partition")
    if re.fullmatch(r"NPS\d+(\s*,\s*NPS\d+)+", upper):
        return PartitionReading("sysfs-available-memory-partition")
    return None
