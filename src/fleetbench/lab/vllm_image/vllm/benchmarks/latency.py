"""Stand-in for vLLM's latency benchmark (``benchmark_latency.py``, ``vllm bench latency``).

One batch of ``--batch-size`` prompts of ``--input-len`` tokens, ``--output-len`` tokens
generated each, ``--num-iters-warmup`` + ``--num-iters`` times; ``--output-json`` gets
vLLM's ``{"avg_latency", "latencies", "percentiles"}`` (seconds, ``json.dump(indent=4)``,
which MAD's report tool reads token by token).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vllm import _args, _lab

PERCENTAGES = (10, 25, 50, 75, 90, 99)


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """The benchmark's own arguments, then the engine's."""
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n", type=int, default=1,
                        help="Number of generated sequences per prompt.")
    parser.add_argument("--use-beam-search", action="store_true")
    parser.add_argument("--num-iters-warmup", type=int, default=10)
    parser.add_argument("--num-iters", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--output-json", type=str, default=None)
    parser.add_argument("--disable-detokenize", action="store_true")
    _args.add_engine_args(parser)


def engine(args: argparse.Namespace) -> _lab.Engine:
    """The model on this run's slot (see ``vllm._lab``'s physics)."""
    return _lab.engine(str(args.model), _args.gpus(args), args.dtype, _args.uses_fp8(args))


def batch_latency_s(args: argparse.Namespace, settings: _lab.Settings) -> float:
    """Seconds for one batch on this host and slot."""
    seconds = engine(args).batch_latency_s(args.batch_size, args.input_len, args.output_len)
    return seconds / _lab.speed(settings)


def results(args: argparse.Namespace, settings: _lab.Settings) -> dict[str, Any]:
    """vLLM's latency JSON: every timed iteration, their mean and percentiles."""
    avg = batch_latency_s(args, settings)
    count = args.num_iters
    # A tenth of a percent apart around the mean, as a steady GPU gives.
    latencies = [avg * (1 + (i - (count - 1) / 2) * 0.001) for i in range(count)]
    return {
        "avg_latency": sum(latencies) / count,
        "latencies": latencies,
        "percentiles": {str(p): _lab.percentile(latencies, p) for p in PERCENTAGES},
    }


def main(args: argparse.Namespace, script: str) -> int:
    """Run the benchmark (the engine start honours the host's planted fault)."""
    print(args)
    settings = _lab.read_settings()
    _lab.start_engine(script, args.model, _args.gpus(args), settings)
    print("Warming up...")
    result = results(args, settings)
    print(f"Avg latency: {result['avg_latency']} seconds")
    for percentage, value in result["percentiles"].items():
        print(f"{percentage}% percentile latency: {value} seconds")
    if args.output_json:
        with Path(args.output_json).open("w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=4)
    return 0


def parse(argv: list[str], prog: str | None = None) -> argparse.Namespace:
    """Parse ``argv`` as vLLM does (exit 2 with argparse's message on bad input)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark the latency of processing a single batch of requests till "
        "completion.",
    )
    add_cli_args(parser)
    args = parser.parse_args(_args.normalise_argv(argv))
    validate(parser, args)
    return args


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What vLLM rejects after parsing (argparse-style error, exit 2)."""
    _args.check_positive(parser, input_len=args.input_len, output_len=args.output_len,
                         batch_size=args.batch_size, num_iters=args.num_iters,
                         tensor_parallel_size=args.tensor_parallel_size)
