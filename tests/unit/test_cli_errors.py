"""How the CLI ends on errors: exit 3 and one line for an unexpected exception (``--debug``
for the traceback), the token never printed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.commands import run as run_command
from fleetbench.errors import BadInput
from tests.conftest import run_cli

TOKEN = "hf_tEsTtOkEn0123456789abcdefXYZ"
HINT = "(run again with --debug for the traceback)"


def damaged_run(tmp_path: Path) -> Path:
    """A run directory whose manifest names a host with a string where its entry belongs:
    reading it raises a genuine AttributeError deep in the report code."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "r1", "hosts": {"a": "ok"}}))
    return run_dir


def test_unexpected_exception_is_exit_3_and_one_line(tmp_path: Path) -> None:
    done = run_cli("report", "build", damaged_run(tmp_path), "--no-history")
    assert done.returncode == 3, done.stderr
    assert done.stderr == ("fleetbench: internal error: AttributeError: 'str' object has no "
                           f"attribute 'get' {HINT}\n")
    assert done.stdout == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_the_traceback(tmp_path: Path, where: str) -> None:
    command = ["report", "build", str(damaged_run(tmp_path)), "--no-history"]
    args = ["--debug", *command] if where == "before" else [*command, "--debug"]
    done = run_cli(*args)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any("fleetbench/reports/fleet.py" in line and "_host_info" in line for line in lines)
    assert lines[-2] == "AttributeError: 'str' object has no attribute 'get'"
    assert lines[-1] == "fleetbench: internal error: AttributeError: 'str' object has no " \
                        "attribute 'get'"


def test_debug_on_a_sub_command_does_not_hide_one_given_before(tmp_path: Path) -> None:
    done = run_cli("--debug", "report", "build", damaged_run(tmp_path), "--no-history",
                   "--json")
    assert done.returncode == 3
    assert "Traceback (most recent call last):" in done.stderr


def test_internal_error_of_a_run_never_prints_the_token(tmp_path: Path) -> None:
    # --resume of a manifest without its plan: a genuine KeyError in the run command.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "r2", "hosts": {}}))
    done = run_cli("run", "--resume", run_dir, env={"HF_TOKEN": TOKEN})
    assert done.returncode == 3
    assert done.stderr == f"fleetbench: internal error: KeyError: 'plan' {HINT}\n"
    debug = run_cli("--debug", "run", "--resume", run_dir, env={"HF_TOKEN": TOKEN})
    assert debug.returncode == 3 and "Traceback" in debug.stderr
    assert TOKEN not in debug.stderr + debug.stdout


def test_bad_input_is_still_exit_2_with_its_message(tmp_path: Path) -> None:
    done = run_cli("report", "build", tmp_path / "nowhere", "--no-history")
    assert done.returncode == 2
    assert done.stderr.startswith("fleetbench: error: ") and done.stderr.count("\n") == 1
    debug = run_cli("report", "build", tmp_path / "nowhere", "--no-history", "--debug")
    assert debug.returncode == 2
    assert "Traceback (most recent call last):" in debug.stderr
    assert debug.stderr.splitlines()[-1] == done.stderr.strip()


# --- the token in an exception's text is masked (in process: no command puts it there) --------


def _raising(error: Exception) -> object:
    def handler(args: argparse.Namespace) -> int:
        raise error
    return handler


@pytest.mark.parametrize("source", ["env", "file"])
@pytest.mark.parametrize("error", [RuntimeError, BadInput])
def test_a_token_in_an_error_message_is_masked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        source: str, error: type[Exception]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    if source == "env":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        extra: list[str] = []
    else:
        monkeypatch.delenv("HF_TOKEN", raising=False)
        extra = ["--hf-token-file", str(token_file)]
    # The run command's handler, as the parser is built after this.
    monkeypatch.setattr(run_command, "handle",
                        _raising(error(f"request with Bearer {TOKEN} refused\nsecond line")))
    code = main(["run", "-i", "x", *extra, "--debug"])
    err = capsys.readouterr().err
    assert code == (3 if error is RuntimeError else 2)
    assert TOKEN not in err
    assert "Bearer ******** refused" in err
    assert "Traceback (most recent call last):" in err
