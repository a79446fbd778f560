"""The probes of one GPU host: everything fleetbench judges, read in one call.

:func:`probe` is the preflight probe (check, run); :func:`partition_probe` the partition
roles' (show, apply, verify).

Standard library only, like the other module_utils: it runs on the target, either inside
the ``fleetbench_probe`` module or piped straight to the host's Python by the preflight
action plugin (no AnsiballZ, no AnsibleModule: a third of the probe's cost on the host).
It reads files and runs read-only commands; the raw text is returned as is and judged on
the controller, so parsing lives in tested Python, not here.

The one change it makes is the run lock, and only when ``lock_run_id`` is given
(``fleetbench run``, with ``lock_controller``: the controller's host name, fleetbench's pid
and boot id, written into the lock): taken first, so a host in use by another run is
reported before anything else happens. Without a run (``fleetbench check``) it only says
who holds it.
"""

from __future__ import annotations

import json
import os
import shutil

from ansible.module_utils.fleetbench_host import kfd_processes, partition_raw, run, versions
from ansible.module_utils.fleetbench_run import held_by, take_lock

DEFAULTS = {
    "sysfs_root": "/",
    "rocm_path": "/opt/rocm",
    "disk_path": "/var/lib/docker",
    "command_timeout": 60,
    "lock_path": None,
    "lock_run_id": None,
    "lock_controller": None,
}


def free_disk(path):
    """Free and total bytes of the file system holding ``path`` (or its nearest parent)."""
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe.rstrip("/")) or "/"
    stat = os.statvfs(probe)
    return {"path": path, "measured_at": probe,
            "free_bytes": stat.f_bavail * stat.f_frsize,
            "total_bytes": stat.f_blocks * stat.f_frsize}


def probe(params):
    """The probe's result for ``params`` (see DEFAULTS); ``failed`` set when the lock is held."""
    params = dict(DEFAULTS, **{k: v for k, v in params.items() if v is not None})
    timeout = int(params["command_timeout"])
    root = params["sysfs_root"]
    lock = None
    if params["lock_run_id"]:
        taken, owner, message = take_lock(params["lock_path"], params["lock_run_id"],
                                          params["lock_controller"])
        if not taken:
            return {"failed": True, "msg": message, "locked": True,
                    "lock": {"taken": False, "owner": owner}}
        lock = {"taken": True, "owner": owner}
    elif params["lock_path"]:
        lock = {"taken": False, "owner": held_by(params["lock_path"])}
    processes = kfd_processes(root)
    rocm_version, driver_version = versions(root, params["rocm_path"])
    docker = run(["docker", "version", "--format", "{{json .Server}}"], timeout)
    server = None
    if docker["rc"] == 0:
        try:
            server = json.loads(docker["stdout"])
        except ValueError:
            server = None
    return {
        "changed": False,
        "hostname": os.uname()[1],
        "kernel": os.uname()[2],
        # Before the SMI tools run: they hold the GPUs themselves for a moment.
        "gpu_processes": processes,
        "raw": partition_raw(root, timeout),
        "rocm_version": rocm_version,
        "driver_version": driver_version,
        "docker": {
            "rc": docker["rc"],
            "server_version": (server or {}).get("Version"),
            "error": docker["stderr"].strip()[-500:] if docker["rc"] != 0 else None,
        },
        "disk": free_disk(params["disk_path"]),
        "lock": lock,
    }


PARTITION_DEFAULTS = {
    "sysfs_root": "/",
    "rocm_path": "/opt/rocm",
    "container_filters": [],
    "command_timeout": 60,
}


def find_tool(name, rocm_path):
    """Absolute path of an SMI tool: the set commands may run under sudo, whose secure_path
    lacks ROCm."""
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    candidate = os.path.join(rocm_path, "bin", name)
    return candidate if os.access(candidate, os.X_OK) else None


def partition_probe(params):
    """The partition state, the GPU users (KFD processes, ``docker ps``) and the SMI tools."""
    params = dict(PARTITION_DEFAULTS, **{k: v for k, v in params.items() if v is not None})
    timeout = int(params["command_timeout"])
    root = params["sysfs_root"]
    # GPU users first: the SMI tools below open the GPUs themselves for a moment.
    processes = kfd_processes(root)
    docker_argv = ["docker", "ps", "--no-trunc", "--format", "{{json .}}"]
    for value in params["container_filters"]:
        docker_argv += ["--filter", value]
    docker_ps = run(docker_argv, timeout)
    rocm_version, driver_version = versions(root, params["rocm_path"])
    return {
        "changed": False,
        "hostname": os.uname()[1],
        "raw": partition_raw(root, timeout),
        "kfd_processes": processes,
        "docker_ps": docker_ps,
        "tools": {tool: find_tool(tool, params["rocm_path"]) for tool in ("amd-smi", "rocm-smi")},
        "rocm_version": rocm_version,
        "driver_version": driver_version,
    }
