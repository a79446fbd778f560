#!/usr/bin/python
"""Run one partition command (amd-smi / rocm-smi set or reload) with a time limit.

The action plugin ``fleetbench_partition_apply`` decides what to run and reads the
outcome; this module only runs the command line it is given, feeds it ``stdin`` (the
tools' [Y/N] confirmation) and kills it at ``timeout``. It always reports a change: the
commands it runs exist to change the host. It does not run in check mode.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_partition_command
short_description: Run one GPU partition command with a time limit
options:
  argv: {type: list, elements: str, required: true, description: The command line.}
  stdin: {type: str, default: "", description: Text fed to the command's standard input.}
  timeout: {type: int, default: 600, description: Seconds before the command is killed.}
author: fleetbench
"""

import subprocess

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec={
            "argv": {"type": "list", "elements": "str", "required": True},
            "stdin": {"type": "str", "default": ""},
            "timeout": {"type": "int", "default": 600},
        },
        supports_check_mode=False,
    )
    argv = module.params["argv"]
    try:
        done = subprocess.run(argv, input=module.params["stdin"], capture_output=True,
                              text=True, timeout=module.params["timeout"], check=False)
    except subprocess.TimeoutExpired as exc:
        module.exit_json(changed=True, rc=124, timed_out=True,
                         stdout=exc.stdout if isinstance(exc.stdout, str) else "",
                         stderr=exc.stderr if isinstance(exc.stderr, str) else "")
    except OSError as exc:
        module.exit_json(changed=True, rc=127 if isinstance(exc, FileNotFoundError) else 126,
                         timed_out=False, stdout="", stderr=str(exc))
    module.exit_json(changed=True, rc=done.returncode, timed_out=False,
                     stdout=done.stdout, stderr=done.stderr)


if __name__ == "__main__":
    main()
