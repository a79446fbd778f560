"""Which ROCm/MAD layout a checkout has, and how fleetbench drives its vLLM benchmark.

MAD changed how its vLLM benchmark is started. fleetbench drives two layouts:

``report-script`` (MAD 2024-09 to mid-2025, the deployment guide's)
    ``scripts/vllm/vllm_benchmark_report.sh -s <scenario> -m <model> -g <tp> -d <dtype>``.
``run-yaml`` (MAD from late 2025 on)
    ``scripts/vllm/run.sh --model_repo <model> --config <yaml>``: ``run.sh`` drives
    ``run_vllm.py``, which runs ``vllm bench latency|throughput|serve`` for every point of
    the YAML file's entries whose ``model`` is the one given, and reads the Hugging Face
    token from ``MAD_SECRETS_HFTOKEN``. fleetbench writes that YAML file for the run.

In between (2025-08) ``run.sh`` read CSV configs and no ``run_vllm.py`` existed: fleetbench
does not drive that layout and says which refs to pin instead.

The layout is told by which files the checkout has, on the controller (``--mad-sync``)
and on every host after its checkout (the mad role), with the same function.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, get_args

import yaml

Era = Literal["report-script", "run-yaml"]
"""The MAD layouts fleetbench drives."""
ERAS: tuple[Era, ...] = get_args(Era)

REPORT_SCRIPT = "scripts/vllm/vllm_benchmark_report.sh"
RUN_SH = "scripts/vllm/run.sh"
RUN_VLLM = "scripts/vllm/run_vllm.py"
CONFIG_CSV = "scripts/vllm/config.csv"
#: The files whose presence tells the layout (paths inside a MAD checkout).
MARKERS = (REPORT_SCRIPT, RUN_SH, RUN_VLLM)

#: Where the run.sh era's config for the run is written (relative to ``scripts/vllm``).
RUN_CONFIG = "configs/fleetbench.yaml"

# What `--dtype` of fleetbench becomes in a run_vllm.py config (passed on as vLLM's
# --dtype). float8 needs quantisation arguments whose spelling in the YAML changed between
# MAD versions, so it is refused for this layout rather than guessed.
_RUN_YAML_DTYPES = {"float16": "float16", "bfloat16": "bfloat16"}

# The points the run.sh era runs (run_vllm.py expands space-separated lists): the same
# grid as the lab's report script, so that results of both layouts compare point by point.
_LATENCY = {"inp": "128 2048", "out": "128 2048", "bs": "1 8"}
_THROUGHPUT = {"inp": "128 2048", "out": "128 2048", "num_prompts": "1000"}
_SERVING = {"inp": "128 2048", "out": "128 2048", "num_prompts": "252", "max_concurrency": "128"}
_POINTS = {"latency": _LATENCY, "throughput": _THROUGHPUT, "serving": _SERVING}


@dataclass(frozen=True)
class Detected:
    """A checkout's layout, or why fleetbench cannot drive it (``era`` None)."""

    era: Era | None
    problem: str = ""


def detect_era(present: Collection[str], where: str) -> Detected:
    """The layout of a checkout that has the files ``present`` (paths of :data:`MARKERS`).

    ``where`` names the checkout in the problem (e.g. ``MAD at develop (0123abcd)``). The
    report script wins where both exist: the mid-2025 run.sh still called it.
    """
    files = set(present)
    if REPORT_SCRIPT in files:
        return Detected("report-script")
    if RUN_SH in files and RUN_VLLM in files:
        return Detected("run-yaml")
    fix = ("pass --mad-ref with a MAD commit that has scripts/vllm/vllm_benchmark_report.sh "
           "(MAD to mid-2025) or scripts/vllm/run.sh with run_vllm.py (late 2025 on)")
    if RUN_SH in files:
        return Detected(None, f"{where} runs vLLM through run.sh with CSV configs (MAD of "
                              f"2025-08), a layout fleetbench does not drive — {fix}")
    return Detected(None, f"{where} has neither {REPORT_SCRIPT} nor {RUN_SH} with "
                          f"run_vllm.py — {fix}")


def run_config(model: str, tp: int, dtype: str, scenario: str) -> str:
    """The YAML config ``run_vllm.py`` runs for one slot: ``model`` at TP ``tp`` in
    ``dtype``, the benchmarks of ``scenario`` (``all``: latency, throughput, serving).

    ValueError for a dtype this layout cannot be given (see :func:`run_yaml_dtype_problem`).
    """
    problem = run_yaml_dtype_problem(dtype)
    if problem:
        raise ValueError(problem)
    benchmarks = list(_POINTS) if scenario == "all" else [scenario]
    if any(b not in _POINTS for b in benchmarks):
        raise ValueError(f"scenario {scenario!r} is not one of {(*_POINTS, 'all')}")
    entries = [{"benchmark": b, "model": model, "tp": int(tp), "dtype": _RUN_YAML_DTYPES[dtype],
                **_POINTS[b]} for b in benchmarks]
    text: str = yaml.safe_dump(entries, sort_keys=False, default_flow_style=False)
    return text


def run_yaml_dtype_problem(dtype: str) -> str:
    """Why ``dtype`` cannot be run in the run.sh layout, or ``""``."""
    if dtype in _RUN_YAML_DTYPES:
        return ""
    return (f"--dtype {dtype} is not something fleetbench can pass to MAD's run.sh layout "
            "(its YAML configs name vLLM's --dtype; FP8 comes from an FP8 checkpoint such as "
            "amd/Llama-3.1-8B-Instruct-FP8-KV) — use --dtype float16 or bfloat16, or a "
            "--mad-ref with vllm_benchmark_report.sh")


def report_script_dtype_problem(script: str, dtype: str) -> str:
    """Why the report script ``script`` (its text) would not pass ``dtype`` on, or ``""``.

    The scripts turn ``-d`` into vLLM arguments with ``[[ $datatype == "<dtype>" ]]``
    branches (or pass ``--dtype $dtype`` straight on, MAD 2024-09); a dtype the script's
    code never names gets no ``--dtype`` at all while the reports are still named after it.
    """
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    if re.search(r"--dtype \$\{?(dtype|datatype)\b", code) or re.search(
            rf"(?<![A-Za-z0-9_]){re.escape(dtype)}(?![A-Za-z0-9_])", code):
        return ""
    return (f"its vllm_benchmark_report.sh has no branch for -d {dtype}: vLLM would run in "
            "the model's own dtype while the reports say " + dtype)


def config_table_models(config_csv: str) -> set[str]:
    """Model names (the part after ``org/``) the report script's ``config.csv`` lists."""
    rows = csv.reader(io.StringIO(config_csv))
    next(rows, None)  # header
    return {row[0].strip().split("/")[-1] for row in rows if row and row[0].strip()}


def reads_config_table(script: str) -> bool:
    """Whether the report script takes its throughput points from ``config.csv``."""
    return "config.csv" in script
