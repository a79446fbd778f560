"""``fleetbench partition parse``: the JSON-lines contract and its exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbench.cli import main

KEYS = ["file", "format", "compute_partition", "memory_partition", "devices", "unknown_devices"]


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_one_json_object_per_file_in_order(
    smi_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        smi_dir / "rocm-smi_default_dpx_nps1_rocm641_na.txt",
        smi_dir / "amd-smi_static_partition_cpx_nps4_64dev_rocm63.json",
        smi_dir / "amd-smi_set_compute_partition_error_busy_docs.txt",
    ]
    assert main(["partition", "parse", *map(str, files)]) == 0
    out = _lines(capsys.readouterr().out)
    assert [list(line) for line in out] == [KEYS] * 3
    assert out == [
        {"file": str(files[0]), "format": "rocm-smi-concise", "compute_partition": "DPX",
         "memory_partition": "NPS1", "devices": 16, "unknown_devices": 8},
        {"file": str(files[1]), "format": "amd-smi-json", "compute_partition": "CPX",
         "memory_partition": "NPS4", "devices": 64, "unknown_devices": 0},
        {"file": str(files[2]), "format": "amd-smi-error", "compute_partition": None,
         "memory_partition": None, "devices": None, "unknown_devices": None},
    ]


def test_format_comes_from_content_not_name(
    smi_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    misleading = tmp_path / "rocm-smi_output.json"
    shutil.copy(smi_dir / "amd-smi_partition_current_cpx_nps4_64dev_rocm64plus.txt", misleading)
    assert main(["partition", "parse", str(misleading)]) == 0
    (line,) = _lines(capsys.readouterr().out)
    assert (line["format"], line["compute_partition"], line["memory_partition"]) == (
        "amd-smi-table", "CPX", "NPS4")


def test_unknown_content_is_reported_not_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("nothing about GPUs here\n")
    assert main(["partition", "parse", str(notes)]) == 0
    assert _lines(capsys.readouterr().out) == [
        {"file": str(notes), "format": "unknown", "compute_partition": None,
         "memory_partition": None, "devices": None, "unknown_devices": None}
    ]


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_file_is_bad_input_and_prints_nothing(
    smi_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    bad = tmp_path / "nope.txt" if kind == "missing" else tmp_path
    good = smi_dir / "sysfs_current_compute_partition_cpx.txt"
    assert main(["partition", "parse", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot read {bad}" in captured.err
    assert " — " in captured.err


def test_partition_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["partition"])
    assert caught.value.code == 2
    assert "required: ACTION" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["partition", "--help"])
    assert caught.value.code == 0
    assert "parse" in capsys.readouterr().out


def test_installed_command_reads_files_and_stdin(smi_dir: Path) -> None:
    script = Path(sys.executable).with_name("fleetbench")
    fixture = smi_dir / "rocm-smi_showcomputepartition_showmemorypartition_spx_nps1.json"
    done = subprocess.run(
        [str(script), "partition", "parse", str(fixture), "-"],
        input=(smi_dir / "sysfs_current_memory_partition_nps4.txt").read_text(),
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert _lines(done.stdout) == [
        {"file": str(fixture), "format": "rocm-smi-json", "compute_partition": "SPX",
         "memory_partition": "NPS1", "devices": 8, "unknown_devices": 0},
        {"file": "-", "format": "sysfs-current-memory-partition", "compute_partition": None,
         "memory_partition": "NPS4", "devices": None, "unknown_devices": None},
    ]
