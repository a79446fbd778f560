"""The bin/ wrappers of a lab host's simulated ``rocm-smi`` and ``amd-smi``."""

from __future__ import annotations

import shlex
from pathlib import Path

from fleetbench.lab import gpu
from fleetbench.lab.gpu import GpuState
from fleetbench.lab.smi.common import render_host

_SIMULATOR = """#!{python}
# fleetbench lab: simulated {tool} of the host in {host_dir}
import sys
from pathlib import Path

from fleetbench.lab.smi import main

sys.exit(main({tool!r}, sys.argv[1:], Path({host_dir!r})))
"""

# POSIX sh (no Python start) for the queries in ANSWERED_QUERIES; {match} sets `answer`.
_WRAPPER = """#!/bin/sh
# fleetbench lab: simulated {tool} of the host in {host_dir}
# The check probe's read-only queries print the outputs rendered at the last state change
# ({answers}); everything else runs the Python simulator.
answer=
{match}
if [ -n "$answer" ] && read -r generation 2>/dev/null <{answers}/{current}; then
    # All three files are opened before anything is printed: a generation never changes once
    # named in {current}, and one removed by a newer state change fails an open instead.
    dir={answers}/"$generation"
    opened=
    {{ opened=yes; read -r code <&3; cat <&4 || code=1; cat <&5 >&6; }} \\
        6>&2 2>/dev/null 3<"$dir/$answer.rc" 4<"$dir/$answer.out" 5<"$dir/$answer.err"
    if [ -n "$opened" ]; then
        exit "${{code:-1}}"
    fi
fi
exec {python} {simulator} "$@"
"""


def _wrapper_match(tool: str) -> str:
    """sh that sets ``answer`` when the arguments are exactly one of the tool's queries."""
    lines = []
    for query_tool, argv in gpu.ANSWERED_QUERIES:
        if query_tool != tool:
            continue
        tests = [f"[ $# -eq {len(argv)} ]"]
        tests += [f'[ "${index}" = {shlex.quote(arg)} ]' for index, arg in enumerate(argv, 1)]
        answer = shlex.quote(gpu.answer_name(tool, argv))
        lines += [f"if {' && '.join(tests)}; then", f"    answer={answer}", "fi"]
    return "\n".join(lines)


def install_host(host_dir: Path, state: GpuState, python: str) -> None:
    """Save ``state``, render the host's tree and write ``bin/rocm-smi`` and ``bin/amd-smi``.

    ``python`` is the interpreter the simulator runs with; it must import fleetbench.
    """
    host_dir = host_dir.resolve()
    with gpu.state_lock(host_dir):
        state.save(host_dir / gpu.STATE_FILE)
        render_host(host_dir, state)
    bin_dir = host_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("rocm-smi", "amd-smi"):
        simulator = bin_dir / f".{tool}.py"
        gpu.write_atomic(
            simulator, _SIMULATOR.format(python=python, tool=tool, host_dir=str(host_dir))
        )
        simulator.chmod(0o755)
        wrapper = _WRAPPER.format(
            tool=tool,
            host_dir=host_dir,
            answers=shlex.quote(str(host_dir / gpu.ANSWERS_DIR)),
            current=gpu.ANSWERS_CURRENT,
            match=_wrapper_match(tool),
            python=shlex.quote(python),
            simulator=shlex.quote(str(simulator)),
        )
        gpu.write_atomic(bin_dir / tool, wrapper)
        (bin_dir / tool).chmod(0o755)
