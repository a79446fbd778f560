#!/usr/bin/python
"""Wait for a wave of benchmark containers; kill them when the timeout passes.

One remote call for the whole wave, however long it runs. Slot failures are results (the
files are collected first); only a Docker engine that cannot be asked fails the task.

Per slot it reports how the script ended (exit code, OOM kill, timeout) and how many rows
its report files hold on the host, never an ``ok``: MAD's script exits 0 when every vLLM
call failed and 1 when only its last ``mv`` did. fleetbench judges each slot from the
collected reports; the row count is the cheap check ``benchmark_verdict`` makes for plain
ansible-playbook runs.
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
  root:
    type: path
    description: The run's folder on the host (a slot's files are in root/<slot name>).
author: fleetbench
"""

import contextlib
import fnmatch
import os
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule


def docker(args, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def report_rows(folder):
    """Data rows of a slot's report files: CSVs under reports_* folders and perf_*.csv."""
    rows = 0
    for current, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".git"]
        in_reports = any(fnmatch.fnmatch(part, "reports_*")
                         for part in os.path.relpath(current, folder).split(os.sep))
        for name in names:
            if not name.lower().endswith(".csv"):
                continue
            if not (in_reports or fnmatch.fnmatch(name, "perf_*.csv")):
                continue
            try:
                with open(os.path.join(current, name), "rb") as handle:
                    lines = [line for line in handle.read().splitlines() if line.strip()]
            except OSError:
                continue
            rows += max(len(lines) - 1, 0)  # the first line is the header
    return rows


def main():
    module = AnsibleModule(
        argument_spec={
            "slots": {"type": "list", "elements": "dict", "required": True},
            "timeout": {"type": "int", "required": True},
            "remove": {"type": "path"},
            "root": {"type": "path"},
        },
    )
    removed = False
    if module.params["remove"]:
        # Every container of the wave has started and read it (a bind mount keeps the file
        # for a container that opens it later): it need not wait on the host for the wave.
        with contextlib.suppress(FileNotFoundError):
            os.remove(module.params["remove"])
        removed = True
    slots = module.params["slots"]
    names = [slot["container"] for slot in slots]
    started = time.time()
    timed_out = False
    try:
        docker(["wait", *names], timeout=module.params["timeout"])
    except subprocess.TimeoutExpired:
        timed_out = True
        docker(["kill", *names])
    results = []
    for slot in slots:
        state = docker(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} "
                        "{{.State.OOMKilled}}", slot["container"]])
        if state.returncode != 0:
            module.fail_json(msg="cannot inspect {}: {}".format(slot["container"],
                                                             state.stderr.strip()))
        _status, code, oom = state.stdout.split()
        code = int(code)
        rows = (report_rows(os.path.join(module.params["root"], slot["name"]))
                if module.params["root"] else None)
        entry = dict(slot)
        entry.update(exit_code=code, timed_out=timed_out, oom_killed=oom == "true",
                     report_rows=rows)
        found = "" if rows is None else "; {} report row{} on the host".format(
            rows, "" if rows == 1 else "s")
        if timed_out:
            entry["status"] = "failed:timeout"
            entry["summary"] = "{} killed after the {}s timeout{}".format(
                slot["name"], module.params["timeout"], found)
        else:
            # How the script ended, not whether it measured anything: see the docstring.
            entry["status"] = "exited"
            entry["summary"] = "{} exited {}{}{} (see {}/benchmark.log)".format(
                slot["name"], code, " (killed for lack of memory)" if oom == "true" else "",
                found, slot["name"])
        results.append(entry)
    module.exit_json(changed=removed, slots=results, removed=removed,
                     seconds=round(time.time() - started, 1))


if __name__ == "__main__":
    main()
