"""``fleetbench run``: the guide's steps on every host, ending in one run directory.

Pipeline: plan and validate on the controller (nothing touches a host before that), then
``playbooks/run.yml`` (preflight with the run lock → image → mad → benchmark → collect
with clean-up → verdict), then ``playbooks/cleanup.yml`` on every host that collect did
not clean up, then unpack the archives and write ``manifest.json``. Every host ends
``ok``, ``failed:<step>``, ``unreachable`` or ``skipped:<why>``; ``--resume`` re-runs
only hosts and slots that did not end ``ok``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import shutil
import signal
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench import __version__, roleargs, scratch
from fleetbench.errors import BadInput
from fleetbench.gpus import slot_gpus
from fleetbench.hostkeys import unreachable_status
from fleetbench.inventory import Fleet, load_fleet
from fleetbench.lock import this_controller
from fleetbench.madsync import MadSnapshot, check_scenario, resolve_snapshot, write_archive
from fleetbench.plan import (
    RunPlan,
    assign_slots,
    check_container_env,
    needs_token,
    validate_choices,
)
from fleetbench.runner import PlaybookRun, TaskResult, run_playbook
from fleetbench.secrets import Secret
from fleetbench.slot_verdict import SLOT_FOLDER, failed_slots_reason, judge_slots
from fleetbench.token_server import serve_token

MANIFEST = "manifest.json"
# Logical GPUs a host is planned for before preflight confirms it: 8 MI300X in CPX.
DEFAULT_PLANNED_GPUS = 64
# What a run starts: run.yml, then cleanup.yml on the hosts collect did not clean up.
PLAYBOOKS = ("run", "cleanup")


@dataclass(frozen=True)
class HostOutcome:
    """How one host ended, with its per-step times and per-slot results."""

    name: str
    status: str
    reason: str = ""
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_digest: str | None = None
    mad_commit: str | None = None
    preflight: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's entry for this host."""
        return {
            "status": self.status, "reason": self.reason, "steps": self.steps,
            "slots": self.slots, "image_digest": self.image_digest,
            "mad_commit": self.mad_commit,
        }


def new_run_id(now: float | None = None) -> str:
    """A sortable, unique run id: ``20261127T041500Z-1a2b``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{secrets.token_hex(2)}"


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- turning task results into host outcomes ------------------------------------------------


# Roles whose failures belong to another step of the guide.
_STEP_OF_ROLE = {"benchmark_verdict": "benchmark"}
# Roles whose failure is a verdict for plain ansible-playbook runs: fleetbench judges the
# slots itself from the collected files (_record_host), so they never decide a host here.
_JUDGED_ON_THE_CONTROLLER = frozenset({"benchmark_verdict"})


def _step_of(result: TaskResult) -> str:
    return _STEP_OF_ROLE.get(result.role, result.role or "run")


def host_outcome(name: str, results: tuple[TaskResult, ...], fetched: bool) -> HostOutcome:
    """The outcome of one host from its task results (pure; unit-tested)."""
    steps: dict[str, dict[str, str]] = {}
    slots: dict[str, dict[str, Any]] = {}
    status, reason = "", ""
    digest: str | None = None
    commit: str | None = None
    preflight: dict[str, Any] | None = None
    for result in results:
        step = _step_of(result)
        entry = steps.setdefault(step, {"start": result.start, "end": result.end,
                                        "status": "ok"})
        entry["end"] = result.end or entry["end"]
        if result.action == "fleetbench_probe" and "verdict" in result.result:
            preflight = dict(result.result["verdict"])
        if result.action == "community.docker.docker_image_pull" and result.outcome == "ok":
            digest = _digest(result.result.get("image") or {})
        if result.action == "ansible.builtin.git" and result.outcome == "ok":
            commit = str(result.result.get("after") or "") or None
        if result.action == "ansible.builtin.set_fact":
            plan = (result.result.get("ansible_facts") or {}).get("__benchmark_plan")
            for slot in (plan or {}).get("skipped", []):
                slots[slot["name"]] = _slot_entry(slot)
        if result.action == "fleetbench_wait" and result.outcome == "ok":
            for slot in result.result.get("slots", []):
                slots[slot["name"]] = _slot_entry(slot)
        if result.outcome == "unreachable" and not status:
            entry["status"] = "unreachable"
            status, reason = unreachable_status(name, result.message)  # or failed:hostkey
        elif (result.outcome == "failed" and not result.ignored and not status
              and result.role not in _JUDGED_ON_THE_CONTROLLER):
            entry["status"] = "failed"
            status, reason = _failure_status(step, result), result.message
    if not status:
        status = "ok" if fetched and "collect" in steps else "failed:incomplete"
        if status != "ok":
            reason = "the run ended before this host finished"
    return HostOutcome(name=name, status=status, reason=reason, steps=steps, slots=slots,
                       image_digest=digest, mad_commit=commit, preflight=preflight)


def _failure_status(step: str, result: TaskResult) -> str:
    if step == "preflight":
        # The probe takes the run lock first: a host in use by another run is not probed.
        return "skipped:locked" if result.result.get("locked") else "skipped:preflight"
    return f"failed:{step}"


def _slot_entry(slot: Mapping[str, Any]) -> dict[str, Any]:
    # The status is the host's word until the controller judges the slot's files.
    return {
        "status": slot.get("status"), "hip_visible_devices": slot.get("hip_visible_devices"),
        "exit_code": slot.get("exit_code"), "oom_killed": slot.get("oom_killed", False),
        "timed_out": slot.get("timed_out", False), "summary": slot.get("summary", ""),
    }


def with_slot_verdicts(outcome: HostOutcome) -> HostOutcome:
    """A host whose steps went well ends ``failed:benchmark`` when a slot is not ``ok``."""
    reason = failed_slots_reason(outcome.slots)
    if outcome.status != "ok" or reason is None:
        return outcome
    steps = {name: dict(step) for name, step in outcome.steps.items()}
    if "benchmark" in steps:
        steps["benchmark"]["status"] = "failed"
    return dataclasses.replace(outcome, status="failed:benchmark", reason=reason, steps=steps)


def _digest(image: Mapping[str, Any]) -> str | None:
    digests = image.get("RepoDigests") or []
    if digests:
        return str(digests[0]).rsplit("@", 1)[-1]
    image_id = image.get("Id")
    return str(image_id) if image_id else None


# --- the run directory ------------------------------------------------------------------------


def unpack_archive(archive: Path, dest: Path) -> list[str]:
    """Unpack a host's collected archive into ``dest``; returns the member names."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        # "data" refuses absolute paths, links out of dest and device files.
        tar.extractall(dest, filter="data")
    archive.unlink()
    return names


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` atomically."""
    tmp = run_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(run_dir / MANIFEST)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Read a run's manifest; BadInput when ``run_dir`` is not a run directory."""
    path = Path(run_dir) / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{run_dir} is not a fleetbench run directory (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} is damaged ({exc.msg}) — it cannot be resumed") from None
    return data


def drifted(per_host: Mapping[str, str | None]) -> bool:
    """True when the hosts of one run ended up with different values (image digests, MAD
    commits); hosts that never got that far are left out."""
    return len({v for v in per_host.values() if v}) > 1


# --- orchestration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    """A validated request: plan, fleet, where the run directory goes."""

    plan: RunPlan
    fleet: Fleet
    runs_dir: Path
    token: Secret | None = field(default=None, repr=False)
    resume: Path | None = None
    mad_snapshot: MadSnapshot | None = None


def prepare(
    inventory: Path, model: str, gpus: int, dtype: str, scenario: str, *, slots: str = "auto",
    image: str | None = None, mad_repo: str | None = None, mad_ref: str | None = None,
    runs_dir: Path = Path("runs"), limit: str | None = None, timeout_s: int = 6 * 3600,
    token: Secret | None = None, partition_bytes: int | None = None,
    mad_sync: Path | None = None, container_env: Mapping[str, str] | None = None,
) -> RunRequest:
    """Validate everything on the controller; BadInput for any problem (nothing started).

    Relative paths are taken against the current directory, here, once: the playbooks run
    in another folder and would otherwise write the collected reports somewhere else.
    """
    validate_choices(model, gpus, dtype, scenario, slots)
    runs_dir = Path(runs_dir).expanduser().absolute()
    if mad_sync is not None:
        mad_sync = Path(mad_sync).expanduser().absolute()
    if mad_sync is not None and mad_repo:
        raise BadInput("--mad-sync and --mad-repo exclude each other — the hosts get MAD "
                       "either from the controller or from a git server")
    snapshot = resolve_snapshot(mad_sync, mad_ref) if mad_sync is not None else None
    if snapshot is not None:
        check_scenario(snapshot, scenario)
    if needs_token(model) and not token:
        raise BadInput(
            f"{model} is a gated model: set HF_TOKEN in the environment or pass "
            "--hf-token-file FILE (a token with access to the model)"
        )
    fleet = load_fleet(inventory, limit)
    env = check_container_env(dict(container_env or {}), "--env", [token])
    for host, variables in fleet.host_vars.items():
        if "fleetbench_container_env" in variables:
            check_container_env(variables["fleetbench_container_env"],
                                f"fleetbench_container_env of {host}", [token])
    slots_for: dict[int, list[dict[str, Any]]] = {}  # logical GPUs of a host -> its slots
    for logical in sorted(set(fleet.planned_gpus.values())):
        hosts = [h for h, n in fleet.planned_gpus.items() if n == logical]
        try:
            slots_for[logical] = [s.to_dict() for s in assign_slots(
                logical, gpus, slots if slots == "auto" else int(slots))]
        except BadInput as exc:
            raise BadInput(f"{exc} (hosts {', '.join(hosts[:5])}"
                           f"{' …' if len(hosts) > 5 else ''})") from None
    from fleetbench.fit import check_fit

    # The smallest partition of the fleet decides (24 GB in CPX on MI300X).
    check_fit(model, gpus, dtype,
              partition_bytes or min(fleet.planned_partition_bytes.values()))
    plan = RunPlan(
        model=model, gpus=gpus, dtype=dtype, scenario=scenario, slots=slots,
        timeout_s=timeout_s, limit=limit,
        overrides={k: v for k, v in {"image": image, "mad_repo": mad_repo, "mad_ref": mad_ref,
                                     "mad_sync": str(mad_sync or "")}.items() if v},
        container_env=env,
    )
    # The roles' arguments, checked for every host with the values the run will give them
    # (its id and folder are not known yet: stand-ins of the same type).
    slots_by_host = {h: slots_for[fleet.planned_gpus[h]] for h in fleet.hosts}
    roleargs.validate(PLAYBOOKS, fleet.host_vars,
                      _extravars(plan, "run-id", slots_by_host, runs_dir))
    return RunRequest(plan=plan, fleet=fleet, runs_dir=runs_dir, token=token,
                      mad_snapshot=snapshot)


def _extravars(plan: RunPlan, run_id: str, slots_by_host: Mapping[str, list[dict[str, Any]]],
               collect_dest: Path) -> dict[str, Any]:
    extravars: dict[str, Any] = {
        "fleetbench_run_id": run_id,
        # Written into each host's lock: who holds it, so a dead run's lock can be told.
        "fleetbench_controller": this_controller().to_dict(),
        "fleetbench_slots_by_host": dict(slots_by_host),
        "fleetbench_collect_dest": str(collect_dest),
        "benchmark_model": plan.model,
        "benchmark_gpus": plan.gpus,
        "benchmark_dtype": plan.dtype,
        "benchmark_scenario": plan.scenario,
        "benchmark_timeout": plan.timeout_s,
        "benchmark_env_overrides": dict(plan.container_env),
    }
    for key, var in (("image", "fleetbench_image"), ("mad_repo", "fleetbench_mad_repo"),
                     ("mad_ref", "fleetbench_mad_ref")):
        if key in plan.overrides:
            extravars[var] = plan.overrides[key]
    return extravars


@contextlib.contextmanager
def _cancel_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM ask ansible-runner to stop instead of killing us mid-way."""
    stop = {"requested": False}

    def handler(signum: int, frame: object) -> None:
        stop["requested"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: stop["requested"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _open_run(request: RunRequest) -> tuple[Path, dict[str, Any]]:
    """The run directory and manifest: a new one, or the one being resumed."""
    if request.resume is not None:
        run_dir = request.resume.expanduser().absolute()
        return run_dir, read_manifest(run_dir)
    run_id = new_run_id()
    run_dir = request.runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir, {
        "run_id": run_id, "fleetbench_version": __version__, "created": _utc_now(),
        "inventory": str(request.fleet.inventory), "plan": request.plan.to_dict(),
        "hosts": {h: {"status": "pending"} for h in request.fleet.hosts},
        "attempts": [],
    }


def _play(request: RunRequest, run_id: str, hosts: list[str], *,
          slots_by_host: Mapping[str, list[dict[str, Any]]], collect_dest: Path,
          on_result: Callable[[TaskResult], None],
          on_step: Callable[[str, str], None] | None
          ) -> tuple[PlaybookRun | None, PlaybookRun | None]:
    """run.yml, then cleanup.yml whatever happened (a failure, Ctrl-C, SIGTERM).

    cleanup.yml visits only the hosts whose collect did not clean up (none: not run).
    """
    limit = ",".join(hosts)
    # One fork per host, uncapped: waiting for a host's benchmark holds one Ansible worker
    # for the benchmark's whole length, so with fewer forks than hosts the hosts beyond
    # them would run their benchmarks only after others finished (bench/RESULTS.md, forks).
    forks = len(hosts)
    # Only the token socket's path reaches Ansible (ansible-runner writes extravars, envvars
    # and the inherited environment to disk); the role reads the token from it, no_log.
    serving = serve_token(request.token) if request.token else contextlib.nullcontext()
    kept_out = (request.token,) if request.token else ()
    with (serving as token_socket, _cancel_on_signals() as cancel,
          scratch.folder("fleetbench-mad-") as mad_scratch):
        extravars = _extravars(request.plan, run_id, slots_by_host, collect_dest)
        extravars["benchmark_hf_token_socket"] = str(token_socket or "")
        if request.mad_snapshot is not None:
            extravars["mad_archive"] = str(write_archive(request.mad_snapshot, mad_scratch))
            extravars["mad_archive_commit"] = request.mad_snapshot.commit
            extravars["fleetbench_mad_ref"] = request.mad_snapshot.ref
            extravars["benchmark_mad_serving"] = request.mad_snapshot.runs_serving
        run: PlaybookRun | None = None
        try:
            run = run_playbook(
                "run", request.fleet.inventory, limit=limit, extravars=extravars, forks=forks,
                on_result=on_result, on_task_start=on_step, cancel=cancel,
                arguments_checked=True,  # by prepare()
                secrets=kept_out,
            )
        finally:
            # collect cleaned up the hosts it reached; the rest (failed earlier, unreachable,
            # interrupted, or a container that would not go) get cleanup.yml.
            rest = [h for h in hosts if run is None or not cleaned_by_collect(run.for_host(h))]
            cleanup = run_playbook("cleanup", request.fleet.inventory, limit=",".join(rest),
                                   extravars={"fleetbench_run_id": run_id},
                                   forks=len(rest), arguments_checked=True,
                                   secrets=kept_out) if rest else None
    return run, cleanup


def cleaned_by_collect(results: tuple[TaskResult, ...]) -> bool:
    """True when the host's collect removed the run's containers and lock without an error."""
    for result in results:
        if result.action == "fleetbench_collect" and result.outcome == "ok":
            cleaned = result.result.get("cleaned") or {}
            return isinstance(cleaned, dict) and bool(cleaned) and not cleaned.get("error")
    return False


def cleanup_status(results: tuple[TaskResult, ...],
                   run_results: tuple[TaskResult, ...] = ()) -> str:
    """``ok``, or why the run's containers, token and lock may still be on the host.

    ``results`` are the host's cleanup.yml results, ``run_results`` its run.yml ones
    (collect cleans up in the same call when it gets there).
    """
    for result in results:
        if result.outcome in {"failed", "unreachable"}:
            outcome, message = (unreachable_status(result.host, result.message)
                                if result.outcome == "unreachable"
                                else (result.outcome, result.message))
            return (f"{outcome}: {_first_line(message)} — containers, token "
                    "file or lock of this run may remain; fleetbench run --resume cleans up")
    return "ok" if results or cleaned_by_collect(run_results) else "not run"


def _record_host(host: str, run: PlaybookRun | None, hosts_dir: Path,
                 previous: Mapping[str, Any], plan: RunPlan) -> HostOutcome:
    """Unpack what was fetched from ``host``, judge its slots from their files, and how the
    host ended."""
    archive = hosts_dir / f"{host}.tar.gz"
    fetched = archive.exists()
    outcome = host_outcome(host, run.for_host(host) if run else (), fetched)
    if fetched:
        # A slot run again is judged by this attempt's files only, not by an earlier one's.
        for name in outcome.slots:
            if SLOT_FOLDER.fullmatch(name):
                shutil.rmtree(hosts_dir / host / name, ignore_errors=True)
        unpack_archive(archive, hosts_dir / host)
    if run is not None and run.status == "canceled" and not fetched and outcome.status in {
            "ok", "failed:incomplete"}:
        outcome = dataclasses.replace(outcome, status="failed:interrupted",
                                      reason="the run was interrupted")
    judged = judge_slots(hosts_dir / host, outcome.slots, plan.scenario,
                         timeout_s=plan.timeout_s, collected=fetched)
    # A resumed host keeps the slots that finished before.
    outcome = with_slot_verdicts(dataclasses.replace(
        outcome, slots={**previous.get("slots", {}), **judged}))
    if outcome.preflight is not None:
        for slot in outcome.slots.values():  # which physical GPUs and partitions it used
            slot["gpus"] = slot_gpus(outcome.preflight, slot.get("hip_visible_devices"))
        host_dir = hosts_dir / host
        host_dir.mkdir(exist_ok=True)
        (host_dir / "preflight.json").write_text(json.dumps(outcome.preflight, indent=2))
        (host_dir / "partition.json").write_text(
            json.dumps(outcome.preflight.get("partition", {}), indent=2))
    return outcome


def execute(
    request: RunRequest,
    *,
    on_step: Callable[[str, str], None] | None = None,
    on_host: Callable[[str, str, str], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Run the plan on the fleet; returns the run directory and its manifest.

    ``on_step(host, task)`` reports progress; ``on_host(host, status, reason)`` a host's end.
    """
    run_dir, manifest = _open_run(request)
    hosts_dir = run_dir / "hosts"
    hosts_dir.mkdir(exist_ok=True)
    hosts = [h for h in request.fleet.hosts if manifest["hosts"].get(h, {}).get("status") != "ok"]
    planned = {h: [s.to_dict() for s in assign_slots(
        request.fleet.planned_gpus.get(h, DEFAULT_PLANNED_GPUS), request.plan.gpus,
        request.plan.slots if request.plan.slots == "auto" else int(request.plan.slots))]
        for h in hosts}
    slots_by_host = {h: _slots_to_run(manifest["hosts"].get(h, {}), planned[h]) for h in hosts}
    attempt: dict[str, Any] = {"started": _utc_now(), "hosts": hosts}
    manifest["attempts"].append(attempt)
    write_manifest(run_dir, manifest)

    def on_result(result: TaskResult) -> None:
        if on_host and result.outcome in {"failed", "unreachable"} and not result.ignored:
            label, message = (unreachable_status(result.host, result.message)
                              if result.outcome == "unreachable"
                              else (_failure_status(_step_of(result), result), result.message))
            on_host(result.host, label, _first_line(message))

    run, cleanup = (None, None)
    if hosts:
        run, cleanup = _play(request, manifest["run_id"], hosts, slots_by_host=slots_by_host,
                             collect_dest=hosts_dir, on_result=on_result, on_step=on_step)
    for host in hosts:
        outcome = _record_host(host, run, hosts_dir, manifest["hosts"].get(host, {}),
                               request.plan)
        if request.mad_snapshot is not None and "mad" in outcome.steps:
            outcome = dataclasses.replace(outcome, mad_commit=request.mad_snapshot.commit)
        manifest["hosts"][host] = outcome.to_dict()
        # What the report expects results from, also of a host that never got to run.
        manifest["hosts"][host]["planned_slots"] = [slot["name"] for slot in planned[host]]
        manifest["hosts"][host]["cleanup"] = cleanup_status(
            cleanup.for_host(host) if cleanup else (), run.for_host(host) if run else ())
        if on_host:
            on_host(host, outcome.status, _first_line(outcome.reason))

    digests = {h: e.get("image_digest") for h, e in manifest["hosts"].items()}
    manifest["image"] = {"digests": digests, "drift": drifted(digests)}
    commits = {h: e.get("mad_commit") for h, e in manifest["hosts"].items()}
    manifest["mad"] = {"commits": commits, "drift": drifted(commits)}
    attempt["finished"] = manifest["finished"] = _utc_now()
    attempt["canceled"] = run is not None and run.status == "canceled"
    manifest["summary"] = summarize(manifest)
    write_manifest(run_dir, manifest)
    return run_dir, manifest


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _slots_to_run(previous: Mapping[str, Any], slots_all: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """All slots, or on resume only those that did not end ok."""
    done = {name for name, slot in (previous.get("slots") or {}).items()
            if slot.get("status") == "ok"}
    return [s for s in slots_all if s["name"] not in done]


def summarize(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Counts per final status and whether the whole run is ok."""
    counts: dict[str, int] = {}
    for entry in manifest["hosts"].values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return {"ok": all(e["status"] == "ok" for e in manifest["hosts"].values()),
            "statuses": counts}

