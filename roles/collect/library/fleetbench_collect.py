#!/usr/bin/python
"""Pack every file of a run folder that matches the patterns into one tar.gz.

Collect is the last thing a run does on a host, so when asked (``cleanup_run_id``) the
same call then removes the run's containers, token file and lock: fleetbench runs
cleanup.yml only on hosts where that did not happen.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_collect
short_description: Archive a run's report files by pattern (and fetch it, see the action plugin)
options:
  root: {type: str, required: true, description: Run folder on the host (holds slot folders).}
  patterns: {type: list, elements: str, required: true, description: Globs relative to a slot.}
  archive: {type: str, required: true, description: Archive to write.}
  dest: {type: str, required: true, description: Controller path the archive is fetched to.}
  prune:
    type: bool
    default: false
    description: Remove root and the archive from the host once fetched and checked (action plugin).
  cleanup_run_id: {type: str, description: Remove this run's containers and lock after packing.}
  cleanup_host: {type: str, description: Inventory name the containers are labelled with.}
  cleanup_lock: {type: str, description: The host's lock folder (the token file is inside).}
author: fleetbench
"""

import fnmatch
import hashlib
import os
import tarfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleetbench_run import clean_up
from ansible.module_utils.fleetbench_slots import (
    LOG,
    RECORD,
    read_record,
    reconcile,
    slot_results,
)


def matches(relative, patterns):
    for pattern in patterns:
        # "**/" also matches at the top: **/perf_*.csv finds perf_x.csv in the slot itself.
        if fnmatch.fnmatch(relative, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(relative, pattern[3:])):
            return True
    return False


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "str", "required": True},
            "patterns": {"type": "list", "elements": "str", "required": True},
            "archive": {"type": "str", "required": True},
            "cleanup_run_id": {"type": "str"},
            "cleanup_host": {"type": "str"},
            "cleanup_lock": {"type": "str"},
        },
        required_together=[("cleanup_run_id", "cleanup_host", "cleanup_lock")],
    )
    root = module.params["root"]
    patterns = module.params["patterns"]
    files = []
    if os.path.isdir(root):
        for slot in sorted(os.listdir(root)):
            slot_dir = os.path.join(root, slot)
            if not os.path.isdir(slot_dir):
                continue
            for folder, _dirs, names in os.walk(slot_dir):
                for name in names:
                    path = os.path.join(folder, name)
                    relative = os.path.relpath(path, slot_dir)
                    if os.path.isfile(path) and matches(relative, patterns):
                        files.append(os.path.join(slot, relative))
    # The host's record of the slots and its supervisor's log, beside the slot folders.
    files.extend(name for name in (RECORD, LOG) if os.path.isfile(os.path.join(root, name)))
    files.sort()
    tmp = module.params["archive"] + ".tmp"
    with tarfile.open(tmp, "w:gz") as archive:
        for relative in files:
            archive.add(os.path.join(root, relative), arcname=relative, recursive=False)
    os.replace(tmp, module.params["archive"])
    digest = hashlib.sha256()
    with open(module.params["archive"], "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    # How each slot ended on the host, from the supervisor's record (before clean-up).
    slots = slot_results(reconcile(root, read_record(root)))
    cleaned = None
    if module.params["cleanup_run_id"]:
        # After packing: a container that will not go away must not cost the reports.
        cleaned = clean_up(module.params["cleanup_run_id"], module.params["cleanup_host"],
                           module.params["cleanup_lock"])
    module.exit_json(changed=True, files=files, count=len(files),
                     bytes=os.path.getsize(module.params["archive"]),
                     sha256=digest.hexdigest(), cleaned=cleaned, slots=slots)


if __name__ == "__main__":
    main()
