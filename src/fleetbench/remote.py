"""Run a function of fleetbench's module_utils on a host in one SSH exec, without AnsiballZ.

An Ansible module costs the host a Python start, unpacking the AnsiballZ payload and
importing ``ansible.module_utils.basic``: about 0.1 s of CPU before it does anything,
several times the cost of the SSH exec itself (bench/RESULTS.md, fan-out). The probes
only need the standard library, so an action plugin can hand the host's Python (started
with ``-I -S``: no site-packages, no environment) a small bootstrap on the command line
and the sources plus arguments on stdin, over the connection's pipelining path
(``_low_level_execute_command``), and read the JSON it prints.

This module builds that command and payload and reads the answer; it has no Ansible
import (the action plugin is passed in), so it is unit-tested like the rest of fleetbench.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetbench.resources import module_utils_path

# The module_utils import each other as ``ansible.module_utils.<name>`` (the form the
# modules need); on the host those names are registered from the sources sent along.
BOOTSTRAP = "\n".join((
    "import json, sys, types",
    "p = json.loads(sys.stdin.read())",
    "for n in ('ansible', 'ansible.module_utils'):",
    "    m = types.ModuleType(n); m.__path__ = []; sys.modules[n] = m",
    "for n, src in p['modules']:",
    "    m = types.ModuleType(n); sys.modules[n] = m",
    "    exec(compile(src, n.replace('.', '/') + '.py', 'exec'), m.__dict__)",
    "r = getattr(sys.modules[p['main']], p['function'])(p['args'])",
    "sys.stdout.write(json.dumps(r))",
))
PREFIX = "ansible.module_utils."
MISSING_PYTHON = 127
# What the probes need on the host, dependencies first.
PROBE_MODULES = ("fleetbench_host", "fleetbench_slots", "fleetbench_run", "fleetbench_probe")


def run_probe(action: Any, task_vars: Mapping[str, Any], function: str, module: str,
              module_args: Mapping[str, Any]) -> dict[str, Any]:
    """``function`` of module_utils/fleetbench_probe.py on the host of ``action``.

    ``action`` is the calling Ansible action plugin. Piped in one exec when its connection
    takes stdin (ssh, local, paramiko); otherwise the module ``module`` runs the same
    function the usual way.
    """
    if not action._connection.has_pipelining:
        return dict(action._execute_module(module_name=module, module_args=dict(module_args),
                                           task_vars=task_vars))
    python = interpreter({"ansible_python_interpreter": action._templar.template(
        task_vars.get("ansible_python_interpreter"))})
    done = action._low_level_execute_command(
        command(python), sudoable=True, in_data=payload(PROBE_MODULES, function, module_args))
    return answer(done, module, python)


def command(interpreter: str) -> str:
    """The shell command that runs the bootstrap with ``interpreter``."""
    return f"{shlex.quote(interpreter)} -I -S -c {shlex.quote(BOOTSTRAP)}"


def payload(modules: Sequence[str], function: str, args: Mapping[str, Any],
            folder: Path | None = None) -> bytes:
    """Stdin for :func:`command`: the named module_utils (dependencies first) and the call.

    ``function`` of the last module is called with ``args`` (a JSON-able mapping).
    """
    folder = folder or module_utils_path()
    sources = [[PREFIX + name, (folder / f"{name}.py").read_text(encoding="utf-8")]
               for name in modules]
    return json.dumps({"modules": sources, "main": PREFIX + modules[-1], "function": function,
                       "args": dict(args)}).encode()


def interpreter(task_vars: Mapping[str, Any]) -> str:
    """The host's Python: ``ansible_python_interpreter`` when set, else ``python3``.

    Interpreter discovery ("auto") needs a module run of its own; every MI300X host has a
    python3 on PATH (amd-smi and rocm-smi are Python programs).
    """
    value = str(task_vars.get("ansible_python_interpreter") or "").strip()
    return value if value and not value.startswith("auto") else "python3"


def answer(done: Mapping[str, Any], what: str, python: str) -> dict[str, Any]:
    """The function's result from ``_low_level_execute_command``'s, or a failed result."""
    rc = done.get("rc")
    stdout = str(done.get("stdout") or "")
    stderr = str(done.get("stderr") or "").strip()
    if rc == MISSING_PYTHON:
        return {"failed": True, "rc": rc,
                "msg": f"{what}: no {python} on the host ({_last_line(stderr)}); install "
                       "python3 or set ansible_python_interpreter for the host"}
    if rc != 0:
        return {"failed": True, "rc": rc,
                "msg": f"{what} failed on the host (exit {rc}): {_last_line(stderr)}"}
    try:
        result = json.loads(_json_part(stdout))
    except ValueError:
        return {"failed": True, "rc": rc,
                "msg": f"{what} printed no result on the host: {_last_line(stdout or stderr)}"}
    if not isinstance(result, dict):
        return {"failed": True, "rc": rc, "msg": f"{what} printed {type(result).__name__}, "
                                                 "not a result"}
    return result


def _json_part(stdout: str) -> str:
    """The result without what a host's shell start-up files printed before it (the way
    Ansible reads module output): from the last line that starts a JSON object."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]
    return "\n".join(lines[starts[-1]:]) if starts else stdout


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no output"
