"""fleetbench lab: a re-creation of ROCm/MAD scripts/vllm/run_vllm.py of late 2025.

What MAD's does, in the same order and with the same outputs: expand the YAML config into
one run per combination, keep the runs of ``--model`` / ``--benchmark``, run ``vllm bench``
for each (``shell=True, check=True``: the first failing call ends the script) and append
one row per metric to ``perf_<name>.csv``. A serving run whose server never answers leaves a
row without a value.
"""

import argparse
import csv
import itertools
import json
import os
import signal
import subprocess

import yaml

LIST_KEYS = ("model", "tp", "inp", "out", "bs", "num_prompts", "max_concurrency")
COLUMNS = ("model", "benchmark", "tp", "inp", "out", "dtype", "num_prompts",
           "max_concurrency", "bs", "cmd", "performance", "metric", "unit")
SERVER_WAIT = ("timeout 1800 bash -c 'until curl -s http://localhost:8000/v1/models; "
               "do sleep 30; done' || exit 1")


def arguments():
    parser = argparse.ArgumentParser(description="Run VLLM benchmark")
    parser.add_argument("--config", required=True, help="config yaml file")
    parser.add_argument("--benchmark", default=None)
    for key in LIST_KEYS:
        parser.add_argument(f"--{key}", default=None)
    return parser.parse_args()


def expand(args, entries):
    arch = os.environ.get("MAD_SYSTEM_GPU_ARCHITECTURE", "unknown")
    runs = []
    for entry in entries:
        entry = dict(entry)
        entry.update(entry.pop("arch_overrides", {}).get(arch, {}))
        fixed = {k: v for k, v in entry.items() if k not in LIST_KEYS}
        lists = {k: str(v).split() for k, v in entry.items() if k in LIST_KEYS}
        for values in itertools.product(*lists.values()):
            runs.append({**fixed, **dict(zip(lists, values))})
    for key in LIST_KEYS:
        wanted = getattr(args, key)
        if wanted:
            runs = [run for run in runs if run.get(key) == wanted]
    if args.benchmark and args.benchmark != "all":
        runs = [run for run in runs if run["benchmark"] == args.benchmark]
    return runs


def shell(cmd):
    print(cmd, flush=True)
    subprocess.run(cmd, shell=True, check=True)


def with_env(run, cmd):
    return f"{run.pop('env', '')} {cmd} {run.pop('extra_args', '')}".strip()


def latency(model, run):
    out = f"{run['model']}_latency_{run['tp']}_{run['inp']}_{run['out']}_{run['bs']}.json"
    cmd = with_env(run, f"vllm bench latency --model {model} --dtype {run['dtype']} "
                        f"-tp {run['tp']} --input-len {run['inp']} --output-len {run['out']} "
                        f"--batch-size {run['bs']} --num-iters-warmup 3 --num-iters 5 "
                        f"--no-enable-prefix-caching --output-json {out} ")
    run["cmd"] = cmd
    shell(cmd)
    with open(out, encoding="utf-8") as stream:
        result = json.load(stream)
    # MAD's unit says ms; the value is vLLM's avg_latency, in seconds.
    return [{**run, "performance": result["avg_latency"], "metric": "latency", "unit": "ms"}]


def throughput(model, run):
    out = (f"{run['model']}_throughput_{run['tp']}_{run['inp']}_{run['out']}_"
           f"{run['num_prompts']}.json")
    cmd = with_env(run, f"vllm bench throughput --model {model} --dtype {run['dtype']} "
                        f"-tp {run['tp']} --input-len {run['inp']} --output-len {run['out']} "
                        f"--num-prompts {run['num_prompts']} --no-enable-prefix-caching "
                        f"--output-json {out} ")
    run["cmd"] = cmd
    shell(cmd)
    with open(out, encoding="utf-8") as stream:
        result = json.load(stream)
    generated = int(int(run["num_prompts"]) * int(run["out"]) / result["elapsed_time"])
    return [{**run, "performance": str(value), "metric": metric, "unit": "tok/sec"}
            for metric, value in (("throughput_tot", result["tokens_per_second"]),
                                  ("throughput_gen", generated))]


def serving(model, run):
    if not run.get("num_prompts"):
        run["num_prompts"] = str(10 * int(run["max_concurrency"]))
    out = (f"{run['model']}_serving_{run['tp']}_{run['inp']}_{run['out']}_"
           f"{run['num_prompts']}_{run['max_concurrency']}.json")
    server_cmd = with_env(run, f"vllm serve {model} --dtype {run['dtype']} -tp {run['tp']} "
                               "--no-enable-prefix-caching --disable-uvicorn-access-log ")
    run["cmd"] = server_cmd
    print(server_cmd, flush=True)
    server = subprocess.Popen(server_cmd, shell=True, start_new_session=True)
    try:
        if subprocess.run(SERVER_WAIT, shell=True, check=False).returncode != 0:
            print("Server failed to start", flush=True)
            return [run]
        print(f"Server at {server.pid} contacted successfully", flush=True)
        extra = " ".join(f"{k}" if v is True else f"{k} {v}"
                         for k, v in run.pop("bench_args", {}).items())
        bench_cmd = (f"vllm bench serve --model {model} --percentile-metrics ttft,tpot,itl,e2el "
                     "--dataset-name random --ignore-eos --temperature 0 "
                     f"--max-concurrency {run['max_concurrency']} "
                     f"--num-prompts {run['num_prompts']} --random-input-len {run['inp']} "
                     f"--random-output-len {run['out']} --save-result "
                     f"--result-filename {out} {extra}").strip()
        run["cmd"] = f"{server_cmd};{bench_cmd}"
        shell(bench_cmd)
        with open(out, encoding="utf-8") as stream:
            result = json.load(stream)
        metrics = (("throughput_tot", "total_token_throughput", "tok/sec"),
                   ("throughput_gen", "output_throughput", "tok/sec"),
                   ("median_tpot", "median_tpot_ms", "ms"),
                   ("median_itl", "median_itl_ms", "ms"),
                   ("median_e2el", "median_e2el_ms", "ms"))
        return [{**run, "performance": str(result[key]), "metric": metric, "unit": unit}
                for metric, key, unit in metrics]
    finally:
        try:
            os.killpg(server.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        server.wait()


def main():
    args = arguments()
    with open(args.config, encoding="utf-8") as stream:
        print(f"Loading configs from {args.config}")
        runs = expand(args, yaml.safe_load(stream))
    print("Running configs: ", *runs, sep="\n", flush=True)
    for run in runs:
        model = run["model"]
        run["model"] = os.path.basename(model)
        perf = f"perf_{os.path.basename(model)}.csv"
        new = not os.path.exists(perf)
        with open(perf, "a+", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
                stream.flush()
            if os.environ.get("MAD_SECRETS_HFTOKEN"):
                os.environ["HF_TOKEN"] = os.environ["MAD_SECRETS_HFTOKEN"]
            else:
                print("Warning: MAD_SECRETS_HFTOKEN is not set. If a gated model is used, "
                      "please set MAD_SECRETS_HFTOKEN=<your-huggingface-token>")
            extra_args = run.get("extra_args", {})
            if os.environ.get("MAD_DATAHOME"):
                model = os.environ["MAD_DATAHOME"]
            elif extra_args.get("--load-format") != "dummy":
                shell(f'hf download {model} --exclude "original/*" "*.tf" "*.onnx" '
                      '"*.flax" "*.rust"')
            run["env"] = " ".join(f"{k}={v}" for k, v in run.get("env", {}).items())
            run["extra_args"] = "".join(f" {k}" if v is True else f" {k} {v}"
                                        for k, v in extra_args.items())
            kinds = {"latency": latency, "throughput": throughput, "serving": serving}
            if run["benchmark"] not in kinds:
                raise ValueError(f"Unknown benchmark: {run['benchmark']}")
            for row in kinds[run["benchmark"]](model, run):
                writer.writerow({k: row.get(k, "") for k in COLUMNS})


if __name__ == "__main__":
    main()
