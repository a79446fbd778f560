"""Stand-in for ``vllm.SamplingParams``: the settings the lab's model honours."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplingParams:
    """Sampling settings of a generation (vLLM's names and defaults)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    max_tokens: int | None = 16
    ignore_eos: bool = False
