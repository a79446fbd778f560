#!/usr/bin/python
"""Remove every container of a run (by label), then its token file and lock."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_cleanup
short_description: Remove a fleetbench run's containers, token and lock from a host
options:
  run_id: {type: str, required: true, description: The run to clean up after.}
  host: {type: str, required: true, description: Inventory name the containers are labelled with.}
  lock: {type: str, required: true, description: The host's lock folder.}
author: fleetbench
"""

import json
import os
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule


def remove_containers(run_id, host):
    """Remove this host's containers of the run; returns (removed, error or None)."""
    listing = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=fleetbench.run=" + run_id,
         "--filter", "label=fleetbench.host=" + host],
        capture_output=True, text=True, timeout=120, check=False)
    if listing.returncode != 0:
        return [], "cannot list containers: " + listing.stderr.strip()
    containers = listing.stdout.split()
    errors = []
    for container in containers:
        removed = subprocess.run(["docker", "rm", "-f", container], capture_output=True,
                                 text=True, timeout=300, check=False)
        # Already gone is what we wanted.
        if removed.returncode != 0 and "No such container" not in removed.stderr:
            errors.append(removed.stderr.strip())
    return containers, "; ".join(errors) or None


def release_lock(lock, run_id):
    """Remove the lock folder (and the token file inside) when this run holds it."""
    try:
        with open(os.path.join(lock, "owner.json"), encoding="utf-8") as handle:
            owner = json.load(handle).get("run_id")
    except (OSError, ValueError):
        owner = None
    if owner != run_id:
        return False
    shutil.rmtree(lock, ignore_errors=True)
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "run_id": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
            "lock": {"type": "str", "required": True},
        },
    )
    run_id = module.params["run_id"]
    containers, error = remove_containers(run_id, module.params["host"])
    # The token and lock go even when a container could not be removed.
    released = release_lock(module.params["lock"], run_id)
    if error:
        module.fail_json(msg=error, removed=containers, released=released)
    module.exit_json(changed=bool(containers) or released, removed=containers,
                     released=released)


if __name__ == "__main__":
    main()
