"""A slot is judged from its collected reports and log, never from its exit code alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetbench.slot_verdict import (
    NO_RESULTS,
    OK,
    PARTIAL,
    SIGNATURE_LIMIT,
    TIMEOUT,
    ScenarioPoints,
    SlotFiles,
    count_points,
    expected_scenarios,
    failed_slots_reason,
    failure_signature,
    judge_slot,
    judge_slots,
    planned_points,
    read_slot,
)

MAD = Path(__file__).resolve().parents[1] / "fixtures" / "mad"
ERA_D = MAD / "eraD_2025-06_rocm6.4.1"
ERA_B = MAD / "eraB_2024-11-05_8f4dcbb"
NAME = "Llama-3.1-8B-Instruct"
MODEL = f"meta-llama/{NAME}"
ERA_D_SUMMARY = Path("reports_float16_vllm_rocm6.4.1") / "summary"

# The points of MAD's era D sweep as its script echoes them before each vLLM call
# (`echo $model $mode $bat $tp $inp $out`, serving adds max_concurrency).
ERA_D_POINTS = {
    "latency": [f"{b} 1 {i} {o}" for o in (128, 2048) for i in (128, 2048)
                for b in (1, 8, 32, 128)],
    "throughput": ["4000 1 128 128", "3000 1 128 2048", "3000 1 2048 128", "1500 1 2048 2048"],
    "serving": [f"252 1 {i} {o} 128" for i in (128, 2048) for o in (128, 2048)],
}
ERA_B_POINTS = {
    "latency": [f"{b} 1 {i} 1" for i in (128, 2048) for b in (1, 2, 4, 8, 16, 32, 64, 128, 256)]
    + [f"{b} 1 1 128" for b in (1, 2, 4, 8, 16, 32, 64, 128, 256)],
    "throughput": ["30000 1 128 128", "3000 1 2048 128", "3000 1 128 2048", "1500 1 2048 2048"],
}

VLLM_START = (
    "INFO 06-12 10:15:02 [__init__.py:239] Automatically detected platform rocm.\n"
    "INFO 06-12 10:15:09 [config.py:3362] Using max model len 131072\n"
)
HIP_OOM = (
    "Traceback (most recent call last):\n"
    '  File "/app/vllm/benchmarks/benchmark_{scenario}.py", line 173, in <module>\n'
    "    main(args)\n"
    '  File "/usr/local/lib/python3.12/dist-packages/vllm/worker/model_runner.py", line 1291,'
    " in profile_run\n"
    "    self.execute_model(model_input, kv_caches, intermediate_tensors)\n"
    "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 3.50 GiB. GPU 0 has a total"
    " capacity of 191.98 GiB of which 1.12 GiB is free.\n"
)
# MAD's report step runs after every vLLM call, also after a failed one.
REPORT_TOOL_MISSING_JSON = (
    "Traceback (most recent call last):\n"
    '  File "/workspace/MAD/scripts/vllm/vllm_benchmark_report.py", line 75, in <module>\n'
    "    with open(args.input_json, newline='') as inpf:\n"
    "         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    "FileNotFoundError: [Errno 2] No such file or directory: "
    "'reports_float16_vllm_rocm6.4.1/x.json'\n"
)


def sweep_log(points: dict[str, list[str]], failing: frozenset[str] = frozenset(),
              tail: str = "") -> str:
    """A benchmark.log as the script writes it: a section per scenario, a line per point,
    vLLM's own output, and a failure after every point of a ``failing`` scenario."""
    text = f"MODEL: {MODEL} \n"
    for scenario, lines in points.items():
        text += f"[INFO] {scenario.upper()}\n"
        for numbers in lines:
            text += f"{MODEL} {scenario} {numbers}\n{VLLM_START}"
            if scenario in failing:
                text += HIP_OOM.format(scenario=scenario) + REPORT_TOOL_MISSING_JSON
    return text + "Generate report of multiple results\n" + tail


def slot_from(tmp_path: Path, era: Path, log: str | None, *, drop: tuple[str, ...] = ()
              ) -> Path:
    """A collected slot folder: the era's report files (``drop`` removed) under MAD's
    layout, and its log."""
    slot = tmp_path / "slot0"
    vllm = slot / "MAD" / "scripts" / "vllm"
    vllm.mkdir(parents=True)
    for item in era.iterdir():
        if item.name.startswith("reports_"):
            shutil.copytree(item, vllm / item.name)
        elif item.name.startswith("perf_"):
            shutil.copy(item, slot / "MAD" / "scripts" / item.name)
    for pattern in drop:
        for path in slot.rglob(pattern):
            path.unlink()
    if log is not None:
        (slot / "benchmark.log").write_text(log)
    return slot


# --- complete results -------------------------------------------------------------------------


def test_an_era_d_sweep_with_every_point_is_ok(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_D, sweep_log(ERA_D_POINTS))
    verdict = judge_slot("all", read_slot(slot), exit_code=0)
    assert verdict.status == OK
    assert verdict.summary == ("latency: 16 of 16 points; throughput: 4 of 4 points; "
                               "serving: 4 of 4 points")


def test_exit_1_with_every_report_written_is_ok_and_says_so(tmp_path: Path) -> None:
    # The real script's last command is `mv perf_<name>.csv ../`: when only that fails,
    # every report is there and the script still exits 1.
    log = sweep_log(ERA_D_POINTS, tail=(
        "Traceback (most recent call last):\n"
        '  File "/workspace/MAD/scripts/vllm/parse_csv.py", line 4, in <module>\n'
        "    import pandas as pd\n"
        "ModuleNotFoundError: No module named 'pandas'\n"
        f"mv: cannot stat 'perf_{NAME}.csv': No such file or directory\n"))
    slot = slot_from(tmp_path, ERA_D, log, drop=("perf_*.csv",))
    verdict = judge_slot("all", read_slot(slot), exit_code=1)
    assert verdict.status == OK
    assert "the script exited 1 with every report written" in verdict.summary
    assert "log shows: ModuleNotFoundError: No module named 'pandas'" in verdict.summary


def test_all_in_an_era_without_serving_needs_latency_and_throughput_only(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_B, sweep_log(ERA_B_POINTS))
    verdict = judge_slot("all", read_slot(slot), exit_code=0)
    assert verdict.status == OK
    assert verdict.summary == "latency: 27 of 27 points; throughput: 4 of 4 points"


def test_without_point_lines_in_the_log_the_reports_rows_count(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_D, "MODEL: x\n")
    verdict = judge_slot("latency", read_slot(slot), exit_code=0)
    assert (verdict.status, verdict.summary) == (OK, "latency: 16 of 16 points")


# --- no results ----------------------------------------------------------------------------------


def test_exit_0_with_every_vllm_call_failed_is_no_results(tmp_path: Path) -> None:
    # What the real script leaves when every vLLM call fails: no summary report, a 1-byte
    # perf file (pandas writing an empty table), and exit 0 from the final mv.
    slot = tmp_path / "slot0"
    (slot / "MAD" / "scripts" / "vllm" / "reports_float16_vllm_rocm6.4.1" / "summary").mkdir(
        parents=True)
    (slot / "MAD" / "scripts" / f"perf_{NAME}.csv").write_text("\n")
    (slot / "benchmark.log").write_text(
        sweep_log(ERA_D_POINTS, failing=frozenset(ERA_D_POINTS)))
    verdict = judge_slot("all", read_slot(slot), exit_code=0)
    assert verdict.status == NO_RESULTS
    assert verdict.summary.startswith(
        "latency: 0 of 16 points; throughput: 0 of 4 points; serving: 0 of 4 points; "
        "the script exited 0; log shows: torch.OutOfMemoryError: HIP out of memory.")


def test_a_slot_folder_without_files_is_no_results(tmp_path: Path) -> None:
    slots = {"slot3": {"status": "exited", "exit_code": 91, "hip_visible_devices": "24"}}
    judged = judge_slots(tmp_path, slots, "latency")
    assert judged == {"slot3": {
        "status": NO_RESULTS, "exit_code": 91, "hip_visible_devices": "24",
        "summary": "latency: no results; the script exited 91; no benchmark.log"}}


def test_slots_of_a_host_whose_files_never_came_back(tmp_path: Path) -> None:
    slot_from(tmp_path, ERA_D, sweep_log(ERA_D_POINTS))  # an earlier attempt's files
    slots = {"slot0": {"status": "exited", "exit_code": 0},
             "slot1": {"status": "failed:timeout", "exit_code": 137, "timed_out": True},
             "slot7": {"status": "skipped:gpus", "summary": "slot7 needs GPU 63"}}
    judged = judge_slots(tmp_path, slots, "all", timeout_s=60, collected=False)
    assert judged["slot0"]["status"] == NO_RESULTS
    assert judged["slot0"]["summary"] == (
        "latency: no results; throughput: no results; the script exited 0; "
        "nothing was collected from the host")
    assert judged["slot1"]["status"] == TIMEOUT
    assert judged["slot1"]["summary"].startswith("killed after the 60s timeout;")
    assert judged["slot7"] == slots["slot7"]


def test_every_slot_that_ran_is_judged_from_its_folder(tmp_path: Path) -> None:
    slot_from(tmp_path, ERA_D, sweep_log(ERA_D_POINTS))
    judged = judge_slots(tmp_path, {"slot0": {"status": "exited", "exit_code": 1,
                                              "oom_killed": False, "timed_out": False}}, "all")
    assert judged["slot0"]["status"] == OK
    assert judged["slot0"]["exit_code"] == 1
    assert "the script exited 1 with every report written" in judged["slot0"]["summary"]


def test_a_report_that_cannot_be_read_is_no_results(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_D, sweep_log(ERA_D_POINTS))
    report = slot / "MAD" / "scripts" / "vllm" / ERA_D_SUMMARY / f"{NAME}_latency_report.csv"
    report.write_bytes(report.read_bytes().replace(b"1570.32", b"15x0.32"))
    verdict = judge_slot("all", read_slot(slot), exit_code=0)
    assert verdict.status == NO_RESULTS
    assert verdict.summary.startswith("a report cannot be read: ")
    assert "latency_report.csv line 2" in verdict.summary


# --- partial results ------------------------------------------------------------------------------


def test_a_scenario_without_results_is_partial_with_k_of_n(tmp_path: Path) -> None:
    log = sweep_log(ERA_D_POINTS, failing=frozenset({"throughput"}))
    # The perf file is derived from the summaries, so it lacks throughput too.
    slot = slot_from(tmp_path, ERA_D, log, drop=(f"{NAME}_throughput_report.csv", "perf_*"))
    verdict = judge_slot("all", read_slot(slot), exit_code=0)
    assert verdict.status == PARTIAL
    assert verdict.summary.startswith(
        "throughput: 0 of 4 points; the script exited 0; log shows: torch.OutOfMemoryError")


def test_serving_that_never_started_is_missing_from_an_era_d_all(tmp_path: Path) -> None:
    log = sweep_log(ERA_D_POINTS, failing=frozenset({"serving"}))
    slot = slot_from(tmp_path, ERA_D, log, drop=(f"{NAME}_serving_report.csv", "perf_*"))
    verdict = judge_slot("all", read_slot(slot), exit_code=0)
    assert verdict.status == PARTIAL
    assert verdict.summary.startswith("serving: 0 of 4 points;")


def test_a_serving_sweep_the_log_announces_is_expected(tmp_path: Path) -> None:
    # The serving section began, then the container died before its first point.
    log = sweep_log({k: v for k, v in ERA_D_POINTS.items() if k != "serving"},
                    tail="[INFO] SERVING\nKilled\n")
    slot = slot_from(tmp_path, ERA_D, log, drop=(f"{NAME}_serving_report.csv", "perf_*"))
    verdict = judge_slot("all", read_slot(slot), exit_code=137)
    assert (verdict.status, verdict.summary) == (
        PARTIAL, "serving: no results; the script exited 137; log shows: Killed")


def test_points_missing_from_a_report_are_counted(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_D, sweep_log(ERA_D_POINTS), drop=("perf_*",))
    report = slot / "MAD" / "scripts" / "vllm" / ERA_D_SUMMARY / f"{NAME}_latency_report.csv"
    lines = report.read_bytes().split(b"\r\n")
    report.write_bytes(b"\r\n".join([*lines[:4], b""]))  # the header and 3 of 16 rows
    verdict = judge_slot("latency", read_slot(slot), exit_code=0)
    assert (verdict.status, verdict.summary) == (PARTIAL, "latency: 3 of 16 points; the script "
                                                          "exited 0")


def test_a_failed_measurement_is_not_a_result(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_D, sweep_log(ERA_D_POINTS), drop=("perf_*",))
    report = slot / "MAD" / "scripts" / "vllm" / ERA_D_SUMMARY / f"{NAME}_serving_report.csv"
    report.write_bytes(report.read_bytes().replace(b",20300,", b",,", 1))
    verdict = judge_slot("serving", read_slot(slot), exit_code=0)
    assert verdict.status == PARTIAL
    assert verdict.summary.startswith("serving: 3 of 4 points (1 failed measurement)")


# --- timeouts, OOM kills -----------------------------------------------------------------------


def test_a_killed_slot_is_a_timeout_whatever_it_wrote(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_D, sweep_log(ERA_D_POINTS))
    verdict = judge_slot("all", read_slot(slot), exit_code=137, timed_out=True, timeout_s=600)
    assert verdict.status == TIMEOUT
    assert verdict.summary.startswith("killed after the 600s timeout; latency: 16 of 16 points")


def test_an_oom_killed_container_is_named(tmp_path: Path) -> None:
    log = sweep_log({"latency": ERA_D_POINTS["latency"][:2]}, tail="Killed\n")
    verdict = judge_slot("latency", SlotFiles(log=log), exit_code=137, oom_killed=True)
    assert verdict.status == NO_RESULTS
    assert verdict.summary == ("latency: 0 of 2 points; the script exited 137; the container "
                               "was killed for lack of memory; log shows: Killed")


# --- reading the log -----------------------------------------------------------------------------


def test_planned_points_come_from_the_scripts_point_lines() -> None:
    counts = planned_points(sweep_log(ERA_D_POINTS, failing=frozenset({"latency"})))
    assert counts == {"latency": 16, "throughput": 4, "serving": 4}
    # CRLF logs, and lines that only look alike, are read as such.
    assert planned_points(f"{MODEL} latency 1 8 128 128\r\n") == {"latency": 1}
    assert planned_points("INFO latency 1 8 128 128\n[INFO] THROUGHPUT\n") == {}


GATED_CHAIN = f"""\
Traceback (most recent call last):
  File "/usr/local/lib/python3.12/dist-packages/huggingface_hub/utils/_http.py", line 409
    response.raise_for_status()
requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://huggingface.co/{MODEL}/resolve/main/config.json

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/usr/local/lib/python3.12/dist-packages/transformers/utils/hub.py", line 424
    hf_hub_download(
huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6650b2c1)

Cannot access gated repo for url https://huggingface.co/{MODEL}/resolve/main/config.json.
Access to model {MODEL} is restricted. You must have access to it and be authenticated.

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/vllm/benchmarks/benchmark_latency.py", line 173, in <module>
    main(args)
OSError: You are trying to access a gated repo.
Make sure to have access to it at https://huggingface.co/{MODEL}.
"""


@pytest.mark.parametrize(("log", "signature"), [
    (sweep_log(ERA_D_POINTS, failing=frozenset({"serving"})),
     "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 3.50 GiB. GPU 0 has a total "
     "capacity of 191.98 GiB of which 1.12 GiB is free."),
    # A chain of tracebacks: its last exception is what went wrong for the script.
    (f"{MODEL} latency 1 8 128 128\n{GATED_CHAIN}{REPORT_TOOL_MISSING_JSON}",
     "OSError: You are trying to access a gated repo."),
    # vLLM's worker processes prefix their output.
    ("INFO 06-12 [multiproc_worker_utils.py:226] Worker ready\n"
     "(VllmWorkerProcess pid=2291) Traceback (most recent call last):\n"
     '(VllmWorkerProcess pid=2291)   File "/usr/local/lib/python3.12/vllm/worker.py", line 9\n'
     "(VllmWorkerProcess pid=2291)     self.model_runner.profile_run()\n"
     "(VllmWorkerProcess pid=2291) RuntimeError: HIP error: invalid device ordinal\n",
     "RuntimeError: HIP error: invalid device ordinal"),
    ("INFO 06-12 10:15:02 loading weights\n"
     ":0:rocdevice.cpp            :2982: 1296582893 us: [pid:42 tid:0x7f] Callback: Queue "
     "0x7f aborting with error : HSA_STATUS_ERROR_OUT_OF_RESOURCES: The runtime failed to "
     "allocate the necessary resources. code: 0x1008\n"
     "hipErrorOutOfMemory\n", "hipErrorOutOfMemory"),
    ("ERROR 06-12 10:16:40 [api_server.py:99] Failed to connect to 127.0.0.1:8000: "
     "Connection refused\n",
     "ERROR 06-12 10:16:40 [api_server.py:99] Failed to connect to 127.0.0.1:8000: "
     "Connection refused"),
    ("./vllm_benchmark_report.sh: line 101: python3: command not found\n",
     "./vllm_benchmark_report.sh: line 101: python3: command not found"),
    ("meta-llama/x latency 1 8 128 128\n./vllm_benchmark_report.sh: line 96:  2718 Killed"
     "                  python3 $tool_latency --model $model\n",
     "./vllm_benchmark_report.sh: line 96: 2718 Killed python3 $tool_latency --model $model"),
    ("Processed prompts:  10%|#         | 400/4000\rProcessed prompts:  20%|##  | 800/4000"
     "\rRuntimeError: CUDA error: an illegal memory access was encountered\n",
     "RuntimeError: CUDA error: an illegal memory access was encountered"),
])
def test_the_first_failure_of_a_log_is_one_trimmed_line(log: str, signature: str) -> None:
    assert failure_signature(log) == signature


def test_a_clean_log_has_no_failure_signature() -> None:
    assert failure_signature(sweep_log(ERA_D_POINTS)) is None


def test_a_long_failure_line_is_cut() -> None:
    found = failure_signature("ValueError: out of memory " + "x" * 500 + "\n")
    assert found is not None and len(found) == SIGNATURE_LIMIT and found.endswith("…")


def test_a_traceback_without_its_end_names_itself() -> None:
    assert failure_signature("Traceback (most recent call last):\n  File \"a.py\", line 1\n") \
        == "Traceback (most recent call last):"


# --- pieces -------------------------------------------------------------------------------------


def test_all_means_serving_too_only_where_the_era_runs_it() -> None:
    assert expected_scenarios("all") == ("latency", "throughput")
    assert expected_scenarios("all", {"latency", "serving"}) == ("latency", "throughput",
                                                                 "serving")
    assert expected_scenarios("serving") == ("serving",)
    with pytest.raises(ValueError, match="prefill"):
        expected_scenarios("prefill")


def test_points_are_configurations_not_metrics(tmp_path: Path) -> None:
    slot = slot_from(tmp_path, ERA_D, None)
    # 4 serving points carry 6 metrics each; the perf file repeats what the summaries hold.
    assert count_points(read_slot(slot).records) == {
        "latency": (16, 0), "throughput": (4, 0), "serving": (4, 0)}


def test_scenario_points_describe_themselves() -> None:
    assert ScenarioPoints("latency", 3, 1, 8).describe() == \
        "latency: 3 of 8 points (1 failed measurement)"
    assert ScenarioPoints("serving", 0).describe() == "serving: no results"
    assert ScenarioPoints("latency", 2, 0, 1).complete  # the log was cut short


def test_a_hosts_reason_names_its_failed_slots_together() -> None:
    slots = {
        "slot0": {"status": NO_RESULTS, "summary": "latency: 0 of 8 points"},
        "slot1": {"status": NO_RESULTS, "summary": "latency: 0 of 8 points"},
        "slot2": {"status": OK, "summary": "latency: 8 of 8 points"},
        "slot3": {"status": "skipped:gpus", "summary": "slot3 needs GPU 31, the host has 24"},
    }
    assert failed_slots_reason(slots) == (
        "3 of 4 slots not ok: slot0, slot1 failed:no-results (latency: 0 of 8 points); "
        "slot3 skipped:gpus (slot3 needs GPU 31, the host has 24)")
    assert failed_slots_reason({"slot2": slots["slot2"]}) is None
