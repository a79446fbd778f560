"""GPU partition modes: parse what the tools print and judge a host (CPX/NPS4 by default).

- :func:`parse_text` / :func:`parse_file`: detect a tool output's format from its content
  and say what it reports (``fleetbench partition parse``);
- :func:`evaluate_host`: the per-host verdict from sysfs, the KFD topology and amd-smi /
  rocm-smi, against an :class:`ExpectedPartition`;
- mode names and rules: :data:`COMPUTE_MODES`, :data:`MEMORY_MODES`,
  :data:`LOGICAL_PER_PHYSICAL`, :func:`check_combination`.
"""

from __future__ import annotations

from fleetbench.partition.modes import (
    COMPUTE_MODES,
    LOGICAL_PER_PHYSICAL,
    MEMORY_MODES,
    MEMORY_PARTITIONS,
    MIXED,
    VALIDATED_COMBINATIONS,
    check_combination,
    compute_mode,
    memory_mode,
    normalize_compute,
    normalize_memory,
)
from fleetbench.partition.parse import parse_file, parse_text
from fleetbench.partition.reading import DeviceReading, PartitionReading
from fleetbench.partition.verdict import (
    ExpectedPartition,
    PartitionVerdict,
    SourceReading,
    evaluate_host,
)

__all__ = [
    "COMPUTE_MODES",
    "LOGICAL_PER_PHYSICAL",
    "MEMORY_MODES",
    "MEMORY_PARTITIONS",
    "MIXED",
    "VALIDATED_COMBINATIONS",
    "DeviceReading",
    "ExpectedPartition",
    "PartitionReading",
    "PartitionVerdict",
    "SourceReading",
    "check_combination",
    "compute_mode",
    "evaluate_host",
    "memory_mode",
    "normalize_compute",
    "normalize_memory",
    "parse_file",
    "parse_text",
]
