"""What one tool output says about partitions: the result type of every parser."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetbench.partition.modes import MIXED


@dataclass(frozen=True)
class DeviceReading:
    """One logical GPU as a file lists it; a mode is None when the file says N/A for it."""

    device: str
    compute: str | None
    memory: str | None


@dataclass(frozen=True)
class PartitionReading:
    """The partition facts of one file, as ``fleetbench partition parse`` prints them.

    ``compute_partition``/``memory_partition``: the mode every listed device agrees on,
    ``"MIXED"`` when they disagree, None when the file does not say or says N/A for all.
    ``devices``: logical GPUs the file lists (None when it lists none); ``unknown_devices``:
    how many of those have N/A for a mode the file reports (None when ``devices`` is None).
    """

    format: str
    compute_partition: str | None = None
    memory_partition: str | None = None
    devices: int | None = None
    unknown_devices: int | None = None
    device_readings: tuple[DeviceReading, ...] = ()
    reports_compute: bool = False
    reports_memory: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able fields of the ``partition parse`` contract (without ``file``)."""
        return {
            "format": self.format,
            "compute_partition": self.compute_partition,
            "memory_partition": self.memory_partition,
            "devices": self.devices,
            "unknown_devices": self.unknown_devices,
        }


def summarise(values: Iterable[str | None]) -> str | None:
    """One mode for many devices: the shared one, ``MIXED``, or None if all are unknown."""
    known = {value for value in values if value is not None}
    if not known:
        return None
    if len(known) > 1:
        return MIXED
    return known.pop()


class DeviceCollector:
    """Collects per-device modes while a parser walks a file, then builds the reading.

    A device may be mentioned several times (sections of one output, repeated blocks):
    the first definite mode for it wins, N/A never overwrites a mode.
    """

    def __init__(self) -> None:
        self._compute: dict[str, str | None] = {}
        self._memory: dict[str, str | None] = {}
        self._order: list[str] = []
        self.reports_compute = False
        self.reports_memory = False

    def add(self, device: str) -> None:
        """Note that the file lists ``device``."""
        if device not in self._compute:
            self._order.append(device)
            self._compute[device] = None
            self._memory[device] = None

    def set_compute(self, device: str, mode: str | None) -> None:
        """The file gives ``device`` a compute mode (None: it says N/A or unsupported)."""
        self.add(device)
        self.reports_compute = True
        if self._compute[device] is None:
            self._compute[device] = mode

    def set_memory(self, device: str, mode: str | None) -> None:
        """The file gives ``device`` a memory mode (None: it says N/A or unsupported)."""
        self.add(device)
        self.reports_memory = True
        if self._memory[device] is None:
            self._memory[device] = mode

    def __len__(self) -> int:
        return len(self._order)

    def reading(self, format_name: str) -> PartitionReading:
        """The summary reading of everything collected."""
        devices = tuple(
            DeviceReading(name, self._compute[name], self._memory[name]) for name in self._order
        )
        if not devices:
            return PartitionReading(format=format_name)
        unknown = sum(
            1
            for device in devices
            if (self.reports_compute and device.compute is None)
            or (self.reports_memory and device.memory is None)
        )
        compute = summarise(d.compute for d in devices) if self.reports_compute else None
        memory = summarise(d.memory for d in devices) if self.reports_memory else None
        return PartitionReading(
            format=format_name,
            compute_partition=compute,
            memory_partition=memory,
            devices=len(devices),
            unknown_devices=unknown,
            device_readings=devices,
            reports_compute=self.reports_compute,
            reports_memory=self.reports_memory,
        )
