#!/usr/bin/python
"""Remove every container of a run (by label), then its token file and lock.

Another run's lock is left alone; ``holder`` says who held the lock before (empty: nobody).
"""

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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleetbench_run import clean_up


def main():
    module = AnsibleModule(
        argument_spec={
            "run_id": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
            "lock": {"type": "str", "required": True},
        },
    )
    params = module.params
    cleaned = clean_up(params["run_id"], params["host"], params["lock"])
    if cleaned["error"]:
        module.fail_json(msg=cleaned["error"], removed=cleaned["removed"],
                         released=cleaned["released"], holder=cleaned["holder"])
    module.exit_json(changed=bool(cleaned["removed"]) or cleaned["released"],
                     removed=cleaned["removed"], released=cleaned["released"],
                     holder=cleaned["holder"])


if __name__ == "__main__":
    main()
