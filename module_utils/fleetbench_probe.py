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
    "disk_path": "",
    "model_cache": None,
    "image": None,
    "model": None,
    "command_timeout": 60,
    "lock_path": None,
    "lock_run_id": None,
    "lock_controller": None,
}


def free_disk(path):
    """Free and total bytes of the file system holding ``path`` (or its nearest parent);
    ``device`` tells whether two paths share one file system."""
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe.rstrip("/")) or "/"
    stat = os.statvfs(probe)
    return {"path": path, "measured_at": probe,
            "free_bytes": stat.f_bavail * stat.f_frsize,
            "total_bytes": stat.f_blocks * stat.f_frsize,
            "device": os.stat(probe).st_dev}


def docker_root(timeout):
    """Docker's data root as the engine reports it (None when it does not answer)."""
    info = run(["docker", "info", "--format", "{{.DockerRootDir}}"], timeout)
    root = info["stdout"].strip() if info["rc"] == 0 else ""
    return root or None


def local_image(ref, timeout):
    """Id and registry digests of ``ref`` in the host's engine (None when it lacks it)."""
    found = run(["docker", "image", "inspect", "--format",
                 "{{json .Id}}\t{{json .RepoDigests}}", ref], timeout)
    if found["rc"] != 0:
        return None
    try:
        image_id, digests = found["stdout"].strip().split("\t", 1)
        return {"id": json.loads(image_id), "repo_digests": json.loads(digests) or []}
    except ValueError:
        return None


def cached_model_bytes(cache, model):
    """Bytes of ``model``'s blobs already in the Hugging Face cache under ``cache``."""
    blobs = os.path.join(cache, "hub", "models--" + model.replace("/", "--"), "blobs")
    total = 0
    try:
        names = os.listdir(blobs)
    except OSError:
        return 0
    for name in names:
        try:
            total += os.lstat(os.path.join(blobs, name)).st_size
        except OSError:
            continue
    return total


def disk_probe(params, timeout):
    """Free space where the image and the model go, and what of them the host already has.

    ``disk_path`` empty: Docker's data root as the engine reports it."""
    path = params["disk_path"] or docker_root(timeout) or "/var/lib/docker"
    disk = free_disk(path)
    if params["model_cache"]:
        disk["model_cache"] = free_disk(params["model_cache"])
        if params["model"]:
            disk["model_cache"]["cached_bytes"] = cached_model_bytes(params["model_cache"],
                                                                     params["model"])
    if params["image"]:
        disk["image"] = local_image(params["image"], timeout)
    return disk


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
        "disk": disk_probe(params, timeout),
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
