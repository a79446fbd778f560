"""MAD report parsing: every fixture file, and variants of them written into tmp_path."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbench.errors import BadInput
from fleetbench.reports import (
    MalformedReport,
    Record,
    UnknownReportFormat,
    detect_format,
    latest_per_configuration,
    parse_file,
    parse_text,
    parse_tree,
)

LLAMA = "Llama-3.1-8B-Instruct"
B_PERF = "eraB_2024-11-05_8f4dcbb/perf_Llama-3.1-8B-Instruct.csv"
B_LAT = "eraB_2024-11-05_8f4dcbb/reports_float16/summary/Llama-3.1-8B-Instruct_latency_report.csv"
B_THR = (
    "eraB_2024-11-05_8f4dcbb/reports_float16/summary/Llama-3.1-8B-Instruct_throughput_report.csv"
)
C_PERF = "eraC_2025-02-07_9e4228b/perf_Llama-3.1-8B-Instruct.csv"
C_SUM = "eraC_2025-02-07_9e4228b/reports_float16_vllm_rocm6.3.1/summary/"
C_LAT = C_SUM + "Llama-3.1-8B-Instruct_latency_report.csv"
C_THR = C_SUM + "Llama-3.1-8B-Instruct_throughput_report.csv"
D_PERF = "eraD_2025-06_rocm6.4.1/perf_Llama-3.1-8B-Instruct.csv"
D_SUM = "eraD_2025-06_rocm6.4.1/reports_float16_vllm_rocm6.4.1/summary/"
D_LAT = D_SUM + "Llama-3.1-8B-Instruct_latency_report.csv"
D_SRV = D_SUM + "Llama-3.1-8B-Instruct_serving_report.csv"
D_THR = D_SUM + "Llama-3.1-8B-Instruct_throughput_report.csv"
E_SRV = "eraE_2025-08_csv-configs/pyt_vllm_llama-3.3-70b_serving.csv"
E_THR = "eraE_2025-08_csv-configs/pyt_vllm_llama-3.3-70b_throughput.csv"
F_DS = "eraF_yaml_run_vllm/perf_DeepSeek-R1-0528.csv"
F_LLAMA = "eraF_yaml_run_vllm/perf_Llama-3.1-8B-Instruct-FP8-KV.csv"
MAD_PERF = "mad_run_models_perf_2025-02_9e4228b/perf.csv"
MADENGINE_PERF = "madengine_perf_ef87d05e/perf.csv"

# file → (format, number of records, records per metric), counted by reading the files.
EXPECTED_FILES = {
    B_PERF: ("perf-packed", 31, {"latency": 27, "throughput": 4}),
    B_LAT: ("summary-report", 54, {"latency": 27, "latency_per_token": 27}),
    B_THR: ("summary-report", 8, {"throughput_total": 4, "throughput_gen": 4}),
    C_PERF: ("perf-packed", 40, {"latency": 36, "throughput": 4}),
    C_LAT: ("summary-report", 72, {"latency": 36, "latency_per_token": 36}),
    C_THR: ("summary-report", 8, {"throughput_total": 4, "throughput_gen": 4}),
    D_PERF: (
        "perf-packed",
        44,
        {
            "latency": 16,
            "throughput_gen": 8,
            "throughput_total": 4,
            "ttft_median": 4,
            "tpot_median": 4,
            "itl_median": 4,
            "e2el_median": 4,
        },
    ),
    D_LAT: ("summary-report", 32, {"latency": 16, "latency_per_token": 16}),
    D_SRV: (
        "summary-report",
        24,
        {
            "throughput_total": 4,
            "throughput_gen": 4,
            "ttft_median": 4,
            "tpot_median": 4,
            "itl_median": 4,
            "e2el_median": 4,
        },
    ),
    D_THR: ("summary-report", 8, {"throughput_total": 4, "throughput_gen": 4}),
    E_SRV: (
        "benchmark-csv",
        80,
        {
            "throughput_total": 16,
            "throughput_gen": 16,
            "tpot_median": 16,
            "itl_median": 16,
            "e2el_median": 16,
        },
    ),
    E_THR: ("benchmark-csv", 8, {"throughput_total": 4, "throughput_gen": 4}),
    F_DS: (
        "perf-columns",
        20,
        {
            "throughput_total": 4,
            "throughput_gen": 4,
            "tpot_median": 4,
            "itl_median": 4,
            "e2el_median": 4,
        },
    ),
    F_LLAMA: ("perf-columns", 4, {"latency": 2, "throughput_total": 1, "throughput_gen": 1}),
    MAD_PERF: ("mad-perf", 40, {"latency": 36, "throughput": 4}),
    MADENGINE_PERF: (
        "madengine-perf",
        20,
        {
            "throughput_total": 4,
            "throughput_gen": 4,
            "tpot_median": 4,
            "itl_median": 4,
            "e2el_median": 4,
        },
    ),
}
ALL_FILES = sorted(EXPECTED_FILES)
JSON_FILES = [
    "eraB_2024-11-05_8f4dcbb/vllm_json_inputs_synthetic/"
    "Llama-3.1-8B-Instruct_latency_decoding_bs8_in1_out128_float16.json",
    "eraD_2025-06_rocm6.4.1/vllm_json_inputs_synthetic/"
    "Llama-3.1-8B-Instruct_serving_req252_in128_out128_mc128_float16.json",
    "eraF_yaml_run_vllm/vllm_json_inputs_synthetic/DeepSeek-R1-0528_serving_8_1024_1024_10_1.json",
    "mad_run_models_perf_2025-02_9e4228b/common_info.json",
    "madengine_perf_ef87d05e/common_info.json",
    "madengine_perf_ef87d05e/perf_entry.json",
]


# (file, index of the record, the record) — values read off the files by hand.
# fmt: off
EXPECTED_RECORDS = [
    (B_PERF, 0, Record(LLAMA, "latency", 1, 1, None, None, 128, 1, "float16", "latency", 22.506999999999998, "ms")),
    (B_PERF, 18, Record(LLAMA, "latency", 1, 1, None, None, 1, 128, "float16", "latency", 1570.002, "ms")),
    (B_PERF, 27, Record(LLAMA, "throughput", 1, None, 30000, None, 128, 128, "float16", "throughput", 16191.0, "tok/s")),
    (B_LAT, 36, Record(LLAMA, "latency", 1, 1, None, None, 1, 128, "float16", "latency", 1570.002, "ms")),
    (B_LAT, 37, Record(LLAMA, "latency", 1, 1, None, None, 1, 128, "float16", "latency_per_token", 12.265640625, "ms")),
    (B_THR, 2, Record(LLAMA, "throughput", 1, None, 3000, None, 2048, 128, "float16", "throughput_total", 56308.0, "tok/s")),
    (B_THR, 3, Record(LLAMA, "throughput", 1, None, 3000, None, 2048, 128, "float16", "throughput_gen", 3312.0, "tok/s")),
    (C_PERF, 36, Record(LLAMA, "throughput", 1, None, 4000, None, 128, 128, "float16", "throughput", 7576.0, "tok/s")),
    (C_LAT, 70, Record(LLAMA, "latency", 1, 256, None, None, 2048, 128, "float16", "latency", 9000.72, "ms")),
    (C_LAT, 71, Record(LLAMA, "latency", 1, 256, None, None, 2048, 128, "float16", "latency_per_token", 70.318125, "ms")),
    (C_THR, 0, Record(LLAMA, "throughput", 1, None, 4000, None, 128, 128, "float16", "throughput_total", 15152.0, "tok/s")),
    (D_PERF, 16, Record(LLAMA, "throughput", 1, None, 4000, None, 128, 128, "float16", "throughput_gen", 7576.0, "tok/s")),
    (D_PERF, 20, Record(LLAMA, "serving", 1, None, 252, 128, 128, 128, "float16", "throughput_total", 20300.0, "tok/s")),
    (D_PERF, 34, Record(LLAMA, "serving", 1, None, 252, 128, 2048, 128, "float16", "ttft_median", 224.8, "ms")),
    (D_LAT, 16, Record(LLAMA, "latency", 1, 1, None, None, 128, 2048, "float16", "latency", 24970.32, "ms")),
    (D_LAT, 17, Record(LLAMA, "latency", 1, 1, None, None, 128, 2048, "float16", "latency_per_token", 12.1925390625, "ms")),
    (D_SRV, 12, Record(LLAMA, "serving", 1, None, 252, 128, 2048, 128, "float16", "throughput_total", 146313.0, "tok/s")),
    (D_SRV, 14, Record(LLAMA, "serving", 1, None, 252, 128, 2048, 128, "float16", "ttft_median", 224.8, "ms")),
    (D_SRV, 17, Record(LLAMA, "serving", 1, None, 252, 128, 2048, 128, "float16", "e2el_median", 1903.6384, "ms")),
    (D_THR, 3, Record(LLAMA, "throughput", 1, None, 3000, None, 128, 2048, "float16", "throughput_gen", 8879.0, "tok/s")),
    (E_SRV, 30, Record("Llama-3.3-70B-Instruct", "serving", 8, None, 320, 32, 128, 2048, "float16", "throughput_total", 4438.797919058489, "tok/s")),
    (E_SRV, 34, Record("Llama-3.3-70B-Instruct", "serving", 8, None, 320, 32, 128, 2048, "float16", "e2el_median", 15687.1264, "ms")),
    (E_THR, 5, Record("Llama-3.3-70B-Instruct", "throughput", 8, None, 1024, None, 2048, 128, "float16", "throughput_gen", 3057.0, "tok/s")),
    (F_DS, 0, Record("DeepSeek-R1-0528", "serving", 8, None, 10, 1, 1024, 1024, "auto", "throughput_total", 308.00280932249905, "tok/s")),
    (F_DS, 9, Record("DeepSeek-R1-0528", "serving", 8, None, 80, 8, 1024, 1024, "auto", "e2el_median", 7011.8208, "ms")),
    (F_LLAMA, 2, Record("Llama-3.1-8B-Instruct-FP8-KV", "throughput", 1, None, 10, None, 128, 128, "float16", "throughput_total", 496.4704057094097, "tok/s")),
    (MAD_PERF, 18, Record(LLAMA, "latency", 1, 1, None, None, 128, 128, "float16", "latency", 1570.32, "ms")),
    (MAD_PERF, 37, Record(LLAMA, "throughput", 1, None, 3000, None, 2048, 128, "float16", "throughput", 3312.0, "tok/s")),
    (MADENGINE_PERF, 0, Record("DeepSeek-R1-0528", "serving", 8, None, 10, 1, 1024, 1024, "auto", "throughput_total", 308.00280932249905, "tok/s")),
    (MADENGINE_PERF, 19, Record("DeepSeek-R1-0528", "serving", 8, None, 1280, 128, 1024, 1024, "auto", "e2el_median", 13226.6208, "ms")),
]
# fmt: on


def rewrite(text: str, change: Callable[[list[list[str]]], list[list[str]]]) -> str:
    """Rewrite CSV text row by row with csv (CRLF, like MAD's own writers)."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    out = io.StringIO(newline="")
    csv.writer(out).writerows(change(rows))
    return out.getvalue()


def by_configuration(records: list[Record]) -> dict[tuple[object, ...], float | None]:
    return {r.configuration: r.value for r in records}


# --- every fixture file ----------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FILES)
def test_format_counts_and_metrics_per_file(mad_dir: Path, name: str) -> None:
    fmt, count, metrics = EXPECTED_FILES[name]
    path = mad_dir / name
    assert detect_format(path.read_text(encoding="utf-8")) == fmt
    records = parse_file(path)
    assert len(records) == count
    assert Counter(r.metric for r in records) == metrics


@pytest.mark.parametrize(("name", "index", "expected"), EXPECTED_RECORDS)
def test_records_checked_by_hand(mad_dir: Path, name: str, index: int, expected: Record) -> None:
    assert parse_file(mad_dir / name)[index] == expected


def test_era_f_latency_seconds_become_ms(mad_dir: Path) -> None:
    latency = [r for r in parse_file(mad_dir / F_LLAMA) if r.metric == "latency"]
    # The file says 1.57128 / 1.95048 with unit "ms"; vLLM's avg_latency is in seconds.
    assert [(r.batch_size, r.unit) for r in latency] == [(1, "ms"), (16, "ms")]
    assert [r.value for r in latency] == [pytest.approx(1571.28), pytest.approx(1950.48)]
    assert all(r.num_prompts is None and r.max_concurrency is None for r in latency)


@pytest.mark.parametrize(
    ("perf", "report", "perf_metric", "report_metric"),
    [
        (B_PERF, B_LAT, "latency", "latency"),
        (B_PERF, B_THR, "throughput", "throughput_total"),  # era B perf = total tok/s
        (C_PERF, C_LAT, "latency", "latency"),
        (C_PERF, C_THR, "throughput", "throughput_gen"),  # era C perf = generated tok/s
        (D_PERF, D_LAT, "latency", "latency"),
        (D_PERF, D_THR, "throughput_gen", "throughput_gen"),
        (MAD_PERF, C_PERF, "latency", "latency"),
        (MAD_PERF, C_PERF, "throughput", "throughput"),
    ],
)
def test_perf_file_agrees_with_the_summary_beside_it(
    mad_dir: Path, perf: str, report: str, perf_metric: str, report_metric: str
) -> None:
    def values(name: str, metric: str) -> dict[tuple[object, ...], float | None]:
        return {
            r.configuration[:-1]: r.value for r in parse_file(mad_dir / name) if r.metric == metric
        }

    report_values = values(report, report_metric)
    scenarios = {key[1] for key in report_values}
    perf_values = {k: v for k, v in values(perf, perf_metric).items() if k[1] in scenarios}
    assert perf_values
    # Every perf measurement appears in the summary with the same configuration and value.
    assert {key: report_values.get(key) for key in perf_values} == perf_values


def test_era_d_serving_perf_matches_serving_report(mad_dir: Path) -> None:
    serving = [r for r in parse_file(mad_dir / D_PERF) if r.scenario == "serving"]
    assert by_configuration(serving) == by_configuration(parse_file(mad_dir / D_SRV))


def test_madengine_perf_matches_the_run_perf_file(mad_dir: Path) -> None:
    assert parse_file(mad_dir / MADENGINE_PERF) == parse_file(mad_dir / F_DS)


@pytest.mark.parametrize("name", JSON_FILES)
def test_json_files_are_not_reports(mad_dir: Path, name: str) -> None:
    with pytest.raises(UnknownReportFormat, match="not a MAD vLLM report"):
        parse_file(mad_dir / name)


# --- line endings, column order, extra and missing columns -----------------------------


@pytest.mark.parametrize("name", ALL_FILES)
def test_line_endings_do_not_matter(mad_dir: Path, name: str) -> None:
    text = (mad_dir / name).read_text(encoding="utf-8")
    lf = text.replace("\r\n", "\n")
    crlf = lf.replace("\n", "\r\n")
    assert lf != crlf
    expected = parse_file(mad_dir / name)
    assert parse_text(lf, source_name=name) == expected
    assert parse_text(crlf, source_name=name) == expected


@pytest.mark.parametrize("name", ALL_FILES)
def test_columns_are_read_by_name(mad_dir: Path, name: str) -> None:
    text = (mad_dir / name).read_text(encoding="utf-8")
    reordered = rewrite(text, lambda rows: [row[::-1] for row in rows])
    assert reordered.splitlines()[0] != text.splitlines()[0]
    assert parse_text(reordered, source_name=name) == parse_file(mad_dir / name)


@pytest.mark.parametrize("name", ALL_FILES)
def test_extra_columns_are_ignored(mad_dir: Path, name: str) -> None:
    text = (mad_dir / name).read_text(encoding="utf-8")
    extended = rewrite(
        text,
        lambda rows: [
            ["host", *rows[0], "note (ms)"],
            *(["h1", *row, "a, b"] for row in rows[1:]),
        ],
    )
    assert parse_text(extended, source_name=name) == parse_file(mad_dir / name)


def drop_column(text: str, column: str) -> str:
    def change(rows: list[list[str]]) -> list[list[str]]:
        index = rows[0].index(column)
        return [row[:index] + row[index + 1 :] for row in rows]

    return rewrite(text, change)


def test_missing_metric_column_gives_fewer_metrics(mad_dir: Path) -> None:
    text = drop_column((mad_dir / D_LAT).read_text(encoding="utf-8"), "latency_per_tkn (ms)")
    records = parse_text(text)
    assert len(records) == 16
    assert {r.metric for r in records} == {"latency"}


def test_missing_mode_column_scenario_from_columns(mad_dir: Path) -> None:
    for name, scenario in ((D_SRV, "serving"), (D_LAT, "latency"), (D_THR, "throughput")):
        text = drop_column((mad_dir / name).read_text(encoding="utf-8"), "mode")
        assert {r.scenario for r in parse_text(text)} == {scenario}


def test_missing_model_column_takes_the_file_name(mad_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "My_Model-7b_latency_report.csv"
    path.write_text(drop_column((mad_dir / B_LAT).read_text(encoding="utf-8"), "model"))
    records = parse_file(path)
    assert len(records) == 54
    assert {r.model for r in records} == {"My_Model-7b"}
    with pytest.raises(MalformedReport, match="no model name"):
        parse_text(path.read_text())


def test_missing_dtype_column_takes_the_reports_folder(mad_copy: Path) -> None:
    path = mad_copy / C_LAT
    path.write_text(drop_column(path.read_text(encoding="utf-8"), "dtype"))
    assert {r.dtype for r in parse_file(path)} == {"float16"}
    with pytest.raises(MalformedReport, match="no dtype"):
        parse_text(path.read_text())


def test_missing_tp_is_an_error(mad_dir: Path) -> None:
    text = drop_column((mad_dir / D_SRV).read_text(encoding="utf-8"), "tp")
    with pytest.raises(MalformedReport, match="line 2: no tp value"):
        parse_text(text, source_name="x.csv")


# --- model names, re-runs, failures ----------------------------------------------------

UNDERSCORE_CASES = [
    (
        "model,performance,metric\ngpt_2_1_8_128_1_bfloat16,12.5,ms\n",
        Record("gpt_2", "latency", 1, 8, None, None, 128, 1, "bfloat16", "latency", 12.5, "ms"),
    ),
    (
        "model,performance,metric\nmy_model-v2_7b_chat_8_3000_2048_128_float8,99.0,tok/sec\n",
        Record("my_model-v2_7b_chat", "throughput", 8, None, 3000, None, 2048, 128, "float8",
            "throughput", 99.0, "tok/s"),
    ),
    (
        "model,performance,metric\nmy_latency_v2_latency_4_16_128_2048_bfloat16,7.0,ms\n",
        Record("my_latency_v2", "latency", 4, 16, None, None, 128, 2048, "bfloat16", "latency",
            7.0, "ms"),
    ),
    (
        "model,performance,metric\nx_serving_y_serving_2_64_128_256_32_float8_median_tpot,3.5,ms\n",
        Record("x_serving_y", "serving", 2, None, 64, 32, 128, 256, "float8", "tpot_median", 3.5,
            "ms"),
    ),
    (
        "model,mode,tp,input_len,output_len,dtype,num_prompts,throughput_tot (tok/sec),"
        "throughput_gen (tok/sec)\r\nQwen_Qwen2.5-7B_x,throughput,2,128,128,bfloat16,10,5,4\r\n",
        Record("Qwen_Qwen2.5-7B_x", "throughput", 2, None, 10, None, 128, 128, "bfloat16",
            "throughput_total", 5.0, "tok/s"),
    ),
    (
        "model,benchmark,tp,inp,out,dtype,num_prompts,max_concurrency,bs,cmd,performance,metric,"
        'unit\r\nmy_org_model-v2,latency,2,64,32,bfloat16,,,4,"a, b",0.25,latency,ms\r\n',
        Record("my_org_model-v2", "latency", 2, 4, None, None, 64, 32, "bfloat16", "latency", 250.0,
            "ms"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), UNDERSCORE_CASES)
def test_model_names_with_underscores(text: str, expected: Record) -> None:
    # the first record of the row: a wide row gives one per metric column
    assert parse_text(text)[0] == expected


MAD_HEADER = "model,args,docker_file,docker_image,performance,metric,status\n"


@pytest.mark.parametrize(
    ("row", "model"),
    [
        # the --model_repo of the args column names the report
        (
            "pyt_vllm_my-model_fp8_My_Model-FP8_1_1_128_1_float8,--model_repo org/My_Model-FP8,,,"
            "1.0,ms,SUCCESS",
            "My_Model-FP8",
        ),
        # no args: the MAD model name from docker_image ci-<model>
        (
            "pyt_vllm_my-model_fp8_My_Model-FP8_1_1_128_1_float8,,,ci-pyt_vllm_my-model_fp8,"
            "1.0,ms,SUCCESS",
            "My_Model-FP8",
        ),
        # madengine's ci-<model>_<dockerfile stem>
        (
            "pyt_vllm_x-1b_Some_Name_1_1_128_1_float8,,docker/pyt_vllm.ubuntu.amd.Dockerfile,"
            "ci-pyt_vllm_x-1b_pyt_vllm.ubuntu.amd,1.0,ms,SUCCESS",
            "Some_Name",
        ),
        # nothing to go by: MAD's pyt_vllm_<model>_ convention
        ("pyt_vllm_llama-2-7b_Llama-2-7b-chat-hf_1_1_128_1_float16,,,,1.0,ms,SUCCESS",
         "Llama-2-7b-chat-hf"),
    ],
)  # fmt: skip
def test_mad_prefix_is_stripped(row: str, model: str) -> None:
    [record] = parse_text(MAD_HEADER + row + "\n")
    assert record.model == model
    assert (record.scenario, record.batch_size, record.input_len, record.value) == (
        "latency",
        1,
        128,
        1.0,
    )


def test_appended_rerun_rows_are_kept_and_latest_wins(mad_dir: Path) -> None:
    text = (mad_dir / D_THR).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    rerun = [line.replace(",15152,7576", ",15000,7000") for line in lines[1:]]
    records = parse_text(text + "".join(rerun))
    assert len(records) == 16
    latest = latest_per_configuration(records)
    assert len(latest) == 8
    assert [(r.num_prompts, r.metric, r.value) for r in latest[:2]] == [
        (4000, "throughput_total", 15000.0),
        (4000, "throughput_gen", 7000.0),
    ]
    assert latest[2:] == records[2:8]


def test_repeated_header_inside_a_file_is_skipped(mad_dir: Path) -> None:
    text = (mad_dir / B_THR).read_text(encoding="utf-8")
    assert len(parse_text(text + text)) == 16


def test_latest_per_configuration_keeps_first_position() -> None:
    first = Record("m", "latency", 1, 1, None, None, 1, 1, "float16", "latency", 1.0, "ms")
    other = Record("m", "latency", 1, 2, None, None, 1, 1, "float16", "latency", 2.0, "ms")
    again = Record("m", "latency", 1, 1, None, None, 1, 1, "float16", "latency", 3.0, "ms")
    assert latest_per_configuration([first, other, again]) == [again, other]


@pytest.mark.parametrize("empty", ["", "nan", "NaN", "inf"])
def test_era_f_empty_performance_is_a_failed_measurement(mad_dir: Path, empty: str) -> None:
    def change(rows: list[list[str]]) -> list[list[str]]:
        column = rows[0].index("performance")
        rows[3][column] = empty  # DeepSeek serving mc1 median_tpot
        return rows

    text = rewrite((mad_dir / F_DS).read_text(encoding="utf-8"), change)
    records = parse_text(text)
    assert len(records) == 20
    assert (records[2].metric, records[2].value, records[2].unit) == ("tpot_median", None, "ms")
    assert records[3].value == 6.4596


def test_empty_value_in_a_summary_report_is_null(mad_dir: Path) -> None:
    text = (mad_dir / D_SRV).read_text(encoding="utf-8").replace(",20300,", ",,", 1)
    records = parse_text(text)
    assert (records[0].metric, records[0].value) == ("throughput_total", None)
    assert records[1].value == 10150.0


def test_mad_perf_failure_rows(mad_dir: Path) -> None:
    def change(rows: list[list[str]]) -> list[list[str]]:
        status = rows[0].index("status")
        rows[1][status] = "FAILURE"
        # a run that failed before any result: one row naming only the MAD model
        failed = ["" for _ in rows[0]]
        failed[rows[0].index("model")] = "pyt_vllm_llama-3.1-8b"
        failed[status] = "FAILURE"
        return [*rows, failed]

    text = rewrite((mad_dir / MAD_PERF).read_text(encoding="utf-8"), change)
    records = parse_text(text)
    assert len(records) == 40
    assert (records[0].metric, records[0].batch_size, records[0].value) == ("latency", 1, None)
    assert records[1].value == 23.015


def test_madengine_failure_rows(mad_dir: Path) -> None:
    def change(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        rows[20][header.index("status")] = "FAILURE"
        failed = ["" for _ in header]
        failed[header.index("model")] = "pyt_vllm_deepseek-r1"
        failed[header.index("status")] = "FAILURE"
        return [*rows, failed]

    text = rewrite((mad_dir / MADENGINE_PERF).read_text(encoding="utf-8"), change)
    records = parse_text(text)
    assert len(records) == 20
    assert (records[19].metric, records[19].value) == ("e2el_median", None)
    assert records[18].value == 12.8096


def test_pandas_float_integers_are_accepted() -> None:
    text = (
        "model,benchmark,tp,inp,out,dtype,num_prompts,max_concurrency,bs,cmd,performance,metric,"
        "unit\nm,latency,8.0,128.0,128,float16,,,4.0,x,2,latency,ms\n"
    )
    [record] = parse_text(text)
    assert (record.tp, record.input_len, record.batch_size, record.value) == (8, 128, 4, 2000.0)


def test_seconds_column_in_a_summary_is_converted() -> None:
    text = "model,tp,batch_size,in,out,dtype,latency (s)\nm,1,1,128,128,float16,1.5\n"
    [record] = parse_text(text)
    assert (record.metric, record.value, record.unit) == ("latency", 1500.0, "ms")


def test_unknown_metric_names_are_skipped(mad_dir: Path) -> None:
    text = (
        (mad_dir / F_LLAMA)
        .read_text(encoding="utf-8")
        .replace(",throughput_gen,", ",requests_per_second,")
    )
    assert [r.metric for r in parse_text(text)] == ["latency", "latency", "throughput_total"]


# --- not a report, damaged reports -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "\r\n\r\n", "name,age\nbob,3\n", "{}", "model,performance\nm,1\n", "a\x00b,c\n"],
)
def test_not_a_report(text: str) -> None:
    with pytest.raises(UnknownReportFormat) as excinfo:
        parse_text(text, source_name="host1/x.csv")
    assert str(excinfo.value).startswith("host1/x.csv: ")
    assert "give a MAD" in str(excinfo.value)
    assert isinstance(excinfo.value, BadInput)


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        (D_SRV, ",252,128,20300,", ",252,x,20300,", "max_concurrency 'x' is not a whole"),
        (D_SRV, ",252,128,20300,", ",252,128.5,20300,", "max_concurrency '128.5'"),
        (B_THR, ",16191,", ",16k,", "throughput_tot \\(tok/sec\\) '16k' is not a number"),
        (B_THR, ",8095,1,30000,128,128,float16", ",8095", "3 fields where the header has 8"),
        (B_PERF, "Llama-3.1-8B-Instruct_1_1_128_1_float16,", "Llama,", "model 'Llama'"),
        (F_DS, ",serving,8,", ",bench,8,", "scenario 'bench'"),
    ],
)
def test_damaged_report_names_file_and_line(
    mad_dir: Path, name: str, old: str, new: str, message: str
) -> None:
    text = (mad_dir / name).read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(MalformedReport, match=f"^{re.escape(Path(name).name)} line 2: {message}"):
        parse_text(text.replace(old, new, 1), source_name=Path(name).name)


def test_undecodable_file(tmp_path: Path, mad_dir: Path) -> None:
    path = tmp_path / "perf_x.csv"
    path.write_bytes((mad_dir / B_PERF).read_bytes() + b"\xff\xfe,1,ms\n")
    with pytest.raises(MalformedReport, match="not UTF-8"):
        parse_file(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read"):
        parse_file(tmp_path / "missing.csv")


def test_bom_is_ignored(mad_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "with_bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (mad_dir / D_LAT).read_bytes())
    assert parse_file(path) == parse_file(mad_dir / D_LAT)


# --- a collected folder ----------------------------------------------------------------


def test_parse_tree_finds_every_report(mad_copy: Path) -> None:
    (mad_copy / "notes.csv").write_text("host,comment\nh1,ok\n")
    (mad_copy / "empty.csv").write_text("")
    (mad_copy / "latin1.csv").write_bytes(b"name,caf\xe9\n")
    (mad_copy / "new_latency_report.csv").write_text(
        "model,latency (ms),latency_per_tkn (ms),tp,batch_size,input_len,output_len,dtype\r\n"
    )
    found = {
        path.relative_to(mad_copy).as_posix(): records for path, records in parse_tree(mad_copy)
    }
    assert set(found) == {*ALL_FILES, "new_latency_report.csv"}
    assert found["new_latency_report.csv"] == []
    for name in ALL_FILES:
        assert len(found[name]) == EXPECTED_FILES[name][1]


def test_parse_tree_raises_on_a_damaged_report(mad_copy: Path) -> None:
    path = mad_copy / E_THR
    path.write_text(path.read_text(encoding="utf-8").replace(",1024,", ",many,", 1))
    with pytest.raises(MalformedReport, match=r"pyt_vllm_llama-3\.3-70b_throughput\.csv line 2"):
        parse_tree(mad_copy)


def test_parse_tree_raises_on_undecodable_report(mad_copy: Path) -> None:
    path = mad_copy / B_PERF
    path.write_bytes(path.read_bytes() + b"caf\xe9_1_1_1_1_float16,1,ms\n")
    with pytest.raises(MalformedReport, match="not UTF-8"):
        parse_tree(mad_copy)


def test_parse_tree_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a folder"):
        parse_tree(tmp_path / "nope")


# --- the record ------------------------------------------------------------------------


def test_record_dict_has_the_section_4_keys_in_order(mad_dir: Path) -> None:
    record = parse_file(mad_dir / D_SRV)[0]
    assert list(record.to_dict()) == [
        "model",
        "scenario",
        "tp",
        "batch_size",
        "num_prompts",
        "max_concurrency",
        "input_len",
        "output_len",
        "dtype",
        "metric",
        "value",
        "unit",
    ]
    assert Record.from_dict({**record.to_dict(), "host": "h1"}) == record


@pytest.mark.parametrize(
    ("scenario", "metric", "unit", "message"),
    [
        ("prefill", "latency", "ms", "scenario"),
        ("latency", "p99_latency", "ms", "metric"),
        ("latency", "latency", "s", "unit"),
    ],
)
def test_record_rejects_values_outside_section_4(
    scenario: str, metric: str, unit: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Record("m", scenario, 1, 1, None, None, 1, 1, "float16", metric, 1.0, unit)
