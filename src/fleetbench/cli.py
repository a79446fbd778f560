"""The `fleetbench` command: a thin layer over the Python API.

Each module of :mod:`fleetbench.commands` contributes one sub-command through a
``register(subparsers)`` function that sets ``handler`` (``args -> exit code``).
This module alone maps exceptions to exit codes: 0 all good, 1 a host or a gate
failed, 2 bad input (nothing started), 3 internal error.

An unexpected exception is an internal error: one line on stderr and exit 3 (not 1,
which would read as "a host failed"); ``--debug``, before or after the sub-command,
prints the traceback too. Whatever is printed has the Hugging Face token masked.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from fleetbench import __version__, commands
from fleetbench.errors import FleetbenchError
from fleetbench.secrets import Secret, restart_without_secrets, withhold_environment

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

DEBUG_HELP = "on an internal error, print the full traceback"
MASK = "********"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command of :mod:`fleetbench.commands`."""
    parser = argparse.ArgumentParser(
        prog="fleetbench",
        description="Run the MI300X vLLM benchmark workflow on a fleet of GPU hosts.",
    )
    parser.add_argument("--version", action="version", version=f"fleetbench {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    for child in _sub_parsers(parser):
        # SUPPRESS: a sub-command without --debug must not reset the one given before it.
        child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help=DEBUG_HELP)
    return parser


def _sub_parsers(parser: argparse.ArgumentParser) -> Iterable[argparse.ArgumentParser]:
    """Every sub-command's parser below ``parser`` (``report build``, ``lab up``…)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield child
                yield from _sub_parsers(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Until the arguments are parsed (building the parser can fail too), a plain look.
    debug = "--debug" in arguments
    args: argparse.Namespace | None = None
    # Secrets leave the environment before anything starts a child process (ansible-runner
    # would copy them to disk and into every worker's environment); commands that need
    # one, the Hugging Face token, find it in args.environment_secrets.
    withheld = withhold_environment()
    try:
        parser = build_parser()
        args = parser.parse_args(arguments)
        args.environment_secrets = withheld
        debug = bool(getattr(args, "debug", False))
        code: int = args.handler(args)
    except FleetbenchError as exc:
        secrets = _known_secrets(args, withheld)
        if debug:
            _print_traceback(exc, secrets)
        print(f"fleetbench: error: {mask(str(exc), secrets)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fleetbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every unexpected error: exit 3, one line
        secrets = _known_secrets(args, withheld)
        if debug:
            _print_traceback(exc, secrets)
        print(internal_error_line(exc, secrets, debug=debug), file=sys.stderr)
        return EXIT_INTERNAL
    return code


def internal_error_line(exc: BaseException, secrets: Iterable[Secret] = (), *,
                        debug: bool = False) -> str:
    """The one line an unexpected exception prints: its type and message, secrets masked."""
    message = " ".join(mask(str(exc), secrets).split())
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    hint = "" if debug else " (run again with --debug for the traceback)"
    return f"fleetbench: internal error: {what}{hint}"


def mask(text: str, secrets: Iterable[Secret]) -> str:
    """``text`` with every secret's value replaced by ``********``."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, MASK)
    return text


def _known_secrets(args: argparse.Namespace | None,
                   withheld: Mapping[str, Secret]) -> list[Secret]:
    """Every secret the command was given: those withheld from the environment, and the
    token of ``--hf-token-file``.

    Messages are built from masked values; this is the last guard before stderr.
    """
    found = list(withheld.values())
    token_file = getattr(args, "hf_token_file", None)
    if isinstance(token_file, Path):
        # Read as it is, even where the token file is refused (others may read it).
        try:
            text = token_file.expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            text = ""  # an unreadable file holds nothing to mask
        if text:
            found.append(Secret(text))
    return found


def _print_traceback(exc: BaseException, secrets: Iterable[Secret]) -> None:
    text = "".join(traceback.format_exception(exc))
    print(mask(text, secrets), end="", file=sys.stderr)


def console_main() -> None:  # pragma: no cover - thin wrapper
    """Console-script entry that exits with :func:`main`'s code.

    A command given secrets in its environment starts again without them first (see
    :func:`fleetbench.secrets.restart_without_secrets`), so that not even this process's
    own environment block, or a forked child's, shows them.
    """
    restart_without_secrets(["-m", "fleetbench", *sys.argv[1:]])
    sys.exit(main())
