"""Parsers for rocm-smi output: concise table, ``GPU[n] : ...`` text, ``--json``, ``--csv``.

Real outputs: ``tests/fixtures/smi/``. Every parser takes text that
:func:`fleetbench.partition.parse.clean_text` already cleaned (no ANSI, ``\\n`` line ends).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fleetbench.partition.modes import compute_mode, memory_mode
from fleetbench.partition.reading import DeviceCollector, PartitionReading

_BANNER = re.compile(r"^=+\s*(.*?)\s*=+$")
_GPU_LINE = re.compile(r"^GPU\[(\d+)\]\s*:\s*(.*)$")
_COMPUTE_FIELD = re.compile(r"Compute Partition:\s*(\S+)", re.IGNORECASE)
_MEMORY_FIELD = re.compile(r"Memory Partition:\s*(\S+)", re.IGNORECASE)
_SET_RESULT = re.compile(r"Successfully set (compute|memory) partition to\s+(\S+)", re.IGNORECASE)
_DEVICE_ROW = re.compile(r"^(\d+)\s")
# Fallback for a row whose partition cell is not where the header says: "NPS4, CPX[, 3]".
_PARTITION_CELL = re.compile(
    r"\b(NPS\d+|N/A)\s*,\s*([A-Z]PX|N/A)(?:\s*,\s*(?:\d+|N/A))?(?=\s|$)"
)

_CELL_PART = re.compile(r"NPS\d+|[A-Za-z]PX|N/A|\d+", re.IGNORECASE)

CONCISE = "rocm-smi-concise"
CONCISE_LEGACY = "rocm-smi-concise-legacy"
TEXT = "rocm-smi-text"
JSON = "rocm-smi-json"
CSV = "rocm-smi-csv"
ERROR = "rocm-smi-error"


def is_concise(lines: Sequence[str]) -> bool:
    """True for the default ``rocm-smi`` table (any layout)."""
    banner = any(
        (m := _BANNER.match(line)) is not None and m.group(1) == "Concise Info" for line in lines
    )
    return banner or _partition_header(lines) is not None


def _partition_header(lines: Sequence[str]) -> tuple[int, int] | None:
    """(line index, column) of the ``Device ... Partitions`` header over ``(Mem, ...``."""
    for index, line in enumerate(lines[:-1]):
        column = line.find("Partitions")
        below = lines[index + 1][column:].lstrip()
        if column >= 0 and line.startswith("Device") and below.startswith("(Mem"):
            return index, column
    return None


def parse_concise(lines: Sequence[str]) -> PartitionReading:
    """The default table; the partition column is ``(Mem, Compute, ID)`` or ``(Mem, Compute)``."""
    collector = DeviceCollector()
    header = _partition_header(lines)
    if header is None:
        # A concise table without a partition column (pre-MI300 rocm-smi): devices only.
        for line in _table_rows(lines, 0):
            collector.add(line.split()[0])
        return collector.reading(CONCISE)
    index, column = header
    # The sub-header names the order inside the cell, e.g. "(Mem, Compute, ID)".
    sub = lines[index + 1][column:]
    names = [n.strip().lower() for n in sub[sub.find("(") + 1 : sub.find(")")].split(",")]
    legacy = "id" not in names
    mem_at = names.index("mem") if "mem" in names else 0
    compute_at = names.index("compute") if "compute" in names else 1
    end = _next_column(lines[index], column)
    for line in _table_rows(lines, index + 2):
        device = line.split()[0]
        parts = [p.strip() for p in line[column:end].split(",")]
        if len(parts) < 2 or not all(_CELL_PART.fullmatch(p) for p in parts):
            match = _PARTITION_CELL.search(line)
            parts = [match.group(1), match.group(2)] if match else []
            mem_at, compute_at = 0, 1
        if len(parts) > max(mem_at, compute_at):
            collector.set_memory(device, memory_mode(parts[mem_at]))
            collector.set_compute(device, compute_mode(parts[compute_at]))
        else:
            collector.set_memory(device, None)
            collector.set_compute(device, None)
    return collector.reading(CONCISE_LEGACY if legacy else CONCISE)


def _next_column(header: str, column: int) -> int:
    """Where the header column after ``column`` starts (end of line if none)."""
    for match in re.finditer(r"\S+", header):
        if match.start() > column:
            return match.start()
    return len(header) + 1000


def _table_rows(lines: Sequence[str], start: int) -> list[str]:
    """Device rows (they start with the device index) between the ``====`` rules."""
    rows: list[str] = []
    in_body = False
    for line in lines[start:]:
        if line.startswith("="):
            if in_body:
                break
            continue
        if _DEVICE_ROW.match(line):
            in_body = True
            rows.append(line)
    return rows


def is_text(lines: Sequence[str]) -> bool:
    """True for rocm-smi's ``GPU[n]\\t\\t: ...`` lines (``-i``, ``--show...``, ``--set...``)."""
    return any(_GPU_LINE.match(line) for line in lines)


def parse_text(lines: Sequence[str]) -> PartitionReading:
    """``GPU[n] : Compute Partition: CPX`` and friends, section by section.

    Inside a compute or memory partition section (show or set), a device line without a
    mode (``Not supported on the given system``, busy, unavailable) is N/A for that kind.
    """
    collector = DeviceCollector()
    section = ""
    for line in lines:
        banner = _BANNER.match(line)
        if banner:
            title = banner.group(1).lower()
            section = (
                "compute"
                if "compute partition" in title
                else "memory"
                if "memory partition" in title
                else ""
            )
            continue
        found = _GPU_LINE.match(line)
        if not found:
            continue
        device, content = found.group(1), found.group(2)
        collector.add(device)
        compute = _COMPUTE_FIELD.search(content)
        memory = _MEMORY_FIELD.search(content)
        result = _SET_RESULT.search(content)
        if compute:
            collector.set_compute(device, compute_mode(compute.group(1)))
        if memory:
            collector.set_memory(device, memory_mode(memory.group(1)))
        if result:
            if result.group(1).lower() == "compute":
                collector.set_compute(device, compute_mode(result.group(2)))
            else:
                collector.set_memory(device, memory_mode(result.group(2)))
        if not (compute or memory or result):
            if section == "compute":
                collector.set_compute(device, None)
            elif section == "memory":
                collector.set_memory(device, None)
    return collector.reading(TEXT)


def is_json(data: object) -> bool:
    """True for rocm-smi ``--json``: an object keyed ``card0``, ``card1``, ..."""
    return isinstance(data, Mapping) and any(re.fullmatch(r"card\d+", str(k)) for k in data)


def parse_json(data: Mapping[str, Any]) -> PartitionReading:
    """``{"card0": {"Compute Partition": "CPX", "Memory Partition": "NPS4"}, ...}``."""
    collector = DeviceCollector()
    for key, fields in data.items():
        if not re.fullmatch(r"card\d+", str(key)):
            continue  # e.g. a "system" block
        collector.add(str(key))
        if not isinstance(fields, Mapping):
            continue
        for name, value in fields.items():
            label = str(name).strip().lower()
            if label == "compute partition":
                collector.set_compute(str(key), compute_mode(value))
            elif label == "memory partition":
                collector.set_memory(str(key), memory_mode(value))
    return collector.reading(JSON)
