"""Parsers for amd-smi output across versions (real outputs: ``tests/fixtures/smi/``).

- ``GPU: N`` blocks of ``KEY: value`` lines (``static``, ``list``, ``metric``, set results);
- column tables under a ``TITLE:`` line (``partition --current/--memory/--accelerator``),
  which ROCm 6.3 mixes with ``GPU: N`` blocks in one output;
- JSON: a top-level list (6.3/6.4) or an object wrapping lists (7.x ``gpu_data``,
  ``current_partition``, ``memory_partition``, ``partition_profiles``, ...);
- the box view of plain ``amd-smi`` (7.x) and ``amd-smi monitor``.

The compute mode is ``COMPUTE_PARTITION`` up to 6.4.1 and ``ACCELERATOR_PARTITION`` from
6.4.2; ``partition`` tables call it ``ACCELERATOR_TYPE`` and mark the current profile ``*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench.partition.modes import compute_mode, memory_mode
from fleetbench.partition.reading import DeviceCollector, PartitionReading

TEXT = "amd-smi-text"
TABLE = "amd-smi-table"
JSON = "amd-smi-json"
DEFAULT_VIEW = "amd-smi-default"
MONITOR = "amd-smi-monitor"
ERROR = "amd-smi-error"
HELP = "amd-smi-help"

_GPU_BLOCK = re.compile(r"^\s*GPU:\s*(\S+)\s*$")
_KEY_VALUE = re.compile(r"^(\s*)([A-Z][A-Z0-9_]*):\s*(.*?)\s*$")
_TITLE = re.compile(r"^([A-Z][A-Z0-9_]*):\s*$")
_HEADER_TOKEN = re.compile(r"[A-Z][A-Z0-9_%]*")

_COMPUTE_KEYS = frozenset({"COMPUTE_PARTITION", "ACCELERATOR_PARTITION", "COMPUTEPARTITION"})
_MEMORY_KEYS = frozenset({"MEMORY_PARTITION", "MEMORYPARTITION", "CURRENT_MEMORY_PARTITION"})
# Table columns; MEMORY_PARTITION_CAPS (what a GPU could do) is deliberately absent.
_COMPUTE_COLUMNS = frozenset({"ACCELERATOR_TYPE", "COMPUTE_PARTITION", "ACCELERATOR_PARTITION"})
_MEMORY_COLUMNS = frozenset({"MEMORY", "CURRENT_MEMORY_PARTITION", "MEMORY_PARTITION"})


def is_block_text(lines: Sequence[str]) -> bool:
    """True for ``GPU: N`` blocks or bare ``KEY: value`` lines in amd-smi's upper-case style."""
    return any(_GPU_BLOCK.match(line) for line in lines) or any(
        _KEY_VALUE.match(line) and line.startswith(" ") for line in lines
    )


def is_table(lines: Sequence[str]) -> bool:
    """True when an amd-smi ``partition`` style table (``GPU_ID ...`` header) is present."""
    return any(re.match(r"^GPU_ID\s", line) for line in lines)


@dataclass
class _Table:
    """A column table being read: header columns and, for profiles, per-device types."""

    columns: list[tuple[int, str]]
    device: str | None = None
    rows: int = 0
    profile_types: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [name for _, name in self.columns]

    def cells(self, line: str) -> dict[str, str]:
        """Cells by column name; a token belongs to the last column starting at or before it."""
        tokens = list(re.finditer(r"\S+", line))
        if len(tokens) == len(self.columns):
            pairs = zip(self.names, tokens, strict=True)
            return {name: token.group() for name, token in pairs}
        cells: dict[str, list[str]] = {name: [] for name in self.names}
        for token in tokens:
            owner = self.columns[0][1]
            for start, name in self.columns:
                if start <= token.start():
                    owner = name
            cells[owner].append(token.group())
        return {name: " ".join(parts) for name, parts in cells.items()}


def parse_text(lines: Sequence[str]) -> PartitionReading:
    """``GPU: N`` blocks and ``partition`` tables, merged per GPU id."""
    reader = _TextReader()
    for line in lines:
        reader.feed(line)
    return reader.finish()


class _TextReader:
    """Line by line: a table (under a ``TITLE:``) or a ``GPU: N`` block is open at a time."""

    def __init__(self) -> None:
        self.collector = DeviceCollector()
        self.table: _Table | None = None
        self.saw_table = False
        self.expect_header = False
        self.gpu: str | None = None
        self.saw_gpu = False
        self.sections: list[tuple[int, str]] = []  # (indent, KEY) of open "KEY:" lines

    def close_table(self) -> None:
        if self.table is not None:
            _finish_table(self.table, self.collector)
            self.table = None

    def feed(self, line: str) -> None:
        if not line.strip():
            self.close_table()
            return
        block = _GPU_BLOCK.match(line)
        if block:
            self.close_table()  # 6.3 prints GPU blocks right under a table
            self.gpu, self.sections, self.saw_gpu = block.group(1), [], True
            self.collector.add(self.gpu)
        elif re.match(r"^GPU_ID\s", line) or (self.expect_header and _is_header(line)):
            self.close_table()
            columns = [(m.start(), m.group()) for m in re.finditer(r"\S+", line)]
            self.table, self.expect_header, self.gpu = _Table(columns), False, None
            self.saw_table = self.saw_table or columns[0][1] == "GPU_ID"
        elif _TITLE.match(line):
            self.close_table()
            self.expect_header, self.gpu = True, None
        elif self.table is not None:
            _table_row(self.table, line, self.collector)
        else:
            self.feed_pair(line)

    def feed_pair(self, line: str) -> None:
        pair = _KEY_VALUE.match(line)
        if pair is None:
            return
        indent, key, value = len(pair.group(1)), pair.group(2), pair.group(3)
        if not indent:
            self.gpu, self.sections = None, []  # another top-level block, e.g. "CPU: 0"
        while self.sections and self.sections[-1][0] >= indent:
            self.sections.pop()
        if not value:
            self.sections.append((indent, key))
            return
        parent = self.sections[-1][1] if self.sections else ""
        # Outside a GPU block: an excerpt without GPU lines still describes one device;
        # in an output that lists GPUs it is another kind of block (e.g. "CPU: 0").
        device = self.gpu if self.gpu is not None else (None if self.saw_gpu else "?")
        _block_value(self.collector, device, parent, key, value)

    def finish(self) -> PartitionReading:
        self.close_table()
        return self.collector.reading(TABLE if self.saw_table else TEXT)


def _is_header(line: str) -> bool:
    tokens = line.split()
    return len(tokens) >= 2 and all(_HEADER_TOKEN.fullmatch(t) for t in tokens)


def _block_value(
    collector: DeviceCollector, device: str | None, parent: str, key: str, value: str
) -> None:
    is_compute = key in _COMPUTE_KEYS or key == "ACCELERATOR_TYPE"
    is_memory = key in _MEMORY_KEYS or (key == "CURRENT" and parent in _MEMORY_KEYS)
    if not (is_compute or is_memory):
        return
    if device is None:
        return
    if is_compute:
        collector.set_compute(device, compute_mode(value))
    else:
        collector.set_memory(device, memory_mode(value))


def _table_row(table: _Table, line: str, collector: DeviceCollector) -> None:
    if "GPU_ID" not in table.names:
        return  # RESOURCE tables and the like say nothing per GPU
    cells = table.cells(line)
    table.rows += 1
    gpu_id = cells.get("GPU_ID", "")
    if gpu_id:
        # Without root every id is N/A: each such row is still one GPU.
        table.device = gpu_id if gpu_id.upper() != "N/A" else f"row{table.rows}"
        collector.add(table.device)
    elif table.device is None:
        return
    device = table.device
    if "PROFILE_INDEX" in table.names:
        kind = cells.get("ACCELERATOR_TYPE", "")
        if kind:
            table.profile_types.setdefault(device, []).append(kind)
        return
    if not gpu_id:
        return
    for name in table.names:
        if name in _COMPUTE_COLUMNS:
            collector.set_compute(device, compute_mode(cells.get(name, "")))
        elif name in _MEMORY_COLUMNS:
            collector.set_memory(device, memory_mode(cells.get(name, "")))


def _finish_table(table: _Table, collector: DeviceCollector) -> None:
    """Profiles: the ``*`` row is the current mode; only N/A rows mean unknown."""
    for device, kinds in table.profile_types.items():
        _profile_mode(collector, device, kinds)


def _profile_mode(collector: DeviceCollector, device: str, kinds: Sequence[str]) -> None:
    current = [k for k in kinds if k.strip().endswith("*")]
    if current:
        collector.set_compute(device, compute_mode(current[0]))
    elif all(compute_mode(k) is None for k in kinds):
        collector.set_compute(device, None)
    # Real profiles but none marked current: the table does not say which one is in use.


# ----------------------------------------------------------------------------- JSON


def is_json(data: object) -> bool:
    """True for amd-smi ``--json`` output of any version."""
    if isinstance(data, list):
        return any(isinstance(e, Mapping) and ("gpu" in e or "gpu_id" in e) for e in data)
    if isinstance(data, Mapping):
        return ("gpu" in data or "gpu_id" in data) or any(
            is_json(v) for v in data.values() if isinstance(v, list)
        )
    return False


def parse_json(data: object) -> PartitionReading:
    """Every JSON shape amd-smi printed: lists of per-GPU entries, bare or wrapped."""
    collector = DeviceCollector()
    for name, entries in _entry_lists(data):
        previous: str | None = None
        for entry in entries:
            gpu = entry.get("gpu", entry.get("gpu_id"))
            if gpu is None or str(gpu).strip() == "":
                # Profile tables continue a GPU's rows under blank identity fields.
                if previous is None:
                    continue
                device = previous
            else:
                device = str(gpu)
                collector.add(device)
            previous = device
            if name == "partition_profiles" or "profile_index" in entry:
                continue
            for fields in _dicts(entry):
                _json_fields(collector, device, fields)
        if name == "partition_profiles":
            _json_profiles(collector, entries)
    return collector.reading(JSON)


def _entry_lists(data: object) -> Iterator[tuple[str, list[Mapping[str, Any]]]]:
    if isinstance(data, list):
        yield "", [e for e in data if isinstance(e, Mapping)]
    elif isinstance(data, Mapping):
        if "gpu" in data or "gpu_id" in data:
            yield "", [data]
            return
        for key, value in data.items():
            if isinstance(value, list):
                yield str(key), [e for e in value if isinstance(e, Mapping)]


def _dicts(entry: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield entry
    for value in entry.values():
        if isinstance(value, Mapping):
            yield from _dicts(value)


def _json_fields(collector: DeviceCollector, device: str, fields: Mapping[str, Any]) -> None:
    for key in ("compute_partition", "accelerator_partition"):
        if isinstance(fields.get(key), str):
            collector.set_compute(device, compute_mode(fields[key]))
    for key in ("memory_partition", "current_memory_partition"):
        if isinstance(fields.get(key), str):
            collector.set_memory(device, memory_mode(fields[key]))
    # A `partition --current` row: {"memory": "NPS4", "accelerator_type": "CPX", ...}.
    if "accelerator_type" in fields and "profile_index" not in fields:
        collector.set_compute(device, compute_mode(fields["accelerator_type"]))
        if "memory" in fields:
            collector.set_memory(device, memory_mode(fields["memory"]))


def _json_profiles(collector: DeviceCollector, entries: Sequence[Mapping[str, Any]]) -> None:
    kinds: dict[str, list[str]] = {}
    device: str | None = None
    for entry in entries:
        gpu = entry.get("gpu_id", entry.get("gpu"))
        if gpu is not None and str(gpu).strip() != "":
            device = str(gpu)
        kind = entry.get("accelerator_type")
        if device is not None and isinstance(kind, str) and kind.strip():
            kinds.setdefault(device, []).append(kind)
    for name, found in kinds.items():
        _profile_mode(collector, name, found)


# ----------------------------------------------------------------------- box view, monitor


def is_default_view(lines: Sequence[str]) -> bool:
    """True for the box view of plain ``amd-smi`` (7.x)."""
    return any(
        re.match(r"^\|.*\bPartition-Mode\s*\|", line) or re.match(r"^\|\s*AMD-SMI \d", line)
        for line in lines
    )


def parse_default_view(lines: Sequence[str]) -> PartitionReading:
    """Rows ``| GPU HIP-ID OAM-ID Partition-Mode | ...`` with ``CPX/NPS4`` or ``N/A``."""
    collector = DeviceCollector()
    header: list[str] | None = None
    cell_index = 0
    for line in lines:
        cells = line.split("|")
        if header is None:
            for index, cell in enumerate(cells):
                if "Partition-Mode" in cell:
                    header, cell_index = cell.split(), index
            continue
        if len(cells) <= cell_index + 1 or "Processes:" in line:
            continue
        tokens = cells[cell_index].split()
        if len(tokens) != len(header) or not tokens[0].isdigit():
            continue
        value = tokens[header.index("Partition-Mode")]
        compute, _, memory = value.partition("/")
        collector.set_compute(tokens[0], compute_mode(compute))
        collector.set_memory(tokens[0], memory_mode(memory))
    return collector.reading(DEFAULT_VIEW)


_MONITOR_HEADER = re.compile(r"^\s*GPU\s{2,}[A-Z][A-Z_%]*(\s+[A-Z][A-Z_%]*)*\s*$")


def is_monitor(lines: Sequence[str]) -> bool:
    """True for ``amd-smi monitor``: a ``GPU  POWER ...`` header over one row per GPU."""
    return any(_MONITOR_HEADER.match(line) for line in lines)


def parse_monitor(lines: Sequence[str]) -> PartitionReading:
    """Monitor rows list logical GPUs but no partition mode."""
    collector = DeviceCollector()
    rows = False
    for line in lines:
        if _MONITOR_HEADER.match(line):
            rows = True
            continue
        found = re.match(r"^\s*(\d+)\s", line) if rows else None
        if found:
            collector.add(found.group(1))
    return collector.reading(MONITOR)


def is_error(text: str) -> bool:
    """True for an amd-smi failure: library exception, Python traceback or usage error."""
    # Anchored at line starts so that prose quoting a status name is not an error output.
    return re.search(
        r"^(?:\s*(?:\d+\s*\|\s*)?\[?AMDSMI_STATUS_\w+|amdsmi\.amdsmi_exception\.|usage: amd-smi)",
        text,
        re.MULTILINE,
    ) is not None or ("amdsmi" in text and "Traceback (most recent call last)" in text)


def is_help(text: str) -> bool:
    """True for ``amd-smi ... --help`` text (option lines ``-X, --long``)."""
    return "amd-smi" in text and re.search(r"^\s*-\w, --[\w-]+", text, re.MULTILINE) is not None
