"""Read-only host reading shared by fleetbench's probe modules (runs on the target).

Standard library only: nothing of fleetbench is installed on targets. Raw text is
returned as is; the controller parses and judges it in tested Python.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

SYSFS_FILES = (
    "current_compute_partition",
    "available_compute_partition",
    "current_memory_partition",
    "available_memory_partition",
)
SMI_COMMANDS = (
    ("amd-smi", ["static", "--partition", "--json"]),
    ("rocm-smi", ["--showcomputepartition", "--showmemorypartition", "--json"]),
)
# The amdgpu PCI device's identity (board serial from the FRU, unique id, product name),
# which fleetbench records per slot so a slow slot names the GPU to drain.
IDENTITY_FILES = ("serial_number", "unique_id", "product_name")
MAX_FILE_BYTES = 65536


def read_text(path):
    """The start of a text file, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(MAX_FILE_BYTES)
    except OSError:
        return None


def under(root, *parts):
    """``parts`` below ``root`` (the sysfs root is "/" on real hosts)."""
    return os.path.join(root, *[p.lstrip("/") for p in parts])


def sysfs_devices(root):
    """Partition files of every amdgpu PCI device, each device once."""
    seen = {}
    patterns = (
        under(root, "sys/bus/pci/devices/*/current_compute_partition"),
        under(root, "sys/module/amdgpu/drivers/pci:amdgpu/*/current_compute_partition"),
        under(root, "sys/class/drm/card*/device/current_compute_partition"),
    )
    for pattern in patterns:
        for path in glob.glob(pattern):
            device = os.path.dirname(path)
            real = os.path.realpath(device)
            if real in seen:
                continue
            files = {}
            for name in SYSFS_FILES + IDENTITY_FILES:
                text = read_text(os.path.join(device, name))
                if text is not None:
                    files[name] = text
            seen[real] = {"path": real[len(root.rstrip("/")):] if root != "/" else real,
                          "files": files}
    return [seen[key] for key in sorted(seen)]


def kfd_nodes(root):
    """Every KFD topology node's properties and memory banks."""
    nodes = []
    base = under(root, "sys/class/kfd/kfd/topology/nodes")
    for node_dir in glob.glob(os.path.join(base, "*")):
        name = os.path.basename(node_dir)
        if not name.isdigit():
            continue
        banks = []
        for bank in sorted(glob.glob(os.path.join(node_dir, "mem_banks", "*", "properties"))):
            text = read_text(bank)
            if text is not None:
                banks.append(text)
        nodes.append({
            "id": int(name),
            "properties": read_text(os.path.join(node_dir, "properties")) or "",
            "mem_banks": banks,
        })
    return sorted(nodes, key=lambda node: node["id"])


def kfd_processes(root):
    """Processes using the GPUs: KFD keeps proc/<pid> for each one holding /dev/kfd."""
    found = []
    for entry in glob.glob(under(root, "sys/class/kfd/kfd/proc/*")):
        pid = os.path.basename(entry)
        if not pid.isdigit():
            continue
        found.append({
            "pid": int(pid),
            "comm": read_text(under(root, "proc", pid, "comm")),
            "cmdline": read_text(under(root, "proc", pid, "cmdline")),
        })
    return sorted(found, key=lambda process: process["pid"])


def run(argv, timeout):
    """Run a read-only command; rc 127 when missing, 124 on timeout."""
    binary = shutil.which(argv[0])
    if binary is None:
        return {"rc": 127, "stdout": "", "stderr": argv[0] + ": command not found"}
    try:
        done = subprocess.run([binary, *argv[1:]], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"rc": 124, "stdout": "", "stderr": f"timed out after {timeout}s"}
    except OSError as exc:
        return {"rc": 126, "stdout": "", "stderr": str(exc)}
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def partition_raw(root, timeout):
    """sysfs, KFD and amd-smi/rocm-smi JSON: the input of fleetbench's partition verdict."""
    smi = []
    for tool, args in SMI_COMMANDS:
        outcome = run([tool, *args], timeout)
        outcome.update({"tool": tool, "args": args})
        smi.append(outcome)
    return {"sysfs_devices": sysfs_devices(root), "kfd_nodes": kfd_nodes(root), "smi": smi}


def versions(root, rocm_path):
    """ROCm release (from .info/version) and amdgpu driver version, None when unknown."""
    rocm = (read_text(os.path.join(rocm_path, ".info", "version")) or "").strip()
    driver = (read_text(under(root, "sys/module/amdgpu/version")) or "").strip()
    return rocm or None, driver or None
