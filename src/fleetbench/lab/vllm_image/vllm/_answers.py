"""What the lab's stand-in model answers: deterministic text, or garbage on a planted slot.

A real model answers a prompt greedily (temperature 0) the same way on every healthy GPU;
so does this stand-in: the probe prompts fleetbench asks (``benchmark_correctness_prompts``
of the benchmark role) get the answers a sensible model gives, any other prompt a text
made from its words. Sampling (temperature above 0) without a seed varies from call to
call, as it does in vLLM.

The lab host's ``garbage=slot3`` (bench.env) makes slot ``slot3`` answer what a model whose
logits went NaN answers (vLLM issue 20125 on partitioned MI300X): token 0 over and over,
``!`` in Llama 3's vocabulary. The slot is told by its workspace, the slot folder mounted
at ``/workspace`` (``$FLEETBENCH_LAB_SLOT`` overrides it).
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

from vllm import _lab

WORKSPACE = "/workspace"
_MOUNTINFO = "/proc/self/mountinfo"
#: Token 0 of Llama 3's vocabulary: what NaN logits decode to, max_tokens times.
GARBAGE_TEXT = "!"

#: The answers of a sensible model to the probe's default prompts.
KNOWN: dict[str, str] = {
    "The capital of France is":
        " Paris. It is also the largest city in France and its political, economic and "
        "cultural centre.",
    "Question: What is 12 plus 30? Answer:": " 42",
    "Count from one to ten in words: one, two, three,":
        " four, five, six, seven, eight, nine, ten.",
    "English: Good morning, my friend.\nGerman:": " Guten Morgen, mein Freund.",
}

_WORDS = ("the", "model", "answers", "this", "prompt", "with", "a", "steady", "sequence",
          "of", "plain", "words", "that", "healthy", "accelerators", "always", "produce",
          "in", "exactly", "same", "order")


def slot_name() -> str:
    """The slot this process runs in: its workspace folder's name on the host."""
    if os.environ.get("FLEETBENCH_LAB_SLOT"):
        return os.environ["FLEETBENCH_LAB_SLOT"]
    with contextlib.suppress(OSError):
        for line in Path(_MOUNTINFO).read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == WORKSPACE:
                return fields[3].rstrip("/").rsplit("/", 1)[-1]
    return ""


def answers_garbage(settings: _lab.Settings) -> bool:
    """Whether this slot is planted to answer garbage."""
    slot = slot_name()
    return bool(slot) and slot in settings.garbage


def _tokens(text: str) -> list[str]:
    """Word-sized pieces with their leading space (a stand-in for a tokenizer)."""
    pieces: list[str] = []
    for index, word in enumerate(text.split(" ")):
        pieces.append(word if index == 0 else " " + word)
    return [p for p in pieces if p]


def generate(prompt: str, max_tokens: int, temperature: float = 0.0,
             seed: int | None = None, settings: _lab.Settings | None = None) -> str:
    """The completion of ``prompt``: at most ``max_tokens`` word-sized tokens."""
    settings = settings or _lab.read_settings()
    limit = max(0, int(max_tokens))
    if answers_garbage(settings):
        return GARBAGE_TEXT * limit
    if temperature > 0 and seed is None:
        words = [random.choice(_WORDS) for _ in range(limit)]  # noqa: S311 - sampling
        return "".join(" " + w for w in words)
    text = KNOWN.get(prompt)
    if text is None or temperature > 0:
        # Deterministic per prompt (and seed): words picked by the prompt's hash.
        state = _lab.stable_hash(f"{prompt}\0{seed if temperature > 0 else ''}")
        words = []
        for _ in range(min(limit, 24)):
            state = (state * 1103515245 + 12345) % 2147483648
            words.append(_WORDS[state % len(_WORDS)])
        text = "".join(" " + w for w in words)
    return "".join(_tokens(text)[:limit])
