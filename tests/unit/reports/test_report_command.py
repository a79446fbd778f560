"""``fleetbench report parse``: JSON lines on stdout, exit 2 on files it cannot use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbench.cli import main

F_LLAMA = "eraF_yaml_run_vllm/perf_Llama-3.1-8B-Instruct-FP8-KV.csv"
D_SERVING = (
    "eraD_2025-06_rocm6.4.1/reports_float16_vllm_rocm6.4.1/summary/"
    "Llama-3.1-8B-Instruct_serving_report.csv"
)
NOT_A_REPORT = "madengine_perf_ef87d05e/perf_entry.json"
KEYS = [
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


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_parse_prints_one_record_per_line(
    mad_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "parse", str(mad_dir / F_LLAMA)]) == 0
    out, err = capsys.readouterr()
    lines = json_lines(out)
    assert err == ""
    assert len(lines) == 4
    assert all(list(line) == KEYS for line in lines)
    assert lines[0] == {
        "model": "Llama-3.1-8B-Instruct-FP8-KV",
        "scenario": "latency",
        "tp": 1,
        "batch_size": 1,
        "num_prompts": None,
        "max_concurrency": None,
        "input_len": 512,
        "output_len": 128,
        "dtype": "float16",
        "metric": "latency",
        "value": pytest.approx(1571.28),
        "unit": "ms",
    }
    assert (lines[3]["metric"], lines[3]["value"], lines[3]["unit"]) == (
        "throughput_gen",
        248.0,
        "tok/s",
    )


def test_parse_several_files_in_order(mad_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "parse", str(mad_dir / D_SERVING), str(mad_dir / F_LLAMA)]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert len(lines) == 24 + 4
    assert (lines[0]["scenario"], lines[0]["metric"], lines[0]["value"]) == (
        "serving",
        "throughput_total",
        20300.0,
    )
    assert lines[24]["model"] == "Llama-3.1-8B-Instruct-FP8-KV"


def test_parse_latest_drops_superseded_rows(
    mad_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (mad_dir / D_SERVING).read_text(encoding="utf-8")
    rerun = text.splitlines(keepends=True)[1].replace(",20300,", ",19000,")
    path = tmp_path / "serving_report.csv"
    path.write_text(text + rerun, encoding="utf-8", newline="")

    assert main(["report", "parse", str(path)]) == 0
    assert len(json_lines(capsys.readouterr().out)) == 30
    assert main(["report", "parse", "--latest", str(path)]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert len(lines) == 24
    assert (lines[0]["metric"], lines[0]["value"]) == ("throughput_total", 19000.0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (NOT_A_REPORT, "not a MAD vLLM report"),
        ("no_such_file.csv", "cannot read"),
    ],
)
def test_parse_bad_file_exits_2_and_prints_nothing(
    mad_dir: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    # The good file comes first: its records must not be printed either.
    assert main(["report", "parse", str(mad_dir / F_LLAMA), str(mad_dir / name)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"fleetbench: error: {mad_dir / name}: ")
    assert message in err


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty file"),
    ("\ufeff\r\n  \n", "empty file"),
    ("nothing,to,see\n1,2,3\n", "not a MAD vLLM report (header: nothing,to,see)"),
])
def test_parse_empty_or_unknown_file_exits_2_naming_it_and_the_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "Llama-3.1-8B-Instruct_serving_report.csv"
    path.write_text(content, encoding="utf-8", newline="")
    assert main(["report", "parse", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"fleetbench: error: {path}: {message} — give a MAD *_report.csv, "
                   "perf_<name>.csv, per-benchmark CSV or MAD/madengine perf.csv\n")


def test_parse_names_every_bad_file_and_prints_nothing(
    mad_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    files = [mad_dir / F_LLAMA, empty, mad_dir / NOT_A_REPORT, mad_dir / D_SERVING]
    assert main(["report", "parse", *map(str, files)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"fleetbench: error: {empty}: empty file — ")
    assert lines[1].startswith(f"fleetbench: error: {mad_dir / NOT_A_REPORT}: not a MAD vLLM")


def test_parse_damaged_report_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "perf_x.csv"
    path.write_text("model,performance,metric\nx_1_1_128_1_float16,fast,ms\n")
    assert main(["report", "parse", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} line 2: performance 'fast' is not a number" in err


def test_report_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["report"])
    assert excinfo.value.code == 2
    assert "ACTION" in capsys.readouterr().err


def test_console_script(mad_dir: Path) -> None:
    script = Path(sys.executable).with_name("fleetbench")
    ok = subprocess.run(
        [str(script), "report", "parse", str(mad_dir / D_SERVING)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    lines = json_lines(ok.stdout)
    assert len(lines) == 24
    assert list(lines[-1]) == KEYS
    assert (lines[-1]["metric"], lines[-1]["value"]) == ("e2el_median", 27284.5024)

    bad = subprocess.run(
        [str(script), "report", "parse", str(mad_dir / NOT_A_REPORT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "not a MAD vLLM report" in bad.stderr
