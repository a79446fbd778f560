"""The roofline arithmetic against values worked out by hand from the data sheets.

Hand figures (AMD MI300X data sheet, CDNA 3 white paper, the partitioning guide):
5.3 TB/s and 1307.4 TFLOP/s FP16 (2614.9 FP8) per GPU over 304 CUs; CPX = 38 CUs, its
NPS4 memory in one quadrant (5.3 / 4 = 1.325 TB/s). Llama-3.1-8B: 8,030,261,248 parameters
(embeddings 2 x 128256 x 4096, 32 layers of 4096 x 10240 attention + 3 x 4096 x 14336 MLP +
2 x 4096 norms, a final norm), KV 2 x 32 layers x 8 heads x 128 x bytes per token.
Llama-3.1-70B: 70,553,706,496 parameters, KV 2 x 80 x 8 x 128 x bytes per token.
"""

from __future__ import annotations

import math

import pytest

from fleetbench.fit import builtin_config
from fleetbench.roofline import (
    GPU_SPECS,
    NoBound,
    Slot,
    bound,
    compute_units,
    gpu_model_of,
    memory_share,
    model_bytes,
    partition_share,
)

MI300X = GPU_SPECS["MI300X"]
P8 = 2 * 128256 * 4096 + 32 * (4096 * 10240 + 3 * 4096 * 14336 + 2 * 4096) + 4096
P70 = 2 * 128256 * 8192 + 80 * (8192 * 18432 + 3 * 8192 * 28672 + 2 * 8192) + 8192


def llama(size: str, dtype: str):  # type: ignore[no-untyped-def]
    config = builtin_config(f"meta-llama/Llama-3.1-{size}-Instruct")
    assert config is not None
    return model_bytes(config, dtype)


def configuration(**values: object) -> dict[str, object]:
    base: dict[str, object] = {"batch_size": None, "num_prompts": None, "max_concurrency": None}
    return {**base, **values}


def test_model_bytes_match_the_hand_count() -> None:
    small, big = llama("8B", "float16"), llama("70B", "float8")
    assert (P8, P70) == (8_030_261_248, 70_553_706_496)
    assert small.active_parameters == P8 and small.weight_bytes == 2 * P8
    assert small.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131072
    assert big.active_parameters == P70 and big.weight_bytes == P70
    assert big.kv_bytes_per_token == 2 * 80 * 8 * 128 * 1


def test_partition_table() -> None:
    assert compute_units(MI300X, "CPX") == 38
    assert compute_units(MI300X, "SPX") == 304
    assert compute_units(MI300X, "QPX") == 76
    assert memory_share("CPX", "NPS4", 1) == memory_share("CPX", "NPS4", 2) == 0.25
    assert memory_share("CPX", "NPS4", 3) == 0.5
    assert memory_share("QPX", "NPS4", 1) == 0.25
    assert memory_share("CPX", "NPS1", 1) == 1.0
    assert partition_share("CPX") == 1 / 8
    with pytest.raises(NoBound):
        memory_share("DPX", "NPS4", 1)
    cpx = Slot(MI300X, "CPX", "NPS4", 1)
    assert cpx.bandwidth == pytest.approx(1.325e12)
    assert cpx.flops("float16") == pytest.approx(38 * 1307.4e12 / 304)
    assert Slot(MI300X, "CPX", "NPS4", 8).bandwidth == pytest.approx(5.3e12)  # one whole GPU
    assert Slot(MI300X, "CPX", "NPS4", 16).bandwidth == pytest.approx(10.6e12)
    assert Slot(MI300X, "CPX", "NPS4", 8).flops("float8") == pytest.approx(2614.9e12)


def test_8b_latency_on_one_cpx_nps4_partition() -> None:
    # Prefill of 128 tokens: 2 x P x 128 / 163.425 TFLOP/s = 12.58 ms (> W / 1.325 TB/s =
    # 12.12 ms): compute. Each of the 127 decode steps reads W and 128 tokens of KV:
    # (16,060,522,496 + 128 x 131072) / 1.325e12 = 12.134 ms.
    prefill = 2 * P8 * 128 / 163.425e12
    step = (2 * P8 + 128 * 131072) / 1.325e12
    expected_ms = (prefill + 127 * step) * 1000
    assert expected_ms == pytest.approx(1553.57, abs=0.01)
    found = bound(Slot(MI300X, "CPX", "NPS4", 1), llama("8B", "float16"), dtype="float16",
                  **configuration(scenario="latency", metric="latency", batch_size=1,
                                  input_len=128, output_len=128))
    assert found.value == pytest.approx(expected_ms, rel=1e-9)
    assert (found.unit, found.kind, found.roof) == ("ms", "lower", "HBM")
    # 1570 ms measured (the era D fixture): 99 % of the roofline, plausible; 1500 is not.
    assert found.fraction(1570.32) == pytest.approx(expected_ms / 1570.32)
    assert not found.implausible(1570.32)
    assert found.implausible(1500.0)
    per_token = bound(Slot(MI300X, "CPX", "NPS4", 1), llama("8B", "float16"), dtype="float16",
                      **configuration(scenario="latency", metric="latency_per_token",
                                      batch_size=1, input_len=128, output_len=128))
    assert per_token.value == pytest.approx(expected_ms / 128)


def test_8b_tpot_on_spx_nps1() -> None:
    # One decode step of one sequence with 2048 tokens of context on a whole GPU:
    # (16,060,522,496 + 2048 x 131072) / 5.3e12 = 3.081 ms.
    expected_ms = (2 * P8 + 2048 * 131072) / 5.3e12 * 1000
    found = bound(Slot(MI300X, "SPX", "NPS1", 1), llama("8B", "float16"), dtype="float16",
                  **configuration(scenario="serving", metric="tpot_median", num_prompts=252,
                                  max_concurrency=128, input_len=2048, output_len=128))
    assert found.value == pytest.approx(expected_ms) and expected_ms == pytest.approx(3.0809,
                                                                                       abs=1e-4)


def test_70b_fp8_throughput_on_spx_nps1_and_cpx_nps4() -> None:
    model = llama("70B", "float8")
    kv = 2 * 80 * 8 * 128
    # Generated tokens: each reads its 2048-token KV cache, and 1000 requests share one read
    # of the 70.55 GB of FP8 weights: 5.3e12 / (2048 kv + W / 1000) = 13,051 tok/s, below
    # the FP8 compute roof 2614.9e12 / (2 P) = 18,531 tok/s.
    hbm = 5.3e12 / (2048 * kv + P70 / 1000)
    compute = 2614.9e12 / (2 * P70)
    assert (round(hbm), round(compute)) == (13051, 18531)
    spx = Slot(MI300X, "SPX", "NPS1", 1)
    args = configuration(scenario="throughput", num_prompts=1000, input_len=2048,
                         output_len=128)
    gen = bound(spx, model, dtype="float8", metric="throughput_gen", **args)
    assert gen.value == pytest.approx(hbm) and (gen.kind, gen.roof) == ("upper", "HBM")
    total = bound(spx, model, dtype="float8", metric="throughput_total", **args)
    # (input + output) / output x 13,051 = 221,870 is above the compute roof: 18,531 it is.
    assert total.value == pytest.approx(compute) and total.roof == "compute"
    assert total.implausible(20000.0) and not total.implausible(18000.0)
    # The same on 8 CPX/NPS4 partitions (one whole GPU) and on 4 (two quadrants: half).
    assert bound(Slot(MI300X, "CPX", "NPS4", 8), model, dtype="float8",
                 metric="throughput_gen", **args).value == pytest.approx(hbm)
    half = bound(Slot(MI300X, "CPX", "NPS4", 4), model, dtype="float8",
                 metric="throughput_gen", **args)
    assert half.value == pytest.approx(min(2.65e12 / (2048 * kv + P70 / 1000), compute / 2))


def test_moe_counts_active_experts_only() -> None:
    config = builtin_config("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert config is not None
    active = model_bytes(config, "float16").active_parameters
    # Mixtral routes each token to 2 of 8 experts: about 12.9 B of 46.7 B parameters.
    assert math.isclose(active / 1e9, 12.9, abs_tol=0.1)


@pytest.mark.parametrize(("device", "name", "model"), [
    (0x74A1, None, "MI300X"), (0x74A5, None, "MI325X"), (None, "AMD Instinct MI325X OAM",
                                                          "MI325X"),
    (0x1234, "AMD Radeon", None), (None, None, None)])
def test_gpu_model_of(device: int | None, name: str | None, model: str | None) -> None:
    assert gpu_model_of(device, name) == model


def test_no_bound_for_unknown_modes_or_dtypes() -> None:
    with pytest.raises(NoBound):
        Slot(MI300X, "TPX", "NPS1", 1).bandwidth  # noqa: B018
    with pytest.raises(NoBound):
        bound(Slot(MI300X, "SPX", "NPS1", 1), llama("8B", "float16"), dtype="float32",
              **configuration(scenario="latency", metric="latency", batch_size=1,
                              input_len=128, output_len=128))
