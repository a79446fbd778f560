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


@pytest.mark.parametrize(("content", "why"), [
    ("", "is empty"),
    ("  \r\n\n", "is empty"),
    ("\ufeff\x1b[0m\n", "is empty"),  # what a terminal capture of nothing leaves
    ("nothing about GPUs here\n", "is of no known partition format"),
    ('{"something": "else"}\n', "is of no known partition format"),
])
def test_empty_or_unknown_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, why: str
) -> None:
    path = tmp_path / "saved.txt"
    path.write_text(content)
    assert main(["partition", "parse", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"fleetbench: error: {path} {why} — give a saved output of ")
    for understood in ("amd-smi", "rocm-smi", "rocminfo", "sysfs", "KFD"):
        assert understood in captured.err


def test_mix_of_good_and_bad_files_prints_the_good_names_each_bad_and_exits_2(
    smi_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    notes = tmp_path / "notes.txt"
    notes.write_text("nothing about GPUs here\n")
    missing = tmp_path / "nope.txt"
    first = smi_dir / "sysfs_current_compute_partition_cpx.txt"
    last = smi_dir / "amd-smi_static_partition_cpx_nps4_64dev_rocm63.json"
    files = [first, empty, notes, missing, tmp_path, last]
    assert main(["partition", "parse", *map(str, files)]) == 2
    captured = capsys.readouterr()
    # Every good file, in order, exactly as without the bad ones.
    assert [line["file"] for line in _lines(captured.out)] == [str(first), str(last)]
    assert main(["partition", "parse", str(first), str(last)]) == 0
    assert capsys.readouterr().out == captured.out
    errors = captured.err.splitlines()
    assert len(errors) == 4
    assert errors[0].startswith(f"fleetbench: error: {empty} is empty — ")
    assert errors[1].startswith(f"fleetbench: error: {notes} is of no known partition format")
    assert errors[2].startswith(f"fleetbench: error: cannot read {missing}: ")
    assert errors[3].startswith(f"fleetbench: error: cannot read {tmp_path}: ")


def test_known_formats_without_partition_facts_are_printed(
    smi_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A tool's error message is a known format that says nothing about partitions: printed.
    error = smi_dir / "amd-smi_set_compute_partition_error_busy_docs.txt"
    assert main(["partition", "parse", str(error)]) == 0
    (line,) = _lines(capsys.readouterr().out)
    assert (line["format"], line["compute_partition"]) == ("amd-smi-error", None)


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


def test_installed_command_rejects_an_empty_file_and_empty_stdin(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("fleetbench")
    empty = tmp_path / "amd-smi_partition.txt"
    empty.write_text("")
    done = subprocess.run([str(script), "partition", "parse", str(empty)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"fleetbench: error: {empty} is empty — give a saved output")
    piped = subprocess.run([str(script), "partition", "parse", "-"], input="",
                           capture_output=True, text=True, check=False, timeout=60)
    assert (piped.returncode, piped.stdout) == (2, "")
    assert piped.stderr.startswith("fleetbench: error: - is empty")
