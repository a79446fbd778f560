"""How a benchmark slot ended, judged from what it left behind, never from an exit code alone.

ROCm/MAD's ``vllm_benchmark_report.sh`` (eras A-D) runs one vLLM call per benchmark point
and goes on when a call fails; its exit status is that of its last command (``mv`` of the
perf file in eras B-D). So every point can fail and the script still exits 0 (with a
1-byte perf file), and it exits 1 when only the perf file's move failed although every
report was written. A slot is therefore judged from its collected files:

``ok``
    its reports parse and hold a value for every point of every scenario it was asked
    to run;
``failed:no-results``
    nothing usable: no measured point, or a report that cannot be read;
``failed:partial``
    some points measured, others missing or failed (the summary says which);
``failed:timeout``
    the slot was killed at the timeout, whatever it wrote before;
``failed:server-start``
    the slot was killed because the vLLM server it started for serving did not come up
    within the serving start timeout (the host's supervisor tells it from the log); the
    summary ends with the last lines the server logged.

Which scenarios ``-s all`` runs depends on MAD's era: latency and throughput in eras A-C,
and serving too in era D. Serving is expected when the slot shows it is of an era that
runs it (the log announces a serving sweep or a report holds serving rows).

How many points a scenario has is read from ``benchmark.log``: the script echoes
``<model> <scenario> <numbers…>`` before each point (every era of the report script), and
MAD's ``run_vllm.py`` (the run.sh layout) prints each ``vllm bench …`` command before it
runs it, so the log lists the points started even when vLLM failed on them. Without such
lines only the reports' own rows count.

The exit code, a container killed for memory and a timeout stay recorded beside the
verdict and are named in the summary, with the first failure signature of the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.reports.parse import MalformedReport, slot_reports
from fleetbench.reports.records import SCENARIOS, Record, latest_per_configuration
from fleetbench.secrets import Secret

OK = "ok"
NO_RESULTS = "failed:no-results"
PARTIAL = "failed:partial"
TIMEOUT = "failed:timeout"
SERVER_START = "failed:server-start"

LOG_NAME = "benchmark.log"
#: A slot's folder under its host's folder: ``slot0``, ``slot1``, …
SLOT_FOLDER = re.compile(r"slot\d+")
# A summary names one log line, not a page of it.
SIGNATURE_LIMIT = 160

# `echo $model $mode $bat $tp $inp $out` (serving adds max_concurrency) before each point.
_POINT_LINE = re.compile(
    r"^[^\s/]+/\S+ (?P<scenario>latency|throughput|serving)(?: \d+){4,5}[ \t]*\r?$",
    re.MULTILINE,
)
# MAD's run_vllm.py (run.sh layout, late 2025 on) prints each point's vLLM command first.
_BENCH_LINE = re.compile(
    r"^(?:\S+=\S+ )*vllm bench (?P<kind>latency|throughput|serve) ", re.MULTILINE)
_BENCH_SCENARIO = {"latency": "latency", "throughput": "throughput", "serve": "serving"}
# The section headers of the script: `echo "[INFO] LATENCY"` and so on.
_SECTION_LINE = re.compile(r"^\[INFO\] (?P<scenario>LATENCY|THROUGHPUT|SERVING)\b", re.MULTILINE)
# What a failing vLLM call, the HIP runtime or the shell leave in a log, in the words
# they use; a Python traceback is read to its end (its exception line).
_SIGNATURE = re.compile(
    r"Traceback \(most recent call last\)|hipErrorOutOfMemory|HIP error|OutOfMemoryError"
    r"|out of memory|Failed to connect|CUDA error|ModuleNotFoundError|command not found"
    r"|\bKilled\b"
)
_TRACEBACK = "Traceback (most recent call last)"
_CHAINED = ("The above exception was the direct cause of the following exception:",
            "During handling of the above exception, another exception occurred:")
# `module.ExceptionType: message` or a bare `ExceptionType`.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?::(?:\s.*)?)?$")
# vLLM prefixes its worker processes' output, e.g. "(VllmWorkerProcess pid=123) ".
_PROCESS_PREFIX = re.compile(r"^\([\w.-]+ pid=\d+\) ")
# Lines a traceback's exception message may run on for before a chained traceback.
_CHAIN_WINDOW = 20
# Lines between a traceback's header and its exception line (frames, code, carets).
_FRAME_WINDOW = 400
# A vLLM server starting (the host's supervisor watches for the same lines:
# module_utils/fleetbench_slots.py SERVER_STARTS): its log is what follows.
_SERVER_START = re.compile(r"^(?:\+ )?(?:[A-Za-z_][A-Za-z0-9_]*=\S* )*vllm serve\b"
                           r"|vLLM API server version\b", re.MULTILINE)
# The server answering (module_utils/fleetbench_slots.py SERVER_UP).
_SERVER_UP = re.compile(r"Starting vLLM API server\b|Application startup complete"
                        r"|Uvicorn running on\b")
#: Lines of a server's log a summary ends with.
SERVER_TAIL_LINES = 5
# What looks like a secret in a log line: a Hugging Face token, a secret-named assignment,
# a bearer token.
_SECRET_LOOKING = (
    (re.compile(r"\bhf_[A-Za-z0-9]{8,}"), "hf_********"),
    (re.compile(r"\b([A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|API_KEY)[A-Z0-9_]*=)\S+"),
     r"\1********"),
    (re.compile(r"\b(Bearer\s+)\S+"), r"\1********"),
)


@dataclass(frozen=True)
class ScenarioPoints:
    """The points of one scenario: measured, failed in the reports, and planned.

    ``planned`` is how many points the log shows the script started (None when the log
    does not say); never fewer than the reports hold.
    """

    scenario: str
    measured: int
    failed: int = 0
    planned: int | None = None

    @property
    def expected(self) -> int:
        """How many points the scenario should have as far as the files tell."""
        return max(self.planned or 0, self.measured + self.failed)

    @property
    def complete(self) -> bool:
        """True when every expected point holds values."""
        return self.measured > 0 and self.measured >= self.expected

    def describe(self) -> str:
        """``throughput: 2 of 4 points (1 failed measurement)`` and the like."""
        if self.expected == 0:
            return f"{self.scenario}: no results"
        failed = (f" ({self.failed} failed measurement{'s' if self.failed != 1 else ''})"
                  if self.failed else "")
        return f"{self.scenario}: {self.measured} of {self.expected} points{failed}"


@dataclass(frozen=True)
class SlotVerdict:
    """A slot's status (``ok``, ``failed:no-results``, ``failed:partial``, ``failed:timeout``)
    and a one-line summary of why."""

    status: str
    summary: str

    @property
    def ok(self) -> bool:
        """True when the slot's results are complete."""
        return self.status == OK


@dataclass(frozen=True)
class SlotFiles:
    """What one slot left in its collected folder: its report records and its log.

    ``unreadable`` is the parser's message when a report file cannot be read (then
    ``records`` is empty); ``log`` is None when there is no ``benchmark.log``.
    """

    records: tuple[Record, ...] = ()
    log: str | None = None
    unreadable: str | None = None


# --- reading the log -----------------------------------------------------------------------


def planned_points(log: str) -> dict[str, int]:
    """Points per scenario the script started, from its ``<model> <scenario> <n…>`` lines."""
    counts: dict[str, int] = {}
    for match in _POINT_LINE.finditer(log):
        counts[match["scenario"]] = counts.get(match["scenario"], 0) + 1
    if not counts:  # the run.sh layout: `vllm bench <kind> …` lines
        for match in _BENCH_LINE.finditer(log):
            scenario = _BENCH_SCENARIO[match["kind"]]
            counts[scenario] = counts.get(scenario, 0) + 1
    return counts


def announced_scenarios(log: str) -> set[str]:
    """Scenarios whose sweep the log announces (``[INFO] SERVING`` and the like)."""
    return {match["scenario"].lower() for match in _SECTION_LINE.finditer(log)}


def failure_signature(log: str) -> str | None:
    """The first failure the log shows, as one trimmed line; None when it shows none.

    A Python traceback gives its exception line (the last one of a chain of tracebacks),
    anything else the line that names the failure (a HIP error, out of memory, a failed
    connection, a missing command, a killed process).
    """
    match = _SIGNATURE.search(log)
    if match is None:
        return None
    start = log.rfind("\n", 0, match.start()) + 1
    if match.group() != _TRACEBACK:
        end = log.find("\n", match.end())
        return _trim(log[start:] if end < 0 else log[start:end])
    lines = log[start:].split("\n", _FRAME_WINDOW * 4)[: _FRAME_WINDOW * 4]
    return _trim(_traceback_exception(lines) or lines[0])


def _traceback_exception(lines: Sequence[str]) -> str | None:
    """The exception line ending the traceback that starts at ``lines[0]`` (chains
    followed to their last traceback); None when it is not there."""
    found: str | None = None
    index = 0
    while index < len(lines):
        exception_at = _exception_line(lines, index + 1)
        if exception_at is None:
            return found
        found = _clean(lines[exception_at])
        chained_at = _chained_traceback(lines, exception_at + 1)
        if chained_at is None:
            return found
        index = chained_at
    return found


def _exception_line(lines: Sequence[str], begin: int) -> int | None:
    for index in range(begin, min(len(lines), begin + _FRAME_WINDOW)):
        line = _clean(lines[index])
        if not line or line[0].isspace():
            continue  # a frame, its code, carets, or a blank line
        if _TRACEBACK in line:
            return None  # another traceback began before this one ended
        if _EXCEPTION_LINE.match(line.strip()):
            return index
    return None


def _chained_traceback(lines: Sequence[str], begin: int) -> int | None:
    """Where the next traceback of a chain starts, when ``begin`` follows an exception line
    that the chain goes on from."""
    chained = False
    for index in range(begin, min(len(lines), begin + _CHAIN_WINDOW)):
        line = _clean(lines[index]).strip()
        if line in _CHAINED:
            chained = True
        elif _TRACEBACK in line:
            return index if chained else None
    return None


def _clean(line: str) -> str:
    # A progress bar rewrites its line with \r: the text after the last one is what shows.
    line = line.rstrip("\r").rsplit("\r", 1)[-1]
    return _PROCESS_PREFIX.sub("", line)


def _trim(line: str) -> str:
    text = " ".join(_clean(line).split())
    return text if len(text) <= SIGNATURE_LIMIT else text[: SIGNATURE_LIMIT - 1] + "…"


def mask_secrets(text: str, secrets: Iterable[Secret] = ()) -> str:
    """``text`` with ``secrets`` and anything that looks like a token masked."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, "********")
    for pattern, replacement in _SECRET_LOOKING:
        text = pattern.sub(replacement, text)
    return text


def server_log_tail(log: str, lines: int = SERVER_TAIL_LINES) -> list[str]:
    """The last ``lines`` non-blank lines of the log from the start of the vLLM server that
    never came up (the first start after the last server that did; the whole log when it
    shows none), each trimmed to one summary line."""
    shown = [_clean(line) for line in log.splitlines() if _clean(line).strip()]
    begin = 0
    for index, line in enumerate(shown):
        if _SERVER_UP.search(line):
            begin = index + 1
        elif _SERVER_START.search(line) and begin <= index and not _started(shown, begin, index):
            begin = index
    return [_trim(line) for line in shown[begin:]][-lines:]


def _started(lines: Sequence[str], begin: int, index: int) -> bool:
    """True when a server start shows in ``lines[begin:index]``."""
    return any(_SERVER_START.search(line) for line in lines[begin:index])


# --- counting results ----------------------------------------------------------------------


def count_points(records: Iterable[Record]) -> dict[str, tuple[int, int]]:
    """``{scenario: (measured, failed)}``: points whose every metric holds a value, and
    points with a failed measurement (a value that is empty or NaN in the report)."""
    points: dict[tuple[object, ...], bool] = {}
    scenario_of: dict[tuple[object, ...], str] = {}
    for record in latest_per_configuration(records):
        point = record.configuration[:-1]  # everything but the metric
        points[point] = points.get(point, True) and record.value is not None
        scenario_of[point] = record.scenario
    counts: dict[str, tuple[int, int]] = {}
    for key, measured in points.items():
        done, failed = counts.get(scenario_of[key], (0, 0))
        counts[scenario_of[key]] = (done + measured, failed + (not measured))
    return counts


def expected_scenarios(requested: str, shown: Iterable[str] = ()) -> tuple[str, ...]:
    """The scenarios a slot run with ``-s requested`` must have results for.

    ``all`` is latency and throughput, and serving where ``shown`` (the scenarios the
    slot's log or reports show) says the MAD era runs it (era D).
    """
    if requested in SCENARIOS:
        return (requested,)
    if requested != "all":
        raise ValueError(f"scenario {requested!r} is not one of {(*SCENARIOS, 'all')}")
    return ("latency", "throughput", *(("serving",) if "serving" in set(shown) else ()))


def scenario_points(requested: str, files: SlotFiles) -> list[ScenarioPoints]:
    """Measured, failed and planned points of every scenario the slot had to run."""
    counts = count_points(files.records)
    planned = planned_points(files.log) if files.log else {}
    shown = {*counts, *planned, *(announced_scenarios(files.log) if files.log else ())}
    return [ScenarioPoints(scenario, *counts.get(scenario, (0, 0)), planned.get(scenario))
            for scenario in expected_scenarios(requested, shown)]


# --- the verdict ---------------------------------------------------------------------------


def judge_slot(requested: str, files: SlotFiles, *, exit_code: int | None = None,
               timed_out: bool = False, oom_killed: bool = False,
               timeout_s: int | None = None, collected: bool = True,
               server_start_timed_out: bool = False, serving_start_timeout_s: int | None = None,
               secrets: Iterable[Secret] = ()) -> SlotVerdict:
    """Judge one slot from its files; the exit code, OOM kill and timeout only explain.

    ``requested`` is the scenario the slot was asked to run (``--scenario``);
    ``collected`` False says the host's files never reached the controller;
    ``server_start_timed_out`` says the host killed the slot because its vLLM server was
    not up within ``serving_start_timeout_s``: the summary then ends with the last lines
    the server logged, ``secrets`` and anything that looks like a token masked.
    """
    points = scenario_points(requested, files)
    measured = sum(p.measured for p in points)
    if server_start_timed_out and not timed_out:
        within = (f" within {serving_start_timeout_s}s" if serving_start_timeout_s
                  else " in time")
        found = [f"the vLLM server was not up{within}, the slot was killed",
                 *(p.describe() for p in points)]
        tail = server_log_tail(files.log) if files.log else []
        if tail:
            found.append("last lines of its log: "
                         + mask_secrets(" | ".join(tail), secrets))
        elif files.log is None:
            found.append(f"no {LOG_NAME}" if collected else "nothing was collected from the host")
        return SlotVerdict(SERVER_START, "; ".join(found))
    if timed_out:
        status = TIMEOUT
        head = f"killed after the {timeout_s}s timeout" if timeout_s else "killed at the timeout"
        found = [head, *(p.describe() for p in points)]
    elif files.unreadable is not None:
        status, found = NO_RESULTS, [f"a report cannot be read: {files.unreadable}"]
    elif measured == 0:
        status, found = NO_RESULTS, [p.describe() for p in points]
    elif not all(p.complete for p in points):
        status, found = PARTIAL, [p.describe() for p in points if not p.complete]
    else:
        status, found = OK, [p.describe() for p in points]
    notes: list[str] = []
    if exit_code is not None and (exit_code != 0 or status != OK) and not timed_out:
        notes.append(f"the script exited {exit_code}"
                     + (" with every report written" if status == OK else ""))
    if oom_killed:
        notes.append("the container was killed for lack of memory")
    if not collected:
        notes.append("nothing was collected from the host")
    elif files.log is None:
        notes.append(f"no {LOG_NAME}")
    elif status != OK or notes:
        signature = failure_signature(files.log)
        if signature:
            notes.append(f"log shows: {signature}")
    return SlotVerdict(status, "; ".join([*found, *notes]))


def read_slot(folder: Path) -> SlotFiles:
    """The report records and ``benchmark.log`` of one collected slot folder."""
    log_path = folder / LOG_NAME
    try:
        log: str | None = log_path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        log = None
    if not folder.is_dir():
        return SlotFiles(log=log)
    try:
        parsed = slot_reports(folder)
    except MalformedReport as exc:
        return SlotFiles(log=log, unreadable=str(exc))
    return SlotFiles(records=tuple(r for _, records in parsed for r in records), log=log)


def judge_slots(host_dir: Path, slots: Mapping[str, Mapping[str, Any]], requested: str, *,
                timeout_s: int | None = None, collected: bool = True,
                secrets: Iterable[Secret] = ()) -> dict[str, dict[str, Any]]:
    """The slots' manifest entries, each slot that ran judged from its folder under
    ``host_dir``: ``status`` and ``summary`` become the verdict's, the rest is kept.

    Slots that never started (``skipped:…``) are kept as they are.
    """
    judged: dict[str, dict[str, Any]] = {}
    for name, entry in slots.items():
        started = not str(entry.get("status") or "").startswith("skipped")
        if not started or not SLOT_FOLDER.fullmatch(name):
            judged[name] = dict(entry)
            continue
        exit_code = entry.get("exit_code")
        verdict = judge_slot(
            requested, read_slot(host_dir / name) if collected else SlotFiles(),
            exit_code=exit_code if isinstance(exit_code, int) else None,
            timed_out=bool(entry.get("timed_out")), oom_killed=bool(entry.get("oom_killed")),
            timeout_s=timeout_s, collected=collected,
            server_start_timed_out=bool(entry.get("server_start_timed_out")),
            serving_start_timeout_s=_int_or_none(entry.get("serving_start_timeout_s")),
            secrets=secrets)
        judged[name] = {**entry, "status": verdict.status, "summary": verdict.summary}
    return judged


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def failed_slots_reason(slots: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why a host's benchmark failed, from its slots' entries; None when every slot is ok.

    Slots that failed alike (same status and summary) are named together.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for name, slot in slots.items():
        status = str(slot.get("status") or "unknown")
        if status != OK:
            groups.setdefault((status, str(slot.get("summary") or "")), []).append(name)
    if not groups:
        return None
    failed = sum(len(names) for names in groups.values())
    parts = [f"{', '.join(names)} {status}" + (f" ({summary})" if summary else "")
             for (status, summary), names in groups.items()]
    counted = f"{failed} of {len(slots)} slot{'s' if len(slots) != 1 else ''} not ok"
    return f"{counted}: {'; '.join(parts)}"
