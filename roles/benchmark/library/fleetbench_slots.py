#!/usr/bin/python
"""The host's record of a run's slots, and the supervisor that runs them detached.

``state: inspect`` reads the record (read-only): is a supervisor of the run alive, which of
the asked slots ran already and which are to start. ``state: started`` writes the record
for the slots whose containers the role just created and starts the supervisor detached;
the task returns at once and no SSH channel stays open. See module_utils/fleetbench_slots.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_slots
short_description: Start a fleetbench run's slot containers detached, or say what runs
options:
  state:
    type: str
    choices: [inspect, started]
    default: inspect
    description: Read the record, or write it and start the supervisor.
  root: {type: path, required: true, description: The run's folder on the host.}
  slots:
    type: list
    elements: dict
    default: []
    description: With inspect, the slots the controller asks for (name, container, ...).
  rerun:
    type: list
    elements: str
    default: []
    description: With inspect, slots to start again although they ran (their verdict failed).
  waves:
    type: list
    elements: list
    default: []
    description: With started, the planned waves of slot dicts.
  only:
    type: list
    elements: str
    default: []
    description: With started, the names of the slots to start (their containers exist).
  run_id: {type: str, description: The run (started).}
  host: {type: str, description: The inventory name of this host (started).}
  controller: {type: dict, default: {}, description: Who runs the run (started).}
  timeout: {type: int, default: 0, description: Seconds a slot may run before it is killed.}
  serving_start_timeout:
    type: int
    default: 0
    description: Seconds a vLLM server a slot starts may take to come up before the slot
      is killed (0 for no limit).
  token:
    type: path
    description: The token file to remove once the last wave has started.
author: fleetbench
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleetbench_slots import (
    launch,
    new_record,
    plan_start,
    read_record,
    reconcile,
    supervisor_alive,
    write_record,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["inspect", "started"], "default": "inspect"},
            "root": {"type": "path", "required": True},
            "slots": {"type": "list", "elements": "dict", "default": []},
            "rerun": {"type": "list", "elements": "str", "default": []},
            "waves": {"type": "list", "elements": "list", "default": []},
            "only": {"type": "list", "elements": "str", "default": []},
            "run_id": {"type": "str"},
            "host": {"type": "str"},
            "controller": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 0},
            "serving_start_timeout": {"type": "int", "default": 0},
            "token": {"type": "path"},
        },
        required_if=[("state", "started", ("run_id", "host"))],
    )
    params = module.params
    root = params["root"]
    record = reconcile(root, read_record(root))
    if params["state"] == "inspect":
        if supervisor_alive(record):
            # Re-attach: the supervisor goes on with its waves; nothing is started.
            module.exit_json(changed=False, attached=True, start=[],
                             kept=sorted(record.get("slots") or {}),
                             pid=record["supervisor"]["pid"],
                             # it still needs the token for waves it has yet to start
                             token_held=bool(record.get("token")))
        start, kept = plan_start(record, params["slots"], set(params["rerun"]))
        module.exit_json(changed=False, attached=False, start=start, kept=kept)

    only = set(params["only"])
    waves = [[slot for slot in wave if slot["name"] in only] for wave in params["waves"]]
    waves = [wave for wave in waves if wave]
    if not waves and not any((s or {}).get("state") == "running"
                             for s in (record.get("slots") or {}).values()):
        module.exit_json(changed=False, pid=None, started=[])
    os.makedirs(root, exist_ok=True)
    # The record (no secret in it) is read by the login user, also after become.
    os.chmod(root, 0o755)  # noqa: S103
    write_record(root, new_record(record, run_id=params["run_id"], host=params["host"],
                                  controller=params["controller"], waves=waves,
                                  timeout_s=params["timeout"], token=params["token"],
                                  serving_start_timeout_s=params["serving_start_timeout"]))
    pid = launch(root)
    if pid is None:
        module.fail_json(msg=f"the slot supervisor did not start: see {root}/supervisor.log")
    module.exit_json(changed=True, pid=pid, started=sorted(only))


if __name__ == "__main__":
    main()
