"""Stand-in for vLLM's offline throughput benchmark (``benchmark_throughput.py``,
``vllm bench throughput``).

``--num-prompts`` synthetic prompts of ``--input-len`` tokens, ``--output-len`` tokens each;
``--output-json`` gets vLLM's ``{"elapsed_time", "num_requests", "total_num_tokens",
"requests_per_second", "tokens_per_second"}`` (``json.dump(indent=4)``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vllm import _args, _lab


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """The benchmark's own arguments, then the engine's."""
    parser.add_argument("--backend", choices=("vllm", "hf", "mii", "vllm-chat"), default="vllm")
    parser.add_argument("--dataset", type=str, default=None)
    parser.add_argument("--dataset-name", type=str, default=None)
    parser.add_argument("--dataset-path", type=str, default=None)
    parser.add_argument("--input-len", type=int, default=None)
    parser.add_argument("--output-len", type=int, default=None)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--use-beam-search", action="store_true")
    parser.add_argument("--num-prompts", type=int, default=1000)
    parser.add_argument("--hf-max-batch-size", type=int, default=None)
    parser.add_argument("--output-json", type=str, default=None)
    parser.add_argument("--async-engine", action="store_true")
    parser.add_argument("--disable-frontend-multiprocessing", action="store_true")
    parser.add_argument("--disable-detokenize", action="store_true")
    parser.add_argument("--random-range-ratio", type=float, default=0.0)
    parser.add_argument("--prefix-len", type=int, default=0)
    _args.add_engine_args(parser)


def elapsed_s(args: argparse.Namespace, settings: _lab.Settings) -> float:
    """Seconds for every prompt on this host and slot (``--n`` sequences of a prompt
    generate one after the other, as one longer output)."""
    model = _lab.engine(str(args.model), _args.gpus(args), args.dtype, _args.uses_fp8(args))
    seconds = model.offline_elapsed_s(args.num_prompts, args.input_len,
                                      args.output_len * args.n, args.max_num_seqs)
    return seconds / _lab.speed(settings)


def results(args: argparse.Namespace, settings: _lab.Settings) -> dict[str, Any]:
    """vLLM's throughput JSON."""
    per_request = args.input_len + args.output_len * args.n
    total_tokens = args.num_prompts * per_request
    elapsed = elapsed_s(args, settings)
    return {
        "elapsed_time": elapsed,
        "num_requests": args.num_prompts,
        "total_num_tokens": total_tokens,
        "requests_per_second": args.num_prompts / elapsed,
        "tokens_per_second": total_tokens / elapsed,
    }


def main(args: argparse.Namespace, script: str) -> int:
    """Run the benchmark (the engine start honours the host's planted fault)."""
    print(args)
    settings = _lab.read_settings()
    _lab.start_engine(script, args.model, _args.gpus(args), settings)
    result = results(args, settings)
    elapsed = result["elapsed_time"]
    output_tokens = args.num_prompts * args.output_len * args.n
    print(f"Throughput: {result['requests_per_second']:.2f} requests/s, "
          f"{result['tokens_per_second']:.2f} total tokens/s, "
          f"{output_tokens / elapsed:.2f} output tokens/s")
    if args.output_json:
        with Path(args.output_json).open("w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=4)
    return 0


def parse(argv: list[str], prog: str | None = None) -> argparse.Namespace:
    """Parse ``argv`` as vLLM does: bad input exits 2 (argparse) or 1 (its checks)."""
    parser = argparse.ArgumentParser(prog=prog, description="Benchmark the throughput.")
    add_cli_args(parser)
    args = parser.parse_args(_args.normalise_argv(argv))
    validate(parser, args)
    return args


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What vLLM rejects after parsing (argparse-style error, exit 2)."""
    if args.tokenizer is None:
        args.tokenizer = args.model
    _args.check_positive(parser, num_prompts=args.num_prompts, input_len=args.input_len,
                         output_len=args.output_len, n=args.n,
                         tensor_parallel_size=args.tensor_parallel_size)
    if args.dataset or args.dataset_path:
        parser.error("the fleetbench lab's vLLM has no datasets: give --input-len and "
                     "--output-len (synthetic prompts)")
    if args.input_len is None or args.output_len is None:
        parser.error("--input-len and --output-len are required without a dataset")
    if args.backend != "vllm":
        parser.error(f"the fleetbench lab's vLLM runs the vllm backend only, not {args.backend}")
    if args.hf_max_batch_size is not None:
        parser.error("HF max batch size is only for HF backend.")
