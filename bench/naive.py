"""The same probes written the naive way (bench/naive_check.yml) against `fleetbench check`.

naive_check.yml has one Ansible task per probe and one `slurp` per sysfs and KFD file,
each an SSH round trip and a Python start on the host; `fleetbench check` gathers the same
data in one module call per host. The naive playbook is slow, so it runs once, between two
check runs (the baseline is their median). Usage::

    /work/venv/bin/python bench/naive.py [--hosts 10] [--reps 1] [--lab DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the bench folder is not a package
    BIN,
    DEFAULT_LAB_DIR,
    REPO,
    Lab,
    Machine,
    Section,
    command_line,
    fmt,
    log,
    median,
    record,
    timed,
    verdict,
)
from fanout import expect_all_ok, fleetbench_check

GOAL = 3.0
PLAYBOOK = REPO / "bench" / "naive_check.yml"


def naive(lab: Lab, count: int) -> list[str]:
    """ansible-playbook bench/naive_check.yml on ``count`` hosts, forks = N like check."""
    return [str(BIN / "ansible-playbook"), "-i", str(lab.inventory), "-l", lab.limit(count),
            "-f", str(count), str(PLAYBOOK)]


def run(lab: Lab, count: int, reps: int, machine: Machine) -> Section:
    """check, naive, check (x reps); the RESULTS.md section."""
    checks, naives = [], []
    validate = expect_all_ok(count)
    log(f"naive: {count} hosts, check / naive playbook / check")
    for rep in range(reps):
        if rep == 0:
            checks.append(timed("check", fleetbench_check(lab, count), lab))
        slow = timed("naive", naive(lab, count), lab, timeout=3600)
        if slow.rc != 0:
            raise SystemExit(f"naive_check.yml failed (rc {slow.rc}):\n{slow.stdout[-3000:]}")
        naives.append(slow)
        checks.append(timed("check", fleetbench_check(lab, count), lab))
        log(f"  naive: {slow.wall:.1f} s; check: "
            + ", ".join(f"{c.wall:.1f} s" for c in checks))
    for sample in checks:
        validate(sample)  # type: ignore[operator]
    tasks = slow.stdout.count("ok: [") + slow.stdout.count("changed: [")
    baseline = median([c.wall for c in checks])
    measured = median([n.wall for n in naives])
    ratio = measured / baseline
    return Section(
        key="naive",
        title="One task per probe (bench/naive_check.yml) vs `fleetbench check`",
        command=command_line(),
        columns=("N", "baseline: check (s)", "measured: naive playbook (s)",
                 "ratio (naive / check)", "goal", "met?", "naive CPU s controller / target",
                 "check CPU s controller / target", "date", "machine", "commit"),
        rows=((str(count), fmt(baseline), fmt(measured), fmt(ratio, 1), f"≥ {GOAL:g}",
               verdict(ratio >= GOAL),
               f"{median([n.controller_cpu for n in naives]):.0f} / "
               f"{median([n.target_cpu for n in naives]):.0f}",
               f"{median([c.controller_cpu for c in checks]):.1f} / "
               f"{median([c.target_cpu for c in checks]):.1f}",
               machine.date, machine.label, machine.commit),),
        notes=(
            f"naive_check.yml: docker version, amd-smi, rocm-smi, find + slurp of each sysfs "
            f"partition file and each KFD properties file, ROCm and driver version, stat + df: "
            f"about {tasks // max(count, 1)} task results per host (loop items counted) "
            "against one for check.",
            f"{len(naives)} naive run(s) between {len(checks)} check runs; cold SSH "
            "connections each time.",
        ),
    )


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10, help="lab hosts (default 10)")
    parser.add_argument("--reps", type=int, default=1, help="naive runs (default 1)")
    parser.add_argument("--lab", type=Path, help="reuse a running lab in this folder")
    args = parser.parse_args()
    machine = Machine.here()
    with Lab(args.lab or DEFAULT_LAB_DIR, args.hosts, reuse=args.lab is not None) as lab:
        record(run(lab, args.hosts, args.reps, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
