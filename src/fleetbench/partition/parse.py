"""Recognise a partition-related tool output from its content and parse it.

:func:`parse_text` is what ``fleetbench partition parse`` prints per file. The format is
decided by the text alone (never the file name), after cleaning what terminals and
captures add: ANSI escapes, CR/CRLF line ends, a UTF-8 BOM, the ``$ amd-smi ...`` command
line and ``...`` excerpt marks. Text that carries no partition information still gets a
format name (e.g. ``amd-smi-error``) with null modes; text that matches no known format
is ``unknown``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

from fleetbench.errors import BadInput
from fleetbench.partition import amd_smi, kfd, rocm_smi, sysfs
from fleetbench.partition.modes import compute_mode, memory_mode
from fleetbench.partition.reading import DeviceCollector, PartitionReading

UNKNOWN = "unknown"
EMPTY = "empty"
ROCMINFO = "rocminfo"
KFD_NODE = "kfd-node-properties"
KFD_MEM_BANK = "kfd-mem-bank-properties"
KFD_PROPERTIES = "kfd-properties"
SYSFS_LISTING = "sysfs-listing"

#: What ``partition parse`` understands, for the message on a file it does not.
UNDERSTOOD = (
    "amd-smi (partition, static, list, monitor and the default view, as text, table, JSON "
    "or CSV), rocm-smi (--showcomputepartition/--showmemorypartition, concise, JSON or "
    "CSV), rocminfo, sysfs partition files and listings, KFD node and memory-bank "
    "properties"
)

# CSI (colours, italics), OSC (titles, links) and two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# A captured command line: "$ amd-smi list -e", "sudo /opt/rocm/bin/amd-smi partition".
_COMMAND = re.compile(
    r"^\s*(?:\$\s.*|#\s.*|(?:sudo\s+)?(?:\S*/)?(?:amd-smi|rocm-smi|rocminfo)(?:\s+[-\w./=&|]+)*)\s*$"
)


def clean_text(text: str) -> list[str]:
    """Lines of ``text`` without ANSI escapes, CR, trailing blanks, commands and ``...``."""
    text = _ANSI.sub("", text.lstrip("\ufeff"))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return [line for line in lines if line.strip() != "..." and not _COMMAND.match(line)]


def parse_text(text: str) -> PartitionReading:
    """Detect the format of one tool output and return what it says about partitions."""
    lines = clean_text(text)
    content = [line for line in lines if line.strip()]
    if not content:
        return PartitionReading(EMPTY)
    joined = "\n".join(lines)
    data = _json_document(joined)
    if data is not None:
        if rocm_smi.is_json(data):
            return rocm_smi.parse_json(data)  # type: ignore[arg-type]
        if amd_smi.is_json(data):
            return amd_smi.parse_json(data)
        return PartitionReading(UNKNOWN)
    if any(line.startswith("NOT_SUPPORTED:") for line in content):
        return PartitionReading(rocm_smi.ERROR)
    if rocm_smi.is_concise(lines):
        return rocm_smi.parse_concise(lines)
    if rocm_smi.is_text(lines):
        return rocm_smi.parse_text(lines)
    if re.search(r"^Agent \d+\s*$", joined, re.MULTILINE):
        return _parse_rocminfo(content)
    csv_reading = _parse_csv(content)
    if csv_reading is not None:
        return csv_reading
    if amd_smi.is_default_view(content):
        return amd_smi.parse_default_view(content)
    if amd_smi.is_monitor(content):
        return amd_smi.parse_monitor(content)
    if amd_smi.is_table(lines):
        return amd_smi.parse_text(lines)
    if amd_smi.is_help(joined):
        return PartitionReading(amd_smi.HELP)
    if amd_smi.is_block_text(lines):
        return amd_smi.parse_text(lines)
    if amd_smi.is_error(joined):
        return PartitionReading(amd_smi.ERROR)
    return _parse_other(content)


def _parse_other(content: Sequence[str]) -> PartitionReading:
    """KFD properties, sysfs values and listings."""
    joined = "\n".join(content)
    if kfd.is_properties(joined):
        values = kfd.parse_properties(joined)
        if "size_in_bytes" in values:
            return PartitionReading(KFD_MEM_BANK)
        if values.get("simd_count", 0) > 0:
            return PartitionReading(KFD_NODE, devices=1, unknown_devices=0)
        if "simd_count" in values:
            return PartitionReading(KFD_NODE)  # a CPU node
        return PartitionReading(KFD_PROPERTIES)
    single = sysfs.parse_single_file(joined)
    if single is not None:
        return single
    if all(line.startswith("/sys/") for line in content):
        return PartitionReading(SYSFS_LISTING)
    return PartitionReading(UNKNOWN)


def _json_document(text: str) -> object | None:
    """The JSON value the text holds (possibly after warning lines), or None."""
    start = re.search(r"^\s*[\[{]", text, re.MULTILINE)
    if start is None:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start.start() :].lstrip())
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def _parse_csv(content: Sequence[str]) -> PartitionReading | None:
    """``--csv`` output of either tool: a ``device,...`` (rocm-smi) or ``gpu,...`` header."""
    starts = [
        index
        for index, line in enumerate(content)
        if "," in line and line.split(",", 1)[0].strip().lower() in {"device", "gpu", "gpu_id"}
    ]
    if not starts:
        return None
    rows = list(csv.reader(content[starts[0] :]))
    header = [name.strip().lower().replace(" ", "_") for name in rows[0]]
    collector = DeviceCollector()
    for row in rows[1:]:
        if not row or not row[0].strip():
            continue
        device = row[0].strip()
        collector.add(device)
        for name, value in zip(header[1:], row[1:], strict=False):
            if name.endswith(("compute_partition", "accelerator_partition")) or (
                name == "accelerator_type"
            ):
                collector.set_compute(device, compute_mode(value))
            elif name.endswith("memory_partition") or name == "memory":
                collector.set_memory(device, memory_mode(value))
    tool = rocm_smi.CSV if header[0] == "device" else "amd-smi-csv"
    return collector.reading(tool)


def _parse_rocminfo(content: Sequence[str]) -> PartitionReading:
    """rocminfo lists one agent per logical GPU (and CPUs); no partition mode."""
    collector = DeviceCollector()
    agent: str | None = None
    for line in content:
        found = re.match(r"^Agent (\d+)\s*$", line)
        if found:
            agent = found.group(1)
            continue
        if agent is None:
            continue
        # Excerpts may cut "Device Type"; a gfx name or a GPU- uuid also marks a GPU agent.
        if re.match(r"^\s*(Device Type:\s*GPU|Name:\s*gfx\d|Uuid:\s*GPU-)", line):
            collector.add(agent)
    return collector.reading(ROCMINFO)


def unusable(name: str, reading: PartitionReading) -> str | None:
    """Why the file ``name`` says nothing ``partition parse`` can use (empty, or of no known
    format), with what to give instead; None for a file of a known format."""
    if reading.format == EMPTY:
        return f"{name} is empty — give a saved output of {UNDERSTOOD}"
    if reading.format == UNKNOWN:
        return f"{name} is of no known partition format — give a saved output of {UNDERSTOOD}"
    return None


def read_file(path: Path) -> str:
    """The text of ``path`` (``-`` is stdin); BadInput when it cannot be read."""
    if str(path) == "-":
        import sys

        return sys.stdin.read()
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise BadInput(
            f"cannot read {path}: {reason} — check the path and that you may read it"
        ) from exc


def parse_file(path: Path) -> PartitionReading:
    """:func:`parse_text` of a file's content; BadInput when the file cannot be read."""
    return parse_text(read_file(path))
