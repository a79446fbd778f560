"""Write realistic run directories for fleet-report tests.

Every host slot gets copies of the era D MAD fixture files (summary reports with CRLF, the
pandas-written ``perf_<name>.csv``) with their values scaled, so a test can plant a slow
host, a slow slot, a regression (scale every host), a missing configuration (drop a
row) or a failed measurement (blank a value), plus a ``manifest.json`` and per-host
``preflight.json`` the way ``fleetbench run`` writes them.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import FIXTURES

ERA_D = FIXTURES / "mad" / "eraD_2025-06_rocm6.4.1"
SUMMARY = "reports_float16_vllm_rocm6.4.1/summary"
NAME = "Llama-3.1-8B-Instruct"
MODEL = f"meta-llama/{NAME}"
DIGEST = "sha256:" + "a1" * 32
#: Configurations (and metrics) the era D fixture holds: 16x2 latency, 4x2 throughput,
#: 4x6 serving.
CONFIGURATIONS = 64


@dataclass(frozen=True)
class Edit:
    """Drop a summary-report row (``column`` None) or blank one value, in chosen slots."""

    scenario: str
    row: int
    column: str | None = None
    slots: tuple[int, ...] | None = None


@dataclass
class HostSpec:
    """One host of a generated run."""

    factor: float = 1.0  # >1: faster (throughput x factor, times / factor)
    status: str = "ok"
    reason: str = ""
    slots: int = 2
    slot_factors: dict[int, float] = field(default_factory=dict)
    edits: tuple[Edit, ...] = ()
    digest: str | None = DIGEST
    compute: str = "CPX"
    memory: str = "NPS4"
    reports: bool = True  # False: nothing collected (unreachable, skipped)
    perf: bool = True  # also write perf_<name>.csv
    summary: bool = True  # write the *_report.csv files
    gpu_model: str | None = None  # preflight's GPU model (None: as older runs, unknown)
    slot_gpus: bool = False  # record each slot's physical GPUs in the manifest


def _noise(host_index: int, slot: int) -> float:
    # A deterministic +-0.6 % spread, so healthy hosts are not all identical.
    return 1 + 0.003 * ((3 * host_index + slot) % 5 - 2)


def _scale(column: str, value: str, factor: float) -> str:
    if value.strip() == "":
        return value
    if "(tok/sec)" in column or column == "tok/sec":
        return repr(float(value) * factor)
    if "(ms)" in column or column == "ms":
        return repr(float(value) / factor)
    return value


def _perf_key(scenario: str, row: dict[str, str]) -> str:
    tp, inp, out, dtype = row["tp"], row["input_len"], row["output_len"], row["dtype"]
    if scenario == "latency":
        return f"{NAME}_latency_{tp}_{row['batch_size']}_{inp}_{out}_{dtype}"
    if scenario == "throughput":
        return f"{NAME}_throughput_{tp}_{row['num_prompts']}_{inp}_{out}_{dtype}"
    return f"{NAME}_serving_{tp}_{row['num_prompts']}_{inp}_{out}_{row['max_concurrency']}_{dtype}"


def _perf_column_matches(scenario: str, key_rest: str, column: str) -> bool:
    if scenario == "latency":
        return column == "latency (ms)"
    if scenario == "throughput":
        return column == "throughput_gen (tok/sec)"
    return key_rest == "_" + column.split(" ", maxsplit=1)[0]


def write_slot(slot_dir: Path, factor: float, edits: list[Edit], spec: HostSpec) -> None:
    """The MAD folders of one slot with scaled values and the edits applied."""
    scripts = slot_dir / "MAD" / "scripts"
    summary_dir = scripts / "vllm" / SUMMARY
    summary_dir.mkdir(parents=True)
    dropped: list[str] = []
    blanked: list[tuple[str, str, str]] = []
    for scenario in ("latency", "throughput", "serving"):
        name = f"{NAME}_{scenario}_report.csv"
        with (ERA_D / SUMMARY / name).open(newline="") as stream:
            rows = list(csv.DictReader(stream))
        header = list(rows[0])
        kept: list[dict[str, str]] = []
        for index, row in enumerate(rows):
            scaled = {c: _scale(c, v, factor) for c, v in row.items()}
            mine = [e for e in edits if e.scenario == scenario and e.row == index]
            if any(e.column is None for e in mine):
                dropped.append(_perf_key(scenario, row))
                continue
            for edit in mine:
                assert edit.column in scaled, edit
                scaled[edit.column] = ""
                blanked.append((scenario, _perf_key(scenario, row), edit.column or ""))
            kept.append(scaled)
        if spec.summary:
            out = io.StringIO(newline="")
            writer = csv.DictWriter(out, fieldnames=header)  # csv's default CRLF, as MAD
            writer.writeheader()
            writer.writerows(kept)
            (summary_dir / name).write_text(out.getvalue(), newline="")
    for json_file in (ERA_D / "vllm_json_inputs_synthetic").iterdir():
        shutil.copy(json_file, summary_dir.parent / json_file.name)
    if spec.perf:
        lines = ["model,performance,metric"]
        source = (ERA_D / f"perf_{NAME}.csv").read_text().splitlines()[1:]
        for line in source:
            model, value, unit = line.split(",")
            if any(model.startswith(key) for key in dropped):
                continue
            scaled = _scale(unit, value, factor)
            for scenario, key, column in blanked:
                if model.startswith(key) and _perf_column_matches(
                        scenario, model[len(key):], column):
                    scaled = ""
            lines.append(f"{model},{scaled},{unit}")
        (scripts / f"perf_{NAME}.csv").write_text("\n".join(lines) + "\n")
    (slot_dir / "benchmark.log").write_text("benchmark log\n")


def write_run(
    root: Path,
    hosts: dict[str, HostSpec],
    *,
    run_id: str = "20261127T041747Z-309a",
    created: str = "2026-11-27T04:17:47Z",
    scenario: str = "all",
    model: str = MODEL,
    dtype: str = "float16",
) -> Path:
    """A run directory ``root/run_id`` with the given hosts; returns its path."""
    run_dir = root / run_id
    (run_dir / "hosts").mkdir(parents=True)
    entries: dict[str, object] = {}
    for host_index, (host, spec) in enumerate(hosts.items()):
        host_dir = run_dir / "hosts" / host
        slots: dict[str, object] = {}
        if spec.reports:
            host_dir.mkdir()
            for slot in range(spec.slots):
                factor = spec.factor * spec.slot_factors.get(slot, 1.0) * _noise(host_index, slot)
                edits = [e for e in spec.edits if e.slots is None or slot in e.slots]
                write_slot(host_dir / f"slot{slot}", factor, edits, spec)
                slots[f"slot{slot}"] = {
                    "status": "ok" if spec.status == "ok" else "failed:benchmark",
                    "hip_visible_devices": ",".join(str(8 * slot + g) for g in range(8)),
                    "exit_code": 0, "timed_out": False, "summary": "",
                }
                if spec.slot_gpus:
                    slots[f"slot{slot}"]["gpus"] = [  # type: ignore[index]
                        {"serial": f"{host.upper()}-GPU{slot}", "bdf": f"0000:{5 + slot:02x}:00.0",
                         "unique_id": f"{0x1000 + slot:016x}", "partition": partition}
                        for partition in range(8)]
            preflight = {
                "ok": True, "problems": [], "warnings": [],
                "compute_partition": spec.compute, "memory_partition": spec.memory,
                "logical_gpus": 64 if spec.compute == "CPX" else 8,
                "docker_version": "26.1.5", "rocm_version": "6.4.1",
                "driver_version": "6.10.5", "free_disk_gb": 812.0, "partition": {},
            }
            if spec.gpu_model is not None:
                preflight["gpu_model"] = spec.gpu_model
            (host_dir / "preflight.json").write_text(json.dumps(preflight, indent=2))
            (host_dir / "partition.json").write_text("{}")
        entries[host] = {
            "status": spec.status, "reason": spec.reason, "steps": {}, "slots": slots,
            "planned_slots": [f"slot{slot}" for slot in range(spec.slots)],
            "image_digest": spec.digest if spec.reports else None,
            "mad_commit": "0123456789abcdef0123" if spec.reports else None,
        }
    digests = {h: e["image_digest"] for h, e in entries.items()}  # type: ignore[index]
    manifest = {
        "run_id": run_id, "fleetbench_version": "0.1.0", "created": created,
        "finished": created, "inventory": "inventory.yml",
        "plan": {"model": model, "gpus": 8, "dtype": dtype, "scenario": scenario,
                 "slots": "2", "timeout_s": 21600, "limit": None, "overrides": {}},
        "hosts": entries,
        "image": {"digests": digests, "drift": len({d for d in digests.values() if d}) > 1},
        "mad": {"commits": {}, "drift": False},
        "summary": {"ok": all(s.status == "ok" for s in hosts.values()), "statuses": {}},
        "attempts": [],
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run_dir


def healthy_fleet(count: int = 3, **overrides: HostSpec) -> dict[str, HostSpec]:
    """``lab01``… healthy hosts, with some replaced by ``overrides``."""
    hosts = {f"lab{i:02d}": HostSpec() for i in range(1, count + 1)}
    hosts.update(overrides)
    return hosts
