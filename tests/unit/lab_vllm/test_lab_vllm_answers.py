"""The lab model's answers (offline ``vllm.LLM`` and ``vllm serve``), its planted garbage,
and the benchmark role's correctness probe run against them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import yaml

from fleetbench.correctness import degenerate, probe_from_dict
from tests.conftest import REPO
from tests.unit.lab_vllm.conftest import MODEL, STANDINS, Standins

PROBE = REPO / "roles" / "benchmark" / "files" / "correctness-probe.py"
PROMPTS: list[dict[str, str]] = yaml.safe_load(
    (REPO / "roles" / "benchmark" / "defaults" / "main.yml").read_text()
)["benchmark_correctness_prompts"]

GENERATE = """
import json, sys
from vllm import LLM, SamplingParams
llm = LLM(model=sys.argv[1], tensor_parallel_size=1, dtype="float16", seed=0)
params = SamplingParams(temperature=0.0, seed=0, max_tokens=int(sys.argv[2]))
print(json.dumps([o.outputs[0].text for o in llm.generate(sys.argv[3:], params)]))
"""


def _generate(standins: Standins, *prompts: str, max_tokens: int = 32
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", GENERATE, MODEL, str(max_tokens), *prompts],
                          cwd=standins.root, env=standins.env(), capture_output=True,
                          text=True, timeout=60, check=False)


def test_offline_answers_are_deterministic_and_sensible(standins: Standins) -> None:
    prompts = [p["prompt"] for p in PROMPTS] + ["Something the lab model was never asked:"]
    first = _generate(standins, *prompts)
    assert first.returncode == 0, first.stderr
    answers = json.loads(first.stdout.splitlines()[-1])
    assert answers[0].startswith(" Paris.")
    assert answers[1] == " 42"
    assert all(degenerate(text) is None for text in answers), answers
    # Another host, another slot: the same answers (greedy decoding of one model).
    standins.settings["host"] = "lab02"
    standins.extra_env["FLEETBENCH_LAB_SLOT"] = "slot5"
    again = _generate(standins, *prompts)
    assert json.loads(again.stdout.splitlines()[-1]) == answers
    short = _generate(standins, prompts[0], max_tokens=2)
    assert json.loads(short.stdout.splitlines()[-1]) == [" Paris. It"]


def test_a_garbage_slot_answers_exclamation_marks(standins: Standins) -> None:
    standins.settings["garbage"] = "slot1,slot3"
    standins.extra_env["FLEETBENCH_LAB_SLOT"] = "slot3"
    done = _generate(standins, PROMPTS[0]["prompt"], max_tokens=8)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["!!!!!!!!"]
    standins.extra_env["FLEETBENCH_LAB_SLOT"] = "slot2"
    assert json.loads(_generate(standins, PROMPTS[0]["prompt"]).stdout.splitlines()[-1])[0].startswith(" Paris")


def test_loading_the_model_obeys_the_hosts_faults(standins: Standins) -> None:
    standins.settings["mode"] = "fail"
    done = _generate(standins, "hi")
    assert done.returncode == 1
    assert "torch.OutOfMemoryError: HIP out of memory" in done.stderr


def _spec(method: str, port: int = 8000) -> str:
    return json.dumps({"method": method, "model": MODEL, "dtype": "float16", "tp": 1,
                       "prompts": PROMPTS, "max_tokens": 32, "seed": 0, "port": port,
                       "ready_timeout": 30})


def _probe(standins: Standins, spec: str) -> tuple[int, dict[str, Any]]:
    env = {**standins.env(), "PATH": f"{STANDINS / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-c", PROBE.read_text(), spec], cwd=standins.root,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    result = json.loads((standins.root / "correctness.json").read_text())
    assert not (standins.root / "correctness.tmp").exists()
    return done.returncode, result


def test_probe_offline_writes_every_answer(standins: Standins) -> None:
    code, result = _probe(standins, _spec("offline"))
    assert code == 0
    assert result["method"] == "offline" and result["error"] is None
    assert result["temperature"] == 0 and result["seed"] == 0 and result["tp"] == 1
    assert [a["id"] for a in result["answers"]] == [p["id"] for p in PROMPTS]
    assert result["answers"][0]["text"].startswith(" Paris.")
    probe = probe_from_dict(result, "lab01", "slot0")
    assert probe.group == (MODEL, "float16", 1) and len(probe.answers) == len(PROMPTS)


def test_probe_serve_asks_the_served_endpoint(
        standins: Standins, free_port: int, background: Callable[..., Any]) -> None:
    code, served = _probe(standins, _spec("serve", free_port))
    assert code == 0, served
    assert served["method"] == "serve" and served["error"] is None
    _, offline = _probe(standins, _spec("offline"))
    assert served["answers"] == offline["answers"]
    log = (standins.root / "correctness-server.log").read_text()
    assert "Uvicorn running on http://127.0.0.1" in log and "Shutting down" in log


def test_probe_records_an_engine_that_fails(standins: Standins) -> None:
    standins.settings["mode"] = "fail"
    code, result = _probe(standins, _spec("offline"))
    assert code == 1
    assert result["answers"] == []
    assert result["error"] == "the engine exited with code 1 — see correctness.log"


def test_probe_records_a_server_that_dies(standins: Standins, free_port: int) -> None:
    standins.settings["mode"] = "fail"
    code, result = _probe(standins, _spec("serve", free_port))
    assert code == 1 and result["answers"] == []
    assert result["error"].startswith("RuntimeError: vllm serve exited with 1 before it was "
                                      "ready")
    assert "HIP out of memory" in result["error"]


def test_the_served_completion_is_the_garbage_too(standins: Standins, free_port: int) -> None:
    standins.settings["garbage"] = "slot3"
    standins.extra_env["FLEETBENCH_LAB_SLOT"] = "slot3"
    code, result = _probe(standins, _spec("serve", free_port))
    assert code == 0
    assert {a["text"] for a in result["answers"]} == {"!" * 32}
