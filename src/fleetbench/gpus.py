"""Which physical GPU (serial, PCI address, unique id) and partition each logical GPU is.

From what the preflight probe read on the host, in one call:

- the KFD topology (``/sys/class/kfd/kfd/topology/nodes/N/properties``): one node per
  logical GPU, in the order HIP numbers them — ROCr enumerates GPU agents in KFD node
  order, so ``HIP_VISIBLE_DEVICES`` index *i* is the *i*-th GPU node (``amd-smi list -e``
  shows the same: ``hip_id`` = ``node_id`` minus the CPU nodes, FORMATS.md §6); each node's
  ``unique_id`` names its physical GPU and ``location_id`` its PCI bus/device and, in the
  function bits, the partition index;
- the amdgpu PCI device of each physical GPU (``/sys/bus/pci/devices/<bdf>``): its
  ``serial_number`` (the board serial from the FRU, what ``amd-smi static --board`` and
  ``rocm-smi --showserial`` print), ``unique_id`` and ``product_name``.

:func:`slot_gpus` is what ``fleetbench run`` records per slot in the manifest
(``hosts.<h>.slots.<slot>.gpus``); :func:`logical_gpus` what preflight keeps of the host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from fleetbench.partition.kfd import topology_from_raw
from fleetbench.roofline import gpu_model_of

#: Files of the amdgpu PCI device the probe reads besides the partition files.
IDENTITY_FILES = ("serial_number", "unique_id", "product_name")


def _devices_by_address(raw: Mapping[str, Any]) -> dict[str, Mapping[str, str]]:
    """The probe's sysfs devices keyed by PCI address (the device folder's name)."""
    found: dict[str, Mapping[str, str]] = {}
    for device in raw.get("sysfs_devices") or ():
        if not isinstance(device, Mapping):
            continue
        address = PurePosixPath(str(device.get("path") or "")).name.lower()
        files = device.get("files")
        if address and isinstance(files, Mapping):
            found[address] = {str(k): str(v).strip() for k, v in files.items()}
    return found


def logical_gpus(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every logical GPU of the host in HIP order: ``index``, KFD ``node``, the physical
    GPU's ``bdf``, ``serial``, ``unique_id`` and ``partition`` (index on its GPU)."""
    topology = topology_from_raw(raw.get("kfd_nodes") or ())
    devices = _devices_by_address(raw)
    result: list[dict[str, Any]] = []
    for index, node in enumerate(topology.gpu_nodes):
        address = node.physical_address
        files = devices.get(address, {})
        unique = node.properties.get("unique_id") or 0
        result.append({
            "index": index,
            "node": node.node_id,
            "bdf": address,
            "serial": files.get("serial_number") or None,
            "unique_id": f"{unique:016x}" if unique else (files.get("unique_id") or None),
            "partition": node.location_id & 0x7,
        })
    return result


def gpu_model(raw: Mapping[str, Any]) -> str | None:
    """The GPU model of the host (``MI300X``, ``MI325X``) from the KFD ``device_id`` or the
    PCI device's ``product_name``; None when unknown or when the GPUs differ."""
    topology = topology_from_raw(raw.get("kfd_nodes") or ())
    names = {gpu_model_of(node.properties.get("device_id")) for node in topology.gpu_nodes}
    if None in names or not names:
        names.discard(None)
        names |= {gpu_model_of(None, files.get("product_name"))
                  for files in _devices_by_address(raw).values()}
        names.discard(None)
    return names.pop() if len(names) == 1 else None


def parse_visible_devices(value: str | None) -> list[int] | None:
    """``HIP_VISIBLE_DEVICES`` as indices (``0-3`` ranges too), None when unset or unreadable."""
    if value is None or not str(value).strip():
        return None
    indices: list[int] = []
    for item in str(value).split(","):
        low, _, high = item.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        indices.extend(range(int(low), int(high or low) + 1))
    return indices


def slot_gpus(preflight: Mapping[str, Any] | None,
              hip_visible_devices: str | None) -> list[dict[str, Any]]:
    """The physical GPUs and partitions a slot used: ``{serial, bdf, unique_id, partition}``
    per visible device, in ``HIP_VISIBLE_DEVICES`` order (every GPU when it is unset).

    Empty when preflight has no GPU list (an older run, a host not probed); an index the
    host does not have is left out.
    """
    gpus: Sequence[Mapping[str, Any]] = (preflight or {}).get("gpus") or ()
    by_index = {gpu.get("index"): gpu for gpu in gpus if isinstance(gpu, Mapping)}
    wanted = parse_visible_devices(hip_visible_devices)
    order = list(by_index) if wanted is None else wanted
    return [{"serial": by_index[i].get("serial"), "bdf": by_index[i].get("bdf"),
             "unique_id": by_index[i].get("unique_id"), "partition": by_index[i].get("partition")}
            for i in order if i in by_index]
