"""Stand-in for vLLM's online serving benchmark (``benchmark_serving.py``,
``vllm bench serve``): the client side, against a running ``vllm serve``.

It sends real requests (``/v1/completions``, streamed) to the server at ``--base-url`` or
``--host``/``--port`` — an initial single-prompt test run first, as vLLM does, so a server
that is not there fails the point — then reports the host's synthetic timings. With
``--save-result`` it writes vLLM's result JSON (one line, ``json.dump`` without indent).
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm import _args, _lab

BACKENDS = ("vllm", "openai", "openai-chat", "tgi", "lmdeploy", "deepspeed-mii", "sglang")
DATASETS = ("sharegpt", "burstgpt", "sonnet", "random", "hf", "custom")
METRICS = ("ttft", "tpot", "itl", "e2el")
ENGINE_HEADER = "x-fleetbench-lab-engine"
"""The lab server tells its client what its engine is (model figures, tp, bytes per weight:
``vllm._lab.Engine.header``), so the client's timings follow the server's physics."""
_MAX_THREADS = 32
_REQUEST_TIMEOUT_S = 60


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """The client's arguments (vLLM's benchmark_serving.py)."""
    parser.add_argument("--backend", choices=BACKENDS, default="vllm")
    parser.add_argument("--base-url", type=str, default=None)
    parser.add_argument("--host", type=str, default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--endpoint", type=str, default="/v1/completions")
    parser.add_argument("--dataset-name", choices=DATASETS, default="sharegpt")
    parser.add_argument("--dataset-path", type=str, default=None)
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--model", type=str, required=True)
    parser.add_argument("--tokenizer", type=str, default=None)
    parser.add_argument("--use-beam-search", action="store_true")
    parser.add_argument("--num-prompts", type=int, default=1000)
    parser.add_argument("--logprobs", type=int, default=None)
    parser.add_argument("--request-rate", type=float, default=float("inf"))
    parser.add_argument("--burstiness", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--disable-tqdm", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--save-result", action="store_true")
    parser.add_argument("--save-detailed", action="store_true")
    parser.add_argument("--metadata", metavar="KEY=VALUE", nargs="*")
    parser.add_argument("--result-dir", type=str, default=None)
    parser.add_argument("--result-filename", type=str, default=None)
    parser.add_argument("--ignore-eos", action="store_true")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--percentile-metrics", type=str, default="ttft,tpot,itl")
    parser.add_argument("--metric-percentiles", type=str, default="99")
    parser.add_argument("--goodput", nargs="+", required=False)
    parser.add_argument("--sonnet-input-len", type=int, default=550)
    parser.add_argument("--sonnet-output-len", type=int, default=150)
    parser.add_argument("--sonnet-prefix-len", type=int, default=200)
    parser.add_argument("--sharegpt-output-len", type=int, default=None)
    parser.add_argument("--random-input-len", type=int, default=1024)
    parser.add_argument("--random-output-len", type=int, default=128)
    parser.add_argument("--random-range-ratio", type=float, default=0.0)
    parser.add_argument("--random-prefix-len", type=int, default=0)
    parser.add_argument("--tokenizer-mode", type=str, default="auto")
    parser.add_argument("--served-model-name", type=str, default=None)
    parser.add_argument("--lora-modules", nargs="+", default=None)


@dataclass(frozen=True)
class Outcome:
    """One request's fate."""

    success: bool
    text: str
    error: str
    engine: str | None = None


def api_url(args: argparse.Namespace) -> str:
    """The URL the requests go to."""
    if args.base_url is not None:
        return f"{args.base_url}{args.endpoint}"
    return f"http://{args.host}:{args.port}{args.endpoint}"


def _request(url: str, model: str, prompt_len: int, output_len: int, ignore_eos: bool
             ) -> Outcome:
    body = json.dumps({
        "model": model,
        "prompt": "hi " * prompt_len,
        "temperature": 0.0,
        "max_tokens": output_len,
        "logprobs": None,
        "stream": True,
        "ignore_eos": ignore_eos,
    }).encode()
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the script was given
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    text = ""
    try:
        with urllib.request.urlopen(request, timeout=_REQUEST_TIMEOUT_S) as response:  # noqa: S310
            engine = response.headers.get(ENGINE_HEADER)
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[len("data: "):])
                text += chunk["choices"][0].get("text", "")
    except urllib.error.HTTPError as error:
        return Outcome(False, "", f"{error.code} {error.reason}: {error.read().decode()}")
    except (OSError, ValueError, KeyError) as error:
        return Outcome(False, "", f"{type(error).__name__}: {error}")
    return Outcome(True, text, "", engine)


def _fail_test_run(script: str, error: str) -> None:
    _lab.die([
        *_lab.frame(script),
        "  File \"/usr/lib/python3.12/asyncio/runners.py\", line 118, in run",
        "    return self._loop.run_until_complete(task)",
        "ValueError: Initial test run failed - Please make sure benchmark arguments are "
        f"correctly specified. Error: {error}",
    ])


def concurrency(args: argparse.Namespace) -> int:
    """Requests in flight at once: ``--max-concurrency``, at most the prompts and the
    server's default ``--max-num-seqs``."""
    wanted = int(args.max_concurrency or args.num_prompts)
    return max(1, min(wanted, int(args.num_prompts), _lab.MAX_NUM_SEQS))


def timings_ms(args: argparse.Namespace, settings: _lab.Settings, engine: _lab.Engine
               ) -> dict[str, float]:
    """Median TTFT, TPOT, ITL and E2EL of one request on this host and slot (ms), for the
    server's ``engine`` with ``concurrency`` requests in flight: the median request's first
    token waits for half of its wave's prefills, each further token is a decode step of
    the whole wave."""
    inp = args.random_input_len + args.random_prefix_len
    out = args.random_output_len
    batch = concurrency(args)
    speed = _lab.speed(settings)
    wave_prefill = engine.prefill_s(batch, inp)
    ttft = max(engine.prefill_s(1, inp), wave_prefill * (batch + 1) / (2 * batch))
    tpot = engine.decode_step_s(batch, inp + out / 2)
    ttft, tpot = 1000 * ttft / speed, 1000 * tpot / speed
    return {"ttft": ttft, "tpot": tpot, "itl": tpot, "e2el": ttft + tpot * (out - 1)}


def duration_s(args: argparse.Namespace, settings: _lab.Settings, engine: _lab.Engine,
               completed: int) -> float:
    """The benchmark's wall time: the requests run in waves of ``concurrency``."""
    inp = args.random_input_len + args.random_prefix_len
    out = args.random_output_len
    batch = concurrency(args)
    full, rest = divmod(max(completed, 1), batch)
    seconds = full * engine.wave_s(batch, inp, out)
    if rest:
        seconds += engine.wave_s(rest, inp, out)
    return seconds / _lab.speed(settings)


def results(args: argparse.Namespace, settings: _lab.Settings, outcomes: list[Outcome],
            engine: _lab.Engine) -> dict[str, Any]:
    """vLLM's serving result: totals, per-request lists, then the selected statistics."""
    inp = args.random_input_len + args.random_prefix_len
    out = args.random_output_len
    median = timings_ms(args, settings, engine)
    completed = sum(1 for outcome in outcomes if outcome.success)
    duration = duration_s(args, settings, engine, completed)
    output_lens = [out if outcome.success else 0 for outcome in outcomes]
    total_input = inp * completed
    total_output = sum(output_lens)
    result: dict[str, Any] = {
        "duration": duration,
        "completed": completed,
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": completed / duration,
        "request_goodput": None,
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
        "input_lens": [inp for _ in outcomes],
        "output_lens": output_lens,
        "ttfts": [median["ttft"] / 1000 if o.success else 0.0 for o in outcomes],
        "itls": [[median["itl"] / 1000] * max(out - 1, 0) if o.success else [] for o in outcomes],
        "generated_texts": [o.text for o in outcomes],
        "errors": [o.error for o in outcomes],
    }
    selected = [name for name in args.percentile_metrics.split(",") if name]
    percentiles = [float(p) for p in args.metric_percentiles.split(",") if p]
    for name in METRICS:
        if name not in selected:
            continue
        value = median[name] if completed else 0.0
        result[f"mean_{name}_ms"] = value * 1.01
        result[f"median_{name}_ms"] = value
        result[f"std_{name}_ms"] = value * 0.05
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            result[f"p{word}_{name}_ms"] = value * (1 + 0.3 * p / 100)
    return result


def server_engine(args: argparse.Namespace, test: Outcome) -> _lab.Engine:
    """The engine the server said it runs; without a word from it, the model on one
    partition in 16 bits."""
    if test.engine:
        try:
            return _lab.Engine.from_header(test.engine)
        except (ValueError, KeyError):
            pass
    return _lab.engine(str(args.model), 1)


def _print_result(result: dict[str, Any], selected: list[str]) -> None:
    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
    print("{:<40} {:<10}".format("Successful requests:", result["completed"]))
    print("{:<40} {:<10.2f}".format("Benchmark duration (s):", result["duration"]))
    print("{:<40} {:<10}".format("Total input tokens:", result["total_input_tokens"]))
    print("{:<40} {:<10}".format("Total generated tokens:", result["total_output_tokens"]))
    print("{:<40} {:<10.2f}".format("Request throughput (req/s):", result["request_throughput"]))
    print("{:<40} {:<10.2f}".format("Output token throughput (tok/s):",
                                    result["output_throughput"]))
    print("{:<40} {:<10.2f}".format("Total Token throughput (tok/s):",
                                    result["total_token_throughput"]))
    for name in METRICS:
        if name in selected:
            print("{:<40} {:<10.2f}".format(f"Mean {name.upper()} (ms):",
                                            result[f"mean_{name}_ms"]))
            print("{:<40} {:<10.2f}".format(f"Median {name.upper()} (ms):",
                                            result[f"median_{name}_ms"]))
    print("=" * 50)


def main(args: argparse.Namespace, script: str) -> int:
    """Run the client (its start honours the host's planted fault)."""
    print(args)
    settings = _lab.read_settings()
    model_name = args.served_model_name or args.model
    if settings.mode == "hang":
        _lab.hang(1)
    if settings.mode == "slow":
        time.sleep(settings.slow_s)
    url = api_url(args)
    inp = args.random_input_len + args.random_prefix_len
    out = args.random_output_len
    print("Starting initial single prompt test run...")
    if settings.mode == "fail" and _lab.points_done() >= settings.fail_after:
        _fail_test_run(script, f"500 Internal Server Error: {_lab.OOM_MESSAGE}")
    test = _request(url, model_name, inp, out, args.ignore_eos)
    if not test.success:
        _fail_test_run(script, test.error)
    _lab.count_point()
    print("Initial test run completed. Starting main benchmark run...")
    print(f"Traffic request rate: {args.request_rate}")
    print(f"Burstiness factor: {args.burstiness} (Poisson process)")
    print(f"Maximum request concurrency: {args.max_concurrency}")
    threads = min(args.max_concurrency or _MAX_THREADS, _MAX_THREADS)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(pool.map(
            lambda _: _request(url, model_name, inp, out, args.ignore_eos),
            range(args.num_prompts),
        ))
    result = results(args, settings, outcomes, server_engine(args, test))
    _print_result(result, args.percentile_metrics.split(","))
    if args.save_result:
        current = time.strftime("%Y%m%d-%H%M%S")
        saved: dict[str, Any] = {
            "date": current,
            "backend": args.backend,
            "model_id": args.model,
            "tokenizer_id": args.tokenizer or args.model,
            "num_prompts": args.num_prompts,
        }
        for item in args.metadata or []:
            key, _, value = item.partition("=")
            saved[key.strip()] = value.strip()
        saved["request_rate"] = args.request_rate if args.request_rate < float("inf") else "inf"
        saved["burstiness"] = args.burstiness
        saved["max_concurrency"] = args.max_concurrency
        saved.update(result)
        concurrency = (f"-concurrency{args.max_concurrency}"
                       if args.max_concurrency is not None else "")
        name = (args.result_filename or f"{args.backend}-{args.request_rate}qps{concurrency}-"
                f"{args.model.split('/')[-1]}-{current}.json")
        path = Path(args.result_dir) / name if args.result_dir else Path(name)
        with path.open("w", encoding="utf-8") as handle:
            json.dump(saved, handle)
    return 0


def parse(argv: list[str], prog: str | None = None) -> argparse.Namespace:
    """Parse ``argv`` as vLLM does (exit 2 with argparse's message on bad input)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Benchmark the online serving throughput."
    )
    add_cli_args(parser)
    args = parser.parse_args(_args.normalise_argv(argv))
    validate(parser, args)
    return args


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What vLLM rejects after parsing (argparse-style error, exit 2)."""
    _args.check_positive(parser, num_prompts=args.num_prompts,
                         max_concurrency=args.max_concurrency,
                         random_input_len=args.random_input_len,
                         random_output_len=args.random_output_len)
    if args.dataset_name != "random":
        parser.error(f"the fleetbench lab's vLLM has no datasets: use --dataset-name random, "
                     f"not {args.dataset_name}")
    unknown = [m for m in args.percentile_metrics.split(",") if m and m not in METRICS]
    if unknown:
        parser.error(f"unknown --percentile-metrics {','.join(unknown)} "
                     f"(allowed: {', '.join(METRICS)})")
