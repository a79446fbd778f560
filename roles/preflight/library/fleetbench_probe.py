#!/usr/bin/python
"""Gather everything fleetbench needs to judge a GPU host, in one remote call.

Runs on the target with the standard library only: nothing of fleetbench is installed
there. It reads files and runs read-only commands. The raw text is returned as is and
judged on the controller (see the action plugin of the same name), so parsing lives in
tested Python, not here.

The one change it makes is the run lock, and only when ``lock_run_id`` is given
(``fleetbench run``): taken first, in the same call, so a host in use by another run is
reported before anything else happens and costs no round trip of its own. Without a run
(``fleetbench check``) it only says who holds the lock.
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
options:
  sysfs_root: {type: str, default: /, description: Root of the sysfs tree.}
  rocm_path: {type: str, default: /opt/rocm, description: ROCm installation folder.}
  disk_path: {type: str, default: /var/lib/docker, description: Folder whose free space counts.}
  command_timeout: {type: int, default: 60, description: Seconds any one command may take.}
  lock_path: {type: str, description: The host's run lock folder.}
  lock_run_id: {type: str, description: Take the lock for this run before probing.}
  lock_stale_hours: {type: float, default: 48, description: Take over locks older than this.}
author: fleetbench
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleetbench_host import kfd_processes, partition_raw, run, versions
from ansible.module_utils.fleetbench_run import held_by, take_lock


def free_disk(path):
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe.rstrip("/")) or "/"
    stat = os.statvfs(probe)
    return {"path": path, "measured_at": probe,
            "free_bytes": stat.f_bavail * stat.f_frsize,
            "total_bytes": stat.f_blocks * stat.f_frsize}


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "str", "default": "/"},
            "rocm_path": {"type": "str", "default": "/opt/rocm"},
            "disk_path": {"type": "str", "default": "/var/lib/docker"},
            "command_timeout": {"type": "int", "default": 60},
            "lock_path": {"type": "str"},
            "lock_run_id": {"type": "str"},
            "lock_stale_hours": {"type": "float", "default": 48},
        },
        required_by={"lock_run_id": "lock_path"},
        supports_check_mode=True,
    )
    params = module.params
    lock = None
    if params["lock_run_id"] and not module.check_mode:
        taken, owner, message = take_lock(params["lock_path"], params["lock_run_id"],
                                          params["lock_stale_hours"])
        if not taken:
            module.fail_json(msg=message, locked=True, lock={"taken": False, "owner": owner})
        lock = {"taken": True, "owner": owner}
    elif params["lock_path"]:
        lock = {"taken": False, "owner": held_by(params["lock_path"])}
    timeout = params["command_timeout"]
    root = params["sysfs_root"]
    processes = kfd_processes(root)
    rocm_version, driver_version = versions(root, params["rocm_path"])
    docker = run(["docker", "version", "--format", "{{json .Server}}"], timeout)
    server = None
    if docker["rc"] == 0:
        try:
            server = json.loads(docker["stdout"])
        except ValueError:
            server = None
    module.exit_json(
        changed=False,
        hostname=os.uname()[1],
        kernel=os.uname()[2],
        # Before the SMI tools run: they hold the GPUs themselves for a moment.
        gpu_processes=processes,
        raw=partition_raw(root, timeout),
        rocm_version=rocm_version,
        driver_version=driver_version,
        docker={
            "rc": docker["rc"],
            "server_version": (server or {}).get("Version"),
            "error": docker["stderr"].strip()[-500:] if docker["rc"] != 0 else None,
        },
        disk=free_disk(params["disk_path"]),
        lock=lock,
    )


if __name__ == "__main__":
    main()
