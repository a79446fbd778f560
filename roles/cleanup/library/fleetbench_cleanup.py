#!/usr/bin/python
"""Remove every container of a run (by label), then its token file and lock."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_cleanup
short_description: Remove a fleetbench run's containers, token and lock from a host
options:
  run_id: {type: str, required: true, description: The run to clean up after.}
  lock: {type: str, required: true, description: The host's lock folder.}
author: fleetbench
"""

import json
import os
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec={
            "run_id": {"type": "str", "required": True},
            "lock": {"type": "str", "required": True},
        },
    )
    run_id = module.params["run_id"]
    listing = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=fleetbench.run=" + run_id],
        capture_output=True, text=True, timeout=120, check=False)
    if listing.returncode != 0:
        module.fail_json(msg="cannot list containers: " + listing.stderr.strip())
    containers = listing.stdout.split()
    if containers:
        removed = subprocess.run(["docker", "rm", "-f"] + containers, capture_output=True,
                                 text=True, timeout=300, check=False)
        if removed.returncode != 0:
            module.fail_json(msg="cannot remove containers: " + removed.stderr.strip())
    lock = module.params["lock"]
    released = False
    try:
        with open(os.path.join(lock, "owner.json"), encoding="utf-8") as handle:
            owner = json.load(handle).get("run_id")
    except (OSError, ValueError):
        owner = None
    if owner == run_id:  # the token file lives in the lock folder and goes with it
        shutil.rmtree(lock, ignore_errors=True)
        released = True
    module.exit_json(changed=bool(containers) or released, removed=containers,
                     released=released)


if __name__ == "__main__":
    main()
