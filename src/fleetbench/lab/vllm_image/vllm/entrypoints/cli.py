"""The ``vllm`` command: ``vllm serve`` and ``vllm bench latency|throughput|serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vllm import __version__, _args
from vllm.benchmarks import latency, serve, throughput
from vllm.entrypoints import server

SCRIPT = "/usr/local/bin/vllm"

_Validate = Callable[[argparse.ArgumentParser, argparse.Namespace], None]
_Main = Callable[[argparse.Namespace, str], int]


def build_parser() -> argparse.ArgumentParser:
    """The command's parser; each leaf records its validate and main functions."""
    parser = argparse.ArgumentParser(prog="vllm", description="vLLM CLI")
    parser.add_argument("-v", "--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{serve,bench}")
    serving = commands.add_parser("serve", help="Start the vLLM OpenAI Compatible API server.")
    server.add_cli_args(serving)
    serving.set_defaults(validate=server.validate, main=server.main, leaf=serving)
    bench = commands.add_parser("bench", help="vLLM bench subcommand.")
    kinds = bench.add_subparsers(dest="bench_type", required=True,
                                 metavar="{latency,serve,throughput}")
    for name, module in (("latency", latency), ("serve", serve), ("throughput", throughput)):
        leaf = kinds.add_parser(name, help=f"Benchmark the {name}.")
        module.add_cli_args(leaf)
        leaf.set_defaults(validate=module.validate, main=module.main, leaf=leaf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command."""
    parser = build_parser()
    args = parser.parse_args(_args.normalise_argv(sys.argv[1:] if argv is None else argv))
    validate: _Validate = args.validate
    run: _Main = args.main
    leaf: argparse.ArgumentParser = args.leaf
    for key in ("validate", "main", "leaf"):
        delattr(args, key)
    validate(leaf, args)
    return run(args, SCRIPT)
