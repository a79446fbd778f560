"""What the lab host's settings make of this container's "GPUs": speed, checks and faults.

The lab writes each host's settings to a ``bench.env`` (``key=value`` lines) mounted at
``/fleetbench-lab/bench.env`` in the host's benchmark containers (``$FLEETBENCH_LAB_ENV``
overrides the path; no file = a healthy host called "localhost"), the same channel the
lab's stand-in MAD script reads:

    host=lab01     seeds this host's few-percent spread
    mode=ok        ok | fail | hang | slow
    factor=1.0     multiplies throughput and divides latency (plants a slow host)
    slow_s=2       seconds each engine start takes in slow mode
    fail_after=0   engine starts that succeed in fail mode before each later one fails
                   (0: every one fails, as the lab's MAD script counts its points)
    garbage=slot3  slots whose model answers garbage (comma-separated; none: no slot)

Every benchmark entry point is one engine start ("point"); the points a container has run
are counted in ``$FLEETBENCH_LAB_POINTS`` (default ``/tmp/fleetbench-lab-points``, fresh
in each container), so ``fail_after`` holds across the many processes of a MAD sweep.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

SETTINGS_FILE = "/fleetbench-lab/bench.env"
POINTS_FILE = "/tmp/fleetbench-lab-points"  # noqa: S108 - a file of the container's own /tmp
MODES = ("ok", "fail", "hang", "slow")
GATED_ORGS = ("meta-llama/", "mistralai/")

_NUMBER = re.compile(r"^[0-9]+([.][0-9]+)?$")
_COUNT = re.compile(r"^[0-9]+$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_PARAMS = re.compile(r"([0-9]+([.][0-9]+)?)[Bb]([^A-Za-z0-9]|$)")
_PY = "/usr/local/lib/python3.12/dist-packages"


class SettingsError(Exception):
    """The host's bench.env holds a value the lab does not understand."""


@dataclass(frozen=True)
class Settings:
    """One lab host's benchmark behaviour."""

    host: str = "localhost"
    mode: str = "ok"
    factor: float = 1.0
    slow_s: float = 2.0
    fail_after: int = 0
    #: Slots (``slot3``) whose model answers garbage (see ``vllm._answers``).
    garbage: tuple[str, ...] = ()


def settings_path() -> str:
    """Where the host's settings are read from."""
    return os.environ.get("FLEETBENCH_LAB_ENV", SETTINGS_FILE)


def parse_settings(text: str) -> Settings:
    """A bench.env's text as :class:`Settings` (unknown keys are ignored)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    mode = values.get("mode", "ok")
    if mode not in MODES:
        raise SettingsError(f"unknown mode '{mode}' (ok, fail, hang or slow)")
    factor = values.get("factor", "1.0")
    if not _NUMBER.match(factor) or float(factor) <= 0:
        raise SettingsError(f"factor '{factor}' is not a positive number")
    slow_s = values.get("slow_s", "2")
    if not _NUMBER.match(slow_s):
        raise SettingsError(f"slow_s '{slow_s}' is not a number of seconds")
    fail_after = values.get("fail_after", "0")
    if not _COUNT.match(fail_after):
        raise SettingsError(f"fail_after '{fail_after}' is not a count")
    garbage = tuple(slot for slot in values.get("garbage", "").split(",")
                    if slot and slot != "none")
    return Settings(
        garbage=garbage,
        host=values.get("host", "localhost"),
        mode=mode,
        factor=float(factor),
        slow_s=float(slow_s),
        fail_after=int(fail_after),
    )


def read_settings() -> Settings:
    """The host's settings; a broken bench.env ends the process (exit 1) naming the file."""
    path = settings_path()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    try:
        return parse_settings(text)
    except SettingsError as error:
        print(f"[fleetbench-lab] {path}: {error}", file=sys.stderr)
        sys.exit(1)


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's own is salted per process)."""
    return _hash(text)


def _hash(text: str) -> int:
    # The lab's stand-in MAD script (awk) hashes names the same way: same host, same spread.
    value = 7
    for char in text:
        code = ord(char)
        value = (value * 31 + (code if 32 <= code < 127 else 0)) % 2147483647
    return value


def visible_devices() -> list[str] | None:
    """HIP_VISIBLE_DEVICES as a list, None when unset (every GPU of the container)."""
    value = os.environ.get("HIP_VISIBLE_DEVICES")
    if value is None:
        return None
    return [item for item in value.split(",") if item != ""]


def speed(settings: Settings) -> float:
    """How fast this host and slot are (> 1 is faster): the factor times a few percent."""
    slot = os.environ.get("HIP_VISIBLE_DEVICES", "")
    host_part = 1 + (_hash(settings.host) % 61 - 30) / 1000  # within HOST_SPREAD
    slot_part = 1 + (_hash(slot) % 41 - 20) / 1000  # within SLOT_SPREAD
    return settings.factor * host_part * slot_part


def model_params_b(model: str) -> float:
    """The model size in billions from its name ("...-70B-..." -> 70); 8 when it does not say."""
    match = _PARAMS.search(model.rsplit("/", 1)[-1])
    return float(match.group(1)) if match else 8.0


# ------------------------------------------------------------------- the physics
#
# The stand-in's times come from the same physics as fleetbench's roofline
# (src/fleetbench/roofline.py, the source of truth for these figures; the image has no
# fleetbench package, so the few constants are copied here and a unit test,
# tests/unit/lab_vllm/test_lab_physics.py, holds the two together):
#
# - a decode step of b sequences with context c streams the weights and the KV cache of
#   its sequences from HBM, and costs 2 x active parameters FLOPs per sequence:
#   max((W + b*c*K) / B, 2*P*b / F);
# - the prefill of b prompts of n tokens: max(W / B, 2*P*b*n / F);
# - each over an efficiency well below 1 (what vLLM reaches of the roofline), plus fixed
#   per-step overheads (kernel launches, sampling, the all-reduce of tensor parallelism).
#
# The slot is the slowest one the lab can give: tp CPX partitions of MI300X in NPS4 (38 CUs
# each; two partitions share a quadrant's HBM, a quarter of the GPU's bandwidth). Every
# other mode is at least as fast, so these times are plausible on all of them.

HBM_BYTES_PER_S = 5.3e12  # MI300X, per GPU
#: Dense matrix peak per GPU (FLOP/s) by bytes per weight: fp8, fp16/bf16, fp32.
PEAK_FLOPS = {1: 2614.9e12, 2: 1307.4e12, 4: 163.4e12}
PARTITIONS_PER_GPU = 8  # CPX
PARTITIONS_PER_QUADRANT = 2  # CPX in NPS4: 8 partitions over 4 memory quadrants
#: Share of the roofline vLLM reaches (the slot's peak bandwidth or rate); FP8 less, for
#: its scaling and dequantisation work.
EFFICIENCY = 0.45
FP8_EFFICIENCY = 0.35
STEP_OVERHEAD_S = 0.0008  # per forward pass: launches, sampling, scheduling
ALL_REDUCE_S = 0.0006  # per forward pass with tensor parallelism
MAX_NUM_SEQS = 256  # vLLM's default --max-num-seqs
#: A host's and a slot's spread around the factor (at most +/- this share).
HOST_SPREAD = 0.030
SLOT_SPREAD = 0.020
#: KV cache values per token per parameter for a model the table does not know: more
#: than any model in it (Llama 2 7B, without grouped-query attention, has 3.9e-5).
_FALLBACK_KV_PER_PARAMETER = 4e-5

#: Active parameters and KV cache values per token (all layers, K and V) of the models
#: fleetbench knows (src/fleetbench/models.json via fleetbench.fit), by name without the
#: org, lower case. Parameters rounded up: a bigger model is a slower one.
MODELS: dict[str, tuple[float, int]] = {}
for _names, _figures in (
    ("llama-3.2-1b llama-3.2-1b-instruct", (1.236e9, 16384)),
    ("llama-3.2-3b llama-3.2-3b-instruct", (3.213e9, 57344)),
    ("llama-2-7b-hf llama-2-7b-chat-hf", (6.739e9, 262144)),
    ("mistral-7b-v0.1", (7.242e9, 65536)),
    ("qwen2.5-7b qwen2.5-7b-instruct", (7.616e9, 28672)),
    ("llama-3.1-8b llama-3.1-8b-instruct", (8.031e9, 65536)),
    ("mixtral-8x7b-v0.1 mixtral-8x7b-instruct-v0.1", (12.88e9, 65536)),
    ("llama-2-13b-hf llama-2-13b-chat-hf", (13.02e9, 409600)),
    ("qwen2.5-14b qwen2.5-14b-instruct", (14.78e9, 98304)),
    ("qwen2.5-32b qwen2.5-32b-instruct", (32.77e9, 131072)),
    ("deepseek-v3 deepseek-v3-0324 deepseek-r1 deepseek-r1-0528", (37.45e9, 35136)),
    ("mixtral-8x22b-v0.1 mixtral-8x22b-instruct-v0.1", (39.16e9, 114688)),
    ("llama-2-70b-hf llama-2-70b-chat-hf", (68.98e9, 163840)),
    ("llama-3.1-70b llama-3.1-70b-instruct llama-3.3-70b-instruct", (70.56e9, 163840)),
    ("qwen2.5-72b qwen2.5-72b-instruct", (72.71e9, 163840)),
    ("llama-3.1-405b llama-3.1-405b-instruct", (405.9e9, 258048)),
):
    for _name in _names.split():
        MODELS[_name] = _figures


def model_figures(model: str) -> tuple[float, int]:
    """Active parameters and KV cache values per token of ``model`` (an id or a path): from
    the table, else from the size in its name with a generous KV cache."""
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    if name in MODELS:
        return MODELS[name]
    parameters = model_params_b(model) * 1e9
    return parameters, math.ceil(parameters * _FALLBACK_KV_PER_PARAMETER)


def weight_width(dtype: str, fp8: bool) -> int:
    """Bytes per weight (and per KV value): 1 for FP8, 4 for float32, else 2."""
    if fp8:
        return 1
    return 4 if dtype in ("float", "float32") else 2


@dataclass(frozen=True)
class Engine:
    """A model on a slot of ``tp`` CPX/NPS4 partitions: what a forward pass costs it."""

    parameters: float
    kv_values: int
    width: int
    tp: int

    @property
    def weight_bytes(self) -> float:
        return self.parameters * self.width

    @property
    def kv_bytes_per_token(self) -> int:
        return self.kv_values * self.width

    @property
    def bandwidth(self) -> float:
        """HBM bytes per second: whole GPUs, plus the quadrants the rest of the slot's
        partitions live in (fleetbench.roofline.Slot.bandwidth in CPX/NPS4)."""
        whole, rest = divmod(self.tp, PARTITIONS_PER_GPU)
        quadrants = -(-rest // PARTITIONS_PER_QUADRANT)
        per_gpu = PARTITIONS_PER_GPU // PARTITIONS_PER_QUADRANT
        return (whole + quadrants / per_gpu) * HBM_BYTES_PER_S

    @property
    def flops(self) -> float:
        """Peak dense FLOP/s of the slot's partitions."""
        return self.tp * PEAK_FLOPS[self.width] / PARTITIONS_PER_GPU

    @property
    def efficiency(self) -> float:
        return FP8_EFFICIENCY if self.width == 1 else EFFICIENCY

    @property
    def overhead_s(self) -> float:
        return STEP_OVERHEAD_S + (ALL_REDUCE_S if self.tp > 1 else 0.0)

    def decode_step_s(self, batch: int, context: float) -> float:
        """One decode step of ``batch`` sequences of ``context`` tokens each."""
        read = self.weight_bytes + batch * context * self.kv_bytes_per_token
        work = 2 * self.parameters * batch
        return max(read / self.bandwidth, work / self.flops) / self.efficiency + self.overhead_s

    def prefill_s(self, batch: int, tokens: int) -> float:
        """The prefill of ``batch`` prompts of ``tokens`` tokens each."""
        work = 2 * self.parameters * batch * tokens
        roof = max(self.weight_bytes / self.bandwidth, work / self.flops)
        return roof / self.efficiency + self.overhead_s

    def batch_latency_s(self, batch: int, input_len: int, output_len: int) -> float:
        """One batch: its prefill, then a decode step per further token (the context grows
        from the prompt to prompt + output: its middle is the average)."""
        context = input_len + output_len / 2
        return (self.prefill_s(batch, input_len)
                + (output_len - 1) * self.decode_step_s(batch, context))

    def wave_s(self, batch: int, input_len: int, output_len: int) -> float:
        """``batch`` requests served together to the end. Every output token is counted as a
        decode step reading its context (the first one too: a generated token never comes
        cheaper than the roofline's generated-token bound says)."""
        context = input_len + output_len / 2
        return (self.prefill_s(batch, input_len)
                + output_len * self.decode_step_s(batch, context))

    def offline_elapsed_s(self, prompts: int, input_len: int, output_len: int,
                          max_num_seqs: int | None = None) -> float:
        """``prompts`` requests run offline in waves of at most ``max_num_seqs``."""
        batch = max(1, min(prompts, max_num_seqs or MAX_NUM_SEQS))
        full, rest = divmod(prompts, batch)
        elapsed = full * self.wave_s(batch, input_len, output_len)
        return elapsed + (self.wave_s(rest, input_len, output_len) if rest else 0.0)

    def header(self) -> str:
        """The engine as the lab server tells its benchmark client."""
        return f"parameters={self.parameters:.6g} kv={self.kv_values} width={self.width} " \
               f"tp={self.tp}"

    @classmethod
    def from_header(cls, text: str) -> Engine:
        """The inverse of :meth:`header` (ValueError when it is not one)."""
        values = dict(item.split("=", 1) for item in text.split())
        return cls(parameters=float(values["parameters"]), kv_values=int(values["kv"]),
                   width=int(values["width"]), tp=int(values["tp"]))


def engine(model: str, tp: int, dtype: str = "auto", fp8: bool = False) -> Engine:
    """``model`` on ``tp`` partitions in ``dtype`` (FP8 weights when ``fp8``)."""
    parameters, kv_values = model_figures(model)
    return Engine(parameters=parameters, kv_values=kv_values,
                  width=weight_width(dtype, fp8), tp=tp)


def percentile(values: list[float], q: float) -> float:
    """numpy.percentile's default (linear) interpolation."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def log(where: str, message: str) -> None:
    """A vLLM-style log line."""
    stamp = time.strftime("%m-%d %H:%M:%S")
    print(f"INFO {stamp} [{where}] {message}", flush=True)


# ------------------------------------------------------------------- failures as vLLM's


def die(lines: list[str]) -> NoReturn:
    sys.stdout.flush()
    print("\n".join(lines), file=sys.stderr, flush=True)
    sys.exit(1)


def frame(script: str) -> list[str]:
    return ["Traceback (most recent call last):", f'  File "{script}", line 173, in <module>',
            "    main(args)"]


def fail_not_a_model(script: str, model: str) -> NoReturn:
    """What transformers says about a model id the hub does not know."""
    die([
        *frame(script),
        f"OSError: {model} is not a local folder and is not a valid model identifier listed "
        "on 'https://huggingface.co/models'",
        "If this is a private repository, make sure to pass a token having permission to this "
        "repo either by logging in with `huggingface-cli login` or by passing "
        "`token=<your_token>`",
    ])


def fail_gated(script: str, model: str) -> NoReturn:
    """What vLLM prints for a gated model without a token."""
    url = f"https://huggingface.co/{model}/resolve/main/config.json"
    die([
        *frame(script),
        f'  File "{_PY}/vllm/engine/arg_utils.py", line 1018, in create_model_config',
        "    return ModelConfig(",
        f"OSError: You are trying to access a gated repo.\nMake sure to have access to it at "
        f"https://huggingface.co/{model}.\n401 Client Error. (Request ID: "
        "Root=1-6650b2c1-3f0c5a9e1d7b4c2a0e9f8d7c)\n\n"
        f"Cannot access gated repo for url {url}.\nAccess to model {model} is restricted. "
        "You must have access to it and be authenticated to access it. Please log in.",
    ])


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_cache() -> Path:
    """The Hugging Face cache folder as huggingface_hub finds it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "huggingface" / "hub"


def cached_snapshot(model: str, revision: str = "main") -> Path | None:
    """The cached snapshot of ``model`` (with its config.json), or None."""
    folder = hub_cache() / ("models--" + model.replace("/", "--"))
    try:
        commit = (folder / "refs" / revision).read_text().strip()
    except OSError:
        return None
    snapshot = folder / "snapshots" / commit
    return snapshot if (snapshot / "config.json").is_file() else None


def fail_offline_not_cached(script: str, model: str) -> NoReturn:
    """What transformers says offline about a model the cache lacks."""
    die([
        *frame(script),
        f'  File "{_PY}/vllm/transformers_utils/config.py", line 309, in get_config',
        f"OSError: We couldn't connect to 'https://huggingface.co' to load the files, and "
        f"couldn't find them in the cached files of {model} (HF_HUB_OFFLINE=1, cache "
        f"{hub_cache()}).",
        "Check your internet connection or see how to run the library in offline mode at "
        "'https://huggingface.co/docs/transformers/installation#offline-mode'.",
    ])


def fail_devices(script: str, message: str) -> NoReturn:
    """vLLM's complaint about the GPUs it can see."""
    die([
        *frame(script),
        f'  File "{_PY}/vllm/config.py", line 1771, in __post_init__',
        "    raise ValueError(",
        f"ValueError: {message}",
    ])


OOM_MESSAGE = (
    "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 3.50 GiB. GPU 0 has a total "
    "capacity of 191.98 GiB of which 1.12 GiB is free. Of the allocated memory 184.37 GiB is "
    "allocated by PyTorch, and 4.87 GiB is reserved by PyTorch but unallocated. If reserved but "
    "unallocated memory is large try setting PYTORCH_HIP_ALLOC_CONF=expandable_segments:True "
    "to avoid fragmentation.  See documentation for Memory Management  "
    "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
)


def fail_oom(script: str) -> NoReturn:
    """The planted failure: the engine runs out of GPU memory."""
    die([
        *frame(script),
        f'  File "{_PY}/vllm/worker/model_runner.py", line 1291, in profile_run',
        "    self.execute_model(model_input, kv_caches, intermediate_tensors)",
        OOM_MESSAGE,
    ])


# ------------------------------------------------------------------- engine start


def _points_path() -> str:
    return os.environ.get("FLEETBENCH_LAB_POINTS", POINTS_FILE)


def points_done() -> int:
    """Engine starts this container has run so far."""
    try:
        return int(Path(_points_path()).read_text(encoding="utf-8").strip() or "0")
    except (FileNotFoundError, ValueError):
        return 0


def count_point() -> None:
    with contextlib.suppress(OSError):
        Path(_points_path()).write_text(f"{points_done() + 1}\n", encoding="utf-8")


def check_engine(script: str, model: str, tp: int) -> None:
    """What vLLM checks as it loads a model: the id, the token of a gated repo, the GPUs."""
    log("__init__.py:239", "Automatically detected platform rocm.")
    local = model.startswith(("/", "./"))
    if not local and not _MODEL_ID.match(model):
        fail_not_a_model(script, model)
    if not local and hub_offline():
        # Offline, vLLM loads from the Hugging Face cache only (no token needed then).
        if cached_snapshot(model) is None:
            fail_offline_not_cached(script, model)
        check_devices(script, tp)
        return
    if model.startswith(GATED_ORGS) and not (
        os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    ):
        fail_gated(script, model)
    check_devices(script, tp)


def render_nodes() -> int | None:
    """GPUs the HIP runtime can open here: the container's DRM render nodes (None when it
    has no /dev/dri, as the lab's containers have none unless given render nodes)."""
    try:
        names = [p.name for p in Path(os.environ.get("FLEETBENCH_LAB_DRI", "/dev/dri")).iterdir()]
    except OSError:
        return None
    return sum(1 for name in names if name.startswith("renderD"))


def check_devices(script: str, tp: int) -> None:
    """vLLM's check of the GPUs a container sees against the tensor parallel size.

    With render nodes in the container, the HIP runtime numbers those GPUs 0..n-1 and
    takes HIP_VISIBLE_DEVICES up to its first index beyond them: host numbers in a
    container given one slot's nodes leave no GPU.
    """
    devices = visible_devices()
    gpus = render_nodes()
    if devices is not None and gpus is not None:
        usable: list[str] = []
        for device in devices:
            if not device.isdigit() or int(device) >= gpus:
                break
            usable.append(device)
        devices = usable
    if devices is not None:
        shown = os.environ.get("HIP_VISIBLE_DEVICES", "")
        if not devices:
            fail_devices(script, "No HIP GPUs are available (HIP_VISIBLE_DEVICES is empty)")
        if tp > len(devices):
            fail_devices(script, f"tensor parallel size {tp} is larger than the number of "
                         f"visible devices {len(devices)} (HIP_VISIBLE_DEVICES={shown})")
        if tp < len(devices):
            # vLLM would idle the extra GPUs; in the lab a slot is exactly its devices.
            fail_devices(script, f"tensor parallel size {tp} does not use all {len(devices)} "
                         f"visible devices (HIP_VISIBLE_DEVICES={shown}): one slot per container")


def hang(tp: int) -> NoReturn:
    """The planted hang: a collective that never completes."""
    log("custom_all_reduce.py:146", f"Registering CUDA graph addresses for {tp} ranks")
    while True:
        time.sleep(3600)


def start_engine(script: str, model: str, tp: int, settings: Settings) -> None:
    """One benchmark point's engine start: vLLM's checks, then the host's planted fault."""
    check_engine(script, model, tp)
    if settings.mode == "hang":
        hang(tp)
    if settings.mode == "slow":
        time.sleep(settings.slow_s)
    if settings.mode == "fail" and points_done() >= settings.fail_after:
        fail_oom(script)
    count_point()
    log("llm_engine.py:240", f"Initializing a V0 LLM engine (v0.9.1) with config: "
        f"model='{model}', tensor_parallel_size={tp}, seed=0")
