"""vLLM's command-line conventions: engine arguments and dashes-or-underscores options.

The engine arguments are those of vLLM's ``EngineArgs`` that ROCm/MAD's scripts of every
era pass (2024-09 to 2025-06), plus their common neighbours; anything else is rejected as
vLLM rejects it (argparse's "unrecognized arguments", exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
EXECUTOR_BACKENDS = ("ray", "mp", "uni", "external_launcher")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """vLLM's FlexibleArgumentParser: ``--num_iters`` means ``--num-iters``."""
    normalised: list[str] = []
    for arg in argv:
        if arg.startswith("--") and arg != "--":
            key, sep, value = arg.partition("=")
            normalised.append(key.replace("_", "-") + sep + value)
        else:
            normalised.append(arg)
    return normalised


def boolean(text: str) -> bool:
    """``--enable-chunked-prefill False`` and friends (vLLM's optional-value flags)."""
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def _flag(group: argparse._ArgumentGroup, *names: str) -> None:
    group.add_argument(*names, type=boolean, nargs="?", const=True, default=False)
    # vLLM's boolean engine flags also take their negative form (--no-enable-prefix-caching).
    dest = names[0].removeprefix("--").replace("-", "_")
    group.add_argument(*(f"--no-{n.removeprefix('--')}" for n in names), dest=dest,
                       action="store_false")


def add_engine_args(parser: argparse.ArgumentParser, *, model_option: bool = True) -> None:
    """vLLM's engine arguments (``EngineArgs.add_cli_args``)."""
    group = parser.add_argument_group("engine arguments")
    if model_option:
        group.add_argument("--model", type=str, default="facebook/opt-125m")
    group.add_argument("--tokenizer", type=str, default=None)
    group.add_argument("--revision", type=str, default=None)
    group.add_argument("--tokenizer-revision", type=str, default=None)
    group.add_argument("--tokenizer-mode", type=str, default="auto")
    group.add_argument("--trust-remote-code", action="store_true")
    group.add_argument("--download-dir", type=str, default=None)
    group.add_argument("--load-format", type=str, default="auto")
    group.add_argument("--dtype", choices=DTYPES, default="auto")
    group.add_argument("--kv-cache-dtype", choices=KV_CACHE_DTYPES, default="auto")
    group.add_argument("--quantization", "-q", type=str, default=None)
    group.add_argument("--quantization-param-path", type=str, default=None)
    group.add_argument("--max-model-len", type=int, default=None)
    group.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    group.add_argument("--pipeline-parallel-size", "-pp", type=int, default=1)
    group.add_argument("--distributed-executor-backend", choices=EXECUTOR_BACKENDS, default=None)
    group.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    group.add_argument("--swap-space", type=float, default=4)
    group.add_argument("--block-size", type=int, choices=(8, 16, 32, 64, 128), default=None)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--max-num-seqs", type=int, default=None)
    group.add_argument("--max-num-batched-tokens", type=int, default=None)
    group.add_argument("--max-seq-len-to-capture", type=int, default=8192)
    group.add_argument("--num-scheduler-steps", type=int, default=1)
    group.add_argument("--max-logprobs", type=int, default=20)
    group.add_argument("--compilation-config", "-O", type=str, default=None)
    group.add_argument("--device", type=str, default="auto")
    group.add_argument("--served-model-name", nargs="+", type=str, default=None)
    group.add_argument("--disable-log-stats", action="store_true")
    group.add_argument("--disable-custom-all-reduce", action="store_true")
    group.add_argument("--disable-async-output-proc", action="store_true")
    group.add_argument("--use-v2-block-manager", action="store_true")
    _flag(group, "--enforce-eager")
    _flag(group, "--enable-chunked-prefill")
    _flag(group, "--enable-prefix-caching")


def uses_fp8(args: argparse.Namespace) -> bool:
    """Whether the weights are fp8 (a quantization flag or an FP8 checkpoint)."""
    model = str(args.model)
    return args.quantization == "fp8" or "fp8" in model.lower()


def gpus(args: argparse.Namespace) -> int:
    """GPUs one engine uses: tensor x pipeline parallel size."""
    return int(args.tensor_parallel_size) * int(args.pipeline_parallel_size)


def check_positive(parser: argparse.ArgumentParser, **values: int | None) -> None:
    """argparse-style errors (exit 2) for sizes that must be >= 1."""
    for name, value in values.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {value}")
