"""``fleetbench fit``: does a model fit a CPX partition? (seed §5, GQA-aware)."""

from __future__ import annotations

import argparse
import json
import math

from rich.console import Console
from rich.table import Table

from fleetbench.errors import BadInput
from fleetbench.fit import (
    DEFAULT_PARTITION_BYTES,
    FORMULAS,
    GB,
    FitResult,
    estimate_fit,
    resolve_model,
)

_EPILOG = """\
GB means 10^9 bytes. Bytes per value: float32 4, float16/bfloat16 2, float8 1;
--dtype auto takes the config's dtype (float8 for fp8 checkpoints), --kv-dtype auto
the weights' dtype. "fits" means weights + KV cache < one partition; min_partitions
assumes tensor parallelism splits weights and KV cache evenly; recommended TP is the
smallest power of two >= min_partitions dividing the attention and KV heads.
The result is informational: exit 0 whether or not it fits, 2 on bad input.
--model looks in the local Hugging Face cache (HF_HUB_CACHE, HF_HOME) first, then in
the built-in table; no network is used.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fit`` sub-command to the CLI's sub-parsers."""
    parser = sub.add_parser(
        "fit",
        help="check that a model's weights and KV cache fit the GPU partitions (seed §5)",
        description=(
            "Pre-compute weights + KV cache of a model against a CPX partition, by the "
            "guide's formula and by the GQA-aware one vLLM allocates."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", metavar="HF_ID", help="Hugging Face id, e.g. meta-llama/Llama-3.1-8B"
    )
    parser.add_argument(
        "--config",
        metavar="CONFIG_JSON",
        help="a Hugging Face config.json (--model then only names it)",
    )
    parser.add_argument(
        "--dtype",
        default="float16",
        help="weights dtype: float16 (default), bfloat16, float32, float8, auto",
    )
    parser.add_argument(
        "--kv-dtype", default="auto", help="KV cache dtype; auto (default) = --dtype"
    )
    parser.add_argument(
        "--batch-size", default="1", metavar="N", help="sequences at once (default 1)"
    )
    parser.add_argument(
        "--seq-len", default="4096", metavar="TOKENS", help="tokens per sequence (default 4096)"
    )
    parser.add_argument(
        "--partition-gb",
        default=str(DEFAULT_PARTITION_BYTES / GB),
        metavar="GB",
        help="memory of one partition in 10^9 bytes (default 24, CPX/NPS4)",
    )
    parser.add_argument(
        "--formula", choices=FORMULAS, default="gqa", help="KV formula of the verdict (default gqa)"
    )
    parser.add_argument(
        "--params",
        metavar="N",
        help="parameter count (e.g. 7e9) instead of counting it from the config",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    parser.set_defaults(handler=run)


def _number(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"{option} {text!r} is not a number — e.g. {option} 4096") from None
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"{option} must be above zero, not {text} — give a positive size")
    return value


def _whole(text: str, option: str) -> int:
    value = _number(text, option)
    if not value.is_integer():
        raise BadInput(f"{option} must be a whole number, not {text} — e.g. {option} 4096")
    return int(value)


def run(args: argparse.Namespace) -> int:
    """Handler of ``fleetbench fit``; prints the estimate and returns 0."""
    if args.model is None and args.config is None:
        raise BadInput("no model given — pass --model HF_ID or --config CONFIG_JSON")
    batch_size = _whole(args.batch_size, "--batch-size")
    seq_len = _whole(args.seq_len, "--seq-len")
    partition_bytes = round(_number(args.partition_gb, "--partition-gb") * GB)
    params = None if args.params is None else _whole(args.params, "--params")
    result = estimate_fit(
        resolve_model(args.model, args.config),
        dtype=args.dtype,
        kv_dtype=args.kv_dtype,
        batch_size=batch_size,
        seq_len=seq_len,
        partition_bytes=partition_bytes,
        formula=args.formula,
        params=params,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print_table(result, Console())
    return 0


def _gb(value: int) -> str:
    return f"{value / GB:,.2f} GB"


def _yes(value: bool) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


def _print_table(result: FitResult, console: Console) -> None:
    partition = f"{result.partition_bytes / GB:g} GB"
    origin = "given" if result.params_source == "given" else "from config"
    params = f"{result.params / 1e9:,.2f} B ({origin})"
    console.print(f"[bold]{result.model}[/]  ({result.config_source})")
    console.print(
        f"parameters {params}; weights {result.dtype}, KV cache {result.kv_dtype}; "
        f"batch {result.batch_size} × {result.seq_len:,} tokens; partition {partition}"
    )
    marks = {name: " *" if name == result.formula else "" for name in FORMULAS}
    table = Table(title=None, show_header=True, header_style="bold")
    table.add_column("")
    table.add_column(f"GQA-aware (vLLM){marks['gqa']}", justify="right")
    table.add_column(f"guide §5{marks['seed']}", justify="right")
    gqa, seed = result.gqa, result.seed
    table.add_row("weights", _gb(result.weights_bytes), _gb(result.weights_bytes))
    table.add_row(
        "KV cache / token",
        f"{gqa.kv_cache_per_token_bytes:,} B",
        f"{seed.kv_cache_per_token_bytes:,} B",
    )
    table.add_row("KV cache", _gb(gqa.kv_cache_bytes), _gb(seed.kv_cache_bytes))
    table.add_row("total", _gb(gqa.total_bytes), _gb(seed.total_bytes))
    table.add_row(f"fits one {partition} partition", _yes(gqa.fits), _yes(seed.fits))
    table.add_row("min partitions", str(gqa.min_partitions), str(seed.min_partitions))
    console.print(table)
    console.print(f"guide ÷ GQA-aware KV cache: {result.kv_ratio:.2f}×   (* = verdict formula)")
    tp = "none" if result.recommended_tp is None else str(result.recommended_tp)
    console.print(f"recommended tensor-parallel size: [bold]{tp}[/]")
    on = f"on {result.limits_partitions} partition(s)"
    console.print(
        f"longest context at batch {result.batch_size}: {result.max_seq_len:,} tokens {on}; "
        f"largest batch at {result.seq_len:,} tokens: {result.max_batch_size:,} {on}"
    )
    for note in result.notes:
        console.print(f"- {note}", highlight=False)
