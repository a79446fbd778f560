"""Partition mode names, what they mean, and which combinations are valid.

Facts from AMD's MI300X partitioning guide: compute modes split one physical GPU into
1 (SPX), 2 (DPX), 3 (TPX, MI300A only), 4 (QPX) or 8 (CPX on MI300X; 6 on MI300A) logical
GPUs; memory modes split its HBM into 1, 2, 4 or 8 NUMA pools. The number of memory
partitions may not exceed the number of compute partitions (so SPX+NPS4 is invalid).
"""

from __future__ import annotations

import re

from fleetbench.errors import BadInput

COMPUTE_MODES: tuple[str, ...] = ("SPX", "DPX", "TPX", "QPX", "CPX")
MEMORY_MODES: tuple[str, ...] = ("NPS1", "NPS2", "NPS4", "NPS8")

#: Logical GPUs per physical GPU in each compute mode on MI300X (MI300A CPX gives 6:
#: pass ``logical_per_physical`` for it).
LOGICAL_PER_PHYSICAL: dict[str, int] = {"SPX": 1, "DPX": 2, "TPX": 3, "QPX": 4, "CPX": 8}

#: Memory partitions (NUMA pools) per physical GPU in each memory mode.
MEMORY_PARTITIONS: dict[str, int] = {"NPS1": 1, "NPS2": 2, "NPS4": 4, "NPS8": 8}

#: Combinations AMD validates on MI300X (FORMATS.md §1); others may work but are untested.
VALIDATED_COMBINATIONS: frozenset[tuple[str, str]] = frozenset(
    {("SPX", "NPS1"), ("CPX", "NPS1"), ("CPX", "NPS4")}
)

#: What ``partition parse`` prints when the devices of one file disagree.
MIXED = "MIXED"

# Tools print modes as "CPX", "cpx", "CPX*" (current profile in amd-smi), "CPX (profile #3)"
# or inside "Successfully set ... to CPX". A shape rather than a fixed list, so that a mode
# name a newer tool adds is reported as it is instead of being taken for N/A.
_COMPUTE_SHAPE = re.compile(r"\b([A-Z]PX)\b")
_MEMORY_SHAPE = re.compile(r"\b(NPS\d+)\b")
_SUCCESS = re.compile(r"successfully set .*? to\s+(\S+)", re.IGNORECASE)
_PLAIN = re.compile(r"^\s*([A-Za-z]+\d*)\s*\*?\s*(?:\(profile\s*#?\d+\))?\s*$", re.IGNORECASE)


def _tool_value(value: object, shape: re.Pattern[str]) -> str | None:
    if not isinstance(value, str):
        return None
    success = _SUCCESS.search(value)
    text = success.group(1) if success else value
    plain = _PLAIN.match(text)
    if plain is None:
        return None
    found = shape.fullmatch(plain.group(1).upper())
    return found.group(1) if found else None


def compute_mode(value: object) -> str | None:
    """The compute mode a tool printed (``"CPX"``), or None for N/A, UNKNOWN or anything else."""
    return _tool_value(value, _COMPUTE_SHAPE)


def memory_mode(value: object) -> str | None:
    """The memory mode a tool printed (``"NPS4"``), or None for N/A, UNKNOWN or anything else."""
    return _tool_value(value, _MEMORY_SHAPE)


def normalize_compute(name: str) -> str:
    """A user-given compute mode in canonical form; BadInput when it is not one."""
    mode = name.strip().upper()
    if mode not in COMPUTE_MODES:
        raise BadInput(
            f"unknown compute partition {name!r} — use one of {', '.join(COMPUTE_MODES)}"
        )
    return mode


def normalize_memory(name: str) -> str:
    """A user-given memory mode in canonical form; BadInput when it is not one."""
    mode = name.strip().upper()
    if mode not in MEMORY_MODES:
        raise BadInput(f"unknown memory partition {name!r} — use one of {', '.join(MEMORY_MODES)}")
    return mode


def check_combination(compute: str, memory: str, logical_per_physical: int | None = None) -> str:
    """Raise BadInput for an impossible compute/memory pair; return a caution ("" if none).

    Impossible: more memory partitions than compute partitions (SPX+NPS4, DPX+NPS4), which
    the driver rejects. Possible but outside AMD's validated matrix (QPX+NPS4, anything
    with NPS2/NPS8 on MI300X) returns a one-sentence caution instead.
    """
    compute = normalize_compute(compute)
    memory = normalize_memory(memory)
    per_physical = logical_per_physical or LOGICAL_PER_PHYSICAL[compute]
    if MEMORY_PARTITIONS[memory] > per_physical:
        raise BadInput(
            f"{compute}/{memory} is not a valid partition combination: {memory} makes "
            f"{MEMORY_PARTITIONS[memory]} memory partitions but {compute} only "
            f"{per_physical} compute partitions — use CPX/NPS4, CPX/NPS1 or SPX/NPS1"
        )
    if (compute, memory) in VALIDATED_COMBINATIONS:
        return ""
    return (
        f"{compute}/{memory} is accepted by the driver but is not in AMD's validated list "
        "for MI300X (SPX/NPS1, CPX/NPS1, CPX/NPS4)."
    )
