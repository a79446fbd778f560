"""Fan-out: `fleetbench check` on N lab hosts against the SSH limit, measured in the same run.

The limit is Ansible's `raw` module running `true` over the same hosts with forks = N: one
SSH exec per host and nothing else. Also timed, to show where the rest goes: the same
`raw: true` as a one-task playbook (bench/raw_true.yml: the floor of any playbook), and
the probe as an Ansible module (`ansible -m fleetbench_probe`: AnsiballZ and
AnsibleModule on the host, which check avoids by piping the probe to the host's Python).
Usage::

    /work/venv/bin/python bench/fanout.py [--sizes 10,30,60] [--reps 3] [--lab DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the bench folder is not a package
    BIN,
    REPO,
    Lab,
    Machine,
    Sample,
    Section,
    alternate,
    command_line,
    fmt,
    log,
    main_over_sizes,
    median,
    verdict,
)

GOAL_N = 30
GOAL, STRETCH = 1.5, 1.2


def raw_true(lab: Lab, count: int) -> list[str]:
    """One SSH exec per host: the limit."""
    return [str(BIN / "ansible"), "all", "-i", str(lab.inventory), "-l", lab.limit(count),
            "-m", "raw", "-a", "true", "-f", str(count)]


def fleetbench_check(lab: Lab, count: int) -> list[str]:
    """What an admin runs."""
    return [str(BIN / "fleetbench"), "check", "-i", str(lab.inventory), "--limit",
            lab.limit(count), "--json"]


def raw_playbook(lab: Lab, count: int) -> list[str]:
    """raw true from a playbook: what any playbook costs beyond the SSH exec."""
    return [str(BIN / "ansible-playbook"), "-i", str(lab.inventory), "-l", lab.limit(count),
            str(REPO / "bench" / "raw_true.yml"), "-f", str(count)]


def probe_module(lab: Lab, count: int) -> list[str]:
    """The probe as an Ansible module, ad hoc: AnsiballZ + AnsibleModule on every host."""
    return [str(BIN / "ansible"), "all", "-i", str(lab.inventory), "-l", lab.limit(count),
            "-M", str(REPO / "roles" / "preflight" / "library"), "-m", "fleetbench_probe",
            "-a", "sysfs_root={{ fleetbench_sysfs_root }} rocm_path={{ fleetbench_rocm_path }}",
            "-f", str(count)]


def expect_all_ok(count: int) -> object:
    """A validator: `fleetbench check --json` says every one of ``count`` hosts is ok."""
    def validate(sample: Sample) -> None:
        try:
            hosts = json.loads(sample.stdout)["hosts"]
        except (ValueError, KeyError):
            raise SystemExit(f"check printed no JSON (rc {sample.rc}):\n"
                             f"{sample.stderr[-2000:]}") from None
        bad = {h: e["status"] for h, e in hosts.items() if e["status"] != "ok"}
        if sample.rc != 0 or len(hosts) != count or bad:
            raise SystemExit(f"check: rc {sample.rc}, {len(hosts)} hosts, not ok: {bad}")
    return validate


def run(lab: Lab, sizes: list[int], reps: int, machine: Machine) -> Section:
    """Measure every size; the RESULTS.md section."""
    rows = []
    floor = ""
    for count in sizes:
        log(f"fan-out N={count}: raw true / raw playbook / fleetbench check / probe module, "
            f"{reps} rounds")
        samples = alternate(
            {"raw": raw_true(lab, count), "playbook": raw_playbook(lab, count),
             "check": fleetbench_check(lab, count), "module": probe_module(lab, count)},
            reps, lab, check={"check": expect_all_ok(count)})
        wall = {k: median([s.wall for s in v]) for k, v in samples.items()}
        ctrl = {k: median([s.controller_cpu for s in v]) for k, v in samples.items()}
        target = {k: median([s.target_cpu for s in v]) for k, v in samples.items()}
        ratio = wall["check"] / wall["raw"]
        if count == GOAL_N:
            cpu = ctrl["check"] + target["check"]
            floor = (
                f"Where the time goes at N={count}: check needs {cpu:.1f} CPU-s in all "
                f"({ctrl['check']:.1f} on the controller, {target['check']:.1f} on the lab's "
                f"hosts) against {ctrl['raw'] + target['raw']:.1f} for raw true; on "
                f"{machine.nproc} CPUs that alone is at least {cpu / machine.nproc:.1f} s, "
                f"{cpu / machine.nproc / wall['raw']:.1f} × the raw wall time. The one-task raw "
                f"playbook already costs {ctrl['playbook']:.1f} controller CPU-s: Ansible "
                "forks a worker per host and task. check has one per host too (its probe; "
                "the role's arguments are checked once, in fleetbench), plus fleetbench, "
                "ansible-runner, the inventory, the probe's templated arguments and its "
                "verdict; on the hosts' side, the probe's Python and its commands "
                "(docker version, amd-smi, rocm-smi). The controller's CPU alone, what grows "
                "with N on a real fleet whose hosts have their own CPUs: "
                f"{ctrl['check'] / ctrl['raw']:.2f} × raw true's.")
        goal = f"≤ {GOAL} (stretch {STRETCH})" if count == GOAL_N else "(info)"
        met = verdict(ratio <= GOAL) + (" (stretch too)" if ratio <= STRETCH else "")
        rows.append((
            str(count), fmt(wall["raw"]), fmt(wall["check"]), fmt(ratio), goal,
            met if count == GOAL_N else "—", fmt(wall["playbook"]), fmt(wall["module"]),
            f"{ctrl['raw']:.1f} / {ctrl['playbook']:.1f} / {ctrl['check']:.1f} / "
            f"{ctrl['module']:.1f}",
            f"{target['raw']:.1f} / {target['playbook']:.1f} / {target['check']:.1f} / "
            f"{target['module']:.1f}",
            machine.date, machine.label, machine.commit,
        ))
    return Section(
        key="fanout",
        title="Fan-out: `fleetbench check` vs one SSH exec per host "
              "(`ansible -m raw -a true -f N`)",
        command=command_line(),
        columns=("N", "baseline: raw true (s)", "measured: check (s)", "ratio", "goal", "met?",
                 "raw true playbook (s)", "probe as a module, ad hoc (s)",
                 "controller CPU s raw / playbook / check / module",
                 "target CPU s raw / playbook / check / module",
                 "date", "machine", "commit"),
        rows=tuple(rows),
        notes=(
            f"Median of {reps} alternating rounds; cold SSH connections every time "
            "(fresh ControlPath, masters closed after).",
            "The lab's hosts are sshd processes on this machine, so the targets' work (the "
            "probe's Python, the simulated amd-smi/rocm-smi, docker version) runs on the "
            "controller's CPUs: on a real fleet it runs on each host in parallel and only the "
            "controller CPU column grows with N.",
            "raw true playbook = bench/raw_true.yml through ansible-playbook: the floor of any "
            "playbook here (the SSH exec plus Ansible's per-task worker).",
            *((floor,) if floor else ()),
            "probe as a module = `ansible all -m fleetbench_probe` (no playbook, verdict or "
            "ansible-runner, but AnsiballZ + AnsibleModule on the host): check pipes the same "
            "probe to the host's Python instead (fleetbench.remote).",
        ),
    )


def main() -> int:
    """Command line."""
    return main_over_sizes(__doc__ or "", run, reps=3)


if __name__ == "__main__":
    sys.exit(main())
