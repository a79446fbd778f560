"""A run's slots on a host, started and watched by a supervisor that needs no controller.

Runs on the target (standard library only, Python 3.6+). The benchmark role creates the
slot containers (``community.docker.docker_container``, ``state: present``), then the
``fleetbench_slots`` module writes the run's record, ``<work>/runs/<run>/slots.json``,
and starts the supervisor, detached from the SSH session. The supervisor starts the
waves of containers one after another, kills a wave at its timeout, removes the token
once the last wave has started, and keeps the record up to date:

- per slot: ``state`` (``created`` → ``running`` → ``exited``; ``lost`` when its container
  vanished before it ended, ``failed-start`` when Docker would not start it), exit code,
  OOM kill, timeout, a vLLM server that never came up (``server_start_timed_out``), start
  and end times, the report rows it left;
- the run id, the host, the controller that started it, the supervisor (pid, boot id);
- ``state`` of the whole (``running``, ``done``, ``stopped``) and ``updated``, the host's
  clock at the last write: the supervisor rewrites the record at least every
  ``HEARTBEAT_S``, so a record older than ``STALE_S`` while ``running`` means the
  supervisor is gone (killed, or the host rebooted).

The controller reads the record with one short SSH call (``cat`` and ``date``), holds
nothing per host meanwhile, and rides out SSH outages; a controller that died is replaced
by ``fleetbench run --resume``, which reads the same record to start only what never
started (:func:`plan_start`).
"""

from __future__ import annotations

import calendar
import contextlib
import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import time

RECORD = "slots.json"
LOG = "supervisor.log"
HEARTBEAT_S = 15
STALE_S = 90
POLL_S = 2.0
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Slot states after which the slot will not run again in this record.
ENDED = ("exited", "lost", "failed-start")
# The slot's log, as the container writes it (roles/benchmark/files/container-command.sh).
SLOT_LOG = "benchmark.log"
# A vLLM server starting, in a slot's log: the command printed before it runs (MAD's
# run_vllm.py prints it, `set -x` shows it with "+ "), or the first line `vllm serve` logs.
SERVER_STARTS = re.compile(r"^(?:\+ )?(?:[A-Za-z_][A-Za-z0-9_]*=\S* )*vllm serve\b"
                           r"|vLLM API server version\b")
# The server answering: vLLM logs the first once its engine is built, uvicorn the others.
SERVER_UP = re.compile(r"Starting vLLM API server\b|Application startup complete"
                       r"|Uvicorn running on\b")
# Bytes of a log read per look: a chatty slot is caught up with over a few looks.
LOG_READ_BYTES = 1 << 20


def now():
    """The current time as the record writes it (UTC)."""
    return time.strftime(TIME_FORMAT, time.gmtime())


def read_record(root):
    """The record in ``root`` ({} when there is none or it is unreadable)."""
    try:
        with open(os.path.join(root, RECORD), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(root, record):
    """Write the record whole or not at all, readable by the login user (no secret in it)."""
    record["updated"] = int(time.time())
    part = os.path.join(root, RECORD + ".part")
    with open(part, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.chmod(part, 0o644)
    os.replace(part, os.path.join(root, RECORD))


def boot_id():
    """This boot of the host (a supervisor of another boot is dead)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def supervisor_alive(record):
    """True when the record's supervisor still runs on this host (same boot, same process).

    On the host; the controller, which cannot look at processes, goes by ``updated``.
    """
    if record.get("state") != "running":
        return False
    supervisor = record.get("supervisor") or {}
    if supervisor.get("boot_id") != boot_id():
        return False
    return _is_supervisor(record)


def plan_start(record, slots, rerun=()):
    """Which of ``slots`` (the controller's plan: dicts with name, container, …) to start.

    A slot that ran, or runs, in this run is never started again, unless its name is in
    ``rerun`` (the operator asked for failed slots to run again); one whose container
    vanished before it ended (``lost``) or that Docker would not start did not run: it is
    started. Returns (slots to start, names already started, which are left alone).
    """
    known = record.get("slots") or {}
    start, kept = [], []
    for slot in slots:
        state = (known.get(slot["name"]) or {}).get("state")
        if state in ("running", "exited") and slot["name"] not in rerun:
            kept.append(slot["name"])
        else:
            start.append(slot)
    return start, kept


def new_record(previous, *, run_id, host, controller, waves, timeout_s, token,
               serving_start_timeout_s=0):
    """The record for a supervisor that starts ``waves`` (lists of slot dicts).

    ``serving_start_timeout_s`` (0: none) is how long a vLLM server a slot starts may take
    to come up before the slot is killed (:class:`ServerStartWatch`), apart from the slot's
    own ``timeout_s``.
    Slots of ``previous`` (an earlier supervisor of the same run) are kept as they are;
    the waves to run are those given, followed by nothing else: a slot of ``previous``
    that is still running is waited for by its own wave's timeout in the new supervisor.
    """
    slots = dict(previous.get("slots") or {})
    for wave in waves:
        for slot in wave:
            slots[slot["name"]] = {
                "container": slot["container"], "index": slot.get("index"),
                "hip_visible_devices": slot.get("hip_visible_devices"),
                "state": "created", "exit_code": None, "oom_killed": False,
                "timed_out": False, "server_start_timed_out": False,
                "started": None, "finished": None, "report_rows": None, "error": "",
            }
    running = [[name] for name, slot in sorted(slots.items())
               if slot.get("state") == "running"]
    return {
        "run_id": run_id, "host": host, "controller": controller or {},
        "timeout_s": int(timeout_s), "token": token or "",
        "serving_start_timeout_s": int(serving_start_timeout_s or 0),
        # Slots a dead supervisor left running come first: they are waited for, not started.
        "waves": running + [[slot["name"] for slot in wave] for wave in waves],
        "slots": slots, "state": "running", "created": now(),
        "attempts": int(previous.get("attempts") or 0) + 1,
    }


# --- a serving slot's vLLM server ------------------------------------------------------------


class ServerStartWatch:
    """Whether the vLLM server a slot started is overdue, told from the slot's log as it grows.

    MAD starts ``vllm serve`` in the background and polls it with ``curl`` until it answers:
    for ever in the report script, 30 minutes per point in run_vllm.py. A server that dies
    or hangs while loading would hold the slot, and the host's later waves, until the
    slot's timeout (hours). The server's output goes to the slot's log, so a start
    (:data:`SERVER_STARTS`) not followed by a line saying it serves (:data:`SERVER_UP`)
    within the limit is a server that did not come up. Every server a slot starts (one per
    serving point in run_vllm.py) gets the whole limit.
    """

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = ""
        self.waiting_since = None

    def feed(self, text, now):
        """Take the log's next ``text``, read at ``now`` (seconds)."""
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            if SERVER_UP.search(line):
                self.waiting_since = None
            elif SERVER_STARTS.search(line) and self.waiting_since is None:
                self.waiting_since = now

    def look(self, now):
        """Read what the log gained since the last look (a new log starts over)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return
        if size < self.offset:
            self.offset, self.partial, self.waiting_since = 0, "", None
        if size == self.offset:
            return
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(LOG_READ_BYTES)
        except OSError:
            return
        self.offset += len(data)
        self.feed(data.decode("utf-8", errors="replace"), now)

    def overdue(self, now, limit_s):
        """True when a server started more than ``limit_s`` seconds ago and is not up."""
        return bool(limit_s) and self.waiting_since is not None and (
            now - self.waiting_since > limit_s)


# --- the supervisor ----------------------------------------------------------------------------


def docker(args, timeout=120):
    """``docker ARGS``: (exit code, stdout, stderr); a hung engine counts as a failure."""
    try:
        done = subprocess.run(["docker", *list(args)], capture_output=True,
                              text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def _seconds(stamp):
    """Docker's RFC 3339 time (nanoseconds) → the record's format; None for its zero time."""
    if not stamp or stamp.startswith("0001-"):
        return None
    return stamp.split(".")[0].rstrip("Z") + "Z"


def _epoch(stamp):
    try:
        return calendar.timegm(time.strptime(stamp, TIME_FORMAT))
    except (TypeError, ValueError):
        return None


INSPECT_FORMAT = ("{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} "
                  "{{.State.StartedAt}} {{.State.FinishedAt}}")


def container_states(names):
    """{container: {status, exit_code, oom_killed, started, finished}} for those that exist."""
    if not names:
        return {}
    code, out, _err = docker(["inspect", "--format", INSPECT_FORMAT, *names])
    states = {}
    # inspect exits 1 when one of them is missing, and still prints the others.
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue
        states[parts[0].lstrip("/")] = {
            "status": parts[1], "exit_code": int(parts[2]), "oom_killed": parts[3] == "true",
            "started": _seconds(parts[4]), "finished": _seconds(parts[5]),
        }
    if code != 0 and not states and names:
        missing = docker(["ps", "-a", "--format", "{{.Names}}"])
        if missing[0] != 0:
            raise OSError("the Docker engine does not answer: " + _err.strip())
    return states


def report_rows(folder):
    """Data rows of a slot's report files: CSVs under reports_* folders and perf_*.csv.

    A cheap count for plain ansible-playbook runs (benchmark_verdict); fleetbench judges
    each slot on the controller from the collected files instead.
    """
    rows = 0
    for current, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".git"]
        in_reports = any(fnmatch.fnmatch(part, "reports_*")
                         for part in os.path.relpath(current, folder).split(os.sep))
        for name in names:
            if not name.lower().endswith(".csv"):
                continue
            if not (in_reports or fnmatch.fnmatch(name, "perf_*.csv")):
                continue
            try:
                with open(os.path.join(current, name), "rb") as handle:
                    lines = [line for line in handle.read().splitlines() if line.strip()]
            except OSError:
                continue
            rows += max(len(lines) - 1, 0)  # the first line is the header
    return rows


def settle(slot, state, folder):
    """Record how a running slot ended, from its container's ``state`` (None: the container
    is gone); False while it still runs."""
    if state is None:
        slot.update(state="lost", finished=now(),
                    error="the container was removed before it ended")
        return True
    if state["status"] not in ("exited", "dead"):
        return False
    slot.update(state="exited", exit_code=state["exit_code"], oom_killed=state["oom_killed"],
                started=state["started"] or slot.get("started"),
                finished=state["finished"] or now(), report_rows=report_rows(folder))
    return True


def reconcile(root, record):
    """The record as it stands when its supervisor is gone (killed, host rebooted): slots it
    left ``running`` are settled from their containers. A live supervisor's record is
    returned as it is."""
    if supervisor_alive(record):
        return record
    slots = record.get("slots") or {}
    running = {name: slot for name, slot in slots.items() if slot.get("state") == "running"}
    if running:
        states = container_states([slot["container"] for slot in running.values()])
        for name, slot in running.items():
            settle(slot, states.get(slot["container"]), os.path.join(root, name))
    return record


class Supervisor:
    """Starts the record's waves one after another and keeps the record up to date."""

    def __init__(self, root, clock=time.time, sleep=time.sleep, poll_s=POLL_S):
        self.root = root
        self.clock = clock
        self.sleep = sleep
        self.poll_s = poll_s
        self.record = read_record(root)
        self.stopping = False
        self.written = 0.0
        self.servers = {}

    def log(self, text):
        sys.stdout.write(f"{now()} {text}\n")
        sys.stdout.flush()

    def save(self, force=True):
        if force or self.clock() - self.written >= HEARTBEAT_S:
            write_record(self.root, self.record)
            self.written = self.clock()

    def run(self):
        """Every wave in turn; the record ends ``done`` (or ``stopped`` on SIGTERM)."""
        self.record["supervisor"] = {"pid": os.getpid(), "boot_id": boot_id(),
                                     "process_start": process_start(os.getpid()),
                                     "started": now()}
        self.record["state"] = "running"
        self.save()
        waves = self.record.get("waves") or []
        for number, wave in enumerate(waves):
            if self.stopping:
                break
            self.start_wave(wave)
            if number == len(waves) - 1:
                self.remove_token()
            self.wait_wave(wave)
        self.remove_token()
        self.record["state"] = "stopped" if self.stopping else "done"
        self.record["ended"] = now()
        self.save()
        self.log("supervisor " + self.record["state"])

    def remove_token(self):
        # Every container has started and read it; a bind mount keeps the file for one that
        # opens it later. It must not wait on the host for hours of benchmarks.
        token = self.record.get("token")
        if token:
            with contextlib.suppress(FileNotFoundError):
                os.remove(token)
            self.record["token"] = ""
            self.save()

    def start_wave(self, wave):
        for name in wave:
            slot = self.record["slots"][name]
            if slot["state"] != "created" or self.stopping:
                continue
            code, _out, err = docker(["start", slot["container"]], timeout=300)
            if code != 0:
                slot.update(state="failed-start", error=err.strip()[-500:], finished=now())
                self.log(f"{name}: docker start failed: {err.strip()}")
            else:
                slot.update(state="running", started=now())
                self.log("{}: started {}".format(name, slot["container"]))
            self.save()

    def server_overdue(self, name):
        """True when the vLLM server slot ``name`` started has not come up in time."""
        limit = int(self.record.get("serving_start_timeout_s") or 0)
        if not limit:
            return False
        watch = self.servers.get(name)
        if watch is None:
            watch = self.servers[name] = ServerStartWatch(
                os.path.join(self.root, name, SLOT_LOG))
        now = self.clock()
        watch.look(now)
        return watch.overdue(now, limit)

    def wait_wave(self, wave):
        """Until every running slot of the wave has ended; kills those past the timeout and
        those whose vLLM server did not come up in time."""
        timeout = int(self.record.get("timeout_s") or 0)
        while not self.stopping:
            running = [n for n in wave if self.record["slots"][n]["state"] == "running"]
            if not running:
                return
            containers = [self.record["slots"][n]["container"] for n in running]
            try:
                states = container_states(containers)
            except OSError as exc:
                # A Docker engine restarting (or hung) is no reason to abandon the run: its
                # slots are looked at again once it answers, and the record says why meanwhile.
                self.engine_unanswered(str(exc))
                self.sleep(self.poll_s)
                continue
            if self.record.pop("engine_error", None):
                self.log("the Docker engine answers again")
                self.save()
            changed = False
            for name in running:
                slot = self.record["slots"][name]
                state = states.get(slot["container"])
                if settle(slot, state, os.path.join(self.root, name)):
                    self.log(f"{name}: {slot['state']} {slot['exit_code']}")
                    changed = True
                elif timeout and self.clock() - (_epoch(slot["started"]) or self.clock()) > timeout:
                    docker(["kill", slot["container"]])
                    slot["timed_out"] = True
                    self.log(f"{name}: killed after the {timeout}s timeout")
                    changed = True
                elif not slot.get("server_start_timed_out") and self.server_overdue(name):
                    # The slot's other waves, and the host's, go on without it.
                    docker(["kill", slot["container"]])
                    slot["server_start_timed_out"] = True
                    self.log("{}: killed: its vLLM server was not up within {}s".format(
                        name, self.record.get("serving_start_timeout_s")))
                    changed = True
            self.save(force=changed)
            if changed:
                continue
            self.sleep(self.poll_s)

    def engine_unanswered(self, error):
        """Note (once per outage) that the engine does not answer; the heartbeat goes on."""
        if not self.record.get("engine_error"):
            self.record["engine_error"] = {"since": now(), "error": error[-500:]}
            self.log(error)
            self.save()
        else:
            self.save(force=False)

    def stop(self, signum=None, frame=None):
        """SIGTERM: start nothing more (clean-up removes the containers)."""
        self.stopping = True


def supervise(root):
    """Run the supervisor of the record in ``root`` (in the current process)."""
    supervisor = Supervisor(root)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    supervisor.run()


def launch(root, wait_s=10.0):
    """Start the supervisor of ``root``'s record detached (double fork, own session), with
    its output in ``root/supervisor.log``; returns its pid once it has written the record.

    Nothing of the caller's is kept open in it: the SSH session that ran the module ends
    at once, and the supervisor lives on without it.
    """
    log_path = os.path.join(root, LOG)
    first = os.fork()
    if first == 0:
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.closerange(3, 65536)
            sys.stdout = os.fdopen(1, "w")
            sys.stderr = os.fdopen(2, "w")
            supervise(root)
        except BaseException as exc:
            try:
                sys.stderr.write(f"supervisor failed: {exc!r}\n")
                sys.stderr.flush()
            finally:
                os._exit(1)
        os._exit(0)
    os.waitpid(first, 0)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        supervisor = read_record(root).get("supervisor") or {}
        if supervisor.get("pid"):
            return supervisor["pid"]
        time.sleep(0.05)
    return None


def stop_supervisor(root, wait_s=10.0):
    """SIGTERM the supervisor of ``root``'s record if it is alive; True when one was."""
    record = read_record(root)
    pid = (record.get("supervisor") or {}).get("pid")
    if not pid or not supervisor_alive(record) or not _is_supervisor(record):
        return False
    try:
        os.kill(int(pid), signal.SIGTERM)
    except OSError:
        return False
    deadline = time.time() + wait_s
    while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
        if read_record(root).get("state") != "running":
            break
        time.sleep(0.1)
    return True


def process_start(pid):
    """When ``pid`` started (clock ticks since boot, /proc/<pid>/stat), None when gone:
    with the boot id, it tells the supervisor from a later process that got its pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are plain.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _is_supervisor(record):
    supervisor = record.get("supervisor") or {}
    pid = supervisor.get("pid")
    return bool(pid) and process_start(pid) == supervisor.get("process_start")


def slot_results(record, timeout_s=None):
    """The record's slots as results ({name, status, summary, …}), the host's word.

    ``status`` says how the slot ended on the host, never whether it measured anything
    (MAD's script exits 0 when every vLLM call failed): ``exited``, ``failed:timeout``,
    ``failed:server-start`` (killed: its vLLM server was not up in time),
    ``failed:start``, ``failed:lost``, ``failed:interrupted`` (never started: the run was
    stopped), or ``running``.
    """
    timeout_s = timeout_s or record.get("timeout_s")
    serving_start_s = record.get("serving_start_timeout_s")
    results = []
    for name, slot in sorted((record.get("slots") or {}).items()):
        state = slot.get("state")
        rows = slot.get("report_rows")
        found = "" if rows is None else "; {} report row{} on the host".format(
            rows, "" if rows == 1 else "s")
        if state == "exited" and slot.get("timed_out"):
            status = "failed:timeout"
            summary = f"{name} killed after the {timeout_s}s timeout{found}"
        elif state == "exited" and slot.get("server_start_timed_out"):
            status = "failed:server-start"
            summary = (f"{name} killed: its vLLM server was not up within "
                       f"{serving_start_s}s{found} (see {name}/benchmark.log)")
        elif state == "exited":
            status = "exited"
            summary = "{} exited {}{}{} (see {}/benchmark.log)".format(
                name, slot.get("exit_code"),
                " (killed for lack of memory)" if slot.get("oom_killed") else "", found, name)
        elif state == "failed-start":
            status, summary = "failed:start", "{} did not start: {}".format(
                name, slot.get("error") or "docker start failed")
        elif state == "lost":
            status, summary = "failed:lost", "{}: {}".format(
                name, slot.get("error") or "its container vanished before it ended")
        elif state == "created":
            status, summary = "failed:interrupted", f"{name} never started (the run was stopped)"
        else:
            status, summary = "running", "{} runs since {}".format(name, slot.get("started"))
        entry = {key: slot.get(key) for key in (
            "container", "index", "hip_visible_devices", "exit_code", "started", "finished",
            "report_rows")}
        entry.update(name=name, status=status, summary=summary,
                     oom_killed=bool(slot.get("oom_killed")),
                     timed_out=bool(slot.get("timed_out")),
                     server_start_timed_out=bool(slot.get("server_start_timed_out")),
                     serving_start_timeout_s=serving_start_s)
        results.append(entry)
    return results
