#!/usr/bin/python
"""Read a GPU host's partition state and who uses its GPUs, in one remote call.

The work is :func:`partition_probe` in module_utils/fleetbench_probe.py (standard
library only; it reads files and runs read-only commands, it never changes the host). The
action plugin of the same name normally pipes it straight to the host's Python and judges
the raw text with fleetbench; this module is the same probe for connections that cannot
take a script on stdin, and for ad hoc use.

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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleetbench_probe import partition_probe


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
    module.exit_json(**partition_probe(module.params))


if __name__ == "__main__":
    main()
