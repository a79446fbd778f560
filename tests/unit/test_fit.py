"""`fleetbench fit`: the guide's §5 memory check, to the byte, and its GQA-aware version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fleetbench import fit
from fleetbench.cli import main
from fleetbench.errors import BadInput
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data" / "fit"
LLAMA31_8B_CONFIG = DATA / "Llama-3.1-8B.config.json"
GB = 10**9


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the HF cache at an empty folder: a real cache on this machine must not leak in."""
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def fit_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["fit", *args, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def bad_input(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run a `fit` that must be refused; return its single error line."""
    assert main(["fit", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert err.startswith("fleetbench: error: ") and err.count("\n") == 1, err
    assert " — " in err  # "<problem> — <fix>"
    return err


def builtin(model_id: str, **overrides: Any) -> fit.ModelConfig:
    config = fit.builtin_config(model_id)
    assert config is not None, model_id
    return fit.ModelConfig(config.name, config.source, {**config.values, **overrides})


# --------------------------------------------------------------------------- the guide's examples


def test_guide_example_1_llama2_7b_to_the_byte(capsys: pytest.CaptureFixture[str]) -> None:
    # Guide: weights ≈ 2 * 7 = 14 GB; 2 * 32 * 4096 * 2 = 524,288 B/token; 1 * 4096 tokens.
    out = fit_json(
        capsys, "--model", "meta-llama/Llama-2-7b-hf", "--params", "7e9", "--formula", "seed"
    )
    assert out["weights_bytes"] == 14 * GB
    assert out["kv_cache_per_token_bytes"] == 524_288
    assert out["kv_cache_bytes"] == 4096 * 524_288 == 2_147_483_648  # the guide's "≈ 2 GB"
    assert out["total_bytes"] == 14 * GB + 2_147_483_648
    assert out["fits"] is True
    assert out["min_partitions"] == 1
    assert out["recommended_tp"] == 1


def test_guide_example_2_llama2_13b_to_the_byte(capsys: pytest.CaptureFixture[str]) -> None:
    # Guide: 26 GB weights, 2 * 40 * 5120 * 2 = 819,200 B/token, does not fit 24 GB.
    out = fit_json(
        capsys, "--model", "meta-llama/Llama-2-13b-hf", "--params", "13e9", "--formula", "seed"
    )
    assert out["weights_bytes"] == 26 * GB
    assert out["kv_cache_per_token_bytes"] == 819_200
    # 4096 * 819,200 = 3.355 GB: the guide prints "≈ 3.6 GB", its arithmetic slip.
    assert out["kv_cache_bytes"] == 3_355_443_200
    assert out["total_bytes"] == 29_355_443_200
    assert out["fits"] is False
    assert out["min_partitions"] == 2
    assert out["recommended_tp"] == 2


def test_guide_examples_have_no_gqa_so_both_formulas_agree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = fit_json(capsys, "--model", "meta-llama/Llama-2-7b-hf", "--params", "7e9")
    assert out["formula"] == "gqa"
    assert out["formulas"]["gqa"] == out["formulas"]["seed"]
    assert out["seed_over_gqa_kv_ratio"] == 1.0


# --------------------------------------------------------------------------- GQA


@pytest.mark.parametrize(
    ("model", "gqa_bytes", "seed_bytes", "ratio"),
    [
        # 2 * 32 layers * 8 KV heads * 128 * 2 B, against 2 * 32 * 4096 * 2 B.
        ("meta-llama/Llama-3.1-8B", 131_072, 524_288, 4.0),
        # 2 * 80 layers * 8 KV heads * 128 * 2 B, against 2 * 80 * 8192 * 2 B.
        ("meta-llama/Llama-3.1-70B", 327_680, 2_621_440, 8.0),
    ],
)
def test_gqa_kv_per_token_of_llama31(
    capsys: pytest.CaptureFixture[str], model: str, gqa_bytes: int, seed_bytes: int, ratio: float
) -> None:
    out = fit_json(capsys, "--model", model)
    assert out["kv_cache_per_token_bytes"] == gqa_bytes
    assert out["kv_cache_bytes"] == 4096 * gqa_bytes
    assert out["formulas"]["seed"]["kv_cache_per_token_bytes"] == seed_bytes
    assert out["seed_over_gqa_kv_ratio"] == ratio
    assert out["total_bytes"] == out["weights_bytes"] + out["kv_cache_bytes"]


def test_seed_formula_changes_the_verdict_not_only_the_kv(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Llama-3.1-8B at batch 8: the guide's KV cache (17.2 GB) no longer fits; vLLM's (4.3 GB) does.
    gqa = fit_json(capsys, "--model", "meta-llama/Llama-3.1-8B", "--batch-size", "8")
    seed = fit_json(
        capsys, "--model", "meta-llama/Llama-3.1-8B", "--batch-size", "8", "--formula", "seed"
    )
    assert gqa["fits"] is True and gqa["min_partitions"] == 1
    assert seed["fits"] is False and seed["min_partitions"] == 2
    assert gqa["formulas"] == seed["formulas"]


def test_mla_caches_one_latent_per_layer() -> None:
    config = builtin("deepseek-ai/DeepSeek-R1-0528")
    # 61 layers * (512 latent + 64 rope) * 1 byte.
    assert fit.kv_cache_per_token_bytes(config, 1, "gqa") == 61 * 576
    assert fit.kv_cache_per_token_bytes(config, 1, "seed") == 2 * 61 * 7168


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("mistralai/Mixtral-8x7B-v0.1", 46.7e9),
        ("meta-llama/Llama-3.1-8B", 8.03e9),
        ("meta-llama/Llama-2-7b-hf", 6.74e9),
        ("meta-llama/Llama-2-13b-hf", 13.0e9),
        ("meta-llama/Llama-2-70b-hf", 69.0e9),
        ("meta-llama/Llama-3.1-70B", 70.6e9),
        ("meta-llama/Llama-3.1-405B", 406e9),
        ("meta-llama/Llama-3.2-1B", 1.24e9),
        ("meta-llama/Llama-3.2-3B", 3.21e9),
        ("mistralai/Mistral-7B-v0.1", 7.24e9),
        ("mistralai/Mixtral-8x22B-v0.1", 141e9),
        ("Qwen/Qwen2.5-7B", 7.61e9),
        ("Qwen/Qwen2.5-14B", 14.7e9),
        ("Qwen/Qwen2.5-32B", 32.5e9),
        ("Qwen/Qwen2.5-72B", 72.7e9),
        ("deepseek-ai/DeepSeek-V3", 671e9),
    ],
)
def test_parameter_count_within_1_percent_of_published(model: str, published: float) -> None:
    assert fit.count_parameters(builtin(model)) == pytest.approx(published, rel=0.01)


def test_llama31_8b_count_is_exact_from_its_real_config() -> None:
    # The tensor sizes of the safetensors checkpoint add up to 8,030,261,248.
    assert fit.count_parameters(fit.load_config(LLAMA31_8B_CONFIG)) == 8_030_261_248


def test_tied_embeddings_count_the_table_once() -> None:
    tied = builtin("meta-llama/Llama-3.2-1B")
    untied = builtin("meta-llama/Llama-3.2-1B", tie_word_embeddings=False)
    assert fit.count_parameters(untied) - fit.count_parameters(tied) == 128_256 * 2048


def test_every_expert_counts_toward_the_weights() -> None:
    mixtral = builtin("mistralai/Mixtral-8x7B-v0.1")
    dense = builtin("mistralai/Mixtral-8x7B-v0.1", num_local_experts=None)
    expert_mlp = 3 * 4096 * 14336
    # 7 more experts and an 8-wide router per layer.
    assert fit.count_parameters(mixtral) - fit.count_parameters(dense) == 32 * (
        7 * expert_mlp + 8 * 4096
    )


def test_kv_heads_change_the_attention_weights() -> None:
    gqa = builtin("meta-llama/Llama-3.1-8B")
    mha = builtin("meta-llama/Llama-3.1-8B", num_key_value_heads=32)
    # k and v projections grow from 8 to 32 heads of 128 in each of 32 layers.
    assert fit.count_parameters(mha) - fit.count_parameters(gqa) == 32 * 2 * 4096 * 24 * 128


def test_params_option_replaces_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    out = fit_json(capsys, "--model", "meta-llama/Llama-3.1-8B", "--params", "1.5e9")
    assert out["params"] == 1_500_000_000 and out["params_source"] == "given"
    assert out["weights_bytes"] == 3_000_000_000


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    ("dtype", "kv_dtype", "weight_bytes", "kv_bytes"),
    [
        ("float16", "auto", 2, 2),
        ("bfloat16", "auto", 2, 2),
        ("float32", "auto", 4, 4),
        ("float8", "auto", 1, 1),
        ("float16", "float8", 2, 1),
        ("float16", "fp8_e4m3", 2, 1),
    ],
)
def test_dtype_bytes(
    capsys: pytest.CaptureFixture[str], dtype: str, kv_dtype: str, weight_bytes: int, kv_bytes: int
) -> None:
    out = fit_json(
        capsys, "--model", "meta-llama/Llama-3.1-8B", "--dtype", dtype, "--kv-dtype", kv_dtype
    )
    assert out["weights_bytes"] == 8_030_261_248 * weight_bytes
    assert out["kv_cache_per_token_bytes"] == 2 * 32 * 8 * 128 * kv_bytes


def test_dtype_auto_reads_the_config() -> None:
    llama = fit.estimate_fit(builtin("meta-llama/Llama-3.1-8B"), dtype="auto")
    assert llama.dtype == "bfloat16" and llama.kv_dtype == "bfloat16"
    deepseek = fit.estimate_fit(builtin("deepseek-ai/DeepSeek-R1"), dtype="auto")
    assert deepseek.dtype == "float8"  # fp8 quantization_config
    assert deepseek.weights_bytes == deepseek.params
    flagged = fit.estimate_fit(builtin("deepseek-ai/DeepSeek-R1"), dtype="float16")
    assert any("fp8-quantized" in note for note in flagged.notes)
    assert not any("fp8-quantized" in note for note in deepseek.notes)


# --------------------------------------------------------------------------- fit, partitions, TP


def test_fits_is_strict_and_min_partitions_agrees() -> None:
    config = builtin("meta-llama/Llama-2-7b-hf")
    total = 14 * GB + 2_147_483_648
    exact = fit.estimate_fit(config, params=7 * GB, partition_bytes=total)
    assert exact.fits is False and exact.min_partitions == 2
    roomy = fit.estimate_fit(config, params=7 * GB, partition_bytes=total + 1)
    assert roomy.fits is True and roomy.min_partitions == 1


@pytest.mark.parametrize(
    ("min_parts", "heads", "kv_heads", "expected"),
    [
        (1, 32, 8, 1),
        (3, 32, 8, 4),
        (5, 64, 8, 8),
        (6, 40, 40, 8),
        (9, 40, 40, None),  # 16 does not divide 40
        (12, 48, 8, None),  # 16 divides 48 but not the 8 KV heads
        (7, 28, 4, None),
    ],
)
def test_recommended_tp(min_parts: int, heads: int, kv_heads: int, expected: int | None) -> None:
    assert fit.recommended_tp(min_parts, heads, kv_heads) == expected


def test_llama31_70b_on_cpx(capsys: pytest.CaptureFixture[str]) -> None:
    out = fit_json(capsys, "--model", "meta-llama/Llama-3.1-70B")
    # 70,553,706,496 params * 2 B + 4096 * 327,680 B = 142.45 GB: 6 partitions hold it.
    assert out["weights_bytes"] == 2 * 70_553_706_496
    assert out["fits"] is False
    assert out["min_partitions"] == 6
    assert out["recommended_tp"] == 8 and out["limits_partitions"] == 8


def test_limits_are_the_largest_that_still_fit() -> None:
    result = fit.estimate_fit(builtin("meta-llama/Llama-3.1-8B"), batch_size=2, seq_len=1000)
    capacity = result.limits_partitions * result.partition_bytes
    per_token = result.kv_cache_per_token_bytes
    assert result.limits_partitions == 1
    assert result.weights_bytes + 2 * result.max_seq_len * per_token < capacity
    assert result.weights_bytes + 2 * (result.max_seq_len + 1) * per_token >= capacity
    assert result.weights_bytes + 1000 * result.max_batch_size * per_token < capacity
    assert result.weights_bytes + 1000 * (result.max_batch_size + 1) * per_token >= capacity
    # (24e9 - 16,060,522,496 - 1) // (2 * 131,072) and // (1000 * 131,072)
    assert (result.max_seq_len, result.max_batch_size) == (30_286, 60)


def test_longest_context_is_capped_by_the_model() -> None:
    result = fit.estimate_fit(builtin("meta-llama/Llama-2-7b-hf"), seq_len=16, params=1 * GB)
    assert result.max_seq_len == 4096
    assert any("max_position_embeddings" in note for note in result.notes)


# --------------------------------------------------------------------------- run planner


def test_check_fit_refuses_with_the_minimum() -> None:
    with pytest.raises(BadInput, match=r"at least 2 partitions — use --gpus 2"):
        fit.check_fit("meta-llama/Llama-2-13b-hf", 1, params=13 * GB)
    ok = fit.check_fit("meta-llama/Llama-2-13b-hf", 2, params=13 * GB)
    assert ok.warning is None and not ok.tight
    assert ok.per_partition_bytes == (26 * GB + 3_355_443_200) // 2
    assert ok.usage == pytest.approx(29_355_443_200 / 2 / (24 * GB))


def test_check_fit_warns_on_a_tight_fit() -> None:
    # Mixtral-8x7B in fp16 on 4 CPX partitions: 93.9 GB / 96 GB.
    result = fit.check_fit("mistralai/Mixtral-8x7B-v0.1", 4)
    assert result.tight and result.usage > 0.9
    assert result.warning is not None and "tight fit" in result.warning
    assert not fit.check_fit("mistralai/Mixtral-8x7B-v0.1", 8).tight


def test_check_fit_refuses_a_tp_size_vllm_refuses() -> None:
    with pytest.raises(BadInput, match="does not divide the 32 attention heads — use --gpus 1"):
        fit.check_fit("meta-llama/Llama-3.1-8B", 3)


def test_check_fit_counts_replicated_kv_heads() -> None:
    result = fit.check_fit("meta-llama/Llama-3.1-70B", 16)
    kv = result.fit.kv_cache_bytes
    # 8 KV heads on 16 partitions: each holds one whole head, i.e. 1/8 of the cache.
    assert result.per_partition_bytes == -(-result.fit.weights_bytes // 16) + kv // 8


@pytest.mark.parametrize("gpus", [0, -8])
def test_check_fit_rejects_non_positive_gpus(gpus: int) -> None:
    with pytest.raises(BadInput, match="--gpus must be a positive whole number"):
        fit.check_fit("meta-llama/Llama-3.1-8B", gpus)


# --------------------------------------------------------------------------- configs


def test_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    out = fit_json(capsys, "--config", str(LLAMA31_8B_CONFIG))
    assert out["config_source"] == f"config:{LLAMA31_8B_CONFIG}"
    assert out["params"] == 8_030_261_248
    assert out["kv_cache_per_token_bytes"] == 131_072


def test_model_names_a_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    out = fit_json(capsys, "--model", "my/llama", "--config", str(LLAMA31_8B_CONFIG))
    assert out["model"] == "my/llama"


def test_hf_cache_is_preferred_over_the_builtin_table(
    capsys: pytest.CaptureFixture[str], empty_hf_cache: Path
) -> None:
    repo = empty_hf_cache / "models--meta-llama--Llama-3.1-8B"
    snapshot = repo / "snapshots" / "0e9e39f249a16976918f6564b8830bc894c89659"
    snapshot.mkdir(parents=True)
    config = json.loads(LLAMA31_8B_CONFIG.read_text())
    config["num_key_value_heads"] = 4  # differs from the built-in entry, so the source shows
    (snapshot / "config.json").write_text(json.dumps(config))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    out = fit_json(capsys, "--model", "meta-llama/Llama-3.1-8B")
    assert out["config_source"] == f"hf-cache:{snapshot / 'config.json'}"
    assert out["kv_cache_per_token_bytes"] == 2 * 32 * 4 * 128 * 2


def test_hf_home_layout_without_refs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    snapshot = tmp_path / "hf-home" / "hub" / "models--acme--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    shutil.copy(LLAMA31_8B_CONFIG, snapshot / "config.json")
    config = fit.resolve_model("acme/tiny")
    assert config.source == f"hf-cache:{snapshot / 'config.json'}"
    assert config.name == "acme/tiny"


def test_hf_cache_dir_resolution(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert fit.hf_hub_cache_dir(home) == tmp_path / ".cache" / "huggingface" / "hub"
    assert fit.hf_hub_cache_dir({**home, "HF_HOME": "/h"}) == Path("/h/hub")
    both = {**home, "HF_HOME": "/h", "HF_HUB_CACHE": "/c"}
    assert fit.hf_hub_cache_dir(both) == Path("/c")


def test_builtin_table_covers_the_common_models() -> None:
    ids = fit.builtin_model_ids()
    required = {
        "meta-llama/Llama-2-7b-hf",
        "meta-llama/Llama-2-13b-hf",
        "meta-llama/Llama-2-70b-hf",
        "meta-llama/Llama-3.1-8B",
        "meta-llama/Llama-3.1-70B",
        "meta-llama/Llama-3.1-405B",
        "mistralai/Mixtral-8x7B-v0.1",
        "mistralai/Mixtral-8x22B-v0.1",
        "Qwen/Qwen2.5-7B",
        "Qwen/Qwen2.5-72B",
    }
    assert required <= set(ids)
    for model_id in ids:  # every entry is complete enough for both numbers
        config = builtin(model_id)
        assert fit.count_parameters(config) > 0
        assert fit.kv_cache_per_token_bytes(config, 2) > 0


def test_builtin_lookup_by_any_case_or_by_mad_report_name() -> None:
    by_case = fit.resolve_model("META-LLAMA/llama-3.1-8b-instruct")
    by_name = fit.resolve_model("Llama-3.1-8B-Instruct")
    assert by_case.name == by_name.name == "meta-llama/Llama-3.1-8B-Instruct"
    assert by_case.source == "builtin"


def test_multimodal_config_uses_its_text_config(tmp_path: Path) -> None:
    text = json.loads(LLAMA31_8B_CONFIG.read_text())
    dtype = text.pop("torch_dtype")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "mllama", "torch_dtype": dtype, "text_config": text}))
    config = fit.load_config(tmp_path)  # a model directory works too
    assert config.source == f"config:{path} (text_config)"
    assert config.torch_dtype == "bfloat16"
    assert fit.count_parameters(config) == 8_030_261_248


# --------------------------------------------------------------------------- bad input


def test_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    err = bad_input(capsys, "--model", "meta-llama/Llama-3.1-8B-Instrukt")
    assert "unknown model 'meta-llama/Llama-3.1-8B-Instrukt'" in err
    assert "--config" in err and "meta-llama/Llama-3.1-8B-Instruct" in err


def test_no_model_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert "pass --model HF_ID or --config CONFIG_JSON" in bad_input(capsys)


def test_config_missing_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    err = bad_input(capsys, "--config", str(DATA / "no-layers.config.json"))
    assert "has no 'num_hidden_layers'" in err


def test_config_missing_a_key_only_the_count_needs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = json.loads(LLAMA31_8B_CONFIG.read_text())
    del config["vocab_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    err = bad_input(capsys, "--config", str(path))
    assert "has no 'vocab_size', needed for the parameter count" in err and "--params" in err
    # With the count given, the KV cache alone needs no vocabulary.
    assert fit_json(capsys, "--config", str(path), "--params", "8e9")["params"] == 8 * GB


def test_config_with_a_wrong_value(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = json.loads(LLAMA31_8B_CONFIG.read_text())
    config["num_key_value_heads"] = 0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert "sets 'num_key_value_heads' to 0" in bad_input(capsys, "--config", str(path))


def test_config_not_found_or_not_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "does not exist" in bad_input(capsys, "--config", str(tmp_path / "nope.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"hidden_size": 4096,')
    assert "is not valid JSON (line 1" in bad_input(capsys, "--config", str(broken))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "0", "--batch-size must be above zero"),
        ("--seq-len", "-4096", "--seq-len must be above zero"),
        ("--seq-len", "1.5", "--seq-len must be a whole number"),
        ("--partition-gb", "0", "--partition-gb must be above zero"),
        ("--partition-gb", "nan", "--partition-gb must be above zero"),
        ("--params", "0", "--params must be above zero"),
        ("--params", "seven", "--params 'seven' is not a number"),
        ("--dtype", "int4", "unknown --dtype 'int4'"),
        ("--kv-dtype", "float64", "unknown --kv-dtype 'float64'"),
    ],
)
def test_bad_sizes_and_dtypes(
    capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    err = bad_input(capsys, "--model", "meta-llama/Llama-3.1-8B", option, value)
    assert message in err


# --------------------------------------------------------------------------- output


def test_json_has_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    out = fit_json(capsys, "--model", "Qwen/Qwen2.5-72B-Instruct", "--partition-gb", "192")
    contract = {
        "weights_bytes",
        "kv_cache_per_token_bytes",
        "kv_cache_bytes",
        "total_bytes",
        "fits",
        "min_partitions",
    }
    assert contract <= out.keys()
    assert contract - {"weights_bytes"} == out["formulas"]["gqa"].keys()
    assert out["formulas"]["seed"].keys() == out["formulas"]["gqa"].keys()
    assert {"recommended_tp", "max_seq_len", "max_batch_size"} <= out.keys()
    assert out["partition_bytes"] == 192 * GB  # an SPX MI300X
    assert out["fits"] is True


def test_table_shows_both_formulas_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--model", "meta-llama/Llama-3.1-70B"]) == 0
    out = capsys.readouterr().out
    assert "327,680 B" in out and "2,621,440 B" in out
    assert "8.00×" in out
    assert "recommended tensor-parallel size: 8" in out
    assert "141.11 GB" in out  # the weights


def test_not_fitting_is_still_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    # fit is informational: the verdict is in the output, not in the exit code.
    out = fit_json(capsys, "--model", "meta-llama/Llama-3.1-405B")
    assert out["fits"] is False and out["min_partitions"] == 34
    assert out["recommended_tp"] is None  # no power of two >= 34 divides 8 KV heads


def test_real_command(tmp_path: Path) -> None:
    done = run_cli(
        "fit",
        "--model",
        "meta-llama/Llama-2-13b-hf",
        "--params",
        "13e9",
        "--formula",
        "seed",
        "--json",
        env={"HF_HUB_CACHE": str(tmp_path / "empty")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["weights_bytes"], out["kv_cache_per_token_bytes"]) == (26 * GB, 819_200)
    bad = run_cli("fit", "--model", "acme/unknown", env={"HF_HUB_CACHE": str(tmp_path / "e")})
    assert bad.returncode == 2
    assert bad.stderr.startswith("fleetbench: error: unknown model 'acme/unknown'")
