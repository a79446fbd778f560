"""Which GPU device nodes a slot container gets, and the ``HIP_VISIBLE_DEVICES`` it sees.

``all`` (the default, the deployment guide's way): every container gets ``/dev/kfd`` and
all of ``/dev/dri``; ``HIP_VISIBLE_DEVICES`` (host numbering) selects the slot's GPUs.

``render-nodes`` (madengine's way): a container gets ``/dev/kfd`` and only the DRM render
nodes of its slot's GPUs, ``/dev/dri/renderD<drm_render_minor>`` of their KFD topology
nodes. The HIP runtime enumerates the GPUs whose render node it can open, in KFD node
order, so inside the container the slot's GPUs are ``0 … n-1``: ``HIP_VISIBLE_DEVICES`` is
renumbered to that. A slot then cannot reach another slot's GPU even when its
``HIP_VISIBLE_DEVICES`` is wrong or ignored.

HIP index *i* on the host is the *i*-th GPU node of the KFD topology (fleetbench.gpus).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal, get_args

from fleetbench.gpus import parse_visible_devices
from fleetbench.partition.kfd import KfdTopology, topology_from_raw

Isolation = Literal["all", "render-nodes"]
#: The isolation modes a host may be given (``fleetbench_gpu_isolation``).
ISOLATIONS: tuple[Isolation, ...] = get_args(Isolation)

KFD = "/dev/kfd"
DRI = "/dev/dri"


class IsolationError(ValueError):
    """The slot's GPUs cannot be isolated from what the host's KFD topology says."""


@dataclass(frozen=True)
class SlotDevices:
    """What one slot container is given: Docker device specs (``host:container``) and the
    ``HIP_VISIBLE_DEVICES`` it runs with."""

    devices: tuple[str, ...]
    hip_visible_devices: str

    def to_dict(self) -> dict[str, Any]:
        """As the benchmark role takes it."""
        return {"devices": list(self.devices), "hip_visible_devices": self.hip_visible_devices}


def render_minors(topology: KfdTopology) -> list[int]:
    """The DRM render minor of every GPU node, in HIP order (host numbering).

    IsolationError when a GPU node does not name its render node (a kernel too old for
    ``drm_render_minor``, or a partition without a DRM minor).
    """
    minors: list[int] = []
    for index, node in enumerate(topology.gpu_nodes):
        minor = node.properties.get("drm_render_minor")
        if minor is None or minor < 0:
            raise IsolationError(
                f"KFD node {node.node_id} (GPU {index}) names no drm_render_minor, so its "
                "render node is unknown — use fleetbench_gpu_isolation: all")
        minors.append(minor)
    return minors


def _is_gpu_device(spec: str) -> bool:
    path = PurePosixPath(spec.split(":", 1)[0])
    return path == PurePosixPath(KFD) or path == PurePosixPath(DRI) or (
        PurePosixPath(DRI) in path.parents)


def slot_devices(isolation: str, hip_visible_devices: str, kfd_nodes: Sequence[Mapping[str, Any]],
                 devices: Iterable[str] = (KFD, DRI), device_root: str = "/") -> SlotDevices:
    """The devices and ``HIP_VISIBLE_DEVICES`` of a slot whose GPUs are
    ``hip_visible_devices`` (host numbering, e.g. ``8,9,…,15``).

    ``kfd_nodes`` is the preflight probe's reading of the KFD topology; ``devices`` the
    host's device list (``fleetbench_container_devices``): ``all`` passes it as it is,
    ``render-nodes`` keeps only what is not a GPU node (e.g. ``/dev/infiniband``) and adds
    ``/dev/kfd`` and the slot's render nodes. ``device_root`` is where the host's ``/dev``
    is found (``/``; the lab's hosts keep stand-ins under their own root), the container
    sees them at their usual paths. IsolationError for an unknown mode or a GPU the
    topology lacks.
    """
    if isolation == "all":
        return SlotDevices(tuple(devices), str(hip_visible_devices))
    if isolation != "render-nodes":
        raise IsolationError(f"GPU isolation {isolation!r} is not one of {', '.join(ISOLATIONS)}")
    minors = render_minors(topology_from_raw(kfd_nodes))
    wanted = parse_visible_devices(hip_visible_devices)
    if not wanted:
        raise IsolationError(f"the slot's HIP_VISIBLE_DEVICES {hip_visible_devices!r} names no "
                             "GPU to pass")
    missing = [index for index in wanted if index >= len(minors)]
    if missing:
        raise IsolationError(
            f"GPU {missing[0]} of HIP_VISIBLE_DEVICES {hip_visible_devices} is not in the "
            f"host's KFD topology ({len(minors)} GPUs)")
    # In the container the HIP runtime numbers the slot's GPUs in KFD node order.
    inside = {index: rank for rank, index in enumerate(sorted(set(wanted)))}
    root = PurePosixPath(device_root)
    nodes = [f"{root / KFD.lstrip('/')}:{KFD}"] + [
        f"{root / DRI.lstrip('/') / f'renderD{minors[i]}'}:{DRI}/renderD{minors[i]}"
        for i in sorted(set(wanted))]
    others = [spec for spec in devices if not _is_gpu_device(spec)]
    return SlotDevices(tuple(nodes + others), ",".join(str(inside[i]) for i in wanted))
