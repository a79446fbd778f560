"""The KFD topology (``/sys/class/kfd/kfd/topology/nodes/N``), FORMATS.md §4.

One node per logical GPU (CPU nodes have ``simd_count 0``). ``location_id`` is the PCI
bus/device/function with the function = partition index; ``unique_id`` is shared by the
partitions of one physical GPU; ``mem_banks/0/properties`` gives the partition's memory.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_LINE = re.compile(r"^\s*([a-z][a-z0-9_]*)\s+(-?\d+)\s*$")
# mem_banks heap types that are GPU memory (1 FB public, 2 FB private); others are
# system memory or on-chip scratch.
_FRAME_BUFFER_HEAPS = frozenset({1, 2})


def parse_properties(text: str) -> dict[str, int]:
    """``key value`` lines of a KFD properties file as a dict (other lines ignored)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        found = _LINE.match(line)
        if found:
            values[found.group(1)] = int(found.group(2))
    return values


def is_properties(text: str) -> bool:
    """True when every non-blank line is ``key integer`` (a KFD properties file)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all(_LINE.match(line) for line in lines)


def bank_bytes(properties: Mapping[str, int]) -> int | None:
    """GPU memory of one mem_banks entry, None for non-frame-buffer heaps."""
    if "size_in_bytes" not in properties:
        return None
    if properties.get("heap_type", 1) not in _FRAME_BUFFER_HEAPS:
        return None
    return properties["size_in_bytes"]


@dataclass(frozen=True)
class KfdNode:
    """One KFD topology node."""

    node_id: int
    properties: Mapping[str, int]
    memory_bytes: int | None = None

    @property
    def is_gpu(self) -> bool:
        """GPU nodes have SIMDs; CPU nodes report ``simd_count 0``."""
        return self.properties.get("simd_count", 0) > 0

    @property
    def location_id(self) -> int:
        """PCI bus << 8 | device << 3 | function (function = partition index)."""
        return self.properties.get("location_id", 0)

    @property
    def physical_address(self) -> str:
        """PCI address of the physical GPU (function 0), e.g. ``0000:05:00.0``."""
        loc = self.location_id
        return f"{self.properties.get('domain', 0):04x}:{loc >> 8:02x}:{(loc >> 3) & 0x1F:02x}.0"


@dataclass(frozen=True)
class KfdTopology:
    """All nodes of one host's KFD topology."""

    nodes: tuple[KfdNode, ...]

    @property
    def gpu_nodes(self) -> tuple[KfdNode, ...]:
        """The logical GPUs."""
        return tuple(node for node in self.nodes if node.is_gpu)

    def physical_groups(self) -> dict[str, tuple[KfdNode, ...]]:
        """Logical GPUs grouped per physical GPU, keyed by its PCI address.

        ``unique_id`` when every GPU node has one (it is per physical GPU); otherwise
        the PCI bus/device of ``location_id`` (older kernels lack ``unique_id``).
        """
        gpus = self.gpu_nodes
        by_unique = all(node.properties.get("unique_id", 0) for node in gpus)
        groups: dict[Any, list[KfdNode]] = {}
        for node in gpus:
            key: Any = (
                node.properties["unique_id"]
                if by_unique
                else (node.properties.get("domain", 0), node.location_id >> 3)
            )
            groups.setdefault(key, []).append(node)
        named: dict[str, tuple[KfdNode, ...]] = {}
        for members in groups.values():
            first = min(members, key=lambda node: node.location_id)
            name = first.physical_address
            while name in named:  # same address, different unique_id: keep both
                name += "'"
            named[name] = tuple(members)
        return dict(sorted(named.items()))

    def partition_memory(self) -> tuple[int | None, bool]:
        """(memory of the most common GPU node size, whether all GPU nodes agree)."""
        sizes = [node.memory_bytes for node in self.gpu_nodes if node.memory_bytes is not None]
        if not sizes:
            return None, True
        size, _ = Counter(sizes).most_common(1)[0]
        return size, len(set(sizes)) == 1


def topology_from_raw(entries: Sequence[Mapping[str, Any]]) -> KfdTopology:
    """The probe's ``kfd_nodes`` list (properties and mem_banks texts) as a topology."""
    nodes: list[KfdNode] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        properties = parse_properties(str(entry.get("properties") or ""))
        sizes = [bank_bytes(parse_properties(str(bank))) for bank in entry.get("mem_banks") or []]
        known = [size for size in sizes if size is not None]
        node_id = entry.get("id", position)
        nodes.append(
            KfdNode(
                node_id=int(node_id) if str(node_id).isdigit() else position,
                properties=properties,
                memory_bytes=sum(known) if known else None,
            )
        )
    return KfdTopology(tuple(sorted(nodes, key=lambda node: node.node_id)))
