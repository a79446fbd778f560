"""The one exception hierarchy of fleetbench; only the CLI maps it to exit codes."""

from __future__ import annotations


class FleetbenchError(Exception):
    """Base of every error fleetbench raises on purpose."""

    exit_code = 3


class BadInput(FleetbenchError):
    """The user's input is wrong; nothing was started on any host (exit 2).

    The message names the problem and the fix.
    """

    exit_code = 2


class LabError(FleetbenchError):
    """The lab could not be brought up or changed."""

    exit_code = 2


class RunnerError(FleetbenchError):
    """Ansible could not be driven (not a host failure: those are results)."""

    exit_code = 3
