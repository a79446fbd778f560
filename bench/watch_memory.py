"""Controller memory while slots run detached: `fleetbench run` at N = 10, 30, 60 hosts.

The benchmark phase is the time between the end of start.yml and the first collect.yml:
every host's slots run on their own, and fleetbench only looks at their records over SSH
(fleetbench.watch, fleetbench.sshpoll). The fleetbench process and every descendant are
sampled every 0.1 s from /proc (sum of Pss, as in memory.py); only samples taken while no
ansible-playbook runs below fleetbench, after start.yml and before the first collect, count.
Goals: PSS at 60 hosts at most 1.3 times PSS at 10, and at most 400 MiB. Usage::

    /work/venv/bin/python bench/watch_memory.py [--sizes 10,30,60] [--reps 1] [--lab DIR]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the bench folder is not a package
    BIN,
    Lab,
    Machine,
    MemoryPeak,
    Section,
    TreeSampler,
    _kib,
    _proc_table,
    command_line,
    fmt,
    log,
    main_over_sizes,
    verdict,
)
from pipeline import lab_set

#: Seconds each engine start of the lab's stand-in vLLM takes: the latency scenario starts
#: eight, so a slot runs about 8 times this, longer than start.yml takes at 60 hosts.
SLOW_S = 15
GOAL_RATIO = 1.3
GOAL_MIB = 400


class WatchPhaseSampler(TreeSampler):
    """Peaks of the tree during the watch: after start.yml ended, before collect.yml began."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.phase = "start"  # start → watch → collect
        self.watch_s = 0.0
        self.whole = MemoryPeak()

    def run(self) -> None:
        since = 0.0
        while not self._halt.is_set():
            table = _proc_table()
            pids = self.tree()
            playbook = any("ansible-playbook" in table.get(p, (0, ""))[1] for p in pids)
            if self.phase == "start" and playbook:
                self.phase = "starting"
            elif self.phase == "starting" and not playbook:
                self.phase, since = "watch", time.monotonic()
            elif self.phase == "watch" and playbook:
                self.phase, self.watch_s = "collect", time.monotonic() - since
            pss = sum(_kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:") for p in pids)
            rss = sum(_kib(Path(f"/proc/{p}/status"), "VmRSS:") for p in pids)
            self.whole.pss_kib = max(self.whole.pss_kib, pss)
            if self.phase == "watch":
                peak = self.peak
                peak.rss_kib, peak.pss_kib = max(peak.rss_kib, rss), max(peak.pss_kib, pss)
                peak.processes = max(peak.processes, len(pids))
                peak.samples += 1
            self._halt.wait(self.interval)


def run_once(lab: Lab, count: int) -> tuple[WatchPhaseSampler, float]:
    """One `fleetbench run` of one slow slot per host on ``count`` hosts, sampled."""
    hosts = lab.names[:count]
    lab_set(lab, hosts, "bench=slow", f"slow_s={SLOW_S}")
    try:
        with tempfile.TemporaryDirectory(prefix="fleetbench-bench-") as tmp:
            command = [str(BIN / "fleetbench"), "run", "-i", str(lab.inventory), "--model",
                       "meta-llama/Llama-3.1-8B-Instruct", "--gpus", "8", "--scenario",
                       "latency", "--slots", "1", "--runs-dir", tmp, "--limit",
                       ",".join(hosts), "--no-report", "--json"]
            start = time.perf_counter()
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, env={**os.environ, "HF_TOKEN": "hf_bench"})
            sampler = WatchPhaseSampler(proc.pid)
            sampler.start()
            _, err = proc.communicate(timeout=1800)
            sampler.stop()
            wall = time.perf_counter() - start
    finally:
        lab_set(lab, hosts, "bench=ok")
    if proc.returncode != 0:
        raise SystemExit(f"run on {count} hosts exited {proc.returncode}:\n{err[-2000:]}")
    if sampler.peak.samples == 0:
        raise SystemExit(f"run on {count} hosts: no sample in the watch phase")
    return sampler, wall


def run(lab: Lab, sizes: list[int], reps: int, machine: Machine) -> Section:
    """Watch-phase peaks per size (the largest of ``reps`` runs); the RESULTS.md section."""
    peaks: dict[int, WatchPhaseSampler] = {}
    for count in sizes:
        for _ in range(reps):
            sampler, wall = run_once(lab, count)
            log(f"watch memory N={count}: PSS {sampler.peak.pss_kib / 1024:.0f} MiB while "
                f"watching ({sampler.watch_s:.0f} s, {sampler.peak.samples} samples), "
                f"{sampler.whole.pss_kib / 1024:.0f} MiB peak of the whole run, {wall:.0f} s")
            if count not in peaks or sampler.peak.pss_kib > peaks[count].peak.pss_kib:
                peaks[count] = sampler
    first = sizes[0]
    base = peaks[first].peak.pss_kib / 1024
    rows = []
    for count in sizes:
        sampler = peaks[count]
        mib = sampler.peak.pss_kib / 1024
        ratio = mib / base
        met = ratio <= GOAL_RATIO and mib <= GOAL_MIB
        rows.append((
            str(count), fmt(base, 0), fmt(mib, 0), fmt(ratio),
            f"≤ {GOAL_RATIO} and ≤ {GOAL_MIB} MiB" if count != first else f"≤ {GOAL_MIB} MiB",
            verdict(met if count != first else mib <= GOAL_MIB), str(sampler.peak.processes),
            fmt(sampler.watch_s, 0), fmt(sampler.whole.pss_kib / 1024, 0),
            machine.date, machine.label, machine.commit))
    largest = sizes[-1]
    per_host = ((peaks[largest].peak.pss_kib - peaks[first].peak.pss_kib) / 1024
                / max(1, largest - first))
    at = {n: base + per_host * (n - first) for n in (500, 5000)}
    return Section(
        key="watch_memory",
        title="Controller memory while slots run detached (`fleetbench run`, watch phase)",
        command=command_line(),
        columns=("N", f"baseline: PSS at N={first} (MiB)", "measured: PSS (MiB)", "ratio",
                 "goal", "met?", "processes", "watch phase (s)", "whole run peak PSS (MiB)",
                 "date", "machine", "commit"),
        rows=tuple(rows),
        notes=(
            f"Projection (linear in the measured {per_host:.2f} MiB per extra host): "
            f"{at[500]:.0f} MiB at 500 hosts, {at[5000]:.0f} MiB at 5,000.",
            "While the slots run, fleetbench holds no Ansible worker and no SSH connection "
            "per host: one thread pool (16) looks at each host's record with a short paramiko "
            "exec and closes the connection; what grows with N is one small record per host.",
            "The whole run's peak is start.yml's (forks = min(N, 50)) or a collect's: "
            "outside the benchmark phase, and bounded by the fork cap, not by N.",
            f"One slot per host, the lab's slow stand-in vLLM ({SLOW_S} s per engine start); "
            "sampled every 0.1 s from /proc (Pss of fleetbench and every descendant).",
        ),
    )


def main() -> int:
    """Command line."""
    return main_over_sizes(__doc__ or "", run, reps=1)


if __name__ == "__main__":
    raise SystemExit(main())
