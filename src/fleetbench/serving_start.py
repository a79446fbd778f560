"""How long a serving slot's vLLM server may take to come up, per host.

A serving benchmark starts ``vllm serve`` and waits for it with ``curl``: MAD's report
script for ever, run_vllm.py 30 minutes per point. A server that dies or hangs while it
loads would hold the slot until its ``--timeout`` (hours) and the host's later waves with
it. The host's supervisor kills such a slot once its server has not come up within this
limit (module_utils/fleetbench_slots.py, ``ServerStartWatch``); the slot then ends
``failed:server-start`` and the host's other slots go on.

The limit is ``--serving-start-timeout``, else the inventory's
``fleetbench_serving_start_timeout`` (per group or host), else 20 minutes, in the duration
syntax of ``--timeout``. The benchmark role reads the inventory variable itself (plain
ansible-playbook runs too); fleetbench checks every host's value before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetbench.plan import parse_duration

#: The limit when neither the command line nor the inventory gives one.
DEFAULT = "20m"
#: The inventory variable (per group or host).
INVENTORY_VAR = "fleetbench_serving_start_timeout"
#: The option of ``fleetbench run``.
OPTION = "--serving-start-timeout"


def option_seconds(given: str | None) -> int | None:
    """The option's value in seconds (None when it was not given); BadInput naming it for a
    value that is not a duration."""
    return None if given is None else parse_duration(given, OPTION)


def serving_start_timeouts(host_vars: Mapping[str, Mapping[str, Any]],
                           given: str | None = None) -> dict[str, int]:
    """Each host's limit in seconds: ``given`` (the option) for every host, else its
    inventory value, else :data:`DEFAULT`. BadInput, naming the option or the host's
    variable, for a value that is not a duration."""
    seconds = option_seconds(given)
    if seconds is not None:
        return dict.fromkeys(host_vars, seconds)
    limits: dict[str, int] = {}
    for host, variables in host_vars.items():
        value = variables.get(INVENTORY_VAR)
        limits[host] = parse_duration(DEFAULT if value in (None, "") else str(value),
                                      f"{INVENTORY_VAR} of {host}")
    return limits
