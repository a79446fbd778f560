"""Every benchmark on one lab, brought up at 127.0.4.11 and taken down at the end.

Writes bench/RESULTS.md (one section per benchmark) and prints each table. About 15
minutes on 2 CPUs. Usage::

    /work/venv/bin/python bench/run_all.py [--only fanout,naive,pipeline,memory,watch_memory,report]
        [--sizes 10,30,60] [--reps 3] [--naive-hosts 10] [--pipeline-hosts 10] [--lab DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fanout  # the bench folder is not a package
import memory
import naive
import pipeline
import report
import watch_memory
from common import DEFAULT_LAB_DIR, Lab, Machine, log, record

BENCHMARKS = ("fanout", "naive", "pipeline", "memory", "watch_memory", "report")


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"benchmarks to run (default {','.join(BENCHMARKS)})")
    parser.add_argument("--sizes", default="10,30,60", help="fan-out and memory sizes")
    parser.add_argument("--reps", type=int, default=3, help="fan-out and report rounds")
    parser.add_argument("--naive-hosts", type=int, default=10, help="hosts for the naive run")
    parser.add_argument("--pipeline-hosts", type=int, default=10, help="hosts for `run`")
    parser.add_argument("--forks-demo", type=int, default=1, metavar="SECONDS",
                        help="slow benchmark seconds per point for the forks run (0: skip)")
    parser.add_argument("--lab", type=Path, help="reuse a running lab in this folder")
    args = parser.parse_args()
    wanted = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(wanted) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    sizes = [int(s) for s in args.sizes.split(",")]
    machine = Machine.here()
    started = time.monotonic()
    lab_needed = [b for b in wanted if b != "report"]
    if lab_needed:
        hosts = max([*sizes, args.naive_hosts, args.pipeline_hosts])
        with Lab(args.lab or DEFAULT_LAB_DIR, hosts, reuse=args.lab is not None) as lab:
            if "fanout" in wanted:
                record(fanout.run(lab, sizes, args.reps, machine))
            if "naive" in wanted:
                record(naive.run(lab, args.naive_hosts, 1, machine))
            if "pipeline" in wanted:
                record(pipeline.run(lab, args.pipeline_hosts, [1, 8], machine))
                if args.forks_demo:
                    record(pipeline.forks_below_hosts(lab, args.pipeline_hosts,
                                                      args.forks_demo, machine))
            if "memory" in wanted:
                record(memory.run(lab, sizes, 1, machine))
            if "watch_memory" in wanted:
                record(watch_memory.run(lab, sizes, 1, machine))
    if "report" in wanted:
        record(report.run(500, 8, args.reps, machine, want_profile=False))
    log(f"all done in {(time.monotonic() - started) / 60:.1f} min; see bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
