"""Does a model fit the GPU partitions it is given? The guide's §5 check, GQA-aware.

The guide (seed §5) says a model fits one CPX partition (24 GB) when
``weights + KV cache < partition memory`` and sizes the KV cache as
``2 * layers * hidden * bytes`` per token. That counts every attention head as a
key/value head; grouped-query attention (Llama-2-70B, Llama-3.x, Mistral, Qwen2.5…)
caches only ``num_key_value_heads`` heads, as vLLM allocates them, and MLA models
(DeepSeek-V3/R1) cache one compressed latent per layer. Both formulas are computed:

- ``seed``: ``2 * layers * (attention heads * head dim) * kv bytes`` — the guide's, exactly.
- ``gqa`` (default): ``2 * layers * KV heads * head dim * kv bytes``; for MLA models
  ``layers * (kv_lora_rank + qk_rope_head_dim) * kv bytes``.

Decisions (documented here once):

- Bytes per value: float32 4, float16 and bfloat16 2, float8 1. ``kv_dtype="auto"`` is
  the weights' dtype; ``dtype="auto"`` is the config's (float8 for fp8-quantized
  checkpoints, else ``torch_dtype``).
- Weights are ``params * bytes``; the parameter count comes from the config (embeddings,
  attention with its KV heads, MLP including every MoE expert, norms, output head
  unless tied) or is given. Quantization scales and multi-token-prediction layers
  (not loaded by vLLM for plain serving) are not counted.
- GB means 10⁹ bytes, as in the guide.
- ``fits``: ``weights + KV cache < partition bytes`` in one partition (strict, as the guide).
- ``min_partitions``: the fewest partitions ``n`` with ``total < n * partition`` — that is
  ``ceil(total / partition)`` except when the total is an exact multiple — assuming tensor
  parallelism splits weights and KV cache evenly over the partitions.
- ``recommended_tp``: the smallest power of two ≥ ``min_partitions`` that divides both the
  attention and the KV heads (None when there is none).
- ``max_seq_len`` / ``max_batch_size``: the longest context at the given batch size and the
  largest batch at the given context that still fit ``limits_partitions`` partitions
  (``recommended_tp``, else ``min_partitions``), capped at the model's
  ``max_position_embeddings`` for the context.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from fleetbench.errors import BadInput

GB: Final = 10**9
DEFAULT_PARTITION_BYTES: Final = 24 * GB  # one MI300X CPX/NPS4 partition, as in the guide
TIGHT_FRACTION: Final = 0.9  # vLLM's default gpu_memory_utilization
FORMULAS: Final = ("gqa", "seed")
DTYPE_BYTES: Final[Mapping[str, int]] = MappingProxyType(
    {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1}
)
# Spellings used by HF configs (torch_dtype) and vLLM (--kv-cache-dtype).
_DTYPE_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "fp32": "float32",
        "float": "float32",
        "fp16": "float16",
        "half": "float16",
        "bf16": "bfloat16",
        "fp8": "float8",
        "fp8_e4m3": "float8",
        "fp8_e5m2": "float8",
        "float8_e4m3fn": "float8",
        "float8_e4m3fnuz": "float8",
        "float8_e5m2": "float8",
    }
)
# Architectures whose parameter count this module reproduces exactly; others are
# counted as Llama-style decoders and say so.
_COUNTED_MODEL_TYPES: Final = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "deepseek_v2",
        "deepseek_v3",
    }
)
_QKV_BIAS_MODEL_TYPES: Final = frozenset({"qwen2", "qwen2_moe"})
_QK_NORM_MODEL_TYPES: Final = frozenset({"qwen3", "qwen3_moe"})


def normalize_dtype(name: str, *, what: str = "--dtype") -> str:
    """Canonical dtype name (``float32``, ``float16``, ``bfloat16``, ``float8``) for ``name``."""
    key = name.strip().lower()
    key = _DTYPE_ALIASES.get(key, key)
    if key not in DTYPE_BYTES:
        choices = ", ".join(DTYPE_BYTES)
        raise BadInput(f"unknown {what} {name!r} — use one of {choices} (or auto)")
    return key


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ModelConfig:
    """A model's Hugging Face config: where it came from and its values."""

    name: str
    source: str  # "config:<path>", "hf-cache:<path>" or "builtin"
    values: Mapping[str, Any]

    def require(self, key: str, purpose: str) -> int:
        """The positive integer ``key``; BadInput naming the key when absent or wrong."""
        if key not in self.values or self.values[key] is None:
            hint = " or pass --params" if purpose == "the parameter count" else ""
            raise BadInput(
                f"the config of {self.name} ({self.source}) has no {key!r}, needed for "
                f"{purpose} — use the model's complete Hugging Face config.json{hint}"
            )
        return self._positive(key)

    def optional(self, key: str) -> int | None:
        """The positive integer ``key``, or None when the config does not set it."""
        if self.values.get(key) is None:
            return None
        return self._positive(key)

    def _positive(self, key: str) -> int:
        value = self.values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise BadInput(
                f"the config of {self.name} ({self.source}) sets {key!r} to {value!r}, "
                f"not a positive integer — fix the config"
            )
        return value

    @property
    def model_type(self) -> str:
        """The config's ``model_type`` (empty when it has none)."""
        return str(self.values.get("model_type") or "")

    @property
    def layers(self) -> int:
        """Number of transformer layers."""
        return self.require("num_hidden_layers", "the KV cache")

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream."""
        return self.require("hidden_size", "the KV cache")

    @property
    def attention_heads(self) -> int:
        """Number of query heads."""
        return self.require("num_attention_heads", "the KV cache")

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads; HF's default is one per attention head."""
        return self.optional("num_key_value_heads") or self.attention_heads

    @property
    def head_dim(self) -> int:
        """Per-head width: ``head_dim`` when set, else hidden size / attention heads."""
        explicit = self.optional("head_dim")
        if explicit is not None:
            return explicit
        if self.hidden_size % self.attention_heads:
            raise BadInput(
                f"the config of {self.name} ({self.source}) has no 'head_dim' and hidden_size "
                f"{self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.attention_heads} — add head_dim to the config"
            )
        return self.hidden_size // self.attention_heads

    @property
    def mla(self) -> bool:
        """True for multi-head latent attention (DeepSeek-V2/V3/R1)."""
        return self.values.get("kv_lora_rank") is not None

    @property
    def torch_dtype(self) -> str | None:
        """The checkpoint's dtype as the config states it (``dtype`` in newer configs)."""
        value = self.values.get("torch_dtype") or self.values.get("dtype")
        return str(value) if value else None

    @property
    def quant_method(self) -> str | None:
        """``quantization_config.quant_method`` (e.g. ``fp8``), or None."""
        quant = self.values.get("quantization_config")
        if isinstance(quant, Mapping) and quant.get("quant_method"):
            return str(quant["quant_method"])
        return None

    @property
    def max_position_embeddings(self) -> int | None:
        """The longest context the model is configured for, when the config says."""
        return self.optional("max_position_embeddings")


def _text_part(values: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The decoder's config nested in a multimodal config, or None for a plain one."""
    text = values.get("text_config")
    if "num_hidden_layers" in values or not isinstance(text, Mapping):
        return None
    # dtype and quantization often stay at the top level.
    merged = dict(text)
    for key in ("torch_dtype", "dtype", "quantization_config", "tie_word_embeddings"):
        if key not in merged and key in values:
            merged[key] = values[key]
    return merged


def load_config(
    path: str | Path, name: str | None = None, *, source: str = "config"
) -> ModelConfig:
    """Read a Hugging Face ``config.json`` (or a model directory holding one)."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / "config.json"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"config file {file} does not exist — pass the path of a Hugging Face config.json"
        ) from None
    except OSError as exc:
        raise BadInput(f"cannot read config file {file}: {exc.strerror} — check the path") from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"config file {file} is not valid JSON (line {exc.lineno}: {exc.msg}) — "
            f"pass a Hugging Face config.json"
        ) from None
    if not isinstance(values, dict):
        raise BadInput(f"config file {file} is not a JSON object — pass a Hugging Face config.json")
    label = name or str(values.get("_name_or_path") or file)
    nested = _text_part(values)
    if nested is not None:
        # Only the language model is counted: the source says so.
        return ModelConfig(label, f"{source}:{file} (text_config)", MappingProxyType(nested))
    return ModelConfig(name=label, source=f"{source}:{file}", values=MappingProxyType(values))


def hf_hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache directory, resolved as ``huggingface_hub`` does."""
    env = os.environ if env is None else env
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".cache" / "huggingface" / "hub"


def find_cached_config(model_id: str, env: Mapping[str, str] | None = None) -> Path | None:
    """``config.json`` of ``model_id`` in the local HF cache (the ``main`` snapshot first)."""
    repo = hf_hub_cache_dir(env) / ("models--" + model_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        main = snapshots / ref.read_text(encoding="utf-8").strip() / "config.json"
        if main.is_file():
            return main
    found = [p for p in snapshots.glob("*/config.json") if p.is_file()]
    # Without refs/main (copied caches), the newest snapshot is the best guess.
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@functools.cache
def _builtin_table() -> Mapping[str, Mapping[str, Any]]:
    raw = json.loads(resources.files("fleetbench").joinpath("models.json").read_text("utf-8"))
    entries: dict[str, Any] = raw["models"]
    table: dict[str, Mapping[str, Any]] = {}
    for model_id, entry in entries.items():
        if "same_as" in entry:
            config = {**entries[entry["same_as"]]["config"], **entry.get("overrides", {})}
        else:
            config = dict(entry["config"])
        table[model_id] = MappingProxyType(config)
    return MappingProxyType(table)


def builtin_model_ids() -> tuple[str, ...]:
    """Hugging Face ids of the models whose config is built in."""
    return tuple(sorted(_builtin_table(), key=str.lower))


def builtin_config(model: str) -> ModelConfig | None:
    """The built-in config of ``model`` (HF id, any case, or the unique name without org)."""
    table = _builtin_table()
    wanted = model.strip().lower()
    matches = [mid for mid in table if mid.lower() == wanted]
    if not matches and "/" not in wanted:
        # MAD's reports name a model without its org (Llama-3.1-8B-Instruct).
        matches = [mid for mid in table if mid.lower().split("/", 1)[-1] == wanted]
    if len(matches) != 1:
        return None
    return ModelConfig(name=matches[0], source="builtin", values=table[matches[0]])


def resolve_model(
    model: str | None = None,
    config_path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> ModelConfig:
    """Find a model's config: ``config_path``, a local model directory, the HF cache, built-ins.

    ``model`` labels the result when ``config_path`` is given. No network is used.
    """
    if config_path is not None:
        return load_config(config_path, name=model)
    if not model or not model.strip():
        raise BadInput("no model given — pass --model HF_ID or --config CONFIG_JSON")
    model = model.strip()
    local = Path(model).expanduser()
    if (local / "config.json").is_file() or (local.suffix == ".json" and local.is_file()):
        return load_config(local)
    cached = find_cached_config(model, env)
    if cached is not None:
        return load_config(cached, name=model, source="hf-cache")
    builtin = builtin_config(model)
    if builtin is not None:
        return builtin
    close = difflib.get_close_matches(model, builtin_model_ids(), n=3, cutoff=0.6)
    hint = f"; built-in models close to it: {', '.join(close)}" if close else ""
    raise BadInput(
        f"unknown model {model!r}: not in the Hugging Face cache ({hf_hub_cache_dir(env)}) "
        f"nor among the built-in models — pass --config path/to/config.json{hint}"
    )


# --------------------------------------------------------------------------- arithmetic


def _flag(config: ModelConfig, key: str) -> bool | None:
    value = config.values.get(key)
    return None if value is None else bool(value)


def _attention_parameters(config: ModelConfig) -> int:
    """Weights of one attention block (projections, their biases, MLA norms, q/k norms)."""
    hidden, heads = config.hidden_size, config.attention_heads
    if config.mla:
        purpose = "the parameter count"
        rope = config.require("qk_rope_head_dim", purpose)
        nope = config.require("qk_nope_head_dim", purpose)
        v_dim = config.require("v_head_dim", purpose)
        kv_rank = config.require("kv_lora_rank", purpose)
        q_rank = config.optional("q_lora_rank")
        q_head = nope + rope
        q = (
            hidden * heads * q_head
            if q_rank is None
            else hidden * q_rank + q_rank + q_rank * heads * q_head
        )
        kv = hidden * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim)
        return q + kv + heads * v_dim * hidden
    head_dim, kv_heads = config.head_dim, config.kv_heads
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    params = 2 * hidden * q_width + 2 * hidden * kv_width  # q, o and k, v
    attention_bias = _flag(config, "attention_bias")
    if attention_bias or (attention_bias is None and config.model_type in _QKV_BIAS_MODEL_TYPES):
        params += q_width + 2 * kv_width  # Qwen2 biases q, k, v only
        if attention_bias:
            params += hidden  # Llama's attention_bias also biases o_proj
    if config.model_type in _QK_NORM_MODEL_TYPES:
        params += 2 * head_dim
    return params


def _experts(config: ModelConfig) -> int:
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        value = config.optional(key)
        if value is not None:
            return value
    return 0


def _is_moe_layer(config: ModelConfig, index: int) -> bool:
    # DeepSeek: first_k_dense_replace / moe_layer_freq; Qwen-MoE: decoder_sparse_step /
    # mlp_only_layers; Mixtral: every layer. The defaults are neutral for the others.
    first_dense = config.values.get("first_k_dense_replace") or 0
    frequency = config.values.get("moe_layer_freq") or 1
    step = config.values.get("decoder_sparse_step") or 1
    mlp_only = set(config.values.get("mlp_only_layers") or ())
    return (
        index >= first_dense
        and index % frequency == 0
        and (index + 1) % step == 0
        and index not in mlp_only
    )


def count_parameters(config: ModelConfig) -> int:
    """Parameters of a decoder-only model from its config.

    Embeddings, attention (with its KV heads, or MLA), gated MLP or every MoE expert plus
    router and shared experts, RMSNorms, and the output head unless tied. Vision towers and
    multi-token-prediction layers are not counted.
    """
    purpose = "the parameter count"
    hidden = config.hidden_size
    vocab = config.require("vocab_size", purpose)
    intermediate = config.require("intermediate_size", purpose)
    experts = _experts(config)
    attention = _attention_parameters(config)
    dense_mlp = 3 * hidden * intermediate  # gate, up, down
    if _flag(config, "mlp_bias"):
        dense_mlp += 2 * intermediate + hidden
    moe_mlp = 0
    if experts:
        expert_width = config.optional("moe_intermediate_size") or intermediate
        moe_mlp = experts * 3 * hidden * expert_width + hidden * experts  # experts + router
        shared = config.optional("n_shared_experts")
        if shared:
            moe_mlp += shared * 3 * hidden * expert_width
        shared_width = config.optional("shared_expert_intermediate_size")
        if shared_width:
            moe_mlp += 3 * hidden * shared_width + hidden  # Qwen2-MoE adds a 1-wide gate
        if config.values.get("topk_method") == "noaux_tc":
            moe_mlp += experts  # DeepSeek-V3's e_score_correction_bias
    layers = config.layers
    moe_layers = sum(1 for i in range(layers) if _is_moe_layer(config, i)) if experts else 0
    per_layer = attention + 2 * hidden  # two RMSNorms
    total = layers * per_layer + moe_layers * moe_mlp + (layers - moe_layers) * dense_mlp
    tied = bool(config.values.get("tie_word_embeddings", False))
    return total + vocab * hidden + hidden + (0 if tied else vocab * hidden)


def kv_cache_per_token_bytes(config: ModelConfig, kv_bytes: int, formula: str = "gqa") -> int:
    """KV cache bytes one token takes over all layers, by ``formula`` (``gqa`` or ``seed``)."""
    if formula == "seed":
        # The guide: 2 * n_layers * hidden_dim * bytes, with hidden_dim = n_heads * d_head.
        return 2 * config.layers * config.attention_heads * config.head_dim * kv_bytes
    if formula != "gqa":
        raise BadInput(f"unknown formula {formula!r} — use one of {', '.join(FORMULAS)}")
    if config.mla:
        # vLLM's MLA cache holds the compressed latent and the rope key, once per layer.
        latent = config.require("kv_lora_rank", "the KV cache")
        rope = config.require("qk_rope_head_dim", "the KV cache")
        return config.layers * (latent + rope) * kv_bytes
    return 2 * config.layers * config.kv_heads * config.head_dim * kv_bytes


def min_partitions(total_bytes: int, partition_bytes: int) -> int:
    """Fewest partitions ``n`` with ``total < n * partition`` (even split assumed)."""
    return total_bytes // partition_bytes + 1


def recommended_tp(min_parts: int, attention_heads: int, kv_heads: int) -> int | None:
    """Smallest power of two ≥ ``min_parts`` dividing both head counts, or None."""
    tp = 1
    while tp <= attention_heads:
        if tp >= min_parts and attention_heads % tp == 0 and kv_heads % tp == 0:
            return tp
        tp *= 2
    return None


@dataclass(frozen=True)
class KvEstimate:
    """KV cache and totals by one formula."""

    formula: str
    kv_cache_per_token_bytes: int
    kv_cache_bytes: int
    total_bytes: int
    fits: bool
    min_partitions: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping of the fields except ``formula``."""
        return {
            "kv_cache_per_token_bytes": self.kv_cache_per_token_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "total_bytes": self.total_bytes,
            "fits": self.fits,
            "min_partitions": self.min_partitions,
        }


@dataclass(frozen=True)
class FitResult:
    """Memory needs of one model and workload against one partition size."""

    model: str
    config_source: str
    formula: str
    dtype: str
    kv_dtype: str
    batch_size: int
    seq_len: int
    partition_bytes: int
    params: int
    params_source: str  # "config" or "given"
    weights_bytes: int
    attention_heads: int
    kv_heads: int
    mla: bool
    max_position_embeddings: int | None
    gqa: KvEstimate
    seed: KvEstimate
    recommended_tp: int | None
    limits_partitions: int
    max_seq_len: int
    max_batch_size: int
    notes: tuple[str, ...]

    @property
    def selected(self) -> KvEstimate:
        """The estimate of the chosen formula."""
        return self.seed if self.formula == "seed" else self.gqa

    @property
    def kv_cache_per_token_bytes(self) -> int:
        """KV bytes per token by the chosen formula."""
        return self.selected.kv_cache_per_token_bytes

    @property
    def kv_cache_bytes(self) -> int:
        """KV cache for ``batch_size * seq_len`` tokens by the chosen formula."""
        return self.selected.kv_cache_bytes

    @property
    def total_bytes(self) -> int:
        """Weights plus KV cache by the chosen formula."""
        return self.selected.total_bytes

    @property
    def fits(self) -> bool:
        """Whether weights + KV cache < one partition, by the chosen formula."""
        return self.selected.fits

    @property
    def min_partitions(self) -> int:
        """Fewest partitions that hold the total, split evenly, by the chosen formula."""
        return self.selected.min_partitions

    @property
    def kv_ratio(self) -> float:
        """How many times the guide's KV/token exceeds the GQA-aware one."""
        return self.seed.kv_cache_per_token_bytes / self.gqa.kv_cache_per_token_bytes

    def tp_problem(self, tp: int) -> str | None:
        """Why vLLM would refuse tensor-parallel size ``tp`` for this model, or None."""
        if self.attention_heads % tp:
            return f"{tp} does not divide the {self.attention_heads} attention heads"
        if not self.mla and self.kv_heads % tp and tp % self.kv_heads:
            return f"{tp} neither divides nor is a multiple of the {self.kv_heads} KV heads"
        return None

    def bytes_per_partition(self, tp: int) -> int:
        """Memory each of ``tp`` tensor-parallel partitions holds.

        Weights are split evenly. The GQA-aware KV cache is split by KV head: beyond
        ``kv_heads`` partitions vLLM replicates heads, and an MLA latent is on every one.
        """
        weights = -(-self.weights_bytes // tp)
        kv = self.kv_cache_bytes
        if self.formula == "seed":
            return weights + -(-kv // tp)
        if self.mla:
            return weights + kv
        return weights + kv // self.kv_heads * max(1, self.kv_heads // tp)

    def to_dict(self) -> dict[str, object]:
        """The ``fleetbench fit --json`` document."""
        return {
            "model": self.model,
            "config_source": self.config_source,
            "formula": self.formula,
            "dtype": self.dtype,
            "kv_dtype": self.kv_dtype,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "partition_bytes": self.partition_bytes,
            "params": self.params,
            "params_source": self.params_source,
            "weights_bytes": self.weights_bytes,
            **self.selected.to_dict(),
            "recommended_tp": self.recommended_tp,
            "limits_partitions": self.limits_partitions,
            "max_seq_len": self.max_seq_len,
            "max_batch_size": self.max_batch_size,
            "max_position_embeddings": self.max_position_embeddings,
            "formulas": {"gqa": self.gqa.to_dict(), "seed": self.seed.to_dict()},
            "seed_over_gqa_kv_ratio": round(self.kv_ratio, 4),
            "notes": list(self.notes),
        }


def _positive_int(value: object, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadInput(f"{option} must be a positive whole number, not {value!r} — fix {option}")
    return value


def _weights_dtype(config: ModelConfig, dtype: str) -> str:
    if dtype.strip().lower() != "auto":
        return normalize_dtype(dtype)
    if config.quant_method == "fp8":
        return "float8"
    if config.torch_dtype is None:
        raise BadInput(
            f"--dtype auto, but the config of {config.name} states no torch_dtype — "
            f"pass --dtype float16, bfloat16, float32 or float8"
        )
    return normalize_dtype(config.torch_dtype, what="torch_dtype in the config")


def _estimate(
    formula: str, config: ModelConfig, *, kv_bytes: int, tokens: int, weights: int, partition: int
) -> KvEstimate:
    per_token = kv_cache_per_token_bytes(config, kv_bytes, formula)
    total = weights + tokens * per_token
    return KvEstimate(
        formula=formula,
        kv_cache_per_token_bytes=per_token,
        kv_cache_bytes=tokens * per_token,
        total_bytes=total,
        fits=total < partition,
        min_partitions=min_partitions(total, partition),
    )


def _attention_note(config: ModelConfig, ratio: float) -> str:
    heads, kv_heads = config.attention_heads, config.kv_heads
    if config.mla:
        return (
            f"MLA attention: vLLM caches one compressed latent per layer, and the guide's "
            f"formula overstates the KV cache {ratio:.1f}×; the latent is replicated on every "
            f"tensor-parallel partition, so min_partitions is optimistic for large KV caches"
        )
    if kv_heads < heads:
        return (
            f"grouped-query attention ({kv_heads} KV heads for {heads} attention heads): the "
            f"guide's formula overstates the KV cache {ratio:g}×"
        )
    return f"no grouped-query attention ({heads} KV heads): both formulas agree"


def estimate_fit(
    config: ModelConfig,
    *,
    dtype: str = "float16",
    kv_dtype: str = "auto",
    batch_size: int = 1,
    seq_len: int = 4096,
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
    formula: str = "gqa",
    params: int | None = None,
) -> FitResult:
    """Weights, KV cache (both formulas), fit, partitions and limits for one workload.

    ``params`` overrides the parameter count from the config (the guide's "≈ 2 * 7 GB"
    examples are ``params=7 * 10**9``).
    """
    if formula not in FORMULAS:
        raise BadInput(f"unknown formula {formula!r} — use one of {', '.join(FORMULAS)}")
    batch_size = _positive_int(batch_size, "--batch-size")
    seq_len = _positive_int(seq_len, "--seq-len")
    partition_bytes = _positive_int(partition_bytes, "--partition-gb")
    weights_dtype = _weights_dtype(config, dtype)
    cache_dtype = (
        weights_dtype
        if kv_dtype.strip().lower() == "auto"
        else normalize_dtype(kv_dtype, what="--kv-dtype")
    )
    notes: list[str] = []
    if params is None:
        params = count_parameters(config)
        params_source = "config"
        if config.model_type not in _COUNTED_MODEL_TYPES:
            notes.append(
                f"model_type {config.model_type or '(none)'!r} is counted as a Llama-style "
                f"decoder (gated MLP, RMSNorm); pass --params if its count differs"
            )
        if "tie_word_embeddings" not in config.values:
            notes.append("the config does not say tie_word_embeddings: counted untied")
        if config.optional("num_nextn_predict_layers"):
            notes.append(
                "multi-token-prediction layers are not counted "
                "(vLLM loads them only for speculative decoding)"
            )
    else:
        params = _positive_int(params, "--params")
        params_source = "given"
    weights = params * DTYPE_BYTES[weights_dtype]
    kv_bytes = DTYPE_BYTES[cache_dtype]
    tokens = batch_size * seq_len
    sizes = {
        "kv_bytes": kv_bytes,
        "tokens": tokens,
        "weights": weights,
        "partition": partition_bytes,
    }
    gqa = _estimate("gqa", config, **sizes)
    seed = _estimate("seed", config, **sizes)
    chosen = seed if formula == "seed" else gqa
    heads, kv_heads = config.attention_heads, config.kv_heads
    tp = recommended_tp(chosen.min_partitions, heads, kv_heads)
    limits_at = tp or chosen.min_partitions
    budget = max(0, limits_at * partition_bytes - weights - 1)  # strict "<", as the guide
    max_seq = budget // (batch_size * chosen.kv_cache_per_token_bytes)
    max_batch = budget // (seq_len * chosen.kv_cache_per_token_bytes)
    max_position = config.max_position_embeddings
    if max_position is not None and max_seq > max_position:
        max_seq = max_position
        notes.append(
            f"max_seq_len is capped at the model's max_position_embeddings ({max_position})"
        )

    notes.insert(
        0, _attention_note(config, seed.kv_cache_per_token_bytes / gqa.kv_cache_per_token_bytes)
    )
    if config.quant_method == "fp8" and DTYPE_BYTES[weights_dtype] > 1:
        notes.append(
            f"the checkpoint is fp8-quantized, so vLLM loads 1-byte weights: pass --dtype float8 "
            f"(or auto) for its real size, not {weights_dtype}"
        )
    if tp is None:
        notes.append(
            f"no power of two ≥ {chosen.min_partitions} divides both the {heads} attention heads "
            f"and the {kv_heads} KV heads: vLLM can still use a multiple of the KV heads by "
            f"replicating them (more KV memory per partition), or pipeline parallelism"
        )
    usage = chosen.total_bytes / (limits_at * partition_bytes)
    if usage > TIGHT_FRACTION and usage < 1:
        notes.append(
            f"tight: {usage:.1%} of {limits_at} partition(s); vLLM uses at most 90 % of a GPU "
            f"by default (gpu_memory_utilization) and needs room for activations"
        )
    return FitResult(
        model=config.name,
        config_source=config.source,
        formula=formula,
        dtype=weights_dtype,
        kv_dtype=cache_dtype,
        batch_size=batch_size,
        seq_len=seq_len,
        partition_bytes=partition_bytes,
        params=params,
        params_source=params_source,
        weights_bytes=weights,
        attention_heads=heads,
        kv_heads=kv_heads,
        mla=config.mla,
        max_position_embeddings=max_position,
        gqa=gqa,
        seed=seed,
        recommended_tp=tp,
        limits_partitions=limits_at,
        max_seq_len=max_seq,
        max_batch_size=max_batch,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- run planner


@dataclass(frozen=True)
class FitCheck:
    """Verdict of :func:`check_fit` for a model on ``gpus`` partitions (it fits)."""

    fit: FitResult
    gpus: int
    per_partition_bytes: int
    usage: float  # per_partition_bytes / partition_bytes
    warning: str | None  # set when the fit is tight

    @property
    def tight(self) -> bool:
        """True when the model fits but uses more than the tight fraction of a partition."""
        return self.warning is not None


def smallest_working_tp(fit: FitResult) -> int | None:
    """Smallest tensor-parallel size vLLM accepts for the model that fits the partitions."""
    for tp in range(1, fit.attention_heads + 1):
        if fit.tp_problem(tp) is None and fit.bytes_per_partition(tp) < fit.partition_bytes:
            return tp
    return None


def check_fit(
    model: str | ModelConfig,
    gpus: int,
    dtype: str = "float16",
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
    *,
    kv_dtype: str = "auto",
    batch_size: int = 1,
    seq_len: int = 4096,
    params: int | None = None,
    formula: str = "gqa",
    tight_fraction: float = TIGHT_FRACTION,
    env: Mapping[str, str] | None = None,
) -> FitCheck:
    """Refuse (BadInput) a model that cannot run on ``gpus`` tensor-parallel partitions.

    For the run planner: ``gpus`` is the ``-g`` of a slot. Raises BadInput naming the
    partitions the model needs when it does not fit, or when vLLM would refuse ``gpus``
    as a tensor-parallel size; returns a :class:`FitCheck` whose ``warning`` is set when
    a partition would be more than ``tight_fraction`` full.
    """
    gpus = _positive_int(gpus, "--gpus")
    if not 0 < tight_fraction <= 1:
        raise BadInput(f"tight fraction {tight_fraction!r} is not in (0, 1] — use e.g. 0.9")
    config = model if isinstance(model, ModelConfig) else resolve_model(model, env=env)
    fit = estimate_fit(
        config,
        dtype=dtype,
        kv_dtype=kv_dtype,
        batch_size=batch_size,
        seq_len=seq_len,
        partition_bytes=partition_bytes,
        formula=formula,
        params=params,
    )
    need = smallest_working_tp(fit)
    need_text = (
        f"--gpus {need}" if need else "pipeline parallelism or larger partitions (no TP size fits)"
    )
    problem = fit.tp_problem(gpus)
    if problem is not None:
        raise BadInput(f"{fit.model} cannot run on {gpus} partitions: {problem} — use {need_text}")
    used = fit.bytes_per_partition(gpus)
    capacity = fit.partition_bytes
    if used >= capacity:
        raise BadInput(
            f"{fit.model} does not fit {gpus} partition(s) of {capacity / GB:g} GB: each would "
            f"hold {used / GB:.2f} GB (weights {fit.weights_bytes / GB:.2f} GB + KV cache "
            f"{fit.kv_cache_bytes / GB:.2f} GB for batch {fit.batch_size} × {fit.seq_len} tokens, "
            f"{fit.dtype}); it needs at least {fit.min_partitions} partitions — use {need_text}"
        )
    usage = used / capacity
    warning = None
    if usage > tight_fraction:
        warning = (
            f"{fit.model} on {gpus} partition(s) is a tight fit: {usage:.0%} of each "
            f"{capacity / GB:g} GB partition (above {tight_fraction:.0%}); vLLM also needs room "
            f"for activations — consider more partitions or a shorter --seq-len"
        )
    return FitCheck(fit=fit, gpus=gpus, per_partition_bytes=used, usage=usage, warning=warning)
