"""Stand-in for ``vllm.LLM``: offline generation, as the correctness probe uses it.

Loading the model is an engine start like a benchmark point's (vLLM's checks, the host's
planted faults); generating answers with the lab's model (``vllm._answers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vllm import _answers, _lab
from vllm.sampling_params import SamplingParams

SCRIPT = "/usr/local/lib/python3/dist-packages/vllm/entrypoints/llm.py"


@dataclass
class CompletionOutput:
    """One generated sequence."""

    index: int
    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = "length"


@dataclass
class RequestOutput:
    """A prompt and what was generated for it."""

    request_id: str
    prompt: str
    outputs: list[CompletionOutput]
    finished: bool = True


class LLM:
    """A model on this container's GPUs (``tensor_parallel_size`` of them)."""

    def __init__(self, model: str, tensor_parallel_size: int = 1, dtype: str = "auto",
                 quantization: str | None = None, seed: int = 0, **_: object) -> None:
        self.settings = _lab.read_settings()
        self.model = model
        _lab.start_engine(SCRIPT, model, int(tensor_parallel_size), self.settings)
        self.seed = seed
        self.engine = _lab.engine(model, int(tensor_parallel_size), dtype,
                                  quantization == "fp8")

    def generate(self, prompts: str | Sequence[str],
                 sampling_params: SamplingParams | None = None) -> list[RequestOutput]:
        """Complete each prompt."""
        params = sampling_params or SamplingParams()
        batch = [prompts] if isinstance(prompts, str) else list(prompts)
        outputs = []
        for index, prompt in enumerate(batch):
            text = _answers.generate(prompt, params.max_tokens or 16, params.temperature,
                                     params.seed, self.settings)
            outputs.append(RequestOutput(str(index), prompt, [CompletionOutput(0, text)]))
        return outputs
