#!/usr/bin/python
"""Wait for a wave of benchmark containers; kill them when the timeout passes.

One remote call for the whole wave, however long it runs. Slot failures are results (the
files are collected first); only a Docker engine that cannot be asked fails the task.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_wait
short_description: Wait for benchmark containers with a timeout
options:
  slots: {type: list, elements: dict, required: true, description: Slots with their container.}
  timeout: {type: int, required: true, description: Seconds before the wave is killed.}
  remove:
    type: path
    description: A file to delete before waiting (the token, once the last wave has started).
author: fleetbench
"""

import os
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule


def docker(args, timeout=120):
    return subprocess.run(["docker"] + args, capture_output=True, text=True, timeout=timeout,
                          check=False)


def main():
    module = AnsibleModule(
        argument_spec={
            "slots": {"type": "list", "elements": "dict", "required": True},
            "timeout": {"type": "int", "required": True},
            "remove": {"type": "path"},
        },
    )
    removed = False
    if module.params["remove"]:
        # Every container of the wave has started and read it (a bind mount keeps the file
        # for a container that opens it later): it need not wait on the host for the wave.
        try:
            os.remove(module.params["remove"])
        except FileNotFoundError:
            pass
        removed = True
    slots = module.params["slots"]
    names = [slot["container"] for slot in slots]
    started = time.time()
    timed_out = False
    try:
        docker(["wait"] + names, timeout=module.params["timeout"])
    except subprocess.TimeoutExpired:
        timed_out = True
        docker(["kill"] + names)
    results = []
    for slot in slots:
        state = docker(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} "
                        "{{.State.OOMKilled}}", slot["container"]])
        if state.returncode != 0:
            module.fail_json(msg="cannot inspect %s: %s" % (slot["container"],
                                                             state.stderr.strip()))
        status, code, oom = state.stdout.split()
        code = int(code)
        entry = dict(slot)
        entry.update(exit_code=code, timed_out=timed_out, oom_killed=oom == "true",
                     ok=code == 0 and not timed_out)
        if timed_out:
            entry["status"] = "failed:timeout"
            entry["summary"] = "%s killed after the %ss timeout" % (slot["name"],
                                                                    module.params["timeout"])
        elif code != 0:
            entry["status"] = "failed:benchmark"
            entry["summary"] = "%s exited %s%s (see %s/benchmark.log)" % (
                slot["name"], code, " (out of memory)" if oom == "true" else "", slot["name"])
        else:
            entry["status"] = "ok"
            entry["summary"] = "%s ok" % slot["name"]
        results.append(entry)
    module.exit_json(changed=removed, slots=results, removed=removed,
                     seconds=round(time.time() - started, 1))


if __name__ == "__main__":
    main()
