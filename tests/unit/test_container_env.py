"""Variables for the slot containers: --env and fleetbench_container_env, secrets refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.plan import check_container_env, parse_env_assignments
from fleetbench.secrets import Secret

TOKEN = "hf_env_CANARY_93a1"


def test_assignments_and_plain_values() -> None:
    env = parse_env_assignments(["HF_ENDPOINT=http://127.0.0.1:5050", "EMPTY=", "A=b=c"])
    assert env == {"HF_ENDPOINT": "http://127.0.0.1:5050", "EMPTY": "", "A": "b=c"}
    assert check_container_env({"VLLM_USE_V1": 1, "HF_HUB_OFFLINE": True, "X": "y"},
                               "--env") == {"VLLM_USE_V1": "1", "HF_HUB_OFFLINE": "true",
                                            "X": "y"}


def test_assignment_without_equals_is_bad_input() -> None:
    with pytest.raises(BadInput, match="NAME=VALUE"):
        parse_env_assignments(["HF_HUB_OFFLINE"])


@pytest.mark.parametrize("name", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "DB_PASSWORD",
                                  "AWS_SECRET_ACCESS_KEY", "API_KEY", "KEY", "SSH_KEYS",
                                  "WANDB_API_KEY"])
def test_secret_names_are_refused(name: str) -> None:
    with pytest.raises(BadInput, match=f"{name} looks like a secret"):
        check_container_env({name: "x"}, "--env")


@pytest.mark.parametrize("name", ["MONKEYPATCH", "KEYBOARD_LAYOUT", "HF_HOME"])
def test_names_that_only_contain_key_are_fine(name: str) -> None:
    assert check_container_env({name: "x"}, "--env") == {name: "x"}


def test_the_token_under_an_innocent_name_is_refused() -> None:
    with pytest.raises(BadInput, match="holds the Hugging Face token") as caught:
        check_container_env({"INNOCENT": f"Bearer {TOKEN}"}, "--env", [Secret(TOKEN)])
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(("env", "words"), [
    ({"HIP_VISIBLE_DEVICES": "0"}, "set per slot"),
    ({"1BAD": "x"}, "not an environment variable name"),
    ({"NESTED": {"a": 1}}, "plain value"),
    (["A=1"], "must be a mapping"),
])
def test_other_bad_environments(env: object, words: str) -> None:
    with pytest.raises(BadInput, match=words):
        check_container_env(env, "fleetbench_container_env of gpu-a")


@pytest.mark.parametrize(("inventory_env", "cli", "words"), [
    ("{}", ["--env", "HF_TOKEN=abc"], "--env: HF_TOKEN looks like a secret"),
    ("{AWS_SECRET_ACCESS_KEY: abc}", [], "fleetbench_container_env of gpu-a: AWS_SECRET"),
])
def test_run_refuses_secrets_in_container_env_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        inventory_env: str, cli: list[str], words: str) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n"
                         f"      fleetbench_container_env: {inventory_env}\n")
    runs = tmp_path / "runs"
    assert main(["run", "-i", str(inventory), "--model", "meta-llama/Llama-3.1-8B-Instruct",
                 "--gpus", "8", "--runs-dir", str(runs), *cli]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and TOKEN not in err
    assert not runs.exists()
