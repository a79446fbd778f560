# fleetbench's correctness probe: runs in a slot container after its benchmark, in the same
# image, with the same model, dtype, GPUs and offline Hugging Face cache. It asks the fixed
# prompts greedily (temperature 0, a fixed seed) and writes correctness.json in the current
# folder (the slot's /workspace), which fleetbench compares across the fleet. Standard
# library only (any image's python3).
#
# Argument: one JSON object {"method": "serve"|"offline", "model", "dtype", "tp",
# "prompts": [{"id", "prompt"}], "max_tokens", "seed", "port", "ready_timeout"}.
#   serve:   `vllm serve` on 127.0.0.1:<port>, then /v1/completions per prompt (slots of
#            this host run one at a time: the port is free once MAD's script is done);
#   offline: vllm.LLM(...).generate(...) (slots that run at once, or no `vllm` command).
# The answers go to the file even when some fail; "error" says what went wrong.
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

OUT = Path("correctness.json")
SERVER_LOG = Path("correctness-server.log")


def engine_args(spec):
    """vLLM's engine settings for the run's dtype (float8: FP8 weights, as MAD runs it)."""
    if spec["dtype"] == "float8":
        return {"dtype": "auto", "quantization": "fp8"}
    return {"dtype": spec["dtype"]}


def offline(spec):
    from vllm import LLM, SamplingParams

    settings = engine_args(spec)
    llm = LLM(model=spec["model"], tensor_parallel_size=int(spec["tp"]), seed=int(spec["seed"]),
              **settings)
    params = SamplingParams(temperature=0.0, top_p=1.0, seed=int(spec["seed"]),
                            max_tokens=int(spec["max_tokens"]))
    outputs = llm.generate([p["prompt"] for p in spec["prompts"]], params)
    return [output.outputs[0].text if output.outputs else "" for output in outputs]


def _get(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - 127.0.0.1
        return answer.status


def serve(spec):
    base = f"http://127.0.0.1:{int(spec['port'])}"
    settings = engine_args(spec)
    command = ["vllm", "serve", spec["model"], "--host", "127.0.0.1",
               "--port", str(int(spec["port"])),
               "--tensor-parallel-size", str(int(spec["tp"])), "--seed", str(int(spec["seed"])),
               "--dtype", settings["dtype"]]
    if "quantization" in settings:
        command += ["--quantization", settings["quantization"]]
    with SERVER_LOG.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + float(spec.get("ready_timeout", 1200))
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {server.returncode} before it "
                                   f"was ready: {_tail(SERVER_LOG)}")
            try:
                if _get(base + "/health", 5) == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vllm serve was not ready within "
                                   f"{spec.get('ready_timeout', 1200)}s")
            time.sleep(2)
        texts = []
        for prompt in spec["prompts"]:
            body = json.dumps({"model": spec["model"], "prompt": prompt["prompt"],
                               "max_tokens": int(spec["max_tokens"]), "temperature": 0,
                               "top_p": 1, "seed": int(spec["seed"]), "stream": False}).encode()
            request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
                base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310
                choices = json.load(answer).get("choices") or [{}]
            texts.append(str(choices[0].get("text") or ""))
        return texts
    finally:
        _stop(server)


def _stop(server):
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except OSError:
            return


def _tail(path, lines=3):
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:])


def main():
    spec = json.loads(sys.argv[1])
    method = spec.get("method", "offline")
    if method == "serve" and shutil.which("vllm") is None:
        method = "offline"  # an image without the command: its Python API is the way in
    result = {"model": spec["model"], "dtype": spec["dtype"], "tp": int(spec["tp"]),
              "seed": int(spec["seed"]), "max_tokens": int(spec["max_tokens"])}
    result.update(method=method, temperature=0, answers=[], error=None)
    started = time.time()
    try:
        texts = serve(spec) if method == "serve" else offline(spec)
        result["answers"] = [{"id": p["id"], "prompt": p["prompt"], "text": text}
                             for p, text in zip(spec["prompts"], texts)]
    except SystemExit as error:  # vLLM gave up (it printed why to the log)
        result["error"] = f"the engine exited with code {error.code} — see correctness.log"
    except Exception as error:  # any failure is the probe's finding
        result["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    result["seconds"] = round(time.time() - started, 1)
    partial = OUT.with_suffix(".tmp")
    partial.write_text(json.dumps(result, indent=2))
    partial.replace(OUT)
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
