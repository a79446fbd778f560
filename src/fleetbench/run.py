"""``fleetbench run``: the guide's steps on every host, ending in one run directory.

Pipeline: plan and validate on the controller (nothing touches a host before that), then
``playbooks/run.yml`` (preflight with the run lock → mad → image → benchmark → collect
with clean-up → verdict), then ``playbooks/cleanup.yml`` on every host that collect did
not clean up, then unpack the archives and write ``manifest.json``. Every host ends
``ok``, ``failed:<step>``, ``unreachable`` or ``skipped:<why>``; ``--resume`` re-runs
only hosts and slots that did not end ``ok``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench import __version__, correctness, diskplan, roleargs, scratch
from fleetbench.errors import BadInput
from fleetbench.gpus import slot_gpus
from fleetbench.hostkeys import unreachable_status
from fleetbench.imagestage import ControllerImage, controller_image, export_image
from fleetbench.inventory import Fleet, load_fleet
from fleetbench.lock import this_controller
from fleetbench.madsync import MadSnapshot, check_scenario, resolve_snapshot, write_archive
from fleetbench.modelsync import ModelSnapshot, resolve_model_snapshot
from fleetbench.plan import (
    DEFAULT_IMAGE,
    RunPlan,
    assign_slots,
    check_container_env,
    needs_token,
    new_run_id,
    validate_choices,
)
from fleetbench.role_results import role_results
from fleetbench.runner import PlaybookRun, TaskResult, run_playbook
from fleetbench.secrets import Secret
from fleetbench.serving_start import option_seconds, serving_start_timeouts
from fleetbench.slot_verdict import SLOT_FOLDER, failed_slots_reason, judge_slots
from fleetbench.token_server import serve_token
from fleetbench.watch import DEFAULT_WINDOW_S, WatchEnd, watch

MANIFEST = "manifest.json"
# Logical GPUs a host is planned for before preflight confirms it: 8 MI300X in CPX.
DEFAULT_PLANNED_GPUS = 64
# What a run starts: start.yml, collect.yml on each host whose slots ended, then
# cleanup.yml on the hosts collect did not clean up.
PLAYBOOKS = ("start", "collect", "cleanup")
# Forks of start.yml and of each collect.yml: neither holds a worker for a benchmark's
# length any more (the slots run detached), so fewer forks than hosts serialise nothing long.
MAX_FORKS = 50
# Slot verdicts that say the slot never ran to its end: started again on --resume.
NOT_RUN = frozenset({"failed:interrupted", "failed:lost", "failed:start"})


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
    #: The model role's result: ``{"revision", "downloaded_bytes"}`` (None: not reached).
    model: dict[str, Any] | None = None
    #: vLLM's version in the image the host pulled (None: not read).
    vllm_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's entry for this host."""
        return {
            "status": self.status, "reason": self.reason, "steps": self.steps,
            "slots": self.slots, "image_digest": self.image_digest,
            "mad_commit": self.mad_commit, "model": self.model,
            "vllm_version": self.vllm_version,
        }


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


# The actions a role fails a host with on purpose, saying why.
_EXPLAINING_ACTIONS = frozenset({"ansible.builtin.fail", "fail"})


def host_outcome(name: str, results: tuple[TaskResult, ...], fetched: bool) -> HostOutcome:
    """The outcome of one host from its task results (pure; unit-tested)."""
    steps: dict[str, dict[str, str]] = {}
    slots: dict[str, dict[str, Any]] = {}
    status, reason, failed_step = "", "", ""
    preflight: dict[str, Any] | None = None
    for result in results:
        step = _step_of(result)
        entry = steps.setdefault(step, {"start": result.start, "end": result.end,
                                        "status": "ok"})
        entry["end"] = result.end or entry["end"]
        if step == "preflight" and result.outcome == "failed" and "verdict" in result.result:
            preflight = dict(result.result["verdict"])  # the probe failed the host
        if result.outcome == "unreachable" and not status:
            entry["status"] = "unreachable"
            status, reason = unreachable_status(name, result.message)  # or failed:hostkey
        elif (result.outcome == "failed" and not result.ignored and not status
              and result.role not in _JUDGED_ON_THE_CONTROLLER):
            entry["status"] = "failed"
            status, reason = _failure_status(step, result), result.message
            failed_step = step
        elif (result.outcome == "failed" and status and step == failed_step
              and result.action in _EXPLAINING_ACTIONS):
            # A block's rescue caught the first failure and explains it: its words are the
            # reason ("… could not be downloaded: 401 gated"), not "non-zero return code".
            reason = result.message or reason
    done = role_results(results)
    if "preflight" in done:
        preflight = dict(done["preflight"].data.get("verdict") or {}) or preflight
    for step in ("benchmark", "collect"):
        # Slots the host could not run (benchmark), then how each ended there (collect).
        key = "skipped" if step == "benchmark" else "slots"
        for slot in (done[step].data.get(key) or []) if step in done else ():
            slots[slot["name"]] = _slot_entry(slot)
    if not status:
        status = "ok" if fetched and "collect" in done else "failed:incomplete"
        if status != "ok":
            reason = "the run ended before this host finished"
    image = done["image"].data if "image" in done else {}
    commit = str(done["mad"].data.get("commit") or "") if "mad" in done else ""
    return HostOutcome(name=name, status=status, reason=reason, steps=steps, slots=slots,
                       image_digest=_digest(image), mad_commit=commit or None,
                       preflight=preflight,
                       model=model_entry(done["model"].data) if "model" in done else None,
                       vllm_version=str(image.get("vllm_version") or "").strip() or None)


def model_entry(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``hosts.<h>.model`` from the model role's result data, if it has one."""
    if not data.get("revision"):
        return None
    return {"revision": str(data["revision"]),
            "downloaded_bytes": int(data.get("downloaded_bytes") or 0)}


def _failure_status(step: str, result: TaskResult) -> str:
    if step == "preflight":
        # The probe takes the run lock first: a host in use by another run is not probed.
        if result.result.get("locked"):
            return "skipped:locked"
        verdict = result.result.get("verdict") or {}
        return f"skipped:{verdict.get('skip') or 'preflight'}"  # disk, when short of it alone
    return f"failed:{step}"


def _slot_entry(slot: Mapping[str, Any]) -> dict[str, Any]:
    # The status is the host's word until the controller judges the slot's files.
    return {
        "status": slot.get("status"), "hip_visible_devices": slot.get("hip_visible_devices"),
        "exit_code": slot.get("exit_code"), "oom_killed": slot.get("oom_killed", False),
        "timed_out": slot.get("timed_out", False), "summary": slot.get("summary", ""),
        "server_start_timed_out": slot.get("server_start_timed_out", False),
        "serving_start_timeout_s": slot.get("serving_start_timeout_s"),
        "started": slot.get("started"), "finished": slot.get("finished"),
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
    """The image's registry digest (or its id when it has none, or came from the controller:
    the id is what was checked) from the image role's data."""
    digests = image.get("repo_digests") or []
    if digests and image.get("source") != "controller":
        return str(digests[0]).rsplit("@", 1)[-1]
    image_id = image.get("id")
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
    #: --model-from: the controller-side cache snapshot sent instead of downloading.
    model_snapshot: ModelSnapshot | None = None
    #: Start slots whose verdict failed again on --resume (otherwise nothing runs twice).
    rerun_failed: bool = False
    #: Seconds each host may stay out of reach while its slots run (inventory's
    #: fleetbench_reconnect_window, or --reconnect-window over it).
    reconnect_window_s: Mapping[str, int] = field(default_factory=dict)
    #: Free disk each host needs (diskplan.DiskNeed.to_dict), planned by with_disk_plan.
    disk_needs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: --image-from-controller: the controller's image the hosts load.
    staged_image: ControllerImage | None = None
    #: --serving-start-timeout in seconds, over every host's inventory value (None: the
    #: hosts' own fleetbench_serving_start_timeout, else its default).
    serving_start_timeout_s: int | None = None


def prepare(
    inventory: Path, model: str, gpus: int, dtype: str, scenario: str, *, slots: str = "auto",
    image: str | None = None, mad_repo: str | None = None, mad_ref: str | None = None,
    runs_dir: Path = Path("runs"), limit: str | None = None, timeout_s: int = 6 * 3600,
    token: Secret | None = None, partition_bytes: int | None = None,
    mad_sync: Path | None = None, container_env: Mapping[str, str] | None = None,
    reconnect_window: str | None = None, model_from: Path | None = None,
    image_from_controller: bool = False, serving_start_timeout: str | None = None,
    probe: bool = True, expected_answers: Mapping[str, Mapping[str, str]] | None = None,
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
        check_scenario(snapshot, scenario, dtype=dtype, model=model)
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
    windows = reconnect_windows(fleet.host_vars, reconnect_window)
    diskplan.disk_options(fleet.host_vars)  # a size that is no number is bad input
    serving_start_timeouts(fleet.host_vars, serving_start_timeout)  # every host's, checked
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
    # Last: it reads (and checksums) every byte of the model's snapshot.
    model_snapshot = (resolve_model_snapshot(model_from, model)
                      if model_from is not None else None)
    plan = RunPlan(
        model=model, gpus=gpus, dtype=dtype, scenario=scenario, slots=slots,
        timeout_s=timeout_s, limit=limit,
        overrides={k: v for k, v in {"image": image, "mad_repo": mad_repo, "mad_ref": mad_ref,
                                     "mad_sync": str(mad_sync or ""),
                                     "model_from": str(model_snapshot.folder.parent
                                                       if model_snapshot else "")}.items() if v},
        container_env=env, image_from_controller=image_from_controller, correctness=probe,
        expected_answers={m: dict(a) for m, a in (expected_answers or {}).items()},
    )
    staged = _controller_image(fleet, image) if image_from_controller else None
    # The roles' arguments, checked for every host with the values the run will give them
    # (its id and folder are not known yet: stand-ins of the same type).
    slots_by_host = {h: slots_for[fleet.planned_gpus[h]] for h in fleet.hosts}
    roleargs.validate(PLAYBOOKS, fleet.host_vars,
                      _extravars(plan, "run-id", slots_by_host, runs_dir))
    return RunRequest(plan=plan, fleet=fleet, runs_dir=runs_dir, token=token,
                      mad_snapshot=snapshot, model_snapshot=model_snapshot,
                      reconnect_window_s=windows, staged_image=staged,
                      serving_start_timeout_s=option_seconds(serving_start_timeout))


def _controller_image(fleet: Fleet, image: str | None) -> ControllerImage:
    """The one image of the fleet, as the controller's engine has it (BadInput otherwise)."""
    refs = {diskplan.image_of(fleet.host_vars.get(h, {}), image, DEFAULT_IMAGE)
            for h in fleet.hosts}
    if len(refs) > 1:
        raise BadInput(f"--image-from-controller sends one image, but the hosts' "
                       f"fleetbench_image name {len(refs)} ({', '.join(sorted(refs))}) — pass "
                       "--image REF")
    return controller_image(refs.pop())


def with_disk_plan(request: RunRequest) -> RunRequest:
    """The request with each host's disk need planned (the registry asked for the image's
    size; no host is touched)."""
    plan = request.plan
    images = {h: diskplan.image_of(request.fleet.host_vars.get(h, {}),
                                   plan.overrides.get("image"), DEFAULT_IMAGE)
              for h in request.fleet.hosts}
    staged = request.staged_image
    # From the controller: its engine's size, twice (the archive waits on the host while it
    # loads); the registry is not asked.
    known = {staged.ref: diskplan.ImageSize(
        bytes=2 * staged.size_bytes, source="controller", digest=staged.id,
        detail=f"{diskplan.gb(staged.size_bytes)} GB in the controller's engine, and its "
               "archive while it loads")} if staged is not None else {}
    sizes = diskplan.lookup_sizes(set(images.values()), known)
    needs = diskplan.plan_disk(images, plan.model, diskplan.model_bytes(plan.model, plan.dtype),
                               diskplan.disk_options(request.fleet.host_vars), sizes)
    return dataclasses.replace(request,
                               disk_needs={h: n.to_dict() for h, n in needs.items()})


def reconnect_windows(host_vars: Mapping[str, Mapping[str, Any]],
                      given: str | None = None) -> dict[str, int]:
    """Each host's reconnect window in seconds: ``given`` (--reconnect-window), else its
    ``fleetbench_reconnect_window``, else 30 minutes. BadInput for a value that is not a
    duration."""
    from fleetbench.plan import parse_duration

    if given is not None:
        seconds = parse_duration(given, "--reconnect-window")
        return dict.fromkeys(host_vars, seconds)
    windows: dict[str, int] = {}
    for host, variables in host_vars.items():
        value = variables.get("fleetbench_reconnect_window")
        windows[host] = (DEFAULT_WINDOW_S if value in (None, "") else
                         parse_duration(str(value), f"fleetbench_reconnect_window of {host}"))
    return windows


def _extravars(plan: RunPlan, run_id: str, slots_by_host: Mapping[str, list[dict[str, Any]]],
               collect_dest: Path, rerun_by_host: Mapping[str, list[str]] | None = None
               ) -> dict[str, Any]:
    extravars: dict[str, Any] = {
        "fleetbench_run_id": run_id,
        # Written into each host's lock and slot record: who runs it, so a dead run's
        # lock can be told, and a resumed run can take it over.
        "fleetbench_controller": this_controller().to_dict(),
        "fleetbench_slots_by_host": dict(slots_by_host),
        "fleetbench_rerun_by_host": dict(rerun_by_host or {}),
        "fleetbench_collect_dest": str(collect_dest),
        "benchmark_model": plan.model,
        "benchmark_gpus": plan.gpus,
        "benchmark_dtype": plan.dtype,
        "benchmark_scenario": plan.scenario,
        "benchmark_timeout": plan.timeout_s,
        "benchmark_env_overrides": dict(plan.container_env),
        "benchmark_correctness": plan.correctness,
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


@dataclass(frozen=True)
class Played:
    """What the playbooks and the watch did on a run's hosts."""

    start: PlaybookRun | None
    #: Each host's results of its last collect.yml.
    collected: Mapping[str, tuple[TaskResult, ...]]
    ends: Mapping[str, WatchEnd]
    cleanup: PlaybookRun | None
    canceled: bool

    def results(self, host: str) -> tuple[TaskResult, ...]:
        """Every task result of ``host``: start.yml's, then its collect's."""
        started = self.start.for_host(host) if self.start else ()
        return started + tuple(self.collected.get(host, ()))


def started_slots(results: tuple[TaskResult, ...]) -> dict[str, Any] | None:
    """The benchmark role's result fact (slots started, kept, skipped) when the host got
    that far, else None."""
    done = role_results(results).get("benchmark")
    return dict(done.data) if done is not None else None


def _play(request: RunRequest, run_id: str, hosts: list[str], *,
          slots_by_host: Mapping[str, list[dict[str, Any]]],
          rerun_by_host: Mapping[str, list[str]], collect_dest: Path,
          on_result: Callable[[TaskResult], None],
          on_step: Callable[[str, str], None] | None,
          on_started: Callable[[list[str]], None],
          on_watch: Callable[[str, str], None] | None) -> Played:
    """start.yml; then watch the hosts whose slots run, collect.yml on each as its slots
    end; then cleanup.yml on the hosts collect did not clean up (also after a failure,
    Ctrl-C or SIGTERM), except those out of reach past their window: their results wait
    on the host for --resume.
    """
    start: PlaybookRun | None = None
    collected: dict[str, tuple[TaskResult, ...]] = {}
    ends: dict[str, WatchEnd] = {}
    kept_out = (request.token,) if request.token else ()
    with _cancel_on_signals() as cancel:
        try:
            start = _start(request, run_id, hosts, slots_by_host=slots_by_host,
                           rerun_by_host=rerun_by_host, collect_dest=collect_dest,
                           on_result=on_result, on_step=on_step, cancel=cancel)
            running = [h for h in hosts if started_slots(start.for_host(h)) is not None]
            on_started(running)

            def collect(ready: list[str]) -> set[str]:
                done = run_playbook(
                    "collect", request.fleet.inventory, limit=",".join(ready),
                    extravars={"fleetbench_run_id": run_id,
                               "fleetbench_collect_dest": str(collect_dest)},
                    forks=min(len(ready), MAX_FORKS), on_result=on_result,
                    on_task_start=on_step, arguments_checked=True, secrets=kept_out)
                for host in ready:
                    collected[host] = done.for_host(host)
                return {h for h in ready
                        if any(r.outcome == "unreachable" for r in done.for_host(h))}

            if running and not cancel():
                from fleetbench.sshpoll import RecordPoller  # paramiko: only when watching

                ends.update(watch(
                    running, RecordPoller(run_id, {h: request.fleet.host_vars.get(h, {})
                                                   for h in running}),
                    collect=collect, window_s=request.reconnect_window_s,
                    on_update=on_watch, cancel=cancel))
        finally:
            # collect cleaned up the hosts it reached; the rest (failed earlier, interrupted,
            # or a container that would not go) get cleanup.yml.
            rest = [h for h in hosts if not cleaned_by_collect(collected.get(h, ()))
                    and ends.get(h, WatchEnd(h, "")).how != "unreachable"]
            cleanup = run_playbook("cleanup", request.fleet.inventory, limit=",".join(rest),
                                   extravars={"fleetbench_run_id": run_id},
                                   forks=min(len(rest), MAX_FORKS), arguments_checked=True,
                                   secrets=kept_out) if rest else None
        canceled = cancel() or (start is not None and start.status == "canceled")
    return Played(start=start, collected=collected, ends=ends, cleanup=cleanup,
                  canceled=canceled)


def _start(request: RunRequest, run_id: str, hosts: list[str], *,
           slots_by_host: Mapping[str, list[dict[str, Any]]],
           rerun_by_host: Mapping[str, list[str]], collect_dest: Path,
           on_result: Callable[[TaskResult], None], on_step: Callable[[str, str], None] | None,
           cancel: Callable[[], bool]) -> PlaybookRun:
    """start.yml, with the token served only while it runs (the slots read it at their
    start; the hosts' supervisors remove it once their last wave has started)."""
    # Only the token socket's path reaches Ansible (ansible-runner writes extravars, envvars
    # and the inherited environment to disk); the role reads the token from it, no_log.
    serving = serve_token(request.token) if request.token else contextlib.nullcontext()
    with serving as token_socket, scratch.folder("fleetbench-mad-") as mad_scratch, \
            scratch.folder("fleetbench-image-") as image_scratch:
        extravars = _extravars(request.plan, run_id, slots_by_host, collect_dest,
                               rerun_by_host)
        extravars["benchmark_hf_token_socket"] = str(token_socket or "")
        extravars["fleetbench_disk_need_by_host"] = {h: request.disk_needs[h] for h in hosts
                                                     if h in request.disk_needs}
        if request.staged_image is not None:
            extravars.update(image_from_controller=True, image_id=request.staged_image.id,
                             image_archive=str(export_image(request.staged_image, image_scratch)))
        if request.serving_start_timeout_s is not None:
            extravars["fleetbench_serving_start_timeout"] = request.serving_start_timeout_s
        if request.mad_snapshot is not None:
            extravars["mad_archive"] = str(write_archive(request.mad_snapshot, mad_scratch))
            extravars["mad_archive_commit"] = request.mad_snapshot.commit
            extravars["fleetbench_mad_ref"] = request.mad_snapshot.ref
            extravars["benchmark_mad_serving"] = request.mad_snapshot.runs_serving
        if request.model_snapshot is not None:
            extravars["model_from"] = request.model_snapshot.to_extravar()
        return run_playbook(
            "start", request.fleet.inventory, limit=",".join(hosts), extravars=extravars,
            forks=min(len(hosts), MAX_FORKS), on_result=on_result, on_task_start=on_step,
            cancel=cancel, arguments_checked=True,  # by prepare()
            secrets=(request.token,) if request.token else (),
        )


def cleaned_by_collect(results: tuple[TaskResult, ...]) -> bool:
    """True when the host's collect removed the run's containers and lock without an error."""
    done = role_results(results).get("collect")
    cleaned = done.data.get("cleaned") if done is not None else None
    return isinstance(cleaned, Mapping) and bool(cleaned) and not cleaned.get("error")


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


def _record_host(host: str, played: Played | None, hosts_dir: Path,
                 previous: Mapping[str, Any], plan: RunPlan, *,
                 secrets: tuple[Secret, ...] = ()) -> HostOutcome:
    """Unpack what was fetched from ``host``, judge its slots from their files, and how the
    host ended."""
    archive = hosts_dir / f"{host}.tar.gz"
    fetched = archive.exists()
    outcome = host_outcome(host, played.results(host) if played else (), fetched)
    if fetched:
        # A slot run again is judged by this attempt's files only, not by an earlier one's.
        for name in outcome.slots:
            if SLOT_FOLDER.fullmatch(name):
                shutil.rmtree(hosts_dir / host / name, ignore_errors=True)
        unpack_archive(archive, hosts_dir / host)
    end = played.ends.get(host) if played else None
    if end is not None and end.how == "unreachable" and not fetched:
        outcome = dataclasses.replace(
            outcome, status="unreachable",
            reason=f"{end.detail}: its slots' results stay on the host — fleetbench run "
                   "--resume RUN_DIR collects them")
    elif played is not None and played.canceled and not fetched and outcome.status in {
            "ok", "failed:incomplete"}:
        outcome = dataclasses.replace(outcome, status="failed:interrupted",
                                      reason="the run was interrupted")
    if end is not None and "benchmark" in outcome.steps and end.ended_at:
        # The slots ran detached until the watch saw them end.
        steps = {name: dict(step) for name, step in outcome.steps.items()}
        steps["benchmark"]["end"] = end.ended_at
        outcome = dataclasses.replace(outcome, steps=steps)
    judged = judge_slots(hosts_dir / host, outcome.slots, plan.scenario,
                         timeout_s=plan.timeout_s, collected=fetched, secrets=secrets)
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
    on_watch: Callable[[str, str], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Run the plan on the fleet; returns the run directory and its manifest.

    ``on_step(host, task)`` reports progress; ``on_watch(host, text)`` a host whose slots
    run (slots ended/running, waiting for SSH); ``on_host(host, status, reason)`` a
    host's end.
    """
    if not request.disk_needs:
        request = with_disk_plan(request)
    run_dir, manifest = _open_run(request)
    manifest["plan"]["disk"] = diskplan.summary(request.disk_needs)
    hosts_dir = run_dir / "hosts"
    hosts_dir.mkdir(exist_ok=True)
    planned = {h: [s.to_dict() for s in assign_slots(
        request.fleet.planned_gpus.get(h, DEFAULT_PLANNED_GPUS), request.plan.gpus,
        request.plan.slots if request.plan.slots == "auto" else int(request.plan.slots))]
        for h in request.fleet.hosts}
    slots_by_host: dict[str, list[dict[str, Any]]] = {}
    rerun_by_host: dict[str, list[str]] = {}
    for host in request.fleet.hosts:
        previous = manifest["hosts"].get(host, {})
        to_run, rerun = slots_to_run(previous, planned[host], request.rerun_failed)
        if previous.get("status") != "ok" and (to_run or not previous.get("slots")):
            slots_by_host[host], rerun_by_host[host] = to_run, rerun
    hosts = list(slots_by_host)
    attempt: dict[str, Any] = {"started": _utc_now(), "hosts": hosts}
    manifest["attempts"].append(attempt)
    write_manifest(run_dir, manifest)

    def on_result(result: TaskResult) -> None:
        if on_host and result.outcome in {"failed", "unreachable"} and not result.ignored:
            label, message = (unreachable_status(result.host, result.message)
                              if result.outcome == "unreachable"
                              else (_failure_status(_step_of(result), result), result.message))
            on_host(result.host, label, _first_line(message))

    def on_started(running: list[str]) -> None:
        # A controller that dies from here on leaves the hosts to `fleetbench status` and
        # `--resume`: the manifest says which hosts have slots running on their own.
        for host in running:
            manifest["hosts"][host] = {
                **manifest["hosts"].get(host, {}), "status": "running",
                "reason": "slots run on the host: fleetbench status RUN_DIR",
                "running_since": _utc_now()}
        write_manifest(run_dir, manifest)

    played = None
    if hosts:
        played = _play(request, manifest["run_id"], hosts, slots_by_host=slots_by_host,
                       rerun_by_host=rerun_by_host, collect_dest=hosts_dir,
                       on_result=on_result, on_step=on_step, on_started=on_started,
                       on_watch=on_watch)
    for host in hosts:
        previous = manifest["hosts"].get(host, {})
        outcome = _record_host(host, played, hosts_dir, previous, request.plan,
                               secrets=(request.token,) if request.token else ())
        if request.mad_snapshot is not None and "mad" in outcome.steps:
            outcome = dataclasses.replace(outcome, mad_commit=request.mad_snapshot.commit)
        # What an earlier attempt learnt stays when this one did not get that far.
        entry = outcome.to_dict()
        for key in ("image_digest", "mad_commit", "model", "vllm_version"):
            entry[key] = entry[key] or previous.get(key)
        manifest["hosts"][host] = entry
        # What the report expects results from, also of a host that never got to run.
        entry["planned_slots"] = [slot["name"] for slot in planned[host]]
        end = played.ends.get(host) if played else None
        entry["cleanup"] = ("not run: the host was out of reach; its results wait there for "
                            "--resume" if end is not None and end.how == "unreachable"
                            else cleanup_status(
                                played.cleanup.for_host(host) if played and played.cleanup
                                else (), played.collected.get(host, ()) if played else ()))
        if on_host:
            on_host(host, outcome.status, _first_line(outcome.reason))

    if request.plan.correctness:
        # Across the whole fleet, once every host's answers are in.
        correctness.record(manifest, hosts_dir, request.plan.expected_answers)
    manifest.update(fleet_drift(manifest["hosts"]))
    attempt["finished"] = manifest["finished"] = _utc_now()
    attempt["canceled"] = played is not None and played.canceled
    manifest["summary"] = summarize(manifest)
    write_manifest(run_dir, manifest)
    return run_dir, manifest


def fleet_drift(hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The manifest's fleet-wide ``image``, ``mad`` and ``model`` entries: what each host
    had, and whether the hosts differ."""
    digests = {h: e.get("image_digest") for h, e in hosts.items()}
    commits = {h: e.get("mad_commit") for h, e in hosts.items()}
    revisions = {h: (e.get("model") or {}).get("revision") for h, e in hosts.items()}
    return {"image": {"digests": digests, "drift": drifted(digests)},
            "mad": {"commits": commits, "drift": drifted(commits)},
            "model": {"revisions": revisions, "drift": drifted(revisions)}}


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def slots_to_run(previous: Mapping[str, Any], slots_all: list[dict[str, Any]],
                 rerun_failed: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """The slots a host is asked for on this attempt, and those of them to start again
    although they ran.

    A slot with a verdict is done: ``ok`` always, a failed one unless ``rerun_failed``.
    A slot that never ran to its end (interrupted, lost, not started) is asked for again;
    a slot without a verdict too (the host re-attaches: whether it runs, ran or never
    started, the host's record says, and nothing that ran is started twice).
    """
    verdicts = {name: str(slot.get("status") or "")
                for name, slot in (previous.get("slots") or {}).items()}
    to_run: list[dict[str, Any]] = []
    rerun: list[str] = []
    for slot in slots_all:
        status = verdicts.get(slot["name"])
        if status is None or status in NOT_RUN:
            to_run.append(slot)
        elif status != "ok" and rerun_failed:
            to_run.append(slot)
            rerun.append(slot["name"])
    return to_run, rerun


def summarize(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Counts per final status and whether the whole run is ok."""
    counts: dict[str, int] = {}
    for entry in manifest["hosts"].values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return {"ok": all(e["status"] == "ok" for e in manifest["hosts"].values()),
            "statuses": counts}

