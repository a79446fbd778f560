#!/usr/bin/python
"""Read a GPU host's partition state and who uses its GPUs, in one remote call.

Runs on the target with the standard library only. It reads files and runs read-only
commands; it never changes the host. Raw text goes back to the controller, where the
action plugin of the same name judges it with fleetbench (parsing lives in tested Python).

The sysfs/KFD/amd-smi/rocm-smi part is the same ``raw`` data as the preflight role's
``fleetbench_probe`` (shared code in module_utils/fleetbench_host.py), plus the GPU users: the KFD
``proc/<pid>`` entries (one per process holding /dev/kfd open) and ``docker ps``.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_partition_probe
short_description: Read-only probe of a GPU host's partitions and GPU users
description:
  - Reads the sysfs partition files of every amdgpu PCI device, the KFD topology, the KFD
    process list (with each process's comm and cmdline), the ROCm and amdgpu versions,
    runs C(docker ps) and C(amd-smi)/C(rocm-smi) in their JSON forms, and says where
    amd-smi and rocm-smi are installed. Returns the raw outputs.
options:
  sysfs_root: {type: str, default: /, description: Root of the sys and proc trees.}
  rocm_path: {type: str, default: /opt/rocm, description: ROCm installation folder.}
  container_filters:
    {type: list, elements: str, default: [], description: docker ps --filter values.}
  command_timeout: {type: int, default: 60, description: Seconds any one command may take.}
author: fleetbench
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleetbench_host import kfd_processes, partition_raw, run, versions


def find_tool(name, rocm_path):
    # An absolute path: the set commands may run under sudo, whose secure_path lacks ROCm.
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    candidate = os.path.join(rocm_path, "bin", name)
    return candidate if os.access(candidate, os.X_OK) else None


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "str", "default": "/"},
            "rocm_path": {"type": "str", "default": "/opt/rocm"},
            "container_filters": {"type": "list", "elements": "str", "default": []},
            "command_timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    params = module.params
    timeout = params["command_timeout"]
    root = params["sysfs_root"]
    # GPU users first: the SMI tools below open the GPUs themselves for a moment.
    processes = kfd_processes(root)
    docker_argv = ["docker", "ps", "--no-trunc", "--format", "{{json .}}"]
    for value in params["container_filters"]:
        docker_argv += ["--filter", value]
    docker_ps = run(docker_argv, timeout)
    rocm_version, driver_version = versions(root, params["rocm_path"])
    module.exit_json(
        changed=False,
        hostname=os.uname()[1],
        raw=partition_raw(root, timeout),
        kfd_processes=processes,
        docker_ps=docker_ps,
        tools={tool: find_tool(tool, params["rocm_path"]) for tool in ("amd-smi", "rocm-smi")},
        rocm_version=rocm_version,
        driver_version=driver_version,
    )


if __name__ == "__main__":
    main()
