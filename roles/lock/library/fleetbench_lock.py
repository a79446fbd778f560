#!/usr/bin/python
"""Take or release fleetbench's per-host run lock (an atomic mkdir with the owner inside)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_lock
short_description: Per-host lock so two fleetbench runs never share a host
options:
  path: {type: str, required: true, description: Lock folder.}
  run_id: {type: str, required: true, description: Run taking or releasing the lock.}
  stale_hours: {type: float, default: 48, description: Take over locks older than this.}
  state: {type: str, default: present, choices: [present, absent], description: Take or release.}
author: fleetbench
"""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule


def owner_of(path):
    try:
        with open(os.path.join(path, "owner.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def take(module, path, run_id, stale_hours):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            owner = owner_of(path)
            if owner.get("run_id") == run_id:
                return module.exit_json(changed=False, owner=owner)
            age_h = (time.time() - os.stat(path).st_mtime) / 3600
            if age_h < stale_hours:
                return module.fail_json(
                    msg="host is in use by fleetbench run %s (since %s); wait for it, or "
                        "remove %s if that run is dead" % (
                            owner.get("run_id", "?"), owner.get("since", "?"), path),
                    owner=owner,
                )
            shutil.rmtree(path, ignore_errors=True)  # stale: its run died long ago
            continue
        owner = {"run_id": run_id, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "pid": os.getpid()}
        with open(os.path.join(path, "owner.json"), "w", encoding="utf-8") as handle:
            json.dump(owner, handle)
        return module.exit_json(changed=True, owner=owner)
    return module.fail_json(msg="could not take the lock at %s" % path)


def release(module, path, run_id):
    if not os.path.isdir(path):
        return module.exit_json(changed=False)
    owner = owner_of(path)
    if owner.get("run_id") not in (run_id, None):
        return module.exit_json(changed=False, owner=owner)  # someone else's: leave it
    shutil.rmtree(path, ignore_errors=True)
    return module.exit_json(changed=True)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "str", "required": True},
            "run_id": {"type": "str", "required": True},
            "stale_hours": {"type": "float", "default": 48},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
    )
    params = module.params
    if params["state"] == "present":
        take(module, params["path"], params["run_id"], params["stale_hours"])
    else:
        release(module, params["path"], params["run_id"])


if __name__ == "__main__":
    main()
