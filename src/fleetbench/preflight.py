"""Judge one host from what the ``fleetbench_probe`` module gathered on it.

Runs on the controller (inside the role's action plugin, and in tests): the partition
verdict of :mod:`fleetbench.partition` plus the Docker engine, ROCm and free-disk checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetbench.diskplan import judge_disk
from fleetbench.errors import BadInput
from fleetbench.gpus import gpu_model, logical_gpus
from fleetbench.lock import Controller, judge_lock, this_controller
from fleetbench.lock import describe as describe_lock
from fleetbench.partition import ExpectedPartition, evaluate_host

GB = 10**9


@dataclass(frozen=True)
class PreflightOptions:
    """What a host is judged against (inventory group vars, via the role)."""

    expected: ExpectedPartition
    #: Free disk the run needs (fleetbench.diskplan.DiskNeed.to_dict); empty: not judged.
    disk_need: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> PreflightOptions:
        """Build from the role's (already templated, string-ish) arguments."""
        per_physical = int(args.get("logical_per_physical") or 0)
        expected = ExpectedPartition(
            compute=str(args.get("expected_compute", "CPX")).upper(),
            memory=str(args.get("expected_memory", "NPS4")).upper(),
            logical_per_physical=per_physical or None,
            missing_partition_is_error=_as_bool(args.get("missing_partition_is_error", False)),
        )
        need = args.get("disk_need") or {}
        if not isinstance(need, Mapping):
            raise BadInput(f"disk_need must be a mapping, not {type(need).__name__}")
        if need and args.get("disk_margin_gb") not in (None, ""):
            # The role's margin (preflight_disk_margin_gb) decides on the host.
            need = {**need, "margin_bytes": int(float(args["disk_margin_gb"]) * GB)}
        return cls(expected=expected, disk_need=need)


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "on", "1"}:
        return True
    if text in {"false", "no", "off", "0", ""}:
        return False
    raise BadInput(f"{value!r} is not a boolean — use true or false")


def judge_probe(probe: Mapping[str, Any], args: Mapping[str, Any], *,
                controller: Controller | None = None,
                inventory: str | None = None) -> dict[str, Any]:
    """The verdict on one host as JSON-able data: ``ok``, ``problems``, ``warnings`` and facts.

    A lock of another run is judged by ``controller`` (default: this process on this
    machine); ``inventory`` is named in the fix for a stale one.
    """
    options = PreflightOptions.from_args(args)
    problems: list[str] = []
    warnings: list[str] = []

    docker = probe.get("docker") or {}
    docker_version = docker.get("server_version")
    if not docker_version:
        detail = docker.get("error") or f"docker exited with {docker.get('rc')}"
        problems.append(f"the Docker engine does not answer ({detail}); start it (systemctl "
                        "start docker) and make sure the SSH user may use it")

    rocm_version = probe.get("rocm_version")
    if not rocm_version:
        warnings.append("ROCm version unknown: no .info/version under the ROCm path")

    disk = probe.get("disk") or {}
    free_bytes = disk.get("free_bytes")
    free_gb = round(free_bytes / GB, 1) if isinstance(free_bytes, int) else None
    # Against what the run needs (planned on the controller); `check` only reports it.
    disk_problems, disk_checked = judge_disk(options.disk_need, disk)

    users = probe.get("gpu_processes") or []
    if users:
        named = ", ".join(f"{p.get('pid')} ({(p.get('comm') or '?').strip()})" for p in users[:5])
        warnings.append(
            f"{len(users)} process(es) are using the GPUs ({named}{' …' if len(users) > 5 else ''})"
            ": benchmark numbers will be skewed and partition changes refused until they stop"
        )

    lock = probe.get("lock") or {}
    held = None if lock.get("taken") else judge_lock(lock.get("owner") or {},
                                                     controller or this_controller())
    if held is not None:
        warnings.append(f"{describe_lock(held, inventory)} — a run started now skips this "
                        "host (skipped:locked)")

    raw = probe.get("raw") or {}
    partition = evaluate_host(raw, options.expected)
    problems.extend(partition.problems)
    warnings.extend(partition.warnings)
    # A host short of disk alone is skipped:disk; any other problem makes it skipped:preflight.
    skip = "disk" if disk_problems and not problems else "preflight"
    problems.extend(disk_problems)
    return {
        "ok": not problems,
        "skip": skip if problems else None,
        "problems": problems,
        "warnings": warnings,
        "compute_partition": partition.compute_partition,
        "memory_partition": partition.memory_partition,
        "logical_gpus": partition.logical_gpus,
        "physical_gpus": partition.physical_gpus,
        "partition_memory_bytes": partition.partition_memory_bytes,
        "docker_version": docker_version,
        "rocm_version": rocm_version,
        "driver_version": probe.get("driver_version"),
        "free_disk_gb": free_gb,
        "disk": disk_checked,
        # The GPU model (roofline table) and every logical GPU's physical GPU and partition.
        "gpu_model": gpu_model(raw),
        "gpus": logical_gpus(raw),
        "partition": partition.to_dict(),
        # Another run's lock, as `check --json` shows it (None: free, or this run's own).
        "lock": held.contract() if held is not None else None,
    }
