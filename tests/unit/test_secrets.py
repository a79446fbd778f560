"""Secrets on the controller: withheld from the environment, filtered out of children's
environments, refused from files others can read, served on a socket only to descendants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fleetbench import scratch
from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.secrets import (
    Secret,
    child_environment,
    is_secret_name,
    load_hf_token,
    withhold_environment,
)
from fleetbench.token_server import descends_from, serve_token

CANARY = "hf_unit_CANARY_5d1e"


@pytest.mark.parametrize("name", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "GITHUB_TOKEN",
                                  "AWS_SECRET_ACCESS_KEY", "MY_PASSWORD", "OPENAI_API_KEY",
                                  "hf_token"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "SSH_AUTH_SOCK", "ANSIBLE_PRIVATE_KEY_FILE",
                                  "HF_TOKEN_PATH", "ANSIBLE_VAULT_PASSWORD_FILE", "LANG",
                                  "FLEETBENCH_HISTORY"])
def test_names_that_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


def test_withheld_secrets_leave_the_environment() -> None:
    env = {"PATH": "/bin", "HF_TOKEN": CANARY, "SSH_AUTH_SOCK": "/run/agent"}
    taken = withhold_environment(env)
    assert env == {"PATH": "/bin", "SSH_AUTH_SOCK": "/run/agent"}
    assert set(taken) == {"HF_TOKEN"} and CANARY not in repr(taken)
    assert load_hf_token(None, taken).reveal() == CANARY  # type: ignore[union-attr]


def test_child_environment_drops_secrets_by_name_and_by_value() -> None:
    env = {"PATH": "/bin", "HF_TOKEN": CANARY, "INNOCENT": f"x{CANARY}y", "LANG": "C"}
    assert child_environment(env, [Secret(CANARY), None]) == {"PATH": "/bin", "LANG": "C"}


def test_token_from_the_other_variable_name() -> None:
    token = load_hf_token(None, {"HUGGING_FACE_HUB_TOKEN": f" {CANARY}\n"})
    assert token is not None and token.reveal() == CANARY


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_token_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    token_file = tmp_path / "hf_token"
    token_file.write_text(CANARY)
    token_file.chmod(mode)
    with pytest.raises(BadInput, match=f"chmod 600 {token_file}") as caught:
        load_hf_token(token_file, {})
    assert CANARY not in str(caught.value)
    token_file.chmod(0o600)
    assert load_hf_token(token_file, {}).reveal() == CANARY  # type: ignore[union-attr]


def test_run_with_a_readable_token_file_starts_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n")
    token_file = tmp_path / "hf_token"
    token_file.write_text(CANARY)
    token_file.chmod(0o644)
    runs = tmp_path / "runs"
    assert main(["run", "-i", str(inventory), "--model", "meta-llama/Llama-3.1-8B-Instruct",
                 "--gpus", "8", "--hf-token-file", str(token_file),
                 "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err and err.count("\n") == 1 and CANARY not in err
    assert not runs.exists()


def test_main_takes_secrets_out_of_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setenv("SOME_API_KEY", CANARY)
    assert main(["fit", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--json"]) == 0
    assert "HF_TOKEN" not in os.environ and "SOME_API_KEY" not in os.environ


# A client of the token socket, as the benchmark role's lookup runs it in a worker process.
CLIENT = textwrap.dedent("""
    import socket, sys
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(sys.argv[1])
        sys.stdout.write("connected:")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    sys.stdout.write(data.decode() + ":end")
""")


def test_token_served_only_to_descendants_and_gone_afterwards() -> None:
    with serve_token(Secret(CANARY)) as path:
        folder = path.parent
        assert folder.stat().st_mode & 0o777 == 0o700
        assert [p.name for p in folder.iterdir()] == ["socket"]  # nothing at rest
        child = subprocess.run([sys.executable, "-c", CLIENT, str(path)], capture_output=True,
                               text=True, check=True)
        assert child.stdout == f"connected:{CANARY}:end"
        # A process of the same user that does not descend from this one: the grandchild
        # of a shell that exits at once is adopted by init (or a subreaper).
        orphan = subprocess.run(
            ["sh", "-c", f'"{sys.executable}" -c \'{CLIENT}\' "{path}" > "{folder}.out" &'],
            check=True)
        assert orphan.returncode == 0
        out = Path(f"{folder}.out")
        for _ in range(200):
            if out.exists() and out.read_text().endswith(":end"):
                break
            time.sleep(0.05)
        assert out.read_text() == "connected::end"  # it got through, and got nothing
        out.unlink()
    assert not folder.exists()


def test_descends_from_reads_the_parent_chain(tmp_path: Path) -> None:
    for pid, ppid in ((40, 30), (30, 20), (20, 1), (50, 1)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (a) b) S {ppid} 1 1 0")
    assert descends_from(40, 20, proc=tmp_path)
    assert not descends_from(50, 20, proc=tmp_path)
    assert not descends_from(40, 40, proc=tmp_path)
    assert not descends_from(60, 20, proc=tmp_path)  # gone


def test_sweep_removes_only_folders_of_dead_controllers(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"fleetbench-runner-{dead.pid}-abc"
    left.mkdir()
    (left / "artifacts").mkdir()
    mine = scratch.make("fleetbench-runner-", tmp_path)
    other = tmp_path / "fleetbench-runner-notapid"
    other.mkdir()
    assert scratch.sweep("fleetbench-runner-", tmp_path) == [left]
    assert mine.exists() and other.exists() and not left.exists()


def test_a_token_given_as_the_file_path_is_not_echoed(tmp_path: Path) -> None:
    value = "hf_" + "A1b2C3d4" * 4
    with pytest.raises(BadInput, match="not the token itself") as caught:
        load_hf_token(Path(value), {})
    assert value not in str(caught.value)
    with pytest.raises(BadInput, match="missing-file"):
        load_hf_token(tmp_path / "missing-file", {})


RESTARTING = textwrap.dedent("""
    import json, os, sys
    from fleetbench.secrets import restart_without_secrets, withhold_environment
    restart_without_secrets(["-c", sys.argv[1], sys.argv[1]])
    taken = withhold_environment()
    with open("/proc/self/environ", "rb") as handle:
        block = handle.read()
    print(json.dumps({"in_block": b"hf_unit_CANARY" in block,
                      "taken": {k: v.reveal() for k, v in taken.items()},
                      "left": [k for k in os.environ if "TOKEN" in k or k.startswith("FLEETBENCH_SECRETS")]}))
""")


def test_restart_leaves_no_secret_in_the_process_environment_block() -> None:
    done = subprocess.run([sys.executable, "-c", RESTARTING, RESTARTING],
                          env={**os.environ, "HF_TOKEN": CANARY, "X_API_KEY": "k1"},
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result == {"in_block": False, "taken": {"HF_TOKEN": CANARY, "X_API_KEY": "k1"},
                      "left": []}


def test_a_token_too_short_to_be_one_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="HF_TOKEN holds 1 character"):
        load_hf_token(None, {"HF_TOKEN": "x"})
    short = tmp_path / "token"
    short.write_text("abc\n")
    short.chmod(0o600)
    with pytest.raises(BadInput, match="too short for a Hugging Face token"):
        load_hf_token(short)
    assert load_hf_token(None, {"HF_TOKEN": "hf_" + "a" * 34}) is not None
