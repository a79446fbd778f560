"""The `fleetbench` command: a thin layer over the Python API.

Each module of :mod:`fleetbench.commands` contributes one sub-command through a
``register(subparsers)`` function that sets ``handler`` (``args -> exit code``).
This module alone maps exceptions to exit codes: 0 all good, 1 a host or a gate
failed, 2 bad input (nothing started), 3 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from fleetbench import __version__, commands
from fleetbench.errors import FleetbenchError
from fleetbench.secrets import withhold_environment

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command of :mod:`fleetbench.commands`."""
    parser = argparse.ArgumentParser(
        prog="fleetbench",
        description="Run the MI300X vLLM benchmark workflow on a fleet of GPU hosts.",
    )
    parser.add_argument("--version", action="version", version=f"fleetbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Secrets leave the environment before anything starts a child process (ansible-runner
    # would copy them to disk and into every worker's environment); commands that need
    # one, the Hugging Face token, find it here.
    args.environment_secrets = withhold_environment()
    try:
        code: int = args.handler(args)
    except FleetbenchError as exc:
        print(f"fleetbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fleetbench: interrupted", file=sys.stderr)
        return 130
    return code


def console_main() -> None:  # pragma: no cover - thin wrapper
    """Console-script entry that exits with :func:`main`'s code."""
    sys.exit(main())
