"""The full `fleetbench run` (zero-length stand-in benchmark): round trips and wall time per host.

`fleetbench run --scenario latency` on N lab hosts with `--slots 1` and `--slots 8` (the
lab's stand-in benchmark is near-instant), run in this process so that every task result
of run.yml and cleanup.yml can be counted from the runner's events. Two counts per host:

- remote task results: task results that executed on the host (controller-only actions
  such as set_fact, include_tasks, meta, fail, validate_argument_spec and skipped tasks are
  left out; each item of a loop is one);
- SSH operations: every ssh/sftp/scp process Ansible started for the host (ssh, sftp and
  scp are wrapped by a script that logs them), i.e. the real round trips, file transfers
  included.

Usage::

    /work/venv/bin/python bench/pipeline.py [--hosts 10] [--slots 1,8] [--lab DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the bench folder is not a package
    BIN,
    DEFAULT_LAB_DIR,
    ColdConnections,
    Lab,
    Machine,
    Section,
    ansible_env,
    command_line,
    fmt,
    log,
    median,
    record,
    timed,
    verdict,
)
from fanout import raw_true

GOAL = 8
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# Actions that never leave the controller.
CONTROLLER_ONLY = {
    "set_fact", "include_tasks", "import_tasks", "include_role", "import_role", "meta",
    "fail", "assert", "debug", "validate_argument_spec", "add_host", "group_by", "pause",
    "include_vars", "set_stats",
}
WRAPPER = """#!/bin/sh
printf "%s %s\\n" "{tool}" "$(printf "%s " "$@" | tr "\\n" " ")" >> {log}
exec {real} "$@"
"""


def short_action(action: str) -> str:
    """``ansible.builtin.set_fact`` -> ``set_fact``."""
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def remote_count(result: Any) -> int:
    """How many times one task result executed on its host (0: controller only/skipped)."""
    if result.outcome == "skipped" or short_action(result.action) in CONTROLLER_ONLY:
        return 0
    items = result.result.get("results")
    if isinstance(items, list):
        return sum(1 for item in items
                   if isinstance(item, dict) and not item.get("skipped"))
    return 1


@contextlib.contextmanager
def ssh_counter(folder: Path) -> Iterator[Path]:
    """Log every ssh/sftp/scp process Ansible starts; yields the log."""
    log_file = folder / "ssh.log"
    log_file.touch()
    wrappers = folder / "bin"
    wrappers.mkdir()
    env = {}
    for tool in ("ssh", "sftp", "scp"):
        script = wrappers / tool
        script.write_text(WRAPPER.format(tool=tool, log=log_file, real=f"/usr/bin/{tool}"))
        script.chmod(0o755)
        env[f"ANSIBLE_{tool.upper()}_EXECUTABLE"] = str(script)
    with patched_environ(env):
        yield log_file


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` for the duration (ansible-runner inherits it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def ssh_ops(log_file: Path, addresses: dict[str, str]) -> Counter[str]:
    """SSH operations per host name from the wrapper log."""
    by_address = {a: n for n, a in addresses.items()}
    counts: Counter[str] = Counter()
    for line in log_file.read_text().splitlines():
        for token in line.split():
            name = by_address.get(token.strip("[]'\""))
            if name:
                counts[name] += 1
                break
    return counts


def run_once(lab: Lab, count: int, slots: int, work: Path,
             forks: int | None = None) -> dict[str, Any]:
    """One `fleetbench run` in this process; counts and times per host.

    ``forks`` overrides the number of parallel hosts fleetbench asks Ansible for.
    """
    import fleetbench.run as runs
    from fleetbench.cli import main as fleetbench_main
    from fleetbench.runner import TaskResult

    captured: list[TaskResult] = []
    original = runs.run_playbook

    def counting(playbook: str, inventory: Path, **kwargs: Any) -> Any:
        chained: Callable[[TaskResult], None] | None = kwargs.pop("on_result", None)
        if forks is not None:
            kwargs["forks"] = forks

        def on_result(result: TaskResult) -> None:
            captured.append(result)
            if chained is not None:
                chained(result)

        return original(playbook, inventory, on_result=on_result, **kwargs)

    argv = ["run", "-i", str(lab.inventory), "--limit", lab.limit(count), "--model", MODEL,
            "--gpus", "8", "--scenario", "latency", "--slots", str(slots),
            "--runs-dir", str(work / "runs"), "--history", str(work / "history.sqlite"),
            "--json"]
    connections = ColdConnections()
    out, err = io.StringIO(), io.StringIO()
    env = {k: v for k, v in ansible_env(connections.env).items()
           if k in {"ANSIBLE_SSH_CONTROL_PATH_DIR", "PATH"}}
    # The gated model needs a token; the stand-in benchmark never uses it.
    env["HF_TOKEN"] = "hf_bench_not_a_real_token"  # noqa: S105
    runs.run_playbook = counting
    try:
        with ssh_counter(work) as ssh_log, patched_environ(env), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            start = time.perf_counter()
            code = fleetbench_main(argv)
            wall = time.perf_counter() - start
    finally:
        runs.run_playbook = original
        connections.close()
    if code != 0:
        raise SystemExit(f"fleetbench run exited {code}:\n{out.getvalue()[-2000:]}\n"
                         f"{err.getvalue()[-3000:]}")
    summary = json.loads(out.getvalue())
    hosts = lab.names[:count]
    tasks = Counter[str]()
    spans: dict[str, list[datetime.datetime]] = {}
    for result in captured:
        tasks[result.host] += remote_count(result)
        for stamp in (result.start, result.end):
            if stamp:
                spans.setdefault(result.host, []).append(
                    datetime.datetime.fromisoformat(stamp))
    ops = ssh_ops(ssh_log, {h: lab.addresses[h] for h in hosts})
    per_host_span = [(max(spans[h]) - min(spans[h])).total_seconds() for h in hosts
                     if h in spans]
    by_task = Counter[str]()
    durations: dict[str, list[float]] = {}
    for result in captured:
        label = f"{result.role or '-'}: {result.task}"
        if result.host == hosts[0] and remote_count(result):
            by_task[label] += remote_count(result)
        if result.start and result.end:
            seconds = (datetime.datetime.fromisoformat(result.end)
                       - datetime.datetime.fromisoformat(result.start)).total_seconds()
            durations.setdefault(label, []).append(seconds)
    return {
        "wall": wall, "statuses": summary.get("statuses"),
        "tasks": median([tasks[h] for h in hosts]),
        "ssh": median([ops[h] for h in hosts]),
        "span": median(per_host_span) if per_host_span else 0.0,
        "by_task": by_task,
        "durations": {k: median(v) for k, v in durations.items()},
    }


def run(lab: Lab, count: int, slot_counts: list[int], machine: Machine) -> Section:
    """Both slot counts, each next to a raw `true` baseline; the RESULTS.md section."""
    rows, notes = [], []
    for slots in slot_counts:
        log(f"pipeline N={count} slots={slots}: raw true, then fleetbench run")
        baseline = timed("raw", raw_true(lab, count), lab)
        with tempfile.TemporaryDirectory(prefix="fb-bench-run-") as tmp:
            got = run_once(lab, count, slots, Path(tmp))
        for label, seconds in got["durations"].items():
            log(f"    {seconds:6.2f} s  {label}")
        log(f"  run: {got['wall']:.1f} s, {got['tasks']:.0f} remote tasks/host, "
            f"{got['ssh']:.0f} SSH ops/host, statuses {got['statuses']}")
        per_slot_tasks = got["tasks"] / slots
        per_slot_ssh = got["ssh"] / slots
        rows.append((
            f"{count} (slots {slots})", fmt(baseline.wall), fmt(got["wall"], 1),
            fmt(got["wall"] / baseline.wall, 1), f"≤ {GOAL} round trips/host/slot",
            # The measure: remote tasks from the runner's events. SSH ops add the
            # archive's sftp transfer inside collect's one task (shown, not judged).
            verdict(per_slot_tasks <= GOAL),
            f"{got['tasks']:.0f} / {fmt(per_slot_tasks, 1)}",
            f"{got['ssh']:.0f} / {fmt(per_slot_ssh, 1)}",
            fmt(got["span"], 1), fmt(got["wall"] / count, 2),
            machine.date, machine.label, machine.commit,
        ))
        notes.append(f"slots {slots}, remote tasks of {lab.names[0]}: " + ", ".join(
            f"{name} ×{n}" if n > 1 else name for name, n in got["by_task"].items()))
    return Section(
        key="pipeline",
        title="Full pipeline: `fleetbench run --scenario latency` (zero-length stand-in benchmark)",
        command=command_line(),
        columns=("N", "baseline: raw true (s)", "measured: run wall (s)", "ratio", "goal",
                 "met?", "remote tasks/host (per slot)", "SSH ops/host (per slot)",
                 "host span median (s)", "wall/host (s)", "date", "machine", "commit"),
        rows=tuple(rows),
        notes=(
            "run.yml, cleanup.yml on the hosts collect did not clean up (none when all went "
            "well), and the report build at the end; cold SSH connections.",
            "remote tasks (the goal's round trips): task results that ran on the host "
            "(controller-only actions and skipped tasks left out, loop items counted). SSH "
            "ops: ssh/sftp/scp processes Ansible started for the host, file transfers "
            "included (collect's archive comes back by sftp within its one task).",
            *notes,
        ),
    )


def lab_set(lab: Lab, hosts: list[str], *settings: str) -> None:
    """``fleetbench lab set`` on every one of ``hosts``."""
    for host in hosts:
        subprocess.run([str(BIN / "fleetbench"), "lab", "set", "--dir", str(lab.root), host,
                        *settings], check=True, capture_output=True, timeout=60)


def forks_below_hosts(lab: Lab, count: int, per_point: int, machine: Machine) -> Section:
    """A benchmark holds one Ansible worker per host for its whole length: with fewer forks
    than hosts, the hosts beyond the forks start theirs only when one has finished."""
    hosts = lab.names[:count]
    lab_set(lab, hosts, "bench=slow", f"slow_s={per_point}")
    try:
        got = {}
        for forks in (count, count // 2):
            log(f"forks: {count} hosts, slow benchmark ({per_point} s per point), forks {forks}")
            with tempfile.TemporaryDirectory(prefix="fb-bench-run-") as tmp:
                got[forks] = run_once(lab, count, 1, Path(tmp), forks=forks)
            log(f"  {got[forks]['wall']:.1f} s")
    finally:
        lab_set(lab, hosts, "bench=ok", "slow_s=2")
    full, half = got[count]["wall"], got[count // 2]["wall"]
    bench_s = next(v for k, v in got[count]["durations"].items() if "Wait for the wave" in k)
    extra = half - full
    row = (f"{count}", fmt(full, 1), fmt(half, 1), fmt(half / full), f"forks = hosts ({count})",
           "—", f"{extra:.0f} s = {extra / bench_s:.1f} × the {bench_s:.0f} s benchmark",
           machine.date, machine.label, machine.commit)
    return Section(
        key="forks",
        title="Forks below the host count serialise the benchmark "
              "(`fleetbench run`, one slot, slow stand-in benchmark)",
        command=command_line(),
        columns=("N", "baseline: forks = N (s)", "measured: forks = N/2 (s)", "ratio",
                 "goal", "met?", "extra wall time", "date", "machine", "commit"),
        rows=(row,),
        notes=(
            "The wait for a host's benchmark holds one Ansible worker for the benchmark's "
            "whole length (hours on real hardware), so hosts beyond the fork count run theirs "
            "one after another. `fleetbench run` capped forks at 100, so a 500-host fleet "
            "would have run its benchmarks in 5 consecutive batches; it now asks for one fork "
            "per host (the memory section says what one costs).",
        ),
    )


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10, help="lab hosts (default 10)")
    parser.add_argument("--slots", default="1,8", help="slot counts (default 1,8)")
    parser.add_argument("--forks-demo", type=int, default=1, metavar="SECONDS",
                        help="also run forks = N and N/2 with a slow benchmark of SECONDS per "
                        "point (default 1; 0: skip)")
    parser.add_argument("--lab", type=Path, help="reuse a running lab in this folder")
    args = parser.parse_args()
    machine = Machine.here()
    with Lab(args.lab or DEFAULT_LAB_DIR, args.hosts, reuse=args.lab is not None) as lab:
        record(run(lab, args.hosts, [int(s) for s in args.slots.split(",")], machine))
        if args.forks_demo:
            record(forks_below_hosts(lab, args.hosts, args.forks_demo, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
