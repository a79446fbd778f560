"""Planning a benchmark run on the controller, before anything touches a host.

Validation of the user's choices, GPU-slot assignment (which logical GPUs each benchmark
instance gets) and the order slots run in. Pure functions; the role's filter plugin calls
:func:`assign_slots` and :func:`slot_waves` so plain ansible-playbook plans the same way.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench.errors import BadInput
from fleetbench.secrets import Secret, is_secret_name


def new_run_id(now: float | None = None) -> str:
    """A sortable, unique run id: ``20261127T041500Z-1a2b``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{secrets.token_hex(2)}"

DTYPES = ("float16", "bfloat16", "float8")
SCENARIOS = ("latency", "throughput", "serving", "all")
DEFAULT_IMAGE = "rocm/vllm:instinct_main"
# Orgs whose models are gated on Hugging Face: a token is needed to download them.
GATED_ORGS = ("meta-llama", "mistralai", "google")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Stricter than the controller's own filter: a *KEY* variable in a container is a secret.
_KEY_WORD = re.compile(r"(^|_)KEYS?(_|$)", re.IGNORECASE)
# Set per slot by fleetbench from the slot plan; a value from elsewhere would break it.
SLOT_ENV = ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


@dataclass(frozen=True)
class Slot:
    """One benchmark instance on a host: its index and the logical GPUs it sees."""

    index: int
    devices: tuple[int, ...]

    @property
    def hip_visible_devices(self) -> str:
        """The value of HIP_VISIBLE_DEVICES for this slot."""
        return ",".join(str(d) for d in self.devices)

    @property
    def name(self) -> str:
        """Folder and container suffix of the slot (``slot0``…)."""
        return f"slot{self.index}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for extravars and the manifest)."""
        return {"index": self.index, "name": self.name,
                "hip_visible_devices": self.hip_visible_devices}


def parse_duration(text: str, name: str = "--timeout") -> int:
    """Seconds in ``90``, ``90s``, ``45m``, ``6h`` or ``1d``; BadInput (naming the option
    or variable ``name``) otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise BadInput(f"{name} {text!r} is not a duration — e.g. 90m, 6h or 3600")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if value < 1:
        raise BadInput(f"{name} {text!r} must be at least one second")
    return int(value)


def assign_slots(logical_gpus: int, gpus_per_slot: int, slots: str | int = "auto") -> list[Slot]:
    """Split a host's logical GPUs into benchmark slots of ``gpus_per_slot`` each.

    ``auto`` uses every GPU (64 CPX partitions with ``-g 8`` → 8 slots: 0-7, 8-15, …) so
    that every partition is exercised; an integer K asks for K slots from GPU 0 up.
    Partitions of one physical GPU are contiguous in HIP numbering, so a slot of 8 on a
    CPX host is exactly one physical MI300X.
    """
    if gpus_per_slot < 1:
        raise BadInput(f"--gpus must be at least 1, not {gpus_per_slot}")
    if gpus_per_slot > logical_gpus:
        raise BadInput(
            f"--gpus {gpus_per_slot} is more than the {logical_gpus} logical GPUs of a host — "
            f"use at most {logical_gpus}"
        )
    if slots == "auto":
        if logical_gpus % gpus_per_slot:
            raise BadInput(
                f"--gpus {gpus_per_slot} does not divide the {logical_gpus} logical GPUs of a "
                f"host, so --slots auto would leave GPUs unused — use a divisor of "
                f"{logical_gpus} or --slots K"
            )
        count = logical_gpus // gpus_per_slot
    else:
        count = int(slots)
        if count < 1:
            raise BadInput(f"--slots must be 'auto' or a positive number, not {slots}")
        if count * gpus_per_slot > logical_gpus:
            raise BadInput(
                f"--slots {count} × --gpus {gpus_per_slot} needs {count * gpus_per_slot} GPUs; a "
                f"host has {logical_gpus} — lower --slots to {logical_gpus // gpus_per_slot}"
            )
    return [
        Slot(index=k, devices=tuple(range(k * gpus_per_slot, (k + 1) * gpus_per_slot)))
        for k in range(count)
    ]


def slot_waves(slots: Sequence[Slot], scenario: str, serving: bool = True) -> list[list[Slot]]:
    """Groups of slots that may run at the same time on one host.

    Serving binds port 8000 on the host network, so serving slots run one after another;
    latency and throughput slots all run at once on their own GPUs. ``serving`` false: the
    MAD script has no serving benchmark (before mid-2025), so ``all`` binds no port either.
    """
    if scenario == "serving" or (scenario == "all" and serving):
        return [[slot] for slot in slots]
    return [list(slots)] if slots else []


def needs_token(model: str) -> bool:
    """True when ``model`` is gated on Hugging Face (a token is required to download it)."""
    return model.split("/", 1)[0] in GATED_ORGS


@dataclass(frozen=True)
class RunPlan:
    """Everything the run needs to know, validated; contains no secret."""

    model: str
    gpus: int
    dtype: str
    scenario: str
    slots: str  # "auto" or a number
    timeout_s: int = 6 * 3600
    limit: str | None = None
    # image / mad_repo / mad_ref given on the command line; otherwise the inventory's
    # fleetbench_image / fleetbench_mad_repo / fleetbench_mad_ref or the roles' defaults.
    overrides: dict[str, str] = field(default_factory=dict)
    # --env K=V for every slot container (over the inventory's fleetbench_container_env).
    container_env: dict[str, str] = field(default_factory=dict)
    # --image-from-controller: the hosts load the controller's image instead of pulling.
    image_from_controller: bool = False
    # The correctness probe after each slot's benchmark (--no-correctness: off), and the
    # expected answers per model and prompt id (--expected-answers).
    correctness: bool = True
    expected_answers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        """The report name MAD uses: the part after ``org/``."""
        return self.model.split("/", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the manifest."""
        return {
            "model": self.model, "gpus": self.gpus, "dtype": self.dtype,
            "scenario": self.scenario, "slots": self.slots, "timeout_s": self.timeout_s,
            "limit": self.limit, "overrides": dict(self.overrides),
            "container_env": dict(self.container_env),
            "image_from_controller": self.image_from_controller,
            "correctness": self.correctness,
            "expected_answers": {m: dict(a) for m, a in self.expected_answers.items()},
        }


def parse_env_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["K=V", …]`` from ``--env`` as a dict; BadInput for an item without ``=``."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise BadInput(f"--env {item!r} is not NAME=VALUE — e.g. --env HF_HUB_OFFLINE=1")
        env[name] = value
    return env


def check_container_env(env: object, where: str,
                        secrets: Sequence[Secret | None] = ()) -> dict[str, str]:
    """Variables for the slot containers, checked; BadInput naming ``where`` they came from.

    Secrets are refused here, by name (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*KEY*``)
    and by value: ``docker inspect`` shows a container's environment to anyone on the host
    who may use Docker. The token reaches the containers through its own path only.
    """
    if not isinstance(env, dict):
        raise BadInput(f"{where} must be a mapping of NAME: value, not {type(env).__name__}")
    values = [s.reveal() for s in secrets if s]
    checked: dict[str, str] = {}
    for key, value in env.items():
        name = str(key)
        if not _ENV_NAME.match(name):
            raise BadInput(f"{where}: {name!r} is not an environment variable name")
        if is_secret_name(name) or _KEY_WORD.search(name):
            raise BadInput(
                f"{where}: {name} looks like a secret, and a container's environment is "
                "visible to docker inspect — give the Hugging Face token with HF_TOKEN or "
                "--hf-token-file (other secrets have no way in)")
        if name in SLOT_ENV:
            raise BadInput(f"{where}: {name} is set per slot by fleetbench from --gpus and "
                           "--slots — remove it")
        if isinstance(value, dict | list) or value is None:
            raise BadInput(f"{where}: {name} needs a plain value, not a "
                           f"{type(value).__name__}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if any(v in text for v in values):
            raise BadInput(f"{where}: {name} holds the Hugging Face token — the token "
                           "reaches the containers through HF_TOKEN or --hf-token-file only")
        checked[name] = text
    return checked


def validate_choices(model: str, gpus: int, dtype: str, scenario: str, slots: str) -> None:
    """BadInput for any choice the benchmark script would reject or misname."""
    if not _MODEL_ID.match(model):
        raise BadInput(
            f"--model {model!r} is not a Hugging Face id 'org/name' — MAD names its reports "
            "after the part behind the slash, so a local path breaks them"
        )
    if dtype not in DTYPES:
        raise BadInput(f"--dtype {dtype!r} is not supported — use one of {', '.join(DTYPES)}")
    if scenario not in SCENARIOS:
        raise BadInput(f"--scenario {scenario!r} is unknown — use one of {', '.join(SCENARIOS)}")
    if gpus < 1:
        raise BadInput(f"--gpus must be at least 1, not {gpus}")
    if slots != "auto" and not (slots.isdigit() and int(slots) > 0):
        raise BadInput(f"--slots must be 'auto' or a positive number, not {slots!r}")


def plan_waves(slots: Sequence[dict[str, Any]], scenario: str, available_gpus: int,
               container_prefix: str, serving: bool = True) -> dict[str, Any]:
    """Waves of runnable slots and the slots skipped for want of GPUs (role filter).

    ``slots`` come as planned for the expected GPU count; a host with fewer logical GPUs
    (63 of 64 partitions) cannot run a slot that needs a missing one: it is recorded as
    skipped, not silently dropped.
    """
    runnable: list[Slot] = []
    skipped: list[dict[str, Any]] = []
    for raw in slots:
        slot = Slot(index=int(raw["index"]),
                    devices=tuple(int(d) for d in str(raw["hip_visible_devices"]).split(",")))
        if available_gpus and max(slot.devices) >= available_gpus:
            skipped.append({
                **slot.to_dict(), "container": None, "status": "skipped:gpus",
                "exit_code": None, "oom_killed": False, "timed_out": False, "report_rows": 0,
                "summary": f"{slot.name} needs GPU {max(slot.devices)}, the host has "
                           f"{available_gpus}",
            })
        else:
            runnable.append(slot)
    waves = [
        [{**s.to_dict(), "container": f"{container_prefix}-{s.name}"} for s in wave]
        for wave in slot_waves(runnable, scenario, serving)
    ]
    return {"waves": waves, "skipped": skipped}


def plan_fleet(model: str, gpus: int | str, dtype: str, scenario: str,
               host_vars: Mapping[str, Mapping[str, Any]], *, slots: str = "auto",
               token_file: str = "") -> dict[str, list[dict[str, Any]]]:
    """Each host's slots, planned as ``fleetbench run`` plans them before anything starts;
    BadInput (one message naming the variable and the fix) for bad input.

    For ``playbooks/run.yml`` run without fleetbench (plain ansible-playbook, AWX): its
    first play calls this through the plan role's filter with the run's variables and
    every host's inventory variables (:func:`fleetbench.inventory.planned_partitions`).
    """
    from fleetbench.fit import check_fit
    from fleetbench.inventory import planned_partitions

    if not model:
        raise BadInput("benchmark_model is not set — pass the model to benchmark, e.g. "
                       "-e benchmark_model=meta-llama/Llama-3.1-8B-Instruct")
    try:
        count = int(gpus)
    except (TypeError, ValueError):
        raise BadInput(f"benchmark_gpus {gpus!r} is not a number — pass the GPUs per "
                       "benchmark instance, e.g. -e benchmark_gpus=8") from None
    validate_choices(model, count, dtype, scenario, str(slots))
    if needs_token(model) and not token_file:
        raise BadInput(f"{model} is a gated model: pass -e benchmark_hf_token_file=FILE (a "
                       "file on this controller, chmod 600, holding a token with access)")
    if token_file and not Path(token_file).expanduser().is_file():
        raise BadInput(f"benchmark_hf_token_file {token_file} is no file on this controller "
                       "— pass the path of the file holding the Hugging Face token")
    if not host_vars:
        raise BadInput("no host to run on — check the inventory and --limit")
    planned = {host: planned_partitions(variables) for host, variables in host_vars.items()}
    slots_by_host: dict[str, list[dict[str, Any]]] = {}
    for host, (logical, _) in planned.items():
        try:
            slots_by_host[host] = [s.to_dict() for s in assign_slots(
                logical, count, slots if slots == "auto" else int(slots))]
        except BadInput as exc:
            raise BadInput(f"{exc} (host {host})") from None
    # The smallest partition of the fleet decides (24 GB in CPX on MI300X).
    check_fit(model, count, dtype, min(memory for _, memory in planned.values()))
    return slots_by_host
