"""The simulated MI300X GPUs of one lab host: state, sysfs/KFD tree and the SMI answers.

The simulated tools and their bin/ wrappers are in :mod:`fleetbench.lab.smi`.

A host directory holds::

    HOST_DIR/gpu-state.json        GpuState (compute/memory mode, GPU count, ROCm version, faults)
    HOST_DIR/gpu-state.lock        flock()ed while a set operation changes the state
    HOST_DIR/root/sys/...          sysfs: PCI partition files, DRM nodes, KFD topology and,
                                   while busy, the KFD ``proc/<pid>`` entry of a GPU client
    HOST_DIR/root/proc/<pid>/      comm and cmdline of that client (busy hosts only)
    HOST_DIR/root/dev/kfd, dev/dri/renderD<minor>
                                   stand-in device nodes (copies of /dev/null) that slot
                                   containers are given with render-nodes GPU isolation
    HOST_DIR/root/opt/rocm/.info/version
    HOST_DIR/smi-answers/          the outputs of ANSWERED_QUERIES for the current state
    HOST_DIR/bin/rocm-smi, amd-smi sh wrappers: answer ANSWERED_QUERIES from smi-answers/,
                                   run everything else through bin/.rocm-smi.py, .amd-smi.py
                                   (fleetbench.lab.smi.main)

Formats follow the real sysfs/KFD files in ``tests/fixtures/smi/`` and the real KFD tree in
``tests/fixtures/kfd/``. Identifiers (unique_id, GUIDs, UUIDs) are derived from the host
directory's name, so every lab host looks like a different machine but stays stable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.errors import LabError

STATE_FILE = "gpu-state.json"
LOCK_FILE = "gpu-state.lock"
ANSWERS_DIR = "smi-answers"
ANSWERS_CURRENT = "current"

# The read-only queries the check probe runs on every host (SMI_COMMANDS in
# module_utils/fleetbench_host.py; a unit test keeps the two equal). The bin/ wrappers answer
# them from outputs rendered at each state change: on a real fleet that work runs on each
# host's own CPUs, in the lab a Python start per query would load the controller instead.
ANSWERED_QUERIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("amd-smi", ("static", "--partition", "--json")),
    ("rocm-smi", ("--showcomputepartition", "--showmemorypartition", "--json")),
)

COMPUTE_MODES = ("SPX", "DPX", "QPX", "CPX")
MEMORY_MODES = ("NPS1", "NPS4")
PARTITIONS_PER_GPU = {"SPX": 1, "DPX": 2, "QPX": 4, "CPX": 8}
# amd-smi accelerator profile index on MI300X (FORMATS §3).
PROFILE_INDEX = {"SPX": 0, "DPX": 1, "QPX": 2, "CPX": 3}
# The driver's profile table on MI300X (FORMATS §1, S4): the NPS modes each compute mode holds.
MEMORY_CAPS: dict[str, tuple[str, ...]] = {
    "SPX": ("NPS1",),
    "DPX": ("NPS1",),
    "QPX": ("NPS1", "NPS4"),
    "CPX": ("NPS1", "NPS4"),
}
MAX_GPUS = 8
XCC_PER_GPU = 8
MAX_SET_DELAY_S = 600.0

# Whole-GPU memory as KFD and rocm-smi report it: 192 GiB less 16 MiB; a partition gets 1/n.
GPU_VRAM_BYTES = 206141652992
DEVICE_ID = 0x74A1
PRODUCT_NAME = "AMD Instinct MI300X OAM"
VENDOR_ID = 0x1002
# PCI buses of the 8 OAM slots, from the real 8x MI300X KFD tree (location_id 1280 = 05:00.0 ...).
PCI_BUSES = (0x05, 0x27, 0x47, 0x65, 0x85, 0xA7, 0xC7, 0xE5)
# OAM slot per GPU index as in the amd-smi ``list -e`` capture.
OAM_IDS = (2, 1, 0, 3, 7, 5, 4, 6)
FIRST_GPU_NODE = 2  # KFD nodes 0 and 1 are the two CPU sockets
GPUS_PER_SOCKET = 4
FIRST_RENDER_MINOR = 128
DRM_NODES_PER_GPU = 8  # the driver reserves 8 DRM minors per GPU in every mode
SIMD_ID_BASE = 2147488064
SIMD_ID_STEP_PER_XCC = 40
# The GPU client a busy host runs: what `ps` would show for a vLLM server.
BUSY_PROCESS_COMM = "python3"
BUSY_PROCESS_ARGV = ("python3", "-m", "vllm.entrypoints.openai.api_server", "--port", "8000")

GPU_SETTING_KEYS = (
    "compute",
    "memory",
    "gpus",
    "partitions",
    "rocm",
    "busy",
    "noperm",
    "set_delay",
)

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass(frozen=True)
class RocmRelease:
    """What one ROCm release's tools report about themselves."""

    version: str
    amdsmi_tool: str
    amdsmi_library: str
    amdgpu: str
    build: int

    @property
    def key(self) -> tuple[int, int, int]:
        """The version as a comparable tuple, e.g. ``(6, 4, 1)``."""
        major, minor, patch = (int(p) for p in self.version.split("."))
        return major, minor, patch


# Tool strings from public captures (S1-S4 in tests/fixtures/README.md, amdsmi changelog);
# build numbers in .info/version are illustrative.
ROCM_RELEASES: dict[str, RocmRelease] = {
    r.version: r
    for r in (
        RocmRelease("6.3.1", "24.7.1+0012a68", "24.7.1.0", "6.10.5", 48),
        RocmRelease("6.3.3", "24.7.1+8dc45db", "24.7.1.0", "6.10.5", 74),
        RocmRelease("6.4.0", "25.3.0+ede62f2", "25.3.0", "6.12.12", 47),
        RocmRelease("6.4.1", "25.4.2+aca1101", "25.4.2", "6.12.12", 83),
        RocmRelease("6.4.2", "25.5.1+41065ee6", "25.5.1", "6.12.12", 120),
        RocmRelease("7.0.0", "26.0.0+eaa54ecc", "26.0.0", "6.12.12", 38),
        RocmRelease("7.0.2", "26.0.2+39589fda", "26.0.2", "6.14.14", 56),
    )
}
ROCM_SHORT_FORMS = {"6.3": "6.3.1", "6.4": "6.4.1", "7.0": "7.0.2", "7": "7.0.2"}


def normalize_rocm(value: str) -> str:
    """Return the full simulated ROCm version for ``value`` (``6.4`` -> ``6.4.1``)."""
    text = value.strip().removeprefix("rocm-").removeprefix("v")
    text = ROCM_SHORT_FORMS.get(text, text)
    if text not in ROCM_RELEASES:
        known = ", ".join([*ROCM_RELEASES, *ROCM_SHORT_FORMS])
        raise LabError(f"rocm={value} is not a simulated ROCm release — use one of: {known}")
    return text


def _parse_bool(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise LabError(f"{key}={value} is not a boolean — use {key}=true or {key}=false")


def _parse_int(key: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise LabError(f"{key}={value} is out of range — use a whole number from {low} to {high}")
    return number


@dataclass(frozen=True)
class GpuState:
    """The GPUs of one simulated host, saved as ``HOST_DIR/gpu-state.json``.

    ``partitions`` is the number of logical GPUs actually visible (``None`` = all); a value
    below the mode's total hides the last ones, as on real nodes where a BMC ``ast`` driver
    takes a DRM minor. ``pending_memory`` is an NPS mode requested through ROCm 7's
    ``amd-smi set -M`` that applies only after ``amd-smi reset -r``.
    """

    compute: str = "CPX"
    memory: str = "NPS4"
    gpus: int = 8
    partitions: int | None = None
    rocm: str = "6.4.1"
    busy: bool = False
    noperm: bool = False
    set_delay_s: float = 0.3
    pending_memory: str | None = None

    def __post_init__(self) -> None:
        if self.compute not in COMPUTE_MODES:
            raise LabError(f"compute={self.compute} — use one of {', '.join(COMPUTE_MODES)}")
        if self.memory not in MEMORY_MODES:
            raise LabError(f"memory={self.memory} — use one of {', '.join(MEMORY_MODES)}")
        if self.memory not in MEMORY_CAPS[self.compute]:
            raise LabError(
                f"compute={self.compute} with memory={self.memory} is refused by the driver "
                "(memory partitions may not outnumber compute partitions) — use memory=NPS1, "
                "or compute=CPX / compute=QPX with memory=NPS4"
            )
        if not 1 <= self.gpus <= MAX_GPUS:
            raise LabError(f"gpus={self.gpus} — use 1 to {MAX_GPUS} MI300X per host")
        if self.partitions is not None and not 1 <= self.partitions <= self.gpus * XCC_PER_GPU:
            raise LabError(
                f"partitions={self.partitions} — use 1 to {self.gpus * XCC_PER_GPU} or all"
            )
        if self.rocm not in ROCM_RELEASES:
            raise LabError(f"rocm={self.rocm} — use one of {', '.join(ROCM_RELEASES)}")
        if not 0 <= self.set_delay_s <= MAX_SET_DELAY_S:
            raise LabError(f"set_delay={self.set_delay_s} — use 0 to {MAX_SET_DELAY_S:g} seconds")
        if self.pending_memory is not None and self.pending_memory not in MEMORY_MODES:
            raise LabError(f"pending_memory={self.pending_memory} — use one of {MEMORY_MODES}")

    @property
    def per_gpu(self) -> int:
        """Logical GPUs per physical GPU in the current compute mode."""
        return PARTITIONS_PER_GPU[self.compute]

    @property
    def num_xcc(self) -> int:
        """XCDs (accelerator complexes) per logical GPU."""
        return XCC_PER_GPU // self.per_gpu

    @property
    def total_partitions(self) -> int:
        """Logical GPUs the driver would create: gpus x partitions per GPU."""
        return self.gpus * self.per_gpu

    @property
    def visible_partitions(self) -> int:
        """Logical GPUs actually visible (``partitions`` capped by the mode's total)."""
        if self.partitions is None:
            return self.total_partitions
        return min(self.partitions, self.total_partitions)

    @property
    def partition_bytes(self) -> int:
        """KFD memory bank size of one logical GPU."""
        return GPU_VRAM_BYTES // self.per_gpu

    @property
    def release(self) -> RocmRelease:
        """The simulated ROCm release."""
        return ROCM_RELEASES[self.rocm]

    @classmethod
    def load(cls, path: Path) -> GpuState:
        """Read a state saved by :meth:`save`."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(f"no GPU state at {path} — run `fleetbench lab up` first") from None
        except (OSError, ValueError) as exc:
            raise LabError(
                f"cannot read GPU state {path}: {exc} — run `fleetbench lab up`"
            ) from exc
        if not isinstance(data, dict):
            raise LabError(f"GPU state {path} is not a JSON object — run `fleetbench lab up`")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LabError(f"GPU state {path} has unknown keys {unknown} — run `fleetbench lab up`")
        try:
            return cls(**data)
        except TypeError as exc:
            raise LabError(f"GPU state {path} is malformed: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the state atomically (readers never see a half-written file)."""
        write_atomic(path, json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    def with_settings(self, settings: Mapping[str, str]) -> GpuState:
        """Return the state after ``fleetbench lab set HOST key=value...`` (keys: GPU_SETTING_KEYS).

        The combination is checked once all settings are applied, so ``compute=SPX
        memory=NPS1`` works from CPX/NPS4 in one call; combinations the driver refuses
        (SPX or DPX with NPS4) raise :class:`LabError`.
        """
        changes: dict[str, Any] = {}
        for key, value in settings.items():
            text = value.strip()
            if key == "compute":
                if text.upper() not in COMPUTE_MODES:
                    raise LabError(f"compute={value} — use one of {', '.join(COMPUTE_MODES)}")
                changes["compute"] = text.upper()
            elif key == "memory":
                if text.upper() not in MEMORY_MODES:
                    raise LabError(
                        f"memory={value} — use one of {', '.join(MEMORY_MODES)} "
                        "(NPS2/NPS8 are not offered on MI300X)"
                    )
                changes["memory"] = text.upper()
                changes["pending_memory"] = None
            elif key == "gpus":
                changes["gpus"] = _parse_int(key, text, 1, MAX_GPUS)
            elif key == "partitions":
                all_gpus = int(changes.get("gpus", self.gpus))
                changes["partitions"] = (
                    None
                    if text.lower() == "all"
                    else _parse_int(key, text, 1, all_gpus * XCC_PER_GPU)
                )
            elif key == "rocm":
                changes["rocm"] = normalize_rocm(text)
                changes["pending_memory"] = None
            elif key in ("busy", "noperm"):
                changes[key] = _parse_bool(key, text)
            elif key == "set_delay":
                try:
                    delay = float(text)
                except ValueError:
                    delay = -1.0
                if not 0 <= delay <= MAX_SET_DELAY_S:
                    raise LabError(
                        f"set_delay={value} — use a number of seconds from 0 to {MAX_SET_DELAY_S:g}"
                    )
                changes["set_delay_s"] = delay
            else:
                raise LabError(f"unknown GPU setting {key} — use: {', '.join(GPU_SETTING_KEYS)}")
        return dataclasses.replace(self, **changes)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def state_lock(host_dir: Path) -> Iterator[None]:
    """Hold the host's GPU lock: one state change at a time, across processes."""
    host_dir.mkdir(parents=True, exist_ok=True)
    with (host_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def derive(seed: str, *parts: object) -> int:
    """A stable pseudo-random 64-bit number for ``parts`` on the host named ``seed``."""
    text = "/".join([seed, *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def host_seed(host_dir: Path) -> str:
    """The seed of a host's identifiers: its directory name (``lab01``)."""
    return host_dir.resolve().name


@dataclass(frozen=True)
class PhysicalGpu:
    """One MI300X (one PCI device, one OAM slot)."""

    index: int
    bus: int
    unique_id: int
    uuid: str
    oam_id: int

    @property
    def bdf(self) -> str:
        """The PCI address of the device (function 0)."""
        return f"0000:{self.bus:02x}:00.0"

    @property
    def serial(self) -> str:
        """The board serial the FRU holds (sysfs ``serial_number``): digits, per host and GPU."""
        return f"{self.unique_id % 10**12:012d}"

    @property
    def socket(self) -> int:
        """The CPU socket (KFD CPU node) the GPU hangs off."""
        return 0 if self.index < GPUS_PER_SOCKET else 1


@dataclass(frozen=True)
class LogicalGpu:
    """One visible partition: what HIP, amd-smi and rocm-smi call a GPU."""

    index: int
    gpu: PhysicalGpu
    partition: int
    kfd_gpu_id: int
    hip_uuid: str

    @property
    def node(self) -> int:
        """KFD topology node id."""
        return FIRST_GPU_NODE + self.index

    @property
    def bdf(self) -> str:
        """The partition's BDF as amd-smi 6.3+ shows it (function = partition id)."""
        return f"0000:{self.gpu.bus:02x}:00.{self.partition}"

    @property
    def location_id(self) -> int:
        """KFD ``location_id``: PCI bus/device/function with function = partition."""
        return (self.gpu.bus << 8) | self.partition

    @property
    def render_minor(self) -> int:
        """DRM render minor (renderD128 + 8 per GPU + partition)."""
        return FIRST_RENDER_MINOR + DRM_NODES_PER_GPU * self.gpu.index + self.partition

    @property
    def card(self) -> int:
        """DRM card number; card0 is the BMC's VGA device (``ast``)."""
        return 1 + DRM_NODES_PER_GPU * self.gpu.index + self.partition

    @property
    def primary(self) -> bool:
        """Partition 0 is the PCI device itself; the others are amdgpu_xcp platform devices."""
        return self.partition == 0


def physical_gpus(state: GpuState, seed: str) -> tuple[PhysicalGpu, ...]:
    """The host's MI300X devices."""
    result: list[PhysicalGpu] = []
    for index in range(state.gpus):
        bits = derive(seed, "uuid", index)
        uuid_text = (
            f"{bits & 0xFF:02x}ff74a1-0000-1000-80{(bits >> 8) & 0xFF:02x}-"
            f"{(bits >> 16) & 0xFFFFFFFFFFFF:012x}"
        )
        result.append(
            PhysicalGpu(
                index=index,
                bus=PCI_BUSES[index],
                unique_id=derive(seed, "unique_id", index),
                uuid=uuid_text,
                oam_id=OAM_IDS[index],
            )
        )
    return tuple(result)


def logical_gpus(state: GpuState, seed: str) -> tuple[LogicalGpu, ...]:
    """The visible logical GPUs, partitions of one GPU contiguous (FORMATS §6)."""
    result: list[LogicalGpu] = []
    for gpu in physical_gpus(state, seed):
        for partition in range(state.per_gpu):
            index = len(result)
            if index >= state.visible_partitions:
                return tuple(result)
            result.append(
                LogicalGpu(
                    index=index,
                    gpu=gpu,
                    partition=partition,
                    kfd_gpu_id=1 + derive(seed, "gpu_id", gpu.index, partition) % 65534,
                    hip_uuid=f"GPU-{derive(seed, 'hip', gpu.index, partition):016x}",
                )
            )
    return tuple(result)


# --- rendering -------------------------------------------------------------------------


def _props(pairs: list[tuple[str, int]]) -> str:
    return "".join(f"{key} {value}\n" for key, value in pairs)


_CPU_ZERO_KEYS = (
    "simd_id_base",
    "max_waves_per_simd",
    "lds_size_in_kb",
    "gds_size_in_kb",
    "num_gws",
    "wave_front_size",
    "array_count",
    "simd_arrays_per_engine",
    "cu_per_simd_array",
    "simd_per_cu",
    "max_slots_scratch_cu",
    "gfx_target_version",
    "vendor_id",
    "device_id",
    "location_id",
    "domain",
    "drm_render_minor",
    "hive_id",
    "num_sdma_engines",
    "num_sdma_xgmi_engines",
    "num_sdma_queues_per_engine",
    "num_cp_queues",
)


def _cpu_node_properties(socket: int, gpu_nodes_here: int, gpu_nodes_other: int) -> str:
    # Layout and values from the real tree (tests/fixtures/kfd nodes 0 and 1); link counts follow
    # its rule: io links = own socket's GPU nodes + the other CPU, p2p = the other socket's.
    pairs = [
        ("cpu_cores_count", 96),
        ("simd_count", 0),
        ("mem_banks_count", 1),
        ("caches_count", 0),
        ("io_links_count", gpu_nodes_here + 1),
        ("p2p_links_count", gpu_nodes_other),
        ("cpu_core_id_base", 128 * socket),
    ]
    pairs += [(key, 0) for key in _CPU_ZERO_KEYS]
    pairs.append(("max_engine_clk_ccompute", 2750))
    return _props(pairs)


def _gpu_node_properties(state: GpuState, device: LogicalGpu, gpu_nodes: int, hive_id: int) -> str:
    # Key order and constants from the real CPX tree; per-XCC resources scale with num_xcc.
    xcc = state.num_xcc
    simd_id_base = SIMD_ID_BASE + SIMD_ID_STEP_PER_XCC * (
        XCC_PER_GPU * device.gpu.index + device.partition * xcc
    )
    return _props(
        [
            ("cpu_cores_count", 0),
            ("simd_count", 152 * xcc),
            ("mem_banks_count", 1),
            ("caches_count", 80 * xcc),
            ("io_links_count", gpu_nodes),
            ("p2p_links_count", 1),
            ("cpu_core_id_base", 0),
            ("simd_id_base", simd_id_base),
            ("max_waves_per_simd", 8),
            ("lds_size_in_kb", 64),
            ("gds_size_in_kb", 0),
            ("num_gws", 64),
            ("wave_front_size", 64),
            ("array_count", 4 * xcc),
            ("simd_arrays_per_engine", 1),
            ("cu_per_simd_array", 10),
            ("simd_per_cu", 4),
            ("max_slots_scratch_cu", 32),
            ("gfx_target_version", 90402),
            ("vendor_id", VENDOR_ID),
            ("device_id", DEVICE_ID),
            ("location_id", device.location_id),
            ("domain", 0),
            ("drm_render_minor", device.render_minor),
            ("hive_id", hive_id),
            ("num_sdma_engines", 2 * xcc),
            ("num_sdma_xgmi_engines", 0),
            ("num_sdma_queues_per_engine", 8),
            ("num_cp_queues", 24 * xcc),
            ("max_engine_clk_fcompute", 2100),
            ("local_mem_size", 0),
            ("fw_version", 177),
            ("capability", 2893521536),
            ("debug_prop", 1511),
            ("sdma_fw_version", 24),
            ("unique_id", device.gpu.unique_id),
            ("num_xcc", xcc),
            ("max_engine_clk_ccompute", 2750),
        ]
    )


def _write(path: Path, text: str, mode: int = 0o444) -> None:
    try:
        path.write_text(text)
    except FileNotFoundError:  # first file of its directory: mkdir only then (render speed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    path.chmod(mode)


def _link(path: Path, target: str) -> None:
    # Relative targets, so the tree stays valid wherever HOST_DIR/root lives.
    try:
        path.symlink_to(target)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)


def _render_kfd(sys_dir: Path, state: GpuState, devices: tuple[LogicalGpu, ...], seed: str) -> None:
    topology = sys_dir / "class" / "kfd" / "kfd" / "topology"
    _write(topology / "generation_id", "80\n")
    _write(
        topology / "system_properties",
        _props(
            [
                ("platform_oem", 4777524452235890003),
                ("platform_id", 85015745549651),
                ("platform_rev", 2),
            ]
        ),
    )
    nodes = topology / "nodes"
    per_socket = [sum(1 for d in devices if d.gpu.socket == s) for s in (0, 1)]
    for socket in (0, 1):
        node = nodes / str(socket)
        _write(
            node / "properties",
            _cpu_node_properties(socket, per_socket[socket], per_socket[1 - socket]),
        )
        _write(node / "gpu_id", "0\n")
        _write(
            node / "mem_banks" / "0" / "properties",
            _props(
                [
                    ("heap_type", 0),
                    ("size_in_bytes", 811273752576),
                    ("flags", 0),
                    ("width", 72),
                    ("mem_clk_max", 4800),
                ]
            ),
        )
    # Real KFD keeps one proc/<pid> folder per process that holds /dev/kfd open (always
    # present, empty when idle): a busy host shows its client there.
    proc = sys_dir / "class" / "kfd" / "kfd" / "proc"
    proc.mkdir(parents=True, exist_ok=True)
    if state.busy:
        client = proc / str(busy_pid(seed))
        _write(client / "pasid", f"{32768 + derive(seed, 'pasid') % 32768}\n")
        for device in devices:
            _write(client / f"vram_{device.kfd_gpu_id}", "0\n")
    hive_id = derive(seed, "hive_id")
    for device in devices:
        node = nodes / str(device.node)
        _write(node / "properties", _gpu_node_properties(state, device, len(devices), hive_id))
        _write(node / "gpu_id", f"{device.kfd_gpu_id}\n")
        _write(
            node / "mem_banks" / "0" / "properties",
            _props(
                [
                    ("heap_type", 1),
                    ("size_in_bytes", state.partition_bytes),
                    ("flags", 0),
                    ("width", 8192),
                    ("mem_clk_max", 1300),
                ]
            ),
        )


def _render_pci(sys_dir: Path, state: GpuState, devices: tuple[LogicalGpu, ...], seed: str) -> None:
    pci_root = sys_dir / "devices" / "pci0000:00"
    visible = {(d.gpu.index, d.partition): d for d in devices}
    for gpu in physical_gpus(state, seed):
        dev = pci_root / gpu.bdf
        # Exact kernel formats (FORMATS §4, H3): "%s\n" and names joined by ", ".
        _write(dev / "current_compute_partition", f"{state.compute}\n", 0o644)
        _write(dev / "available_compute_partition", ", ".join(COMPUTE_MODES) + "\n")
        _write(dev / "current_memory_partition", f"{state.memory}\n", 0o644)
        _write(dev / "available_memory_partition", ", ".join(MEMORY_MODES) + "\n")
        _write(dev / "vendor", f"0x{VENDOR_ID:04x}\n")
        _write(dev / "device", f"0x{DEVICE_ID:04x}\n")
        # The device's identity as amdgpu prints it: the FRU's board serial and product
        # name ("%s\n"), the unique id ("%016llx\n", the KFD node's unique_id in hex).
        _write(dev / "serial_number", f"{gpu.serial}\n")
        _write(dev / "unique_id", f"{gpu.unique_id:016x}\n")
        _write(dev / "product_name", f"{PRODUCT_NAME}\n")
        _link(dev / "driver", "../../../bus/pci/drivers/amdgpu")
        _link(
            sys_dir / "bus" / "pci" / "devices" / gpu.bdf, f"../../../devices/pci0000:00/{gpu.bdf}"
        )
        _link(
            sys_dir / "bus" / "pci" / "drivers" / "amdgpu" / gpu.bdf,
            f"../../../../devices/pci0000:00/{gpu.bdf}",
        )
        primary = visible.get((gpu.index, 0))
        if primary is not None:
            for name in (f"card{primary.card}", f"renderD{primary.render_minor}"):
                _link(dev / "drm" / name / "device", "../..")
                _link(
                    sys_dir / "class" / "drm" / name,
                    f"../../devices/pci0000:00/{gpu.bdf}/drm/{name}",
                )
    _link(
        sys_dir / "module" / "amdgpu" / "drivers" / "pci:amdgpu", "../../../bus/pci/drivers/amdgpu"
    )
    # The DKMS amdgpu module says its version here (the ROCm release's driver).
    _write(sys_dir / "module" / "amdgpu" / "version", f"{state.release.amdgpu}\n")
    # Secondary partitions are amdgpu_xcp platform devices (no partition files, FORMATS §4).
    for device in devices:
        if device.primary:
            continue
        xcp = f"amdgpu_xcp.{(DRM_NODES_PER_GPU - 1) * device.gpu.index + device.partition - 1}"
        platform = sys_dir / "devices" / "platform" / xcp
        for name in (f"card{device.card}", f"renderD{device.render_minor}"):
            _link(platform / "drm" / name / "device", "../..")
            _link(sys_dir / "class" / "drm" / name, f"../../devices/platform/{xcp}/drm/{name}")


def render_tree(host_dir: Path, state: GpuState) -> None:
    """(Re)write ``host_dir/root`` for ``state``: the sysfs partition files, DRM nodes, KFD
    topology and ROCm version.

    The sys tree is built beside the old one and swapped in, so a mode change leaves no stale
    nodes and readers never see a half-written tree. The simulated tools' answers are
    rendered with it by :func:`fleetbench.lab.smi.render_host`.
    """
    root = host_dir / "root"
    root.mkdir(parents=True, exist_ok=True)
    seed = host_seed(host_dir)
    devices = logical_gpus(state, seed)
    staging = Path(tempfile.mkdtemp(prefix=".sys-new-", dir=root))
    try:
        _render_pci(staging, state, devices, seed)
        _render_kfd(staging, state, devices, seed)
        _swap_in(staging, root / "sys")
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    staging = Path(tempfile.mkdtemp(prefix=".proc-new-", dir=root))
    try:
        _render_proc(staging, state, seed)
        _swap_in(staging, root / "proc")
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    staging = Path(tempfile.mkdtemp(prefix=".dev-new-", dir=root))
    try:
        _render_dev(staging, devices)
        _swap_in(staging, root / "dev")
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    release = state.release
    write_atomic(
        root / "opt" / "rocm" / ".info" / "version", f"{release.version}-{release.build}\n"
    )


@dataclass(frozen=True)
class SmiAnswer:
    """What a simulated tool printed for one query: stdout, stderr and exit code."""

    out: str
    err: str
    code: int


def answer_name(tool: str, argv: tuple[str, ...]) -> str:
    """The file stem of a query's answer: ``amd-smi.static_partition_json``."""
    return f"{tool}." + "_".join(arg.lstrip("-") for arg in argv)


def write_answers(host_dir: Path, answers: Mapping[str, SmiAnswer] | None) -> None:
    """Make ``answers`` (by :func:`answer_name`) what the bin/ wrappers print; None: none.

    Each call writes a new generation folder ``smi-answers/<hex>/`` and then names it in
    ``smi-answers/current`` (atomic rename); older generations are removed. A wrapper reads
    ``current`` once and opens all three files of its answer before printing, so it prints
    one whole answer of one generation, or (generation already removed) runs the simulator.
    """
    folder = host_dir / ANSWERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    current = folder / ANSWERS_CURRENT
    keep = ""
    if answers is None:
        current.unlink(missing_ok=True)
    else:
        keep = uuid.uuid4().hex
        generation = folder / keep
        generation.mkdir()
        for name, answer in answers.items():
            (generation / f"{name}.out").write_text(answer.out)
            (generation / f"{name}.err").write_text(answer.err)
            (generation / f"{name}.rc").write_text(f"{answer.code}\n")
        write_atomic(current, keep + "\n")
    for old in folder.iterdir():
        if old.is_dir() and old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def busy_pid(seed: str) -> int:
    """The pid of the simulated GPU client of the host named ``seed`` (stable per host)."""
    return 10000 + derive(seed, "busy_pid") % 50000


def _render_proc(proc_dir: Path, state: GpuState, seed: str) -> None:
    # /proc of the host, as far as a GPU-user listing reads it: comm and cmdline of the client.
    if not state.busy:
        return
    client = proc_dir / str(busy_pid(seed))
    _write(client / "comm", BUSY_PROCESS_COMM + "\n")
    _write(client / "cmdline", "\0".join(BUSY_PROCESS_ARGV) + "\0")


# The lab's device nodes are copies of /dev/null: Docker passes only device nodes to a
# container (--device), and these reach no hardware whatever opens them.
_NULL_DEVICE = os.makedev(1, 3)


def _render_dev(dev_dir: Path, devices: tuple[LogicalGpu, ...]) -> None:
    """``kfd`` and a ``dri/renderD<minor>`` per visible partition, as the host's /dev has
    them. Making device nodes needs root (CAP_MKNOD); without it the folder stays empty
    and only render-nodes isolation cannot be tried on this lab."""
    (dev_dir / "dri").mkdir(parents=True, exist_ok=True)
    names = ["kfd", *(f"dri/renderD{device.render_minor}" for device in devices)]
    for name in names:
        try:
            os.mknod(dev_dir / name, stat.S_IFCHR | 0o666, _NULL_DEVICE)
        except PermissionError:
            return
        (dev_dir / name).chmod(0o666)  # past the umask: the lab user's containers open it


def _swap_in(staging: Path, target: Path) -> None:
    for _ in range(10):
        old = target.with_name(f".sys-old-{uuid.uuid4().hex}")
        with contextlib.suppress(FileNotFoundError):
            target.rename(old)
        try:
            staging.rename(target)
        except OSError:
            continue  # another render put a tree there in between: move it aside again
        finally:
            if old.exists():
                shutil.rmtree(old)
        return
    raise LabError(f"cannot replace {target} — another process keeps rewriting it")
