"""The per-host partition verdict.

Sources, in order of authority: sysfs partition files of each PCI device (the driver's own
state), the KFD topology (logical GPU count per physical GPU, per-partition memory), and
amd-smi/rocm-smi output. A host is ``ok`` only when at least two independent sources agree
on the compute partition, no source contradicts another, nothing is N/A where it matters,
and the logical GPU count is physical GPUs times partitions per GPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fleetbench.errors import BadInput
from fleetbench.partition.kfd import KfdTopology, topology_from_raw
from fleetbench.partition.modes import (
    LOGICAL_PER_PHYSICAL,
    MIXED,
    check_combination,
    normalize_compute,
    normalize_memory,
)
from fleetbench.partition.parse import parse_text
from fleetbench.partition.reading import PartitionReading, summarise
from fleetbench.partition.sysfs import SysfsDevice, devices_from_raw

SYSFS = "sysfs"
KFD = "kfd"

#: Compute mode from logical GPUs per physical GPU (6 is CPX on the 6-XCD MI300A).
_MODE_BY_COUNT = {1: "SPX", 2: "DPX", 3: "TPX", 4: "QPX", 6: "CPX", 8: "CPX"}

_MISSING_PARTITION_CAUSE = (
    "This is the known DRM minor limit: older kernels allow 64 DRM minors per type and a BMC "
    "VGA driver (ast) takes one. Fix: run `modprobe -r ast; modprobe -r amdgpu; modprobe "
    "amdgpu`, or blacklist the ast module, or move to a newer kernel."
)


@dataclass(frozen=True)
class ExpectedPartition:
    """The partition a host must be in. Mode names are validated on construction.

    ``logical_per_physical`` None means the MI300X figure for ``compute`` (SPX 1, DPX 2,
    TPX 3, QPX 4, CPX 8); give 6 for CPX on MI300A. ``missing_partition_is_error`` turns
    the known "63 of 64 partitions" quirk from a warning into a problem.
    """

    compute: str = "CPX"
    memory: str = "NPS4"
    logical_per_physical: int | None = None
    missing_partition_is_error: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "compute", normalize_compute(str(self.compute)))
        object.__setattr__(self, "memory", normalize_memory(str(self.memory)))
        per = self.logical_per_physical
        if per is not None and (isinstance(per, bool) or not isinstance(per, int) or per < 1):
            raise BadInput(
                f"logical GPUs per physical GPU must be a whole number of at least 1, not "
                f"{per!r} — leave it unset to use {LOGICAL_PER_PHYSICAL[self.compute]} "
                f"for {self.compute}"
            )
        if self.compute == "SPX" and per not in (None, 1):
            raise BadInput(
                f"SPX keeps each GPU whole, so logical GPUs per physical GPU is 1, not {per} "
                "— leave it unset or choose another compute partition"
            )
        check_combination(self.compute, self.memory, per)

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        logical_per_physical: int | None = None,
        missing_partition_is_error: bool = False,
    ) -> ExpectedPartition:
        """Build from user text such as ``CPX/NPS4``, ``cpx,nps4`` or ``CPX NPS4``."""
        parts = [p for p in text.replace(",", "/").replace(" ", "/").split("/") if p]
        if len(parts) != 2:
            raise BadInput(
                f"{text!r} is not a partition — write COMPUTE/MEMORY, for example CPX/NPS4"
            )
        return cls(parts[0], parts[1], logical_per_physical, missing_partition_is_error)

    @property
    def partitions_per_gpu(self) -> int:
        """Logical GPUs each physical GPU must show."""
        return self.logical_per_physical or LOGICAL_PER_PHYSICAL[self.compute]

    @property
    def caution(self) -> str:
        """A sentence when the combination is outside AMD's validated list, else ``""``."""
        return check_combination(self.compute, self.memory, self.logical_per_physical)

    @property
    def label(self) -> str:
        """``CPX/NPS4``."""
        return f"{self.compute}/{self.memory}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "compute": self.compute,
            "memory": self.memory,
            "logical_per_physical": self.partitions_per_gpu,
            "missing_partition_is_error": self.missing_partition_is_error,
        }


@dataclass(frozen=True)
class SourceReading:
    """What one source said on the host (``available`` False: it could not be read)."""

    name: str
    available: bool
    compute_partition: str | None = None
    memory_partition: str | None = None
    logical_gpus: int | None = None
    physical_gpus: int | None = None
    unknown_devices: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "available": self.available,
            "compute_partition": self.compute_partition,
            "memory_partition": self.memory_partition,
            "logical_gpus": self.logical_gpus,
            "physical_gpus": self.physical_gpus,
            "unknown_devices": self.unknown_devices,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PartitionVerdict:
    """The partition verdict on one host; ``problems`` and ``warnings`` are full sentences."""

    ok: bool
    expected: ExpectedPartition
    compute_partition: str | None
    memory_partition: str | None
    logical_gpus: int | None
    physical_gpus: int | None
    partition_memory_bytes: int | None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sources: Mapping[str, SourceReading] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what lands in ``hosts/<host>/partition.json``)."""
        return {
            "ok": self.ok,
            "expected": self.expected.to_dict(),
            "compute_partition": self.compute_partition,
            "memory_partition": self.memory_partition,
            "logical_gpus": self.logical_gpus,
            "physical_gpus": self.physical_gpus,
            "partition_memory_bytes": self.partition_memory_bytes,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "sources": {name: source.to_dict() for name, source in self.sources.items()},
        }


# ----------------------------------------------------------------------------- sources


def _sysfs_source(devices: Sequence[SysfsDevice]) -> SourceReading:
    if not devices:
        return SourceReading(
            SYSFS, False, detail="no amdgpu PCI device has partition files in sysfs"
        )
    unknown = sum(1 for d in devices if d.compute is None or d.memory is None)
    return SourceReading(
        SYSFS,
        True,
        compute_partition=summarise(d.compute for d in devices),
        memory_partition=summarise(d.memory for d in devices),
        physical_gpus=len(devices),
        unknown_devices=unknown,
        detail=f"{len(devices)} PCI device(s)",
    )


def _kfd_source(topology: KfdTopology, expected: ExpectedPartition) -> SourceReading:
    if not topology.nodes:
        return SourceReading(KFD, False, detail="the KFD topology could not be read")
    groups = topology.physical_groups()
    logical = len(topology.gpu_nodes)
    if not groups:
        return SourceReading(
            KFD, True, logical_gpus=0, physical_gpus=0, detail="only CPU nodes, no GPU node"
        )
    # The most common partitions-per-GPU tells the mode even when one partition is missing.
    size, _ = Counter(len(members) for members in groups.values()).most_common(1)[0]
    mode = expected.compute if size == expected.partitions_per_gpu else _MODE_BY_COUNT.get(size)
    return SourceReading(
        KFD,
        True,
        compute_partition=mode,
        logical_gpus=logical,
        physical_gpus=len(groups),
        detail=f"{logical} GPU node(s) on {len(groups)} physical GPU(s), mostly {size} per GPU",
    )


def _smi_sources(runs: Sequence[Mapping[str, Any]]) -> dict[str, SourceReading]:
    by_tool: dict[str, list[tuple[str, PartitionReading | None]]] = {}
    for run in runs:
        if not isinstance(run, Mapping):
            continue
        tool = str(run.get("tool") or "smi")
        command = " ".join([tool, *[str(a) for a in run.get("args") or []]])
        rc = run.get("rc")
        if rc == 127:
            by_tool.setdefault(tool, []).append((f"{tool} is not installed (exit 127)", None))
            continue
        if rc != 0:
            said = str(run.get("stderr") or "").strip() or str(run.get("stdout") or "").strip()
            first = said.splitlines()[0] if said else "no output"
            by_tool.setdefault(tool, []).append((f"`{command}` failed (exit {rc}): {first}", None))
            continue
        reading = parse_text(str(run.get("stdout") or ""))
        by_tool.setdefault(tool, []).append((f"`{command}`: {reading.format}", reading))
    return {tool: _smi_source(tool, outcomes) for tool, outcomes in by_tool.items()}


def _smi_source(
    tool: str, outcomes: Sequence[tuple[str, PartitionReading | None]]
) -> SourceReading:
    readings = [
        r for _, r in outcomes if r is not None and (r.reports_compute or r.reports_memory)
    ]
    detail = "; ".join(note for note, _ in outcomes)
    if not readings:
        return SourceReading(tool, False, detail=detail)
    widest = max(readings, key=lambda r: r.devices or 0)
    return SourceReading(
        tool,
        True,
        compute_partition=summarise(r.compute_partition for r in readings),
        memory_partition=summarise(r.memory_partition for r in readings),
        logical_gpus=widest.devices,
        unknown_devices=widest.unknown_devices,
        detail=detail,
    )


# ----------------------------------------------------------------------------- verdict


def _items(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _definite(value: str | None) -> bool:
    return value is not None and value != MIXED


def _names(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def evaluate_host(
    raw: Mapping[str, Any], expected: ExpectedPartition | None = None
) -> PartitionVerdict:
    """Judge one host's partition state from what the probe gathered there.

    ``raw`` has ``sysfs_devices`` (path + partition file texts per PCI amdgpu device),
    ``kfd_nodes`` (id, properties text, mem_banks texts per KFD node) and ``smi`` (tool,
    args, rc, stdout, stderr per amd-smi/rocm-smi run); any of them may be empty.
    """
    return _Judgement(raw, expected or ExpectedPartition()).verdict()


class _Judgement:
    """The checks of one host; each ``_check_*`` appends to ``problems``/``warnings``."""

    def __init__(self, raw: Mapping[str, Any], expected: ExpectedPartition) -> None:
        self.expected = expected
        self.devices = devices_from_raw(_items(raw, "sysfs_devices"))
        self.topology = topology_from_raw(_items(raw, "kfd_nodes"))
        self.sources: dict[str, SourceReading] = {
            SYSFS: _sysfs_source(self.devices),
            KFD: _kfd_source(self.topology, expected),
        }
        self.sources.update(_smi_sources(_items(raw, "smi")))
        self.smi = [s for name, s in self.sources.items() if name not in (SYSFS, KFD)]
        self.problems: list[str] = []
        self.warnings: list[str] = [expected.caution] if expected.caution else []
        self.compute, self.compute_from = self._authority("compute_partition")
        self.memory, self.memory_from = self._authority("memory_partition")
        self.physical = self.sources[SYSFS].physical_gpus or self.sources[KFD].physical_gpus
        logical = self.sources[KFD].logical_gpus
        if logical is None:
            logical = max((s.logical_gpus for s in self.smi if s.logical_gpus), default=None)
        self.logical = logical

    def verdict(self) -> PartitionVerdict:
        """Run every check and build the verdict."""
        if not any(s.available for s in self.sources.values()):
            self.problems.append(
                "No source could tell the GPU partition on this host ("
                + self._said(self.sources.values())
                + "). Check that the amdgpu driver is loaded and ROCm is installed."
            )
        else:
            self._check_unknown()
            self._check_expected("compute", self.compute, self.compute_from)
            self._check_expected("memory", self.memory, self.memory_from)
            self._check_agreement("compute_partition", self.compute, self.compute_from)
            self._check_agreement("memory_partition", self.memory, self.memory_from)
            self._check_confirmations()
            if self.compute in (self.expected.compute, None):
                self._check_count()
            self._note_partial_na()
        memory_bytes, uniform = self.topology.partition_memory()
        if not uniform:
            sizes = sorted({n.memory_bytes for n in self.topology.gpu_nodes if n.memory_bytes})
            self.warnings.append(
                "The KFD GPU nodes report different partition memory sizes "
                f"({', '.join(str(s) for s in sizes)} bytes); the most common one is reported."
            )
        return PartitionVerdict(
            ok=not self.problems,
            expected=self.expected,
            compute_partition=self.compute,
            memory_partition=self.memory,
            logical_gpus=self.logical,
            physical_gpus=self.physical,
            partition_memory_bytes=memory_bytes,
            problems=tuple(self.problems),
            warnings=tuple(self.warnings),
            sources=MappingProxyType(self.sources),
        )

    def _authority(self, kind: str) -> tuple[str | None, str]:
        """The value to report and its source: sysfs first, then amd-smi/rocm-smi, then KFD."""
        order = [SYSFS, *[s.name for s in self.smi], KFD]
        for name in order:
            value = getattr(self.sources[name], kind)
            if value is not None:
                return value, name
        return None, ""

    @staticmethod
    def _said(sources: Iterable[SourceReading]) -> str:
        return "; ".join(f"{s.name}: {s.detail}" for s in sources)

    def _check_unknown(self) -> None:
        for kind, found in (("compute", self.compute), ("memory", self.memory)):
            if found is None:
                # KFD never tells the memory partition: leave it out of that message.
                asked = [s for s in self.sources.values() if kind == "compute" or s.name != KFD]
                self.problems.append(
                    f"No source tells the {kind} partition (N/A or unreadable everywhere: "
                    f"{self._said(asked)}); an unknown partition is never taken as the "
                    "expected one."
                )
        # sysfs is per physical GPU: UNKNOWN there is a GPU whose state the driver does not
        # know. (A missing file is an older driver, not an unknown state: the tools decide.)
        for kind in ("compute", "memory"):
            unknown = [
                d.name
                for d in self.devices
                if getattr(d, f"has_{kind}_file") and getattr(d, kind) is None
            ]
            if unknown:
                self.problems.append(
                    f"sysfs reports {kind} partition UNKNOWN (or an unreadable value) for "
                    f"{_names(unknown)}; reload amdgpu or re-apply with "
                    "`fleetbench partition apply`."
                )

    def _check_expected(self, kind: str, found: str | None, source: str) -> None:
        expected = self.expected
        wanted = expected.compute if kind == "compute" else expected.memory
        if found is None or found == wanted:
            return
        if found == MIXED:
            by_mode: dict[str, list[str]] = {}
            for device in self.devices:
                by_mode.setdefault(getattr(device, kind) or "UNKNOWN", []).append(device.name)
            spread = ", ".join(f"{m} on {_names(names)}" for m, names in sorted(by_mode.items()))
            text = f"The GPUs are not all in the same {kind} partition ({source}: {spread})"
        else:
            text = f"The GPUs are in {kind} partition {found} (per {source})"
        self.problems.append(
            f"{text}, expected {wanted}: run `fleetbench partition apply` to set {expected.label}."
        )
        offers = {
            d.name: d.available_compute if kind == "compute" else d.available_memory
            for d in self.devices
        }
        lacking = [name for name, modes in offers.items() if modes and wanted not in modes]
        if lacking:
            self.problems.append(
                f"{_names(lacking)} do(es) not offer {kind} partition {wanted} (sysfs lists "
                f"{', '.join(offers[lacking[0]])}); this hardware cannot be set to "
                f"{expected.label}."
            )

    def _check_agreement(self, kind: str, authority: str | None, authority_name: str) -> None:
        if not _definite(authority):
            return
        label = kind.replace("_", " ")
        hint = (
            " A memory partition change only takes effect after the amdgpu driver is reloaded "
            "(`sudo amd-smi reset -r` on ROCm 7, or a reboot)."
            if kind == "memory_partition"
            else " Re-check after stopping GPU jobs; if it persists, reload amdgpu."
        )
        for source in self.sources.values():
            value = getattr(source, kind)
            if source.name == authority_name or not _definite(value) or value == authority:
                continue
            said = (
                f"the KFD topology shows {value} ({source.detail})"
                if source.name == KFD
                else f"{source.name} says {value}"
            )
            self.problems.append(
                f"The sources disagree on the {label}: {authority_name} says {authority} but "
                f"{said}.{hint}"
            )

    def _check_confirmations(self) -> None:
        expected, sources = self.expected, self.sources.values()
        agreeing = [s.name for s in sources if s.compute_partition == expected.compute]
        if self.compute == expected.compute and len(agreeing) < 2:
            missing = [s for s in sources if not s.available]
            self.problems.append(
                f"Only {agreeing[0]} reports compute partition {self.compute}; at least two "
                "independent sources (sysfs, KFD topology, amd-smi/rocm-smi) must agree before "
                f"the host is trusted. Unavailable: {self._said(missing) or 'none'}."
            )
        confirming = [s.name for s in sources if s.memory_partition == expected.memory]
        if self.memory == expected.memory and len(confirming) == 1:
            self.warnings.append(
                f"Memory partition {self.memory} is confirmed by {confirming[0]} only: the KFD "
                "topology cannot tell NPS modes apart, and no other of sysfs, amd-smi and "
                "rocm-smi reported it."
            )
        if not any(s.available for s in self.smi):
            said = self._said(self.smi) or "no tool was run"
            self.warnings.append(f"Neither amd-smi nor rocm-smi gave the partition ({said}).")

    def _check_count(self) -> None:
        physical, logical = self.physical, self.logical
        if physical is None or logical is None:
            return
        per_gpu = self.expected.partitions_per_gpu
        wanted = physical * per_gpu
        if logical == wanted:
            return
        if logical == 0:
            self.problems.append(
                f"The KFD topology lists no GPU node although {physical} amdgpu PCI device(s) "
                "exist: the driver did not bring up compute; check dmesg and reload amdgpu."
            )
            return
        groups = self.topology.physical_groups()
        odd = ", ".join(
            f"{name} shows {len(members)}"
            for name, members in groups.items()
            if len(members) != per_gpu
        )
        where = f"; {odd} of {per_gpu}" if odd else ""
        counted = (
            f"{logical} logical GPUs, expected {wanted} ({physical} physical x {per_gpu} "
            f"for {self.expected.compute}){where}"
        )
        if logical == wanted - 1 and per_gpu > 1:
            message = f"One partition is missing: {counted}. {_MISSING_PARTITION_CAUSE}"
            if self.expected.missing_partition_is_error:
                self.problems.append(message)
            else:
                self.warnings.append(message)
            return
        self.problems.append(
            f"Found {counted}. Re-apply the partition with `fleetbench partition apply` "
            "(which reloads amdgpu) and check dmesg."
        )

    def _note_partial_na(self) -> None:
        for source in self.smi:
            if source.unknown_devices and (source.compute_partition or source.memory_partition):
                self.warnings.append(
                    f"{source.name} reports N/A for {source.unknown_devices} of "
                    f"{source.logical_gpus} logical GPUs (secondary partitions on some ROCm "
                    "versions); they are taken to share their primary partition's mode."
                )
