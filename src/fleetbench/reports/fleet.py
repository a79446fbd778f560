"""The fleet report of a run directory: every host's records in one canonical table.

:func:`collect_run` reads ``manifest.json``, each host's ``preflight.json`` and every MAD
report under ``hosts/<host>/slot<k>/`` into a :class:`FleetRun`: one :class:`HostRecord`
(host, slot, canonical record) per measured metric. :mod:`fleetbench.reports.stats`
compares them; :func:`fleetbench.reports.build.build_report` is the whole
``fleetbench report build``.

A slot folder holds the same measurements twice: MAD's summary ``*_report.csv`` files and
``perf_<name>.csv`` (eras B/C even name the throughput metric differently there). Per
slot and scenario the summary reports win; perf files are read only for scenarios no
summary report covers (e.g. era F, which writes nothing else).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.errors import BadInput
from fleetbench.reports.parse import (
    WIDE_FORMATS,
    MalformedReport,
    slot_reports,
)
from fleetbench.reports.records import Configuration, Record, latest_per_configuration

MANIFEST = "manifest.json"
#: Host statuses whose benchmark ran, so a result they lack is a missing result.
RAN_STATUSES = frozenset({"ok", "failed:benchmark"})
# Reports outside any slot folder (a hand-collected host) belong to this slot.
HOST_LEVEL_SLOT = "host"

_SLOT_DIR = re.compile(r"^slot\d+$")


@dataclass(frozen=True)
class HostRecord:
    """One canonical record measured on one slot of one host."""

    host: str
    slot: str
    record: Record

    @property
    def member(self) -> str:
        """``host/slot``: the unit the fleet is compared by."""
        return f"{self.host}/{self.slot}"

    @property
    def configuration(self) -> Configuration:
        """The record's configuration and metric."""
        return self.record.configuration

    def to_dict(self) -> dict[str, Any]:
        """``host``, ``slot`` and the §4 record keys."""
        return {"host": self.host, "slot": self.slot, **self.record.to_dict()}


@dataclass(frozen=True)
class SlotGpu:
    """One physical GPU (and partition) a slot used: the manifest's ``slots.<slot>.gpus``."""

    serial: str | None
    bdf: str | None
    unique_id: str | None
    partition: int | None

    @property
    def label(self) -> str:
        """The serial (else the BDF) with the partition: ``S1234#3``."""
        name = self.serial or self.bdf or self.unique_id or "?"
        return name if self.partition is None else f"{name}#{self.partition}"


def _slot_gpus(value: object) -> tuple[SlotGpu, ...]:
    if not isinstance(value, list):
        return ()
    gpus = []
    for item in value:
        if not isinstance(item, dict):
            continue
        partition = item.get("partition")
        gpus.append(SlotGpu(serial=_optional_str(item.get("serial")),
                            bdf=_optional_str(item.get("bdf")),
                            unique_id=_optional_str(item.get("unique_id")),
                            partition=partition if isinstance(partition, int) else None))
    return tuple(gpus)


@dataclass(frozen=True)
class SlotInfo:
    """How one GPU slot of a host ended (the manifest's ``slots`` entry)."""

    name: str
    status: str
    hip_visible_devices: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    summary: str = ""
    #: The physical GPUs (and partitions) the slot used, when the run recorded them.
    gpus: tuple[SlotGpu, ...] = ()

    @property
    def serials(self) -> tuple[str, ...]:
        """The distinct serials of the slot's GPUs, in order."""
        return tuple(dict.fromkeys(g.serial for g in self.gpus if g.serial))

    @property
    def ran(self) -> bool:
        """True unless the slot was never started (``skipped:…``)."""
        return not self.status.startswith("skipped")


@dataclass(frozen=True)
class HostInfo:
    """One host of a run: its final status and what preflight found."""

    name: str
    status: str
    reason: str = ""
    slots: tuple[SlotInfo, ...] = ()
    #: The slots the run planned for the host (the manifest's ``planned_slots``).
    planned_slots: tuple[str, ...] = ()
    image_digest: str | None = None
    mad_commit: str | None = None
    compute_partition: str | None = None
    memory_partition: str | None = None
    logical_gpus: int | None = None
    rocm_version: str | None = None
    driver_version: str | None = None
    docker_version: str | None = None
    #: The GPU model the probe saw (``MI300X``, ``MI325X``), None when unknown.
    gpu_model: str | None = None
    #: vLLM's version in the image the host ran, when the run recorded it.
    vllm_version: str | None = None
    preflight_problems: tuple[str, ...] = ()
    preflight_warnings: tuple[str, ...] = ()

    @property
    def ran(self) -> bool:
        """True when the host's benchmark ran (``ok`` or ``failed:benchmark``)."""
        return self.status in RAN_STATUSES

    def slot(self, name: str) -> SlotInfo | None:
        """The slot called ``name``, or None."""
        return next((slot for slot in self.slots if slot.name == name), None)

    @property
    def ok(self) -> bool:
        """True when the host ended ``ok``."""
        return self.status == "ok"


@dataclass(frozen=True)
class ReadProblem:
    """A report file of a slot that could not be read; that slot's results are left out."""

    host: str
    slot: str
    message: str


@dataclass(frozen=True)
class FleetRun:
    """A run directory as one canonical table plus the hosts' status and preflight facts."""

    run_id: str
    run_dir: Path
    created: str | None
    finished: str | None
    plan: Mapping[str, Any]
    hosts: tuple[HostInfo, ...]
    rows: tuple[HostRecord, ...]
    problems: tuple[ReadProblem, ...] = ()
    #: The correctness probe's findings (the manifest's ``correctness``), None without one.
    correctness: Mapping[str, Any] | None = None

    @property
    def model(self) -> str:
        """The report name of the planned model (``org/`` dropped), else the records' models."""
        planned = str(self.plan.get("model") or "")
        if planned:
            return model_name(planned)
        return ",".join(sorted({row.record.model for row in self.rows}))

    @property
    def dtype(self) -> str:
        """The planned dtype, else the records' dtypes."""
        planned = str(self.plan.get("dtype") or "")
        return planned or ",".join(sorted({row.record.dtype for row in self.rows}))

    @property
    def scenario(self) -> str:
        """The planned scenario (``all``, ``latency``…), else the measured scenarios."""
        planned = str(self.plan.get("scenario") or "")
        return planned or ",".join(sorted({row.record.scenario for row in self.rows}))

    def host(self, name: str) -> HostInfo | None:
        """The host called ``name``, or None."""
        return next((host for host in self.hosts if host.name == name), None)


def model_name(model: str) -> str:
    """The report name of a model: a Hugging Face id without its ``org/`` part."""
    return model.rstrip("/").rsplit("/", 1)[-1]


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Read ``RUN/manifest.json``; BadInput when ``run_dir`` is not a run directory."""
    path = run_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(
            f"{run_dir} is not a fleetbench run directory (no {MANIFEST}) — "
            "give the folder `fleetbench run` printed"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read ({exc}) — check the path") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} is damaged ({exc.msg}) — restore it from the run") from None
    if not isinstance(data, dict) or not isinstance(data.get("hosts", {}), dict):
        raise BadInput(f"{path} is not a fleetbench manifest — give a run directory")
    return data


def collect_run(run_dir: Path) -> FleetRun:
    """Read a run directory into a :class:`FleetRun` (hosts in manifest order).

    Hosts with a folder under ``hosts/`` but no manifest entry are kept with status
    ``unknown``. A slot whose report files cannot be read contributes no records and a
    :class:`ReadProblem` instead: one damaged file must not hide the rest of the fleet.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    entries: dict[str, Any] = manifest.get("hosts") or {}
    hosts_dir = run_dir / "hosts"
    on_disk = sorted(p.name for p in hosts_dir.iterdir() if p.is_dir()) \
        if hosts_dir.is_dir() else []
    names = [*entries, *(name for name in on_disk if name not in entries)]

    hosts: list[HostInfo] = []
    rows: list[HostRecord] = []
    problems: list[ReadProblem] = []
    for name in names:
        host_dir = hosts_dir / name
        entry = entries.get(name) or {}
        hosts.append(_host_info(name, entry, _preflight(host_dir)))
        if host_dir.is_dir():
            host_rows, host_problems = _host_records(name, host_dir)
            # A slot that answered wrongly measured nothing worth counting.
            wrong = {slot for slot, state in (entry.get("slots") or {}).items()
                     if isinstance(state, dict) and state.get("status") == "failed:correctness"}
            rows.extend(row for row in host_rows if row.slot not in wrong)
            problems.extend(host_problems)
    return FleetRun(
        run_id=str(manifest.get("run_id") or run_dir.name),
        run_dir=run_dir,
        created=manifest.get("created"),
        finished=manifest.get("finished"),
        plan=dict(manifest.get("plan") or {}),
        hosts=tuple(hosts),
        rows=tuple(rows),
        problems=tuple(problems),
        correctness=manifest.get("correctness") if isinstance(manifest.get("correctness"), dict)
        else None,
    )


#: What slices of one run must share to be merged into one fleet report.
PLAN_KEYS = ("model", "gpus", "dtype", "scenario")


def merge_runs(runs: Sequence[FleetRun], out: Path) -> FleetRun:
    """One fleet run of several slices (run directories of disjoint host sets that ran the
    same plan: AWX job slicing, or ``fleetbench run --limit`` runs side by side).

    The merged run is ``out`` (where its report goes) and its id the slices' ids joined by
    ``+``. BadInput when the slices ran different plans or share a host: their results
    would not compare, or a host would count twice.
    """
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    for run in runs[1:]:
        differ = [key for key in PLAN_KEYS if run.plan.get(key) != first.plan.get(key)]
        if differ:
            shown = ", ".join(f"{key} {first.plan.get(key)!r} vs {run.plan.get(key)!r}"
                              for key in differ)
            raise BadInput(
                f"{first.run_dir} and {run.run_dir} ran different plans ({shown}) — merge "
                "only the slices of one run")
    seen: dict[str, Path] = {}
    for run in runs:
        for host in run.hosts:
            if host.name in seen:
                raise BadInput(
                    f"host {host.name} is in both {seen[host.name]} and {run.run_dir} — "
                    "slices must not share hosts (run each with its own --limit)")
            seen[host.name] = run.run_dir
    created = [r.created for r in runs if r.created]
    finished = [r.finished for r in runs if r.finished]
    return FleetRun(
        run_id="+".join(r.run_id for r in runs),
        run_dir=Path(out),
        created=min(created) if created else None,
        finished=max(finished) if len(finished) == len(runs) else None,
        plan=dict(first.plan),
        hosts=tuple(h for r in runs for h in r.hosts),
        rows=tuple(row for r in runs for row in r.rows),
        problems=tuple(p for r in runs for p in r.problems),
    )


def _preflight(host_dir: Path) -> Mapping[str, Any]:
    path = host_dir / "preflight.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        # Preflight facts only feed the drift view; a host without them shows "?".
        return {}
    return data if isinstance(data, dict) else {}


def _optional_str(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _host_info(name: str, entry: Mapping[str, Any], preflight: Mapping[str, Any]) -> HostInfo:
    slots = tuple(
        SlotInfo(
            name=slot_name,
            status=str(slot.get("status") or "unknown"),
            hip_visible_devices=_optional_str(slot.get("hip_visible_devices")),
            exit_code=slot.get("exit_code") if isinstance(slot.get("exit_code"), int) else None,
            timed_out=bool(slot.get("timed_out")),
            summary=str(slot.get("summary") or ""),
            gpus=_slot_gpus(slot.get("gpus")),
        )
        for slot_name, slot in sorted((entry.get("slots") or {}).items(), key=_slot_order)
    )
    gpus = preflight.get("logical_gpus")
    return HostInfo(
        name=name,
        status=str(entry.get("status") or "unknown"),
        reason=str(entry.get("reason") or ""),
        slots=slots,
        planned_slots=tuple(str(name) for name in entry.get("planned_slots") or ()),
        image_digest=_optional_str(entry.get("image_digest")),
        mad_commit=_optional_str(entry.get("mad_commit")),
        compute_partition=_optional_str(preflight.get("compute_partition")),
        memory_partition=_optional_str(preflight.get("memory_partition")),
        logical_gpus=gpus if isinstance(gpus, int) else None,
        rocm_version=_optional_str(preflight.get("rocm_version")),
        driver_version=_optional_str(preflight.get("driver_version")),
        docker_version=_optional_str(preflight.get("docker_version")),
        gpu_model=_optional_str(preflight.get("gpu_model")),
        vllm_version=_optional_str(entry.get("vllm_version")),
        preflight_problems=tuple(map(str, preflight.get("problems") or ())),
        preflight_warnings=tuple(map(str, preflight.get("warnings") or ())),
    )


def _slot_order(item: tuple[str, Any]) -> tuple[int, str]:
    digits = item[0].removeprefix("slot")
    return (int(digits), item[0]) if digits.isdigit() else (1 << 30, item[0])


def _host_records(host: str, host_dir: Path) -> tuple[list[HostRecord], list[ReadProblem]]:
    slot_dirs = sorted(
        (p for p in host_dir.iterdir() if p.is_dir() and _SLOT_DIR.match(p.name)),
        key=lambda p: _slot_order((p.name, None)),
    )
    folders = [(p.name, p) for p in slot_dirs] or [(HOST_LEVEL_SLOT, host_dir)]
    rows: list[HostRecord] = []
    problems: list[ReadProblem] = []
    for slot, folder in folders:
        try:
            # Perf-file records a summary report covers are dropped by _choose_records
            # anyway: the parser checks their rows without building them.
            parsed = slot_reports(folder)
        except MalformedReport as exc:
            problems.append(ReadProblem(host, slot, str(exc)))
            continue
        rows.extend(HostRecord(host, slot, record) for record in _choose_records(parsed))
    return rows, problems


def _choose_records(parsed: Sequence[tuple[str, list[Record]]]) -> list[Record]:
    """One slot's records from its parsed files (format, records): summary reports first,
    perf files as fallback.

    Keeps the last row of each configuration (MAD appends re-runs to the same file).
    """
    wide: list[Record] = []
    other: list[Record] = []
    for fmt, records in parsed:
        (wide if fmt in WIDE_FORMATS else other).extend(records)
    covered = {record.scenario for record in wide}
    chosen = [*wide, *(record for record in other if record.scenario not in covered)]
    return latest_per_configuration(chosen)
