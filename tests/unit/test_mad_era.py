"""MAD's layouts: told from a checkout's files, the run.sh layout's YAML, era-aware checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from fleetbench import mad_era
from fleetbench.errors import BadInput
from fleetbench.lab.mad import create_mad_repo, era_files
from fleetbench.madsync import check_scenario, resolve_snapshot

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def mad_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_mad_repo(tmp_path_factory.mktemp("mad") / "MAD").path


@pytest.mark.parametrize(("files", "era"), [
    ({mad_era.REPORT_SCRIPT}, "report-script"),
    # mid-2025: run.sh still called the report script, which decides
    ({mad_era.REPORT_SCRIPT, mad_era.RUN_SH}, "report-script"),
    ({mad_era.RUN_SH, mad_era.RUN_VLLM}, "run-yaml"),
])
def test_layout_from_files(files: set[str], era: str) -> None:
    assert mad_era.detect_era(files, "MAD at x") == mad_era.Detected(era)  # type: ignore[arg-type]


@pytest.mark.parametrize(("files", "words"), [
    ({mad_era.RUN_SH}, "run.sh with CSV configs"),
    (set(), "has neither scripts/vllm/vllm_benchmark_report.sh nor"),
])
def test_layouts_fleetbench_does_not_drive(files: set[str], words: str) -> None:
    detected = mad_era.detect_era(files, "MAD at main (0123456789ab)")
    assert detected.era is None
    assert detected.problem.startswith("MAD at main (0123456789ab)")
    assert words in detected.problem and "--mad-ref" in detected.problem


@pytest.mark.parametrize(("era", "expected"), [("D", "report-script"), ("F", "run-yaml")])
def test_the_labs_eras(era: str, expected: str) -> None:
    present = [p for p in mad_era.MARKERS if p in era_files(era)]  # type: ignore[arg-type]
    assert mad_era.detect_era(present, "lab").era == expected


def test_run_config_for_all() -> None:
    entries = yaml.safe_load(mad_era.run_config(MODEL, 8, "bfloat16", "all"))
    assert [e["benchmark"] for e in entries] == ["latency", "throughput", "serving"]
    assert {(e["model"], e["tp"], e["dtype"]) for e in entries} == {(MODEL, 8, "bfloat16")}
    latency, throughput, serving = entries
    # run_vllm.py expands space-separated lists: 2 x 2 x 2 latency points, 4 throughput.
    assert (latency["inp"], latency["out"], latency["bs"]) == ("128 2048", "128 2048", "1 8")
    assert "bs" not in throughput and throughput["num_prompts"] == "1000"
    assert serving["max_concurrency"] == "128"
    # nothing version-specific (env, extra_args changed spelling between MAD versions)
    assert all(set(e) <= {"benchmark", "model", "tp", "dtype", "inp", "out", "bs",
                          "num_prompts", "max_concurrency"} for e in entries)


def test_run_config_for_one_scenario_and_bad_dtype() -> None:
    entries = yaml.safe_load(mad_era.run_config(MODEL, 1, "float16", "serving"))
    assert [e["benchmark"] for e in entries] == ["serving"]
    with pytest.raises(ValueError, match=r"--dtype float8 .* float16 or bfloat16"):
        mad_era.run_config(MODEL, 1, "float8", "latency")


# The throughput loop and dtype branches of ROCm/MAD's report script of early 2025, in
# short: float16 and float8 only, throughput points from config.csv.
ERA_C_SCRIPT = """#!/bin/bash
while getopts s:m:g:d: flag; do
  case "${flag}" in s) scenario=${OPTARG};; m) model=${OPTARG};; g) numgpu=${OPTARG};; d) datatype=${OPTARG};; esac
done
# bfloat16 is not handled (this comment does not count)
if [[ $datatype == "float16" ]]; then DTYPE=" --dtype float16 "
elif [[ $datatype == "float8" ]]; then DTYPE=" --dtype float16 --quantization fp8 "
fi
if [ "$scenario" == "serving" ] || [ "$scenario" == "all" ]; then echo "[INFO] SERVING"; fi
while IFS="," read -r model_cfg input_len output_len num_prompts; do :; done < <(tail -n +2 config.csv)
"""
ERA_C_TABLE = """model,input_len,output_len,num_prompts
meta-llama/Llama-3.1-8B-Instruct,128,128,4000
"""


def _commit(repo: Path, files: dict[str, str], message: str) -> None:
    for relative, text in files.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(text)
    env = ["-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "commit.gpgSign=false"]
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *env, "commit", "-qm", message], check=True)


@pytest.fixture(scope="module")
def era_c_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("madC") / "MAD"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _commit(repo, {mad_era.REPORT_SCRIPT: ERA_C_SCRIPT,
                   mad_era.CONFIG_CSV: ERA_C_TABLE}, "era C")
    return repo


def test_era_c_refuses_a_dtype_its_script_does_not_pass(era_c_checkout: Path) -> None:
    snapshot = resolve_snapshot(era_c_checkout, None)
    assert snapshot.era == "report-script" and snapshot.runs_serving
    check_scenario(snapshot, "all", dtype="float16", model=MODEL)
    with pytest.raises(BadInput, match=r"layout report-script\): its vllm_benchmark_report.sh "
                                       r"has no branch for -d bfloat16"):
        check_scenario(snapshot, "latency", dtype="bfloat16", model=MODEL)


def test_era_c_refuses_a_model_absent_from_its_config_table(era_c_checkout: Path) -> None:
    snapshot = resolve_snapshot(era_c_checkout, None)
    with pytest.raises(BadInput, match=r"Qwen/Qwen2-7B-Instruct is not in its "
                                       r"scripts/vllm/config.csv, .* --scenario latency"):
        check_scenario(snapshot, "throughput", dtype="float16", model="Qwen/Qwen2-7B-Instruct")
    # latency does not read the table
    check_scenario(snapshot, "latency", dtype="float16", model="Qwen/Qwen2-7B-Instruct")


def test_run_yaml_snapshot(mad_checkout: Path) -> None:
    snapshot = resolve_snapshot(mad_checkout, "v-era-f")
    assert (snapshot.era, snapshot.runs_serving) == ("run-yaml", True)
    check_scenario(snapshot, "serving", dtype="bfloat16", model=MODEL)
    with pytest.raises(BadInput, match=r"layout run-yaml\): --dtype float8 is not"):
        check_scenario(snapshot, "all", dtype="float8", model=MODEL)


def test_lab_era_d_passes_every_dtype(mad_checkout: Path) -> None:
    snapshot = resolve_snapshot(mad_checkout, "v-era-d")
    for dtype in ("float16", "bfloat16", "float8"):
        check_scenario(snapshot, "all", dtype=dtype, model=MODEL)
