"""plan_fleet: what run.yml's validation play plans and refuses (plain ansible-playbook)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.errors import BadInput
from fleetbench.plan import plan_fleet

CPX = {"fleetbench_expected_compute": "CPX"}
MODEL = "Qwen/Qwen2.5-14B-Instruct"  # not gated; 40 heads, so TP 8 works


def test_each_host_gets_the_slots_fleetbench_run_would_give_it() -> None:
    slots = plan_fleet(MODEL, "8", "float16", "all",
                       {"a": CPX, "b": {"fleetbench_expected_compute": "SPX"}})
    assert [s["hip_visible_devices"] for s in slots["a"]] == [
        ",".join(str(g) for g in range(k, k + 8)) for k in range(0, 64, 8)]
    assert [s["name"] for s in slots["b"]] == ["slot0"]  # 8 whole GPUs in SPX
    assert len(plan_fleet(MODEL, 8, "float16", "latency", {"a": CPX}, slots="2")["a"]) == 2


@pytest.mark.parametrize(("args", "says"), [
    (("", 8, "float16", "all"), "benchmark_model is not set"),
    (("./my-model", 8, "float16", "all"), "is not a Hugging Face id"),
    ((MODEL, "eight", "float16", "all"), "benchmark_gpus 'eight' is not a number"),
    ((MODEL, 8, "fp16", "all"), "--dtype 'fp16' is not supported"),
    ((MODEL, 8, "float16", "soak"), "--scenario 'soak' is unknown"),
    ((MODEL, 128, "float16", "all"), "(host a)"),
    (("meta-llama/Llama-3.1-8B-Instruct", 8, "float16", "all"), "benchmark_hf_token_file"),
    (("Qwen/Qwen2.5-72B-Instruct", 1, "float16", "all"), "does not fit 1 partition"),
])
def test_bad_input_is_one_message_naming_it(args: tuple[str, int, str, str], says: str) -> None:
    with pytest.raises(BadInput) as caught:
        plan_fleet(*args, {"a": CPX})
    assert says in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_token_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no file on this controller"):
        plan_fleet("meta-llama/Llama-3.1-8B-Instruct", 8, "float16", "all", {"a": CPX},
                   token_file=str(tmp_path / "missing"))
    token = tmp_path / "token"
    token.write_text("hf_x\n")
    token.chmod(0o600)
    assert plan_fleet("meta-llama/Llama-3.1-8B-Instruct", 8, "float16", "all", {"a": CPX},
                      token_file=str(token))["a"]


def test_no_host_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no host to run on"):
        plan_fleet(MODEL, 8, "float16", "all", {})
