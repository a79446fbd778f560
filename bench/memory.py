"""Peak controller memory of `fleetbench check` at N = 10, 30, 60: does it grow sub-linearly?

The fleetbench process and every descendant (ansible-playbook, its forked workers, ssh
clients) plus the ssh masters it left behind (they daemonise, so they are found by their
ControlPath folder) are sampled every 0.1 s from /proc: the sum of VmRSS (which counts
pages that forked workers share with ansible-playbook once per worker) and the sum of Pss
(shared pages split between their users: what the machine really needs). Usage::

    /work/venv/bin/python bench/memory.py [--sizes 10,30,60] [--reps 1] [--lab DIR]
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the bench folder is not a package
    ColdConnections,
    Lab,
    Machine,
    MemoryPeak,
    Section,
    TreeSampler,
    ansible_env,
    command_line,
    fmt,
    log,
    main_over_sizes,
    verdict,
)
from fanout import fleetbench_check


def peak_of(lab: Lab, count: int) -> tuple[MemoryPeak, float]:
    """One `fleetbench check` on ``count`` hosts, sampled; (peaks, wall seconds)."""
    connections = ColdConnections()
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(fleetbench_check(lab, count), env=ansible_env(connections.env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = TreeSampler(proc.pid, also=str(connections.folder))
        sampler.start()
        _, err = proc.communicate(timeout=900)
        peak = sampler.stop()
        wall = time.perf_counter() - start
    finally:
        connections.close()
    if proc.returncode != 0:
        raise SystemExit(f"check on {count} hosts exited {proc.returncode}:\n{err[-2000:]}")
    return peak, wall


def run(lab: Lab, sizes: list[int], reps: int, machine: Machine) -> Section:
    """Peaks per size (the largest of ``reps`` runs); the RESULTS.md section."""
    peaks: dict[int, MemoryPeak] = {}
    for count in sizes:
        best = MemoryPeak()
        for _ in range(reps):
            peak, wall = peak_of(lab, count)
            log(f"memory N={count}: RSS sum {peak.rss_kib / 1024:.0f} MiB, PSS sum "
                f"{peak.pss_kib / 1024:.0f} MiB, {peak.processes} processes, {wall:.1f} s, "
                f"{peak.samples} samples")
            if peak.pss_kib > best.pss_kib:
                best = peak
        peaks[count] = best
    first = sizes[0]
    rows = []
    previous: tuple[int, MemoryPeak] | None = None
    increments: list[float] = []
    for count in sizes:
        peak = peaks[count]
        ratio = peak.pss_kib / peaks[first].pss_kib
        linear = count / first
        step = "—"
        if previous is not None:
            per_host = (peak.pss_kib - previous[1].pss_kib) / (count - previous[0]) / 1024
            increments.append(per_host)
            step = fmt(per_host, 1)
        rows.append((
            str(count), fmt(peaks[first].pss_kib / 1024, 0), fmt(peak.pss_kib / 1024, 0),
            fmt(ratio), f"< {linear:g} (N/{first})" if count != first else "—",
            verdict(ratio < linear) if count != first else "—", step,
            fmt(peak.pss_kib / 1024 / count, 1), fmt(peak.rss_kib / 1024, 0),
            str(peak.processes), machine.date, machine.label, machine.commit,
        ))
        previous = (count, peak)
    falling = all(b <= a for a, b in itertools.pairwise(increments))
    return Section(
        key="memory",
        title="Controller memory: peak of `fleetbench check` and its process tree",
        command=command_line(),
        columns=(
            "N", f"baseline: PSS at N={first} (MiB)", "measured: PSS (MiB)", "ratio", "goal",
            "met?", "MiB per extra host", "MiB/host", "VmRSS sum (MiB)", "processes",
            "date", "machine", "commit"),
        rows=tuple(rows),
        notes=(
            "Sub-linear: the ratio stays below N/N0 "
            + ("and the per-extra-host increment falls." if falling
               else "but the per-extra-host increment does not fall."),
            "check forks one Ansible worker per host (forks = N up to 100): the VmRSS sum "
            "counts the pages each worker shares with ansible-playbook once per worker, so it "
            "grows about linearly; PSS splits them and is what the controller needs.",
            "Sampled every 0.1 s from /proc (status VmRSS, smaps_rollup Pss); the largest "
            "of the runs per N.",
        ),
    )


def main() -> int:
    """Command line."""
    return main_over_sizes(__doc__ or "", run, reps=1)


if __name__ == "__main__":
    sys.exit(main())
