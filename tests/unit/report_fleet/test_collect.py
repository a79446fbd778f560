"""collect_run: a run directory becomes one canonical table (host, slot, record)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from fleetbench.errors import BadInput
from fleetbench.reports.fleet import HOST_LEVEL_SLOT, collect_run
from tests.unit.report_fleet.fleet_runs import (
    CONFIGURATIONS,
    ERA_D,
    NAME,
    SUMMARY,
    Edit,
    HostSpec,
    healthy_fleet,
    write_run,
)


def test_every_host_slot_and_configuration_lands_once(tmp_path: Path) -> None:
    run = collect_run(write_run(tmp_path, healthy_fleet(3)))
    assert run.run_id == "20261127T041747Z-309a"
    assert run.model == NAME  # the org/ of the planned Hugging Face id is dropped
    assert run.dtype == "float16"
    assert [h.name for h in run.hosts] == ["lab01", "lab02", "lab03"]
    per_slot = Counter((row.host, row.slot) for row in run.rows)
    assert per_slot == {(h, s): CONFIGURATIONS for h in ("lab01", "lab02", "lab03")
                        for s in ("slot0", "slot1")}
    keys = [(row.host, row.slot, row.configuration) for row in run.rows]
    assert len(keys) == len(set(keys))
    assert run.problems == ()


def test_summary_reports_win_over_perf_files(tmp_path: Path) -> None:
    # Era D's perf file holds throughput_gen only; the summary holds total and gen.
    run = collect_run(write_run(tmp_path, healthy_fleet(1)))
    metrics = Counter(row.record.metric for row in run.rows
                      if row.record.scenario == "throughput" and row.slot == "slot0")
    assert metrics == {"throughput_total": 4, "throughput_gen": 4}


def test_summary_values_win_when_perf_files_disagree(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, {"lab01": HostSpec(slots=1)})
    perf = run_dir / "hosts/lab01/slot0/MAD/scripts" / f"perf_{NAME}.csv"
    perf.write_text(perf.read_text().replace(",tok/sec", "e1,tok/sec"))  # x10 throughput
    gen = [row.record.value for row in collect_run(run_dir).rows
           if row.record.metric == "throughput_gen" and row.record.num_prompts == 4000
           and row.record.scenario == "throughput"]
    assert gen == [pytest.approx(7576 * 0.994)]


def test_era_c_slot_keeps_the_summary_metric_names(tmp_path: Path) -> None:
    # Era C's perf file says "throughput" (gen, not total): the summary beside it knows.
    run_dir = write_run(tmp_path, {"lab01": HostSpec(slots=1, summary=False, perf=False)})
    slot = run_dir / "hosts/lab01/slot0"
    shutil.rmtree(slot / "MAD")
    shutil.copytree(ERA_D.parent / "eraC_2025-02-07_9e4228b", slot / "MAD" / "scripts")
    metrics = Counter(row.record.metric for row in collect_run(run_dir).rows)
    assert "throughput" not in metrics
    assert metrics["throughput_total"] == metrics["throughput_gen"] > 0


def test_perf_file_is_the_fallback_when_a_slot_has_no_summary(tmp_path: Path) -> None:
    run = collect_run(write_run(tmp_path, {"lab01": HostSpec(summary=False, slots=1)}))
    metrics = Counter((row.record.scenario, row.record.metric) for row in run.rows)
    assert metrics[("throughput", "throughput_gen")] == 4
    assert metrics[("throughput", "throughput_total")] == 0
    assert metrics[("latency", "latency")] == 16
    assert metrics[("latency", "latency_per_token")] == 0  # perf files do not carry it


def test_values_are_read_from_the_files(tmp_path: Path) -> None:
    run = collect_run(write_run(tmp_path, {"lab01": HostSpec(factor=2.0, slots=1)}))
    total = next(row.record for row in run.rows
                 if row.record.metric == "throughput_total" and row.record.num_prompts == 4000)
    # 15152 tok/s in the fixture, x2 for this host, x0.994 noise for lab01/slot0.
    assert total.value == pytest.approx(15152 * 2 * 0.994)


def test_host_status_and_preflight_facts(tmp_path: Path) -> None:
    hosts = healthy_fleet(
        1,
        lab02=HostSpec(status="unreachable", reason="ssh: no route", reports=False),
        lab03=HostSpec(compute="SPX", memory="NPS1"),
    )
    run = collect_run(write_run(tmp_path, hosts))
    lab01, lab02, lab03 = run.hosts
    assert (lab01.status, lab01.ran, lab01.compute_partition, lab01.logical_gpus) == (
        "ok", True, "CPX", 64)
    assert [s.name for s in lab01.slots] == ["slot0", "slot1"]
    assert (lab02.status, lab02.reason, lab02.ran, lab02.compute_partition) == (
        "unreachable", "ssh: no route", False, None)
    assert (lab03.compute_partition, lab03.memory_partition) == ("SPX", "NPS1")
    assert {row.host for row in run.rows} == {"lab01", "lab03"}


def test_a_damaged_report_is_a_problem_of_its_slot_not_of_the_run(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(2))
    report = (run_dir / "hosts/lab02/slot1/MAD/scripts/vllm" / SUMMARY
              / f"{NAME}_latency_report.csv")
    report.write_text(report.read_text() + "Llama-3.1-8B-Instruct,latency,1,128\r\n")
    run = collect_run(run_dir)
    assert [(p.host, p.slot) for p in run.problems] == [("lab02", "slot1")]
    assert "line 18" in run.problems[0].message
    assert {(row.host, row.slot) for row in run.rows} == {
        ("lab01", "slot0"), ("lab01", "slot1"), ("lab02", "slot0")}


def test_host_folder_without_slots_and_host_missing_from_manifest(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, healthy_fleet(1))
    stray = run_dir / "hosts" / "lab09" / "reports_float16_vllm_rocm6.4.1" / "summary"
    stray.mkdir(parents=True)
    shutil.copy(ERA_D / SUMMARY / f"{NAME}_throughput_report.csv", stray)
    run = collect_run(run_dir)
    lab09 = run.host("lab09")
    assert lab09 is not None and lab09.status == "unknown" and not lab09.ran
    assert {row.slot for row in run.rows if row.host == "lab09"} == {HOST_LEVEL_SLOT}


def test_reruns_appended_to_a_report_keep_the_last_row(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, {"lab01": HostSpec(slots=1)})
    report = run_dir / "hosts/lab01/slot0/MAD/scripts/vllm" / SUMMARY / f"{NAME}_throughput_report.csv"
    report.write_text(report.read_text()
                      + "Llama-3.1-8B-Instruct,throughput,1,128,128,float16,4000,1,2\r\n")
    run = collect_run(run_dir)
    total = [row.record.value for row in run.rows
             if row.record.metric == "throughput_total" and row.record.num_prompts == 4000]
    assert total == [1.0]


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
def test_not_a_run_directory_is_bad_input(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(BadInput, match="manifest"):
        collect_run(tmp_path)


def test_failed_measurement_is_a_null_value(tmp_path: Path) -> None:
    edit = Edit("serving", 2, "median_ttft (ms)", slots=(1,))
    run = collect_run(write_run(tmp_path, {"lab01": HostSpec(edits=(edit,))}))
    failed = [(row.slot, row.record.metric, row.record.input_len) for row in run.rows
              if row.record.value is None]
    assert failed == [("slot1", "ttft_median", 2048)]
    assert json.loads(json.dumps(run.rows[0].to_dict()))["host"] == "lab01"
