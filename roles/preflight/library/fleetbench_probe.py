#!/usr/bin/python
"""Gather everything fleetbench needs to judge a GPU host, in one remote call.

The work is :func:`probe` in module_utils/fleetbench_probe.py. The preflight action
plugin normally pipes that straight to the host's Python; this module is the same probe
for connections that cannot take a script on stdin, and for ad hoc use
(``ansible -m fleetbench_probe``).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_probe
short_description: Read-only probe of a GPU host (Docker, ROCm, disk, partitions)
description:
  - Reads sysfs partition files of every amdgpu PCI device, the KFD topology, the ROCm
    version file, free disk space, and runs C(docker version), C(amd-smi) and C(rocm-smi)
    in their JSON forms. Returns the raw outputs.
  - With I(lock_run_id) it first takes the host's run lock (the only change it makes).
options:
  sysfs_root: {type: str, default: /, description: Root of the sysfs tree.}
  rocm_path: {type: str, default: /opt/rocm, description: ROCm installation folder.}
  disk_path:
    type: str
    default: ""
    description: Docker's data root, whose free space counts; empty asks the engine.
  model_cache: {type: str, description: The host's Hugging Face cache (its free space counts).}
  image: {type: str, description: Image reference; its id and digests on the host are returned.}
  model: {type: str, description: Hugging Face id; the bytes of it already cached are returned.}
  command_timeout: {type: int, default: 60, description: Seconds any one command may take.}
  lock_path: {type: str, description: The host's run lock folder.}
  lock_run_id: {type: str, description: Take the lock for this run before probing.}
  lock_controller:
    type: dict
    description: The controller taking the lock (host, pid, boot_id), written into the lock.
author: fleetbench
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleetbench_probe import probe


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "str", "default": "/"},
            "rocm_path": {"type": "str", "default": "/opt/rocm"},
            "disk_path": {"type": "str", "default": ""},
            "model_cache": {"type": "str"},
            "image": {"type": "str"},
            "model": {"type": "str"},
            "command_timeout": {"type": "int", "default": 60},
            "lock_path": {"type": "str"},
            "lock_run_id": {"type": "str"},
            "lock_controller": {"type": "dict"},
        },
        required_by={"lock_run_id": "lock_path"},
        supports_check_mode=True,
    )
    result = probe(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
